//! k-means for request profiles, seeded, with `k` given or chosen by the silhouette.
//!
//! ```text
//! KMeansParams --check()--> ValidKMeansParams --fit(rows, d)--> Clustering --predict(row)--> profile
//! ```
//!
//! **The algorithm** is scikit-learn's: k-means++ seeding with 2 + ⌊ln k⌋ greedy trials per
//! centre, then Lloyd iterations until the centres move (sum of squared shifts) less than
//! `tolerance` × the mean variance of the columns, or `max_iterations`. The best of `n_runs`
//! starts (lowest inertia) wins. Rows are processed in fixed blocks in parallel and reduced in
//! block order, so a seed gives the same bits whatever the thread count.
//!
//! **Skipping distances without changing the result.** k-means++ is most of the work (15 centres
//! × 4 candidates against every row, on the benchmark), and it computes few distances: each row
//! remembers its nearest centre, so the triangle inequality settles most (row, candidate) pairs
//! without reading the row, and an estimate from single-precision copies of the rows, with its
//! error bound, settles most of the rest; what is left is computed exactly, so the potentials and
//! draws are the bits of the full computation. Each centre costs one pass over the rows (the pass
//! that scores the candidates also applies the centre chosen before). Lloyd uses Hamerly's bounds
//! (a row whose centre provably stays the nearest is not looked at) and updates the centre sums
//! with the rows that changed centre: plain Lloyd's assignments (`tests` hold both to a plain
//! implementation).
//!
//! linfa-clustering's `KMeans` was the first engine. On the benchmark (1,000,000 × 16, k = 16)
//! it ran for more than 6 minutes where scikit-learn took 2.4 s: it stops on an absolute
//! tolerance, so it runs all 300 iterations, and it computes every distance through ndarray
//! views. It stays as the reference the tests hold this implementation to (same data, same k:
//! inertia within 1 %).
//!
//! **Choosing `k`** (`k = None`): every `k` from 2 to `k_max` is fitted on a subsample of at most
//! `select_sample` rows and scored by the mean silhouette of at most `silhouette_sample` of them
//! (how much closer each point is to its own cluster than to the next one, in [−1, 1]); the `k`
//! with the highest score is fitted on all the rows. The silhouette needs no assumption about
//! cluster shape or count, and on request vectors (mostly one-hot columns) it picks the number of
//! distinct behaviours rather than splitting a large one for inertia's sake, which the elbow of
//! the inertia curve, the usual alternative, does not decide unambiguously.
//!
//! **Weights** (recency) reach k-means through the rows the caller samples (drawn with
//! probability proportional to their weight).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::gbdt::rng::SplitMix64;
use crate::{Error, Result};

/// Hyperparameters of [`ValidKMeansParams::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KMeansParams {
    /// The number of clusters; `None` chooses it by the silhouette.
    pub k: Option<usize>,
    /// Largest `k` tried when choosing.
    pub k_max: usize,
    pub seed: u64,
    pub max_iterations: u64,
    /// Stop when the centroids move less than this (Frobenius norm).
    pub tolerance: f64,
    /// Independent k-means++ starts; the lowest inertia wins.
    pub n_runs: usize,
    /// Rows each candidate `k` is fitted on while choosing.
    pub select_sample: usize,
    /// Rows the silhouette is computed on.
    pub silhouette_sample: usize,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams { k: None, k_max: 12, seed: 1, max_iterations: 300, tolerance: 1e-4, n_runs: 1, select_sample: 20_000, silhouette_sample: 2_000 }
    }
}

/// [`KMeansParams`] that passed [`KMeansParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidKMeansParams(KMeansParams);

impl KMeansParams {
    pub fn check(self) -> Result<ValidKMeansParams> {
        if let Some(k) = self.k
            && k == 0
        {
            return Err(Error::invalid("k", "must be at least 1"));
        }
        if self.k_max < 2 {
            return Err(Error::invalid("k_max", "must be at least 2"));
        }
        if !(self.tolerance > 0.0 && self.tolerance.is_finite()) {
            return Err(Error::invalid("tolerance", format!("must be finite and > 0, got {}", self.tolerance)));
        }
        if self.max_iterations == 0 || self.n_runs == 0 {
            return Err(Error::invalid("max_iterations", "max_iterations and n_runs must be at least 1"));
        }
        if self.silhouette_sample < 10 || self.select_sample < 10 {
            return Err(Error::invalid("silhouette_sample", "samples must hold at least 10 rows"));
        }
        Ok(ValidKMeansParams(self))
    }
}

/// A fitted clustering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clustering {
    pub k: usize,
    pub d: usize,
    /// `k × d`, row-major.
    pub centroids: Vec<f64>,
    /// Mean squared distance of a fitting row to its centroid.
    pub inertia: f64,
    /// Mean silhouette of the chosen `k` (on a sample), when it was computed.
    pub silhouette: Option<f64>,
    /// `(k, silhouette)` of every candidate when `k` was chosen.
    pub candidates: Vec<(usize, f64)>,
}

