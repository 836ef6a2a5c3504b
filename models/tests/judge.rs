//! Worked examples of the `mann-whitney` reference judge (Kayenta's NetflixACAJudge semantics).
//! The last test compares a whole judgement with an independent implementation in Python
//! (`judge_reference.py`, NumPy and SciPy); the others test the rules one by one.

use omen_features::stats::{Alternative, mann_whitney_u, ratio_of_means};
use omen_models::Error;
use omen_models::judge::{
    Classification, Direction, JudgeParams, MetricConfig, MetricInput, OutlierStrategy, Verdict, judge,
};
use proptest::prelude::*;

const ONE_METRIC: &str = r#"
[classifier.groupWeights]
latency = 100

[scoreThresholds]
pass = 95
marginal = 75

[[metrics]]
name = "latency"
groups = ["latency"]
"#;

fn params(toml_text: &str) -> JudgeParams {
    toml::from_str(toml_text).unwrap()
}

/// One metric `latency` in group `latency`, edited by `f`.
fn one(f: impl FnOnce(&mut MetricConfig)) -> JudgeParams {
    let mut p = params(ONE_METRIC);
    f(&mut p.metrics[0]);
    p
}

fn run(p: JudgeParams, canary: &[f64], baseline: &[f64]) -> omen_models::judge::JudgeReport {
    let valid = p.check().unwrap();
    judge(&valid, &[MetricInput { name: "latency", canary, baseline }])
}

/// 30 baseline values 100..=109 (ties), and the canary 5 higher.
fn shifted() -> (Vec<f64>, Vec<f64>) {
    let baseline: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 10)).collect();
    let canary: Vec<f64> = baseline.iter().map(|v| v + 5.0).collect();
    (canary, baseline)
}

#[test]
fn clear_increase_on_increase_metric_is_high() {
    let (c, b) = shifted();
    let r = run(one(|m| m.direction = Direction::Increase), &c, &b);
    let v = &r.metrics[0];
    assert_eq!(v.classification, Verdict::High, "{}", v.reason);
    let p = mann_whitney_u(&c, &b, Alternative::TwoSided).unwrap().p_value;
    assert_eq!(v.p_value, Some(p));
    assert!(p < 0.02, "{p}");
    assert_eq!(v.hl_estimate, Some(5.0));
    assert!(v.ci_lower.unwrap() > 0.0);
    // mean 109.5 / 104.5
    assert!((v.effect_size.unwrap() - 109.5 / 104.5).abs() < 1e-12);
    assert_eq!((v.n_canary, v.n_baseline), (30, 30));
    assert_eq!((r.score, r.classification), (0.0, Classification::Fail));
    assert!(r.critical_failures.is_empty());
}

#[test]
fn increase_on_decrease_metric_is_pass() {
    let (c, b) = shifted();
    let r = run(one(|m| m.direction = Direction::Decrease), &c, &b);
    assert_eq!(r.metrics[0].raw_classification, Verdict::High);
    assert_eq!(r.metrics[0].classification, Verdict::Pass);
    assert_eq!((r.score, r.classification), (100.0, Classification::Pass));
    // And the decrease on an increase metric: canary and baseline swapped.
    let r = run(one(|m| m.direction = Direction::Increase), &b, &c);
    assert_eq!((r.metrics[0].raw_classification, r.metrics[0].classification), (Verdict::Low, Verdict::Pass));
}

#[test]
fn effect_within_allowed_increase_is_pass() {
    let (c, b) = shifted();
    let ratio = 109.5 / 104.5; // ≈ 1.0478
    let r = run(one(|m| m.effect_size.allowed_increase = 1.05), &c, &b);
    assert_eq!(r.metrics[0].classification, Verdict::Pass, "{}", r.metrics[0].reason);
    let r = run(one(|m| m.effect_size.allowed_increase = 1.04), &c, &b);
    assert_eq!(r.metrics[0].classification, Verdict::High);
    assert!(ratio > 1.04 && ratio < 1.05);
    // allowedDecrease on the mirrored case.
    let r = run(one(|m| m.effect_size.allowed_decrease = 0.95), &b, &c);
    assert_eq!(r.metrics[0].classification, Verdict::Pass);
}

