//! `omen train sequence`: the LSTM forecaster and failure classifier of `omen-sequence`, trained
//! on the store's canary and baseline samples (`metrics/`) and deployments (`deployments/`).
//!
//! The samples of each deployment become its typed windows exactly as `omen features build`
//! reads them; `omen_features::feature::sequence` resamples them on the step (default 30 s) into
//! windows of `window` steps with masks, normalised per window. Deployments are ordered by start:
//! the last `--holdout` fraction is the test set, the last 15 % of the rest the validation split
//! (early stopping), the rest the training set, whose samples alone give the normalisation
//! statistics saved with the weights.
//!
//! Examples:
//! - **forecaster**: a window ending every `stride` steps of a deployment's canary, the targets the
//!   canary's next `horizon` steps of every metric (masked where a step has no sample), up to the
//!   end of the rollout;
//! - **classifier**: windows ending at the feature checkpoints (`[features] checkpoints`) and every
//!   `stride` steps from the first checkpoint to the end of the first window, labelled with
//!   `label_failed` (failed or rolled back: 1, success: 0, other outcomes left out). The test
//!   metrics use the checkpoints only, one row per deployment and checkpoint, as the GBDT's.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use omen_features::Store;
use omen_features::feature::sequence::{Normalisation, SequenceLayout, encode_targets, encode_window, sequence_schema};
use omen_features::feature::{DeploymentWindows, FeatureParams, WindowsBuilder, parse_duration};
use omen_features::history::read_deployments;
use omen_models::registry::{AnyRegistry, Lineage, NewVersion, Progress, Registry};
use omen_models::judge::{JudgeParams, MetricInput, ValidJudgeParams, Verdict, judge};
use omen_models::sequence::rollback::{Slo, breach_probability};
use omen_features::feature::series::{Grid, SeriesLayout, resample};
use omen_models::sequence::detect::{SeriesDetectorParams, TrainSeries};
use omen_models::sequence::{
    Engine, EpochReport, ForecastSet, LabelledSet, SequenceModel, SequenceParams, Sequences, TrainHistory,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::registry::{Registered, code_version};
use crate::train::{Metrics, classifier_metrics};

/// What `omen train sequence` takes besides the store.
#[derive(Debug, Clone)]
pub struct SequenceArgs {
    pub params: SequenceParams,
    /// Resampling step (`30s`).
    pub step: String,
    /// Steps per window.
    pub window: usize,
    /// Steps between consecutive training windows of one deployment.
    pub stride: usize,
    /// The last fraction of deployments (by start) held out for testing.
    pub holdout: f64,
    /// Also write `model.omenseq` and `config.json` (the burn training config) into this folder.
    pub out: Option<PathBuf>,
    /// SLOs to evaluate predictive rollback on the held-out deployments (`METRIC<=VALUE`,
    /// `METRIC>=VALUE`).
    pub slos: Vec<Slo>,
    /// The breach probability at which predictive rollback alarms.
    pub alarm_probability: f64,
    /// The series detector of `omen detect`, fitted on the store's metric series before the
    /// held-out deployments (`None`: no detector).
    pub detector: Option<SeriesDetectorParams>,
    /// Fit on at most this many of the most recent training deployments (`None`: all of them);
    /// the validation and held-out deployments are the same either way.
    pub max_train_deployments: Option<usize>,
}

/// The series detector's parameters from the CLI's flags (`windows` 0: no detector).
pub fn detector_params(step: &str, window: usize, windows: usize) -> Result<Option<SeriesDetectorParams>> {
    if windows == 0 {
        return Ok(None);
    }
    let step_us = parse_duration(step).map_err(|m| Error::input("--detector-step", m))?;
    let layout = SeriesLayout { step_us, window, min_present: (window / 3).max(2) };
    let p = SeriesDetectorParams { layout, max_windows: windows };
    p.check()?;
    Ok(Some(p))
}

impl Default for SequenceArgs {
    fn default() -> Self {
        SequenceArgs {
            params: SequenceParams::default(),
            step: "30s".into(),
            window: 60,
            stride: 4,
            holdout: 0.2,
            out: None,
            slos: Vec::new(),
            alarm_probability: 0.5,
            detector: Some(SeriesDetectorParams { layout: crate::detect::default_series_layout(), max_windows: 20_000 }),
            max_train_deployments: None,
        }
    }
}

/// Held-out figures of the forecaster (normalised units: the window's scale).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForecastMetrics {
    /// Mean pinball loss over the quantiles and present targets.
    pub pinball: f64,
    /// Share of present targets inside the outer quantiles' interval.
    pub coverage: f64,
    /// The interval's nominal coverage (last quantile level − first).
    pub coverage_nominal: f64,
    /// Mean absolute error of the median.
    pub mae: f64,
    /// The same for "the last value stays" (persistence), the baseline to beat.
    pub mae_persistence: f64,
    pub targets: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SequenceSummary {
    pub model: String,
    pub store: String,
    pub metrics: Vec<String>,
    pub step_s: f64,
    pub window: usize,
    pub deployments_train: usize,
    pub deployments_valid: usize,
    pub deployments_test: usize,
    pub forecast_windows: [usize; 3],
    pub classifier_windows: [usize; 3],
    pub forecaster: ForecastMetrics,
    /// The classifier on the test deployments at the feature checkpoints.
    pub classifier: Metrics,
    pub forecaster_history: TrainHistory,
    pub classifier_history: TrainHistory,
    pub train_seconds: f64,
    /// One window encoded, forecast and classified, mean of 200 calls (one thread).
    pub single_window_us: f64,
    /// The series detector of `omen detect`, when one was fitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorSummary>,
    /// Predictive rollback on the held-out deployments, per `--slo`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<RollbackEval>,
    pub time_from: Option<String>,
    pub time_to: Option<String>,
    pub out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<Registered>,
}

impl SequenceSummary {
    pub fn human(&self) -> String {
        let f = &self.forecaster;
        let c = serde_json::to_string(&self.classifier).unwrap_or_default();
        let mut out = format!(
            "{}: LSTM over {} metrics, {} steps of {}s; deployments train {} / valid {} / test {}\n  forecaster: {} windows, best epoch {}; held-out pinball {:.4}, {:.0}% interval covers {:.1}%, median MAE {:.3} (persistence {:.3}) in window scales\n  classifier: {} windows, best epoch {}; held-out {c}\n  trained in {:.1}s; one window {:.0} µs\n",
            self.model,
            self.metrics.len(),
            self.window,
            self.step_s,
            self.deployments_train,
            self.deployments_valid,
            self.deployments_test,
            self.forecast_windows[0],
            self.forecaster_history.best_epoch,
            f.pinball,
            f.coverage_nominal * 100.0,
            f.coverage * 100.0,
            f.mae,
            f.mae_persistence,
            self.classifier_windows[0],
            self.classifier_history.best_epoch,
            self.train_seconds,
            self.single_window_us,
        );
        for r in &self.rollback {
            out.push_str(&format!(
                "  rollback on {} {}: {} of {} breaching canaries alarmed before the breach (judge {}), median {} s ahead of the breach, {} s ahead of the judge; false alarms on {} healthy canaries: {} (judge {})\n",
                r.metric,
                r.limit,
                r.model_detected,
                r.breached,
                r.judge_detected,
                r.model_lead_before_breach_s.map_or("-".into(), |v| format!("{v:.0}")),
                r.lead_over_judge_s.map_or("-".into(), |v| format!("{v:.0}")),
                r.healthy,
                r.model_false_alarms,
                r.judge_false_alarms
            ));
        }
        if let Some(d) = &self.detector {
            out.push_str(&format!(
                "  series detector: {} series ({} for early stopping), {} steps of {}s, best epoch {} (valid pinball {:.4}), {:.1}s\n",
                d.series_train + d.series_valid,
                d.series_valid,
                d.window,
                d.step_s,
                d.history.best_epoch,
                d.history.best_valid_loss,
                d.seconds
            ));
        }
        if let Some(o) = &self.out {
            out.push_str(&format!("  written to {o}\n"));
        }
        if let Some(r) = &self.registered {
            out.push_str(&format!(
                "  registered {} version {} in {}{}\n",
                r.name,
                r.version,
                r.registry,
                if r.champion { " (champion)" } else { "" }
            ));
        }
        out
    }
}

/// How the series detector was fitted.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorSummary {
    pub step_s: f64,
    pub window: usize,
    /// Series (service, metric, label set) before the held-out deployments: fitted on, and
    /// early-stopped on (a seeded sixth of them).
    pub series_train: usize,
    pub series_valid: usize,
    pub history: TrainHistory,
    pub seconds: f64,
}

