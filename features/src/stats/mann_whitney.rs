//! The Mann-Whitney U test (Wilcoxon rank-sum test) of canary against baseline.

use super::dist::{mann_whitney_exact_pmf, normal_sf};
use super::{Alternative, Method, NoData, Outcome, clip_p, drop_nan};

/// Which null distribution [`mann_whitney_u_with`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MwuMethod {
    /// SciPy's rule (`_mwu_choose_method`, SciPy 1.17): exact when at least one sample has at most
    /// 8 values and there are no ties; asymptotic otherwise.
    #[default]
    Auto,
    /// The exact distribution; falls back to the asymptotic one when there are ties (the exact
    /// null distribution assumes none) or when m·n > 2²¹ (the table would pass 16 MiB).
    Exact,
    /// The normal approximation with tie and continuity corrections.
    Asymptotic,
}

/// Largest m·n for which the exact distribution is tabulated (a table of m·n/2 + 1 floats).
const EXACT_MAX_PAIRS: u64 = 1 << 21;

/// The result of [`mann_whitney_u`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MannWhitney {
    /// U of the canary: R₁ − n_x(n_x+1)/2, with R₁ the sum of the canary's ranks (average ranks
    /// for ties). SciPy's `statistic`.
    pub u1: f64,
    /// U of the baseline: n_x·n_y − U₁.
    pub u2: f64,
    /// The standardized statistic whose normal survival function is the asymptotic p-value:
    /// (U − n_x n_y/2 − ½)/σ, with U = U₁ (greater), U₂ (less) or max(U₁, U₂) (two-sided) and σ
    /// tie-corrected; 0 when σ = 0 (every value tied). Reported for the exact method too.
    pub z: f64,
    /// The p-value, in [0, 1].
    pub p_value: f64,
    /// Canary values used (NaN dropped).
    pub n_x: usize,
    /// Baseline values used (NaN dropped).
    pub n_y: usize,
    /// NaN values dropped from the canary.
    pub nan_x: usize,
    /// NaN values dropped from the baseline.
    pub nan_y: usize,
    /// Whether tied values were found, so that σ carries the tie correction.
    pub ties_corrected: bool,
    /// The null distribution the p-value came from.
    pub method: Method,
    /// The alternative tested.
    pub alternative: Alternative,
}

impl MannWhitney {
    /// U₁/(n_x n_y): the probability that a canary value exceeds a baseline value (ties count
    /// half), the "common-language effect size"; 0.5 means no shift.
    pub fn prob_superiority(&self) -> f64 {
        self.u1 / (self.n_x as f64 * self.n_y as f64)
    }
}

/// The Mann-Whitney U test of canary `x` against baseline `y`, choosing the method as SciPy does
/// ([`MwuMethod::Auto`]). See [`mann_whitney_u_with`].
pub fn mann_whitney_u(x: &[f64], y: &[f64], alternative: Alternative) -> Outcome<MannWhitney> {
    mann_whitney_u_with(x, y, alternative, MwuMethod::Auto)
}