#[test]
fn critical_metric_failing_scores_zero() {
    let text = r#"
        [classifier.groupWeights]
        latency = 60
        errors = 40
        [scoreThresholds]
        pass = 50
        marginal = 25
        [[metrics]]
        name = "latency"
        groups = ["latency"]
        critical = true
        [[metrics]]
        name = "errors"
        groups = ["errors"]
    "#;
    let (c, b) = shifted();
    let valid = params(text).check().unwrap();
    let inputs = [MetricInput { name: "latency", canary: &c, baseline: &b }, MetricInput {
        name: "errors",
        canary: &b,
        baseline: &b,
    }];
    let r = judge(&valid, &inputs);
    assert!(r.metrics[0].critical_failure);
    assert_eq!(r.critical_failures, vec!["latency".to_string()]);
    // 40 without the critical rule, above marginal: the critical failure forces 0 and FAIL.
    assert_eq!((r.score, r.classification), (0.0, Classification::Fail));
    // criticalIncrease above the ratio: a plain HIGH, score 40 (errors passes), marginal.
    let mut p = params(text);
    p.metrics[0].effect_size.critical_increase = 1.5;
    let r = judge(&p.check().unwrap(), &inputs);
    assert_eq!(r.metrics[0].classification, Verdict::High);
    assert!(!r.metrics[0].critical_failure);
    assert_eq!((r.score, r.classification), (40.0, Classification::Marginal));
}

#[test]
fn weighted_group_score_and_thresholds() {
    // latency (60): p50 HIGH, p99 PASS → 50; errors (40): rate PASS, count NODATA (excluded) → 100.
    // Score 0.6·50 + 0.4·100 = 70.
    let text = |marginal: u32| {
        format!(
            r#"
        classifier = {{ groupWeights = {{ latency = 60, errors = 40 }} }}
        scoreThresholds = {{ pass = 95, marginal = {marginal} }}
        [[metrics]]
        name = "p50"
        groups = ["latency"]
        [[metrics]]
        name = "p99"
        groups = ["latency"]
        [[metrics]]
        name = "rate"
        groups = ["errors"]
        [[metrics]]
        name = "count"
        groups = ["errors"]
    "#
        )
    };
    let (c, b) = shifted();
    let inputs = [
        MetricInput { name: "p50", canary: &c, baseline: &b },
        MetricInput { name: "p99", canary: &b, baseline: &b },
        MetricInput { name: "rate", canary: &c[..10], baseline: &c[10..20] },
        MetricInput { name: "count", canary: &[], baseline: &b },
        MetricInput { name: "unknown", canary: &b, baseline: &b },
    ];
    let r = judge(&params(&text(75)).check().unwrap(), &inputs);
    let classes: Vec<Verdict> = r.metrics.iter().map(|m| m.classification).collect();
    assert_eq!(classes, [Verdict::High, Verdict::Pass, Verdict::Pass, Verdict::NoData]);
    assert_eq!(r.groups.iter().map(|g| (g.passed, g.judged)).collect::<Vec<_>>(), [(1, 1), (1, 2)]); // errors, latency
    assert!((r.score - 70.0).abs() < 1e-9, "{}", r.score);
    assert_eq!(r.classification, Classification::Fail);
    assert_eq!(r.unknown_inputs, ["unknown"]);
    let r = judge(&params(&text(70)).check().unwrap(), &inputs);
    assert_eq!(r.classification, Classification::Marginal);
}