/// A trained `omen-sequence` and its summary.
#[derive(Debug)]
pub struct TrainedSequence {
    pub summary: SequenceSummary,
    pub model: SequenceModel,
}

struct Examples {
    forecast: ForecastSet,
    classify: LabelledSet,
    /// Classifier rows at the feature checkpoints (test metrics).
    checkpoint_rows: Vec<usize>,
}

impl Examples {
    /// The classifier windows at the feature checkpoints, and their labels.
    fn checkpoints(&self, layout: &SequenceLayout) -> (Sequences, Vec<f64>) {
        let mut x = Sequences::new(layout.window, layout.channels());
        let mut y = Vec::with_capacity(self.checkpoint_rows.len());
        for &r in &self.checkpoint_rows {
            x.push(self.classify.x.row(r));
            y.push(self.classify.label[r] as f64);
        }
        (x, y)
    }
}

fn label_failed(outcome: Option<&str>) -> Option<f32> {
    match outcome {
        Some("failed" | "rolled_back") => Some(1.0),
        Some("success") => Some(0.0),
        _ => None,
    }
}

/// The last canary sample of any metric (the end of a rollout without `ended_at`).
fn last_canary(w: &DeploymentWindows) -> Option<i64> {
    w.metrics.values().filter_map(|s| s.canary.all().ts.last().copied()).max()
}

