//! Canary-versus-baseline features of one metric (or one error-rate pair) over one window.

use super::value::{Kind, Value};
use super::window::Window;
use super::ValidFeatureParams;
use crate::stats::{
    self, Alternative, ErrorCounts, EventCounts, NoData, control_chart, difference_trend, ewma_chart, hodges_lehmann,
    mann_whitney_u,
};

/// The state of a metric's window. Only the window decides it (nothing after the checkpoint),
/// so it is point-in-time like every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Both sides have at least one non-NaN value.
    Ok,
    /// Neither side has a non-NaN value in the window (the metric is not reported, or not yet).
    NoData,
    /// Only the baseline has values: every comparison is NODATA.
    CanaryMissing,
    /// Only the canary has values (a metric scraped for the canary alone).
    BaselineMissing,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Ok => "ok",
            WindowState::NoData => "no_data",
            WindowState::CanaryMissing => "canary_missing",
            WindowState::BaselineMissing => "baseline_missing",
        }
    }

    fn of(canary: usize, baseline: usize) -> WindowState {
        match (canary > 0, baseline > 0) {
            (true, true) => WindowState::Ok,
            (false, false) => WindowState::NoData,
            (false, true) => WindowState::CanaryMissing,
            (true, false) => WindowState::BaselineMissing,
        }
    }
}

/// The statistics of one metric, canary against baseline, in one window. `None` is NODATA: the
/// window's [`WindowState`] says why when it is not `Ok`; otherwise the statistic itself had no
/// value (see [`METRIC_COLUMNS`] for each one's reason).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricFeatures {
    pub state: Option<WindowState>,
    pub n_canary: i64,
    pub n_baseline: i64,
    pub nan: i64,
    pub infinite: i64,
    pub duplicates: i64,
    pub canary_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    pub mwu_p: Option<f64>,
    pub prob_superiority: Option<f64>,
    pub hl_shift: Option<f64>,
    pub hl_lower: Option<f64>,
    pub hl_upper: Option<f64>,
    pub rel_shift: Option<f64>,
    pub ratio_mean: Option<f64>,
    pub ratio_median: Option<f64>,
    pub ratio_p99: Option<f64>,
    pub trend_pairs: i64,
    pub trend_slope: Option<f64>,
    pub trend_p: Option<f64>,
    pub ewma_violations: Option<i64>,
    pub shewhart: Option<i64>,
    pub western_electric: Option<i64>,
}

/// Name (after `m__<metric>__`), kind and meaning of each metric feature, in column order.
pub const METRIC_COLUMNS: &[(&str, Kind, &str)] = &[
    ("state", Kind::Str, "`ok`, `no_data`, `canary_missing` or `baseline_missing`: whether each side has a non-NaN value in the window"),
    ("n_canary", Kind::Int, "canary samples in the window (NaN excluded, duplicates collapsed)"),
    ("n_baseline", Kind::Int, "baseline samples in the window (NaN excluded, duplicates collapsed)"),
    ("nan", Kind::Int, "NaN samples in the window, both sides (missing values, never compared)"),
    ("infinite", Kind::Int, "±Inf samples in the window, both sides: ranked by the Mann-Whitney test, left out of every statistic that averages or subtracts"),
    ("duplicates", Kind::Int, "duplicate samples (same series and time) collapsed, both sides"),
    ("canary_mean", Kind::Float, "mean of the canary's finite values"),
    ("baseline_mean", Kind::Float, "mean of the baseline's finite values"),
    ("mwu_p", Kind::Float, "two-sided Mann-Whitney U p-value, ties corrected"),
    ("prob_superiority", Kind::Float, "U₁/(mn): the probability that a canary value exceeds a baseline value (ties count ½)"),
    ("hl_shift", Kind::Float, "Hodges-Lehmann shift, canary minus baseline"),
    ("hl_lower", Kind::Float, "lower end of the shift's confidence interval (`confidence`, default 95 %)"),
    ("hl_upper", Kind::Float, "upper end of the shift's confidence interval"),
    ("rel_shift", Kind::Float, "hl_shift / |median of the baseline|; null when that median is 0"),
    ("ratio_mean", Kind::Float, "mean(canary)/mean(baseline); null when the baseline's mean is 0"),
    ("ratio_median", Kind::Float, "median ratio; null when the baseline's median is 0"),
    ("ratio_p99", Kind::Float, "99th-percentile ratio; null when the baseline's p99 is 0"),
    ("trend_pairs", Kind::Int, "canary samples paired with a baseline sample within `max_pair_gap` (clock skew beyond it leaves samples unpaired)"),
    ("trend_slope", Kind::Float, "least-squares slope of canary − baseline per minute (a slow leak is positive); null under 3 pairs"),
    ("trend_p", Kind::Float, "two-sided Mann-Kendall p-value of canary − baseline in time order; null under 3 pairs"),
    ("ewma_violations", Kind::Int, "canary points whose EWMA leaves the baseline's limits; null under 2 baseline values"),
    ("shewhart", Kind::Int, "canary points beyond the baseline's 3σ; null under 2 baseline values"),
    ("western_electric", Kind::Int, "canary points firing Western Electric rules 2-4; null under 2 baseline values"),
];

