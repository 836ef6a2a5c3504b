//! `omen-pipeline`: the batch stages behind the `omen` CLI. The binary (`src/main.rs`) parses
//! the command line, reads the environment and installs the tracing subscriber; everything else
//! lives here and takes plain values.

pub mod config;
pub mod detect;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod ingest;
pub mod load;
pub mod profiles;
pub mod quickstart;
pub mod registry;
pub mod report;
pub mod retrain;
pub mod sequence;
pub mod simulate;
pub mod train;

pub use error::{Error, Result};

/// µs since the epoch as RFC 3339 (`2026-01-05T11:14:29.5+00:00`; empty when out of range).
pub(crate) fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// µs since the epoch as RFC 3339 to the second, UTC as `Z` (`2026-01-05T11:14:29Z`).
pub(crate) fn rfc3339_secs(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}
