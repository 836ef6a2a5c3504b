//! Sequences for the LSTM models (`omen-sequence`): the canary and baseline samples of each
//! metric resampled on a fixed step, with a mask for the steps without data, normalised per
//! window. Training (`omen train sequence`) and `SequenceModel::encode` (`omen-models`, the entry
//! point for serving) encode through this one module, from the same [`DeploymentWindows`] the
//! tabular features use.
//!
//! # A window
//! [`SequenceLayout`] fixes the metrics (sorted), the step (default 30 s) and the window length
//! in steps (default 60: 30 minutes). A window *ending at* `end` has steps `k = 0..window`; step
//! `k` covers `(end − (window − k)·step, end − (window − 1 − k)·step]`, so the last step ends at
//! `end` itself. Its value for a role is the mean of that role's finite samples in the step,
//! pooled over series (pods).
//!
//! Every metric gives [`CHANNELS_PER_METRIC`] channels, in this order:
//! 1. the canary, normalised: `(value − centre) / scale`;
//! 2. the baseline, normalised the same way;
//! 3. 1 when the canary had a sample in the step, else 0;
//! 4. the same for the baseline;
//! 5. the window's level, constant over the window: `asinh((centre − mean) / std)` with the
//!    training data's mean and standard deviation of the metric ([`Normalisation`]), so that the
//!    model sees where a series sits, not only how canary and baseline differ.
//!
//! `centre` is the mean of the baseline's steps in the window (the canary's when the baseline has
//! none, the training mean when neither has); `scale` is the standard deviation of those steps,
//! at least 5 % of `|centre|` and 0.1 % of the training standard deviation (and the training
//! standard deviation when fewer than two steps have data). A model trained on one service
//! therefore sees another service's series on the same footing: as deviations from its own
//! baseline, in units of its own noise.
//!
//! # Bad input, each with a defined value
//! - **Shorter than the window** (a canary younger than 30 minutes): the steps before `not_before`
//!   (the canary start) are padding: values 0, masks 0.
//! - **Gaps** (a scrape that failed, a pod restarting): steps without samples have mask 0 and
//!   value 0.
//! - **NaN and ±Inf** samples: never averaged; a step holding only such samples is a gap.
//!   [`SequenceInput::non_finite`] counts them.
//! - **A metric the layout does not have**: not encoded; named in [`SequenceInput::ignored`].
//!   Asking a model for it by name is an error that names it ([`SequenceLayout::index_of`]).
//! - **A layout metric without samples**: all its masks 0 (NODATA), named in
//!   [`SequenceInput::missing`].

use super::{DeploymentWindows, FeatureColumn, FeatureSchema, Kind, MetricSeries, TimeSeries};
use crate::error::{Error, Result};

/// Channels per metric (see the module docs).
pub const CHANNELS_PER_METRIC: usize = 5;

/// The channels of a metric, in order, as named in [`sequence_schema`].
pub const CHANNELS: [(&str, &str); CHANNELS_PER_METRIC] = [
    ("canary", "canary mean in the step, (value − centre) / scale; 0 without a sample"),
    ("baseline", "baseline mean in the step, (value − centre) / scale; 0 without a sample"),
    ("canary_present", "1 when the canary had a finite sample in the step"),
    ("baseline_present", "1 when the baseline had a finite sample in the step"),
    ("level", "asinh((centre − training mean) / training std), constant over the window"),
];

/// The input schema of a sequence model over `layout`: one float column per channel,
/// `<metric>:<channel>`, per step of the window. Its hash is what the registry records with the
/// model and what loading checks against the artifact's layout.
pub fn sequence_schema(layout: &SequenceLayout) -> FeatureSchema {
    FeatureSchema::new(
        layout
            .metrics
            .iter()
            .flat_map(|m| {
                CHANNELS.iter().map(move |(c, doc)| FeatureColumn {
                    name: format!("{m}:{c}"),
                    kind: Kind::Float,
                    label: false,
                    doc: format!("`{m}`, each of {} steps of {} s: {doc}", layout.window, layout.step_us / 1_000_000),
                })
            })
            .collect(),
    )
}

