//! k-means for request profiles: linfa-clustering's `KMeans` (k-means++ initialisation, Lloyd
//! iterations), seeded, with `k` given or chosen by the silhouette.
//!
//! ```text
//! KMeansParams --check()--> ValidKMeansParams --fit(rows, d)--> Clustering --predict(row)--> profile
//! ```
//!
//! **Choosing `k`** (`k = None`): every `k` from 2 to `k_max` is fitted on a subsample of at most
//! `select_sample` rows and scored by the mean silhouette of at most `silhouette_sample` of them
//! (how much closer each point is to its own cluster than to the next one, in [−1, 1]); the `k`
//! with the highest score is fitted on all the rows. The silhouette needs no assumption about
//! cluster shape or count, and on request vectors (mostly one-hot columns) it picks the number of
//! distinct behaviours rather than splitting a large one for inertia's sake, which the elbow of
//! the inertia curve, the usual alternative, does not decide unambiguously.
//!
//! **Weights** are not a parameter of linfa's k-means: recency weighting is applied by the
//! caller through the rows it samples (drawn with probability proportional to their weight).

use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView2};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
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

fn sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
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
        let x: ArrayView2<'_, f64> = ArrayView2::from_shape((n, d), rows).map_err(|e| Error::invalid("rows", e.to_string()))?;
        let data = DatasetBase::from(x);
        let p = &self.0;
        let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(p.seed))
            .init_method(KMeansInit::KMeansPlusPlus)
            .max_n_iterations(p.max_iterations)
            .tolerance(p.tolerance)
            .n_runs(p.n_runs)
            .fit(&data)
            .map_err(|e| Error::invalid("k", format!("k-means with k = {k}: {e}")))?;
        let c: &Array2<f64> = model.centroids();
        Ok(Clustering { k, d, centroids: c.iter().copied().collect(), inertia: model.inertia(), silhouette: None, candidates: Vec::new() })
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
        if d == 0 || rows.is_empty() || rows.len() % d != 0 {
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
