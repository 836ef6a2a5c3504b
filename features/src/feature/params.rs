//! The parameters of the feature set, validated once (`FeatureParams -> check() ->
//! ValidFeatureParams`), configured under `[features]` in `omen.toml`.

use crate::error::{Error, Result};
use crate::stats::EwmaParams;

/// `[features]` of `omen.toml`. Durations are strings such as `"90s"`, `"5m"`, `"1h30m"`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureParams {
    /// Analysis checkpoints after the canary start: one feature row per deployment and
    /// checkpoint, seeing only data up to it.
    pub checkpoints: Vec<String>,
    /// The metrics that become features (`metrics/` names); empty: every metric with canary or
    /// baseline samples.
    pub metrics: Vec<String>,
    /// Confidence level of the Hodges-Lehmann interval.
    pub confidence: f64,
    /// EWMA smoothing λ.
    pub ewma_lambda: f64,
    /// EWMA limit width L (standard deviations).
    pub ewma_l: f64,
    /// Canary and baseline samples further apart than this are not paired by the trend test
    /// (clock skew beyond it leaves the trend NODATA rather than pairing unrelated samples).
    pub max_pair_gap: String,
    /// Error-rate pairs of counters compared with a count test.
    pub error_rates: Vec<ErrorRateSpec>,
    /// Metrics with load-test columns `l__<metric>__*`: samples of role `loadtest` (the new
    /// version under synthetic load at the full-traffic rate) against the baseline's. Left out
    /// of a spec when empty, so specs written before it read the same.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_tests: Vec<String>,
}

/// An error-rate pair: an error counter and (optionally) the request counter it divides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRateSpec {
    /// Column prefix `e__<name>__`: letters, digits and `_`.
    pub name: String,
    /// The error counter metric (e.g. `http_requests_errors_total`).
    pub errors: String,
    /// The request counter metric; without it the rates are per second (Poisson test).
    #[serde(default)]
    pub total: Option<String>,
}

impl Default for FeatureParams {
    fn default() -> Self {
        FeatureParams {
            checkpoints: ["5m", "10m", "20m", "40m"].map(String::from).to_vec(),
            metrics: Vec::new(),
            confidence: 0.95,
            ewma_lambda: EwmaParams::default().lambda,
            ewma_l: EwmaParams::default().l,
            max_pair_gap: "60s".into(),
            error_rates: Vec::new(),
            load_tests: Vec::new(),
        }
    }
}

/// [`FeatureParams`] that passed [`FeatureParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFeatureParams {
    /// Checkpoints in µs after the start, ascending, distinct.
    pub checkpoints_us: Vec<i64>,
    pub metrics: Vec<String>,
    pub confidence: f64,
    pub ewma: EwmaParams,
    pub max_pair_gap_us: i64,
    pub error_rates: Vec<ErrorRateSpec>,
    /// Sorted, distinct.
    pub load_tests: Vec<String>,
}

fn bad(field: &str, message: impl Into<String>) -> Error {
    Error::field(format!("features.{field}"), message)
}

impl FeatureParams {
    /// Validates every parameter, naming the first one at fault.
    pub fn check(&self) -> Result<ValidFeatureParams> {
        if self.checkpoints.is_empty() {
            return Err(bad("checkpoints", "at least one checkpoint is needed"));
        }
        let mut checkpoints_us = Vec::with_capacity(self.checkpoints.len());
        for c in &self.checkpoints {
            let us = parse_duration(c).map_err(|m| bad("checkpoints", m))?;
            if us <= 0 {
                return Err(bad("checkpoints", format!("`{c}` must be after the start")));
            }
            checkpoints_us.push(us);
        }
        checkpoints_us.sort_unstable();
        if checkpoints_us.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("checkpoints", "checkpoints must be distinct"));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(bad("confidence", format!("{} is not in (0, 1)", self.confidence)));
        }
        if !(self.ewma_lambda > 0.0 && self.ewma_lambda <= 1.0) {
            return Err(bad("ewma_lambda", format!("{} is not in (0, 1]", self.ewma_lambda)));
        }
        if !(self.ewma_l > 0.0 && self.ewma_l.is_finite()) {
            return Err(bad("ewma_l", format!("{} is not positive", self.ewma_l)));
        }
        let max_pair_gap_us = parse_duration(&self.max_pair_gap).map_err(|m| bad("max_pair_gap", m))?;
        if max_pair_gap_us < 0 {
            return Err(bad("max_pair_gap", "must not be negative"));
        }
        let mut metrics = self.metrics.clone();
        if metrics.iter().any(|m| m.is_empty()) {
            return Err(bad("metrics", "a metric name is empty"));
        }
        metrics.sort();
        metrics.dedup();
        let mut load_tests = self.load_tests.clone();
        if load_tests.iter().any(|m| m.is_empty()) {
            return Err(bad("load_tests", "a metric name is empty"));
        }
        load_tests.sort();
        load_tests.dedup();
        let mut names = std::collections::HashSet::new();
        for e in &self.error_rates {
            if e.name.is_empty() || !e.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad("error_rates.name", format!("`{}` must be letters, digits and `_`", e.name)));
            }
            if !names.insert(e.name.as_str()) {
                return Err(bad("error_rates.name", format!("`{}` is given twice", e.name)));
            }
            if e.errors.is_empty() || e.total.as_deref() == Some("") {
                return Err(bad("error_rates", format!("`{}` names an empty metric", e.name)));
            }
        }
        Ok(ValidFeatureParams {
            checkpoints_us,
            metrics,
            confidence: self.confidence,
            ewma: EwmaParams { lambda: self.ewma_lambda, l: self.ewma_l },
            max_pair_gap_us,
            error_rates: self.error_rates.clone(),
            load_tests,
        })
    }
}

/// Parses a duration such as `90s`, `5m`, `1h30m`, `2d`, `250ms` or a bare number of seconds,
/// into microseconds.
pub fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(seconds) = t.parse::<f64>() {
        return to_us(seconds, 1e6, text);
    }
    let mut total: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration (like 90s, 5m, 1h30m)"));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| format!("`{text}` is not a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            "d" => 86_400e6,
            "w" => 7.0 * 86_400e6,
            other => return Err(format!("`{text}`: unknown unit `{other}` (use ms, s, m, h, d, w)")),
        };
        rest = &rest[unit_len..];
        total = total.checked_add(to_us(number, scale, text)?).ok_or_else(|| format!("`{text}` is too long"))?;
    }
    Ok(total)
}

fn to_us(number: f64, scale: f64, text: &str) -> std::result::Result<i64, String> {
    let us = (number * scale).round();
    if !us.is_finite() || us.abs() > 9.0e18 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(us as i64)
}
