//! The model inputs: one implementation of every feature, shared by the offline pipeline
//! (`omen features build`, where Polars scans and joins the store and hands each deployment's
//! typed windows here) and by `omen-serve` (which builds the same windows from a request).
//! Nothing here knows Polars frames: the functions take [`TimeSeries`]/[`Window`]s of samples, a
//! [`RepoHistory`] and a [`ServiceHistory`], and give [`Value`]s in the order of a
//! [`FeatureSchema`].
//!
//! # A row
//! One row per deployment and checkpoint (`[features] checkpoints`, default 5, 10, 20 and 40
//! minutes after the canary start):
//! - **checkpoint**: `elapsed_s`, `canary_weight` (the last step at or before the checkpoint);
//! - **time and history**: `hour`, `weekday` (UTC, Monday = 0), `hours_since_previous`,
//!   `deploys_prior_7d`;
//! - **change impact** ([`change_columns`]): the commit range `from_sha..to_sha` with the sums
//!   and maxima of the Kamei metrics, commit, author, fix and merge counts, files by
//!   [`FileKind`], and how often the touched files were part of earlier failed deployments;
//! - **canary versus baseline** per metric, `m__<metric>__<stat>` ([`METRIC_COLUMNS`]), over the
//!   window `[start, checkpoint]`;
//! - **error rates** per configured pair, `e__<name>__<stat>` ([`ERROR_RATE_COLUMNS`]);
//! - **load tests** per configured metric (`[features] load_tests`), `l__<metric>__<stat>`
//!   ([`LOAD_TEST_COLUMNS`]): the new version under synthetic load at the full-traffic rate
//!   (role `loadtest`) against the baseline's live samples, over the same window;
//! - **labels** (outcomes, never inputs): `label_outcome`, `label_failed`, and per metric
//!   `label__<metric>__at_full`, the canary's mean once traffic reached 100 %.
//!
//! # Point in time
//! A row sees nothing after its checkpoint: metric samples are cut by their own timestamps to
//! `start ≤ ts ≤ checkpoint`; the traffic weight is the last step at or before it; the history
//! of earlier deployments counts only deployments that *ended before this one started* (their
//! outcome was known when it began) and starts strictly before. Labels are the exception, by
//! definition.
//!
//! # Bad input, each with a defined value or state
//! - **Commits never ingested** (`to_sha` unknown): `change_state = commits_missing` and every
//!   change feature null. `from_sha` null or unknown: the range is `to_sha` alone
//!   (`no_from_sha`, `from_sha_missing`).
//! - **A metric present only for the canary** (or only the baseline): `m__…__state =
//!   baseline_missing` (`canary_missing`), the counts filled, every comparison null.
//! - **An empty window** (nothing yet at an early checkpoint, or a scrape gap): `no_data`, counts
//!   0, comparisons null. NaN samples are counted in `nan` and never compared.
//! - **Duplicate samples** (same series and timestamp, from overlapping ingests): collapsed to one
//!   sample, the mean of their non-NaN values, counted in `duplicates` ([`TimeSeries`]).
//! - **Clock skew between canary and baseline**: each side's window is cut by its own clock, so
//!   the unpaired statistics use what each side reported; the trend pairs samples no further
//!   apart than `max_pair_gap` (default 60 s) and is null under 3 pairs, with `trend_pairs`
//!   saying how many were found.
//! - **±Inf samples** (a histogram quantile beyond its last bucket) are ranked by the
//!   Mann-Whitney test and left out of every statistic that averages or subtracts; `infinite`
//!   counts them.
//! - Statistics without a value (a zero baseline for a ratio, too few points for a chart) are
//!   null, never NaN; every float written is finite.

mod canary;
mod change;
mod load_test;
mod params;
pub mod request;
pub mod sequence;
pub mod series;
mod value;
mod window;

use std::collections::BTreeMap;