/// Squared Euclidean distance, with four independent sums so the compiler can keep several
/// lanes busy (a single running sum is a dependency chain it may not reorder).
#[inline]
fn sq(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

impl Clustering {
    /// The nearest centroid (lowest index on ties).
    pub fn predict(&self, row: &[f64]) -> usize {
        let mut best = (0, f64::INFINITY);
        for c in 0..self.k {
            let dist = sq(row, &self.centroids[c * self.d..(c + 1) * self.d]);
            if dist < best.1 {
                best = (c, dist);
            }
        }
        best.0
    }

    /// [`Clustering::predict`] of every row of a row-major matrix, in parallel.
    pub fn predict_batch(&self, rows: &[f64]) -> Vec<usize> {
        rows.par_chunks(self.d.max(1)).map(|r| self.predict(r)).collect()
    }

    pub fn centroid(&self, c: usize) -> &[f64] {
        &self.centroids[c * self.d..(c + 1) * self.d]
    }
}

/// Mean silhouette of `labels` over the rows (O(n²): pass a sample). Rows alone in their
/// cluster count 0, as usual.
pub fn silhouette(rows: &[f64], d: usize, labels: &[usize], k: usize) -> f64 {
    let n = labels.len();
    if n < 2 || k < 2 {
        return 0.0;
    }
    // Collected in order, then summed in order: the same bits on every run.
    let per_point: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut sum = vec![0.0; k];
            let mut cnt = vec![0usize; k];
            let ri = &rows[i * d..(i + 1) * d];
            for j in 0..n {
                if j != i {
                    sum[labels[j]] += sq(ri, &rows[j * d..(j + 1) * d]).sqrt();
                    cnt[labels[j]] += 1;
                }
            }
            let own = labels[i];
            if cnt[own] == 0 {
                return 0.0;
            }
            let a = sum[own] / cnt[own] as f64;
            let b = (0..k).filter(|&c| c != own && cnt[c] > 0).map(|c| sum[c] / cnt[c] as f64).fold(f64::INFINITY, f64::min);
            if !b.is_finite() {
                return 0.0;
            }
            let m = a.max(b);
            if m > 0.0 { (b - a) / m } else { 0.0 }
        })
        .collect();
    per_point.iter().sum::<f64>() / n as f64
}

/// Distinct rows among `rows`, counting up to `limit`.
fn distinct(rows: &[f64], d: usize, limit: usize) -> usize {
    let mut seen = std::collections::HashSet::new();
    for r in rows.chunks(d.max(1)) {
        seen.insert(r.iter().map(|x| x.to_bits()).collect::<Vec<u64>>());
        if seen.len() >= limit {
            break;
        }
    }
    seen.len()
}

/// An evenly spaced subsample of at most `n` rows (deterministic).
fn subsample(rows: &[f64], d: usize, n: usize) -> Vec<f64> {
    let total = rows.len() / d.max(1);
    if total <= n {
        return rows.to_vec();
    }
    let mut out = Vec::with_capacity(n * d);
    for i in 0..n {
        let r = i * total / n;
        out.extend_from_slice(&rows[r * d..(r + 1) * d]);
    }
    out
}

impl ValidKMeansParams {
    pub fn params(&self) -> &KMeansParams {
        &self.0
    }

    fn fit_k(&self, rows: &[f64], d: usize, k: usize) -> Result<Clustering> {
        let n = rows.len() / d;
        if k == 0 || k > n {
            return Err(Error::invalid("k", format!("k = {k} with {n} rows")));
        }
        let p = &self.0;
        let mut best: Option<(Vec<f64>, f64)> = None;
        let mut rng = SplitMix64::new(p.seed);
        for _ in 0..p.n_runs {
            let init = plus_plus(rows, d, k, &mut rng);
            let (centroids, inertia, _) = lloyd(rows, d, k, init, p.max_iterations, p.tolerance);
            if best.as_ref().is_none_or(|b| inertia < b.1) {
                best = Some((centroids, inertia));
            }
        }
        let (centroids, inertia) = best.ok_or_else(|| Error::invalid("n_runs", "no run"))?;
        Ok(Clustering { k, d, centroids, inertia: inertia / n as f64, silhouette: None, candidates: Vec::new() })
    }

    /// The fit with the given `k` alone: no distinct-point count and no silhouette (the
    /// benchmark's path; [`Self::fit`] is the checked one).
    pub fn fit_plain(&self, rows: &[f64], d: usize) -> Result<Clustering> {
        let k = self.0.k.ok_or_else(|| Error::invalid("k", "fit_plain needs k"))?;
        self.fit_k(rows, d, k)
    }