/// What a sequence model reads: which metrics, on which step, over how many steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceLayout {
    /// Metric names, sorted, distinct.
    pub metrics: Vec<String>,
    /// Step in µs.
    pub step_us: i64,
    /// Steps per window.
    pub window: usize,
}

impl SequenceLayout {
    /// A layout over `metrics` (sorted and deduplicated here); an error for a step that is not
    /// positive, a window of zero steps, or no metric.
    pub fn new(metrics: impl IntoIterator<Item = String>, step_us: i64, window: usize) -> Result<SequenceLayout> {
        let mut metrics: Vec<String> = metrics.into_iter().collect();
        metrics.sort();
        metrics.dedup();
        if metrics.is_empty() {
            return Err(Error::field("sequence.metrics", "no metric to model: the store has no canary or baseline samples"));
        }
        if step_us <= 0 {
            return Err(Error::field("sequence.step", format!("must be positive, got {step_us} µs")));
        }
        if window == 0 {
            return Err(Error::field("sequence.window", "must be at least one step"));
        }
        Ok(SequenceLayout { metrics, step_us, window })
    }

    /// Input channels: [`CHANNELS_PER_METRIC`] per metric.
    pub fn channels(&self) -> usize {
        self.metrics.len() * CHANNELS_PER_METRIC
    }

    /// The position of `metric`; an error naming it (and the metrics the layout has) otherwise.
    pub fn index_of(&self, metric: &str) -> Result<usize> {
        self.metrics.binary_search_by(|m| m.as_str().cmp(metric)).map_err(|_| {
            Error::field(
                format!("metric `{metric}`"),
                format!("the sequence model was not trained on it (it knows {})", self.metrics.join(", ")),
            )
        })
    }
}

/// Training-data statistics of one metric (over every finite canary and baseline sample).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricScale {
    pub mean: f64,
    pub std: f64,
}

/// The normalisation statistics saved with a model's weights: one [`MetricScale`] per layout
/// metric, in layout order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalisation {
    pub metrics: Vec<MetricScale>,
}

impl Normalisation {
    /// Mean and standard deviation of every finite canary and baseline sample of each layout
    /// metric in `windows` (the training deployments only). A metric without samples gets mean 0
    /// and standard deviation 1; a constant one standard deviation 1.
    pub fn fit<'a>(layout: &SequenceLayout, windows: impl IntoIterator<Item = &'a DeploymentWindows>) -> Normalisation {
        // Welford, per metric.
        let mut acc = vec![(0u64, 0.0f64, 0.0f64); layout.metrics.len()];
        for w in windows {
            for (i, m) in layout.metrics.iter().enumerate() {
                let Some(s) = w.metrics.get(m) else { continue };
                for v in s.canary.all().values.iter().chain(s.baseline.all().values) {
                    if v.is_finite() {
                        let (n, mean, m2) = &mut acc[i];
                        *n += 1;
                        let delta = v - *mean;
                        *mean += delta / *n as f64;
                        *m2 += delta * (v - *mean);
                    }
                }
            }
        }
        let metrics = acc
            .into_iter()
            .map(|(n, mean, m2)| {
                let std = if n > 1 { (m2 / (n - 1) as f64).sqrt() } else { 0.0 };
                MetricScale { mean: if n > 0 { mean } else { 0.0 }, std: if std > 0.0 && std.is_finite() { std } else { 1.0 } }
            })
            .collect();
        Normalisation { metrics }
    }
}