fn examples(
    layout: &SequenceLayout,
    norm: &Normalisation,
    deployments: &[&DeploymentWindows],
    checkpoints_us: &[i64],
    horizon: usize,
    stride: usize,
) -> Examples {
    let channels = layout.channels();
    let m = layout.metrics.len();
    let mut forecast =
        ForecastSet { x: Sequences::new(layout.window, channels), metrics: m, horizon, y: Vec::new(), mask: Vec::new() };
    let mut classify = LabelledSet { x: Sequences::new(layout.window, channels), label: Vec::new() };
    let mut checkpoint_rows = Vec::new();
    let stride_us = layout.step_us * stride as i64;
    for w in deployments {
        let start = w.started_at;
        let Some(until) = w.ended_at.or_else(|| last_canary(w)) else { continue };
        // forecaster: windows ending every stride, while a target step remains before the end
        let mut end = start + stride_us;
        while end < until {
            let input = encode_window(layout, norm, w, end, start);
            if input.steps_with_data > 0 {
                let (y, mask) = encode_targets(layout, &input, w, end, until, horizon);
                if mask.iter().any(|&v| v > 0.0) {
                    forecast.x.push(&input.values);
                    forecast.y.extend(y);
                    forecast.mask.extend(mask);
                }
            }
            end += stride_us;
        }
        // classifier
        let Some(label) = label_failed(w.outcome.as_deref()) else { continue };
        let first = checkpoints_us.first().copied().unwrap_or(stride_us);
        let window_us = layout.step_us * layout.window as i64;
        let mut ends: Vec<(i64, bool)> = checkpoints_us.iter().map(|&c| (start + c, true)).collect();
        let mut e = start + first + stride_us;
        while e <= start + window_us {
            if !checkpoints_us.contains(&(e - start)) {
                ends.push((e, false));
            }
            e += stride_us;
        }
        for (end, at_checkpoint) in ends {
            if end > until {
                continue;
            }
            let input = encode_window(layout, norm, w, end, start);
            if input.steps_with_data == 0 {
                continue;
            }
            if at_checkpoint {
                checkpoint_rows.push(classify.label.len());
            }
            classify.x.push(&input.values);
            classify.label.push(label);
        }
    }
    Examples { forecast, classify, checkpoint_rows }
}

fn forecast_metrics(pred: &[f32], set: &ForecastSet, quantiles: &[f64], window: usize, channels: usize) -> ForecastMetrics {
    let nq = quantiles.len();
    let q: Vec<f32> = quantiles.iter().map(|&q| q as f32).collect();
    let median = quantiles.iter().enumerate().min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs())).map_or(0, |p| p.0);
    let targets = set.horizon * set.metrics;
    let (mut inside, mut count, mut ae, mut ae_naive) = (0usize, 0usize, 0.0f64, 0.0f64);
    for i in 0..set.x.len() {
        let x = set.x.row(i);
        for t in 0..targets {
            let k = i * targets + t;
            if set.mask[k] == 0.0 {
                continue;
            }
            let metric = t % set.metrics;
            let p = &pred[k * nq..(k + 1) * nq];
            let y = set.y[k];
            count += 1;
            if p[0] <= y && y <= p[nq - 1] {
                inside += 1;
            }
            ae += (p[median] - y).abs() as f64;
            // persistence: the last step with a canary sample (0, the centre, when none)
            let c = metric * omen_features::feature::sequence::CHANNELS_PER_METRIC;
            let last = (0..window).rev().find(|&s| x[s * channels + c + 2] > 0.0).map_or(0.0, |s| x[s * channels + c]);
            ae_naive += (last - y).abs() as f64;
        }
    }
    let n = count.max(1) as f64;
    ForecastMetrics {
        pinball: omen_models::sequence::pinball_loss(pred, &set.y, &set.mask, &q),
        coverage: inside as f64 / n,
        coverage_nominal: quantiles[nq - 1] - quantiles[0],
        mae: ae / n,
        mae_persistence: ae_naive / n,
        targets: count,
    }
}

