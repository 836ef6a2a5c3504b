//! Location summaries (mean, median, quantiles) and canary/baseline ratios of them.

use super::{NoData, Outcome, drop_nan, finite, require_finite, sort};

/// The arithmetic mean (Neumaier-compensated sum / n). NaN dropped; `Empty` when nothing is
/// left; `NonFinite` for ±Inf or an overflowing sum. Matches `numpy.mean` to 1e-14 relative.
pub fn mean(xs: &[f64]) -> Outcome<f64> {
    let (v, _) = drop_nan(xs);
    if v.is_empty() {
        return Err(NoData::Empty);
    }
    require_finite(&v)?;
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for &x in &v {
        let t = sum + x;
        compensation += if sum.abs() >= x.abs() { (sum - t) + x } else { (x - t) + sum };
        sum = t;
    }
    let mean = (sum + compensation) / v.len() as f64;
    if mean.is_finite() {
        return Ok(mean);
    }
    // The sum overflowed: average the scaled values instead.
    let scaled: f64 = v.iter().map(|x| x / v.len() as f64).sum();
    finite(scaled)
}

/// The q-th quantile, q in [0, 1], with NumPy's default (`method='linear'`, Hyndman & Fan type
/// 7): with the values sorted, h = (n−1)q, the answer is v₍⌊h⌋₎ + (h − ⌊h⌋)(v₍⌊h⌋+1₎ − v₍⌊h⌋₎),
/// interpolated as NumPy's `_lerp` does. Matches `numpy.quantile(x, q)` to 1e-14. NaN dropped;
/// `Empty` when nothing is left; `NonFinite` for ±Inf; `InvalidParameter` for q outside [0, 1].
pub fn quantile(xs: &[f64], q: f64) -> Outcome<f64> {
    if !(0.0..=1.0).contains(&q) {
        return Err(NoData::InvalidParameter { name: "q" });
    }
    let (mut v, _) = drop_nan(xs);
    if v.is_empty() {
        return Err(NoData::Empty);
    }
    require_finite(&v)?;
    sort(&mut v);
    finite(quantile_sorted(&v, q))
}

/// The median: [`quantile`] at ½ (the mean of the two middle values for an even count).
pub fn median(xs: &[f64]) -> Outcome<f64> {
    quantile(xs, 0.5)
}

/// NumPy's linear quantile of sorted, finite, nonempty values.
pub(crate) fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let n = v.len();
    let h = (n - 1) as f64 * q;
    let lo = (h.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let gamma = h - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    let diff = b - a;
    if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma }
}

/// A canary/baseline ratio with its two parts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ratio {
    /// The canary's statistic.
    pub canary: f64,
    /// The baseline's statistic.
    pub baseline: f64,
    /// canary / baseline.
    pub ratio: f64,
}

fn ratio(canary: Outcome<f64>, baseline: Outcome<f64>) -> Outcome<Ratio> {
    let canary = canary.map_err(|e| if e == NoData::Empty { NoData::EmptyCanary } else { e })?;
    let baseline = baseline.map_err(|e| if e == NoData::Empty { NoData::EmptyBaseline } else { e })?;
    if baseline == 0.0 {
        return Err(NoData::ZeroBaseline);
    }
    Ok(Ratio { canary, baseline, ratio: finite(canary / baseline)? })
}

/// mean(canary) / mean(baseline). `EmptyCanary` / `EmptyBaseline` for an empty side,
/// `ZeroBaseline` when the baseline's mean is 0, `NonFinite` for ±Inf or an overflowing ratio.
pub fn ratio_of_means(canary: &[f64], baseline: &[f64]) -> Outcome<Ratio> {
    ratio(mean(canary), mean(baseline))
}

/// quantile(canary, q) / quantile(baseline, q), with [`quantile`]'s definition and
/// [`ratio_of_means`]' missing-data states.
pub fn ratio_of_quantiles(canary: &[f64], baseline: &[f64], q: f64) -> Outcome<Ratio> {
    ratio(quantile(canary, q), quantile(baseline, q))
}

/// The ratios of mean, median and p99 of canary over baseline, each with its own state.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ratios {
    pub mean: Outcome<Ratio>,
    pub median: Outcome<Ratio>,
    pub p99: Outcome<Ratio>,
}

/// The ratios of mean, median and 99th percentile of canary over baseline.
pub fn ratios(canary: &[f64], baseline: &[f64]) -> Ratios {
    Ratios {
        mean: ratio_of_means(canary, baseline),
        median: ratio_of_quantiles(canary, baseline, 0.5),
        p99: ratio_of_quantiles(canary, baseline, 0.99),
    }
}
