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

/// Drops the values outside the Tukey fences [Q1 − k·IQR, Q3 + k·IQR] of the sample's finite
/// values (quartiles as `numpy.quantile`, type 7). ±Inf always lies outside. A sample with no
/// finite value is kept whole. Returns the values kept and the number removed.
pub(super) fn remove_outliers(values: &[f64], factor: f64) -> (Vec<f64>, usize) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (Ok(q1), Ok(q3)) = (quantile(&finite, 0.25), quantile(&finite, 0.75)) else {
        return (values.to_vec(), 0);
    };
    let iqr = q3 - q1;
    let (lo, hi) = (q1 - factor * iqr, q3 + factor * iqr);
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

/// Classifies one metric. Never panics; every missing value becomes `NODATA` or `None`.
pub(super) fn classify(cfg: &MetricConfig, conf_level: f64, canary: &[f64], baseline: &[f64]) -> MetricVerdict {
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
        reason: String::new(),
    };
    if c.is_empty() || b.is_empty() {
        let side = if c.is_empty() { "canary" } else { "baseline" };
        v.critical_failure = cfg.must_have_data;
        v.reason = format!("the {side} sample is empty after the nan strategy and outlier removal");
        if cfg.must_have_data {
            v.reason.push_str("; mustHaveData fails the canary");
        }
        return v;
    }
    v.effect_size = ratio_of_means(&c, &b).ok().map(|r| r.ratio);
    if identical(&c, &b) {
        v.classification = Verdict::Pass;
        v.raw_classification = Verdict::Pass;
        v.p_value = Some(1.0);
        v.reason = "the canary and baseline samples are identical".into();
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
            if hl.lower > 0.0 {
                Verdict::High
            } else if hl.upper < 0.0 {
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
    let ratio = v.effect_size.map_or_else(|| "unknown".to_string(), |r| format!("{r:.4}"));
    let (class, reason) = match (raw, cfg.direction) {
        (Verdict::Pass, _) => (Verdict::Pass, format!("no shift at confidence {conf_level}")),
        (Verdict::High, Direction::Decrease) => (Verdict::Pass, "an increase, ignored: direction is decrease".into()),
        (Verdict::Low, Direction::Increase) => (Verdict::Pass, "a decrease, ignored: direction is increase".into()),
        (Verdict::High, _) if v.effect_size.is_some_and(|r| r <= e.allowed_increase) => {
            (Verdict::Pass, format!("an increase within allowedIncrease {}: ratio {ratio}", e.allowed_increase))
        }
        (Verdict::Low, _) if v.effect_size.is_some_and(|r| r >= e.allowed_decrease) => {
            (Verdict::Pass, format!("a decrease within allowedDecrease {}: ratio {ratio}", e.allowed_decrease))
        }
        (Verdict::High, _) => (Verdict::High, format!("the canary is higher: ratio of means {ratio}")),
        (Verdict::Low, _) => (Verdict::Low, format!("the canary is lower: ratio of means {ratio}")),
        (Verdict::NoData, _) => (Verdict::NoData, "no data".into()),
    };
    v.classification = class;
    v.reason = reason;
    if cfg.critical {
        // An unknown ratio (zero baseline mean) counts as beyond the critical bound.
        let beyond = match class {
            Verdict::High => v.effect_size.is_none_or(|r| r >= e.critical_increase),
            Verdict::Low => v.effect_size.is_none_or(|r| r <= e.critical_decrease),
            Verdict::Pass | Verdict::NoData => false,
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
    fn judge_outlier_fences_use_factor_times_iqr() {
        // -100, 1..=9, 100: Q1 = 2.5, Q3 = 7.5, IQR = 5, fences [2.5 - 15, 7.5 + 15] = [-12.5, 22.5].
        let mut xs: Vec<f64> = (1..=9).map(f64::from).collect();
        xs.extend([-100.0, 100.0]);
        let (kept, removed) = remove_outliers(&xs, 3.0);
        assert_eq!((kept.len(), removed), (9, 2));
        // With factor 20 the fences are [-97.5, 107.5]: only -100 goes.
        let (_, removed) = remove_outliers(&xs, 20.0);
        assert_eq!(removed, 1);
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