#[test]
fn identical_series_and_ties_pass() {
    let b: Vec<f64> = (0..20).map(|i| f64::from(i % 4)).collect();
    let r = run(one(|_| {}), &b, &b);
    assert_eq!(r.metrics[0].classification, Verdict::Pass);
    assert_eq!(r.metrics[0].p_value, Some(1.0));
    assert_eq!((r.score, r.classification), (100.0, Classification::Pass));
    // Constant series of different lengths: one single value, PASS before any test (Kayenta).
    let r = run(one(|_| {}), &[5.0; 7], &[5.0; 12]);
    assert_eq!(r.metrics[0].classification, Verdict::Pass);
    assert_eq!(r.metrics[0].p_value, Some(1.0));
    assert_eq!((r.metrics[0].ci_lower, r.metrics[0].ci_upper), (None, None));
    // Two different constants: the shift is exact, its interval [d, d] clears the band: HIGH.
    let r = run(one(|_| {}), &[6.0; 7], &[5.0; 12]);
    assert_eq!(r.metrics[0].classification, Verdict::High);
    assert_eq!((r.metrics[0].ci_lower, r.metrics[0].ci_upper), (Some(1.0), Some(1.0)));
    // Heavily tied, same distribution in another order and size: no shift.
    let c: Vec<f64> = (0..24).map(|i| f64::from((i * 3) % 4)).collect();
    let r = run(one(|_| {}), &c, &b);
    let p = mann_whitney_u(&c, &b, Alternative::TwoSided).unwrap().p_value;
    assert_eq!(r.metrics[0].p_value, Some(p));
    assert_eq!(r.metrics[0].classification, Verdict::Pass);
    // Ties with a shift of 10: HIGH.
    let c: Vec<f64> = b.iter().map(|v| v + 10.0).collect();
    assert_eq!(run(one(|_| {}), &c, &b).metrics[0].classification, Verdict::High);
}

#[test]
fn empty_canary_is_nodata_and_excluded() {
    let b = [1.0, 2.0, 3.0];
    let r = run(one(|_| {}), &[], &b);
    assert_eq!(r.metrics[0].classification, Verdict::NoData);
    assert!(!r.metrics[0].critical_failure);
    assert_eq!(r.groups[0].judged, 0);
    assert_eq!((r.score, r.classification), (0.0, Classification::Fail));
    assert!(r.reason.contains("NODATA (50% or more)"), "{}", r.reason);
    // NaN-only canary with nanStrategy remove: NODATA too; with replace: zeros, judged.
    let r = run(one(|_| {}), &[f64::NAN, f64::NAN], &b);
    assert_eq!((r.metrics[0].classification, r.metrics[0].nan_canary), (Verdict::NoData, 2));
    let r = run(one(|m| m.nan_strategy = omen_models::judge::NanStrategy::Replace), &[f64::NAN; 3], &b);
    assert_eq!(r.metrics[0].n_canary, 3);
    assert_ne!(r.metrics[0].classification, Verdict::NoData);
}

#[test]
fn must_have_data_counts_as_a_failed_metric_and_critical_without_data_fails_the_canary() {
    // Two metrics in one group: `latency` has no canary data, `errors` passes.
    let two = |f: &dyn Fn(&mut MetricConfig)| {
        let mut p = params(&format!("{ONE_METRIC}\n[[metrics]]\nname = \"errors\"\ngroups = [\"latency\"]\n"));
        f(&mut p.metrics[0]);
        p.check().unwrap()
    };
    let b = [1.0, 2.0, 3.0];
    let inputs = [MetricInput { name: "latency", canary: &[], baseline: &b }, MetricInput { name: "errors", canary: &b, baseline: &b }];
    // Plain NODATA: not judged; the group is errors alone, 100.
    let r = judge(&two(&|_| {}), &inputs);
    assert_eq!((r.metrics[0].classification, r.groups[0].judged, r.score), (Verdict::NoData, 1, 0.0));
    assert!(r.reason.contains("NODATA"), "1 of 2 is 50 %: {}", r.reason);
    // mustHaveData: Kayenta's NodataFailMetric, a failed metric of its group; not a critical failure.
    let r = judge(&two(&|m| m.must_have_data = true), &inputs);
    let v = &r.metrics[0];
    assert_eq!((v.classification, v.no_data_fails_metric, v.critical_failure), (Verdict::NoData, true, false));
    assert_eq!((r.groups[0].judged, r.groups[0].passed, r.score), (2, 1, 50.0));
    // critical: no data fails the canary.
    let r = judge(&two(&|m| m.critical = true), &inputs);
    assert!(r.metrics[0].critical_failure);
    assert_eq!((r.score, r.classification), (0.0, Classification::Fail));
    // nanStrategy replace: a metric without data passes (Kayenta).
    let r = judge(&two(&|m| m.nan_strategy = omen_models::judge::NanStrategy::Replace), &inputs);
    assert_eq!((r.metrics[0].classification, r.score), (Verdict::Pass, 100.0));
}

