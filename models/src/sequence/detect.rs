//! Anomaly detection over single metric series (`omen detect`): the series forecaster's residual
//! detector and two baselines, all giving a score per step of a resampled series
//! (`omen_features::feature::series`), then alarms (runs of steps at or above a threshold) and
//! their event-level evaluation against labelled windows.
//!
//! - [`SeriesDetector`] (`lstm`): an LSTM forecaster of the next step's 10 %, 50 % and
//!   90 % quantiles from the window before it, normalised per window (a model for "a metric", not
//!   for one series: trained on some series, it scores any other). A step's score is its
//!   standardised residual: `|y − q50|` over the distance from the median to the quantile on
//!   `y`'s side, times 1.2816 (so that a Gaussian series scores like a z-score). A canary's
//!   series is read with its reference, its baseline's series, up to the scored step
//!   ([`encode_paired_window`]): the forecaster expects the canary to do what its baseline does
//!   now, so a canary that is wrong from its first minute is a surprise at every step (a detector
//!   fitted before references: its two channels, no reference).
//! - [`ZScoreParams`] (`zscore`): `|y − mean| / std` of the previous `window` steps.
//! - [`EwmaParams`] (`ewma`): `|y − μ| / σ` with μ and σ² exponentially weighted (`alpha`),
//!   updated after each step is scored.
//!
//! Steps without a value, and steps before a detector has enough history, are not scored (NaN).
//! Parameters are checked once (`check()`), as everywhere in this crate.

use burn::module::Module;
use omen_features::feature::series::{CLIP, PAIRED_CHANNELS, SERIES_CHANNELS, SeriesLayout, SeriesWindow, encode_paired_window, encode_series_window};

use super::kernel::LstmWeights;
use super::model::{DenseWeights, Forecaster, ForecasterConfig, SequenceLstmConfig, SplitMix};
use super::train::{EpochReport, ForecastSet, Engine, Sequences, TrainHistory, ValidSequenceParams, predict_rows};
use crate::error::Error;
use crate::Result;

/// The quantile levels of the series forecaster.
pub const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// z of the 90 % quantile of a standard normal: turns a quantile distance into a z-score.
const Z90: f64 = 1.2816;
/// The smallest quantile distance used (normalised units), so a forecast of near-certainty does
/// not make every small residual an alarm.
const MIN_SPREAD: f64 = 0.05;

/// A detector: a score per step of a grid (NaN where not scored).
pub trait Detector {
    /// The name `anomalies/` records (`lstm`, `zscore`, `ewma`).
    fn name(&self) -> &'static str;
    /// Scores of every step of `grid` (NaN for a gap), in the order of the grid.
    fn scores(&self, grid: &[f64]) -> Vec<f64>;
    /// [`Detector::scores`] of a series with a reference on its steps (a canary's baseline);
    /// detectors that read no reference score the series alone.
    fn scores_with(&self, grid: &[f64], reference: Option<&[f64]>) -> Vec<f64> {
        let _ = reference;
        self.scores(grid)
    }
}

/// One training series of the series forecaster: its grid and its reference on the same steps
/// (a canary's baseline), if any.
#[derive(Debug, Clone, Copy)]
pub struct TrainSeries<'a> {
    pub values: &'a [f64],
    pub reference: Option<&'a [f64]>,
}

impl<'a> TrainSeries<'a> {
    /// Views of owned (grid, reference) pairs.
    pub fn all(owned: &'a [(Vec<f64>, Option<Vec<f64>>)]) -> Vec<TrainSeries<'a>> {
        owned.iter().map(|(values, reference)| TrainSeries { values, reference: reference.as_deref() }).collect()
    }
}

/// Encodes the window before step `t` with `channels` per step: [`SERIES_CHANNELS`] (a detector
/// fitted before references) or [`PAIRED_CHANNELS`].
fn encode(layout: &SeriesLayout, channels: usize, grid: &[f64], reference: Option<&[f64]>, t: usize, scratch: &mut Vec<f64>) -> Option<SeriesWindow> {
    if channels == PAIRED_CHANNELS { encode_paired_window(layout, grid, reference, t, scratch) } else { encode_series_window(layout, grid, t, scratch) }
}

fn floor_scale(std: f64, mean: f64) -> f64 {
    std.max(1e-3 * mean.abs()).max(1e-9)
}

/// The rolling z-score baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZScoreParams {
    /// Steps before the scored one that give the mean and standard deviation.
    pub window: usize,
    /// The fewest values among them for a step to be scored.
    pub min_history: usize,
}

