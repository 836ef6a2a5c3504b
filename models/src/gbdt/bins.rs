//! Quantile binning: each feature's values become at most `max_bin − 1` value bins plus one
//! bin for missing values (NaN), stored as one byte per value.

use super::rng::SplitMix64;

/// The bin boundaries of one feature. Value bin `b` holds the values `x` with
/// `upper[b − 1] < x ≤ upper[b]` (the last upper bound is +∞); NaN goes to [`BinMapper::missing`].
#[derive(Debug, Clone, PartialEq)]
pub struct BinMapper {
    /// Upper bounds of the value bins, ascending; the last is +∞.
    pub upper: Vec<f64>,
}

impl BinMapper {
    /// Boundaries from `values` (NaN ignored): one bin per distinct value when there are at most
    /// `max_value_bins`, else bins holding about equal numbers of the sample's values, each
    /// boundary the midpoint between two distinct neighbouring values.
    pub fn fit(values: &[f64], max_value_bins: usize) -> BinMapper {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for x in v.iter().copied() {
            match distinct.last_mut() {
                Some((d, c)) if *d == x => *c += 1,
                _ => distinct.push((x, 1)),
            }
        }
        let mut upper = Vec::new();
        if distinct.len() <= max_value_bins {
            for w in distinct.windows(2) {
                upper.push(midpoint(w[0].0, w[1].0));
            }
        } else {
            // Greedy equal-count bins over the distinct values: close a bin once it holds its
            // share of the remaining values.
            let total = v.len();
            let mut remaining_bins = max_value_bins;
            let mut remaining = total;
            let mut in_bin = 0usize;
            for (i, (x, c)) in distinct.iter().enumerate() {
                in_bin += c;
                let share = remaining as f64 / remaining_bins as f64;
                if in_bin as f64 >= share && remaining_bins > 1 && i + 1 < distinct.len() {
                    upper.push(midpoint(*x, distinct[i + 1].0));
                    remaining -= in_bin;
                    remaining_bins -= 1;
                    in_bin = 0;
                }
            }
        }
        upper.push(f64::INFINITY);
        BinMapper { upper }
    }

    /// Number of value bins.
    pub fn value_bins(&self) -> usize {
        self.upper.len()
    }

    /// The bin of missing values.
    pub fn missing(&self) -> u8 {
        self.upper.len() as u8
    }

    /// The bin of `x`.
    pub fn bin(&self, x: f64) -> u8 {
        if x.is_nan() {
            return self.missing();
        }
        self.upper.partition_point(|&u| u < x) as u8
    }
}

/// (a + b)/2 without overflow, never equal to b when a < b (so that a falls left of it).
fn midpoint(a: f64, b: f64) -> f64 {
    let m = a / 2.0 + b / 2.0;
    if m >= b { a } else if m < a { a } else { m }
}

/// A feature matrix in bins, row-major (`bins[row * n_features + feature]`) for the histograms,
/// and column-major (`columns[feature * n_rows + row]`) for the partitions, which read one feature
/// of many rows.
#[derive(Debug, Clone)]
pub struct Binned {
    pub n_rows: usize,
    pub n_features: usize,
    pub bins: Vec<u8>,
    pub columns: Vec<u8>,
}

impl Binned {
    /// The matrix of the features `features` only (in that order).
    pub fn select(&self, features: &[usize]) -> Binned {
        let (n, d, k) = (self.n_rows, self.n_features, features.len());
        let mut bins = Vec::with_capacity(n * k);
        for row in self.bins.chunks_exact(d.max(1)).take(n) {
            bins.extend(features.iter().map(|&f| row[f]));
        }
        let mut columns = Vec::with_capacity(n * k);
        for &f in features {
            columns.extend_from_slice(&self.columns[f * n..(f + 1) * n]);
        }
        Binned { n_rows: n, n_features: k, bins, columns }
    }
}

/// Fits the mappers of every feature on a seeded sample of at most `sample` rows of the
/// row-major matrix `x` (`n_rows × n_features`).
pub fn fit_mappers(x: &[f64], n_rows: usize, n_features: usize, max_bin: usize, sample: usize, seed: u64) -> Vec<BinMapper> {
    use rayon::prelude::*;
    let rows: Vec<usize> = if n_rows > sample {
        SplitMix64::new(seed ^ 0xB1B5).choose(n_rows, sample)
    } else {
        (0..n_rows).collect()
    };
    let (d, m) = (n_features, rows.len());
    let columns = columns_of(x, d, m, |i| rows[i]);
    (0..d).into_par_iter().map(|f| BinMapper::fit(&columns[f * m..(f + 1) * m], max_bin - 1)).collect()
}

/// Bins the row-major matrix `x` with `mappers`.
#[cfg(test)]
pub fn bin_matrix(x: &[f64], n_rows: usize, mappers: &[BinMapper]) -> Binned {
    let all: Vec<usize> = (0..mappers.len()).collect();
    bin_features(x, n_rows, mappers.len(), &all, mappers)
}

/// Bins the columns `features` of the row-major matrix `x` (`n_rows × n_cols`), `mappers[i]`
/// being the mapper of column `features[i]`: the binned matrix's feature `i` is `features[i]`.
pub fn bin_features(x: &[f64], n_rows: usize, n_cols: usize, features: &[usize], mappers: &[BinMapper]) -> Binned {
    debug_assert_eq!(features.len(), mappers.len());
    let d = mappers.len();
    use rayon::prelude::*;
    let mut bins = vec![0u8; n_rows * d];
    bins.par_chunks_mut(d.max(1) * 4096).enumerate().for_each(|(chunk, out)| {
        let start = chunk * 4096;
        for (i, row) in out.chunks_mut(d.max(1)).enumerate() {
            let x = &x[(start + i) * n_cols..(start + i + 1) * n_cols];
            for ((b, &f), m) in row.iter_mut().zip(features).zip(mappers) {
                *b = m.bin(x[f]);
            }
        }
    });
    let columns = columns_of(&bins, d, n_rows, |r| r);
    Binned { n_rows, n_features: d, bins, columns }
}

/// The column-major copy (column after column, `m` values each) of the rows `row(0)..row(m)` of
/// the row-major matrix `x` of `d` columns. Each thread takes a range of columns and reads them in
/// tiles of 64 rows: a column read down a wide row-major matrix would miss the cache at every
/// value.
fn columns_of<T: Copy + Default + Send + Sync>(x: &[T], d: usize, m: usize, row: impl Fn(usize) -> usize + Sync) -> Vec<T> {
    use rayon::prelude::*;
    const TILE: usize = 64;
    let per = d.div_ceil(rayon::current_num_threads() * 4).max(1);
    let mut columns = vec![T::default(); m * d];
    columns.par_chunks_mut((m * per).max(1)).enumerate().for_each(|(k, cols)| {
        let f0 = k * per;
        for start in (0..m).step_by(TILE) {
            let end = (start + TILE).min(m);
            for (j, col) in cols.chunks_mut(m).enumerate() {
                for (i, o) in (start..end).zip(&mut col[start..end]) {
                    *o = x[row(i) * d + f0 + j];
                }
            }
        }
    });
    columns
}
