//! Trends over time (slow leaks): least-squares slope with its t-test, and the Mann-Kendall test.

use super::dist::student_t_two_sided;
use super::{Alternative, NoData, Outcome, clip_p, normal_p_value};

/// The result of [`linear_trend`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LinearTrend {
    /// Least-squares slope of y on t (units of y per unit of t).
    pub slope: f64,
    pub intercept: f64,
    /// Pearson's correlation of t and y, in [−1, 1] (0 when y is constant).
    pub r: f64,
    /// Two-sided p-value of the slope's t-test with n − 2 degrees of freedom.
    pub p_value: f64,
    /// Standard error of the slope.
    pub stderr: f64,
    /// Standard error of the intercept.
    pub intercept_stderr: f64,
    /// Points used.
    pub n: usize,
    /// Points dropped because t or y was NaN.
    pub dropped: usize,
}

/// Ordinary least squares of `y` on `t` with the t-test of the slope, as
/// `scipy.stats.linregress(t, y)` computes it (matched to 1e-12 relative):
/// with the biased (co)variances s_tt, s_ty, s_yy, slope = s_ty/s_tt, r = s_ty/√(s_tt s_yy)
/// clipped to [−1, 1], T = r √(df/((1 − r + 10⁻²⁰)(1 + r + 10⁻²⁰))), df = n − 2,
/// p = 2 P(T_df > |T|) = I_{df/(df+T²)}(df/2, ½) (Student's t through the regularized
/// incomplete beta function), stderr = √((1 − r²) s_yy / s_tt / df), intercept_stderr =
/// stderr √(s_tt + t̄²).
///
/// Pairs with a NaN are dropped and counted. `LengthMismatch` when the slices differ in length,
/// `TooFewPoints` below 3 points (SciPy answers p = 0 or 1 for two), `ConstantTime` when every
/// t is equal, `NonFinite` for ±Inf or overflow.
pub fn linear_trend(t: &[f64], y: &[f64]) -> Outcome<LinearTrend> {
    if t.len() != y.len() {
        return Err(NoData::LengthMismatch { left: t.len(), right: y.len() });
    }
    let pairs: Vec<(f64, f64)> =
        t.iter().zip(y).filter(|(a, b)| !a.is_nan() && !b.is_nan()).map(|(&a, &b)| (a, b)).collect();
    let dropped = t.len() - pairs.len();
    fit(&pairs, dropped)
}

fn fit(pairs: &[(f64, f64)], dropped: usize) -> Outcome<LinearTrend> {
    let n = pairs.len();
    if n < 3 {
        return Err(NoData::TooFewPoints { needed: 3, got: n });
    }
    if pairs.iter().any(|(a, b)| !a.is_finite() || !b.is_finite()) {
        return Err(NoData::NonFinite);
    }
    let nf = n as f64;
    let t_mean = pairs.iter().map(|p| p.0).sum::<f64>() / nf;
    let y_mean = pairs.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut stt, mut sty, mut syy) = (0.0, 0.0, 0.0);
    for &(a, b) in pairs {
        let (da, db) = (a - t_mean, b - y_mean);
        stt += da * da;
        sty += da * db;
        syy += db * db;
    }
    let (stt, sty, syy) = (stt / nf, sty / nf, syy / nf);
    if !(stt.is_finite() && sty.is_finite() && syy.is_finite()) {
        return Err(NoData::NonFinite);
    }
    if stt == 0.0 {
        return Err(NoData::ConstantTime);
    }
    let r_den = (stt * syy).sqrt();
    let r = if r_den == 0.0 { 0.0 } else { (sty / r_den).clamp(-1.0, 1.0) };
    let slope = sty / stt;
    let intercept = y_mean - slope * t_mean;
    let df = nf - 2.0;
    const TINY: f64 = 1.0e-20;
    let t_stat = r * (df / ((1.0 - r + TINY) * (1.0 + r + TINY))).sqrt();
    let p_value = clip_p(student_t_two_sided(t_stat, df));
    let stderr = ((1.0 - r * r) * syy / stt / df).sqrt();
    let intercept_stderr = stderr * (stt + t_mean * t_mean).sqrt();
    for v in [slope, intercept, stderr, intercept_stderr] {
        if !v.is_finite() {
            return Err(NoData::NonFinite);
        }
    }
    Ok(LinearTrend { slope, intercept, r, p_value, stderr, intercept_stderr, n, dropped })
}

/// The result of [`mann_kendall`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MannKendall {
    /// S = Σ_{i<j} sign(y_j − y_i).
    pub s: f64,
    /// Var(S) under no trend, tie-corrected.
    pub var_s: f64,
    /// (S − sign(S))/√Var(S), 0 when S = 0.
    pub z: f64,
    /// Kendall's τ = S / (n(n−1)/2).
    pub tau: f64,
    /// Two-sided p-value 2(1 − Φ(|z|)), computed as 2 sf(|z|) (no cancellation for small p).
    pub p_value: f64,
    /// Points used.
    pub n: usize,
    /// NaN points dropped.
    pub dropped: usize,
}