impl Default for ZScoreParams {
    fn default() -> Self {
        ZScoreParams { window: 30, min_history: 10 }
    }
}

/// [`ZScoreParams`] that passed `check()`: the detector itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ZScore(ZScoreParams);

impl ZScoreParams {
    pub fn check(&self) -> Result<ZScore> {
        if self.window < 2 {
            return Err(Error::invalid("zscore.window", format!("must be at least 2 steps, got {}", self.window)));
        }
        if self.min_history < 2 || self.min_history > self.window {
            return Err(Error::invalid(
                "zscore.min_history",
                format!("must be in [2, window = {}], got {}", self.window, self.min_history),
            ));
        }
        Ok(ZScore(self.clone()))
    }
}

impl Detector for ZScore {
    fn name(&self) -> &'static str {
        "zscore"
    }
    fn scores(&self, grid: &[f64]) -> Vec<f64> {
        let p = &self.0;
        (0..grid.len())
            .map(|t| {
                let y = grid[t];
                if !y.is_finite() {
                    return f64::NAN;
                }
                let before = &grid[t.saturating_sub(p.window)..t];
                let (mut n, mut sum, mut sq) = (0usize, 0.0, 0.0);
                for &v in before.iter().filter(|v| v.is_finite()) {
                    n += 1;
                    sum += v;
                    sq += v * v;
                }
                if n < p.min_history {
                    return f64::NAN;
                }
                let mean = sum / n as f64;
                let std = ((sq / n as f64 - mean * mean).max(0.0)).sqrt();
                (y - mean).abs() / floor_scale(std, mean)
            })
            .collect()
    }
}

/// The EWMA baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EwmaParams {
    /// Weight of the newest value in the mean and variance, in (0, 1).
    pub alpha: f64,
    /// Values seen before steps are scored.
    pub warmup: usize,
}

impl Default for EwmaParams {
    fn default() -> Self {
        EwmaParams { alpha: 0.1, warmup: 10 }
    }
}

/// [`EwmaParams`] that passed `check()`: the detector itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma(EwmaParams);

impl EwmaParams {
    pub fn check(&self) -> Result<Ewma> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::invalid("ewma.alpha", format!("must be in (0, 1), got {}", self.alpha)));
        }
        if self.warmup < 2 {
            return Err(Error::invalid("ewma.warmup", format!("must be at least 2 values, got {}", self.warmup)));
        }
        Ok(Ewma(self.clone()))
    }
}

impl Detector for Ewma {
    fn name(&self) -> &'static str {
        "ewma"
    }
    fn scores(&self, grid: &[f64]) -> Vec<f64> {
        let a = self.0.alpha;
        let (mut mean, mut var, mut seen) = (0.0f64, 0.0f64, 0usize);
        grid.iter()
            .map(|&y| {
                if !y.is_finite() {
                    return f64::NAN;
                }
                let score = if seen >= self.0.warmup { (y - mean).abs() / floor_scale(var.sqrt(), mean) } else { f64::NAN };
                if seen == 0 {
                    mean = y;
                } else {
                    // West's exponentially weighted mean and variance.
                    let d = y - mean;
                    let incr = a * d;
                    mean += incr;
                    var = (1.0 - a) * (var + d * incr);
                }
                seen += 1;
                score
            })
            .collect()
    }
}

/// What fitting the series forecaster takes besides the sequence parameters (hidden size,
/// epochs, batch, learning rate, patience, seed, threads).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesDetectorParams {
    pub layout: SeriesLayout,
    /// Training windows drawn (seeded) from all the training series' windows; validation takes a
    /// fifth of this.
    pub max_windows: usize,
}

/// [`SeriesDetectorParams`] that passed `check()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSeriesDetectorParams(SeriesDetectorParams);

