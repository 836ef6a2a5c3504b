//! The classification of one metric (Kayenta's `MannWhitneyClassifier`).

use omen_features::stats::{Alternative, hodges_lehmann, mann_whitney_u, quantile, ratio_of_means};

use super::config::{Direction, MetricConfig, NanStrategy, OutlierStrategy};
use super::{MetricVerdict, Verdict};

/// Applies the NaN strategy: the values left and the number of NaN removed or replaced.
fn apply_nan_strategy(values: &[f64], strategy: NanStrategy) -> (Vec<f64>, usize) {
    let nan = values.iter().filter(|v| v.is_nan()).count();
    let kept = match strategy {
        NanStrategy::Remove => values.iter().copied().filter(|v| !v.is_nan()).collect(),
        NanStrategy::Replace => values.iter().map(|&v| if v.is_nan() { 0.0 } else { v }).collect(),
    };
    (kept, nan)
}

/// Drops the values outside the fences of Kayenta's `IQRDetector(factor, reduceSensitivity =
/// true)`: [min(P1, Q1 − k·IQR), max(P99, Q3 + k·IQR)], every percentile of the sample's finite
/// values by R-7 interpolation (`numpy.quantile`'s default, as Kayenta's commons-math
/// `Percentile` with `EstimationType.R_7`). ±Inf always lies outside. A sample with no finite
/// value is kept whole. Returns the values kept and the number removed.
pub(super) fn remove_outliers(values: &[f64], factor: f64) -> (Vec<f64>, usize) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let q = |p: f64| quantile(&finite, p);
    let (Ok(p01), Ok(q1), Ok(q3), Ok(p99)) = (q(0.01), q(0.25), q(0.75), q(0.99)) else {
        return (values.to_vec(), 0);
    };
    let iqr = q3 - q1;
    let (lo, hi) = ((q1 - factor * iqr).min(p01), (q3 + factor * iqr).max(p99));
    let kept: Vec<f64> = values.iter().copied().filter(|&v| v >= lo && v <= hi).collect();
    let removed = values.len() - kept.len();
    (kept, removed)
}

/// Whether two samples hold the same multiset of values.
fn identical(a: &[f64], b: &[f64]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    a.iter().zip(&b).all(|(x, y)| x == y)
}

/// Kayenta's `meanRatio`: mean(canary) / mean(baseline), `None` (Kayenta's NaN) when either
/// mean is 0 or the ratio is not finite.
fn mean_ratio(canary: &[f64], baseline: &[f64]) -> Option<f64> {
    let r = ratio_of_means(canary, baseline).ok()?;
    (r.canary != 0.0 && r.ratio.is_finite()).then_some(r.ratio)
}