fn rfc3339(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339())
}

/// The deployments of the store (ordered by start) as typed windows, and the metrics a sequence
/// model reads: the configured ones, or every non-counter metric with canary or baseline samples.
#[derive(Debug)]
pub struct SequenceData {
    pub store: String,
    pub windows: Vec<DeploymentWindows>,
    pub metrics: Vec<String>,
    /// Every metric series of the store (service, metric, label set) as samples, for the series
    /// detector; empty when none is fitted.
    pub series: Vec<crate::detect::Series>,
}

/// Reads `deployments/` and the canary and baseline samples of `metrics/` as `omen features
/// build` does.
pub async fn read_sequence_data(store: &Store, features: &FeatureParams) -> Result<SequenceData> {
    read_sequence_data_with(store, features, None).await
}

/// [`read_sequence_data`], with every series of the store collected by `series` in the same read
/// of `metrics/`.
async fn read_sequence_data_with(
    store: &Store,
    features: &FeatureParams,
    mut series: Option<&mut crate::detect::SeriesCollector>,
) -> Result<SequenceData> {
    let valid_features = features.check()?;
    let mut deployments = read_deployments(store).await?;
    deployments.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let also = |rel: &str, df: &polars::prelude::DataFrame| match series.as_deref_mut() {
        Some(c) => c.add(rel, df),
        None => Ok(()),
    };
    let (samples, names) = crate::features::read_samples_with(store, &deployments, &valid_features.metrics, also).await?;
    let metrics: Vec<String> = if valid_features.metrics.is_empty() {
        names.iter().filter(|m| !crate::features::is_counter(m)).cloned().collect()
    } else {
        valid_features.metrics.clone()
    };
    let mut builders: Vec<WindowsBuilder> = deployments
        .iter()
        .map(|d| WindowsBuilder::new(d.started_at, d.ended_at, d.outcome.clone(), d.steps.clone()))
        .collect();
    for ((dep, metric, role), list) in samples.groups {
        builders[dep].extend(&names[metric as usize], role, list);
    }
    let windows = builders.into_iter().map(WindowsBuilder::finish).collect();
    Ok(SequenceData { store: store.url().to_string(), windows, metrics, series: Vec::new() })
}

/// [`read_sequence_data`], and the store's metric series when `args` fits a series detector.
pub async fn read_sequence_data_for(store: &Store, features: &FeatureParams, args: &SequenceArgs) -> Result<SequenceData> {
    if args.detector.is_none() {
        return read_sequence_data(store, features).await;
    }
    // One read of `metrics/` for both: the canary windows and every series.
    let mut collector = crate::detect::SeriesCollector::new(crate::detect::SeriesFilter::default());
    let mut data = read_sequence_data_with(store, features, Some(&mut collector)).await?;
    data.series = collector.finish().into_iter().flat_map(|(_, s)| s).collect();
    Ok(data)
}