impl SeriesDetectorParams {
    pub fn check(&self) -> Result<ValidSeriesDetectorParams> {
        let l = &self.layout;
        if l.step_us <= 0 {
            return Err(Error::invalid("detector.step", format!("must be positive, got {} µs", l.step_us)));
        }
        if l.window < 2 {
            return Err(Error::invalid("detector.window", format!("must be at least 2 steps, got {}", l.window)));
        }
        if l.min_present < 2 || l.min_present > l.window {
            return Err(Error::invalid(
                "detector.min_present",
                format!("must be in [2, window = {}], got {}", l.window, l.min_present),
            ));
        }
        if self.max_windows < 10 {
            return Err(Error::invalid("detector.max_windows", format!("must be at least 10, got {}", self.max_windows)));
        }
        Ok(ValidSeriesDetectorParams(self.clone()))
    }
}

/// The training examples of some grids: every step with a value and an encodable window before
/// it, at most `max` of them (a seeded draw).
fn examples(layout: &SeriesLayout, series: &[TrainSeries<'_>], max: usize, rng: &mut SplitMix) -> ForecastSet {
    let mut at: Vec<(usize, usize)> = Vec::new();
    for (g, grid) in series.iter().map(|s| s.values).enumerate() {
        let mut present = 0usize;
        for t in 0..grid.len() {
            // windows with enough values before them (a cheap running count, checked exactly below)
            if present >= layout.min_present && grid[t].is_finite() {
                at.push((g, t));
            }
            if grid[t].is_finite() {
                present += 1;
            }
        }
    }
    if at.len() > max {
        // partial Fisher-Yates: the first `max` of a seeded shuffle, then back in order
        for i in 0..max {
            let j = i + rng.below(at.len() - i);
            at.swap(i, j);
        }
        at.truncate(max);
        at.sort_unstable();
    }
    let mut set = ForecastSet { x: Sequences::new(layout.window, PAIRED_CHANNELS), metrics: 1, horizon: 1, y: Vec::new(), mask: Vec::new() };
    let mut scratch = Vec::new();
    for (g, t) in at {
        let TrainSeries { values, reference } = series[g];
        if let Some(w) = encode_paired_window(layout, values, reference, t, &mut scratch) {
            set.x.push(&w.values);
            set.y.push(w.normalise(values[t]) as f32);
            set.mask.push(1.0);
        }
    }
    set
}

/// The series forecaster and its residual detector (see the module docs).
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    pub layout: SeriesLayout,
    pub config: ForecasterConfig,
    forecaster: Forecaster,
    weights: (LstmWeights, DenseWeights),
}

