//! The Hodges-Lehmann shift of canary relative to baseline, with its distribution-free
//! confidence interval.

use super::dist::{mann_whitney_exact_pmf, normal_quantile};
use super::{Method, NoData, Outcome, drop_nan, require_finite, sort, tie_term};

/// The result of [`hodges_lehmann`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HodgesLehmann {
    /// Median of the m·n pairwise differences xᵢ − yⱼ: the shift of the canary relative to the
    /// baseline (positive: the canary is larger).
    pub estimate: f64,
    /// Lower end of the confidence interval.
    pub lower: f64,
    /// Upper end of the confidence interval.
    pub upper: f64,
    /// The confidence level asked for.
    pub confidence: f64,
    /// Whether the interval's ranks came from the exact distribution of U or its normal
    /// approximation.
    pub method: Method,
    /// Canary values used (NaN dropped).
    pub n_x: usize,
    /// Baseline values used (NaN dropped).
    pub n_y: usize,
}

/// The Hodges-Lehmann estimate of the shift of canary `x` relative to baseline `y` and its
/// two-sided confidence interval at level `confidence` (Moses' distribution-free interval).
///
/// With D₍₁₎ ≤ … ≤ D₍ₘₙ₎ the sorted pairwise differences xᵢ − yⱼ, the estimate is their median
/// (J. L. Hodges & E. L. Lehmann, Ann. Math. Statist. 34 (1963) 598-611) and the interval is
/// [D₍C₎, D₍K₎] (L. E. Moses, in Walker & Lev, *Statistical Inference*, 1953; Lehmann,
/// *Nonparametrics*, 1975, §2.6), with the ranks C and K chosen as R's
/// `wilcox.test(x, y, conf.int = TRUE, conf.level = confidence)` does:
/// - **Exact** when there are no ties in the pooled sample and both samples have fewer than 50
///   values (R's rule): C = max(1, qwilcox(α/2, m, n)), the smallest q with P(U ≤ q) ≥ α/2 under
///   the exact null distribution, and K = mn + 1 − C. This is R's interval exactly.
/// - **Asymptotic** otherwise: C = max(1, ⌊mn/2 − ½ − z σ⌋ + 1) and K = min(mn, ⌊mn/2 + ½ + z σ⌋
///   + 1), z = Φ⁻¹(1 − α/2), σ² = mn/12 · ((N+1) − (Σₓ(t³−t) + Σᵧ(t³−t))/(N(N−1))) with the tie
///   groups *within* each sample. These are the points where R's continuity-corrected,
///   tie-corrected statistic W(d) (ranks of c(x − d, y)) crosses ±z, which R locates with
///   `uniroot(tol = 1e-4)`; here they are exact order statistics, so R's bounds agree to its root
///   tolerance. (R's asymptotic *estimate* is likewise a root of W, which lies in the gap around
///   the median of the differences; here it is always that median.)
///
/// No m·n array is built: the k-th smallest difference is found by bisection on the bits of the
/// `f64` answer (at most 64 steps), each step counting the differences ≤ t with one merge-like
/// pass over the sorted samples, O((m + n) log(m + n)) in time and O(m + n) in memory at any
/// size; the answers are the exact floating-point differences, as a full sort would give.
///
/// NaN are dropped; an empty sample gives `EmptyCanary` / `EmptyBaseline`; ±Inf, or differences
/// that overflow, give [`NoData::NonFinite`]; `confidence` outside (0, 1) gives
/// [`NoData::InvalidParameter`].
pub fn hodges_lehmann(x: &[f64], y: &[f64], confidence: f64) -> Outcome<HodgesLehmann> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(NoData::InvalidParameter { name: "confidence" });
    }
    let (mut xs, _) = drop_nan(x);
    let (mut ys, _) = drop_nan(y);
    if xs.is_empty() {
        return Err(NoData::EmptyCanary);
    }
    if ys.is_empty() {
        return Err(NoData::EmptyBaseline);
    }
    require_finite(&xs)?;
    require_finite(&ys)?;
    sort(&mut xs);
    sort(&mut ys);
    let (m, n) = (xs.len(), ys.len());
    let (Some(&x_min), Some(&x_max), Some(&y_min), Some(&y_max)) = (xs.first(), xs.last(), ys.first(), ys.last())
    else {
        return Err(NoData::EmptyCanary);
    };
    let mut diffs = Differences { xs: &xs, ys: &ys, min: x_min - y_max, max: x_max - y_min, sorted: Vec::new() };
    if !diffs.min.is_finite() || !diffs.max.is_finite() {
        return Err(NoData::NonFinite);
    }
    let mn = m as u128 * n as u128;
    diffs.materialize_if_small();


    let alpha = 1.0 - confidence;
    let (tie_x, ties_x) = tie_term(&xs);
    let (tie_y, ties_y) = tie_term(&ys);
    let ties = ties_x || ties_y || shares_a_value(&xs, &ys);
    let (lower_rank, upper_rank, method) = if !ties && m < 50 && n < 50 {
        let c = qwilcox_cached(alpha / 2.0, m, n).max(1);
        (c, mn + 1 - c, Method::Exact)
    } else {
        let mnf = mn as f64;
        let big_n = (m + n) as f64;
        let sigma = (mnf / 12.0 * ((big_n + 1.0) - (tie_x + tie_y) / (big_n * (big_n - 1.0)))).sqrt();
        let z = -normal_quantile(alpha / 2.0);
        let a = mnf / 2.0 - 0.5 - z * sigma;
        let b = mnf / 2.0 + 0.5 + z * sigma;
        let c = if a < 0.0 { 1 } else { (a.floor() as u128 + 1).min(mn) };
        let k = if b < 0.0 { 1 } else { (b.floor() as u128 + 1).clamp(1, mn) };
        (c, k.max(c), Method::Asymptotic)
    };
    let mid = if mn % 2 == 1 { [mn / 2 + 1, mn / 2 + 1] } else { [mn / 2, mn / 2 + 1] };
    let [lower, mid_lo, mid_hi, upper] = diffs.at_ranks([lower_rank, mid[0], mid[1], upper_rank]);
    Ok(HodgesLehmann {
        estimate: if mn % 2 == 1 { mid_lo } else { midpoint(mid_lo, mid_hi) },
        lower,
        upper,
        confidence,
        method,
        n_x: m,
        n_y: n,
    })
}

