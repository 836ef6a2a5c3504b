//! TreeSHAP (S. M. Lundberg, G. G. Erion & S.-I. Lee, "Consistent individualized feature
//! attribution for tree ensembles", 2018, Algorithm 2): exact Shapley values of each feature for
//! one prediction in O(leaves · depth²) per tree, with the training rows through each node
//! (cover) as the background distribution. The contributions sum to the raw prediction minus
//! the expected value.

use super::tree::Tree;

#[derive(Debug, Clone, Copy, Default)]
struct PathElem {
    feature: i64,
    zero: f64,
    one: f64,
    weight: f64,
}

fn extend(path: &mut Vec<PathElem>, zero: f64, one: f64, feature: i64) {
    let d = path.len();
    path.push(PathElem { feature, zero, one, weight: if d == 0 { 1.0 } else { 0.0 } });
    for i in (0..d).rev() {
        let w = path[i].weight;
        path[i + 1].weight += one * w * (i + 1) as f64 / (d + 1) as f64;
        path[i].weight = zero * w * (d - i) as f64 / (d + 1) as f64;
    }
}

fn unwind(path: &mut Vec<PathElem>, i: usize) {
    let d = path.len() - 1;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut n = path[d].weight;
    for j in (0..d).rev() {
        if one != 0.0 {
            let t = path[j].weight;
            path[j].weight = n * (d + 1) as f64 / ((j + 1) as f64 * one);
            n = t - path[j].weight * zero * (d - j) as f64 / (d + 1) as f64;
        } else {
            path[j].weight = path[j].weight * (d + 1) as f64 / (zero * (d - j) as f64);
        }
    }
    for j in i..d {
        path[j].feature = path[j + 1].feature;
        path[j].zero = path[j + 1].zero;
        path[j].one = path[j + 1].one;
    }
    path.pop();
}

fn unwound_sum(path: &[PathElem], i: usize) -> f64 {
    let d = path.len() - 1;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut n = path[d].weight;
    let mut total = 0.0;
    for j in (0..d).rev() {
        if one != 0.0 {
            let t = n * (d + 1) as f64 / ((j + 1) as f64 * one);
            total += t;
            n = path[j].weight - t * zero * (d - j) as f64 / (d + 1) as f64;
        } else {
            total += path[j].weight / (zero * (d - j) as f64 / (d + 1) as f64);
        }
    }
    total
}

fn cover(t: &Tree, node: i32) -> f64 {
    if node < 0 { t.leaf_count[!node as usize] } else { t.internal_count[node as usize] }
}

fn recurse(t: &Tree, x: &[f64], phi: &mut [f64], node: i32, mut path: Vec<PathElem>, zero: f64, one: f64, feature: i64) {
    extend(&mut path, zero, one, feature);
    if node < 0 {
        let value = t.leaf_value[!node as usize];
        for i in 1..path.len() {
            let w = unwound_sum(&path, i);
            let e = path[i];
            phi[e.feature as usize] += w * (e.one - e.zero) * value;
        }
        return;
    }
    let n = node as usize;
    let f = t.split_feature[n] as usize;
    let v = x[f];
    let go_left = if v.is_nan() { t.default_left[n] } else { v <= t.threshold[n] };
    let (hot, cold) = if go_left { (t.left[n], t.right[n]) } else { (t.right[n], t.left[n]) };
    let (mut in_zero, mut in_one) = (1.0, 1.0);
    if let Some(k) = (1..path.len()).find(|&k| path[k].feature == f as i64) {
        in_zero = path[k].zero;
        in_one = path[k].one;
        unwind(&mut path, k);
    }
    let c = cover(t, node);
    recurse(t, x, phi, hot, path.clone(), in_zero * cover(t, hot) / c, in_one, f as i64);
    recurse(t, x, phi, cold, path, in_zero * cover(t, cold) / c, 0.0, f as i64);
}

/// Adds the SHAP values of `tree` at `x` to `phi` (one per feature).
pub(crate) fn tree_shap(t: &Tree, x: &[f64], phi: &mut [f64]) {
    if t.split_feature.is_empty() {
        return;
    }
    recurse(t, x, phi, 0, Vec::new(), 1.0, 1.0, -1);
}

/// The tree's expected output under its cover distribution.
pub(crate) fn expected_value(t: &Tree) -> f64 {
    let total: f64 = t.leaf_count.iter().sum();
    if total <= 0.0 {
        return t.leaf_value.iter().sum::<f64>() / t.leaf_value.len().max(1) as f64;
    }
    t.leaf_value.iter().zip(&t.leaf_count).map(|(v, c)| v * c).sum::<f64>() / total
}