impl ValidSeriesDetectorParams {
    /// Fits the series forecaster on windows of `train` grids, early-stopped on windows of
    /// `valid` grids (other series, or later times).
    pub fn fit(
        &self,
        sequence: &ValidSequenceParams,
        train: &[TrainSeries<'_>],
        valid: &[TrainSeries<'_>],
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<(SeriesDetector, TrainHistory)> {
        let p = &self.0;
        let mut rng = SplitMix(sequence.seed ^ 0x7365_7269_6573);
        let train_set = examples(&p.layout, train, p.max_windows, &mut rng);
        let valid_set = examples(&p.layout, valid, (p.max_windows / 5).max(10), &mut rng);
        if train_set.x.is_empty() {
            return Err(Error::invalid(
                "detector",
                format!("no training window: no series has {} steps with values", p.layout.min_present + 1),
            ));
        }
        let config = ForecasterConfig::new(SequenceLstmConfig::new(PAIRED_CHANNELS, sequence.hidden), 1, 1, QUANTILES.to_vec());
        // The validation split must not be empty for early stopping: fall back to the training
        // windows' tail when the caller has no validation series.
        let valid_set = if valid_set.x.is_empty() { tail(&train_set, 5) } else { valid_set };
        let (forecaster, history) = sequence.fit_forecaster(&config, &train_set, &valid_set, &Engine::Kernel, progress)?;
        Ok((SeriesDetector::new(p.layout, config, forecaster)?, history))
    }
}

fn tail(set: &ForecastSet, fraction: usize) -> ForecastSet {
    let n = set.x.len();
    let from = n - (n / fraction).max(1);
    let per = set.x.steps * set.x.channels;
    ForecastSet {
        x: Sequences { steps: set.x.steps, channels: set.x.channels, x: set.x.x[from * per..].to_vec() },
        metrics: 1,
        horizon: 1,
        y: set.y[from..].to_vec(),
        mask: set.mask[from..].to_vec(),
    }
}

impl SeriesDetector {
    /// Assembles a fitted detector; an error when the configuration does not fit the layout.
    pub fn new(layout: SeriesLayout, config: ForecasterConfig, forecaster: Forecaster) -> Result<SeriesDetector> {
        if layout.step_us <= 0 || layout.window < 2 || layout.min_present < 1 {
            return Err(Error::Artifact { message: format!("series detector: invalid layout {layout:?}") });
        }
        let channels_ok = config.lstm.d_input == SERIES_CHANNELS || config.lstm.d_input == PAIRED_CHANNELS;
        if !channels_ok || config.metrics != 1 || config.horizon != 1 || config.quantiles != QUANTILES {
            return Err(Error::Artifact {
                message: format!(
                    "series detector: expected {SERIES_CHANNELS} or {PAIRED_CHANNELS} channels, one metric, one step and quantiles {QUANTILES:?}, found {} channels, {} metrics, {} steps, {:?}",
                    config.lstm.d_input, config.metrics, config.horizon, config.quantiles
                ),
            });
        }
        let weights = (forecaster.lstm.weights(), forecaster.head.weights());
        Ok(SeriesDetector { layout, config, forecaster, weights })
    }

    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    /// The forecaster's weights as a burnpack record (for the artifact).
    pub(crate) fn record_bytes(&self) -> Vec<u8> {
        self.forecaster.clone().into_record().into_bytes().expect("burnpack of an in-memory record").to_vec()
    }

    /// The 10 %, 50 % and 90 % forecasts of every step of `grid` that has a value and an
    /// encodable window, in the series' units: `(step, [q10, q50, q90])`.
    pub fn forecasts(&self, grid: &[f64], reference: Option<&[f64]>) -> Vec<(usize, [f64; 3])> {
        self.predict(grid, reference).map(|(t, q, centre, scale)| (t, q.map(|z| centre + scale * z))).collect()
    }

    /// Every step of `grid` with a value and an encodable window: the step, its forecast
    /// quantiles in the window's normalised units (sorted), and the window's centre and scale.
    fn predict(&self, grid: &[f64], reference: Option<&[f64]>) -> impl Iterator<Item = (usize, [f64; 3], f64, f64)> {
        let channels = self.config.lstm.d_input;
        let mut x = Sequences::new(self.layout.window, channels);
        let mut steps = Vec::new();
        let mut scratch = Vec::new();
        for t in 0..grid.len() {
            if !grid[t].is_finite() {
                continue;
            }
            if let Some(w) = encode(&self.layout, channels, grid, reference, t, &mut scratch) {
                x.push(&w.values);
                steps.push((t, w.centre, w.scale));
            }
        }
        let rows: Vec<usize> = (0..x.len()).collect();
        let out = predict_rows(&self.weights.0, &self.weights.1, &x, &rows);
        steps.into_iter().zip(out.chunks_exact(QUANTILES.len()).map(|q| {
            let mut q = [q[0] as f64, q[1] as f64, q[2] as f64];
            q.sort_by(f64::total_cmp);
            q
        }).collect::<Vec<_>>()).map(|((t, centre, scale), q)| (t, q, centre, scale))
    }
}

impl Detector for SeriesDetector {
    fn name(&self) -> &'static str {
        "lstm"
    }
    fn scores(&self, grid: &[f64]) -> Vec<f64> {
        self.scores_with(grid, None)
    }
    fn scores_with(&self, grid: &[f64], reference: Option<&[f64]>) -> Vec<f64> {
        let mut scores = vec![f64::NAN; grid.len()];
        for (t, q, centre, scale) in self.predict(grid, reference) {
            let y = ((grid[t] - centre) / scale).clamp(-CLIP, CLIP);
            let spread = if y >= q[1] { q[2] - q[1] } else { q[1] - q[0] };
            scores[t] = (y - q[1]).abs() / spread.max(MIN_SPREAD) * Z90;
        }
        scores
    }
}

/// A one-sided CUSUM of step scores: `S_t = max(0, S_{t−1} + s_t − drift)`, so that a run of
/// moderate scores (a slow leak, a sustained shift the forecaster half follows) adds up while
/// isolated ones above `drift` decay. Unscored steps (NaN) stay NaN and carry `S` over.
pub fn cusum(scores: &[f64], drift: f64) -> Vec<f64> {
    let mut acc = 0.0f64;
    scores
        .iter()
        .map(|&s| {
            if s.is_nan() {
                return f64::NAN;
            }
            acc = (acc + s - drift).max(0.0);
            acc
        })
        .collect()
}

/// A run of alarmed steps: steps `start..=end` of the grid, the highest score at `peak`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Alarm {
    pub start: usize,
    pub end: usize,
    pub peak: usize,
    pub peak_score: f64,
    /// Steps at or above the threshold.
    pub steps: usize,
}

/// The alarms of `scores`: runs of steps scoring at least `threshold`, two runs separated by at
/// most `merge_gap` steps (unscored or below) being one alarm.
pub fn alarms(scores: &[f64], threshold: f64, merge_gap: usize) -> Vec<Alarm> {
    let mut out: Vec<Alarm> = Vec::new();
    for (t, &s) in scores.iter().enumerate() {
        if s.is_nan() || threshold.is_nan() || s < threshold {
            continue;
        }
        match out.last_mut() {
            Some(a) if t - a.end <= merge_gap + 1 => {
                a.end = t;
                a.steps += 1;
                if s > a.peak_score {
                    a.peak = t;
                    a.peak_score = s;
                }
            }
            _ => out.push(Alarm { start: t, end: t, peak: t, peak_score: s, steps: 1 }),
        }
    }
    out
}

/// Event-level counts of alarms against labelled windows (both `[start, end]` in µs, inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct EventCounts {
    pub labels: usize,
    /// Labelled windows with an alarm that overlaps them (extended by the slack).
    pub labels_detected: usize,
    pub alarms: usize,
    /// Alarms that overlap a labelled window (extended by the slack).
    pub alarms_true: usize,
    /// Σ over detected windows of (first overlapping alarm's start − window start), µs, floored
    /// at 0.
    pub delay_us_total: i64,
}

