//! Baselines reported beside omen's GBDT on the same split (issue 5): a random forest and a
//! logistic regression, both from smartcore.
//!
//! smartcore's `RandomForestClassifier` gives class labels only, and a ROC curve needs scores, so
//! the forest here is built from smartcore's `DecisionTreeClassifier` the way a random forest
//! is: each tree on a bootstrap sample of the rows, with a random subset of √d features (random
//! subspaces per tree rather than per split), the probability the trees' average. Missing
//! values become the training median of their column; the logistic regression sees standardised
//! columns.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifier, DecisionTreeClassifierParameters};

use crate::gbdt::Matrix;
use crate::gbdt::rng::SplitMix64;
use crate::{Error, Result};

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(what, format!("smartcore: {e}"))
}

/// Column medians of the finite values (0 for a column without one).
fn medians(m: Matrix<'_>) -> Vec<f64> {
    (0..m.n_features)
        .map(|f| {
            let v: Vec<f64> = (0..m.n_rows).map(|r| m.x[r * m.n_features + f]).filter(|x| x.is_finite()).collect();
            omen_features::stats::median(&v).unwrap_or(0.0)
        })
        .collect()
}

fn impute(m: Matrix<'_>, fill: &[f64], cols: &[usize], rows: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        for &f in cols {
            let v = m.x[r * m.n_features + f];
            out.push(if v.is_finite() { v } else { fill[f] });
        }
    }
    out
}

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// The random-forest baseline.
pub struct RandomForest {
    fill: Vec<f64>,
    /// (features, tree, the probability column of class 1 if the tree saw it).
    trees: Vec<(Vec<usize>, Tree, Option<usize>)>,
}

impl RandomForest {
    /// `n_trees` trees of depth at most `max_depth`, leaves of at least `min_leaf` rows.
    pub fn fit(x: Matrix<'_>, y: &[f64], n_trees: usize, max_depth: u16, min_leaf: usize, seed: u64) -> Result<RandomForest> {
        let fill = medians(x);
        let d = x.n_features;
        let per_tree = ((d as f64).sqrt().ceil() as usize).clamp(1, d);
        let mut rng = SplitMix64::new(seed);
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let rows: Vec<usize> = (0..x.n_rows).map(|_| rng.below(x.n_rows)).collect();
            let cols = rng.choose(d, per_tree);
            let data = DenseMatrix::new(rows.len(), cols.len(), impute(x, &fill, &cols, &rows), false).map_err(|e| failed("baseline.random_forest", e))?;
            let labels: Vec<u32> = rows.iter().map(|&r| y[r] as u32).collect();
            let params = DecisionTreeClassifierParameters::default().with_max_depth(max_depth).with_min_samples_leaf(min_leaf);
            let tree = Tree::fit(&data, &labels, params).map_err(|e| failed("baseline.random_forest", e))?;
            // smartcore orders a tree's classes ascending: class 1 is the last column if present.
            let (has0, has1) = (labels.contains(&0), labels.contains(&1));
            let column = match (has0, has1) {
                (true, true) => Some(1),
                (false, true) => Some(0),
                _ => None,
            };
            trees.push((cols, tree, column));
        }
        Ok(RandomForest { fill, trees })
    }

    /// P(y = 1) per row: the mean over trees of the leaf's class-1 frequency.
    pub fn predict(&self, x: Matrix<'_>) -> Result<Vec<f64>> {
        let rows: Vec<usize> = (0..x.n_rows).collect();
        let mut p = vec![0.0; x.n_rows];
        for (cols, tree, column) in &self.trees {
            let Some(c) = *column else { continue };
            let data = DenseMatrix::new(rows.len(), cols.len(), impute(x, &self.fill, cols, &rows), false).map_err(|e| failed("baseline.random_forest", e))?;
            let proba = tree.predict_proba(&data).map_err(|e| failed("baseline.random_forest", e))?;
            let (_, k) = proba.shape();
            if c < k {
                for (i, pi) in p.iter_mut().enumerate() {
                    *pi += *proba.get((i, c));
                }
            }
        }
        let n = self.trees.len().max(1) as f64;
        Ok(p.into_iter().map(|v| v / n).collect())
    }
}

/// The logistic-regression baseline (L2-regularised, standardised inputs).
pub struct Logistic {
    fill: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

impl Logistic {
    pub fn fit(x: Matrix<'_>, y: &[f64], alpha: f64) -> Result<Logistic> {
        let fill = medians(x);
        let d = x.n_features;
        let cols: Vec<usize> = (0..d).collect();
        let rows: Vec<usize> = (0..x.n_rows).collect();
        let mut data = impute(x, &fill, &cols, &rows);
        let n = x.n_rows.max(1) as f64;
        let mean: Vec<f64> = (0..d).map(|f| (0..x.n_rows).map(|r| data[r * d + f]).sum::<f64>() / n).collect();
        let sd: Vec<f64> = (0..d)
            .map(|f| {
                let v = (0..x.n_rows).map(|r| (data[r * d + f] - mean[f]).powi(2)).sum::<f64>() / n;
                if v > 0.0 { v.sqrt() } else { 1.0 }
            })
            .collect();
        for r in 0..x.n_rows {
            for f in 0..d {
                data[r * d + f] = (data[r * d + f] - mean[f]) / sd[f];
            }
        }
        let m = DenseMatrix::new(x.n_rows, d, data, false).map_err(|e| failed("baseline.logistic", e))?;
        let labels: Vec<u32> = y.iter().map(|&v| v as u32).collect();
        let params = LogisticRegressionParameters::default().with_alpha(alpha);
        let lr = LogisticRegression::fit(&m, &labels, params).map_err(|e| failed("baseline.logistic", e))?;
        let weights: Vec<f64> = (0..d).map(|f| *lr.coefficients().get((0, f))).collect();
        let intercept = *lr.intercept().get((0, 0));
        Ok(Logistic { fill, mean, sd, weights, intercept })
    }

    pub fn predict(&self, x: Matrix<'_>) -> Vec<f64> {
        (0..x.n_rows)
            .map(|r| {
                let z: f64 = (0..x.n_features)
                    .map(|f| {
                        let v = x.x[r * x.n_features + f];
                        let v = if v.is_finite() { v } else { self.fill[f] };
                        (v - self.mean[f]) / self.sd[f] * self.weights[f]
                    })
                    .sum::<f64>()
                    + self.intercept;
                1.0 / (1.0 + (-z).exp())
            })
            .collect()
    }
}
