//! Fast inference. Every tree is laid out in preorder as 16-byte nodes (threshold, slot, next:
//! the left child is the next node, `next` the right child), and the trees are walked by
//! [`LANES`] independent lanes at once so that the latency of one walk hides behind the others'.
//! Each lane walks a *chain* of trees: a leaf leads straight to the root of the lane's next tree,
//! so a lane spends on each tree the steps that this row's path needs (one more for the leaf),
//! not the depth of the deepest tree of a group; the trees of a window are dealt to the lanes so
//! that their expected steps (leaf depths weighted by training rows) balance.
//!
//! The walk reads one array of values per row (`xs`) built once: the features of splits whose
//! missing values go right as they are (NaN ≤ t is false), those of splits whose missing values
//! go left with NaN as −∞ (−∞ ≤ t for every threshold, as a real −∞ also goes), and after them a
//! NaN per tree of a window, which is where a leaf's `slot` points: no leaf ever goes left, and
//! its `threshold` holds its value. Every step stores the node's threshold at `rec[slot]`; the
//! last store of a tree's slot is its leaf's value. The values are then summed in the same order
//! as before (trees by depth, then index), so that predictions are the same bit for bit as those
//! of the plain walk summed in that order (see `tests/gbdt.rs`).

use std::cell::RefCell;

use super::tree::Tree;

/// One node. Internal: `xs[slot] ≤ threshold` goes to the next node, else to `next`. Leaf:
/// `xs[slot]` is NaN, `threshold` the leaf's value, `next` the root of the lane's next tree.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    threshold: f64,
    slot: u32,
    next: u32,
}

/// Trees walked at once.
const LANES: usize = 8;
/// The most trees per window (the trees of a window are summed after the window's walk).
const WINDOW: usize = 256;
/// Lane steps between two checks of whether every lane has finished.
const CHECK_EVERY: usize = 2;

/// The node every lane ends on: a leaf of value 0 that leads to itself.
const SENTINEL: u32 = 0;

/// The per-row value slots: which feature each slot reads and how.
#[derive(Debug, Clone, PartialEq, Default)]
struct Slots {
    /// Features read as they are (splits with missing values going right).
    right: Vec<u32>,
    /// Features read with NaN as −∞ (splits with missing values going left).
    left: Vec<u32>,
    /// Features read as 0 when NaN, else 1 (a split on a NaN threshold with missing values going
    /// left: only NaN goes left; such a split is never learned, but a model file may hold one).
    nan: Vec<u32>,
}

impl Slots {
    fn len(&self) -> usize {
        self.right.len() + self.left.len() + self.nan.len()
    }

    /// The slot and threshold of a split.
    fn split(&self, feature: u32, threshold: f64, default_left: bool) -> (u32, f64) {
        let find = |v: &[u32]| v.binary_search(&feature).unwrap_or(0);
        if !default_left {
            (find(&self.right) as u32, threshold)
        } else if !threshold.is_nan() {
            ((self.right.len() + find(&self.left)) as u32, threshold)
        } else {
            ((self.right.len() + self.left.len() + find(&self.nan)) as u32, 0.5)
        }
    }

    #[inline]
    fn fill(&self, x: &[f64], xs: &mut [f64]) {
        let (r, rest) = xs.split_at_mut(self.right.len());
        let (l, rest) = rest.split_at_mut(self.left.len());
        for (o, &f) in r.iter_mut().zip(&self.right) {
            *o = x[f as usize];
        }
        for (o, &f) in l.iter_mut().zip(&self.left) {
            let v = x[f as usize];
            *o = if v.is_nan() { f64::NEG_INFINITY } else { v };
        }
        for (o, &f) in rest.iter_mut().zip(&self.nan) {
            *o = if x[f as usize].is_nan() { 0.0 } else { 1.0 };
        }
    }
}

/// The trees of one window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// The first node of each lane ([`SENTINEL`] for a lane without trees).
    first: [u32; LANES],
    /// Trees in the window (their leaves record at slots `leaf_slot0 + 0..trees`).
    trees: usize,
}