impl EventCounts {
    pub fn add(&mut self, other: &EventCounts) {
        self.labels += other.labels;
        self.labels_detected += other.labels_detected;
        self.alarms += other.alarms;
        self.alarms_true += other.alarms_true;
        self.delay_us_total += other.delay_us_total;
    }

    /// Share of alarms that are true; `None` without alarms.
    pub fn precision(&self) -> Option<f64> {
        (self.alarms > 0).then(|| self.alarms_true as f64 / self.alarms as f64)
    }

    /// Share of labelled windows detected; `None` without labels.
    pub fn recall(&self) -> Option<f64> {
        (self.labels > 0).then(|| self.labels_detected as f64 / self.labels as f64)
    }

    /// Harmonic mean of precision and recall (0 when either is 0 or undefined with labels).
    pub fn f1(&self) -> Option<f64> {
        let r = self.recall()?;
        let p = self.precision().unwrap_or(0.0);
        Some(if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 })
    }

    /// Mean detection delay of the detected windows, seconds.
    pub fn mean_delay_s(&self) -> Option<f64> {
        (self.labels_detected > 0).then(|| self.delay_us_total as f64 / self.labels_detected as f64 / 1e6)
    }
}

/// Matches the alarms of one series against its labelled windows: an alarm is true when it
/// overlaps a window extended by `slack_us` after its end; a window is detected when a true
/// alarm overlaps it so.
pub fn match_events(alarms: &[(i64, i64)], labels: &[(i64, i64)], slack_us: i64) -> EventCounts {
    let overlaps = |a: &(i64, i64), l: &(i64, i64)| a.0 <= l.1 + slack_us && a.1 >= l.0;
    let mut c = EventCounts { labels: labels.len(), alarms: alarms.len(), ..EventCounts::default() };
    c.alarms_true = alarms.iter().filter(|a| labels.iter().any(|l| overlaps(a, l))).count();
    for l in labels {
        if let Some(first) = alarms.iter().filter(|a| overlaps(a, l)).map(|a| a.0).min() {
            c.labels_detected += 1;
            c.delay_us_total += (first - l.0).max(0);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix(seed);
        (0..n).map(|i| 100.0 + 5.0 * ((i as f64) / 20.0).sin() + rng.uniform(1.0) as f64).collect()
    }

    #[test]
    fn baselines_score_a_spike_and_not_the_noise() {
        let mut g = noisy(200, 1);
        g[150] += 40.0;
        g[90] = f64::NAN;
        for d in [&ZScoreParams::default().check().unwrap() as &dyn Detector, &EwmaParams::default().check().unwrap()] {
            let s = d.scores(&g);
            assert!(s[..5].iter().all(|v| v.is_nan()), "{}: no score before the history", d.name());
            assert!(s[90].is_nan());
            assert!(s[150] > 6.0, "{}: spike scores {}", d.name(), s[150]);
            let a = alarms(&s, 6.0, 0);
            assert!(a.iter().any(|a| a.start <= 150 && a.end >= 150), "{}: {a:?}", d.name());
            assert!(a.len() <= 2, "{}: {a:?}", d.name());
        }
    }

    #[test]
    fn checks_name_the_field() {
        assert!(ZScoreParams { window: 1, min_history: 1 }.check().unwrap_err().to_string().contains("zscore.window"));
        assert!(EwmaParams { alpha: 1.5, warmup: 5 }.check().unwrap_err().to_string().contains("ewma.alpha"));
        let layout = SeriesLayout { step_us: 60_000_000, window: 30, min_present: 40 };
        assert!(SeriesDetectorParams { layout, max_windows: 100 }.check().unwrap_err().to_string().contains("detector.min_present"));
    }

    #[test]
    fn cusum_adds_up_sustained_scores_and_forgets_isolated_ones() {
        let c = cusum(&[1.0, 3.0, 1.0, f64::NAN, 3.0, 3.0, 3.0, 0.0], 2.0);
        assert_eq!(c[..3], [0.0, 1.0, 0.0]);
        assert!(c[3].is_nan());
        assert_eq!(c[4..], [1.0, 2.0, 3.0, 1.0]);
    }

    #[test]
    fn alarms_merge_runs_within_the_gap() {
        let s = [0.0, 5.0, 6.0, f64::NAN, 5.5, 0.0, 0.0, 0.0, 7.0];
        let a = alarms(&s, 5.0, 1);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].start, a[0].end, a[0].peak, a[0].steps), (1, 4, 2, 3));
        assert_eq!((a[1].start, a[1].end), (8, 8));
        assert_eq!(alarms(&s, 5.0, 0).len(), 3);
    }

    #[test]
    fn events_count_overlaps_with_slack() {
        let labels = [(100, 200), (1000, 1100)];
        let alarms = [(150, 160), (210, 220), (500, 510)];
        let c = match_events(&alarms, &labels, 0);
        assert_eq!((c.labels_detected, c.alarms_true), (1, 1));
        assert_eq!(c.delay_us_total, 50);
        let c = match_events(&alarms, &labels, 20);
        assert_eq!((c.labels_detected, c.alarms_true), (1, 2));
        assert_eq!(c.precision(), Some(2.0 / 3.0));
        assert_eq!(c.recall(), Some(0.5));
        assert!((c.f1().unwrap() - 4.0 / 7.0).abs() < 1e-12);
        let none = match_events(&[], &labels, 0);
        assert_eq!((none.precision(), none.f1()), (None, Some(0.0)));
    }

    #[test]
    fn the_series_forecaster_learns_and_scores_a_shift_on_an_unseen_series() {
        let layout = SeriesLayout { step_us: 60_000_000, window: 20, min_present: 5 };
        let params = SeriesDetectorParams { layout, max_windows: 1500 }.check().unwrap();
        let seq = super::super::SequenceParams { hidden: 16, epochs: 6, batch_size: 64, patience: 3, seed: 3, ..Default::default() }
            .check()
            .unwrap();
        let train: Vec<Vec<f64>> = (0..6).map(|s| noisy(300, s)).collect();
        let valid = [noisy(200, 50)];
        let tr: Vec<TrainSeries<'_>> = train.iter().map(|g| TrainSeries { values: g, reference: None }).collect();
        let va: Vec<TrainSeries<'_>> = valid.iter().map(|g| TrainSeries { values: g, reference: None }).collect();
        let (det, history) = params.fit(&seq, &tr, &va, &mut |_| {}).unwrap();
        assert!(history.best_epoch >= 1);
        let mut unseen: Vec<f64> = noisy(200, 99).iter().map(|v| v * 30.0 + 7.0).collect();
        for v in &mut unseen[120..140] {
            *v += 30.0 * 25.0;
        }
        let s = det.scores(&unseen);
        let quiet: Vec<f64> = s[40..110].iter().copied().filter(|v| v.is_finite()).collect();
        let median_quiet = {
            let mut q = quiet.clone();
            q.sort_by(f64::total_cmp);
            q[q.len() / 2]
        };
        assert!(s[120] > 4.0 * median_quiet.max(0.5), "shift {} vs quiet median {median_quiet}", s[120]);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&det.scores(&unseen)), bits(&s), "scoring is deterministic");
    }

    /// A baseline series (a slow wave plus noise) and its canary: the same wave with its own noise.
    fn pair(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = SplitMix(seed);
        let phase = rng.uniform(3.0) as f64;
        let level = 100.0 + rng.uniform(50.0) as f64;
        let wave: Vec<f64> = (0..n).map(|i| level * (1.0 + 0.2 * ((i as f64) / 7.0 + phase).sin())).collect();
        let baseline = wave.iter().map(|w| w + rng.uniform(1.0) as f64).collect();
        let canary = wave.iter().map(|w| w + rng.uniform(1.0) as f64).collect();
        (canary, baseline)
    }

    #[test]
    fn a_canary_wrong_from_its_start_is_flagged_against_its_baseline() {
        let layout = SeriesLayout { step_us: 60_000_000, window: 20, min_present: 5 };
        let params = SeriesDetectorParams { layout, max_windows: 3000 }.check().unwrap();
        let seq = super::super::SequenceParams { hidden: 16, epochs: 8, batch_size: 64, patience: 3, seed: 5, ..Default::default() }
            .check()
            .unwrap();
        let train: Vec<(Vec<f64>, Vec<f64>)> = (0..12).map(|s| pair(120, s)).collect();
        let valid: Vec<(Vec<f64>, Vec<f64>)> = (50..53).map(|s| pair(120, s)).collect();
        // canaries with their baselines, and the baselines alone (series without a reference)
        let with = |v: &[(Vec<f64>, Vec<f64>)]| -> Vec<(Vec<f64>, Option<Vec<f64>>)> {
            v.iter().flat_map(|(c, b)| [(c.clone(), Some(b.clone())), (b.clone(), None)]).collect()
        };
        let (tr, va) = (with(&train), with(&valid));
        let (det, _) = params.fit(&seq, &TrainSeries::all(&tr), &TrainSeries::all(&va), &mut |_| {}).unwrap();
        assert_eq!(det.config.lstm.d_input, PAIRED_CHANNELS);
        // an unseen canary 30 % above its baseline from its first step, and a healthy one
        let (healthy, baseline) = pair(60, 99);
        let wrong: Vec<f64> = healthy.iter().map(|v| v * 1.3).collect();
        let mean = |s: &[f64]| {
            let v: Vec<f64> = s.iter().copied().filter(|v| v.is_finite()).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let flagged = mean(&det.scores_with(&wrong, Some(&baseline)));
        let quiet = mean(&det.scores_with(&healthy, Some(&baseline)));
        let alone = mean(&det.scores(&wrong));
        assert!(flagged > 4.0 * quiet && flagged > 4.0 * alone, "against its baseline {flagged}, healthy {quiet}, alone {alone}");
    }
}