/// The smallest q with P(U ≤ q) ≥ p − 10ε under the exact null distribution of U for sizes m
/// and n (R's `qwilcox`, fuzz included); p ≤ ½.
fn qwilcox(p: f64, m: usize, n: usize) -> u128 {
    let half = m * n / 2;
    let pmf = mann_whitney_exact_pmf(m, n, half);
    let target = p - 10.0 * f64::EPSILON;
    let mut cdf = 0.0;
    for (q, prob) in pmf.iter().enumerate() {
        cdf += prob;
        if cdf >= target {
            return q as u128;
        }
    }
    half as u128
}

/// [`qwilcox`], remembered per thread: the canary windows of a feature build share a few
/// sizes, and the exact distribution costs O(min(m, n)·mn) to build. Pure memoisation (the
/// answer depends on the arguments only); the table is emptied when it grows past 4096 entries.
fn qwilcox_cached(p: f64, m: usize, n: usize) -> u128 {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static TABLE: RefCell<HashMap<(u64, usize, usize), u128>> = RefCell::new(HashMap::new());
    }
    let key = (p.to_bits(), m.min(n), m.max(n));
    if let Some(q) = TABLE.with(|t| t.borrow().get(&key).copied()) {
        return q;
    }
    let q = qwilcox(p, m, n);
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() >= 4096 {
            t.clear();
        }
        t.insert(key, q);
    });
    q
}

/// (a + b)/2 without overflow.
fn midpoint(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() { s / 2.0 } else { a / 2.0 + b / 2.0 }
}

