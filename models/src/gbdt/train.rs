//! The boosting loop: objectives, bagging and feature sampling, leaf fitting, early stopping.

use std::time::Instant;

use rayon::prelude::*;

use super::bins::{bin_features, fit_mappers};
use super::params::{Objective, ValidGbdtParams};
use super::rng::SplitMix64;
use super::tree::{Grow, Tree};
use super::{Gbdt, Matrix};
use crate::{Error, Result};

/// What training did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainReport {
    /// Trees kept (the best iteration under early stopping).
    pub trees: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Validation loss per round (log-loss, mean squared error or pinball loss), when a
    /// validation set was given.
    pub valid_loss: Vec<f64>,
    pub best_valid_loss: Option<f64>,
    pub seconds: f64,
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The α-quantile (NumPy's linear interpolation, `omen_features::stats::quantile`); 0 without
/// values.
fn quantile_of(v: &[f64], alpha: f64) -> f64 {
    omen_features::stats::quantile(v, alpha).unwrap_or(0.0)
}

/// The loss the objective minimises, mean over rows (the validation metric).
pub(crate) fn loss(objective: Objective, y: &[f64], raw: &[f64]) -> f64 {
    let n = y.len().max(1) as f64;
    let total: f64 = match objective {
        Objective::Binary => y
            .iter()
            .zip(raw)
            .map(|(&t, &s)| {
                let p = sigmoid(s).clamp(1e-15, 1.0 - 1e-15);
                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
            })
            .sum(),
        Objective::SquaredError => y.iter().zip(raw).map(|(&t, &s)| (t - s) * (t - s)).sum(),
        Objective::Quantile { alpha } => y
            .iter()
            .zip(raw)
            .map(|(&t, &s)| if t >= s { alpha * (t - s) } else { (1.0 - alpha) * (s - t) })
            .sum(),
    };
    total / n
}

fn check_data(what: &str, m: &Matrix<'_>, y: &[f64], objective: Objective, n_features: usize) -> Result<()> {
    if m.n_features != n_features {
        return Err(Error::invalid(format!("{what}.features"), format!("{} features, the training data has {n_features}", m.n_features)));
    }
    if m.x.len() != m.n_rows * m.n_features {
        return Err(Error::invalid(format!("{what}.x"), format!("{} values for {} rows × {} features", m.x.len(), m.n_rows, m.n_features)));
    }
    if y.len() != m.n_rows {
        return Err(Error::invalid(format!("{what}.y"), format!("{} labels for {} rows", y.len(), m.n_rows)));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("{what}.y"), format!("label of row {i} is {}", y[i])));
    }
    if objective == Objective::Binary
        && let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0)
    {
        return Err(Error::invalid(format!("{what}.y"), format!("binary labels must be 0 or 1; row {i} is {}", y[i])));
    }
    Ok(())
}

/// Whether a threshold on this binned column leaves at least `min_rows` rows on both sides, the
/// missing values going to either.
fn splittable(column: &[u8], mapper: &super::bins::BinMapper, min_rows: usize) -> bool {
    let mut counts = vec![0usize; mapper.value_bins() + 1];
    for &b in column {
        counts[b as usize] += 1;
    }
    let missing = counts.pop().unwrap_or(0);
    let values: usize = counts.iter().sum();
    let mut left = 0;
    counts.iter().any(|&c| {
        left += c;
        let right = values - left;
        (left + missing >= min_rows && right >= min_rows) || (left >= min_rows && right + missing >= min_rows)
    })
}

