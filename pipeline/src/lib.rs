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