#[test]
fn outlier_removal_changes_the_verdict() {
    // The shifted canary plus one spike: the test still says HIGH; the spike drives the ratio of
    // means to ≈ 4.1, beyond allowedIncrease 1.1. Removing outliers (fence Q3 + 3·IQR ≈ 123)
    // drops the spike, the ratio is 109.5/104.5 ≈ 1.048, within 1.1: PASS.
    let (mut c, b) = shifted();
    c.push(10_000.0);
    let keep = run(one(|m| m.effect_size.allowed_increase = 1.1), &c, &b);
    let v = &keep.metrics[0];
    assert_eq!((v.raw_classification, v.classification), (Verdict::High, Verdict::High));
    assert!((v.effect_size.unwrap() - ratio_of_means(&c, &b).unwrap().ratio).abs() < 1e-12);
    assert!(v.effect_size.unwrap() > 4.0);
    let remove = run(
        one(|m| {
            m.effect_size.allowed_increase = 1.1;
            m.outliers.strategy = OutlierStrategy::Remove;
        }),
        &c,
        &b,
    );
    let v = &remove.metrics[0];
    assert_eq!((v.outliers_canary, v.outliers_baseline, v.n_canary), (1, 0, 30));
    assert_eq!((v.raw_classification, v.classification), (Verdict::High, Verdict::Pass), "{}", v.reason);
}

#[test]
fn group_weights_not_summing_to_100_is_an_error() {
    let mut p = params(ONE_METRIC);
    p.classifier.group_weights.insert("latency".into(), 90.0);
    let e = p.check().unwrap_err();
    assert_eq!(e.field(), "classifier.groupWeights");
    assert!(e.to_string().contains("sum to 100"), "{e}");
    let mut p = params(ONE_METRIC);
    p.classifier.group_weights.insert("errors".into(), 0.0);
    p.metrics[0].groups.push("cpu".into());
    assert_eq!(p.check().unwrap_err().field(), "classifier.groupWeights");
}

#[test]
fn pass_below_marginal_is_an_error() {
    let mut p = params(ONE_METRIC);
    p.score_thresholds.pass = 50.0;
    p.score_thresholds.marginal = 75.0;
    let e = p.check().unwrap_err();
    assert!(matches!(&e, Error::InvalidParam { field, .. } if field == "scoreThresholds"));
    assert_eq!(e.to_string(), "invalid `scoreThresholds`: pass (50) must not be below marginal (75)");
}

#[test]
fn other_fields_are_checked_by_name() {
    let cases: [(fn(&mut JudgeParams), &str); 6] = [
        (|p| p.conf_level = 1.0, "confLevel"),
        (|p| p.metrics[0].effect_size.allowed_increase = 0.9, "metrics[0].effectSize.allowedIncrease"),
        (|p| p.metrics[0].effect_size.critical_decrease = 1.2, "metrics[0].effectSize.criticalDecrease"),
        (|p| p.metrics[0].outliers.outlier_factor = f64::NAN, "metrics[0].outliers.outlierFactor"),
        (|p| p.metrics[0].groups.clear(), "metrics[0].groups"),
        (|p| p.score_thresholds.pass = 101.0, "scoreThresholds.pass"),
    ];
    for (edit, field) in cases {
        let mut p = params(ONE_METRIC);
        edit(&mut p);
        let e = p.check().unwrap_err();
        assert_eq!(e.field(), field, "{e}");
        assert!(e.to_string().starts_with("invalid `"), "{e}");
    }
}