/// The forest, compiled for prediction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    nodes: Vec<Node>,
    slots: Slots,
    windows: Vec<Window>,
    /// Length of the per-row arrays: value slots, one leaf slot per tree of the largest window,
    /// and the sentinel's slot.
    width: usize,
}

thread_local! {
    /// The per-row arrays (values, records), kept for the next row.
    static SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Compiled {
    pub fn new(trees: &[Tree]) -> Compiled {
        let mut slots = Slots::default();
        for t in trees {
            for n in 0..t.split_feature.len() {
                let f = t.split_feature[n];
                match (t.default_left[n], t.threshold[n].is_nan()) {
                    (false, _) => slots.right.push(f),
                    (true, false) => slots.left.push(f),
                    (true, true) => slots.nan.push(f),
                }
            }
        }
        for v in [&mut slots.right, &mut slots.left, &mut slots.nan] {
            v.sort_unstable();
            v.dedup();
        }
        // The summation order (and the order of the windows): trees by depth, then index.
        let depths: Vec<usize> = trees.iter().map(Tree::depth).collect();
        let mut order: Vec<usize> = (0..trees.len()).collect();
        order.sort_by_key(|&i| (depths[i], i));
        let n_windows = order.len().div_ceil(WINDOW);
        let per_window = if n_windows == 0 { 0 } else { order.len().div_ceil(n_windows) };
        let leaf0 = slots.len() as u32;
        let sentinel_slot = leaf0 + per_window as u32;
        let mut nodes = vec![Node { threshold: 0.0, slot: sentinel_slot, next: SENTINEL }];
        let mut windows = Vec::with_capacity(n_windows);
        for win in order.chunks(per_window.max(1)) {
            // Deal the trees to the lanes, longest expected walk first, each to the lane with the
            // fewest expected steps so far.
            let steps: Vec<f64> = win.iter().map(|&i| expected_path(&trees[i]) + 1.0).collect();
            let mut by_steps: Vec<usize> = (0..win.len()).collect();
            by_steps.sort_by(|&a, &b| steps[b].total_cmp(&steps[a]).then(a.cmp(&b)));
            let mut lanes: [Vec<usize>; LANES] = Default::default();
            let mut load = [0.0f64; LANES];
            for p in by_steps {
                let j = (0..LANES).min_by(|&a, &b| load[a].total_cmp(&load[b])).unwrap_or(0);
                load[j] += steps[p];
                lanes[j].push(p);
            }
            let mut first = [SENTINEL; LANES];
            for (j, lane) in lanes.iter().enumerate() {
                // Back to front, so that each tree's leaves know the root that follows.
                let mut next = SENTINEL;
                for &p in lane.iter().rev() {
                    let root = nodes.len() as u32;
                    lay_out(&trees[win[p]], &slots, leaf0 + p as u32, next, &mut nodes);
                    next = root;
                }
                first[j] = next;
            }
            windows.push(Window { first, trees: win.len() });
        }
        let width = sentinel_slot as usize + 1;
        Compiled { nodes, slots, windows, width }
    }

    /// Σ over trees of the leaf `x` reaches, summed in the compiled order (trees by depth, then
    /// index).
    #[inline]
    pub fn sum(&self, x: &[f64]) -> f64 {
        if self.windows.is_empty() {
            return 0.0;
        }
        SCRATCH.with(|s| {
            let (xs, rec) = &mut *s.borrow_mut();
            if xs.len() < self.width {
                xs.resize(self.width, f64::NAN);
                rec.resize(self.width, 0.0);
            }
            let (xs, rec) = (&mut xs[..self.width], &mut rec[..self.width]);
            let n_slots = self.slots.len();
            self.slots.fill(x, &mut xs[..n_slots]);
            xs[n_slots..].fill(f64::NAN);
            self.walk(xs, rec)
        })
    }

    #[inline]
    fn walk(&self, xs: &[f64], rec: &mut [f64]) -> f64 {
        let nodes = &self.nodes[..];
        let leaf0 = self.slots.len();
        let mut total = 0.0;
        for w in &self.windows {
            let mut at = w.first;
            loop {
                for _ in 0..CHECK_EVERY {
                    for a in at.iter_mut() {
                        let n = nodes[*a as usize];
                        rec[n.slot as usize] = n.threshold;
                        let left = xs[n.slot as usize] <= n.threshold;
                        *a = std::hint::select_unpredictable(left, a.wrapping_add(1), n.next);
                    }
                }
                // Every lane on the sentinel (node 0).
                if at.iter().fold(0, |o, &a| o | a) == SENTINEL {
                    break;
                }
            }
            for v in &rec[leaf0..leaf0 + w.trees] {
                total += v;
            }
        }
        total
    }
}

/// Appends `t` in preorder; its leaves record at `leaf_slot` and lead to `next`.
fn lay_out(t: &Tree, slots: &Slots, leaf_slot: u32, next: u32, nodes: &mut Vec<Node>) {
    // An explicit stack: (child reference, the node whose `next` it is).
    let mut stack: Vec<(i32, Option<usize>)> = vec![(if t.split_feature.is_empty() { -1 } else { 0 }, None)];
    while let Some((c, parent)) = stack.pop() {
        let me = nodes.len();
        if let Some(p) = parent {
            nodes[p].next = me as u32;
        }
        if c < 0 {
            let value = t.leaf_value.get(!c as usize).copied().unwrap_or(0.0);
            nodes.push(Node { threshold: value, slot: leaf_slot, next });
        } else {
            let n = c as usize;
            let (slot, threshold) = slots.split(t.split_feature[n], t.threshold[n], t.default_left[n]);
            nodes.push(Node { threshold, slot, next: 0 });
            // The right subtree after the whole left one: pushed first, popped last.
            stack.push((t.right[n], Some(me)));
            stack.push((t.left[n], None));
        }
    }
}

/// The expected number of splits on a row's path (leaf depths weighted by training rows).
fn expected_path(t: &Tree) -> f64 {
    if t.split_feature.is_empty() {
        return 0.0;
    }
    let (mut sum, mut weight) = (0.0, 0.0);
    let mut stack = vec![(0i32, 0.0)];
    while let Some((c, d)) = stack.pop() {
        if c < 0 {
            let w = t.leaf_count.get(!c as usize).copied().unwrap_or(0.0).max(1.0);
            sum += w * d;
            weight += w;
        } else {
            stack.push((t.left[c as usize], d + 1.0));
            stack.push((t.right[c as usize], d + 1.0));
        }
    }
    sum / weight
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::rng::SplitMix64;

    /// Thresholds and values drawn from one small pool, so that values equal to thresholds, ±∞,
    /// ±0 and NaN (as a value and as a threshold) all occur.
    const POOL: [f64; 10] = [f64::NEG_INFINITY, -1.5, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0, f64::INFINITY, f64::NAN];

    fn pick(r: &mut SplitMix64, n: usize) -> usize {
        r.below(n)
    }

    fn unit(r: &mut SplitMix64) -> f64 {
        (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random tree of `leaves` leaves grown leaf-wise; with `deep`, mostly at its deepest leaf
    /// (long unbalanced spines).
    fn tree(r: &mut SplitMix64, leaves: usize, n_features: u32, deep: bool) -> Tree {
        let mut t = Tree { leaf_value: vec![0.0], leaf_count: vec![1.0], ..Default::default() };
        // (parent, is left) per leaf, and each leaf's depth.
        let mut parent: Vec<Option<(usize, bool)>> = vec![None];
        let mut depth = vec![0usize];
        while t.leaf_value.len() < leaves {
            let l = if deep && pick(r, 4) != 0 { (0..depth.len()).max_by_key(|&i| (depth[i], i)).unwrap_or(0) } else { pick(r, depth.len()) };
            let node = t.split_feature.len();
            t.split_feature.push(pick(r, n_features as usize) as u32);
            t.split_bin.push(0);
            t.threshold.push(if pick(r, 3) == 0 { POOL[pick(r, POOL.len())] } else { unit(r) * 4.0 - 2.0 });
            t.default_left.push(pick(r, 2) == 0);
            t.gain.push(1.0);
            t.internal_count.push(1.0);
            let new = t.leaf_value.len();
            t.left.push(!(l as i32));
            t.right.push(!(new as i32));
            if let Some((p, is_left)) = parent[l] {
                if is_left { t.left[p] = node as i32 } else { t.right[p] = node as i32 }
            }
            parent[l] = Some((node, true));
            parent.push(Some((node, false)));
            depth[l] += 1;
            depth.push(depth[l]);
            t.leaf_value.push(0.0);
            t.leaf_count.push(1.0 + pick(r, 100) as f64);
        }
        // Values of very different sizes, so that the order of the sum shows in its bits.
        for v in &mut t.leaf_value {
            *v = (unit(r) - 0.5) * 10f64.powi(pick(r, 12) as i32 - 6);
        }
        t
    }

    /// The plain walk of every tree, summed in the compiled order (trees by depth, then index).
    fn reference(trees: &[Tree], x: &[f64]) -> f64 {
        let mut order: Vec<usize> = (0..trees.len()).collect();
        order.sort_by_key(|&i| (trees[i].depth(), i));
        order.iter().fold(0.0, |s, &i| s + trees[i].leaf_value[trees[i].leaf(x)])
    }

    #[test]
    fn the_compiled_forest_sums_the_plain_walk_bit_for_bit() {
        let mut r = SplitMix64::new(11);
        let d = 7u32;
        // Sizes around the lanes and windows: no tree, one, a partial lane set, several windows.
        for n_trees in [0usize, 1, 5, 8, 9, 31, 300, 2 * WINDOW + 3] {
            let trees: Vec<Tree> = (0..n_trees)
                .map(|i| match i % 5 {
                    0 => tree(&mut r, 1, d, false),
                    1 => tree(&mut r, 31, d, true),
                    2 => tree(&mut r, 2, d, false),
                    _ => {
                        let (leaves, deep) = (1 + pick(&mut r, 40), pick(&mut r, 2) == 0);
                        tree(&mut r, leaves, d, deep)
                    }
                })
                .collect();
            let c = Compiled::new(&trees);
            for _ in 0..300 {
                let x: Vec<f64> = (0..d)
                    .map(|_| match pick(&mut r, 3) {
                        0 => POOL[pick(&mut r, POOL.len())],
                        _ => unit(&mut r) * 4.0 - 2.0,
                    })
                    .collect();
                // Equal to a threshold of the forest, too.
                let mut y = x.clone();
                if let Some(t) = trees.iter().find(|t| !t.split_feature.is_empty()) {
                    y[t.split_feature[0] as usize] = t.threshold[0];
                }
                for row in [&x, &y] {
                    let (got, want) = (c.sum(row), reference(&trees, row));
                    assert_eq!(got.to_bits(), want.to_bits(), "{n_trees} trees, row {row:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn models_of_different_widths_share_the_scratch_arrays() {
        let mut r = SplitMix64::new(5);
        let small: Vec<Tree> = (0..3).map(|_| tree(&mut r, 8, 2, false)).collect();
        let large: Vec<Tree> = (0..40).map(|_| tree(&mut r, 8, 30, true)).collect();
        let (cs, cl) = (Compiled::new(&small), Compiled::new(&large));
        for _ in 0..200 {
            let x: Vec<f64> = (0..30).map(|_| POOL[pick(&mut r, POOL.len())]).collect();
            assert_eq!(cl.sum(&x).to_bits(), reference(&large, &x).to_bits());
            assert_eq!(cs.sum(&x).to_bits(), reference(&small, &x).to_bits());
        }
    }
}
