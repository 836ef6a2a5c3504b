//! One regression tree and its leaf-wise learner over binned data: histograms of gradient and
//! hessian per feature bin, built in parallel for the smaller child of each split, the larger
//! child's histogram being its parent's minus the smaller's (the sibling-subtraction trick).

use rayon::prelude::*;

use super::bins::{BinMapper, Binned};

/// A fitted tree. Internal nodes are indexed 0..; a child index `< 0` is the leaf `!index`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub split_feature: Vec<u32>,
    /// Rows with bin ≤ `split_bin` go left (training-time view).
    pub split_bin: Vec<u8>,
    /// Rows with value ≤ `threshold` go left (the same split on raw values).
    pub threshold: Vec<f64>,
    /// Where missing values (NaN) go.
    pub default_left: Vec<bool>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    /// Loss reduction of each split.
    pub gain: Vec<f64>,
    /// Training rows through each internal node (TreeSHAP's cover).
    pub internal_count: Vec<f64>,
    /// Leaf outputs, learning rate applied.
    pub leaf_value: Vec<f64>,
    /// Training rows in each leaf.
    pub leaf_count: Vec<f64>,
}

impl Tree {
    /// A tree of one leaf.
    pub fn constant(value: f64, count: f64) -> Tree {
        Tree {
            split_feature: vec![],
            split_bin: vec![],
            threshold: vec![],
            default_left: vec![],
            left: vec![],
            right: vec![],
            gain: vec![],
            internal_count: vec![],
            leaf_value: vec![value],
            leaf_count: vec![count],
        }
    }

    pub fn num_leaves(&self) -> usize {
        self.leaf_value.len()
    }

    /// The leaf a raw feature row falls in.
    pub fn leaf(&self, x: &[f64]) -> usize {
        if self.split_feature.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let v = x[self.split_feature[n] as usize];
            let go_left = if v.is_nan() { self.default_left[n] } else { v <= self.threshold[n] };
            node = if go_left { self.left[n] } else { self.right[n] };
        }
        !node as usize
    }

    /// The leaf a binned row falls in (`missing[f]` is feature f's missing bin).
    pub fn leaf_binned(&self, row: &[u8], missing: &[u8]) -> usize {
        if self.split_feature.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let f = self.split_feature[n] as usize;
            let b = row[f];
            let go_left = if b == missing[f] { self.default_left[n] } else { b <= self.split_bin[n] };
            node = if go_left { self.left[n] } else { self.right[n] };
        }
        !node as usize
    }

    /// Depth of the deepest leaf (0 for a single leaf).
    pub fn depth(&self) -> usize {
        fn walk(t: &Tree, node: i32) -> usize {
            if node < 0 { 0 } else { 1 + walk(t, t.left[node as usize]).max(walk(t, t.right[node as usize])) }
        }
        if self.split_feature.is_empty() { 0 } else { walk(self, 0) }
    }
}

/// Sums of one histogram bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Bin {
    g: f64,
    h: f64,
    c: u32,
}

/// The histograms of every feature of one leaf, concatenated (`offsets[f]..offsets[f + 1]`).
type Hist = Vec<Bin>;

/// Learner settings derived from the parameters.
pub(crate) struct Grow<'a> {
    pub binned: &'a Binned,
    pub mappers: &'a [BinMapper],
    pub grad: &'a [f64],
    pub hess: &'a [f64],
    pub num_leaves: usize,
    pub max_depth: Option<usize>,
    pub min_data_in_leaf: u32,
    pub min_sum_hessian: f64,
    pub min_gain: f64,
    pub l1: f64,
    pub l2: f64,
    /// Features this tree may split on.
    pub features: &'a [usize],
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    default_left: bool,
    gain: f64,
    left: Bin,
    right: Bin,
}

struct Leaf {
    start: usize,
    len: usize,
    sum: Bin,
    depth: usize,
    hist: Option<Hist>,
    best: Option<Split>,
    /// (internal node, is left child) that points at this leaf; None for the root.
    parent: Option<(usize, bool)>,
}

fn threshold_l1(g: f64, l1: f64) -> f64 {
    if g > l1 {
        g - l1
    } else if g < -l1 {
        g + l1
    } else {
        0.0
    }
}