#[test]
fn config_from_toml_with_kayenta_field_names() {
    let p = params(
        r#"
        confLevel = 0.95
        [classifier.groupWeights]
        latency = 70
        errors = 30
        [scoreThresholds]
        pass = 90
        marginal = 60
        [[metrics]]
        name = "latency_p99"
        groups = ["latency"]
        direction = "increase"
        nanStrategy = "replace"
        critical = true
        mustHaveData = true
        effectSize = { allowedIncrease = 1.1, allowedDecrease = 0.9, criticalIncrease = 1.5, criticalDecrease = 0.5 }
        outliers = { strategy = "remove", outlierFactor = 2.5 }
        [[metrics]]
        name = "error_rate"
        groups = ["errors"]
        "#,
    );
    assert_eq!(p.conf_level, 0.95);
    let m = &p.metrics[0];
    assert_eq!(m.direction, Direction::Increase);
    assert!(m.critical && m.must_have_data);
    assert_eq!(m.effect_size.allowed_increase, 1.1);
    assert_eq!(m.effect_size.critical_decrease, 0.5);
    assert_eq!((m.outliers.strategy, m.outliers.outlier_factor), (OutlierStrategy::Remove, 2.5));
    // Kayenta's defaults.
    let d = &p.metrics[1];
    assert_eq!(d.direction, Direction::Either);
    assert_eq!(d.effect_size.allowed_increase, 1.0);
    assert_eq!((d.outliers.strategy, d.outliers.outlier_factor), (OutlierStrategy::Keep, 3.0));
    assert_eq!(params(ONE_METRIC).conf_level, 0.98);
    let valid = p.check().unwrap();
    assert_eq!(valid.group_weights().len(), 2);
    // Unknown fields are refused, so a misspelt Kayenta name does not pass silently.
    let bad = ONE_METRIC.replace("groups =", "mustHaveDatta = true\ngroups =");
    assert!(toml::from_str::<JudgeParams>(&bad).is_err());
    // The report serializes with Kayenta's verdict names. Without input: `latency_p99` replaces
    // NaN, so its missing data passes (Kayenta); `error_rate` removes them: NODATA, half the
    // metrics, so the canary fails.
    let r = judge(&valid, &[]);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["metrics"][0]["classification"], "PASS");
    assert_eq!(json["metrics"][1]["classification"], "NODATA");
    assert_eq!(json["classification"], "FAIL");
}

#[test]
fn missing_group_weights_mean_equal_weights() {
    let p = params(
        r#"
        scoreThresholds = { pass = 90, marginal = 50 }
        [[metrics]]
        name = "a"
        groups = ["x"]
        [[metrics]]
        name = "b"
        groups = ["y"]
        "#,
    );
    let valid = p.check().unwrap();
    assert_eq!(valid.group_weights(), [("x".to_string(), 50.0), ("y".to_string(), 50.0)]);
    let (c, b) = shifted();
    let r =
        judge(&valid, &[MetricInput { name: "a", canary: &c, baseline: &b }, MetricInput { name: "b", canary: &b, baseline: &b }]);
    assert_eq!((r.score, r.classification), (50.0, Classification::Marginal));
}

fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            4 => -1e3f64..1e3,
            1 => prop::sample::select(vec![0.0, 1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, -f64::MAX]),
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn judge_never_panics_and_scores_in_range(
        c in sample(), b in sample(), c2 in sample(), b2 in sample(),
        dir in 0u8..3, remove in any::<bool>(), replace in any::<bool>(), critical in any::<bool>(),
        must in any::<bool>(), allowed in 1.0f64..3.0,
    ) {
        let mut p = params(ONE_METRIC);
        p.classifier.group_weights.clear();
        let mut second = p.metrics[0].clone();
        second.name = "other".into();
        second.groups = vec!["other".into()];
        let m = &mut p.metrics[0];
        m.direction = [Direction::Increase, Direction::Decrease, Direction::Either][usize::from(dir)];
        m.outliers.strategy = if remove { OutlierStrategy::Remove } else { OutlierStrategy::Keep };
        if replace { m.nan_strategy = omen_models::judge::NanStrategy::Replace; }
        m.critical = critical;
        m.must_have_data = must;
        m.effect_size.allowed_increase = allowed;
        p.metrics.push(second);
        let valid = p.check().unwrap();
        let r = judge(&valid, &[
            MetricInput { name: "latency", canary: &c, baseline: &b },
            MetricInput { name: "other", canary: &c2, baseline: &b2 },
        ]);
        prop_assert!((0.0..=100.0).contains(&r.score), "{}", r.score);
        prop_assert_eq!(r.metrics.len(), 2);
        for v in &r.metrics {
            if let Some(p) = v.p_value { prop_assert!((0.0..=1.0).contains(&p)); }
            if v.critical_failure { prop_assert_eq!(r.score, 0.0); }
        }
        if !r.critical_failures.is_empty() { prop_assert_eq!(r.classification, Classification::Fail); }
    }
}

