//! Load-test features of one metric: the new version under synthetic load at the full-traffic
//! rate (samples of role `loadtest`) against the baseline's live samples over the same window.
//!
//! Why: some failures show only at high traffic (a connection pool or a lock shared by the new
//! version's pods saturates above half the traffic). At 5 % the canary looks healthy, and a judge
//! that compares canary with baseline sees the failure only once the canary carries most of the
//! traffic. A load test run while the canary is still small (omen's `omen load run`, k6 or Locust
//! against the new version's pods, as Flagger's pre-rollout and rollout webhooks or an Argo
//! Rollouts analysis job run them) shows it at once. The baseline serves the same per-pod load at
//! its live weight, so the shift is what the full rate does to the new version beyond what the
//! old one does now.
//!
//! The window is the row's own: `[start, checkpoint]` on both sides, each cut by its own
//! timestamps. Load-test samples from before the canary start are not read (send them with
//! times inside the canary's window, or start the canary's clock before the test).

use super::value::{Kind, Value};
use super::window::Window;
use crate::stats::{self, Alternative, mann_whitney_u};

/// The state of a load-test window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadTestState {
    /// Both the load test and the baseline have a finite value.
    Ok,
    /// No finite load-test value in the window (no load test, or not yet).
    NoData,
    /// A load test but no finite baseline value: only `n` and `mean` have values.
    BaselineMissing,
}

impl LoadTestState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadTestState::Ok => "ok",
            LoadTestState::NoData => "no_data",
            LoadTestState::BaselineMissing => "baseline_missing",
        }
    }
}

/// The load-test statistics of one metric over one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadTestFeatures {
    pub state: Option<LoadTestState>,
    pub n: i64,
    pub mean: Option<f64>,
    pub shift: Option<f64>,
    pub ratio: Option<f64>,
    pub prob_superiority: Option<f64>,
}

/// Name (after `l__<metric>__`), kind and meaning of each load-test feature, in column order.
pub const LOAD_TEST_COLUMNS: &[(&str, Kind, &str)] = &[
    ("state", Kind::Str, "`ok`, `no_data` (no load test in the window) or `baseline_missing`"),
    ("n", Kind::Int, "load-test samples in the window (NaN excluded, duplicates collapsed)"),
    ("mean", Kind::Float, "mean of the load test's finite values: the new version at the full-traffic rate"),
    ("shift", Kind::Float, "load-test mean minus the baseline's mean over the same window"),
    ("ratio", Kind::Float, "load-test mean / the baseline's mean; null when the baseline's mean is 0"),
    ("prob_superiority", Kind::Float, "Mann-Whitney U₁/(mn): the probability that a load-test value exceeds a baseline value (ties count ½)"),
];

impl LoadTestFeatures {
    /// The values in [`LOAD_TEST_COLUMNS`] order.
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Str(self.state.map(|s| s.as_str().to_owned())),
            Value::Int(Some(self.n)),
            Value::float(self.mean),
            Value::float(self.shift),
            Value::float(self.ratio),
            Value::float(self.prob_superiority),
        ]
    }
}

/// The load test's samples against the baseline's, both windows cut by the caller to the row's
/// `[start, checkpoint]`. ±Inf values are ranked by the Mann-Whitney test and left out of the
/// means.
pub fn load_test_features(load: Window<'_>, baseline: Window<'_>) -> LoadTestFeatures {
    let (xf, yf) = (load.finite_values(), baseline.finite_values());
    let mut f = LoadTestFeatures { n: load.count() as i64, mean: stats::mean(&xf).ok(), ..Default::default() };
    let (Some(mean), Ok(base)) = (f.mean, stats::mean(&yf)) else {
        f.state = Some(if f.mean.is_none() { LoadTestState::NoData } else { LoadTestState::BaselineMissing });
        return f;
    };
    f.state = Some(LoadTestState::Ok);
    f.shift = Some(mean - base).filter(|v| v.is_finite());
    f.ratio = Some(mean / base).filter(|v| base != 0.0 && v.is_finite());
    // The test drops NaN itself and ranks ±Inf.
    f.prob_superiority = mann_whitney_u(load.values, baseline.values, Alternative::TwoSided).ok().map(|mw| mw.prob_superiority());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::{Sample, TimeSeries};

    fn series(values: &[f64]) -> TimeSeries {
        TimeSeries::from_samples(
            values.iter().enumerate().map(|(i, &value)| Sample { ts: i as i64 * 30_000_000, series: 1, value }).collect(),
        )
    }

    #[test]
    fn a_load_test_above_its_baseline_shifts_and_ranks_above_it() {
        let load = series(&[0.80, 0.82, 0.85, f64::NAN, 0.81]);
        let base = series(&[0.30, 0.31, 0.29, 0.32]);
        let f = load_test_features(load.all(), base.all());
        assert_eq!(f.state, Some(LoadTestState::Ok));
        assert_eq!(f.n, 4);
        assert!((f.mean.unwrap() - 0.82).abs() < 1e-12);
        assert!((f.shift.unwrap() - (0.82 - 0.305)).abs() < 1e-12);
        assert!((f.ratio.unwrap() - 0.82 / 0.305).abs() < 1e-12);
        assert_eq!(f.prob_superiority, Some(1.0));
        assert_eq!(f.values().len(), LOAD_TEST_COLUMNS.len());
    }

    #[test]
    fn without_a_load_test_or_a_baseline_the_comparisons_are_null() {
        let empty = TimeSeries::default();
        let base = series(&[0.0, 0.0]);
        let none = load_test_features(empty.all(), base.all());
        assert_eq!(none.state, Some(LoadTestState::NoData));
        assert_eq!((none.n, none.mean, none.shift), (0, None, None));
        let load = series(&[0.5, f64::INFINITY]);
        let alone = load_test_features(load.all(), empty.all());
        assert_eq!(alone.state, Some(LoadTestState::BaselineMissing));
        assert_eq!((alone.n, alone.mean, alone.shift, alone.prob_superiority), (2, Some(0.5), None, None));
        // A zero baseline: a shift but no ratio.
        let zero = load_test_features(load.all(), base.all());
        assert_eq!((zero.shift, zero.ratio), (Some(0.5), None));
        assert_eq!(zero.prob_superiority, Some(1.0));
    }
}
