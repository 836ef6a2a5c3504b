//! Fast inference. Every tree is laid out in preorder (the left child is the next node, `next`
//! the right child), and several lanes walk the forest at once so that the latency of one walk
//! hides behind the others'. Each lane walks a *chain* of trees: a leaf leads straight to the root
//! of the lane's next tree, so a lane spends on each tree the steps that this row's path needs
//! (one more for the leaf), not the depth of the deepest tree of a group; the trees are dealt to
//! the lanes so that their expected steps (leaf depths weighted by training rows) balance.
//!
//! The walk reads one array of values per row (`xs`) built once: for splits whose missing values
//! go right, a feature with NaN as +∞ (+∞ ≤ t is false for every finite threshold, as NaN ≤ t
//! is); for those whose missing values go left, NaN as −∞ (−∞ ≤ t for every threshold, as a
//! real −∞ also goes); and, for the two splits where that fails (a +∞ threshold whose missing
//! values go right, a NaN threshold whose go left: "is it missing?" splits), 0 or 1 by whether
//! the value is missing. After them come NaN slots, where the leaves' `slot` points: a node whose
//! value is NaN is a leaf (an internal node never reads NaN), it never goes left, and its
//! `threshold` holds its value.
//!
//! Two layouts, one chosen when the forest is compiled:
//! - [`Lanes`], where the CPU has AVX-512: 48 lanes, 8 per register, all in flight at once; each
//!   step gathers the lanes' thresholds, links and values, and a leaf's value is added to its
//!   lane's sum. The sum is each lane's values in chain order, then the lanes' sums in lane order.
//! - [`Chained`] elsewhere (portable code): 8 lanes in windows of up to 256 trees; every step
//!   stores its threshold at its slot, one NaN slot per tree, so the last store at a tree's slot is
//!   its leaf's value; the values are then summed trees by depth, then index.
//!
//! The two orders of summation may differ in the last bit; on one machine a row always gets the
//! same bits, and [`Compiled::lanes`] names the order, in which the tests check each layout bit
//! for bit against the plain walk.

use std::cell::RefCell;

use super::tree::Tree;

/// Lanes of the AVX-512 walk (6 registers of 8). Fewer registers leave the gathers waiting on
/// each other's latency; more leave lanes idle at the end of the walk while the longest chain
/// finishes (see BENCHMARKS, "GBDT single-row prediction").
const LANES: usize = 48;
/// Lanes per register of the AVX-512 walk, and lanes of the portable walk.
const GROUP: usize = 8;
/// The most trees per window of the portable walk (summed after the window's walk).
const WINDOW: usize = 256;
/// Lane steps between two checks of whether every lane has finished.
const CHECK_EVERY: usize = 2;

/// The node every lane ends on: a leaf that leads to itself (of value −0 in the AVX-512 layout,
/// where adding it changes no lane's sum; the portable walk records it at a slot of its own).
const SENTINEL: u32 = 0;

/// How a split reads its feature (the index of its list in [`Slots`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    /// NaN as +∞: splits with missing values going right.
    Right = 0,
    /// NaN as −∞: splits with missing values going left.
    Left = 1,
    /// 1 when NaN, else 0, against 0.5: a +∞ threshold with missing values going right (only NaN
    /// goes right).
    MissingRight = 2,
    /// 0 when NaN, else 1, against 0.5: a NaN threshold with missing values going left (only NaN
    /// goes left; never learned, but a model file may hold one).
    MissingLeft = 3,
}

impl Read {
    fn of(threshold: f64, default_left: bool) -> Read {
        match (default_left, threshold) {
            (false, f64::INFINITY) => Read::MissingRight,
            (false, _) => Read::Right,
            (true, t) if t.is_nan() => Read::MissingLeft,
            (true, _) => Read::Left,
        }
    }

    #[inline]
    fn value(self, v: f64) -> f64 {
        let nan = v.is_nan();
        match self {
            Read::Right => if nan { f64::INFINITY } else { v },
            Read::Left => if nan { f64::NEG_INFINITY } else { v },
            Read::MissingRight => if nan { 1.0 } else { 0.0 },
            Read::MissingLeft => if nan { 0.0 } else { 1.0 },
        }
    }
}

/// The per-row value slots: the features each kind of read takes, in the order of [`Read`].
#[derive(Debug, Clone, PartialEq, Default)]
struct Slots {
    lists: [Vec<u32>; 4],
}

