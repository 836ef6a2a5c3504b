//! The reference judge `mann-whitney`, with the semantics of Kayenta's NetflixACAJudge
//! (`MannWhitneyClassifier` per metric, `WeightedSumScorer` for the score).
//!
//! ```text
//! JudgeParams (omen.toml / JSON, Kayenta field names) --check()--> ValidJudgeParams
//! judge(&ValidJudgeParams, &[MetricInput]) -> JudgeReport
//! ```
//!
//! # Per metric (Kayenta's `MannWhitneyClassifier`)
//! 1. `nanStrategy`: `remove` drops NaN, `replace` makes them 0.
//! 2. `outliers.strategy = remove`: each sample on its own loses the values outside
//!    [min(P1, Q1 − k·IQR), max(P99, Q3 + k·IQR)], k = `outlierFactor` (3 by default), R-7
//!    percentiles (Kayenta's `IQRDetector` with `reduceSensitivity`).
//! 3. An empty sample: with `nanStrategy = remove` it is `NODATA` — a `critical` metric then
//!    fails the canary, a `mustHaveData` one counts as a failed metric (`NodataFailMetric`);
//!    with `replace` it is `PASS`.
//! 4. Identical samples, or samples of one single value, are `PASS`.
//! 5. The two-sided Mann-Whitney test ([`mann_whitney_u`](omen_features::stats::mann_whitney_u))
//!    and the Hodges-Lehmann shift canary − baseline with its interval at `confLevel` (0.98): an
//!    interval whose lower end exceeds `tolerance` × |estimate| (0.25) is `HIGH`, one whose upper
//!    end is below −`tolerance` × |estimate| is `LOW`, else `PASS`.
//! 6. `direction`: a `HIGH` of a `decrease` metric, or a `LOW` of an `increase` metric, is `PASS`.
//! 7. The effect size is Kayenta's `meanRatio`, mean(canary) / mean(baseline), unknown when
//!    either mean is 0. A `HIGH` needs a ratio ≥ `allowedIncrease`, a `LOW` one ≤
//!    `allowedDecrease` (an unknown ratio does not hold a verdict back). A `critical` metric
//!    `HIGH` with ratio ≥ `criticalIncrease` (or `LOW` with ratio ≤ `criticalDecrease`) fails the
//!    canary.
//!
//! # Score (Kayenta's `WeightedSumScorer`)
//! Per group, 100 × `PASS` / (`PASS` + `HIGH` + `LOW` + `mustHaveData` `NODATA`); a group with
//! none of these counts 100. The score is Σ group score × weight / 100 with the `groupWeights`
//! (equal when absent), rounded to two decimals. A critical failure, or `NODATA` for 50 % or more
//! of the metrics, makes it 0. `Pass` when score ≥ `pass`, `Marginal` when ≥ `marginal`, else
//! `Fail`.

mod classify;
mod config;

use serde::Serialize;

pub use config::{
    ClassifierConfig, DEFAULT_CONF_LEVEL, DEFAULT_OUTLIER_FACTOR, Direction, EffectSize, JudgeParams, MetricConfig,
    NanStrategy, OutlierStrategy, Outliers, ScoreThresholds, ValidJudgeParams,
};

/// The samples of one metric: canary and baseline values over the analysis window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricInput<'a> {
    /// The name of a configured metric ([`MetricConfig::name`]).
    pub name: &'a str,
    /// The canary's samples.
    pub canary: &'a [f64],
    /// The baseline's samples.
    pub baseline: &'a [f64],
}

/// A metric's classification, Kayenta's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Verdict {
    /// No significant difference, or one the configuration tolerates.
    #[serde(rename = "PASS")]
    Pass,
    /// The canary is higher.
    #[serde(rename = "HIGH")]
    High,
    /// The canary is lower.
    #[serde(rename = "LOW")]
    Low,
    /// A sample is empty.
    #[serde(rename = "NODATA")]
    NoData,
}

/// The judgement of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricVerdict {
    pub name: String,
    /// The final classification, after `direction` and `effectSize`.
    pub classification: Verdict,
    /// The classification from the test alone, before `direction` and `effectSize`.
    pub raw_classification: Verdict,
    /// mean(canary) / mean(baseline); `None` without data or with a zero baseline mean.
    pub effect_size: Option<f64>,
    /// Two-sided Mann-Whitney p-value.
    pub p_value: Option<f64>,
    /// Hodges-Lehmann shift canary − baseline.
    pub hl_estimate: Option<f64>,
    /// Lower end of the shift's interval at `confLevel`.
    pub ci_lower: Option<f64>,
    /// Upper end of the shift's interval at `confLevel`.
    pub ci_upper: Option<f64>,
    /// Canary values judged (after NaN strategy and outlier removal).
    pub n_canary: usize,
    /// Baseline values judged.
    pub n_baseline: usize,
    /// Canary NaN removed or replaced.
    pub nan_canary: usize,
    /// Baseline NaN removed or replaced.
    pub nan_baseline: usize,
    /// Canary outliers removed.
    pub outliers_canary: usize,
    /// Baseline outliers removed.
    pub outliers_baseline: usize,
    /// Whether this metric fails the whole canary (a `critical` metric beyond its critical
    /// bound, or without data).
    pub critical_failure: bool,
    /// The metric's `mustHaveData`.
    pub must_have_data: bool,
    /// A `NODATA` that counts as a failed metric in its groups (`mustHaveData`; Kayenta's
    /// `NodataFailMetric`).
    pub no_data_fails_metric: bool,
    /// Why, in words.
    pub reason: String,
}

