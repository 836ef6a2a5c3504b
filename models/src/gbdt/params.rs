//! Hyperparameters, validated once (`GbdtParams -> check() -> ValidGbdtParams`), with
//! LightGBM's names and defaults where omen has the same knob.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What the trees minimise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Objective {
    /// Binary log-loss; labels 0 or 1; the raw score is the log-odds.
    Binary,
    /// Squared error (L2 regression).
    SquaredError,
    /// Pinball loss at quantile `alpha` in (0, 1); leaf values are re-fitted to the α-quantile of
    /// the residuals in each leaf, as LightGBM does.
    Quantile { alpha: f64 },
}

/// Hyperparameters of [`Gbdt`](super::Gbdt) training. Unchecked: [`GbdtParams::check`] gives the
/// [`ValidGbdtParams`] that training takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    pub objective: Objective,
    /// Boosting rounds (trees), at most.
    pub num_iterations: usize,
    pub learning_rate: f64,
    /// Leaves per tree (leaf-wise growth splits the best leaf until there are this many).
    pub num_leaves: usize,
    /// Depth limit; `None` for none.
    pub max_depth: Option<usize>,
    /// Fewest training rows in a leaf.
    pub min_data_in_leaf: usize,
    /// Smallest sum of hessians in a leaf.
    pub min_sum_hessian_in_leaf: f64,
    /// Smallest gain that makes a split.
    pub min_gain_to_split: f64,
    /// L1 regularisation of leaf values.
    pub lambda_l1: f64,
    /// L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// Share of rows each tree is grown on (1: all), drawn anew every `bagging_freq` trees.
    pub bagging_fraction: f64,
    pub bagging_freq: usize,
    /// Share of features each tree may split on (1: all).
    pub feature_fraction: f64,
    /// Weight of the positive class for [`Objective::Binary`] (LightGBM's `scale_pos_weight`).
    pub scale_pos_weight: f64,
    /// Most bins per feature, the missing-value bin included (≤ 255).
    pub max_bin: usize,
    /// Rows sampled per feature to place the bin boundaries.
    pub bin_construct_sample_cnt: usize,
    /// Stop when the validation loss has not improved for this many rounds (0: never).
    pub early_stopping_rounds: usize,
    /// Seed of every random choice (bagging, feature sampling, bin sampling).
    pub seed: u64,
}

impl Default for GbdtParams {
    /// LightGBM's defaults, binary objective.
    fn default() -> Self {
        GbdtParams {
            objective: Objective::Binary,
            num_iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: None,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            min_gain_to_split: 0.0,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            feature_fraction: 1.0,
            scale_pos_weight: 1.0,
            max_bin: 255,
            bin_construct_sample_cnt: 200_000,
            early_stopping_rounds: 0,
            seed: 0,
        }
    }
}

/// [`GbdtParams`] that passed [`GbdtParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidGbdtParams(pub(crate) GbdtParams);

impl ValidGbdtParams {
    pub fn params(&self) -> &GbdtParams {
        &self.0
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(field, reason)
}

impl GbdtParams {
    /// Validates every hyperparameter, naming the first one at fault.
    pub fn check(self) -> Result<ValidGbdtParams> {
        let p = &self;
        if let Objective::Quantile { alpha } = p.objective
            && !(alpha > 0.0 && alpha < 1.0)
        {
            return Err(bad("objective.alpha", format!("must lie in (0, 1), got {alpha}")));
        }
        if p.num_iterations == 0 {
            return Err(bad("num_iterations", "must be at least 1"));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return Err(bad("learning_rate", format!("must be finite and > 0, got {}", p.learning_rate)));
        }
        if p.num_leaves < 2 || p.num_leaves > 131_072 {
            return Err(bad("num_leaves", format!("must lie in [2, 131072], got {}", p.num_leaves)));
        }
        if p.max_depth == Some(0) {
            return Err(bad("max_depth", "must be at least 1 (or absent for no limit)"));
        }
        if p.min_data_in_leaf == 0 {
            return Err(bad("min_data_in_leaf", "must be at least 1"));
        }
        for (f, v) in [
            ("min_sum_hessian_in_leaf", p.min_sum_hessian_in_leaf),
            ("min_gain_to_split", p.min_gain_to_split),
            ("lambda_l1", p.lambda_l1),
            ("lambda_l2", p.lambda_l2),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad(f, format!("must be finite and ≥ 0, got {v}")));
            }
        }
        for (f, v) in [("bagging_fraction", p.bagging_fraction), ("feature_fraction", p.feature_fraction)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(bad(f, format!("must lie in (0, 1], got {v}")));
            }
        }
        if p.bagging_fraction < 1.0 && p.bagging_freq == 0 {
            return Err(bad("bagging_freq", "must be at least 1 when bagging_fraction < 1"));
        }
        if !(p.scale_pos_weight > 0.0 && p.scale_pos_weight.is_finite()) {
            return Err(bad("scale_pos_weight", format!("must be finite and > 0, got {}", p.scale_pos_weight)));
        }
        if !(3..=255).contains(&p.max_bin) {
            return Err(bad("max_bin", format!("must lie in [3, 255], got {}", p.max_bin)));
        }
        if p.bin_construct_sample_cnt < 100 {
            return Err(bad("bin_construct_sample_cnt", "must be at least 100"));
        }
        Ok(ValidGbdtParams(self))
    }
}