impl MetricFeatures {
    /// The values in [`METRIC_COLUMNS`] order.
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Str(self.state.map(|s| s.as_str().to_owned())),
            Value::Int(Some(self.n_canary)),
            Value::Int(Some(self.n_baseline)),
            Value::Int(Some(self.nan)),
            Value::Int(Some(self.infinite)),
            Value::Int(Some(self.duplicates)),
            Value::float(self.canary_mean),
            Value::float(self.baseline_mean),
            Value::float(self.mwu_p),
            Value::float(self.prob_superiority),
            Value::float(self.hl_shift),
            Value::float(self.hl_lower),
            Value::float(self.hl_upper),
            Value::float(self.rel_shift),
            Value::float(self.ratio_mean),
            Value::float(self.ratio_median),
            Value::float(self.ratio_p99),
            Value::Int(Some(self.trend_pairs)),
            Value::float(self.trend_slope),
            Value::float(self.trend_p),
            Value::Int(self.ewma_violations),
            Value::Int(self.shewhart),
            Value::Int(self.western_electric),
        ]
    }
}

const MICROS_PER_MINUTE: f64 = 60_000_000.0;

/// The canary-versus-baseline statistics of one metric over one window (the windows of both
/// sides cut by the caller to the same `[start, checkpoint]`, each by its own timestamps).
/// `start` is the canary start, the origin of the trend's time axis.
pub fn metric_features(canary: Window<'_>, baseline: Window<'_>, start: i64, params: &ValidFeatureParams) -> MetricFeatures {
    let (n_c, n_b) = (canary.count(), baseline.count());
    let state = WindowState::of(n_c, n_b);
    let (xf, yf) = (canary.finite_values(), baseline.finite_values());
    let mut f = MetricFeatures {
        state: Some(state),
        n_canary: n_c as i64,
        n_baseline: n_b as i64,
        nan: (canary.nan() + baseline.nan()) as i64,
        infinite: (n_c - xf.len() + n_b - yf.len()) as i64,
        duplicates: (canary.duplicates + baseline.duplicates) as i64,
        canary_mean: stats::mean(&xf).ok(),
        baseline_mean: stats::mean(&yf).ok(),
        ..MetricFeatures::default()
    };
    let (x, y) = (canary.values, baseline.values);
    if state == WindowState::Ok {
        if let Ok(mw) = mann_whitney_u(x, y, Alternative::TwoSided) {
            f.mwu_p = Some(mw.p_value);
            f.prob_superiority = Some(mw.prob_superiority());
        }
        let (x, y) = (xf.as_slice(), yf.as_slice());
        if let Ok(hl) = hodges_lehmann(x, y, params.confidence) {
            f.hl_shift = Some(hl.estimate);
            f.hl_lower = Some(hl.lower);
            f.hl_upper = Some(hl.upper);
            f.rel_shift = stats::median(y).ok().filter(|m| *m != 0.0).map(|m| hl.estimate / m.abs()).filter(|v| v.is_finite());
        }
        let ratios = stats::ratios(x, y);
        f.ratio_mean = ratios.mean.ok().map(|r| r.ratio);
        f.ratio_median = ratios.median.ok().map(|r| r.ratio);
        f.ratio_p99 = ratios.p99.ok().map(|r| r.ratio);
        let (t, c, b) = pair_nearest(canary, baseline, params.max_pair_gap_us, start);
        f.trend_pairs = t.len() as i64;
        if let Ok(trend) = difference_trend(&t, &c, &b) {
            f.trend_slope = Some(trend.ols.slope);
            f.trend_p = Some(trend.mann_kendall.p_value);
        }
        if let Ok(ewma) = ewma_chart(y, x, params.ewma) {
            f.ewma_violations = Some(ewma.violations as i64);
        }
        if let Ok(chart) = control_chart(y, x) {
            f.shewhart = Some(chart.shewhart as i64);
            f.western_electric = Some((chart.rule2 + chart.rule3 + chart.rule4) as i64);
        }
    }
    f
}

/// Pairs each finite canary sample, in time order, with the nearest unused finite baseline
/// sample no more than `gap` µs away; returns (minutes since `start`, canary, baseline).
fn pair_nearest(canary: Window<'_>, baseline: Window<'_>, gap: i64, start: i64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let base: Vec<(i64, f64)> =
        baseline.ts.iter().zip(baseline.values).filter(|(_, v)| v.is_finite()).map(|(&t, &v)| (t, v)).collect();
    let (mut t, mut c, mut b) = (Vec::new(), Vec::new(), Vec::new());
    let mut j = 0;
    for (&ts, &v) in canary.ts.iter().zip(canary.values) {
        if !v.is_finite() {
            continue;
        }
        while j < base.len() && base[j].0 < ts.saturating_sub(gap) {
            j += 1;
        }
        if j >= base.len() {
            break;
        }
        // The nearest of the unused samples from j on (they are sorted by time).
        let mut best = j;
        let mut k = j + 1;
        while k < base.len() && base[k].0 <= ts.saturating_add(gap) {
            if (base[k].0 - ts).abs() < (base[best].0 - ts).abs() {
                best = k;
            }
            k += 1;
        }
        if (base[best].0 - ts).abs() <= gap {
            t.push((ts - start) as f64 / MICROS_PER_MINUTE);
            c.push(v);
            b.push(base[best].1);
            j = best + 1;
        }
    }
    (t, c, b)
}