/// One encoded window: the model input and what is needed to read its forecasts back in the
/// metrics' units.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceInput {
    /// `[window, channels]`, row-major (step by step).
    pub values: Vec<f32>,
    /// Per layout metric: the centre and scale of the window (forecast = centre + scale · z).
    pub centre: Vec<f64>,
    pub scale: Vec<f64>,
    /// Steps with at least one canary or baseline sample of some metric.
    pub steps_with_data: usize,
    /// NaN and ±Inf samples seen in the window (never averaged).
    pub non_finite: usize,
    /// Layout metrics without any sample in the window (their masks are 0: NODATA).
    pub missing: Vec<String>,
    /// Metrics of the deployment that the layout does not have (not encoded).
    pub ignored: Vec<String>,
}

/// Per step: the mean of the finite samples of `series` with `not_before ≤ ts` in each step of
/// the window ending at `end`; `None` for a step without one. Also returns the non-finite
/// samples seen.
pub fn resample(series: &TimeSeries, end: i64, not_before: i64, step_us: i64, steps: usize) -> (Vec<Option<f64>>, usize) {
    resample_until(series, end, not_before, end, step_us, steps)
}

/// [`resample`], also leaving out the samples after `not_after`.
fn resample_until(
    series: &TimeSeries,
    end: i64,
    not_before: i64,
    not_after: i64,
    step_us: i64,
    steps: usize,
) -> (Vec<Option<f64>>, usize) {
    let first = end.saturating_sub(step_us.saturating_mul(steps as i64));
    let w = series.between(first.saturating_add(1).max(not_before), end.min(not_after));
    let mut sum = vec![0.0f64; steps];
    let mut n = vec![0u32; steps];
    let mut non_finite = 0;
    for (&ts, &v) in w.ts.iter().zip(w.values) {
        if !v.is_finite() {
            non_finite += 1;
            continue;
        }
        // ts in (first, end]: step index = ceil((ts - first) / step) - 1
        let k = ((ts - first - 1) / step_us) as usize;
        if k < steps {
            sum[k] += v;
            n[k] += 1;
        }
    }
    let out = sum.iter().zip(&n).map(|(&s, &c)| (c > 0).then(|| s / c as f64)).collect();
    (out, non_finite)
}

fn mean_std(values: &[Option<f64>]) -> Option<(f64, Option<f64>)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let std = (present.len() > 1).then(|| {
        (present.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (present.len() - 1) as f64).sqrt()
    });
    Some((mean, std))
}

/// Encodes the window of `windows` ending at `end` (µs): samples before `not_before` (the canary
/// start) are not used, so a younger canary is left-padded with masked steps.
pub fn encode_window(
    layout: &SequenceLayout,
    norm: &Normalisation,
    windows: &DeploymentWindows,
    end: i64,
    not_before: i64,
) -> SequenceInput {
    let steps = layout.window;
    let channels = layout.channels();
    let mut values = vec![0.0f32; steps * channels];
    let mut centre = Vec::with_capacity(layout.metrics.len());
    let mut scale = Vec::with_capacity(layout.metrics.len());
    let mut any = vec![false; steps];
    let mut non_finite = 0;
    let mut missing = Vec::new();
    let empty = MetricSeries::default();
    for (i, m) in layout.metrics.iter().enumerate() {
        let g = norm.metrics.get(i).copied().unwrap_or(MetricScale { mean: 0.0, std: 1.0 });
        let s = windows.metrics.get(m).unwrap_or(&empty);
        let (canary, nf_c) = resample(&s.canary, end, not_before, layout.step_us, steps);
        let (baseline, nf_b) = resample(&s.baseline, end, not_before, layout.step_us, steps);
        non_finite += nf_c + nf_b;
        let reference = mean_std(&baseline).or_else(|| mean_std(&canary));
        if reference.is_none() {
            missing.push(m.clone());
        }
        let (c, sd) = reference.unwrap_or((g.mean, None));
        let sc = sd.unwrap_or(g.std).max(0.05 * c.abs()).max(1e-3 * g.std).max(1e-12);
        let level = ((c - g.mean) / g.std).asinh() as f32;
        let base = i * CHANNELS_PER_METRIC;
        for k in 0..steps {
            let row = &mut values[k * channels + base..k * channels + base + CHANNELS_PER_METRIC];
            if let Some(v) = canary[k] {
                row[0] = ((v - c) / sc) as f32;
                row[2] = 1.0;
                any[k] = true;
            }
            if let Some(v) = baseline[k] {
                row[1] = ((v - c) / sc) as f32;
                row[3] = 1.0;
                any[k] = true;
            }
            row[4] = level;
        }
        centre.push(c);
        scale.push(sc);
    }
    let ignored = windows.metrics.keys().filter(|m| layout.metrics.binary_search(m).is_err()).cloned().collect();
    SequenceInput { values, centre, scale, steps_with_data: any.iter().filter(|&&a| a).count(), non_finite, missing, ignored }
}