/// Classifies one metric as Kayenta's `MannWhitneyClassifier.classify` does. Never panics.
pub(super) fn classify(
    cfg: &MetricConfig,
    conf_level: f64,
    tolerance: f64,
    canary: &[f64],
    baseline: &[f64],
) -> MetricVerdict {
    let (c, nan_canary) = apply_nan_strategy(canary, cfg.nan_strategy);
    let (b, nan_baseline) = apply_nan_strategy(baseline, cfg.nan_strategy);
    let ((c, outliers_canary), (b, outliers_baseline)) = match cfg.outliers.strategy {
        OutlierStrategy::Keep => ((c, 0), (b, 0)),
        OutlierStrategy::Remove => {
            (remove_outliers(&c, cfg.outliers.outlier_factor), remove_outliers(&b, cfg.outliers.outlier_factor))
        }
    };
    let mut v = MetricVerdict {
        name: cfg.name.clone(),
        classification: Verdict::NoData,
        raw_classification: Verdict::NoData,
        effect_size: None,
        p_value: None,
        hl_estimate: None,
        ci_lower: None,
        ci_upper: None,
        n_canary: c.len(),
        n_baseline: b.len(),
        nan_canary,
        nan_baseline,
        outliers_canary,
        outliers_baseline,
        critical_failure: false,
        must_have_data: cfg.must_have_data,
        no_data_fails_metric: false,
        reason: String::new(),
    };
    if c.is_empty() || b.is_empty() {
        let side = if c.is_empty() { "canary" } else { "baseline" };
        if cfg.nan_strategy == NanStrategy::Replace {
            // Kayenta passes a metric without data when NaN are replaced.
            v.classification = Verdict::Pass;
            v.raw_classification = Verdict::Pass;
            v.reason = format!("the {side} sample is empty; nanStrategy replace passes it");
            return v;
        }
        v.reason = format!("the {side} sample is empty after the nan strategy and outlier removal");
        if cfg.critical {
            v.critical_failure = true;
            v.reason.push_str("; a critical metric without data fails the canary");
        } else if cfg.must_have_data {
            v.no_data_fails_metric = true;
            v.reason.push_str("; mustHaveData counts it as a failed metric");
        }
        return v;
    }
    v.effect_size = mean_ratio(&c, &b);
    if identical(&c, &b) {
        v.classification = Verdict::Pass;
        v.raw_classification = Verdict::Pass;
        v.p_value = Some(1.0);
        v.reason = "the canary and baseline samples are identical".into();
        return v;
    }
    if c.iter().chain(&b).all(|x| *x == c[0]) {
        v.classification = Verdict::Pass;
        v.raw_classification = Verdict::Pass;
        v.p_value = Some(1.0);
        v.reason = "every canary and baseline value is the same".into();
        return v;
    }
    let mw = match mann_whitney_u(&c, &b, Alternative::TwoSided) {
        Ok(mw) => mw,
        Err(e) => {
            v.reason = format!("no mann-whitney test: {e}");
            return v;
        }
    };
    v.p_value = Some(mw.p_value);
    let raw = match hodges_lehmann(&c, &b, conf_level) {
        Ok(hl) => {
            v.hl_estimate = Some(hl.estimate);
            v.ci_lower = Some(hl.lower);
            v.ci_upper = Some(hl.upper);
            let bound = tolerance * hl.estimate.abs();
            if hl.lower > bound {
                Verdict::High
            } else if hl.upper < -bound {
                Verdict::Low
            } else {
                Verdict::Pass
            }
        }
        // Infinite values: no shift interval, so decide on the p-value and the side U favours.
        Err(_) if mw.p_value < 1.0 - conf_level => {
            if mw.u1 > mw.u2 {
                Verdict::High
            } else {
                Verdict::Low
            }
        }
        Err(_) => Verdict::Pass,
    };
    v.raw_classification = raw;
    let e = cfg.effect_size;
    let effect = v.effect_size;
    let ratio = effect.map_or_else(|| "unknown".to_string(), |r| format!("{r:.4}"));
    // An effect size that cannot be computed does not hold a verdict back (Kayenta's NaN rule).
    let at_least = |bound: f64| effect.is_none_or(|r| r >= bound);
    let at_most = |bound: f64| effect.is_none_or(|r| r <= bound);
    let (class, reason) = match (raw, cfg.direction) {
        (Verdict::Pass, _) => {
            (Verdict::Pass, format!("no shift beyond ±{tolerance}×|estimate| at confidence {conf_level}"))
        }
        (Verdict::High, Direction::Decrease) => (Verdict::Pass, "an increase, ignored: direction is decrease".into()),
        (Verdict::Low, Direction::Increase) => (Verdict::Pass, "a decrease, ignored: direction is increase".into()),
        (Verdict::High, _) if !at_least(e.allowed_increase) => {
            (Verdict::Pass, format!("an increase below allowedIncrease {}: ratio {ratio}", e.allowed_increase))
        }
        (Verdict::Low, _) if !at_most(e.allowed_decrease) => {
            (Verdict::Pass, format!("a decrease above allowedDecrease {}: ratio {ratio}", e.allowed_decrease))
        }
        (Verdict::High, _) => (Verdict::High, format!("the canary is higher: ratio of means {ratio}")),
        (Verdict::Low, _) => (Verdict::Low, format!("the canary is lower: ratio of means {ratio}")),
        (Verdict::NoData, _) => (Verdict::NoData, "no data".into()),
    };
    v.classification = class;
    v.reason = reason;
    if cfg.critical {
        let beyond = match class {
            Verdict::High => at_least(e.critical_increase),
            Verdict::Low => at_most(e.critical_decrease),
            Verdict::Pass => false,
            // A test that could not run (Kayenta's Error) on a critical metric fails the canary.
            Verdict::NoData => true,
        };
        if beyond {
            v.critical_failure = true;
            v.reason.push_str("; a critical metric failed beyond its critical effect size");
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_outlier_fences_use_factor_times_iqr_widened_to_p1_and_p99() {
        // 1..=200 and one 10_000 (R-7, 201 values): Q1 = 51, Q3 = 151, IQR = 100; P99 = 199 < Q3 + 3 IQR.
        let mut xs: Vec<f64> = (1..=200).map(f64::from).collect();
        xs.push(10_000.0);
        let (kept, removed) = remove_outliers(&xs, 3.0);
        assert_eq!((kept.len(), removed), (200, 1));
        // A factor so small that the IQR fences cut the sample: P1 and P99 widen them, so only
        // the values beyond P1 and P99 go (2 on each side of 1..=201 minus the big one).
        let (_, removed) = remove_outliers(&xs, 0.01);
        // P1 = 3, P99 = 199 (R-7 on 201 values): 1, 2 below; 200, 10_000 above.
        assert_eq!(removed, 4);
    }

    #[test]
    fn judge_outliers_drop_infinities_and_keep_all_nonfinite_samples() {
        let (kept, removed) = remove_outliers(&[1.0, 2.0, f64::INFINITY], 3.0);
        assert_eq!((kept, removed), (vec![1.0, 2.0], 1));
        let (kept, removed) = remove_outliers(&[f64::INFINITY], 3.0);
        assert_eq!((kept.len(), removed), (1, 0));
    }

    #[test]
    fn judge_nan_strategy_replace_makes_zero() {
        let (v, n) = apply_nan_strategy(&[f64::NAN, 2.0], NanStrategy::Replace);
        assert_eq!((v, n), (vec![0.0, 2.0], 1));
        let (v, n) = apply_nan_strategy(&[f64::NAN, 2.0], NanStrategy::Remove);
        assert_eq!((v, n), (vec![2.0], 1));
    }
}