pub use canary::{
    CountState, CounterWindows, ERROR_RATE_COLUMNS, ErrorRateFeatures, METRIC_COLUMNS, MetricFeatures, WindowState,
    error_rate_features, metric_features,
};
pub use change::{
    ChangeContext, ChangeFeatures, Commit, CommitRange, DeploymentRef, FileChange, FileKind, HistoryContext, KAMEI,
    PastDeployment, RangeState, RepoHistory, ServiceHistory, change_columns, change_context_at, change_features,
    service_change_contexts,
};
pub use load_test::{LOAD_TEST_COLUMNS, LoadTestFeatures, LoadTestState, load_test_features};
pub use params::{ErrorRateSpec, FeatureParams, ValidFeatureParams, parse_duration};
pub use value::{FeatureColumn, FeatureSchema, InputEncoder, Kind, Value, encode_indicator};
pub use window::{Sample, TimeSeries, Window, series_id};

/// The samples of one metric of one deployment, per role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSeries {
    pub canary: TimeSeries,
    pub baseline: TimeSeries,
    /// The canary's version under synthetic load at the full-traffic rate (a load test).
    pub loadtest: TimeSeries,
}

/// What the feature functions need of one deployment besides its change: its start, its
/// traffic steps, its metric samples by metric name, and (for the labels) its end and outcome.
#[derive(Debug, Clone, Default)]
pub struct DeploymentWindows {
    /// Canary start, µs UTC.
    pub started_at: i64,
    /// End of the rollout, µs UTC (labels only).
    pub ended_at: Option<i64>,
    /// Outcome (labels only).
    pub outcome: Option<String>,
    /// Traffic steps `(at µs, weight %)`, any order.
    pub steps: Vec<(i64, f64)>,
    /// Samples by metric name.
    pub metrics: BTreeMap<String, MetricSeries>,
}

impl DeploymentWindows {
    /// The traffic weight at time `t`: the weight of the latest step at or before `t`.
    pub fn weight_at(&self, t: i64) -> Option<f64> {
        self.steps.iter().filter(|(at, _)| *at <= t).max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))).map(|s| s.1)
    }

    /// When traffic first reached 100 %.
    pub fn full_at(&self) -> Option<i64> {
        self.steps.iter().filter(|(_, w)| *w >= 100.0).map(|s| s.0).min()
    }
}

/// The role of a sample in a canary analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Canary,
    Baseline,
    /// The new version under synthetic load at the full-traffic rate: a load test run while the
    /// canary still carries little traffic ([`LOAD_TEST_COLUMNS`]).
    LoadTest,
}

impl Role {
    /// `canary`, `baseline` or `loadtest` (the `role` column of `metrics/`); anything else
    /// (`primary`) is `None`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "canary" => Some(Role::Canary),
            "baseline" => Some(Role::Baseline),
            "loadtest" => Some(Role::LoadTest),
            _ => None,
        }
    }

    /// The value of the `role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Canary => "canary",
            Role::Baseline => "baseline",
            Role::LoadTest => "loadtest",
        }
    }

    /// The role's place in [`WindowsBuilder`]'s per-metric sample lists.
    fn slot(self) -> usize {
        match self {
            Role::Canary => 0,
            Role::Baseline => 1,
            Role::LoadTest => 2,
        }
    }
}

/// Collects the samples of one deployment, in any order and in as many pieces as they come,
/// into [`DeploymentWindows`]; the one path from raw samples to windows, offline and online.
#[derive(Debug, Default)]
pub struct WindowsBuilder {
    windows: DeploymentWindows,
    samples: BTreeMap<String, [Vec<Sample>; 3]>,
}

impl WindowsBuilder {
    pub fn new(started_at: i64, ended_at: Option<i64>, outcome: Option<String>, steps: Vec<(i64, f64)>) -> Self {
        WindowsBuilder {
            windows: DeploymentWindows { started_at, ended_at, outcome, steps, metrics: BTreeMap::new() },
            samples: BTreeMap::new(),
        }
    }

    /// Adds samples of `metric` for `role`.
    pub fn extend(&mut self, metric: &str, role: Role, samples: impl IntoIterator<Item = Sample>) {
        let entry = match self.samples.get_mut(metric) {
            Some(e) => e,
            None => self.samples.entry(metric.to_owned()).or_default(),
        };
        entry[role.slot()].extend(samples);
    }

    /// Normalises every series ([`TimeSeries::from_samples`]).
    pub fn finish(mut self) -> DeploymentWindows {
        for (metric, [canary, baseline, loadtest]) in self.samples {
            self.windows.metrics.insert(
                metric,
                MetricSeries {
                    canary: TimeSeries::from_samples(canary),
                    baseline: TimeSeries::from_samples(baseline),
                    loadtest: TimeSeries::from_samples(loadtest),
                },
            );
        }
        self.windows
    }
}