impl Slots {
    fn new(trees: &[Tree]) -> Slots {
        let mut s = Slots::default();
        for t in trees {
            for n in 0..t.split_feature.len() {
                s.lists[Read::of(t.threshold[n], t.default_left[n]) as usize].push(t.split_feature[n]);
            }
        }
        for v in &mut s.lists {
            v.sort_unstable();
            v.dedup();
        }
        s
    }

    /// The value slots (the leaves' NaN slot comes after them).
    fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// The slot and threshold of a split.
    fn split(&self, feature: u32, threshold: f64, default_left: bool) -> (u32, f64) {
        let read = Read::of(threshold, default_left);
        let k = read as usize;
        let base: usize = self.lists[..k].iter().map(Vec::len).sum();
        let slot = (base + self.lists[k].binary_search(&feature).unwrap_or(0)) as u32;
        (slot, if k >= Read::MissingRight as usize { 0.5 } else { threshold })
    }

    #[inline]
    fn fill(&self, x: &[f64], xs: &mut [f64]) {
        let mut out = xs.iter_mut();
        for (read, list) in [Read::Right, Read::Left, Read::MissingRight, Read::MissingLeft].into_iter().zip(&self.lists) {
            // The list first: `zip` takes from its first iterator before it learns that the
            // second has ended.
            for (&f, o) in list.iter().zip(out.by_ref()) {
                *o = read.value(x[f as usize]);
            }
        }
    }
}

/// The forest, compiled for prediction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    slots: Slots,
    layout: Layout,
}

#[derive(Debug, Clone, PartialEq)]
enum Layout {
    Chained(Chained),
    Lanes(Lanes),
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::Chained(Chained::default())
    }
}

thread_local! {
    /// The per-row arrays (values, records), kept for the next row.
    static SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Compiled {
    /// The forest in the AVX-512 layout where this CPU has it, else in the portable one.
    pub fn new(trees: &[Tree]) -> Compiled {
        Compiled::with_layout(trees, true)
    }

    /// The forest in the portable layout, whatever the CPU.
    pub fn portable(trees: &[Tree]) -> Compiled {
        Compiled::with_layout(trees, false)
    }

    /// With `simd`, the AVX-512 layout where [`Lanes::new`] can make one.
    fn with_layout(trees: &[Tree], simd: bool) -> Compiled {
        let slots = Slots::new(trees);
        let layout = match simd.then(|| Lanes::new(trees, &slots)).flatten() {
            Some(l) => Layout::Lanes(l),
            None => Layout::Chained(Chained::new(trees, &slots)),
        };
        Compiled { slots, layout }
    }

    /// The order of the sum: lane by lane, each lane's trees added in order from 0, then the
    /// lanes' sums added in order from 0.
    pub fn lanes(&self) -> Vec<Vec<usize>> {
        match &self.layout {
            Layout::Chained(c) => vec![c.order.clone()],
            Layout::Lanes(l) => l.lanes.clone(),
        }
    }

    /// Σ over trees of the leaf `x` reaches, summed in the order of [`Compiled::lanes`].
    #[inline]
    pub fn sum(&self, x: &[f64]) -> f64 {
        let width = match &self.layout {
            Layout::Chained(c) if !c.windows.is_empty() => c.width,
            Layout::Lanes(l) if !l.lanes.iter().all(Vec::is_empty) => l.width,
            _ => return 0.0,
        };
        SCRATCH.with(|s| {
            let (xs, rec) = &mut *s.borrow_mut();
            if xs.len() < width {
                xs.resize(width, f64::NAN);
                rec.resize(width, 0.0);
            }
            let (xs, rec) = (&mut xs[..width], &mut rec[..width]);
            let n_slots = self.slots.len();
            self.slots.fill(x, &mut xs[..n_slots]);
            xs[n_slots..].fill(f64::NAN);
            match &self.layout {
                Layout::Chained(c) => c.walk(xs, rec, n_slots),
                Layout::Lanes(l) => {
                    let mut acc = [0.0f64; LANES];
                    simd::walk(l, xs, &mut acc);
                    acc[..l.first.len()].iter().fold(0.0, |s, v| s + v)
                }
            }
        })
    }
}

/// A node of the portable layout. Internal: `xs[slot] ≤ threshold` goes to the next node, else
/// to `next`. Leaf: `xs[slot]` is NaN, `threshold` the leaf's value, `next` the root of the
/// lane's next tree.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    threshold: f64,
    slot: u32,
    next: u32,
}