    /// Fits on `rows` (row-major, `d` columns). Errors: no rows; fewer distinct rows than the
    /// `k` asked for (or than 2 when choosing).
    pub fn fit(&self, rows: &[f64], d: usize) -> Result<Clustering> {
        if d == 0 || rows.is_empty() || !rows.len().is_multiple_of(d) {
            return Err(Error::invalid("rows", "no rows to cluster"));
        }
        if rows.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid("rows", "a value is not finite"));
        }
        let p = &self.0;
        let sil_rows = subsample(rows, d, p.silhouette_sample);
        let score = |c: &Clustering| {
            let labels = c.predict_batch(&sil_rows);
            silhouette(&sil_rows, d, &labels, c.k)
        };
        match p.k {
            Some(k) => {
                let found = distinct(rows, d, k);
                if found < k {
                    return Err(Error::invalid("k", format!("k = {k} but the data has only {found} distinct points")));
                }
                let mut c = self.fit_k(rows, d, k)?;
                c.silhouette = (k >= 2).then(|| score(&c));
                Ok(c)
            }
            None => {
                let found = distinct(rows, d, p.k_max + 1);
                if found < 2 {
                    return Err(Error::invalid("k", "the data has a single distinct point: there is one profile, nothing to cluster"));
                }
                let top = p.k_max.min(found - 1).max(2).min(found);
                let sel = subsample(rows, d, p.select_sample);
                let mut candidates = Vec::new();
                for k in 2..=top {
                    if distinct(&sel, d, k) < k {
                        break;
                    }
                    let c = self.fit_k(&sel, d, k)?;
                    candidates.push((k, score(&c)));
                }
                let best = candidates.iter().copied().fold((2, f64::NEG_INFINITY), |a, b| if b.1 > a.1 + 1e-12 { b } else { a }).0;
                let mut c = self.fit_k(rows, d, best)?;
                c.silhouette = Some(score(&c));
                c.candidates = candidates;
                Ok(c)
            }
        }
    }
}

/// Rows per parallel block: fixed, so sums are reduced in the same order on any machine.
const BLOCK: usize = 2048;

/// Relative slack of every triangle-inequality test: a distance is left uncomputed only when the
/// bound clears it by far more than rounding can account for, so skipping never changes a result.
const MARGIN: f64 = 1e-9;

/// Squared Euclidean distance summed in column order: the order of every distance of the fit (the
/// lanes of [`Panel::dists`] do the same operations), so a row and a centre give the same bits
/// wherever the distance is computed.
#[inline(always)]
fn sq_seq(a: &[f64], b: &[f64]) -> f64 {
    // Indexing, not `zip`: the workspace's release build did not inline `Zip::new` here.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = 0.0;
    for j in 0..n {
        let t = a[j] - b[j];
        s += t * t;
    }
    s
}

/// Centres transposed into lanes: `t[j * w + c]` is column `j` of centre `c`, `w` the count rounded
/// up to a multiple of `L` (the padding lanes hold zeros and are ignored).
struct Panel<const L: usize> {
    w: usize,
    t: Vec<f64>,
}

impl<const L: usize> Panel<L> {
    fn new<'a>(centres: impl ExactSizeIterator<Item = &'a [f64]>, d: usize) -> Self {
        let w = centres.len().div_ceil(L).max(1) * L;
        let mut t = vec![0.0; w * d];
        for (c, r) in centres.enumerate() {
            for (j, &v) in r.iter().enumerate() {
                t[j * w + c] = v;
            }
        }
        Panel { w, t }
    }

    /// Squared distances of `r` to every centre, into `out[..w]`: `L` centres at a time, one
    /// column after the other, which the compiler turns into vector instructions.
    #[inline(always)]
    fn dists(&self, r: &[f64], out: &mut [f64]) {
        for (c0, o) in (0..self.w).step_by(L).zip(out.chunks_exact_mut(L)) {
            let mut acc = [0.0f64; L];
            for (j, &xj) in r.iter().enumerate() {
                let col = &self.t[j * self.w + c0..][..L];
                for l in 0..L {
                    let t = xj - col[l];
                    acc[l] += t * t;
                }
            }
            o.copy_from_slice(&acc);
        }
    }
}

/// A row drawn with probability proportional to its weight (`weight(i)`; `sums`: the sums of the
/// weights per block of `BLOCK` rows): the block by the running sum of the block sums, then the
/// row by the running sum within the block, so only that block's weights are looked at.
fn draw(n: usize, sums: &[f64], rng: &mut SplitMix64, weight: impl Fn(usize) -> f64) -> usize {
    let total: f64 = sums.iter().sum();
    let u = rng.next_f64();
    if !(total > 0.0) {
        return ((u * n as f64) as usize).min(n.saturating_sub(1));
    }
    let target = u * total;
    let mut acc = 0.0;
    for (b, &s) in sums.iter().enumerate() {
        if acc + s > target {
            let rows = b * BLOCK..((b + 1) * BLOCK).min(n);
            let mut run = acc;
            for i in rows.clone() {
                run += weight(i);
                if run > target {
                    return i;
                }
            }
            // Rounding left the rows' running sum short of the block's: its last weighted row.
            if let Some(i) = rows.rev().find(|&i| weight(i) > 0.0) {
                return i;
            }
        }
        acc += s;
    }
    (0..n).rev().find(|&i| weight(i) > 0.0).unwrap_or(0)
}

/// `limit(‖c − a‖²)`: a row at squared distance at most this from centre `a` is at least as near
/// `a` as `c` (‖c − a‖ ≥ 2·‖r − a‖), with `MARGIN` to spare.
#[inline(always)]
fn limit(sq: f64) -> f64 {
    sq * (0.25 * (1.0 - MARGIN))
}

