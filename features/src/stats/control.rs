//! Control charts: EWMA with time-varying limits, Shewhart 3-sigma and the Western Electric
//! rules, with limits from a baseline (reference) window.

use super::{NoData, Outcome, drop_nan, require_finite};

/// Parameters of [`ewma_chart`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EwmaParams {
    /// Smoothing λ in (0, 1]; 1 is a Shewhart chart.
    pub lambda: f64,
    /// Width of the limits in standard deviations of the EWMA (L).
    pub l: f64,
}

impl Default for EwmaParams {
    /// λ = 0.2, L = 3 (Montgomery, *Introduction to Statistical Quality Control*, §9.2).
    fn default() -> Self {
        EwmaParams { lambda: 0.2, l: 3.0 }
    }
}

/// The result of [`ewma_chart`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EwmaChart {
    /// μ₀, the mean of the reference window.
    pub center: f64,
    /// σ, the sample standard deviation (n − 1) of the reference window.
    pub sigma: f64,
    /// Index in `series` (NaN positions included) of the first point whose EWMA is outside the
    /// limits; `None` when none is.
    pub first_violation: Option<usize>,
    /// Number of points whose EWMA is outside the limits.
    pub violations: usize,
    /// The EWMA after the last point (μ₀ when every point was NaN).
    pub last: f64,
    /// Points charted (NaN skipped).
    pub n: usize,
}

/// Mean and sample standard deviation of the reference window.
fn reference_stats(reference: &[f64]) -> Outcome<(f64, f64)> {
    let (r, _) = drop_nan(reference);
    if r.len() < 2 {
        return Err(NoData::TooFewPoints { needed: 2, got: r.len() });
    }
    require_finite(&r)?;
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    let sigma = var.sqrt();
    if !mean.is_finite() || !sigma.is_finite() {
        return Err(NoData::NonFinite);
    }
    Ok((mean, sigma))
}

/// An EWMA control chart of `series` (the canary) with limits from `reference` (the baseline).
///
/// z₀ = μ₀, zₜ = λ xₜ + (1 − λ) zₜ₋₁, and point t (1-based, NaN skipped) violates when
/// |zₜ − μ₀| > L σ √(λ/(2 − λ) · (1 − (1 − λ)^{2t})): the exact variance of zₜ for independent
/// points of variance σ², whose factor 1 − (1 − λ)^{2t} narrows the limits for the first points
/// (J. M. Lucas & M. S. Saccucci, Technometrics 32 (1990) 1-12; Montgomery §9.2). The EWMA is
/// kept as a deviation from μ₀, so a series equal to μ₀ never violates, even when σ = 0; with
/// σ = 0 any other value does.
///
/// `TooFewPoints` when the reference has fewer than 2 values (after NaN), `NonFinite` for ±Inf,
/// `Empty` when the series has no value, `InvalidParameter` for λ outside (0, 1] or L ≤ 0.
pub fn ewma_chart(reference: &[f64], series: &[f64], params: EwmaParams) -> Outcome<EwmaChart> {
    if !(params.lambda > 0.0 && params.lambda <= 1.0) {
        return Err(NoData::InvalidParameter { name: "lambda" });
    }
    if !(params.l > 0.0 && params.l.is_finite()) {
        return Err(NoData::InvalidParameter { name: "l" });
    }
    let (center, sigma) = reference_stats(reference)?;
    require_finite(&series.iter().copied().filter(|v| !v.is_nan()).collect::<Vec<_>>())?;
    let lambda = params.lambda;
    let keep = 1.0 - lambda;
    let asymptotic = lambda / (2.0 - lambda);
    let mut deviation = 0.0;
    let mut decay = 1.0; // (1 − λ)^{2t}
    let (mut n, mut violations, mut first_violation) = (0usize, 0usize, None);
    for (index, &x) in series.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        n += 1;
        deviation = lambda * (x - center) + keep * deviation;
        decay *= keep * keep;
        let limit = params.l * sigma * (asymptotic * (1.0 - decay)).sqrt();
        if deviation.abs() > limit {
            violations += 1;
            first_violation.get_or_insert(index);
        }
    }
    if n == 0 {
        return Err(NoData::Empty);
    }
    let last = center + deviation;
    if !last.is_finite() {
        return Err(NoData::NonFinite);
    }
    Ok(EwmaChart { center, sigma, first_violation, violations, last, n })
}