/// Trains a model (see [`ValidGbdtParams::fit`]).
pub(crate) fn fit(
    vp: &ValidGbdtParams,
    train: Matrix<'_>,
    y: &[f64],
    valid: Option<(Matrix<'_>, &[f64])>,
    feature_names: Vec<String>,
) -> Result<(Gbdt, TrainReport)> {
    let t0 = Instant::now();
    let p = vp.params();
    let (n, d) = (train.n_rows, train.n_features);
    if n == 0 || d == 0 {
        return Err(Error::invalid("train.x", "no rows or no features"));
    }
    if feature_names.len() != d {
        return Err(Error::invalid("feature_names", format!("{} names for {d} features", feature_names.len())));
    }
    check_data("train", &train, y, p.objective, d)?;
    if let Some((vm, vy)) = &valid {
        check_data("valid", vm, vy, p.objective, d)?;
    }
    let all_mappers = fit_mappers(train.x, n, d, p.max_bin, p.bin_construct_sample_cnt, p.seed);
    // Features that no split can use, because no threshold leaves `min_data_in_leaf` training
    // rows on both sides (a single value, only missing values, a rare value), are left out like
    // LightGBM's `feature_pre_filter` does: the learner fills and scans only the others,
    // numbered `0..used.len()`; each tree's split features are mapped back to the table's
    // numbering once the tree is scored.
    let all: Vec<usize> = (0..d).collect();
    let binned_all = bin_features(train.x, n, d, &all, &all_mappers);
    let used: Vec<usize> = (0..d).filter(|&f| splittable(&binned_all.columns[f * n..(f + 1) * n], &all_mappers[f], p.min_data_in_leaf)).collect();
    let mappers: Vec<_> = used.iter().map(|&f| all_mappers[f].clone()).collect();
    let du = used.len();
    let binned = if du == d { binned_all } else { binned_all.select(&used) };
    let missing: Vec<u8> = mappers.iter().map(|m| m.missing()).collect();
    let valid_binned = valid.as_ref().map(|(vm, vy)| (bin_features(vm.x, vm.n_rows, d, &used, &mappers), *vy));

    // Row weights of the binary objective.
    let weight: Vec<f64> = match p.objective {
        Objective::Binary if p.scale_pos_weight != 1.0 => y.iter().map(|&t| if t == 1.0 { p.scale_pos_weight } else { 1.0 }).collect(),
        _ => Vec::new(),
    };
    let w = |i: usize| if weight.is_empty() { 1.0 } else { weight[i] };
    let init_score = match p.objective {
        Objective::Binary => {
            let (pos, tot) = (0..n).fold((0.0, 0.0), |(a, b), i| (a + w(i) * y[i], b + w(i)));
            let pr = (pos / tot).clamp(1e-15, 1.0 - 1e-15);
            (pr / (1.0 - pr)).ln()
        }
        Objective::SquaredError => y.iter().sum::<f64>() / n as f64,
        Objective::Quantile { alpha } => quantile_of(y, alpha),
    };
    let mut score = vec![init_score; n];
    let mut valid_score: Vec<f64> = valid_binned.as_ref().map(|(b, _)| vec![init_score; b.n_rows]).unwrap_or_default();
    // Gradient and hessian of each row, side by side, in single precision as LightGBM keeps
    // them (one cache line feeds eight rows); histograms sum them in double precision.
    let mut gh = vec![[0.0f32; 2]; n];
    let mut rng = SplitMix64::new(p.seed);
    let mut trees: Vec<Tree> = Vec::new();
    let mut valid_loss = Vec::new();
    let mut best: Option<(f64, usize)> = None;
    let mut bag: Vec<u32> = (0..n as u32).collect();
    let all_features: Vec<usize> = (0..du).collect();
    let bagging = p.bagging_fraction < 1.0;
    let mut rounds = 0;
    let pool = super::tree::HistPool::default();
    for iter in 0..p.num_iterations {
        rounds = iter + 1;
        // Gradients and hessians of the loss at the current scores.
        let objective = p.objective;
        gh.par_iter_mut().enumerate().for_each(|(i, gh_i)| {

            let (t, s) = (y[i], score[i]);
            let wi = if weight.is_empty() { 1.0 } else { weight[i] };
            let (g, h) = match objective {
                Objective::Binary => {
                    let pr = sigmoid(s);
                    (wi * (pr - t), (wi * pr * (1.0 - pr)).max(1e-16))
                }
                Objective::SquaredError => (s - t, 1.0),
                Objective::Quantile { alpha } => (if t < s { 1.0 - alpha } else { -alpha }, 1.0),
            };
            *gh_i = [g as f32, h as f32];
        });
        if bagging && iter % p.bagging_freq == 0 {
            let k = ((n as f64) * p.bagging_fraction).round().max(1.0) as usize;
            bag = rng.choose(n, k).into_iter().map(|i| i as u32).collect();
        } else if bagging {
            bag.sort_unstable();
        } else {
            // The learner left the rows in leaf order; ascending order reads memory forwards.
            for (i, b) in bag.iter_mut().enumerate() {
                *b = i as u32;
            }
        }
        let features: Vec<usize> = if p.feature_fraction < 1.0 {
            let k = ((du as f64) * p.feature_fraction).round().max(1.0) as usize;
            rng.choose(du, k)
        } else {
            all_features.clone()
        };
        let grow = Grow::new(Grow {
            binned: &binned,
            mappers: &mappers,
            gh: &gh,
            num_leaves: p.num_leaves,
            max_depth: p.max_depth,
            min_data_in_leaf: p.min_data_in_leaf as u32,
            min_sum_hessian: p.min_sum_hessian_in_leaf,
            min_gain: p.min_gain_to_split,
            l1: p.lambda_l1,
            l2: p.lambda_l2,
            features: &features,
            offsets: Vec::new(),
            blocked: false,
            all_features: false,
            pool: &pool,
        });
        let (mut tree, ranges) = grow.grow(&mut bag);
        // Leaf values: the second-order optimum (set by the learner), or for the quantile
        // objective the α-quantile of the residuals in the leaf; then the learning rate.
        if let Objective::Quantile { alpha } = p.objective {
            for (leaf, &(start, len)) in ranges.iter().enumerate() {
                let r: Vec<f64> = bag[start..start + len].iter().map(|&i| y[i as usize] - score[i as usize]).collect();
                tree.leaf_value[leaf] = quantile_of(&r, alpha);
            }
        }
        for v in &mut tree.leaf_value {
            *v *= p.learning_rate;
        }
        // Training scores: by leaf ranges when every row was in the bag, else by traversal.
        if !bagging {
            for (leaf, &(start, len)) in ranges.iter().enumerate() {
                let v = tree.leaf_value[leaf];
                for &i in &bag[start..start + len] {
                    score[i as usize] += v;
                }
            }
        } else {
            let t = &tree;
            score.par_iter_mut().enumerate().for_each(|(i, s)| {
                *s += t.leaf_value[t.leaf_binned(&binned.bins[i * du..(i + 1) * du], &missing)];
            });
        }
        if let Some((vb, vy)) = &valid_binned {
            let t = &tree;
            valid_score.par_iter_mut().enumerate().for_each(|(i, s)| {
                *s += t.leaf_value[t.leaf_binned(&vb.bins[i * du..(i + 1) * du], &missing)];
            });
            let l = loss(p.objective, vy, &valid_score);
            valid_loss.push(l);
            if best.is_none_or(|(b, _)| l < b) {
                best = Some((l, iter + 1));
            }
        }
        for f in &mut tree.split_feature {
            *f = used[*f as usize] as u32;
        }
        trees.push(tree);
        if p.early_stopping_rounds > 0
            && let Some((_, best_iter)) = best
            && iter + 1 - best_iter >= p.early_stopping_rounds
        {
            break;
        }
    }
    if p.early_stopping_rounds > 0
        && let Some((_, best_iter)) = best
    {
        trees.truncate(best_iter);
    }
    let report = TrainReport {
        trees: trees.len(),
        rounds,
        valid_loss,
        best_valid_loss: best.map(|b| b.0),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let model = Gbdt::new(p.objective, init_score, trees, feature_names, p.clone());
    Ok((model, report))
}
