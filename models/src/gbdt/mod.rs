//! omen's histogram gradient-boosted trees (issue 5), in the manner of LightGBM.
//!
//! ```text
//! GbdtParams --check()--> ValidGbdtParams --fit(train, valid)--> Gbdt --predict(row)--> f64
//! ```
//! - **Binning**: each feature's values become at most `max_bin − 1` quantile bins (boundaries
//!   from a seeded sample of `bin_construct_sample_cnt` rows) plus one bin for NaN.
//! - **Growth**: leaf-wise, the leaf with the largest loss reduction split first, up to
//!   `num_leaves`, within `max_depth`, `min_data_in_leaf`, `min_sum_hessian_in_leaf` and
//!   `min_gain_to_split`; missing values go to the side (learned per split) that reduces the
//!   loss more. Leaf values −T(G)/(H + λ₂) with T the L1 soft threshold, times the learning rate.
//!   Features that no threshold can split with `min_data_in_leaf` rows on both sides are left
//!   out before training (LightGBM's `feature_pre_filter`), and a leaf's children search only
//!   the features that had an allowed split in the leaf (LightGBM's `is_splittable`).
//! - **Histograms** of gradient and hessian per bin, built for the smaller child of a split; the
//!   larger child's is the parent's minus it. In parallel (rayon): over row chunks for a narrow
//!   table; for a wide one (64 features or more) each thread fills, subtracts and searches its
//!   own part of the features, one hand-over per leaf.
//! - **Objectives**: binary log-loss (with `scale_pos_weight`), squared error, quantile (pinball;
//!   leaf values re-fitted to the α-quantile of residuals).
//! - **Sampling**: bagging (`bagging_fraction` every `bagging_freq` rounds) and
//!   `feature_fraction` per tree, from [`GbdtParams::seed`]: the same seed gives the same model.
//! - **Early stopping** on a validation set's loss after `early_stopping_rounds` rounds without
//!   improvement; the best round's trees are kept.
//! - **Prediction** on raw values through a flattened forest; **explanations** by gain
//!   importance and TreeSHAP; **artifacts** with the feature schema hash and a checksum.

mod artifact;
mod interval;
mod bins;
mod params;
mod predict;
pub(crate) mod rng;
mod shap;
mod train;
mod tree;

pub use artifact::FORMAT_VERSION;
pub use interval::{Band, INTERVAL_FORMAT_VERSION, IntervalModel};
pub use bins::BinMapper;
pub use params::{GbdtParams, Objective, ValidGbdtParams};
pub use train::TrainReport;
pub use tree::Tree;
/// The compiled forest (for benchmarks: `Compiled::portable` is the walk of CPUs without AVX-512).
#[doc(hidden)]
pub use predict::Compiled;

use rayon::prelude::*;

use crate::Result;

/// A row-major feature matrix: `x[row * n_features + feature]`, NaN for a missing value.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub x: &'a [f64],
    pub n_rows: usize,
    pub n_features: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(x: &'a [f64], n_features: usize) -> Matrix<'a> {
        let n_rows = if n_features == 0 { 0 } else { x.len() / n_features };
        Matrix { x, n_rows, n_features }
    }

    pub fn row(&self, i: usize) -> &'a [f64] {
        &self.x[i * self.n_features..(i + 1) * self.n_features]
    }
}

