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
        // sklearn's tolerance: relative to the mean variance of the columns.
        // One pass, row-major, per block: the column sums and sums of squares.
        let parts: Vec<(Vec<f64>, Vec<f64>)> = rows
            .par_chunks(BLOCK * d)
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
        let (mut s1, mut s2) = (vec![0.0; d], vec![0.0; d]);
        for (a, b) in parts {
            for j in 0..d {
                s1[j] += a[j];
                s2[j] += b[j];
            }
        }
        let var: f64 = (0..d).map(|j| (s2[j] / n as f64 - (s1[j] / n as f64).powi(2)).max(0.0)).sum();
        let tol = p.tolerance * var / d as f64;
        let mut best: Option<(Vec<f64>, f64)> = None;
        let mut rng = SplitMix(p.seed);
        for _ in 0..p.n_runs {
            let init = plus_plus(rows, d, k, &mut rng);
            let (centroids, inertia) = lloyd(rows, d, k, init, p.max_iterations, tol);
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

/// SplitMix64, the seeded generator of the initialisation.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rows per parallel block: fixed, so sums are reduced in the same order on any machine.
const BLOCK: usize = 2048;

/// A row drawn with probability proportional to `w` (its cumulative sums in `cum`).
fn draw(cum: &[f64], rng: &mut SplitMix) -> usize {
    let total = *cum.last().unwrap_or(&0.0);
    if total <= 0.0 {
        return ((rng.next_f64() * cum.len() as f64) as usize).min(cum.len().saturating_sub(1));
    }
    let u = rng.next_f64() * total;
    cum.partition_point(|&c| c <= u).min(cum.len() - 1)
}

/// Greedy k-means++ (scikit-learn's): each new centre is the best of 2 + ⌊ln k⌋ candidates drawn
/// with probability proportional to the squared distance to the nearest centre so far.
fn plus_plus(x: &[f64], d: usize, k: usize, rng: &mut SplitMix) -> Vec<f64> {
    let n = x.len() / d;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let first = ((rng.next_f64() * n as f64) as usize).min(n - 1);
    let mut centroids: Vec<f64> = row(first).to_vec();
    let mut closest: Vec<f64> = x.par_chunks(d).map(|r| sq(r, row(first))).collect();
    let trials = 2 + (k as f64).ln().floor() as usize;
    for _ in 1..k {
        let mut cum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &c in &closest {
            acc += c;
            cum.push(acc);
        }
        let candidates: Vec<usize> = (0..trials).map(|_| draw(&cum, rng)).collect();
        // The candidate that lowers the potential most: every candidate's potential in one pass
        // (per-block sums, reduced in block order).
        let cands: Vec<&[f64]> = candidates.iter().map(|&c| row(c)).collect();
        let per_block: Vec<Vec<f64>> = x
            .par_chunks(BLOCK * d)
            .zip(closest.par_chunks(BLOCK))
            .map(|(block, old)| {
                let mut pot = vec![0.0; cands.len()];
                for (r, &o) in block.chunks(d).zip(old) {
                    for (t, cand) in cands.iter().enumerate() {
                        pot[t] += o.min(sq(r, cand));
                    }
                }
                pot
            })
            .collect();
        let mut potential = vec![0.0; cands.len()];
        for b in per_block {
            for (p, v) in potential.iter_mut().zip(b) {
                *p += v;
            }
        }
        let t = (0..cands.len()).fold(0, |best, t| if potential[t] < potential[best] { t } else { best });
        let c = candidates[t];
        let cand = row(c);
        closest.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK * d)).for_each(|(old, block)| {
            for (o, r) in old.iter_mut().zip(block.chunks(d)) {
                *o = o.min(sq(r, cand));
            }
        });
        centroids.extend_from_slice(row(c));
    }
    centroids
}

/// Nearest centre of a row and the squared distance.
fn nearest(r: &[f64], centroids: &[f64], d: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, cen) in centroids.chunks(d).enumerate() {
        let dist = sq(r, cen);
        if dist < best.1 {
            best = (c, dist);
        }
    }
    best
}

/// Lloyd iterations from `centroids`: the final centres and inertia (sum of squared distances).
fn lloyd(x: &[f64], d: usize, k: usize, mut centroids: Vec<f64>, max_iter: u64, tol: f64) -> (Vec<f64>, f64) {
    let mut inertia = f64::INFINITY;
    for _ in 0..max_iter {
        // Assign and sum per block, then reduce the blocks in order.
        let parts: Vec<(Vec<f64>, Vec<u64>, f64)> = x
            .par_chunks(BLOCK * d)
            .map(|block| {
                let mut sums = vec![0.0; k * d];
                let mut counts = vec![0u64; k];
                let mut sse = 0.0;
                for r in block.chunks(d) {
                    let (c, dist) = nearest(r, &centroids, d);
                    sse += dist;
                    counts[c] += 1;
                    for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(r) {
                        *s += v;
                    }
                }
                (sums, counts, sse)
            })
            .collect();
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0u64; k];
        inertia = 0.0;
        for (s, c, e) in parts {
            for (a, b) in sums.iter_mut().zip(s) {
                *a += b;
            }
            for (a, b) in counts.iter_mut().zip(c) {
                *a += b;
            }
            inertia += e;
        }
        let mut shift = 0.0;
        for c in 0..k {
            if counts[c] == 0 {
                continue; // an empty cluster keeps its centre
            }
            for j in 0..d {
                let new = sums[c * d + j] / counts[c] as f64;
                shift += (new - centroids[c * d + j]).powi(2);
                centroids[c * d + j] = new;
            }
        }
        if shift <= tol {
            break;
        }
    }
    // The inertia of the final centres.
    let final_sse: f64 = x.par_chunks(BLOCK * d).map(|b| b.chunks(d).map(|r| nearest(r, &centroids, d).1).sum::<f64>()).collect::<Vec<f64>>().iter().sum();
    let _ = inertia;
    (centroids, final_sse)
}