/// Squared distance of single-precision copies, four lanes at a time: an estimate for
/// [`Estimate`], whose order of summation does not matter.
#[inline(always)]
fn sq32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 4];
    let body = n / 4 * 4;
    for j in (0..body).step_by(4) {
        for l in 0..4 {
            let t = a[j + l] - b[j + l];
            acc[l] += t * t;
        }
    }
    let mut tail = 0.0;
    for j in body..n {
        let t = a[j] - b[j];
        tail += t * t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Values beyond this are not estimated in single precision (their squares could overflow).
const F32_SAFE: f64 = 1e15;

/// When a squared distance estimated from single-precision copies ([`sq32`]) proves the exact one
/// larger than a row's squared distance `o` to its centre: rounding the copies moves a distance by
/// at most `2⁻²⁴·(‖r‖ + ‖c‖)` (`slack`, from bounds of the norms), the estimate's arithmetic by a
/// relative `(d + 8)·2⁻²⁴` (twice that is used).
struct Estimate {
    slack: f64,
    scale: f64,
}

impl Estimate {
    fn new(d: usize, row_norm: f64, col_norm: f64) -> Self {
        let eps = f32::EPSILON as f64; // 2⁻²³
        Estimate { slack: eps * (row_norm + col_norm), scale: 1.0 / (1.0 - (d + 8) as f64 * eps) }
    }

    /// The least estimate that proves the exact squared distance above `o` (infinite when the
    /// copies cannot be trusted).
    #[inline(always)]
    fn threshold(&self, o: f64) -> f64 {
        let b = o.sqrt() * (1.0 + 1e-12) + self.slack;
        b * b * self.scale
    }
}

/// A centre k-means++ chose but has not yet applied to the rows: the next pass over the rows
/// applies it along with its own work, so that each centre costs one pass.
struct Pending<'a> {
    index: u32,
    centre: &'a [f64],
    /// `limit[a]`: rows of centre `a` within this squared distance stay with `a`.
    limit: Vec<f64>,
}

impl<'a> Pending<'a> {
    fn new(index: usize, centre: &'a [f64], centroids: &[f64], d: usize) -> Self {
        Pending { index: index as u32, centre, limit: centroids.chunks(d).map(|a| limit(sq_seq(a, centre))).collect() }
    }

    /// A row's squared distance to its nearest centre once this one is in (the bits the pass
    /// leaves), from its centre `a` and squared distance `o` before.
    #[inline(always)]
    fn weight(&self, r: &[f64], a: u32, o: f64) -> f64 {
        if o <= self.limit[a as usize] { o } else { o.min(sq_seq(r, self.centre)) }
    }
}