impl ValidGbdtParams {
    /// Trains on `train` with labels `y`, evaluating (and early-stopping) on `valid` when given.
    pub fn fit(
        &self,
        train: Matrix<'_>,
        y: &[f64],
        valid: Option<(Matrix<'_>, &[f64])>,
        feature_names: Vec<String>,
    ) -> Result<(Gbdt, TrainReport)> {
        train::fit(self, train, y, valid, feature_names)
    }
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Gbdt {
    pub objective: Objective,
    /// The raw score before any tree (log-odds of the base rate, the mean, or the α-quantile).
    pub init_score: f64,
    pub trees: Vec<Tree>,
    pub feature_names: Vec<String>,
    /// The hash of the feature schema the model was trained on, when the trainer knew it.
    pub schema_hash: Option<String>,
    pub params: GbdtParams,
    /// The probability calibration fitted on a calibration split (binary models).
    pub calibration: Option<crate::calibrate::Calibration>,
    compiled: predict::Compiled,
}

impl Gbdt {
    pub(crate) fn new(objective: Objective, init_score: f64, trees: Vec<Tree>, feature_names: Vec<String>, params: GbdtParams) -> Gbdt {
        let compiled = predict::Compiled::new(&trees);
        Gbdt { objective, init_score, trees, feature_names, schema_hash: None, params, calibration: None, compiled }
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The raw score of one row (log-odds for the binary objective).
    #[inline]
    pub fn predict_raw(&self, x: &[f64]) -> f64 {
        self.init_score + self.compiled.sum(x)
    }

    /// The prediction for one row: a probability for the binary objective, else the raw score.
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        let raw = self.predict_raw(x);
        match self.objective {
            Objective::Binary => train::sigmoid(raw),
            _ => raw,
        }
    }

    /// The calibrated probability of one row (the plain prediction without a calibration).
    pub fn predict_calibrated(&self, x: &[f64]) -> f64 {
        let raw = self.predict_raw(x);
        let p = match self.objective {
            Objective::Binary => train::sigmoid(raw),
            _ => return raw,
        };
        self.calibration.as_ref().map_or(p, |c| c.apply(raw, p))
    }

    /// Predictions for every row of `m`, in parallel.
    pub fn predict_batch(&self, m: Matrix<'_>) -> Vec<f64> {
        (0..m.n_rows).into_par_iter().with_min_len(1024).map(|i| self.predict(m.row(i))).collect()
    }

    /// The order in which [`Gbdt::predict_raw`] adds the trees' values on this CPU: lane by lane,
    /// each lane's trees in order from 0, then the lanes' sums in order from 0 (see `predict`).
    pub fn summation_lanes(&self) -> Vec<Vec<usize>> {
        self.compiled.lanes()
    }

    /// The raw score by walking each tree node by node (the reference the compiled forest must
    /// equal).
    pub fn predict_raw_by_tree(&self, x: &[f64]) -> f64 {
        self.init_score + self.trees.iter().map(|t| t.leaf_value[t.leaf(x)]).sum::<f64>()
    }

    /// Total split gain per feature.
    pub fn gain_importance(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.n_features()];
        for t in &self.trees {
            for (f, g) in t.split_feature.iter().zip(&t.gain) {
                imp[*f as usize] += g;
            }
        }
        imp
    }

    /// The expected raw score under the training distribution (the SHAP base value).
    pub fn expected_value(&self) -> f64 {
        self.init_score + self.trees.iter().map(shap::expected_value).sum::<f64>()
    }

    /// TreeSHAP contributions of each feature to the raw score of `x`; they sum to
    /// `predict_raw(x) − expected_value()`.
    pub fn shap(&self, x: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.n_features()];
        for t in &self.trees {
            shap::tree_shap(t, x, &mut phi);
        }
        phi
    }

    /// Tags the model with the hash of its feature schema (checked again when it is loaded).
    pub fn with_schema_hash(mut self, hash: impl Into<String>) -> Gbdt {
        self.schema_hash = Some(hash.into());
        self
    }

    /// The model file (see the `artifact` format): versioned, checksummed.
    pub fn to_bytes(&self) -> Vec<u8> {
        artifact::to_bytes(self)
    }

    /// Reads a model file, verifying its checksum first and then, when `expected_schema` is
    /// given, that it was trained on that feature schema.
    pub fn from_bytes(bytes: &[u8], expected_schema: Option<&str>) -> Result<Gbdt> {
        artifact::from_bytes(bytes, expected_schema)
    }
}