/// The score of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupScore {
    pub name: String,
    /// Its configured weight (the weights sum to 100).
    pub weight: f64,
    /// Metrics `PASS`.
    pub passed: usize,
    /// Metrics judged (not `NODATA`, or `NODATA` with `mustHaveData`).
    pub judged: usize,
    /// 100 × passed / judged; `None` when nothing was judged.
    pub score: Option<f64>,
}

/// The canary's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Classification {
    Pass,
    Marginal,
    Fail,
}

/// The judge's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeReport {
    /// 0–100.
    pub score: f64,
    pub classification: Classification,
    /// One per configured metric, in configuration order.
    pub metrics: Vec<MetricVerdict>,
    pub groups: Vec<GroupScore>,
    /// Names of the metrics that failed the canary on their own.
    pub critical_failures: Vec<String>,
    /// Input names that match no configured metric (ignored).
    pub unknown_inputs: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// Kayenta's `WeightedSumScorer.NODATA_THRESHOLD`: this share of `NODATA` metrics fails the canary.
pub const NODATA_THRESHOLD_PERCENT: usize = 50;

/// Judges a canary against its baseline. A configured metric with no input is `NODATA`; an
/// input naming no configured metric is ignored and listed; of duplicate inputs the first counts.
pub fn judge(params: &ValidJudgeParams, inputs: &[MetricInput<'_>]) -> JudgeReport {
    let p = params.params();
    let metrics: Vec<MetricVerdict> = p
        .metrics
        .iter()
        .map(|m| match inputs.iter().find(|i| i.name == m.name) {
            Some(i) => classify::classify(m, p.conf_level, p.tolerance, i.canary, i.baseline),
            None => {
                let mut v = classify::classify(m, p.conf_level, p.tolerance, &[], &[]);
                v.reason = format!("no samples were given for metric `{}`; {}", m.name, v.reason);
                v
            }
        })
        .collect();
    let unknown_inputs =
        inputs.iter().filter(|i| !p.metrics.iter().any(|m| m.name == i.name)).map(|i| i.name.to_string()).collect();

    let groups: Vec<GroupScore> = params
        .group_weights()
        .iter()
        .map(|(g, w)| {
            let mut passed = 0;
            let mut judged = 0;
            for (m, v) in p.metrics.iter().zip(&metrics) {
                // Kayenta counts PASS, HIGH, LOW and NodataFailMetric; NODATA is not judged.
                if !m.groups.contains(g) || (v.classification == Verdict::NoData && !v.no_data_fails_metric) {
                    continue;
                }
                judged += 1;
                passed += usize::from(v.classification == Verdict::Pass);
            }
            let score = (judged > 0).then(|| 100.0 * passed as f64 / judged as f64);
            GroupScore { name: g.clone(), weight: *w, passed, judged, score }
        })
        .collect();

    let critical_failures: Vec<String> =
        metrics.iter().filter(|v| v.critical_failure).map(|v| v.name.clone()).collect();
    let nodata = metrics.iter().filter(|v| v.classification == Verdict::NoData && !v.no_data_fails_metric).count();
    let t = p.score_thresholds;
    let (score, classification, reason) = if !critical_failures.is_empty() {
        (0.0, Classification::Fail, format!("critical failure of {}", critical_failures.join(", ")))
    } else if 100 * nodata >= NODATA_THRESHOLD_PERCENT * metrics.len() {
        let reason = format!("{nodata} of {} metrics are NODATA ({NODATA_THRESHOLD_PERCENT}% or more)", metrics.len());
        (0.0, Classification::Fail, reason)
    } else {
        // A group with no judged metric counts as 100, as in Kayenta; the score is rounded to
        // two decimals (half up).
        let weighted: f64 = groups.iter().map(|g| g.score.unwrap_or(100.0) * g.weight / 100.0).sum();
        let score = ((weighted * 100.0).round() / 100.0).clamp(0.0, 100.0);
        let class = if score >= t.pass {
            Classification::Pass
        } else if score >= t.marginal {
            Classification::Marginal
        } else {
            Classification::Fail
        };
        (score, class, format!("score {score:.2} against pass {} and marginal {}", t.pass, t.marginal))
    };
    JudgeReport { score, classification, metrics, groups, critical_failures, unknown_inputs, reason }
}