/// The Mann-Kendall test of a monotonic trend in `y`, taken in the order given (H. B. Mann,
/// Econometrica 13 (1945) 245-259; M. G. Kendall, *Rank Correlation Methods*, 1975), as
/// `pymannkendall.original_test(y)` computes it (matched to 1e-12): S = Σ_{i<j} sign(yⱼ − yᵢ),
/// Var(S) = (n(n−1)(2n+5) − Σ t(t−1)(2t+5))/18 over the tie groups t, z = (S − 1)/√Var(S) for
/// S > 0, (S + 1)/√Var(S) for S < 0, 0 for S = 0, two-sided normal p-value. S is counted in
/// O(n log n) (merge-sort inversions), not over all pairs. Sen's slope is not computed (it needs
/// the n² pairwise slopes); [`linear_trend`] gives the slope.
///
/// NaN dropped and counted; ±Inf are ordered like any value. `TooFewPoints` below 3 points.
pub fn mann_kendall(y: &[f64]) -> Outcome<MannKendall> {
    let values: Vec<f64> = y.iter().filter(|v| !v.is_nan()).map(|&v| v + 0.0).collect();
    let dropped = y.len() - values.len();
    kendall(values, dropped)
}

fn kendall(mut values: Vec<f64>, dropped: usize) -> Outcome<MannKendall> {
    let n = values.len();
    if n < 3 {
        return Err(NoData::TooFewPoints { needed: 3, got: n });
    }
    let nf = n as f64;
    let discordant = count_inversions(&mut values) as f64;
    // `values` is now sorted: count the tied pairs and the tie term of Var(S).
    let mut tied_pairs = 0.0;
    let mut tie_var = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && values[j] == values[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        tied_pairs += t * (t - 1.0) / 2.0;
        tie_var += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j;
    }
    let pairs = nf * (nf - 1.0) / 2.0;
    let s = pairs - tied_pairs - 2.0 * discordant;
    let var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_var) / 18.0;
    let z = if s > 0.0 && var_s > 0.0 {
        (s - 1.0) / var_s.sqrt()
    } else if s < 0.0 && var_s > 0.0 {
        (s + 1.0) / var_s.sqrt()
    } else {
        0.0
    };
    Ok(MannKendall { s, var_s, z, tau: s / pairs, p_value: normal_p_value(z, Alternative::TwoSided), n, dropped })
}

/// Sorts `v` (stable merge sort) and returns the number of pairs i < j with v[i] > v[j].
fn count_inversions(v: &mut [f64]) -> u64 {
    let n = v.len();
    let mut buffer = v.to_vec();
    let mut inversions = 0u64;
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if v[j] < v[i] {
                    inversions += (mid - i) as u64;
                    buffer[k] = v[j];
                    j += 1;
                } else {
                    buffer[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buffer[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buffer[k..k + (end - j)].copy_from_slice(&v[j..end]);
            start = end;
        }
        v.copy_from_slice(&buffer);
        width *= 2;
    }
    inversions
}

/// The trend of canary minus baseline over time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DifferenceTrend {
    /// Least squares of (canary − baseline) on time.
    pub ols: LinearTrend,
    /// Mann-Kendall test of (canary − baseline) in time order.
    pub mann_kendall: MannKendall,
}

/// The trend of the paired difference dᵢ = canaryᵢ − baselineᵢ over time tᵢ (a slow leak shows
/// as a positive slope): [`linear_trend`] of d on t and [`mann_kendall`] of d sorted by t (a
/// stable sort, so out-of-order samples do not fake a trend). Pairing by time (windowing,
/// aligning clocks) is the caller's job; this function pairs by position.
///
/// Triples with a NaN are dropped and counted in both results. `LengthMismatch` when the slices
/// differ in length; `NonFinite` for ±Inf in a sample; otherwise the states of the two tests.
pub fn difference_trend(t: &[f64], canary: &[f64], baseline: &[f64]) -> Outcome<DifferenceTrend> {
    if t.len() != canary.len() {
        return Err(NoData::LengthMismatch { left: t.len(), right: canary.len() });
    }
    if canary.len() != baseline.len() {
        return Err(NoData::LengthMismatch { left: canary.len(), right: baseline.len() });
    }
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(t.len());
    for ((&ti, &c), &b) in t.iter().zip(canary).zip(baseline) {
        if ti.is_nan() || c.is_nan() || b.is_nan() {
            continue;
        }
        if !c.is_finite() || !b.is_finite() {
            return Err(NoData::NonFinite);
        }
        pairs.push((ti, c - b));
    }
    let dropped = t.len() - pairs.len();
    let ols = fit(&pairs, dropped)?;
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mann_kendall = kendall(pairs.iter().map(|p| p.1 + 0.0).collect(), dropped)?;
    Ok(DifferenceTrend { ols, mann_kendall })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_match_counting_every_pair() {
        let data = [3.0, 1.0, 2.0, 2.0, 5.0, 0.0, 2.0, 9.0, 1.0, 1.0, 4.0];
        for len in 0..=data.len() {
            let v = &data[..len];
            let naive =
                (0..len).flat_map(|i| (i + 1..len).map(move |j| (i, j))).filter(|&(i, j)| v[i] > v[j]).count() as u64;
            let mut sorted = v.to_vec();
            assert_eq!(count_inversions(&mut sorted), naive, "len {len}");
            assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
