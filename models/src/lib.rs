//! `omen-models`: models of deployment failure and performance — histogram GBDT, LSTM (burn),
//! k-means request profiles, the statistical judges, calibration, and the model registry.
//!
//! This crate knows no protobuf and no CLI; it depends on `omen-features` for schemas, the store
//! and the statistics, never the other way round.
//!
//! - [`gbdt`]: omen's histogram gradient-boosted trees (issue 5).
//! - [`calibrate`]: isotonic and Platt calibration, the expected calibration error, and
//!   split-conformal intervals.
//! - [`registry`]: the model registry, omen's own on a store or an MLflow server.
//! - [`kmeans`]: k-means (linfa-clustering) for request profiles, `k` by the silhouette.
//! - [`judge`]: the reference judge `mann-whitney`, with the semantics of Kayenta's
//!   NetflixACAJudge (DESIGN §5, §6).
//! - [`policy`]: the canary decision policy of `omen-serve` (`[serve.policy]`), also replayed
//!   offline by `omen evaluate`.
//! - [`sequence`]: the LSTM forecaster and failure classifier (burn) of `omen-sequence`.

pub mod baseline;
pub mod calibrate;
mod error;
pub mod gbdt;
pub mod judge;
pub mod kmeans;
pub mod policy;
pub mod registry;
pub mod sequence;

pub use error::{Error, Result};