/// Fits the series detector on the series' samples before `cutoff_us` (the first held-out
/// deployment's start): a seeded sixth of the series for early stopping, the rest for training.
fn fit_detector(
    series: &[crate::detect::Series],
    p: &SeriesDetectorParams,
    params: &omen_models::sequence::ValidSequenceParams,
    cutoff_us: i64,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<Option<(omen_models::sequence::detect::SeriesDetector, DetectorSummary)>> {
    let valid_params = p.check()?;
    let t0 = Instant::now();
    let grids: Vec<Grid> = series
        .iter()
        .map(|s| {
            let before: Vec<(i64, f64)> = s.samples.iter().copied().filter(|&(t, _)| t < cutoff_us).collect();
            resample(&before, p.layout.step_us)
        })
        .collect();
    let references = crate::detect::aligned_references(series, &grids);
    // (grid, its reference on the grid's steps) of the series with enough values, by split
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for ((s, grid), reference) in series.iter().zip(grids).zip(references) {
        if grid.values.iter().filter(|v| v.is_finite()).count() <= p.layout.min_present {
            continue;
        }
        let h = blake3::hash(format!("{}\u{1f}{}\u{1f}{}\u{1f}{}", params.seed, s.service, s.metric, s.labels).as_bytes());
        let split = if h.as_bytes()[0].is_multiple_of(6) { &mut valid } else { &mut train };
        split.push((grid.values, reference));
    }
    if train.is_empty() {
        return Ok(None);
    }
    let (tr, va) = (TrainSeries::all(&train), TrainSeries::all(&valid));
    let (detector, history) = valid_params.fit(params, &tr, &va, progress)?;
    let summary = DetectorSummary {
        step_s: p.layout.step_us as f64 / 1e6,
        window: p.layout.window,
        series_train: train.len(),
        series_valid: valid.len(),
        history,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(Some((detector, summary)))
}

/// Reads the store ([`read_sequence_data_for`]) and trains ([`train_sequence`]) off the async
/// runtime, the epochs shown in `progress`'s message.
pub async fn train_on_store(store: &Store, features: &FeatureParams, args: SequenceArgs, progress: &indicatif::ProgressBar) -> Result<TrainedSequence> {
    let data = read_sequence_data_for(store, features, &args).await?;
    let features = features.clone();
    let pb = progress.clone();
    tokio::task::spawn_blocking(move || {
        let mut on_epoch = |r: &EpochReport| pb.set_message(format!("training omen-sequence: {} epoch {} valid loss {:.4}", r.model, r.epoch, r.valid_loss));
        train_sequence(&data, &features, &args, &mut on_epoch)
    })
    .await
    .map_err(|e| Error::Join(e.to_string()))?
}

/// Trains both models on `data`. CPU-bound: call it off an async runtime's worker threads.
pub fn train_sequence(
    data: &SequenceData,
    features: &FeatureParams,
    args: &SequenceArgs,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainedSequence> {
    let params = args.params.check()?;
    let valid_features = features.check()?;
    let step_us = parse_duration(&args.step).map_err(|m| Error::input("--step", m))?;
    if !(args.holdout > 0.0 && args.holdout < 1.0) {
        return Err(Error::input("--holdout", format!("must be in (0, 1), got {}", args.holdout)));
    }
    if args.stride == 0 {
        return Err(Error::input("--stride", "must be at least 1 step"));
    }
    let windows = &data.windows;
    if windows.len() < 3 {
        return Err(Error::input(
            "deployments/",
            format!("{} deployments: omen train sequence needs at least one for training, one for validation and one held out", windows.len()),
        ));
    }
    let layout = SequenceLayout::new(data.metrics.iter().cloned(), step_us, args.window)?;

    let n = windows.len();
    let n_test = ((n as f64) * args.holdout).round() as usize;
    let rest = n - n_test.min(n);
    let n_valid = ((rest as f64) * 0.15).round().max(1.0) as usize;
    if n_test == 0 || rest < n_valid + 1 {
        return Err(Error::input(
            "deployments/",
            format!("{n} deployments: omen train sequence needs at least one for training, one for validation and one held out (--holdout {})", args.holdout),
        ));
    }
    let n_train = rest - n_valid;
    let refs: Vec<&DeploymentWindows> = windows.iter().collect();
    let (train_w, later) = refs.split_at(n_train);
    let (valid_w, test_w) = later.split_at(n_valid);
    if args.max_train_deployments == Some(0) {
        return Err(Error::input("max_train_deployments", "must be at least 1"));
    }
    let train_w = &train_w[train_w.len().saturating_sub(args.max_train_deployments.unwrap_or(usize::MAX))..];
    let norm = Normalisation::fit(&layout, train_w.iter().copied());
    let build = |ws: &[&DeploymentWindows]| examples(&layout, &norm, ws, &valid_features.checkpoints_us, params.horizon, args.stride);
    let (train, valid, test) = (build(train_w), build(valid_w), build(test_w));
    for (name, e) in [("training", &train), ("validation", &valid)] {
        if e.forecast.x.is_empty() || e.classify.x.is_empty() {
            return Err(Error::input(
                "metrics/",
                format!(
                    "the {name} deployments give {} forecasting and {} labelled windows: they need canary samples of {} and outcomes success/failed/rolled_back",
                    e.forecast.x.len(),
                    e.classify.x.len(),
                    layout.metrics.join(", ")
                ),
            ));
        }
    }

    let t0 = Instant::now();
    let config = params.training_config(layout.channels(), layout.metrics.len());
    let (forecaster, forecaster_history) =
        params.fit_forecaster(&config.forecaster, &train.forecast, &valid.forecast, &Engine::Kernel, &mut *progress)?;
    let (classifier, classifier_history) =
        params.fit_classifier(&config.classifier, &train.classify, &valid.classify, &Engine::Kernel, &mut *progress)?;
    let mut model = SequenceModel::new(config, layout.clone(), norm, forecaster, classifier)?;
    // Temperature scaling of the classifier's log-odds on the validation deployments' checkpoint
    // windows, the windows it is asked about (the GBDT's calibration split is its validation
    // rows too).
    let (valid_checkpoints, valid_y) = valid.checkpoints(&layout);
    let valid_logits = model.failure_logits_batch(&valid_checkpoints);
    model = model.with_calibration(omen_models::calibrate::Platt::fit_temperature(&valid_logits, &valid_y));
    let cutoff = test_w.first().map_or(i64::MAX, |w| w.started_at);
    let mut detector = None;
    if let Some(p) = &args.detector
        && let Some((d, summary)) = fit_detector(&data.series, p, &params, cutoff, &mut *progress)?
    {
        model = model.with_detector(d);
        detector = Some(summary);
    }
    let train_seconds = t0.elapsed().as_secs_f64();

    // Held-out figures.
    let pred = model.forecast_batch(&test.forecast.x);
    let forecaster_metrics =
        forecast_metrics(&pred, &test.forecast, &model.config.forecaster.quantiles, layout.window, layout.channels());
    let (checkpoints, y) = test.checkpoints(&layout);
    // One forward pass: the calibrated probabilities and the raw ones from the same log-odds.
    let logits = model.failure_logits_batch(&checkpoints);
    let p = model.failure_probabilities(&logits);
    let classifier = if y.is_empty() {
        Metrics::default()
    } else {
        let mut m = classifier_metrics(&y, &p);
        let raw: Vec<f64> = logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect();
        m.ece_uncalibrated = Some(omen_models::calibrate::expected_calibration_error(&raw, &y, 10));
        m
    };

    // One window, the serving path: encode, forecast, classify.
    let sample = test_w.iter().chain(valid_w.iter()).next().copied().unwrap_or(train_w[0]);
    let end = sample.started_at + layout.step_us * layout.window as i64;
    let reps = 200;
    let t1 = Instant::now();
    for _ in 0..reps {
        let input = model.encode(sample, end, sample.started_at);
        std::hint::black_box(model.forecast(&input)?);
        std::hint::black_box(model.failure_probability(&input)?);
    }
    let single_window_us = t1.elapsed().as_secs_f64() * 1e6 / reps as f64;

    let rollback = args
        .slos
        .iter()
        .map(|slo| rollback_eval(&model, slo, test_w, &valid_features.checkpoints_us, args.stride, args.alarm_probability))
        .collect::<Result<Vec<_>>>()?;

    let out = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::input(dir.display().to_string(), e.to_string()))?;
            let write = |name: &str, bytes: &[u8]| {
                let path = dir.join(name);
                std::fs::write(&path, bytes).map_err(|e| Error::input(path.display().to_string(), e.to_string()))
            };
            write("model.omenseq", &model.to_bytes())?;
            write("config.json", serde_json::to_string_pretty(&model.config).unwrap_or_default().as_bytes())?;
            Some(dir.display().to_string())
        }
        None => None,
    };
    let fitted = train_w.iter().chain(valid_w.iter()).map(|w| w.started_at);
    let summary = SequenceSummary {
        model: "omen-sequence".into(),
        store: data.store.clone(),
        metrics: layout.metrics.clone(),
        step_s: step_us as f64 / 1e6,
        window: layout.window,
        deployments_train: train_w.len(),
        deployments_valid: n_valid,
        deployments_test: n_test,
        forecast_windows: [train.forecast.x.len(), valid.forecast.x.len(), test.forecast.x.len()],
        classifier_windows: [train.classify.x.len(), valid.classify.x.len(), test.classify.x.len()],
        forecaster: forecaster_metrics,
        classifier,
        forecaster_history,
        classifier_history,
        train_seconds,
        single_window_us,
        detector,
        rollback,
        time_from: fitted.clone().min().and_then(rfc3339),
        time_to: fitted.max().and_then(rfc3339),
        out,
        registered: None,
    };
    Ok(TrainedSequence { summary, model })
}

