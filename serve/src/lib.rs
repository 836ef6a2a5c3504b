//! `omen-serve`: scoring of live canaries over gRPC (DESIGN §5), with an HTTP adapter for Argo
//! Rollouts' Web metric provider and Flagger webhooks.
//!
//! A call carries one canary's samples; the answer is computed in [`scoring`]: the inputs by
//! `omen_features::feature` (the code `omen features build` runs offline, so training and
//! serving see the same features), the calibrated failure probability and its TreeSHAP
//! contributions from the champion `omen-failure`, the predicted performance at 100 % from the
//! champion `omen-performance` (when there is one), the forecasts, forecast SLO breaches and
//! failure probability of the champion `omen-sequence` (when there is one; `SequenceModel::assess`,
//! the code `omen train sequence` evaluates with), Kayenta's Mann-Whitney verdict per metric
//! from the reference judge, and the [`policy`]'s decision.
//!
//! # The decision policy
//! Configured under `[serve.policy]` of `omen.toml` ([`policy::PolicyConfig`]); the rules, in
//! order, the first that applies deciding:
//!
//! 1. A `critical` metric failed (Kayenta's semantics): **ROLLBACK**.
//! 2. The failure probability is at least `rollback_probability` (0.7) with a confidence of at
//!    least `min_confidence` (0.65), `rollback_checks` (1) answers in a row on a stream below
//!    100 % traffic (a unary call, or a canary at 100 %, counts one): **ROLLBACK**, before the
//!    judge sees anything. An alarm not yet repeated enough holds, after rules 3 and 4 had their
//!    say.
//! 3. A metric with an SLO (`[serve.policy.slo]`, or the service's own under
//!    `[serve.policy.services.<service>.slo]`) is predicted above it at 100 % traffic even at
//!    its 95 % interval's lower end, or the champion `omen-sequence` forecasts the canary above
//!    it within the forecast horizon with a probability of at least
//!    `breach_rollback_probability` (0.9): **ROLLBACK**, before the breach.
//! 4. The judge's score is below `marginal` (a `Fail`) while the metrics have data:
//!    **ROLLBACK**.
//! 5. Half or more of the judged metrics have no data: **HOLD** (or ROLLBACK with
//!    `nodata = "rollback"`): no abort on a scrape gap (argoproj/argo-rollouts#2866).
//! 6. Confidence below `min_confidence`, a predicted SLO breach at the point estimate, a
//!    forecast breach with a probability of at least `breach_hold_probability` (0.5), a
//!    marginal judge, or a canary not (yet) healthy: **HOLD** at the current weight
//!    (argoproj/argo-rollouts#1905: hold rather than abort when unsure).
//! 7. Otherwise the canary is healthy: after `stable_checks` healthy answers in a row (streams;
//!    a unary call counts one) it moves to the next weight of `steps`: **CONTINUE** with
//!    `next_weight`, or **PROMOTE** when the next weight is 100.
//!
//! *Healthy* has hysteresis: a canary becomes healthy when its failure probability is at most
//! `advance_probability` (0.2) and stops being healthy only above `hold_probability` (0.35),
//! so noise around one threshold does not make the weight go up and down. Weights never go
//! down except to 0 by a rollback. A stream rolls back after `max_holds` holds in a row when
//! that is set. *Confidence* is max(p, 1 − p) of the calibrated probability p: the probability
//! that the prediction (fail when p ≥ 0.5) is right, so among answers of confidence c a fraction
//! c is right when p is calibrated.
//!
//! A stream (`ScoreStream`) is one deployment and keeps its state (healthy, the streak, the
//! holds, the steps); a unary `Score` is stateless.

pub mod auth;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod models;
pub mod policy;
pub mod pool;
pub mod prometheus;
pub mod scorelog;
pub mod scoring;
pub mod server;
pub mod service;

/// The generated protobuf types and the tonic server and client of `omen.v1`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/omen.v1.rs"));

    /// The encoded file descriptor set of `omen.proto` (reflection, the JSON mapping).
    pub const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/omen_descriptor.bin"));
}

/// The proto's services generated with tonic-prost's own codec, not [`codec::SliceCodec`]: only
/// for the benchmark's bare tonic echo service (`serve/examples/omen-echo.rs`), the ceiling that
/// `bench/serve.sh` compares omen-serve with.
#[doc(hidden)]
pub mod plain_proto {
    include!(concat!(env!("OUT_DIR"), "/plain/omen.v1.rs"));
}

pub use error::{Error, Result};
