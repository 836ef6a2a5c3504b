//! Integration tests of `omen-features` (one binary, as matklad recommends).

mod commits;
mod feature;
mod logs;
mod metrics;
mod schema_docs;
mod sequential;
mod stats;