/// What computing a model's inputs again takes: the feature parameters, the metrics that became
/// columns, and the hash of the schema they give. Carried by every model trained on an omen
/// feature table (`features/_schema.json` has it too), so that `omen-serve` computes exactly the
/// columns the model was trained on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureSetSpec {
    pub params: FeatureParams,
    pub metrics: Vec<String>,
    pub schema_hash: String,
}

/// The feature set: the validated parameters and the metrics that become columns, and so the
/// [`FeatureSchema`] of every row it computes.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    params: ValidFeatureParams,
    metrics: Vec<String>,
    schema: FeatureSchema,
    n_inputs: usize,
}

const US_PER_HOUR: f64 = 3_600_000_000.0;

impl FeatureSet {
    /// A feature set over `metrics` (sorted and deduplicated here) — usually the configured list,
    /// or every metric found in the store when none is configured.
    pub fn new(params: ValidFeatureParams, metrics: impl IntoIterator<Item = String>) -> FeatureSet {
        let mut metrics: Vec<String> = metrics.into_iter().collect();
        metrics.sort();
        metrics.dedup();
        let mut columns = Vec::new();
        let mut input = |name: String, kind: Kind, doc: String| {
            columns.push(FeatureColumn { name, kind, label: false, doc });
        };
        input("elapsed_s".into(), Kind::Float, "seconds from the canary start to the checkpoint".into());
        input("canary_weight".into(), Kind::Float, "traffic weight (%) of the last step at or before the checkpoint; null before the first".into());
        input("hour".into(), Kind::Int, "hour of the canary start, UTC".into());
        input("weekday".into(), Kind::Int, "weekday of the canary start, UTC, Monday = 0".into());
        input("hours_since_previous".into(), Kind::Float, "hours since the service's previous deployment started; null for its first".into());
        input("deploys_prior_7d".into(), Kind::Int, "deployments of the service started in the 7 days before".into());
        for (name, kind, doc) in change_columns() {
            input(name, kind, doc);
        }
        for m in &metrics {
            for (stat, kind, doc) in METRIC_COLUMNS {
                input(format!("m__{m}__{stat}"), *kind, format!("`{m}`: {doc}"));
            }
        }
        for e in &params.error_rates {
            for (stat, kind, doc) in ERROR_RATE_COLUMNS {
                input(format!("e__{}__{stat}", e.name), *kind, format!("`{}`: {doc}", e.name));
            }
        }
        for m in &params.load_tests {
            for (stat, kind, doc) in LOAD_TEST_COLUMNS {
                input(format!("l__{m}__{stat}"), *kind, format!("`{m}`: {doc}"));
            }
        }
        let n_inputs = columns.len();
        let mut label = |name: String, kind: Kind, doc: String| {
            columns.push(FeatureColumn { name, kind, label: true, doc });
        };
        label("label_outcome".into(), Kind::Str, "the deployment's outcome: `success`, `rolled_back`, `failed`, `aborted`; null while running".into());
        label("label_failed".into(), Kind::Bool, "the deployment failed or was rolled back (null when aborted or running)".into());
        for m in &metrics {
            label(format!("label__{m}__at_full"), Kind::Float, format!("`{m}`: mean of the canary from the step to 100 % traffic to the end; null if it never got there"));
        }
        FeatureSet { params, metrics, schema: FeatureSchema::new(columns), n_inputs }
    }

    /// The feature set a spec describes; an error when its parameters are invalid or give
    /// another schema than the one it names (a spec from a newer or older omen).
    pub fn from_spec(spec: &FeatureSetSpec) -> crate::Result<FeatureSet> {
        let set = FeatureSet::new(spec.params.check()?, spec.metrics.iter().cloned());
        if set.schema.hash != spec.schema_hash {
            return Err(crate::Error::Field {
                field: "feature_set.schema_hash".into(),
                message: format!(
                    "these parameters and metrics give schema {}, the spec names {}: it was written by another version of omen's feature set",
                    set.schema.hash, spec.schema_hash
                ),
            });
        }
        Ok(set)
    }