/// The leaf value minimising the regularised second-order loss.
pub(crate) fn leaf_output(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    let denom = h + l2;
    if denom <= 0.0 { 0.0 } else { -threshold_l1(g, l1) / denom }
}

fn leaf_gain(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    let t = threshold_l1(g, l1);
    let denom = h + l2;
    if denom <= 0.0 { 0.0 } else { t * t / denom }
}

const PARALLEL_ROWS: usize = 16_384;

impl Grow<'_> {
    fn offsets(&self) -> Vec<usize> {
        let mut o = Vec::with_capacity(self.mappers.len() + 1);
        let mut acc = 0;
        for m in self.mappers {
            o.push(acc);
            acc += m.value_bins() + 1;
        }
        o.push(acc);
        o
    }

    fn build_hist(&self, rows: &[u32], total_bins: usize) -> Hist {
        let d = self.binned.n_features;
        let bins = &self.binned.bins;
        let offsets = self.offsets();
        let build = |rows: &[u32]| {
            let mut hist = vec![Bin::default(); total_bins];
            for &r in rows {
                let r = r as usize;
                let (g, h) = (self.grad[r], self.hess[r]);
                let row = &bins[r * d..(r + 1) * d];
                for &f in self.features {
                    let b = &mut hist[offsets[f] + row[f] as usize];
                    b.g += g;
                    b.h += h;
                    b.c += 1;
                }
            }
            hist
        };
        if rows.len() < PARALLEL_ROWS {
            return build(rows);
        }
        let chunk = rows.len().div_ceil(rayon::current_num_threads().max(1) * 2);
        rows.par_chunks(chunk).map(build).reduce(
            || vec![Bin::default(); total_bins],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    x.g += y.g;
                    x.h += y.h;
                    x.c += y.c;
                }
                a
            },
        )
    }

    fn best_split(&self, hist: &Hist, sum: Bin, depth: usize) -> Option<Split> {
        if self.max_depth.is_some_and(|m| depth >= m) || sum.c < 2 * self.min_data_in_leaf {
            return None;
        }
        let offsets = self.offsets();
        let parent = leaf_gain(sum.g, sum.h, self.l1, self.l2);
        let mut best: Option<Split> = None;
        for &f in self.features {
            let nb = self.mappers[f].value_bins();
            let h = &hist[offsets[f]..offsets[f] + nb + 1];
            let miss = h[nb];
            let mut acc = Bin::default();
            // Every value bin, the last included: "every value left, missing right" is a split.
            for (b, bin) in h[..nb].iter().enumerate() {
                acc.g += bin.g;
                acc.h += bin.h;
                acc.c += bin.c;
                let directions: &[bool] = if miss.c > 0 { &[false, true] } else { &[false] };
                for &default_left in directions {
                    let left = if default_left { Bin { g: acc.g + miss.g, h: acc.h + miss.h, c: acc.c + miss.c } } else { acc };
                    let right = Bin { g: sum.g - left.g, h: sum.h - left.h, c: sum.c - left.c };
                    if left.c < self.min_data_in_leaf || right.c < self.min_data_in_leaf {
                        continue;
                    }
                    if left.h < self.min_sum_hessian || right.h < self.min_sum_hessian {
                        continue;
                    }
                    let gain = leaf_gain(left.g, left.h, self.l1, self.l2) + leaf_gain(right.g, right.h, self.l1, self.l2) - parent;
                    // A gain within rounding of 0 (a pure leaf) is no gain.
                    if gain > self.min_gain && gain > 1e-10 * parent.abs().max(1e-300) && best.is_none_or(|s| gain > s.gain) {
                        best = Some(Split { feature: f, bin: b as u8, default_left, gain, left, right });
                    }
                }
            }
        }
        best
    }

    /// Grows one tree on the rows `indices` (reordered in place: each leaf's rows end up in one
    /// contiguous range). Returns the tree (leaf values not yet set: the caller fits them) and
    /// every leaf's range of `indices`.
    pub(crate) fn grow(&self, indices: &mut [u32]) -> (Tree, Vec<(usize, usize)>) {
        let total_bins = *self.offsets().last().unwrap_or(&0);
        let mut sum = Bin::default();
        for &r in indices.iter() {
            sum.g += self.grad[r as usize];
            sum.h += self.hess[r as usize];
        }
        sum.c = indices.len() as u32;
        let root_hist = self.build_hist(indices, total_bins);
        let root_best = self.best_split(&root_hist, sum, 0);
        let mut leaves = vec![Leaf { start: 0, len: indices.len(), sum, depth: 0, hist: Some(root_hist), best: root_best, parent: None }];
        let mut tree = Tree::constant(0.0, indices.len() as f64);
        tree.leaf_value.clear();
        tree.leaf_count.clear();
        let mut scratch: Vec<u32> = Vec::with_capacity(indices.len());
        while leaves.len() < self.num_leaves {
            // The leaf with the best split (the first on ties: deterministic).
            let mut pick: Option<usize> = None;
            for (i, l) in leaves.iter().enumerate() {
                if let Some(s) = l.best
                    && pick.is_none_or(|p| s.gain > leaves[p].best.map_or(f64::NEG_INFINITY, |b| b.gain))
                {
                    pick = Some(i);
                }
            }
            let Some(i) = pick else { break };
            let split = leaves[i].best.take().expect("picked a leaf with a split");
            let (start, len, depth) = (leaves[i].start, leaves[i].len, leaves[i].depth);
            // Partition the leaf's rows: left first, stable.
            let f = split.feature;
            let d = self.binned.n_features;
            let missing = self.mappers[f].missing();
            let rows = &mut indices[start..start + len];
            scratch.clear();
            let mut n_left = 0;
            for k in 0..rows.len() {
                let r = rows[k];
                let b = self.binned.bins[r as usize * d + f];
                let go_left = if b == missing { split.default_left } else { b <= split.bin };
                if go_left {
                    rows[n_left] = r;
                    n_left += 1;
                } else {
                    scratch.push(r);
                }
            }
            rows[n_left..].copy_from_slice(&scratch);
            // The new internal node.
            let node = tree.split_feature.len();
            tree.split_feature.push(f as u32);
            tree.split_bin.push(split.bin);
            tree.threshold.push(self.mappers[f].upper[split.bin as usize]);
            tree.default_left.push(split.default_left);
            tree.left.push(0);
            tree.right.push(0);
            tree.gain.push(split.gain);
            tree.internal_count.push(len as f64);
            if let Some((p, is_left)) = leaves[i].parent {
                if is_left {
                    tree.left[p] = node as i32;
                } else {
                    tree.right[p] = node as i32;
                }
            }
            // Histograms: build the smaller child's, subtract for the larger.
            let parent_hist = leaves[i].hist.take().expect("a leaf keeps its histogram until split");
            let (small_is_left, small_rows) = if n_left <= len - n_left {
                (true, &indices[start..start + n_left])
            } else {
                (false, &indices[start + n_left..start + len])
            };
            let small = self.build_hist(small_rows, total_bins);
            let mut large = parent_hist;
            for (x, y) in large.iter_mut().zip(&small) {
                x.g -= y.g;
                x.h -= y.h;
                x.c -= y.c;
            }
            let (left_hist, right_hist) = if small_is_left { (small, large) } else { (large, small) };
            let left_best = self.best_split(&left_hist, split.left, depth + 1);
            let right_best = self.best_split(&right_hist, split.right, depth + 1);
            leaves[i] = Leaf {
                start,
                len: n_left,
                sum: split.left,
                depth: depth + 1,
                hist: Some(left_hist),
                best: left_best,
                parent: Some((node, true)),
            };
            leaves.push(Leaf {
                start: start + n_left,
                len: len - n_left,
                sum: split.right,
                depth: depth + 1,
                hist: Some(right_hist),
                best: right_best,
                parent: Some((node, false)),
            });
        }
        // Leaves in order; point their parents at them.
        let mut ranges = Vec::with_capacity(leaves.len());
        for (k, l) in leaves.iter().enumerate() {
            let code = !(k as i32);
            if let Some((p, is_left)) = l.parent {
                if is_left {
                    tree.left[p] = code;
                } else {
                    tree.right[p] = code;
                }
            }
            tree.leaf_value.push(leaf_output(l.sum.g, l.sum.h, self.l1, self.l2));
            tree.leaf_count.push(l.len as f64);
            ranges.push((l.start, l.len));
        }
        (tree, ranges)
    }
}
