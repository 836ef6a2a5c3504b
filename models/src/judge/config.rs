//! The judge's configuration, with Kayenta's field names, and its validation (`check()`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Kayenta's default confidence level of the Mann-Whitney interval (NetflixACAJudge builds its
/// `MannWhitneyClassifier` with `confLevel = 0.98`).
pub const DEFAULT_CONF_LEVEL: f64 = 0.98;
/// Kayenta's default IQR factor of the outlier fences.
pub const DEFAULT_OUTLIER_FACTOR: f64 = 3.0;
/// Kayenta's tolerance: the interval must clear ± this fraction of |Hodges-Lehmann estimate|
/// (NetflixACAJudge builds its `MannWhitneyClassifier` with `tolerance = 0.25`).
pub const DEFAULT_TOLERANCE: f64 = 0.25;

/// The configuration of the `mann-whitney` judge, as it appears in `omen.toml` (or JSON), with
/// Kayenta's canary-config field names in camelCase. Unchecked: call [`JudgeParams::check`] to
/// get the [`ValidJudgeParams`] that [`judge`](super::judge) takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JudgeParams {
    /// The metrics judged (Kayenta's `metrics`).
    #[serde(default)]
    pub metrics: Vec<MetricConfig>,
    /// Kayenta's `classifier` block.
    #[serde(default)]
    pub classifier: ClassifierConfig,
    /// Kayenta's `scoreThresholds` of the canary execution request.
    pub score_thresholds: ScoreThresholds,
    /// Confidence level of the Mann-Whitney test and of the Hodges-Lehmann interval; a metric
    /// differs when the interval of canary − baseline excludes 0. Kayenta hard-codes 0.98.
    #[serde(default = "default_conf_level")]
    pub conf_level: f64,
    /// A shift counts only when its interval lies beyond ± `tolerance` × |estimate|: `HIGH` when
    /// the lower end exceeds it, `LOW` when the upper end is below its negative. Kayenta
    /// hard-codes 0.25; omen lets it be set (in [0, 1)).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_conf_level() -> f64 {
    DEFAULT_CONF_LEVEL
}

fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}

/// Kayenta's `classifier` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Weight of each metric group in the score (group name → weight). The weights must sum to
    /// 100 and name every group a metric belongs to. Empty: every group weighs the same, as in
    /// Kayenta when `groupWeights` is absent.
    #[serde(default)]
    pub group_weights: BTreeMap<String, f64>,
}

/// Kayenta's `scoreThresholds`: the score (0–100) a canary needs to pass, or to be marginal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreThresholds {
    /// A score at or above `pass` passes.
    pub pass: f64,
    /// A score at or above `marginal` (and below `pass`) is marginal; below it the canary fails.
    pub marginal: f64,
}

/// One metric: Kayenta's `metrics[i]` with the fields of `analysisConfigurations.canary`
/// flattened into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricConfig {
    /// The metric's name; [`MetricInput::name`](super::MetricInput) refers to it.
    pub name: String,
    /// The groups the metric belongs to (Kayenta's `groups`); the score weighs groups.
    pub groups: Vec<String>,
    /// Which deviation counts as a failure (Kayenta's `direction`, default `either`).
    #[serde(default)]
    pub direction: Direction,
    /// What to do with NaN samples (Kayenta's `nanStrategy`, default `remove`).
    #[serde(default)]
    pub nan_strategy: NanStrategy,
    /// Kayenta's `critical`: when this metric fails (beyond `criticalIncrease` /
    /// `criticalDecrease`), or has no data with `nanStrategy = remove`, the whole canary fails
    /// with score 0.
    #[serde(default)]
    pub critical: bool,
    /// Kayenta's `mustHaveData`: a `NODATA` of this metric counts as a failed metric in its
    /// groups (Kayenta's `NodataFailMetric`); it fails the whole canary only when the metric is
    /// also `critical`.
    #[serde(default)]
    pub must_have_data: bool,
    /// Kayenta's `effectSize` bounds, on the ratio mean(canary) / mean(baseline).
    #[serde(default)]
    pub effect_size: EffectSize,
    /// Kayenta's `outliers` block.
    #[serde(default)]
    pub outliers: Outliers,
}

/// Kayenta's `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only an increase fails (latency, errors); a decrease is `PASS`.
    Increase,
    /// Only a decrease fails (throughput, success rate); an increase is `PASS`.
    Decrease,
    /// Both fail.
    #[default]
    Either,
}

/// Kayenta's `nanStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanStrategy {
    /// Drop NaN samples.
    #[default]
    Remove,
    /// Replace NaN samples with 0 (for counters that report NaN when nothing happened).
    Replace,
}

/// Kayenta's `effectSize`: bounds on the effect size, the ratio mean(canary) / mean(baseline)
/// (Kayenta's `meanRatio` measure). All default to 1.0 (no tolerance), as in Kayenta.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectSize {
    /// A `HIGH` needs a ratio of at least this (1.1: less than 10% more is tolerated). ≥ 1.
    #[serde(default = "one")]
    pub allowed_increase: f64,
    /// A `LOW` needs a ratio of at most this (0.9: less than 10% less is tolerated). ≤ 1.
    #[serde(default = "one")]
    pub allowed_decrease: f64,
    /// For a `critical` metric, a `HIGH` whose ratio is at least this fails the canary. ≥ 1.
    #[serde(default = "one")]
    pub critical_increase: f64,
    /// For a `critical` metric, a `LOW` whose ratio is at most this fails the canary. ≤ 1.
    #[serde(default = "one")]
    pub critical_decrease: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for EffectSize {
    fn default() -> Self {
        EffectSize { allowed_increase: 1.0, allowed_decrease: 1.0, critical_increase: 1.0, critical_decrease: 1.0 }
    }
}