/// The forecast targets of a window ending at `end`: the canary's value of each metric in the
/// `horizon` steps after it, normalised with the window's centre and scale, with a mask (1 where
/// the step had a finite sample). Layout `[horizon, metrics]`, row-major; samples after `until`
/// (the end of the rollout) are not used.
pub fn encode_targets(
    layout: &SequenceLayout,
    input: &SequenceInput,
    windows: &DeploymentWindows,
    end: i64,
    until: i64,
    horizon: usize,
) -> (Vec<f32>, Vec<f32>) {
    let n = layout.metrics.len();
    let mut y = vec![0.0f32; horizon * n];
    let mut mask = vec![0.0f32; horizon * n];
    let future_end = end.saturating_add(layout.step_us.saturating_mul(horizon as i64));
    let empty = MetricSeries::default();
    for (i, m) in layout.metrics.iter().enumerate() {
        let s = windows.metrics.get(m).unwrap_or(&empty);
        let (canary, _) = resample_until(&s.canary, future_end, end.saturating_add(1), until, layout.step_us, horizon);
        for (k, v) in canary.iter().enumerate() {
            if let Some(v) = v {
                y[k * n + i] = ((v - input.centre[i]) / input.scale[i]) as f32;
                mask[k * n + i] = 1.0;
            }
        }
    }
    (y, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::{Role, Sample, WindowsBuilder};

    const S: i64 = 1_000_000;

    fn windows(samples: &[(&str, Role, i64, f64)]) -> DeploymentWindows {
        let mut b = WindowsBuilder::new(0, None, None, vec![]);
        for &(m, role, ts, v) in samples {
            b.extend(m, role, [Sample { ts, series: 1, value: v }]);
        }
        b.finish()
    }

    fn layout() -> SequenceLayout {
        SequenceLayout::new(["latency".to_string(), "errors".to_string()], 30 * S, 4).unwrap()
    }

    #[test]
    fn resample_buckets_are_left_open_right_closed() {
        let w = windows(&[
            ("latency", Role::Canary, 30 * S, 1.0),  // step 0 of a window ending at 120 s
            ("latency", Role::Canary, 31 * S, 3.0),  // step 1
            ("latency", Role::Canary, 60 * S, 5.0),  // step 1
            ("latency", Role::Canary, 120 * S, 7.0), // step 3
            ("latency", Role::Canary, 121 * S, 9.0), // after the end
        ]);
        let (v, nf) = resample(&w.metrics["latency"].canary, 120 * S, 0, 30 * S, 4);
        assert_eq!(v, vec![Some(1.0), Some(4.0), None, Some(7.0)]);
        assert_eq!(nf, 0);
    }

    #[test]
    fn short_canary_is_left_padded_and_gaps_nan_inf_are_masked() {
        let l = layout();
        let norm = Normalisation { metrics: vec![MetricScale { mean: 0.0, std: 1.0 }; 2] };
        let w = windows(&[
            ("latency", Role::Baseline, 10 * S, 100.0), // before not_before: unused
            ("latency", Role::Baseline, 70 * S, 10.0),
            ("latency", Role::Baseline, 110 * S, 12.0),
            ("latency", Role::Canary, 70 * S, f64::NAN),
            ("latency", Role::Canary, 80 * S, f64::INFINITY),
            ("latency", Role::Canary, 110 * S, 14.0),
            ("unknown_metric", Role::Canary, 110 * S, 1.0),
        ]);
        let x = encode_window(&l, &norm, &w, 120 * S, 60 * S);
        let ch = l.channels();
        assert_eq!(x.values.len(), 4 * ch);
        // "errors" comes first (sorted) and has no data at all: NODATA
        assert_eq!(x.missing, vec!["errors".to_string()]);
        assert_eq!(x.ignored, vec!["unknown_metric".to_string()]);
        assert_eq!(x.non_finite, 2);
        let lat = CHANNELS_PER_METRIC; // second metric
        // steps 0 and 1 are before the canary start: all masks 0
        for k in 0..2 {
            assert_eq!(&x.values[k * ch + lat..k * ch + lat + 4], &[0.0, 0.0, 0.0, 0.0]);
        }
        // step 2 (60, 90]: baseline 10, canary only NaN/Inf -> canary masked
        assert_eq!(x.values[2 * ch + lat + 2], 0.0);
        assert_eq!(x.values[2 * ch + lat + 3], 1.0);
        // centre = mean(10, 12) = 11, scale = max(std = 1.414, 5 % of 11) = 1.414
        let sc = 2f64.sqrt();
        assert!((x.values[3 * ch + lat] as f64 - (14.0 - 11.0) / sc).abs() < 1e-5);
        assert!((x.values[2 * ch + lat + 1] as f64 - (10.0 - 11.0) / sc).abs() < 1e-5);
        assert_eq!(x.centre[1], 11.0);
        assert_eq!(x.steps_with_data, 2);
        assert!(x.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn unknown_metric_by_name_is_an_error_naming_it() {
        let err = layout().index_of("cpu").unwrap_err().to_string();
        assert!(err.contains("`cpu`") && err.contains("errors, latency"), "{err}");
        assert_eq!(layout().index_of("latency").unwrap(), 1);
    }

    #[test]
    fn targets_follow_the_window_and_stop_at_the_rollout_end() {
        let l = layout();
        let norm = Normalisation { metrics: vec![MetricScale { mean: 0.0, std: 1.0 }; 2] };
        let w = windows(&[
            ("latency", Role::Baseline, 100 * S, 10.0),
            ("latency", Role::Baseline, 110 * S, 12.0),
            ("latency", Role::Canary, 130 * S, 13.0),
            ("latency", Role::Canary, 200 * S, 99.0),
        ]);
        let x = encode_window(&l, &norm, &w, 120 * S, 0);
        let (y, m) = encode_targets(&l, &x, &w, 120 * S, 180 * S, 3);
        // steps after 120 s: (120,150], (150,180], (180,210]; the last is after `until`
        assert_eq!(m, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // both baseline samples fall in the last step: one step, so the scale is the training
        // standard deviation (1)
        assert_eq!(x.scale[1], 1.0);
        assert!((y[1] as f64 - (13.0 - 11.0)).abs() < 1e-5);
    }

    #[test]
    fn normalisation_skips_non_finite_and_defaults_empty_metrics() {
        let l = layout();
        let w = windows(&[
            ("latency", Role::Baseline, S, 1.0),
            ("latency", Role::Canary, 2 * S, 3.0),
            ("latency", Role::Canary, 3 * S, f64::NAN),
        ]);
        let n = Normalisation::fit(&l, [&w]);
        assert_eq!(n.metrics[0], MetricScale { mean: 0.0, std: 1.0 });
        assert_eq!(n.metrics[1].mean, 2.0);
        assert!((n.metrics[1].std - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn layout_rejects_bad_parameters() {
        assert!(SequenceLayout::new(Vec::<String>::new(), S, 4).unwrap_err().to_string().contains("sequence.metrics"));
        assert!(SequenceLayout::new(["a".to_string()], 0, 4).unwrap_err().to_string().contains("sequence.step"));
        assert!(SequenceLayout::new(["a".to_string()], S, 0).unwrap_err().to_string().contains("sequence.window"));
    }
}