/// Greedy k-means++ (scikit-learn's): each new centre is the best of 2 + ⌊ln k⌋ candidates drawn
/// with probability proportional to the squared distance to the nearest centre so far.
///
/// One pass over the rows per centre: it applies the centre chosen before and scores the
/// candidates; the draw needs only the per-block sums of the weights, which are the chosen
/// candidate's per-block potentials, and the weights of one block, computed on the spot.
///
/// Few distances are computed exactly, yet every potential, weight and draw has the bits of the
/// exact computation: a row at squared distance `o` from its nearest centre `a` counts
/// `min(o, ‖r − c‖²)` for a candidate `c`, which is `o` whenever ‖r − c‖² ≥ o, and that is proven
///
/// - by the triangle inequality, without reading the row, when ‖c − a‖² ≥ 4·o (each row remembers
///   its nearest centre);
/// - else by an estimate of the distance from single-precision copies of the rows (half the bytes
///   to read, twice the lanes), with its error bound ([`Estimate`]).
///
/// Only where neither proves it (the candidate may take the row) is the distance computed exactly.
fn plus_plus(x: &[f64], d: usize, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let n = x.len() / d;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let first = ((rng.next_f64() * n as f64) as usize).min(n - 1);
    let mut centroids: Vec<f64> = row(first).to_vec();
    let mut closest = vec![0.0; n];
    let mut assign = vec![0u32; n];
    let mut x32 = vec![0.0f32; n * d];
    // Per block: the largest row norm (infinite where a value is too large for the estimates).
    let mut norms = vec![0.0; n.div_ceil(BLOCK)];
    let c0 = row(first);
    let mut sums: Vec<f64> = closest
        .par_chunks_mut(BLOCK)
        .zip(x32.par_chunks_mut(BLOCK * d))
        .zip(norms.par_iter_mut())
        .zip(x.par_chunks(BLOCK * d))
        .map(|(((o, x32), norm), block)| {
            let mut s = 0.0;
            let mut big = 0.0f64;
            for ((o, r32), r) in o.iter_mut().zip(x32.chunks_mut(d)).zip(block.chunks(d)) {
                *o = sq_seq(r, c0);
                s += *o;
                big = big.max(r.iter().map(|v| v * v).sum::<f64>());
                for (a, &v) in r32.iter_mut().zip(r) {
                    *a = v as f32;
                }
            }
            let safe = block.iter().all(|v| v.abs() <= F32_SAFE);
            *norm = if safe { big.sqrt() } else { f64::INFINITY };
            s
        })
        .collect();
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut pending: Option<Pending<'_>> = None;
    for i in 1..k {
        let candidates: Vec<usize> = {
            let weight = |r: usize| pending.as_ref().map_or(closest[r], |p| p.weight(row(r), assign[r], closest[r]));
            (0..trials).map(|_| draw(n, &sums, rng, &weight)).collect()
        };
        let cands: Vec<&[f64]> = candidates.iter().map(|&c| row(c)).collect();
        // `lim[a * trials + t]`: a row of centre `a` within this squared distance is at least as
        // near `a` as candidate `t`; `all[a]`: as near as every candidate.
        let lim: Vec<f64> = centroids.chunks(d).flat_map(|a| cands.iter().map(move |c| limit(sq_seq(a, c)))).collect();
        let all: Vec<f64> = lim.chunks(trials).map(|l| l.iter().copied().fold(f64::INFINITY, f64::min)).collect();
        // The single-precision copies of the pending centre and the candidates, and their norms.
        let pend32: Vec<f32> = pending.as_ref().map_or(Vec::new(), |p| p.centre.iter().map(|&v| v as f32).collect());
        let cands32: Vec<Vec<f32>> = cands.iter().map(|c| c.iter().map(|&v| v as f32).collect()).collect();
        let col_norm = pending
            .as_ref()
            .map(|p| p.centre)
            .into_iter()
            .chain(cands.iter().copied())
            .fold(0.0f64, |m, c| if c.iter().all(|v| v.abs() <= F32_SAFE) { m.max(c.iter().map(|v| v * v).sum::<f64>().sqrt()) } else { f64::INFINITY });
        let per_block: Vec<Vec<f64>> = x
            .par_chunks(BLOCK * d)
            .zip(x32.par_chunks(BLOCK * d))
            .zip(closest.par_chunks_mut(BLOCK))
            .zip(assign.par_chunks_mut(BLOCK))
            .zip(norms.par_iter())
            .map(|((((block, block32), o), a), &norm)| {
                let est = Estimate::new(d, norm, col_norm);
                let mut near = 0.0;
                let mut pot = vec![0.0; trials];
                for (((r, r32), o), a) in block.chunks(d).zip(block32.chunks(d)).zip(o.iter_mut()).zip(a.iter_mut()) {
                    let mut threshold = None;
                    if let Some(p) = &pending
                        && *o > p.limit[*a as usize]
                    {
                        let th = est.threshold(*o);
                        if (sq32(r32, &pend32) as f64) > th {
                            threshold = Some(th);
                        } else {
                            let dn = sq_seq(r, p.centre);
                            if dn < *o {
                                (*o, *a) = (dn, p.index);
                            } else {
                                threshold = Some(th);
                            }
                        }
                    }
                    let (c, o) = (*a as usize, *o);
                    if o <= all[c] {
                        near += o;
                        continue;
                    }
                    let th = threshold.unwrap_or_else(|| est.threshold(o));
                    for (t, p) in pot.iter_mut().enumerate() {
                        *p += if o <= lim[c * trials + t] || (sq32(r32, &cands32[t]) as f64) > th { o } else { o.min(sq_seq(r, cands[t])) };
                    }
                }
                pot.iter_mut().for_each(|p| *p += near);
                pot
            })
            .collect();
        let mut potential = vec![0.0; trials];
        for b in &per_block {
            for (p, v) in potential.iter_mut().zip(b) {
                *p += v;
            }
        }
        let t = (0..trials).fold(0, |best, t| if potential[t] < potential[best] { t } else { best });
        // The rows' weights once the chosen candidate is in, per block: its block potentials.
        sums = per_block.iter().map(|p| p[t]).collect();
        pending = Some(Pending::new(i, cands[t], &centroids, d));
        centroids.extend_from_slice(cands[t]);
    }
    centroids
}

/// One assignment of Hamerly's algorithm for the current centres, given how far each moved since
/// the bounds were last updated.
struct Step<'a> {
    d: usize,
    k: usize,
    centroids: &'a [f64],
    panel: Panel<8>,
    moved: &'a [f64],
    /// The farthest any other centre moved, per centre.
    others: Vec<f64>,
    /// Half the distance from each centre to the nearest other.
    half: Vec<f64>,
}

impl<'a> Step<'a> {
    fn new(centroids: &'a [f64], d: usize, k: usize, moved: &'a [f64]) -> Self {
        let (mut top, mut second, mut arg) = (0.0f64, 0.0f64, 0);
        for (c, &m) in moved.iter().enumerate() {
            if m > top {
                (second, top, arg) = (top, m, c);
            } else if m > second {
                second = m;
            }
        }
        let others = (0..k).map(|c| if c == arg { second } else { top }).collect();
        let half = (0..k)
            .map(|c| {
                let a = &centroids[c * d..(c + 1) * d];
                let near = (0..k).filter(|&o| o != c).map(|o| sq_seq(a, &centroids[o * d..(o + 1) * d])).fold(f64::INFINITY, f64::min);
                0.5 * near.sqrt()
            })
            .collect();
        Step { d, k, centroids, panel: Panel::new(centroids.chunks(d), d), moved, others, half }
    }

    /// Moves a row's bounds with the centres and reassigns it if they no longer prove its centre
    /// the nearest; the squared distance to its centre when it was computed.
    #[inline]
    fn assign(&self, r: &[f64], a: &mut u32, u: &mut f64, l: &mut f64, buf: &mut [f64]) -> Option<f64> {
        let c = *a as usize;
        *u += self.moved[c];
        *l -= self.others[c];
        let m = self.half[c].max(*l) * (1.0 - MARGIN);
        if *u < m {
            return None;
        }
        let dc = sq_seq(r, &self.centroids[c * self.d..(c + 1) * self.d]);
        *u = dc.sqrt();
        if *u < m {
            return Some(dc);
        }
        self.panel.dists(r, buf);
        let (best, bd, second) = two_nearest(&buf[..self.k]);
        (*a, *u, *l) = (best as u32, bd.sqrt(), second.sqrt());
        Some(bd)
    }
}