/// Whether two sorted slices share a value.
fn shares_a_value(xs: &[f64], ys: &[f64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < xs.len() && j < ys.len() {
        if xs[i] == ys[j] {
            return true;
        }
        if xs[i] < ys[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

/// The multiset {xᵢ − yⱼ} of two sorted samples: sorted in memory when there are at most
/// [`MATERIALIZE_MAX`] of them (the common canary window, where one sort beats three bisections),
/// never materialized otherwise. Both give the same exact floating-point differences.
struct Differences<'a> {
    xs: &'a [f64],
    ys: &'a [f64],
    min: f64,
    max: f64,
    /// Every difference, ascending, when materialized.
    sorted: Vec<f64>,
}

/// The largest m·n whose differences are sorted in memory (512 KiB).
const MATERIALIZE_MAX: usize = 1 << 16;

impl Differences<'_> {
    fn materialize_if_small(&mut self) {
        if self.xs.len().saturating_mul(self.ys.len()) <= MATERIALIZE_MAX {
            let mut all = Vec::with_capacity(self.xs.len() * self.ys.len());
            for &x in self.xs {
                all.extend(self.ys.iter().map(|&y| x - y));
            }
            self.sorted = all;
        }
    }

    /// The differences of 1-based ranks `ranks` (each in 1..=mn), in the order given. In memory,
    /// by successive selections (each O(mn)) from the smallest rank up, every selection on the
    /// part right of the previous one; otherwise by [`Differences::kth`].
    fn at_ranks<const N: usize>(&mut self, ranks: [u128; N]) -> [f64; N] {
        if self.sorted.is_empty() {
            return ranks.map(|k| self.kth(k));
        }
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_by_key(|&i| ranks[i]);
        let mut out = [0.0; N];
        let mut from = 0usize;
        for i in order {
            let at = (ranks[i] - 1) as usize;
            if at >= from {
                self.sorted[from..].select_nth_unstable_by(at - from, f64::total_cmp);
                from = at;
            }
            out[i] = self.sorted[at] + 0.0;
        }
        out
    }

    /// How many differences (as computed in `f64`) are ≤ t. fl(xᵢ − yⱼ) is nondecreasing in xᵢ
    /// and nonincreasing in yⱼ, so the yⱼ with xᵢ − yⱼ ≤ t are a suffix of `ys` that only
    /// shrinks as xᵢ grows.
    fn count_le(&self, t: f64) -> u128 {
        let n = self.ys.len();
        let mut j = 0;
        let mut count = 0u128;
        for &x in self.xs {
            while j < n && x - self.ys[j] > t {
                j += 1;
            }
            count += (n - j) as u128;
        }
        count
    }

    /// The k-th smallest difference, 1 ≤ k ≤ mn: the smallest t with count_le(t) ≥ k, found by
    /// bisection over the totally ordered bit patterns of the finite doubles in [min, max].
    fn kth(&self, k: u128) -> f64 {
        let mut lo = order_key(self.min);
        let mut hi = order_key(self.max);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.count_le(from_order_key(mid)) >= k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        from_order_key(lo) + 0.0
    }
}

/// Maps a double to a `u64` whose unsigned order is the numeric order (−0 just below +0).
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_like_the_numbers_and_round_trip() {
        let values = [
            f64::NEG_INFINITY,
            -f64::MAX,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            1.0,
            f64::MAX,
            f64::INFINITY,
        ];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) < order_key(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(from_order_key(order_key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn kth_difference_equals_sorting_every_difference() {
        let xs = [-3.5, -1.0, 0.0, 0.0, 0.1, 2.0, 2.0, 7.25];
        let ys = [-2.0, 0.0, 0.1, 0.3, 2.0, 9.0];
        let mut all: Vec<f64> = xs.iter().flat_map(|x| ys.iter().map(move |y| x - y)).collect();
        all.sort_by(f64::total_cmp);
        let d = Differences { xs: &xs, ys: &ys, min: all[0], max: all[all.len() - 1], sorted: Vec::new() };
        for (k, expected) in all.iter().enumerate() {
            assert_eq!(d.kth(k as u128 + 1).to_bits(), (*expected + 0.0).to_bits(), "k = {}", k + 1);
        }
        // In memory, by selection: any set of ranks, in any order, repeated or not.
        let n = all.len() as u128;
        for ranks in [[1, n, n / 2, n / 2 + 1], [7, 7, 3, 40], [n, 1, 2, n - 1], [20, 21, 22, 23]] {
            let mut m = Differences { xs: &xs, ys: &ys, min: all[0], max: all[all.len() - 1], sorted: Vec::new() };
            m.materialize_if_small();
            assert_eq!(m.sorted.len(), all.len());
            let got = m.at_ranks(ranks);
            for (r, g) in ranks.iter().zip(got) {
                assert_eq!(g.to_bits(), (all[*r as usize - 1] + 0.0).to_bits(), "rank {r} of {ranks:?}");
            }
        }
    }

    #[test]
    fn qwilcox_matches_r() {
        // P(U ≤ 23) = 0.0216 < 0.025 ≤ P(U ≤ 24) = 0.0262 for m = n = 10 (the classical
        // two-sided 5% critical value is 23); P(U ≤ 16) = 0.00447 < 0.005 ≤ P(U ≤ 17) = 0.00575.
        assert_eq!(qwilcox(0.025, 10, 10), 24);
        assert_eq!(qwilcox(0.005, 10, 10), 17);
        assert_eq!(qwilcox(0.025, 5, 6), 4);
        assert_eq!(qwilcox(0.025, 1, 2), 0);
    }
}