/// The state of an error-rate pair's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountState {
    Ok,
    /// A side's error counter has fewer than two samples of one series in the window.
    NoData,
    /// The total counter is configured but has no increase on a side.
    NoTotal,
    /// More errors than requests (counters scraped at different times).
    ErrorsExceedTotal,
}

impl CountState {
    pub fn as_str(self) -> &'static str {
        match self {
            CountState::Ok => "ok",
            CountState::NoData => "no_data",
            CountState::NoTotal => "no_total",
            CountState::ErrorsExceedTotal => "errors_exceed_total",
        }
    }
}

/// The error-rate comparison of one configured pair of counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorRateFeatures {
    pub state: Option<CountState>,
    pub errors_canary: Option<f64>,
    pub errors_baseline: Option<f64>,
    pub rate_canary: Option<f64>,
    pub rate_baseline: Option<f64>,
    pub p_value: Option<f64>,
}

/// Name (after `e__<name>__`), kind and meaning of each error-rate feature, in column order.
pub const ERROR_RATE_COLUMNS: &[(&str, Kind, &str)] = &[
    ("state", Kind::Str, "`ok`, `no_data`, `no_total` or `errors_exceed_total`"),
    ("errors_canary", Kind::Float, "increase of the canary's error counter over the window (resets handled)"),
    ("errors_baseline", Kind::Float, "increase of the baseline's error counter"),
    ("rate_canary", Kind::Float, "canary errors per request (per second without a total counter)"),
    ("rate_baseline", Kind::Float, "baseline errors per request (per second without a total counter)"),
    ("p_value", Kind::Float, "one-sided p-value that the canary's rate is higher: two-proportion z-test, Fisher's exact test on sparse counts, or the exact conditional Poisson test without totals"),
];

impl ErrorRateFeatures {
    /// The values in [`ERROR_RATE_COLUMNS`] order.
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Str(self.state.map(|s| s.as_str().to_owned())),
            Value::float(self.errors_canary),
            Value::float(self.errors_baseline),
            Value::float(self.rate_canary),
            Value::float(self.rate_baseline),
            Value::float(self.p_value),
        ]
    }
}

/// The counter windows of one error-rate pair.
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterWindows<'a> {
    pub canary_errors: Window<'a>,
    pub baseline_errors: Window<'a>,
    /// The request counters; `None` when the pair has no total (a Poisson rate per second).
    pub canary_total: Option<Window<'a>>,
    pub baseline_total: Option<Window<'a>>,
}

/// Compares the error rates of canary and baseline from counter increases over the window
/// `[start, end]` (seconds of exposure for the Poisson test). Counts are rounded to integers.
pub fn error_rate_features(w: CounterWindows<'_>, start: i64, end: i64) -> ErrorRateFeatures {
    let (Some(ec), Some(eb)) = (w.canary_errors.counter_increase(), w.baseline_errors.counter_increase()) else {
        return ErrorRateFeatures { state: Some(CountState::NoData), ..Default::default() };
    };
    let mut f = ErrorRateFeatures {
        state: Some(CountState::Ok),
        errors_canary: Some(ec),
        errors_baseline: Some(eb),
        ..Default::default()
    };
    let count = |v: f64| v.round().max(0.0) as u64;
    match (w.canary_total, w.baseline_total) {
        (Some(tc), Some(tb)) => {
            let (Some(nc), Some(nb)) = (tc.counter_increase(), tb.counter_increase()) else {
                f.state = Some(CountState::NoTotal);
                return f;
            };
            let canary = ErrorCounts { errors: count(ec), total: count(nc) };
            let baseline = ErrorCounts { errors: count(eb), total: count(nb) };
            match stats::two_proportion_test(canary, baseline, Alternative::Greater) {
                Ok(test) => {
                    f.rate_canary = Some(test.rate_canary);
                    f.rate_baseline = Some(test.rate_baseline);
                    f.p_value = Some(test.p_value);
                }
                Err(NoData::EventsExceedTotal) => f.state = Some(CountState::ErrorsExceedTotal),
                Err(_) => f.state = Some(CountState::NoTotal),
            }
        }
        _ => {
            let seconds = (end - start) as f64 / 1e6;
            let canary = EventCounts { events: count(ec), exposure: seconds };
            let baseline = EventCounts { events: count(eb), exposure: seconds };
            match stats::poisson_rate_test(canary, baseline, Alternative::Greater) {
                Ok(test) => {
                    f.rate_canary = Some(test.rate_canary);
                    f.rate_baseline = Some(test.rate_baseline);
                    f.p_value = Some(test.p_value);
                }
                Err(_) => f.state = Some(CountState::NoData),
            }
        }
    }
    f
}
