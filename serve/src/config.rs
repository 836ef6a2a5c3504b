//! `[serve]` of `omen.toml` (other sections belong to the `omen` CLI and are ignored here).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::policy::PolicyConfig;

/// The parts of `omen.toml` `omen-serve` reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    pub store: Option<String>,
    pub registry: Option<String>,
    #[serde(default)]
    pub serve: ServeConfig,
}

/// `[serve]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// `[serve.policy]`: the decision policy.
    pub policy: PolicyConfig,
    /// `[serve.judge]`: Kayenta's canary config for the reference judge (metrics with
    /// `direction`, `critical`, `effectSize`, …; `scoreThresholds`). Without it every metric of
    /// a request is judged in both directions, pass at 95, marginal at 75.
    pub judge: Option<omen_models::judge::JudgeParams>,
    /// `[serve.limits]`.
    pub limits: Limits,
    /// How often the registry is asked for new champions ("30s"; SIGHUP asks at once).
    pub reload_interval: String,
    /// Features and metrics listed as reasons in each answer.
    pub reasons: usize,
    /// `[serve.score_log]`.
    pub score_log: ScoreLogConfig,
    /// `[serve.prometheus]`: where to pull samples for requests that carry none.
    pub prometheus: crate::prometheus::PrometheusConfig,
    /// `[serve.synthetic_load]`: the metrics a request's `synthetic_load` results are samples of.
    pub synthetic_load: SyntheticLoadConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            policy: PolicyConfig::default(),
            judge: None,
            limits: Limits::default(),
            reload_interval: "30s".into(),
            reasons: 8,
            score_log: ScoreLogConfig::default(),
            prometheus: Default::default(),
            synthetic_load: SyntheticLoadConfig::default(),
        }
    }
}

/// `[serve.synthetic_load]`: which metric each field of a request's `synthetic_load` results
/// (a load test of the new version at the full-traffic rate, in the figures `omen load run
/// --json`, k6 and Locust report) is a load-test sample of, and the factor to that metric's unit:
///
/// ```toml
/// [serve.synthetic_load]
/// latency_p99_ms = { metric = "http_request_duration_seconds_p99", scale = 0.001 }
/// error_rate = { metric = "http_error_rate" }
/// ```
///
/// Each result becomes one sample of role `loadtest` per mapped field, at the request's
/// checkpoint, in a series of its own (`synthetic_load=<name>`, or its index when unnamed): the
/// load-test features (`l__<metric>__…`, `[features] load_tests`) then read them as they read
/// load-test samples sent under `metrics`. Fields without a mapping are not used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticLoadConfig {
    pub rps: Option<SyntheticField>,
    pub latency_p50_ms: Option<SyntheticField>,
    pub latency_p99_ms: Option<SyntheticField>,
    pub error_rate: Option<SyntheticField>,
}

/// The metric of one field of the synthetic-load results.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticField {
    /// The metric the field is a sample of (a metric of `[features] load_tests`).
    pub metric: String,
    /// The field's value times `scale` is the sample (0.001: milliseconds to seconds).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// A numeric field of a synthetic-load result: its name (in the proto and in
/// `[serve.synthetic_load]`), its value in a result, and its mapping in the config.
pub struct SyntheticFieldDef {
    pub name: &'static str,
    pub value: fn(&crate::proto::SyntheticLoad) -> f64,
    pub mapping: fn(&SyntheticLoadConfig) -> Option<&SyntheticField>,
}

/// Every numeric field of a synthetic-load result, in the proto's order.
pub const SYNTHETIC_FIELDS: [SyntheticFieldDef; 4] = [
    SyntheticFieldDef { name: "rps", value: |s| s.rps, mapping: |c| c.rps.as_ref() },
    SyntheticFieldDef { name: "latency_p50_ms", value: |s| s.latency_p50_ms, mapping: |c| c.latency_p50_ms.as_ref() },
    SyntheticFieldDef { name: "latency_p99_ms", value: |s| s.latency_p99_ms, mapping: |c| c.latency_p99_ms.as_ref() },
    SyntheticFieldDef { name: "error_rate", value: |s| s.error_rate, mapping: |c| c.error_rate.as_ref() },
];

impl SyntheticLoadConfig {
    /// The mapped fields: each one's definition and mapping.
    pub fn mapped(&self) -> impl Iterator<Item = (&'static SyntheticFieldDef, &SyntheticField)> {
        SYNTHETIC_FIELDS.iter().filter_map(move |d| (d.mapping)(self).map(|m| (d, m)))
    }

    /// Every mapping names a metric and a finite, non-zero scale.
    pub fn check(&self) -> Result<()> {
        for (d, f) in self.mapped() {
            let field = |what: &str| format!("serve.synthetic_load.{}.{what}", d.name);
            if f.metric.trim().is_empty() {
                return Err(Error::Config { field: field("metric"), message: "required".into() });
            }
            if !f.scale.is_finite() || f.scale == 0.0 {
                return Err(Error::Config { field: field("scale"), message: format!("must be a finite, non-zero number, got {}", f.scale) });
            }
        }
        Ok(())
    }
}

/// `[serve.limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request accepted, bytes.
    pub max_message_bytes: usize,
    /// Deadline of a call when the client sets none (a shorter `grpc-timeout` wins).
    pub request_timeout: String,
    /// Calls admitted at once (scoring or waiting for a scoring thread); beyond, calls are shed
    /// with `RESOURCE_EXHAUSTED`.
    pub max_concurrent: usize,
    /// Scoring threads (0: one per CPU core). Scoring runs on these, off the async runtime; a
    /// pool no larger than the cores keeps the runtime's threads (which read requests and shed
    /// the excess) from being crowded out under overload.
    pub workers: usize,
    /// Metrics per request.
    pub max_metrics: usize,
    /// Samples per metric and role.
    pub max_samples: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 << 20,
            request_timeout: "5s".into(),
            max_concurrent: 64,
            workers: 0,
            max_metrics: 256,
            max_samples: 100_000,
        }
    }
}

/// `[serve.score_log]`: every answer appended to `scores/` in the store, in batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreLogConfig {
    /// Answers waiting to be written; beyond, new ones are dropped and counted.
    pub buffer: usize,
    /// Rows per Parquet file, at most.
    pub batch_rows: usize,
    /// Longest wait before a partial batch is written ("5s").
    pub flush_interval: String,
}

impl Default for ScoreLogConfig {
    fn default() -> Self {
        ScoreLogConfig { buffer: 10_000, batch_rows: 2_000, flush_interval: "5s".into() }
    }
}

impl ConfigFile {
    /// Reads `path`; errors name the file and, for TOML errors, the line and field.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.display().to_string(), message: e.to_string() })?;
        toml::from_str(&text).map_err(|e| Error::Config { field: path.display().to_string(), message: e.to_string() })
    }
}

/// A duration of the config ("500ms", "5s", "1m").
pub fn duration(field: &str, text: &str) -> Result<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.trim().parse::<u64>().map(Duration::from_millis).map_err(|e| Error::Config { field: field.into(), message: e.to_string() });
    }
    let us = omen_features::feature::parse_duration(text).map_err(|m| Error::Config { field: field.into(), message: m })?;
    Ok(Duration::from_micros(us.max(0) as u64))
}