/// Parses `--slo METRIC<=VALUE` (breached above) or `METRIC>=VALUE` (breached below).
pub fn parse_slo(text: &str) -> Result<Slo> {
    let bad = || Error::input("--slo", format!("`{text}`: expected METRIC<=VALUE or METRIC>=VALUE"));
    let (metric, value, max) = if let Some((m, v)) = text.split_once("<=") {
        (m, v, true)
    } else if let Some((m, v)) = text.split_once(">=") {
        (m, v, false)
    } else {
        return Err(bad());
    };
    let value: f64 = value.trim().parse().map_err(|_| bad())?;
    if metric.trim().is_empty() || !value.is_finite() {
        return Err(bad());
    }
    let metric = metric.trim().to_string();
    Ok(if max { Slo { metric, max: Some(value), min: None } } else { Slo { metric, max: None, min: Some(value) } })
}

/// Predictive rollback on one SLO over the held-out deployments, against the `mann-whitney`
/// judge run at the same checks (every `stride` steps from the first checkpoint, on everything
/// since the canary started).
#[derive(Debug, Clone, Serialize)]
pub struct RollbackEval {
    pub metric: String,
    pub limit: String,
    pub alarm_probability: f64,
    /// Held-out deployments that failed or were rolled back.
    pub failing: usize,
    /// Of those, the ones whose canary crossed the limit (a step's mean beyond it).
    pub breached: usize,
    /// Breaching canaries the model alarmed on at or before the breach.
    pub model_detected: usize,
    /// Breaching canaries the judge flagged (HIGH for an upper limit, LOW for a lower) at or
    /// before the breach.
    pub judge_detected: usize,
    /// Median time from the model's first alarm to the breach.
    pub model_lead_before_breach_s: Option<f64>,
    /// Median of (judge's first flag − model's first alarm) over the breaching canaries both
    /// flagged: positive when the model warns first.
    pub lead_over_judge_s: Option<f64>,
    /// Held-out deployments that succeeded.
    pub healthy: usize,
    /// Healthy canaries with an alarm at some check.
    pub model_false_alarms: usize,
    pub judge_false_alarms: usize,
}