/// The nearest centre (lowest index on ties), its squared distance, and the next squared distance.
#[inline(always)]
fn two_nearest(dist: &[f64]) -> (usize, f64, f64) {
    let (mut best, mut bd, mut second) = (0, f64::INFINITY, f64::INFINITY);
    for (c, &v) in dist.iter().enumerate() {
        if v < bd {
            (second, best, bd) = (bd, c, v);
        } else if v < second {
            second = v;
        }
    }
    (best, bd, second)
}

/// Per-block sums for Lloyd's first pass: the centres' sums and counts, and the columns' sums and
/// sums of squares (for the tolerance).
struct FirstSums {
    sums: Vec<f64>,
    counts: Vec<u64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
}

/// sklearn's tolerance: `relative` × the mean variance of the columns, from the per-block column
/// sums and sums of squares (reduced in block order).
fn tolerance<'b>(blocks: impl Iterator<Item = (&'b [f64], &'b [f64])>, n: usize, d: usize, relative: f64) -> f64 {
    let (mut s1, mut s2) = (vec![0.0; d], vec![0.0; d]);
    for (a, b) in blocks {
        for j in 0..d {
            s1[j] += a[j];
            s2[j] += b[j];
        }
    }
    let var: f64 = (0..d).map(|j| (s2[j] / n as f64 - (s1[j] / n as f64).powi(2)).max(0.0)).sum();
    relative * var / d as f64
}

/// The centre update from the sums and counts: the sum of the squared shifts, and how far each
/// centre moved into `moved`. An empty cluster keeps its centre.
fn update(sums: &[f64], counts: &[i64], d: usize, k: usize, centroids: &mut [f64], moved: &mut [f64]) -> f64 {
    let mut shift = 0.0;
    for c in 0..k {
        let mut m = 0.0;
        if counts[c] > 0 {
            for j in 0..d {
                let new = sums[c * d + j] / counts[c] as f64;
                let t = new - centroids[c * d + j];
                shift += t * t;
                m += t * t;
                centroids[c * d + j] = new;
            }
        }
        moved[c] = m.sqrt();
    }
    shift
}