    /// The spec of this set, given the parameters it was made from.
    pub fn spec(&self, params: &FeatureParams) -> FeatureSetSpec {
        FeatureSetSpec { params: params.clone(), metrics: self.metrics.clone(), schema_hash: self.schema.hash.clone() }
    }

    pub fn schema(&self) -> &FeatureSchema {
        &self.schema
    }

    pub fn params(&self) -> &ValidFeatureParams {
        &self.params
    }

    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Checkpoint times (µs) of a deployment that started at `started_at`.
    pub fn checkpoints(&self, started_at: i64) -> impl Iterator<Item = i64> + '_ {
        self.params.checkpoints_us.iter().map(move |c| started_at.saturating_add(*c))
    }

    /// The model inputs of one deployment at `checkpoint` (µs), in schema order. `change` comes
    /// from [`change_features`] and `history` from [`ServiceHistory::context`], both as of the
    /// deployment's start.
    pub fn inputs(
        &self,
        d: &DeploymentWindows,
        checkpoint: i64,
        change: &ChangeFeatures,
        history: HistoryContext,
    ) -> Vec<Value> {
        let mut row = Vec::with_capacity(self.n_inputs);
        let start = d.started_at;
        row.push(Value::float(Some((checkpoint - start) as f64 / 1e6)));
        row.push(Value::float(d.weight_at(checkpoint)));
        let (hour, weekday) = hour_and_weekday(start);
        row.push(Value::Int(Some(hour)));
        row.push(Value::Int(Some(weekday)));
        row.push(Value::float(history.previous_start.map(|p| (start - p) as f64 / US_PER_HOUR)));
        row.push(Value::Int(Some(history.deploys_prior_7d)));
        row.extend(change.values.iter().cloned());
        let empty = MetricSeries::default();
        for m in &self.metrics {
            let s = d.metrics.get(m).unwrap_or(&empty);
            let f = metric_features(s.canary.between(start, checkpoint), s.baseline.between(start, checkpoint), start, &self.params);
            row.extend(f.values());
        }
        for e in &self.params.error_rates {
            let window = |name: &str, canary: bool| {
                d.metrics.get(name).map(|s| if canary { &s.canary } else { &s.baseline }).map(|s| s.between(start, checkpoint))
            };
            let w = CounterWindows {
                canary_errors: window(&e.errors, true).unwrap_or_default(),
                baseline_errors: window(&e.errors, false).unwrap_or_default(),
                canary_total: e.total.as_deref().map(|t| window(t, true).unwrap_or_default()),
                baseline_total: e.total.as_deref().map(|t| window(t, false).unwrap_or_default()),
            };
            row.extend(error_rate_features(w, start, checkpoint).values());
        }
        for m in &self.params.load_tests {
            let s = d.metrics.get(m).unwrap_or(&empty);
            row.extend(load_test_features(s.loadtest.between(start, checkpoint), s.baseline.between(start, checkpoint)).values());
        }
        debug_assert_eq!(row.len(), self.n_inputs);
        row
    }

    /// The labels of one deployment, in schema order (after the inputs).
    pub fn labels(&self, d: &DeploymentWindows) -> Vec<Value> {
        let mut row = Vec::with_capacity(self.schema.columns.len() - self.n_inputs);
        row.push(Value::Str(d.outcome.clone()));
        row.push(Value::Bool(match d.outcome.as_deref() {
            Some("failed" | "rolled_back") => Some(true),
            Some("success") => Some(false),
            _ => None,
        }));
        let full = d.full_at();
        for m in &self.metrics {
            let v = match (full, d.metrics.get(m)) {
                (Some(from), Some(s)) => {
                    let w = s.canary.between(from, d.ended_at.unwrap_or(i64::MAX));
                    crate::stats::mean(w.values).ok()
                }
                _ => None,
            };
            row.push(Value::float(v));
        }
        row
    }
}

/// Hour (0-23) and weekday (Monday = 0) of a UTC time in µs.
fn hour_and_weekday(us: i64) -> (i64, i64) {
    let seconds = us.div_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let hour = seconds.rem_euclid(86_400) / 3600;
    // 1970-01-01 was a Thursday (Monday = 0 → 3).
    let weekday = (days + 3).rem_euclid(7);
    (hour, weekday)
}