fn rollback_eval(
    model: &SequenceModel,
    slo: &Slo,
    deployments: &[&DeploymentWindows],
    checkpoints_us: &[i64],
    stride: usize,
    alarm_probability: f64,
) -> Result<RollbackEval> {
    let layout = &model.layout;
    layout.index_of(&slo.metric)?;
    let judge_params: ValidJudgeParams = serde_json::from_value::<JudgeParams>(serde_json::json!({
        "metrics": [{"name": slo.metric, "groups": ["slo"], "direction": if slo.max.is_some() { "increase" } else { "decrease" }}],
        "scoreThresholds": {"pass": 95.0, "marginal": 75.0},
    }))
    .map_err(|e| Error::input("--slo", e.to_string()))?
    .check()?;
    let flag = if slo.max.is_some() { Verdict::High } else { Verdict::Low };
    let beyond = |v: f64| slo.max.is_some_and(|m| v > m) || slo.min.is_some_and(|m| v < m);
    let stride_us = layout.step_us * stride as i64;
    let mut e = RollbackEval {
        metric: slo.metric.clone(),
        limit: match (slo.max, slo.min) {
            (Some(m), _) => format!("<= {m}"),
            (_, Some(m)) => format!(">= {m}"),
            _ => String::new(),
        },
        alarm_probability,
        failing: 0,
        breached: 0,
        model_detected: 0,
        judge_detected: 0,
        model_lead_before_breach_s: None,
        lead_over_judge_s: None,
        healthy: 0,
        model_false_alarms: 0,
        judge_false_alarms: 0,
    };
    let (mut before_breach, mut over_judge) = (Vec::new(), Vec::new());
    let empty = omen_features::feature::MetricSeries::default();
    for w in deployments {
        let Some(label) = label_failed(w.outcome.as_deref()) else { continue };
        let start = w.started_at;
        let Some(until) = w.ended_at.or_else(|| last_canary(w)) else { continue };
        let series = w.metrics.get(&slo.metric).unwrap_or(&empty);
        // the observed breach: the first step whose canary mean is beyond the limit
        let steps = ((until - start) / layout.step_us).max(0) as usize;
        let (canary_steps, _) = omen_features::feature::sequence::resample(
            &series.canary,
            start + layout.step_us * steps as i64,
            start,
            layout.step_us,
            steps,
        );
        let breach = canary_steps.iter().position(|v| v.is_some_and(beyond)).map(|k| start + layout.step_us * (k as i64 + 1));
        let (mut model_at, mut judge_at) = (None, None);
        let mut t = start + checkpoints_us.first().copied().unwrap_or(stride_us);
        while t <= until && (model_at.is_none() || judge_at.is_none()) {
            if model_at.is_none() {
                let input = model.encode(w, t, start);
                if input.steps_with_data > 0 {
                    let f = model.forecast_metric(&input, &slo.metric)?;
                    if breach_probability(&f, slo).1 >= alarm_probability {
                        model_at = Some(t);
                    }
                }
            }
            if judge_at.is_none() {
                let finite = |s: &omen_features::feature::TimeSeries| -> Vec<f64> {
                    s.between(start, t).values.iter().copied().filter(|v| v.is_finite()).collect()
                };
                let (c, b) = (finite(&series.canary), finite(&series.baseline));
                let report = judge(&judge_params, &[MetricInput { name: &slo.metric, canary: &c, baseline: &b }]);
                if report.metrics.first().is_some_and(|m| m.classification == flag) {
                    judge_at = Some(t);
                }
            }
            t += stride_us;
        }
        if label == 0.0 {
            e.healthy += 1;
            e.model_false_alarms += usize::from(model_at.is_some());
            e.judge_false_alarms += usize::from(judge_at.is_some());
            continue;
        }
        e.failing += 1;
        let Some(breach) = breach else { continue };
        e.breached += 1;
        let model_at = model_at.filter(|&m| m <= breach);
        let judge_at = judge_at.filter(|&j| j <= breach);
        if let Some(m) = model_at {
            e.model_detected += 1;
            before_breach.push((breach - m) as f64 / 1e6);
        }
        e.judge_detected += usize::from(judge_at.is_some());
        if let (Some(m), Some(j)) = (model_at, judge_at) {
            over_judge.push((j - m) as f64 / 1e6);
        }
    }
    e.model_lead_before_breach_s = crate::evaluate::median(&before_breach);
    e.lead_over_judge_s = crate::evaluate::median(&over_judge);
    Ok(e)
}