/// The trees of one window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// The first node of each lane ([`SENTINEL`] for a lane without trees).
    first: [u32; GROUP],
    /// Trees in the window (their leaves record at slots `leaf_slot0 + 0..trees`).
    trees: usize,
}

/// The portable layout: 16-byte nodes, 8 chained lanes per window of up to 256 trees.
#[derive(Debug, Clone, PartialEq, Default)]
struct Chained {
    nodes: Vec<Node>,
    windows: Vec<Window>,
    /// The order of the sum: trees by depth, then index.
    order: Vec<usize>,
    /// Length of the per-row arrays: value slots, one leaf slot per tree of the largest window,
    /// and the sentinel's slot.
    width: usize,
}

impl Chained {
    fn new(trees: &[Tree], slots: &Slots) -> Chained {
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
            let lanes = deal(trees, win, GROUP);
            let mut first = [SENTINEL; GROUP];
            for (j, lane) in lanes.iter().enumerate() {
                // Back to front, so that each tree's leaves know the root that follows.
                let mut next = SENTINEL;
                for &p in lane.iter().rev() {
                    let root = nodes.len() as u32;
                    let laid = lay_out(&trees[win[p]], slots, leaf0 + p as u32, next, nodes.len());
                    nodes.extend(laid.into_iter().map(|(threshold, slot, next)| Node { threshold, slot, next }));
                    next = root;
                }
                first[j] = next;
            }
            windows.push(Window { first, trees: win.len() });
        }
        Chained { nodes, windows, order, width: sentinel_slot as usize + 1 }
    }

    #[inline]
    fn walk(&self, xs: &[f64], rec: &mut [f64], leaf0: usize) -> f64 {
        let nodes = &self.nodes[..];
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

/// The AVX-512 layout: thresholds and links in two arrays, 48 lanes. Only [`Lanes::new`] makes
/// one, and only where the CPU has AVX-512 and every link is in bounds: the walk relies on both.
#[derive(Debug, Clone, PartialEq)]
struct Lanes {
    /// Each node's threshold (a leaf's value; −0 for the sentinel).
    threshold: Vec<f64>,
    /// Each node's slot (low 32 bits) and right child or next root (high 32 bits).
    link: Vec<u64>,
    /// The first node of each lane ([`SENTINEL`] for a lane without trees); a multiple of
    /// [`GROUP`] lanes.
    first: Vec<u32>,
    /// The trees of each lane, in chain order.
    lanes: Vec<Vec<usize>>,
    /// Length of the per-row array: the value slots and the leaves' NaN slot.
    width: usize,
}

impl Lanes {
    /// The layout, or `None` where the CPU lacks AVX-512 or a gather could read out of bounds
    /// (a forest too large for 32-bit indices).
    fn new(trees: &[Tree], slots: &Slots) -> Option<Lanes> {
        if !simd::available() {
            return None;
        }
        let nan_slot = slots.len() as u32;
        let n_lanes = trees.len().div_ceil(GROUP).clamp(1, LANES / GROUP) * GROUP;
        let all: Vec<usize> = (0..trees.len()).collect();
        let lanes = deal(trees, &all, n_lanes);
        let mut threshold = vec![-0.0];
        let mut link = vec![u64::from(nan_slot) | (u64::from(SENTINEL) << 32)];
        let mut first = vec![SENTINEL; n_lanes];
        for (j, lane) in lanes.iter().enumerate() {
            let mut next = SENTINEL;
            for &t in lane.iter().rev() {
                let root = threshold.len() as u32;
                for (t, slot, next) in lay_out(&trees[t], slots, nan_slot, next, threshold.len()) {
                    threshold.push(t);
                    link.push(u64::from(slot) | (u64::from(next) << 32));
                }
                next = root;
            }
            first[j] = next;
        }
        let width = nan_slot as usize + 1;
        let n = threshold.len() as u64;
        // The gathers read at every link: a node's slot, its right child or next root, and, for
        // an internal node (one whose slot is not the leaves' NaN slot), the next node (its left
        // child).
        let in_bounds = n <= i32::MAX as u64
            && width <= i32::MAX as usize
            && link.iter().enumerate().all(|(i, &l)| {
                let slot = l & 0xffff_ffff;
                l >> 32 < n && slot < width as u64 && (slot == u64::from(nan_slot) || (i as u64) + 1 < n)
            })
            && first.iter().all(|&f| u64::from(f) < n);
        in_bounds.then_some(Lanes { threshold, link, first, lanes, width })
    }
}

/// The trees `ids` (indices into `trees`) dealt to `n` lanes, longest expected walk first, each to
/// the lane with the fewest expected steps so far; a lane holds positions in `ids`.
fn deal(trees: &[Tree], ids: &[usize], n: usize) -> Vec<Vec<usize>> {
    let steps: Vec<f64> = ids.iter().map(|&i| expected_path(&trees[i]) + 1.0).collect();
    let mut by_steps: Vec<usize> = (0..ids.len()).collect();
    by_steps.sort_by(|&a, &b| steps[b].total_cmp(&steps[a]).then(a.cmp(&b)));
    let mut lanes = vec![Vec::new(); n];
    let mut load = vec![0.0f64; n];
    for p in by_steps {
        let j = (0..n).min_by(|&a, &b| load[a].total_cmp(&load[b])).unwrap_or(0);
        load[j] += steps[p];
        lanes[j].push(p);
    }
    lanes
}

/// The nodes of `t` in preorder, as (threshold, slot, next) with `base` the index of its root:
/// its leaves read `leaf_slot` and lead to `next`.
fn lay_out(t: &Tree, slots: &Slots, leaf_slot: u32, next: u32, base: usize) -> Vec<(f64, u32, u32)> {
    let mut nodes: Vec<(f64, u32, u32)> = Vec::with_capacity(2 * t.split_feature.len() + 1);
    // An explicit stack: (child reference, the node whose right child it is).
    let mut stack: Vec<(i32, Option<usize>)> = vec![(if t.split_feature.is_empty() { -1 } else { 0 }, None)];
    while let Some((c, parent)) = stack.pop() {
        let me = nodes.len();
        if let Some(p) = parent {
            nodes[p].2 = (base + me) as u32;
        }
        if c < 0 {
            nodes.push((t.leaf_value.get(!c as usize).copied().unwrap_or(0.0), leaf_slot, next));
        } else {
            let n = c as usize;
            let (slot, threshold) = slots.split(t.split_feature[n], t.threshold[n], t.default_left[n]);
            nodes.push((threshold, slot, 0));
            // The right subtree after the whole left one: pushed first, popped last.
            stack.push((t.right[n], Some(me)));
            stack.push((t.left[n], None));
        }
    }
    nodes
}

/// The AVX-512 walk.
mod simd {
    use super::{Lanes, CHECK_EVERY, GROUP, LANES};

    /// Whether this CPU has the instructions of [`walk`].
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Walks the lanes of `c`, a register of 8 at a time and every register in flight, into
    /// `acc`.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn walk(c: &Lanes, xs: &[f64], acc: &mut [f64; LANES]) {
        assert!(xs.len() >= c.width);
        // SAFETY: a `Lanes` exists only where `Lanes::new` found AVX-512F and VL and checked every
        // link in bounds, so `walk_v` reads only at nodes of `c` and slots < `c.width` ≤ `xs.len()`.
        #[allow(unsafe_code)]
        unsafe {
            match c.first.len() / GROUP {
                1 => walk_v::<1>(c, xs, acc),
                2 => walk_v::<2>(c, xs, acc),
                3 => walk_v::<3>(c, xs, acc),
                4 => walk_v::<4>(c, xs, acc),
                5 => walk_v::<5>(c, xs, acc),
                _ => walk_v::<6>(c, xs, acc),
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn walk(_: &Lanes, _: &[f64], _: &mut [f64; LANES]) {
        unreachable!("the AVX-512 walk is only chosen on x86-64")
    }

    /// The walk of `V` registers of lanes: a step gathers each lane's threshold and link, then its
    /// value, compares, adds the value of a leaf, and moves to the next node or the right child.
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn walk_v<const V: usize>(c: &Lanes, xs: &[f64], acc: &mut [f64; LANES]) {
        use std::arch::x86_64::*;
        let (tp, lp, xp) = (c.threshold.as_ptr(), c.link.as_ptr().cast::<i64>(), xs.as_ptr());
        let one = _mm256_set1_epi32(1);
        let mut at = [_mm256_setzero_si256(); V];
        let mut sum = [_mm512_setzero_pd(); V];
        for (v, a) in at.iter_mut().enumerate() {
            // SAFETY: an unaligned read of the 8 u32 of a slice of 8 (node indices < 2³¹).
            *a = unsafe { _mm256_loadu_si256(c.first[v * GROUP..(v + 1) * GROUP].as_ptr().cast()) };
        }
        loop {
            for _ in 0..CHECK_EVERY {
                for v in 0..V {
                    let a = at[v];
                    // SAFETY: every lane is on a node of `c` (checked links), and every slot is
                    // below `c.width` ≤ `xs.len()`.
                    let (t, l) = unsafe { (_mm512_i32gather_pd::<8>(a, tp), _mm512_i32gather_epi64::<8>(a, lp)) };
                    let slot = _mm512_cvtepi64_epi32(l);
                    let next = _mm512_cvtepi64_epi32(_mm512_srli_epi64::<32>(l));
                    let x = unsafe { _mm512_i32gather_pd::<8>(slot, xp) };
                    let leaf = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x);
                    sum[v] = _mm512_mask_add_pd(sum[v], leaf, sum[v], t);
                    let left = _mm512_cmp_pd_mask::<_CMP_LE_OQ>(x, t);
                    at[v] = _mm256_mask_blend_epi32(left, next, _mm256_add_epi32(a, one));
                }
            }
            let any = at.iter().fold(_mm256_setzero_si256(), |o, &a| _mm256_or_si256(o, a));
            if _mm256_testz_si256(any, any) != 0 {
                break;
            }
        }
        for (v, s) in sum.iter().enumerate() {
            let mut out = [0.0f64; GROUP];
            // SAFETY: an unaligned write of 8 f64.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), *s) };
            acc[v * GROUP..(v + 1) * GROUP].copy_from_slice(&out);
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

    /// The plain walk of every tree, summed in the compiled order (lane by lane, each in chain
    /// order).
    fn reference(c: &Compiled, trees: &[Tree], x: &[f64]) -> f64 {
        let lane = |l: &Vec<usize>| l.iter().fold(0.0, |s, &i| s + trees[i].leaf_value[trees[i].leaf(x)]);
        c.lanes().iter().fold(0.0, |s, l| s + lane(l))
    }

    /// Both layouts (the AVX-512 one where the CPU has it) against the plain walk, bit for bit.
    fn check(trees: &[Tree], layouts: &[Compiled], x: &[f64]) {
        for c in layouts {
            let got = c.sum(x);
            let want = reference(c, trees, x);
            assert_eq!(got.to_bits(), want.to_bits(), "{} trees, {:?}, row {x:?}: {got} vs {want}", trees.len(), std::mem::discriminant(&c.layout));
        }
    }

    fn layouts(trees: &[Tree]) -> Vec<Compiled> {
        let mut v = vec![Compiled::with_layout(trees, false)];
        assert!(matches!(v[0].layout, Layout::Chained(_)));
        if simd::available() {
            v.push(Compiled::with_layout(trees, true));
            assert!(matches!(v[1].layout, Layout::Lanes(_)));
        }
        v
    }

    #[test]
    fn the_compiled_forest_sums_the_plain_walk_bit_for_bit() {
        let mut r = SplitMix64::new(11);
        let d = 7u32;
        // Sizes around the lanes and windows: no tree, one, a partial lane set, several windows.
        for n_trees in [0usize, 1, 5, 8, 9, 31, 47, 49, 300, 2 * WINDOW + 3] {
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
            let c = layouts(&trees);
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
                    check(&trees, &c, row);
                }
            }
        }
    }

    #[test]
    fn models_of_different_widths_share_the_scratch_arrays() {
        let mut r = SplitMix64::new(5);
        let small: Vec<Tree> = (0..3).map(|_| tree(&mut r, 8, 2, false)).collect();
        let large: Vec<Tree> = (0..40).map(|_| tree(&mut r, 8, 30, true)).collect();
        let (cs, cl) = (layouts(&small), layouts(&large));
        for _ in 0..200 {
            let x: Vec<f64> = (0..30).map(|_| POOL[pick(&mut r, POOL.len())]).collect();
            check(&large, &cl, &x);
            check(&small, &cs, &x);
        }
    }
}
