//! `omen-features`: the datasets omen writes (schemas), the parsers that fill them from real
//! inputs (ingest), masking of personal data, and the store they live in.
//!
//! This crate knows nothing of models, protobuf or the CLI. See `ARCHITECTURE.md`.

pub mod error;
pub mod feature;
pub mod history;
pub mod ingest;
pub mod mask;
pub mod schema;
pub mod stats;
pub mod store;

pub use error::{Error, Result};
pub use mask::Masker;
pub use store::Store;