/// The rows in blocks of [`BLOCK`] with each row's centre and distance bounds: what every pass of
/// [`lloyd`] walks in parallel.
#[allow(clippy::type_complexity)]
fn blocks<'a>(
    x: &'a [f64],
    d: usize,
    assign: &'a mut [u32],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
) -> impl IndexedParallelIterator<Item = (((&'a [f64], &'a mut [u32]), &'a mut [f64]), &'a mut [f64])> {
    x.par_chunks(BLOCK * d).zip(assign.par_chunks_mut(BLOCK)).zip(upper.par_chunks_mut(BLOCK)).zip(lower.par_chunks_mut(BLOCK))
}

/// Lloyd iterations from k-means++'s centres and bounds, until the centres move (sum of squared
/// shifts) no more than `relative` × the mean variance of the columns: the final centres, the
/// inertia (sum of squared distances to the final centres) and each row's centre.
///
/// Hamerly's algorithm: each row keeps an upper bound of the distance to its centre and a lower
/// bound of the distance to every other one; when the centres move, the bounds move by as much,
/// and a row whose upper bound stays below its lower bound and below half the distance from its
/// centre to the nearest other keeps its centre with no distance computed (the bounds are slack
/// by `MARGIN`, so these are plain Lloyd's assignments). The centre sums are summed once, then
/// updated with the rows that changed centre (per block, reduced in block order).
fn lloyd(x: &[f64], d: usize, k: usize, mut centroids: Vec<f64>, max_iter: u64, relative: f64) -> (Vec<f64>, f64, Vec<u32>) {
    let n = x.len() / d;
    let kd = k * d;
    let (mut assign, mut upper, mut lower) = (vec![0u32; n], vec![0.0; n], vec![0.0; n]);
    // The first pass: every distance, the sums, the tolerance.
    let panel = Panel::<8>::new(centroids.chunks(d), d);
    let first: Vec<FirstSums> = blocks(x, d, &mut assign, &mut upper, &mut lower)
        .map(|(((block, a), u), l)| {
            let mut f = FirstSums { sums: vec![0.0; kd], counts: vec![0; k], s1: vec![0.0; d], s2: vec![0.0; d] };
            let mut buf = vec![0.0; panel.w];
            for (((r, a), u), l) in block.chunks(d).zip(a.iter_mut()).zip(u.iter_mut()).zip(l.iter_mut()) {
                panel.dists(r, &mut buf);
                let (best, bd, second) = two_nearest(&buf[..k]);
                (*a, *u, *l) = (best as u32, bd.sqrt(), second.sqrt());
                f.counts[best] += 1;
                for (j, (s, &v)) in f.sums[best * d..(best + 1) * d].iter_mut().zip(r).enumerate() {
                    *s += v;
                    f.s1[j] += v;
                    f.s2[j] += v * v;
                }
            }
            f
        })
        .collect();
    let tol = tolerance(first.iter().map(|f| (&f.s1[..], &f.s2[..])), n, d, relative);
    let mut sums = vec![0.0; kd];
    let mut counts = vec![0i64; k];
    for f in &first {
        for (a, b) in sums.iter_mut().zip(&f.sums) {
            *a += b;
        }
        for (a, &b) in counts.iter_mut().zip(&f.counts) {
            *a += b as i64;
        }
    }
    drop(first);
    // How far each centre moved since the bounds were last moved.
    let mut moved = vec![0.0; k];
    for it in 0..max_iter {
        if it > 0 {
            let step = Step::new(&centroids, d, k, &moved);
            let deltas: Vec<Option<(Vec<f64>, Vec<i64>)>> = blocks(x, d, &mut assign, &mut upper, &mut lower)
                .map(|(((block, a), u), l)| {
                    let mut buf = vec![0.0; step.panel.w];
                    let mut delta: Option<(Vec<f64>, Vec<i64>)> = None;
                    for (((r, a), u), l) in block.chunks(d).zip(a.iter_mut()).zip(u.iter_mut()).zip(l.iter_mut()) {
                        let old = *a;
                        step.assign(r, a, u, l, &mut buf);
                        if *a != old {
                            let (s, c) = delta.get_or_insert_with(|| (vec![0.0; kd], vec![0; k]));
                            let (from, to) = (old as usize, *a as usize);
                            c[from] -= 1;
                            c[to] += 1;
                            for (j, &v) in r.iter().enumerate() {
                                s[from * d + j] -= v;
                                s[to * d + j] += v;
                            }
                        }
                    }
                    delta
                })
                .collect();
            for (s, c) in deltas.into_iter().flatten() {
                for (a, b) in sums.iter_mut().zip(s) {
                    *a += b;
                }
                for (a, b) in counts.iter_mut().zip(c) {
                    *a += b;
                }
            }
        }
        if update(&sums, &counts, d, k, &mut centroids, &mut moved) <= tol {
            break;
        }
    }
    // The assignment to the final centres and its inertia.
    let step = Step::new(&centroids, d, k, &moved);
    let sse: Vec<f64> = blocks(x, d, &mut assign, &mut upper, &mut lower)
        .map(|(((block, a), u), l)| {
            let mut buf = vec![0.0; step.panel.w];
            let mut s = 0.0;
            for (((r, a), u), l) in block.chunks(d).zip(a.iter_mut()).zip(u.iter_mut()).zip(l.iter_mut()) {
                let known = step.assign(r, a, u, l, &mut buf);
                s += known.unwrap_or_else(|| sq_seq(r, &centroids[*a as usize * d..(*a as usize + 1) * d]));
            }
            s
        })
        .collect();
    (centroids, sse.iter().sum(), assign)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain Lloyd, the reference of the accelerated one: every distance of every row at every
    /// iteration, the sums summed again from the rows each time. Its centres, inertia and
    /// assignments, and the number of centre updates.
    fn lloyd_plain(x: &[f64], d: usize, k: usize, mut centroids: Vec<f64>, max_iter: u64, relative: f64) -> (Vec<f64>, f64, Vec<u32>, u64) {
        let nearest = |r: &[f64], panel: &Panel<8>| {
            let mut buf = vec![0.0; panel.w];
            panel.dists(r, &mut buf);
            let (c, dist, _) = two_nearest(&buf[..k]);
            (c as u32, dist)
        };
        let moments: Vec<(Vec<f64>, Vec<f64>)> = x
            .chunks(BLOCK * d)
            .map(|b| {
                let (mut s1, mut s2) = (vec![0.0; d], vec![0.0; d]);
                for r in b.chunks(d) {
                    for j in 0..d {
                        s1[j] += r[j];
                        s2[j] += r[j] * r[j];
                    }
                }
                (s1, s2)
            })
            .collect();
        let tol = tolerance(moments.iter().map(|(a, b)| (&a[..], &b[..])), x.len() / d, d, relative);
        let mut assign = vec![0u32; x.len() / d];
        let mut moved = vec![0.0; k];
        let mut updates = 0;
        for _ in 0..max_iter {
            let panel = Panel::<8>::new(centroids.chunks(d), d);
            let (mut sums, mut counts) = (vec![0.0; k * d], vec![0i64; k]);
            for (r, a) in x.chunks(d).zip(assign.iter_mut()) {
                *a = nearest(r, &panel).0;
                counts[*a as usize] += 1;
                for j in 0..d {
                    sums[*a as usize * d + j] += r[j];
                }
            }
            updates += 1;
            if update(&sums, &counts, d, k, &mut centroids, &mut moved) <= tol {
                break;
            }
        }
        let panel = Panel::<8>::new(centroids.chunks(d), d);
        let mut sse = 0.0;
        for (r, a) in x.chunks(d).zip(assign.iter_mut()) {
            let (c, dist) = nearest(r, &panel);
            *a = c;
            sse += dist;
        }
        (centroids, sse, assign, updates)
    }

    /// Overlapping Gaussian blobs (many rows near the boundaries, where the bounds must not skip
    /// a reassignment), seeded.
    fn blobs(n: usize, d: usize, centres: usize, spread: f64, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let mut normal = move || {
            let (a, b) = (rng.next_f64().max(1e-12), rng.next_f64());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        };
        let c: Vec<f64> = (0..centres * d).map(|_| spread * normal()).collect();
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                x.push(c[(i * 7 % centres) * d + j] + normal());
            }
        }
        x
    }

    /// Greedy k-means++ computed the plain way: every distance of every row, every step.
    fn plus_plus_plain(x: &[f64], d: usize, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
        let n = x.len() / d;
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let first = ((rng.next_f64() * n as f64) as usize).min(n - 1);
        let mut centroids = row(first).to_vec();
        let mut closest: Vec<f64> = x.chunks(d).map(|r| sq_seq(r, row(first))).collect();
        let trials = 2 + (k as f64).ln().floor() as usize;
        for _ in 1..k {
            let sums: Vec<f64> = closest.chunks(BLOCK).map(|b| b.iter().sum()).collect();
            let candidates: Vec<usize> = (0..trials).map(|_| draw(n, &sums, rng, |i| closest[i])).collect();
            let mut potential = vec![0.0; trials];
            for (t, &c) in candidates.iter().enumerate() {
                for b in x.chunks(BLOCK * d).zip(closest.chunks(BLOCK)) {
                    potential[t] += b.0.chunks(d).zip(b.1).map(|(r, &o)| o.min(sq_seq(r, row(c)))).sum::<f64>();
                }
            }
            let t = (0..trials).fold(0, |best, t| if potential[t] < potential[best] { t } else { best });
            for (o, r) in closest.iter_mut().zip(x.chunks(d)) {
                *o = o.min(sq_seq(r, row(candidates[t])));
            }
            centroids.extend_from_slice(row(candidates[t]));
        }
        centroids
    }

    #[test]
    fn hamerly_gives_plain_lloyds_assignments() {
        for (n, d, k, spread, seed) in [(20_000, 16, 16, 1.5, 1), (30_000, 5, 9, 0.8, 2), (5_000, 3, 40, 2.0, 3), (3_000, 7, 1, 1.0, 4), (10_000, 2, 5, 0.3, 5)] {
            let x = blobs(n, d, k.max(2), spread, seed);
            let init = plus_plus(&x, d, k, &mut SplitMix64::new(seed));
            let (c, sse, a) = lloyd(&x, d, k, init.clone(), 300, 1e-8);
            let (pc, psse, pa, updates) = lloyd_plain(&x, d, k, init, 300, 1e-8);
            assert!(updates > 3 || k == 1, "n {n} k {k}: {updates} updates");
            assert_eq!(a, pa, "n {n} k {k}: assignments");
            assert!(c.iter().zip(&pc).all(|(a, b)| (a - b).abs() <= 1e-9 * (1.0 + b.abs())), "n {n} k {k}: centres");
            assert!((sse - psse).abs() <= 1e-12 * psse, "n {n} k {k}: inertia {sse} vs {psse}");
        }
    }

    #[test]
    fn pruned_plus_plus_is_the_plain_one() {
        for (n, d, k, spread, seed) in [(20_000, 16, 16, 1.5, 1), (9_000, 3, 12, 0.5, 6), (5_000, 8, 30, 3.0, 7)] {
            let mut x = blobs(n, d, k, spread, seed);
            // A block of values too large for the single-precision estimates, and duplicates.
            x[..d].iter_mut().for_each(|v| *v *= 1e20);
            let dup = x[d..2 * d].to_vec();
            x[2 * d..3 * d].copy_from_slice(&dup);
            let ours = plus_plus(&x, d, k, &mut SplitMix64::new(seed));
            let plain = plus_plus_plain(&x, d, k, &mut SplitMix64::new(seed));
            assert_eq!(ours, plain, "n {n} d {d} k {k}");
        }
    }

    #[test]
    fn the_draw_follows_the_weights() {
        // Weights 0 except three rows across blocks: only they are drawn, in proportion.
        let mut w = vec![0.0; 3 * BLOCK + 10];
        (w[5], w[BLOCK + 7], w[3 * BLOCK + 9]) = (1.0, 2.0, 1.0);
        let sums: Vec<f64> = w.chunks(BLOCK).map(|b| b.iter().sum()).collect();
        let mut rng = SplitMix64::new(11);
        let mut hits = [0usize; 3];
        for _ in 0..4000 {
            match draw(w.len(), &sums, &mut rng, |i| w[i]) {
                5 => hits[0] += 1,
                i if i == BLOCK + 7 => hits[1] += 1,
                i if i == 3 * BLOCK + 9 => hits[2] += 1,
                i => panic!("drew row {i} of weight 0"),
            }
        }
        assert!(hits.iter().zip([1000, 2000, 1000]).all(|(&h, e)| (h as f64 - e as f64).abs() < 150.0), "{hits:?}");
    }

    #[test]
    fn the_fit_is_the_same_with_one_and_two_threads() {
        let x = blobs(40_000, 6, 7, 1.0, 9);
        let p = KMeansParams { k: Some(7), seed: 4, ..Default::default() }.check().unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| p.fit_plain(&x, 6).unwrap());
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| p.fit_plain(&x, 6).unwrap());
        assert_eq!(one, two);
        assert_eq!(one.inertia.to_bits(), two.inertia.to_bits());
    }
}