/// Registers a trained `omen-sequence` ([`register_sequence_version`]); the first version
/// becomes the champion.
pub async fn register_sequence(
    registry: &AnyRegistry,
    trained: &TrainedSequence,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Registered> {
    let (v, _) = register_sequence_version(registry, trained, progress).await?;
    let champion = crate::registry::crown_first(registry, &v).await?;
    Ok(Registered { registry: registry.url().to_string(), name: v.name, version: v.version, champion })
}

/// Registers a trained `omen-sequence` without moving an alias: the artifact (checksummed by the
/// registry), its held-out metrics, the training configuration as hyperparameters, the input
/// schema of its layout and the lineage. The same artifact again is the version that holds it
/// ([`crate::registry::register_or_find`], whose flag it returns).
pub async fn register_sequence_version(
    registry: &AnyRegistry,
    trained: &TrainedSequence,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(omen_models::registry::ModelVersion, bool)> {
    let s = &trained.summary;
    let mut metrics = std::collections::BTreeMap::new();
    let f = &s.forecaster;
    for (k, v) in [
        ("forecast_pinball", f.pinball),
        ("forecast_coverage", f.coverage),
        ("forecast_mae", f.mae),
        ("forecast_mae_persistence", f.mae_persistence),
        ("train_seconds", s.train_seconds),
        ("single_window_us", s.single_window_us),
    ] {
        metrics.insert(k.to_string(), v);
    }
    for (k, v) in serde_json::to_value(&s.classifier).unwrap_or_default().as_object().into_iter().flatten() {
        if let Some(x) = v.as_f64() {
            metrics.insert(k.clone(), x);
        }
    }
    let mut params = std::collections::BTreeMap::new();
    if let Some(obj) = serde_json::to_value(&trained.model.config).unwrap_or_default().as_object() {
        for (k, v) in obj {
            params.insert(k.clone(), match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            });
        }
    }
    params.insert("step_s".into(), s.step_s.to_string());
    params.insert("window".into(), s.window.to_string());
    let new = NewVersion {
        name: s.model.clone(),
        artifact: Bytes::from(trained.model.to_bytes()),
        artifact_file: "model.omenseq".into(),
        format: SequenceModel::format(),
        description: format!("LSTM forecaster and failure classifier over {} trained on {}", s.metrics.join(", "), s.store),
        metrics,
        params,
        schema: sequence_schema(&trained.model.layout),
        feature_set: None,
        lineage: Lineage {
            source: s.store.clone(),
            time_column: Some("started_at".into()),
            time_from: s.time_from.clone(),
            time_to: s.time_to.clone(),
            rows: (s.forecast_windows[0] + s.forecast_windows[1] + s.classifier_windows[0] + s.classifier_windows[1]) as u64,
            rows_holdout: (s.forecast_windows[2] + s.classifier_windows[2]) as u64,
        },
        code_version: code_version(),
        tags: [("label".to_string(), "label_failed".to_string())].into_iter().collect(),
    };
    crate::registry::register_or_find(registry, new, progress).await
}
