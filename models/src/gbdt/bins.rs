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

/// Fits the mappers of every feature on a seeded sample of at most `sample` rows of the
/// row-major matrix `x` (`n_rows × n_features`).
pub fn fit_mappers(x: &[f64], n_rows: usize, n_features: usize, max_bin: usize, sample: usize, seed: u64) -> Vec<BinMapper> {
    let rows: Vec<usize> = if n_rows > sample {
        SplitMix64::new(seed ^ 0xB1B5).choose(n_rows, sample)
    } else {
        (0..n_rows).collect()
    };
    (0..n_features)
        .map(|f| {
            let col: Vec<f64> = rows.iter().map(|&r| x[r * n_features + f]).collect();
            BinMapper::fit(&col, max_bin - 1)
        })
        .collect()
}

/// Bins the row-major matrix `x` with `mappers`.
pub fn bin_matrix(x: &[f64], n_rows: usize, mappers: &[BinMapper]) -> Binned {
    let d = mappers.len();
    use rayon::prelude::*;
    let mut bins = vec![0u8; n_rows * d];
    bins.par_chunks_mut(d.max(1) * 4096).enumerate().for_each(|(chunk, out)| {
        let start = chunk * 4096;
        for (i, row) in out.chunks_mut(d.max(1)).enumerate() {
            let r = start + i;
            for (f, b) in row.iter_mut().enumerate() {
                *b = mappers[f].bin(x[r * d + f]);
            }
        }
    });
    let mut columns = vec![0u8; n_rows * d];
    columns.par_chunks_mut(n_rows.max(1)).enumerate().for_each(|(f, col)| {
        for (r, b) in col.iter_mut().enumerate() {
            *b = bins[r * d + f];
        }
    });
    Binned { n_rows, n_features: d, bins, columns }
}