/// A worked example whose every number comes from an independent implementation in Python
/// (`judge_reference.py`: NumPy percentiles, SciPy's Mann-Whitney p-value, the Moses interval
/// from a brute-force null distribution, Kayenta's tolerance, effect-size and scoring rules),
/// embedded in `judge_reference.json`. Covers a clear increase, a shift whose interval clears 0
/// but not Kayenta's 0.25 × |estimate| band, tied counts with NaN and outliers removed, an empty
/// series and identical series.
#[test]
fn kayenta_worked_example_matches_the_independent_reference() {
    let reference: serde_json::Value = serde_json::from_str(include_str!("judge_reference.json")).unwrap();
    let p = params(
        r#"
        [classifier.groupWeights]
        latency = 60
        errors = 40
        [scoreThresholds]
        pass = 95
        marginal = 60
        [[metrics]]
        name = "latency"
        groups = ["latency"]
        direction = "increase"
        effectSize = { allowedIncrease = 1.02 }
        [[metrics]]
        name = "slight"
        groups = ["latency"]
        [[metrics]]
        name = "errors"
        groups = ["errors"]
        direction = "increase"
        outliers = { strategy = "remove" }
        [[metrics]]
        name = "empty"
        groups = ["errors"]
        [[metrics]]
        name = "same"
        groups = ["errors"]
        "#,
    );
    let valid = p.check().unwrap();
    let series = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
    };
    let names = ["latency", "slight", "errors", "empty", "same"];
    let data: Vec<(Vec<f64>, Vec<f64>)> =
        names.iter().map(|n| (series(&reference["data"][n][0]), series(&reference["data"][n][1]))).collect();
    let inputs: Vec<MetricInput<'_>> =
        names.iter().zip(&data).map(|(n, (c, b))| MetricInput { name: n, canary: c, baseline: b }).collect();
    let r = judge(&valid, &inputs);
    let close = |got: Option<f64>, want: &serde_json::Value, what: &str| {
        let want = want.as_f64().unwrap();
        let got = got.unwrap_or_else(|| panic!("{what}: no value"));
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
    };
    for (name, v) in names.iter().zip(&r.metrics) {
        let want = &reference["metrics"][name];
        let class = serde_json::to_value(v.classification).unwrap();
        assert_eq!(class, want["classification"], "{name}: {}", v.reason);
        if want.get("estimate").is_some() {
            close(v.p_value, &want["p"], &format!("{name} p"));
            close(v.hl_estimate, &want["estimate"], &format!("{name} estimate"));
            close(v.ci_lower, &want["lower"], &format!("{name} lower"));
            close(v.ci_upper, &want["upper"], &format!("{name} upper"));
            close(v.effect_size, &want["ratio"], &format!("{name} ratio"));
            assert_eq!(v.n_canary as u64, want["n_canary"].as_u64().unwrap(), "{name}");
            assert_eq!(v.n_baseline as u64, want["n_baseline"].as_u64().unwrap(), "{name}");
            let zero_test = serde_json::to_value(v.raw_classification).unwrap();
            // The raw verdict is the tolerance test; the reference records the bare zero test too.
            if name == &"slight" {
                assert_eq!(want["zero_test"], "HIGH");
                assert_eq!(zero_test, "PASS", "the interval clears 0 but not 0.25 × |estimate|");
            }
        }
    }
    for g in &r.groups {
        close(g.score.or(Some(100.0)), &reference["groups"][&g.name], &g.name);
    }
    assert_eq!(r.score, reference["score"].as_f64().unwrap());
    assert_eq!(r.classification, Classification::Marginal);
}