/// The Mann-Whitney U test of canary `x` against baseline `y`.
///
/// Ranks the pooled sample with average ranks for ties; U₁ = R₁ − m(m+1)/2, U₂ = mn − U₁.
/// - Asymptotic: z = (U − mn/2 − ½)/σ with σ² = mn/12 · ((N+1) − Σ(t³ − t)/(N(N−1))), N = m+n,
///   t the sizes of the tie groups; p = sf(z), doubled for two-sided and clipped to 1.
/// - Exact (no ties): p = P(U ≥ u) under the exact null distribution, doubled for two-sided and
///   clipped to 1.
///
/// Matches `scipy.stats.mannwhitneyu(x, y, alternative=…, method=…, use_continuity=True)`
/// (H. B. Mann & D. R. Whitney, Ann. Math. Statist. 18 (1947) 50-60; the tie correction of
/// SciPy's reference [2]); tested to 1e-12 relative. NaN are dropped first and counted; an empty
/// sample gives [`NoData::EmptyCanary`] / [`NoData::EmptyBaseline`]. When every value is tied
/// (identical constant series) σ = 0 and the p-value is 1 with z = 0, where SciPy divides by zero
/// and gets the same p-value from z = −∞.
pub fn mann_whitney_u_with(x: &[f64], y: &[f64], alternative: Alternative, method: MwuMethod) -> Outcome<MannWhitney> {
    let (xs, nan_x) = drop_nan(x);
    let (ys, nan_y) = drop_nan(y);
    if xs.is_empty() {
        return Err(NoData::EmptyCanary);
    }
    if ys.is_empty() {
        return Err(NoData::EmptyBaseline);
    }
    let (m, n) = (xs.len(), ys.len());
    let ranks = rank_sum(&xs, &ys);
    let (mf, nf) = (m as f64, n as f64);
    let mn = mf * nf;
    let u1 = ranks.rank_sum_x - mf * (mf + 1.0) / 2.0;
    let u2 = mn - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };

    let big_n = mf + nf;
    let var = mn / 12.0 * ((big_n + 1.0) - ranks.tie_term / (big_n * (big_n - 1.0)));
    let degenerate = ranks.groups == 1 || !(var > 0.0);
    let z = if degenerate { 0.0 } else { (u - mn / 2.0 - 0.5) / var.sqrt() };

    let fits = (m as u64).saturating_mul(n as u64) <= EXACT_MAX_PAIRS;
    let exact = fits
        && !ranks.has_ties
        && match method {
            MwuMethod::Auto => m <= 8 || n <= 8,
            MwuMethod::Exact => true,
            MwuMethod::Asymptotic => false,
        };
    let p = if exact {
        exact_sf(u, m, n)
    } else if degenerate {
        1.0
    } else {
        normal_sf(z)
    };
    Ok(MannWhitney {
        u1,
        u2,
        z,
        p_value: clip_p(p * factor),
        n_x: m,
        n_y: n,
        nan_x,
        nan_y,
        ties_corrected: ranks.has_ties,
        method: if exact { Method::Exact } else { Method::Asymptotic },
        alternative,
    })
}

/// P(U ≥ u) under the exact null distribution, summed from the near end as SciPy's `_MWU.sf`
/// does: cdf(mn − u) by symmetry when u ≥ mn/2, else 1 − cdf(u) + pmf(u).
fn exact_sf(u: f64, m: usize, n: usize) -> f64 {
    let mn = (m as u64).saturating_mul(n as u64);
    let u = (u.round().max(0.0) as u64).min(mn);
    let kc = mn - u;
    let k = u.min(kc);
    let pmf = mann_whitney_exact_pmf(m, n, usize::try_from(k).unwrap_or(usize::MAX));
    let cdf: f64 = pmf.iter().sum();
    if u < kc {
        let at = pmf.last().copied().unwrap_or(0.0);
        1.0 - cdf + at
    } else {
        cdf
    }
}

struct RankSummary {
    /// Sum of the canary's average ranks (1-based).
    rank_sum_x: f64,
    /// Σ(t³ − t) over the tie groups of the pooled sample.
    tie_term: f64,
    has_ties: bool,
    /// Number of distinct values in the pooled sample.
    groups: usize,
}

fn rank_sum(xs: &[f64], ys: &[f64]) -> RankSummary {
    let mut pooled: Vec<(f64, bool)> = xs.iter().map(|&v| (v, true)).chain(ys.iter().map(|&v| (v, false))).collect();
    pooled.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut has_ties = false;
    let mut groups = 0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their average.
        let average = (i + 1 + j) as f64 / 2.0;
        let in_x = pooled[i..j].iter().filter(|p| p.1).count();
        rank_sum_x += average * in_x as f64;
        let t = (j - i) as f64;
        if j - i > 1 {
            has_ties = true;
            tie_term += t * t * t - t;
        }
        groups += 1;
        i = j;
    }
    RankSummary { rank_sum_x, tie_term, has_ties, groups }
}