/// The result of [`control_chart`]: how many points each rule fires at.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ControlChart {
    /// μ₀, the mean of the reference window.
    pub center: f64,
    /// σ, the sample standard deviation (n − 1) of the reference window.
    pub sigma: f64,
    /// Rule 1 (Shewhart): a point beyond 3σ.
    pub shewhart: usize,
    /// Rule 2: two of three consecutive points beyond 2σ on the same side.
    pub rule2: usize,
    /// Rule 3: four of five consecutive points beyond 1σ on the same side.
    pub rule3: usize,
    /// Rule 4: eight consecutive points on the same side of the center line.
    pub rule4: usize,
    /// Index in `series` (NaN positions included) of the first point where any rule fires.
    pub first_violation: Option<usize>,
    /// Points charted (NaN skipped).
    pub n: usize,
}

/// The Shewhart 3-sigma rule and the Western Electric rules 2-4 (Western Electric, *Statistical
/// Quality Control Handbook*, 1956) on `series` (the canary), with center μ₀ and σ from
/// `reference` (the baseline; sample standard deviation).
///
/// "Beyond kσ" is strict: x − μ₀ > kσ (upper) or x − μ₀ < −kσ (lower); "same side of the
/// center" is x > μ₀ or x < μ₀ (a point on the line breaks a run). A rule fires at point i when
/// the window of the last 3 (rule 2), 5 (rule 3) or 8 (rule 4) charted points ending at i meets
/// it and point i is one of the points that meet it; windows shorter than the rule's (the first
/// points) count for rules 2 and 3, so two points beyond 2σ at the start fire rule 2. Counts are
/// the numbers of points at which each rule fires. NaN points are skipped (not charted, and not
/// breaking a window). States as [`ewma_chart`].
pub fn control_chart(reference: &[f64], series: &[f64]) -> Outcome<ControlChart> {
    let (center, sigma) = reference_stats(reference)?;
    let points: Vec<(usize, f64)> =
        series.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, &v)| (i, v - center)).collect();
    if points.is_empty() {
        return Err(NoData::Empty);
    }
    if points.iter().any(|(_, d)| !d.is_finite()) {
        return Err(NoData::NonFinite);
    }
    // +1 beyond kσ above, −1 beyond kσ below, 0 otherwise.
    let side = |d: f64, k: f64| {
        if d > k * sigma {
            1
        } else if d < -k * sigma {
            -1
        } else {
            0
        }
    };
    let (mut shewhart, mut rule2, mut rule3, mut rule4) = (0, 0, 0, 0);
    let mut first_violation = None;
    for (i, &(index, d)) in points.iter().enumerate() {
        let window = |len: usize| &points[i + 1 - len.min(i + 1)..=i];
        let mut fired = false;
        if side(d, 3.0) != 0 {
            shewhart += 1;
            fired = true;
        }
        let s2 = side(d, 2.0);
        if s2 != 0 && window(3).iter().filter(|p| side(p.1, 2.0) == s2).count() >= 2 {
            rule2 += 1;
            fired = true;
        }
        let s1 = side(d, 1.0);
        if s1 != 0 && window(5).iter().filter(|p| side(p.1, 1.0) == s1).count() >= 4 {
            rule3 += 1;
            fired = true;
        }
        let s0 = side(d, 0.0);
        if s0 != 0 && i + 1 >= 8 && window(8).iter().all(|p| side(p.1, 0.0) == s0) {
            rule4 += 1;
            fired = true;
        }
        if fired {
            first_violation.get_or_insert(index);
        }
    }
    Ok(ControlChart { center, sigma, shewhart, rule2, rule3, rule4, first_violation, n: points.len() })
}