/// Kayenta's `outliers` block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outliers {
    /// `keep` (default) or `remove`.
    #[serde(default)]
    pub strategy: OutlierStrategy,
    /// The IQR factor k of the fences [Q1 − k·IQR, Q3 + k·IQR], applied to each sample on its
    /// own (default 3.0, Kayenta's).
    #[serde(default = "default_outlier_factor")]
    pub outlier_factor: f64,
}

fn default_outlier_factor() -> f64 {
    DEFAULT_OUTLIER_FACTOR
}

impl Default for Outliers {
    fn default() -> Self {
        Outliers { strategy: OutlierStrategy::Keep, outlier_factor: DEFAULT_OUTLIER_FACTOR }
    }
}

/// Kayenta's `outliers.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierStrategy {
    /// Keep every value.
    #[default]
    Keep,
    /// Drop the values outside the IQR fences.
    Remove,
}

/// Checked parameters: only these reach [`judge`](super::judge).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidJudgeParams {
    pub(super) params: JudgeParams,
    /// (group, weight) in the order the score uses; weights sum to 100.
    pub(super) weights: Vec<(String, f64)>,
}

impl ValidJudgeParams {
    /// The checked configuration.
    pub fn params(&self) -> &JudgeParams {
        &self.params
    }

    /// The weight of each group (sums to 100), equal weights filled in when none were given.
    pub fn group_weights(&self) -> &[(String, f64)] {
        &self.weights
    }
}

/// How far the group weights may be from 100 (rounding of decimal weights such as 33.3…).
const WEIGHT_TOLERANCE: f64 = 1e-6;

impl JudgeParams {
    /// Validates the configuration; errors name the field at fault with Kayenta's names.
    pub fn check(self) -> Result<ValidJudgeParams> {
        let tol = self.tolerance;
        if !(tol.is_finite() && (0.0..1.0).contains(&tol)) {
            return Err(Error::invalid("tolerance", format!("must lie in [0, 1), got {tol}")));
        }
        let c = self.conf_level;
        if !(c > 0.0 && c < 1.0) {
            return Err(Error::invalid("confLevel", format!("must lie strictly between 0 and 1, got {c}")));
        }
        let t = self.score_thresholds;
        for (field, v) in [("scoreThresholds.pass", t.pass), ("scoreThresholds.marginal", t.marginal)] {
            if !(0.0..=100.0).contains(&v) {
                return Err(Error::invalid(field, format!("must lie in [0, 100], got {v}")));
            }
        }
        if t.pass < t.marginal {
            return Err(Error::invalid(
                "scoreThresholds",
                format!("pass ({}) must not be below marginal ({})", t.pass, t.marginal),
            ));
        }
        if self.metrics.is_empty() {
            return Err(Error::invalid("metrics", "at least one metric is needed"));
        }
        let mut names = BTreeSet::new();
        let mut groups_in_order: Vec<String> = Vec::new();
        for (i, m) in self.metrics.iter().enumerate() {
            check_metric(i, m)?;
            if !names.insert(m.name.as_str()) {
                return Err(Error::invalid(format!("metrics[{i}].name"), format!("`{}` appears twice", m.name)));
            }
            for g in &m.groups {
                if !groups_in_order.contains(g) {
                    groups_in_order.push(g.clone());
                }
            }
        }
        let gw = &self.classifier.group_weights;
        let weights = if gw.is_empty() {
            let w = 100.0 / groups_in_order.len() as f64;
            groups_in_order.into_iter().map(|g| (g, w)).collect()
        } else {
            let field = "classifier.groupWeights";
            for (g, &w) in gw {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::invalid(field, format!("weight of group `{g}` must be finite and ≥ 0, got {w}")));
                }
            }
            let sum: f64 = gw.values().sum();
            if (sum - 100.0).abs() > WEIGHT_TOLERANCE {
                return Err(Error::invalid(field, format!("weights must sum to 100, got {sum}")));
            }
            if let Some(g) = groups_in_order.iter().find(|g| !gw.contains_key(*g)) {
                return Err(Error::invalid(field, format!("group `{g}` of a metric has no weight")));
            }
            gw.iter().map(|(g, &w)| (g.clone(), w)).collect()
        };
        Ok(ValidJudgeParams { params: self, weights })
    }
}

fn check_metric(i: usize, m: &MetricConfig) -> Result<()> {
    let at = |f: &str| format!("metrics[{i}].{f}");
    if m.name.trim().is_empty() {
        return Err(Error::invalid(at("name"), "must not be empty"));
    }
    if m.groups.is_empty() {
        return Err(Error::invalid(at("groups"), "a metric must belong to at least one group"));
    }
    if let Some(j) = m.groups.iter().position(|g| g.trim().is_empty()) {
        return Err(Error::invalid(format!("metrics[{i}].groups[{j}]"), "must not be empty"));
    }
    let e = m.effect_size;
    for (f, v) in [("effectSize.allowedIncrease", e.allowed_increase), ("effectSize.criticalIncrease", e.critical_increase)]
    {
        if !(v.is_finite() && v >= 1.0) {
            return Err(Error::invalid(at(f), format!("must be a finite ratio ≥ 1, got {v}")));
        }
    }
    for (f, v) in [("effectSize.allowedDecrease", e.allowed_decrease), ("effectSize.criticalDecrease", e.critical_decrease)]
    {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(Error::invalid(at(f), format!("must be a ratio in (0, 1], got {v}")));
        }
    }
    let k = m.outliers.outlier_factor;
    if !(k.is_finite() && k > 0.0) {
        return Err(Error::invalid(at("outliers.outlierFactor"), format!("must be finite and > 0, got {k}")));
    }
    Ok(())
}
