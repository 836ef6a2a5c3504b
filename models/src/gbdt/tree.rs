//! One regression tree and its leaf-wise learner over binned data: histograms of gradient and
//! hessian per feature bin, built in parallel for the smaller child of each split, the larger
//! child's histogram being its parent's minus the smaller's (the sibling-subtraction trick).

use rayon::prelude::*;

use super::bins::{BinMapper, Binned};

/// A fitted tree. Internal nodes are indexed 0..; a child index `< 0` is the leaf `!index`.
/// `Tree::default()` has no node at all (a tree being built or read).
#[derive(Debug, Clone, PartialEq, Default)]
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

/// Sums of one histogram bin. Counts are not kept per bin: like LightGBM, a split's row counts
/// are estimated from its hessian sums (`count ≈ h × rows / Σh` of the leaf), exact for the
/// objectives whose hessian is 1; the leaves' own counts are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Bin {
    g: f64,
    h: f64,
}

/// A split candidate's side: sums and (estimated) row count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Side {
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
    /// Gradient and hessian of every row.
    pub gh: &'a [[f32; 2]],
    pub num_leaves: usize,
    pub max_depth: Option<usize>,
    pub min_data_in_leaf: u32,
    pub min_sum_hessian: f64,
    pub min_gain: f64,
    pub l1: f64,
    pub l2: f64,
    /// Features this tree may split on.
    pub features: &'a [usize],
    /// Start of each feature's bins in a histogram (filled by [`Grow::new`]).
    pub offsets: Vec<usize>,
    /// Whether `features` is every feature (filled by [`Grow::new`]).
    pub all_features: bool,
    /// Whether every feature's histogram is a block of [`BLOCK`] bins (filled by [`Grow::new`]).
    pub blocked: bool,
    /// Histogram buffers for reuse (fresh pages cost more than the histograms).
    pub pool: &'a HistPool,
}

/// Histogram buffers kept across trees.
pub(crate) type HistPool = std::sync::Mutex<Vec<Vec<Bin>>>;

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    default_left: bool,
    gain: f64,
    left: Side,
    right: Side,
}

struct Leaf {
    start: usize,
    len: usize,
    sum: Side,
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

/// Bins from which a histogram is zeroed and subtracted in parallel (512 KB).
const PARALLEL_BINS: usize = 32_768;

/// Features from which a histogram of fewer than [`PARALLEL_ROWS`] rows is filled by two
/// threads, each a half of the features.
const PARALLEL_FEATURES: usize = 64;

/// Bins of a feature's histogram in the blocked layout: every `u8` bin.
const BLOCK: usize = 256;

/// How many rows ahead the scattered reads of a leaf's rows are prefetched.
const PREFETCH_AHEAD: usize = 24;

/// Hints the CPU to bring `slice[i]` into cache (nothing when `i` is out of bounds). A hint
/// only: it cannot change a result. The one `unsafe` of omen: `_mm_prefetch` is an intrinsic
/// (SSE, part of the x86-64 baseline) on a pointer taken from a live reference, and a prefetch
/// never faults.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = slice.get(i) {
        // SAFETY: a cache hint on a valid address; SSE is always present on x86-64.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}

impl<'a> Grow<'a> {
    /// Completes the derived fields.
    pub(crate) fn new(mut g: Grow<'a>) -> Grow<'a> {
        let mut o = Vec::with_capacity(g.mappers.len() + 1);
        let mut acc = 0;
        g.all_features = g.features.len() == g.mappers.len() && g.features.iter().enumerate().all(|(i, &f)| i == f);
        // Dense tables: every feature's histogram starts at a multiple of 256 (a feature has at
        // most 255 value bins and the missing one), so that filling indexes a `[Bin; 256]` with
        // the row's `u8` bin: no offset to load and no bounds to check.
        g.blocked = g.all_features && g.mappers.iter().all(|m| m.value_bins() + 1 > BLOCK / 2);
        for m in g.mappers {
            o.push(acc);
            acc += if g.blocked { BLOCK } else { m.value_bins() + 1 };
        }
        o.push(acc);
        g.offsets = o;
        g
    }

    fn total_bins(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    fn take_hist(&self) -> Hist {
        let buf = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        match buf {
            Some(mut h) => {
                // Zeroed and sized for this tree's layout (compact or blocked).
                h.resize(self.total_bins(), Bin::default());
                if h.len() >= PARALLEL_BINS && rayon::current_num_threads() > 1 {
                    h.par_chunks_mut(PARALLEL_BINS / 4).for_each(|c| c.fill(Bin::default()));
                } else {
                    h.fill(Bin::default());
                }
                h
            }
            None => vec![Bin::default(); self.total_bins()],
        }
    }

    fn give_hist(&self, h: Hist) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(h);
        }
    }

    fn fill_hist(&self, rows: &[u32], hist: &mut Hist) {
        let offsets = &self.offsets[..self.binned.n_features];
        if self.blocked {
            let (blocks, _) = hist.as_chunks_mut::<BLOCK>();
            self.for_each_row(rows, true, |g, h, row| {
                for (block, &b) in blocks.iter_mut().zip(row) {
                    let e = &mut block[b as usize];
                    e.g += g;
                    e.h += h;
                }
            });
        } else if self.all_features {
            self.fill_features(rows, 0..self.binned.n_features, hist);
        } else {
            self.for_each_row(rows, false, |g, h, row| {
                for &f in self.features {
                    let e = &mut hist[offsets[f] + row[f] as usize];
                    e.g += g;
                    e.h += h;
                }
            });
        }
    }

    /// Fills the bins of the features `fs` (every feature, in order, compact layout) into `hist`,
    /// the part of a histogram that starts at the first of them.
    fn fill_features(&self, rows: &[u32], fs: std::ops::Range<usize>, hist: &mut [Bin]) {
        let base = self.offsets[fs.start];
        let offsets = &self.offsets[fs.clone()];
        self.for_each_row(rows, true, |g, h, row| {
            for (&b, &o) in row[fs.clone()].iter().zip(offsets) {
                let e = &mut hist[o - base + b as usize];
                e.g += g;
                e.h += h;
            }
        });
    }

    /// Calls `add` with each row's gradient, hessian and bins. With `ahead`, the row and
    /// gradient `PREFETCH_AHEAD` rows on are prefetched, so that the cache misses of a leaf's
    /// scattered rows overlap.
    #[inline(always)]
    fn for_each_row(&self, rows: &[u32], ahead: bool, mut add: impl FnMut(f64, f64, &[u8])) {
        let d = self.binned.n_features;
        let bins = &self.binned.bins;
        for (i, &r) in rows.iter().enumerate() {
            if ahead && let Some(&next) = rows.get(i + PREFETCH_AHEAD) {
                let next = next as usize;
                prefetch(bins, next * d);
                prefetch(self.gh, next);
            }
            let r = r as usize;
            let [g, h] = self.gh[r];
            add(f64::from(g), f64::from(h), &bins[r * d..(r + 1) * d]);
        }
    }

    fn build_hist(&self, rows: &[u32]) -> Hist {
        let threads = rayon::current_num_threads().max(1);
        if rows.len() < PARALLEL_ROWS || threads == 1 {
            let mut h = self.take_hist();
            let d = self.binned.n_features;
            if threads > 1 && self.all_features && !self.blocked && d >= PARALLEL_FEATURES && rows.len() >= 64 {
                // A wide table's smaller leaves: the features split in two, each half's bins
                // filled by one thread (disjoint parts of one histogram, each bin's additions in
                // row order as in one pass: the same sums), no buffers to merge.
                let mid = d / 2;
                let cut = self.offsets[mid];
                let (a, b) = h.split_at_mut(cut);
                rayon::join(|| self.fill_features(rows, 0..mid, a), || self.fill_features(rows, mid..d, b));
            } else {
                self.fill_hist(rows, &mut h);
            }
            return h;
        }
        // One chunk per thread, each into its own buffer; the first collects the others.
        let chunk = rows.len().div_ceil(threads);
        let mut parts: Vec<Hist> = rows
            .par_chunks(chunk)
            .map(|c| {
                let mut h = self.take_hist();
                self.fill_hist(c, &mut h);
                h
            })
            .collect();
        let mut total = parts.swap_remove(0);
        for p in parts {
            for (x, y) in total.iter_mut().zip(&p) {
                x.g += y.g;
                x.h += y.h;
            }
            self.give_hist(p);
        }
        total
    }

    fn best_split(&self, hist: &Hist, sum: Side, depth: usize) -> Option<Split> {
        if self.max_depth.is_some_and(|m| depth >= m) || sum.c < 2 * self.min_data_in_leaf {
            return None;
        }
        // Wide tables: features in parallel; the winner is the same as in order (the largest
        // gain, the earliest feature on ties).
        if self.features.len() >= 64 && rayon::current_num_threads() > 1 {
            let chunk = self.features.len().div_ceil(rayon::current_num_threads() * 4);
            return self
                .features
                .par_chunks(chunk)
                .enumerate()
                .map(|(k, fs)| self.best_split_of(fs, hist, sum).map(|s| (k, s)))
                .reduce(|| None, |a, b| match (a, b) {
                    (Some(x), Some(y)) => Some(if y.1.gain > x.1.gain || (y.1.gain == x.1.gain && y.0 < x.0) { y } else { x }),
                    (x, None) => x,
                    (None, y) => y,
                })
                .map(|(_, s)| s);
        }
        self.best_split_of(self.features, hist, sum)
    }

    /// One scan of a split search: the value bins of `h` in `order` join one side of the split,
    /// one at a time, and `emit(bin, g, h, rows)` gets that side after each bin while both sides
    /// keep `min_data_in_leaf` rows and `min_sum_hessian`; the scan stops once the other side has
    /// too little. An empty bin is skipped (its candidate equals the one before it). A side's rows
    /// are the sum of its bins' rows, each estimated from its hessian (`per_hess` rows per unit of
    /// hessian, rounded), the other side the rest of the leaf's rows, as LightGBM counts them.
    #[inline(always)]
    fn scan_side(&self, h: &[Bin], order: impl Iterator<Item = usize>, sum: Side, per_hess: f64, mut emit: impl FnMut(usize, f64, f64, u32)) {
        let (min_c, min_h) = (self.min_data_in_leaf, self.min_sum_hessian);
        let (mut g, mut hs, mut c) = (0.0, 0.0, 0u32);
        for t in order {
            let bin = h[t];
            if bin.h == 0.0 && bin.g == 0.0 {
                continue;
            }
            g += bin.g;
            hs += bin.h;
            // (x + ½) truncated: rounding without a libm call (x ≥ 0).
            c += ((bin.h * per_hess).max(0.0) + 0.5) as u32;
            if c < min_c || hs < min_h {
                continue;
            }
            // Too little on the other side: only less from here.
            if c > sum.c || sum.c - c < min_c || sum.h - hs < min_h {
                break;
            }
            emit(t, g, hs, c);
        }
    }

    fn best_split_of(&self, features: &[usize], hist: &Hist, sum: Side) -> Option<Split> {
        // LightGBM's search, so that the same histograms give the same splits: a scan from the
        // right with the missing values (if any) on the left, then, for a feature with missing
        // values in the leaf, a scan from the left with them on the right; a later candidate
        // replaces the best only with a strictly larger gain; row counts as in `scan_side`. From
        // the right, a threshold lands just below the first bin with rows on the right: the bins
        // in a gap hold no row of the leaf, and unseen values there go left.
        let per_hess = if sum.h > 0.0 { sum.c as f64 / sum.h } else { 0.0 };
        let parent = leaf_gain(sum.g, sum.h, self.l1, self.l2);
        let mut best: Option<Split> = None;
        let mut consider = |f: usize, bin: usize, default_left: bool, lg: f64, lh: f64, lc: u32| {
            let left = Side { g: lg, h: lh, c: lc };
            let right = Side { g: sum.g - lg, h: sum.h - lh, c: sum.c - lc };
            let gain = leaf_gain(left.g, left.h, self.l1, self.l2) + leaf_gain(right.g, right.h, self.l1, self.l2) - parent;
            // A gain within rounding of 0 (a pure leaf) is no gain.
            if gain > self.min_gain && gain > 1e-10 * parent.abs().max(1e-300) && best.is_none_or(|s| gain > s.gain) {
                best = Some(Split { feature: f, bin: bin as u8, default_left, gain, left, right });
            }
        };
        for &f in features {
            let nb = self.mappers[f].value_bins();
            let o = self.offsets[f];
            let h = &hist[o..o + nb + 1];
            let miss = h[nb];
            // From the right: bins t.. go right, the threshold is bin t − 1; the missing values go
            // left, as LightGBM's default, also when this leaf has none.
            self.scan_side(h, (1..nb).rev(), sum, per_hess, |t, rg, rh, rc| consider(f, t - 1, true, sum.g - rg, sum.h - rh, sum.c - rc));
            if miss.h > 0.0 || miss.g != 0.0 {
                // From the left, the missing values right: bins ..=t go left ("every value left"
                // is a split too).
                self.scan_side(h, 0..nb, sum, per_hess, |t, lg, lh, lc| consider(f, t, false, lg, lh, lc));
            }
        }
        best
    }

    /// Moves the rows going left (bin ≤ `bin`, missing per `default_left`) to the front of
    /// `rows`, keeping order on both sides; returns how many went left.
    fn partition(&self, rows: &mut [u32], f: usize, bin: u8, default_left: bool, scratch: &mut Vec<u32>) -> usize {
        let n = self.binned.n_rows;
        let missing = self.mappers[f].missing();
        let column = &self.binned.columns[f * n..(f + 1) * n];
        let goes_left = |r: u32| {
            let b = column[r as usize];
            // Without branches: a balanced split mispredicts every other row.
            (b == missing) & default_left | (b != missing) & (b <= bin)
        };
        // In place: left rows compacted to the front, right rows to `out`. Every row is written
        // to both sides and the side it belongs to advances (no branch on the row's side; the
        // write to the left is in place because `n_left <= k`).
        let split_into = |rows: &mut [u32], out: &mut Vec<u32>| {
            out.clear();
            out.resize(rows.len(), 0);
            let (mut n_left, mut n_right) = (0, 0);
            for k in 0..rows.len() {
                if let Some(&next) = rows.get(k + PREFETCH_AHEAD) {
                    prefetch(column, next as usize);
                }
                let r = rows[k];
                let left = goes_left(r);
                rows[n_left] = r;
                out[n_right] = r;
                n_left += usize::from(left);
                n_right += usize::from(!left);
            }
            out.truncate(n_right);
            n_left
        };
        if rows.len() < 2 * PARALLEL_ROWS || rayon::current_num_threads() < 2 {
            let n_left = split_into(rows, scratch);
            rows[n_left..].copy_from_slice(scratch);
            return n_left;
        }
        let mid = rows.len() / 2;
        let (a, b) = rows.split_at_mut(mid);
        let mut right_b = Vec::new();
        let (left_a, left_b) = rayon::join(|| split_into(a, scratch), || split_into(b, &mut right_b));
        // rows = [La | (Ra in scratch) | Lb | (Rb)] → [La | Lb | Ra | Rb].
        let right_a = std::mem::take(scratch);
        rows.copy_within(mid..mid + left_b, left_a);
        let n_left = left_a + left_b;
        rows[n_left..n_left + right_a.len()].copy_from_slice(&right_a);
        rows[n_left + right_a.len()..].copy_from_slice(&right_b);
        *scratch = right_a;
        n_left
    }

    /// The two children's histograms and best splits after a split of `rows` (left rows first,
    /// `n_left` of them): the smaller child's histogram is built, the larger's is the parent's
    /// minus it.
    #[allow(clippy::type_complexity)]
    fn children(
        &self,
        parent_hist: Hist,
        rows: &[u32],
        n_left: usize,
        (left_sum, right_sum): (Side, Side),
        depth: usize,
    ) -> ((Option<Hist>, Option<Split>), (Option<Hist>, Option<Split>)) {
        let small_is_left = n_left <= rows.len() - n_left;
        let small_rows = if small_is_left { &rows[..n_left] } else { &rows[n_left..] };
        let small = self.build_hist(small_rows);
        let mut large = parent_hist;
        let subtract = |large: &mut [Bin], small: &[Bin]| {
            for (x, y) in large.iter_mut().zip(small) {
                x.g -= y.g;
                x.h -= y.h;
            }
        };
        if large.len() >= PARALLEL_BINS && rayon::current_num_threads() > 1 {
            large.par_chunks_mut(PARALLEL_BINS / 4).zip(small.par_chunks(PARALLEL_BINS / 4)).for_each(|(l, s)| subtract(l, s));
        } else {
            subtract(&mut large, &small);
        }
        let (left_hist, right_hist) = if small_is_left { (small, large) } else { (large, small) };
        let left_best = self.best_split(&left_hist, left_sum, depth);
        let right_best = self.best_split(&right_hist, right_sum, depth);
        ((Some(left_hist), left_best), (Some(right_hist), right_best))
    }

    /// Grows one tree on the rows `indices` (reordered in place: each leaf's rows end up in one
    /// contiguous range). Returns the tree (leaf values not yet set: the caller fits them) and
    /// every leaf's range of `indices`.
    pub(crate) fn grow(&self, indices: &mut [u32]) -> (Tree, Vec<(usize, usize)>) {
        let mut sum = Side::default();
        for &r in indices.iter() {
            let [g, h] = self.gh[r as usize];
            sum.g += f64::from(g);
            sum.h += f64::from(h);
        }
        sum.c = indices.len() as u32;
        let root_hist = self.build_hist(indices);
        let root_best = self.best_split(&root_hist, sum, 0);
        let mut leaves = vec![Leaf { start: 0, len: indices.len(), sum, depth: 0, hist: Some(root_hist), best: root_best, parent: None }];
        let mut tree = Tree::default();
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
            // Partition the leaf's rows: left first, stable (in two halves at once when large).
            let f = split.feature;
            let rows = &mut indices[start..start + len];
            let n_left = self.partition(rows, f, split.bin, split.default_left, &mut scratch);
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
            // The partition knows the exact counts.
            let left_sum = Side { c: n_left as u32, ..split.left };
            let right_sum = Side { c: (len - n_left) as u32, ..split.right };
            let parent_hist = leaves[i].hist.take().expect("a leaf keeps its histogram until split");
            // The tree's last split: its leaves are final, so no histograms and no splits.
            let ((left_hist, left_best), (right_hist, right_best)) = if leaves.len() + 1 == self.num_leaves {
                self.give_hist(parent_hist);
                ((None, None), (None, None))
            } else {
                self.children(parent_hist, &indices[start..start + len], n_left, (left_sum, right_sum), depth + 1)
            };
            leaves[i] = Leaf { start, len: n_left, sum: left_sum, depth: depth + 1, hist: left_hist, best: left_best, parent: Some((node, true)) };
            leaves.push(Leaf {
                start: start + n_left,
                len: len - n_left,
                sum: right_sum,
                depth: depth + 1,
                hist: right_hist,
                best: right_best,
                parent: Some((node, false)),
            });
        }
        for l in &mut leaves {
            if let Some(h) = l.hist.take() {
                self.give_hist(h);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::bins::{bin_matrix, fit_mappers};
    use crate::gbdt::rng::SplitMix64;

    /// A learner over every row of `binned` with the loosest limits.
    fn learner<'a>(
        binned: &'a Binned,
        mappers: &'a [BinMapper],
        gh: &'a [[f32; 2]],
        features: &'a [usize],
        pool: &'a HistPool,
    ) -> Grow<'a> {
        Grow::new(Grow {
            binned,
            mappers,
            gh,
            num_leaves: 31,
            max_depth: None,
            min_data_in_leaf: 1,
            min_sum_hessian: 0.0,
            min_gain: 0.0,
            l1: 0.0,
            l2: 0.0,
            features,
            offsets: Vec::new(),
            blocked: false,
            all_features: false,
            pool,
        })
    }

    /// The blocked layout (every feature with more than 128 bins) fills the same sums as the
    /// compact one, feature by feature and bin by bin, in the same order of additions.
    #[test]
    fn blocked_and_compact_histograms_are_the_same_sums() {
        let (n, d) = (3_000, 3);
        let mut r = SplitMix64::new(7);
        let x: Vec<f64> = (0..n * d).map(|i| if i % 17 == 0 { f64::NAN } else { r.next_f64() }).collect();
        let mappers = fit_mappers(&x, n, d, 255, n, 1);
        assert!(mappers.iter().all(|m| m.value_bins() + 1 > BLOCK / 2));
        let binned = bin_matrix(&x, n, &mappers);
        let gh: Vec<[f32; 2]> = (0..n).map(|_| [r.next_f64() as f32 - 0.5, r.next_f64() as f32]).collect();
        let pool = HistPool::default();
        let all: Vec<usize> = (0..d).collect();
        let reordered: Vec<usize> = (0..d).rev().collect();
        // The same features in another order: every feature, but not the blocked path.
        let blocked = learner(&binned, &mappers, &gh, &all, &pool);
        let compact = learner(&binned, &mappers, &gh, &reordered, &pool);
        assert!(blocked.blocked && !compact.blocked);
        let rows: Vec<u32> = (0..n as u32).filter(|i| i % 3 != 0).collect();
        let (mut hb, mut hc) = (blocked.take_hist(), compact.take_hist());
        blocked.fill_hist(&rows, &mut hb);
        compact.fill_hist(&rows, &mut hc);
        for (f, m) in mappers.iter().enumerate() {
            let nb = m.value_bins() + 1;
            let (ob, oc) = (blocked.offsets[f], compact.offsets[f]);
            for b in 0..nb {
                assert_eq!((hb[ob + b].g, hb[ob + b].h), (hc[oc + b].g, hc[oc + b].h), "feature {f} bin {b}");
            }
        }
        // A buffer handed back by one layout is sized for the other when taken again.
        blocked.give_hist(hb);
        assert_eq!(compact.take_hist().len(), compact.total_bins());
    }

    /// A wide table's small leaf, filled by two threads each over half of the features, has the
    /// sums of one pass over every feature, bit for bit.
    #[test]
    fn wide_histograms_filled_by_feature_halves_are_the_same_sums() {
        let (n, d) = (2_000, PARALLEL_FEATURES + 17);
        let mut r = SplitMix64::new(11);
        // Few distinct values per feature: the compact layout.
        let x: Vec<f64> = (0..n * d).map(|i| if i % 23 == 0 { f64::NAN } else { (r.next_f64() * 12.0).floor() }).collect();
        let mappers = fit_mappers(&x, n, d, 255, n, 1);
        let binned = bin_matrix(&x, n, &mappers);
        let gh: Vec<[f32; 2]> = (0..n).map(|_| [r.next_f64() as f32 - 0.5, r.next_f64() as f32]).collect();
        let pool = HistPool::default();
        let all: Vec<usize> = (0..d).collect();
        let grow = learner(&binned, &mappers, &gh, &all, &pool);
        assert!(grow.all_features && !grow.blocked);
        let rows: Vec<u32> = (0..n as u32).filter(|i| i % 5 != 1).collect();
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let halves = two.install(|| grow.build_hist(&rows));
        let mut one = grow.take_hist();
        grow.fill_hist(&rows, &mut one);
        assert_eq!(halves.len(), one.len());
        for (k, (a, b)) in halves.iter().zip(&one).enumerate() {
            assert_eq!((a.g.to_bits(), a.h.to_bits()), (b.g.to_bits(), b.h.to_bits()), "bin {k}");
        }
    }

    /// A split's threshold sits just below the first bin with rows on the right, as LightGBM's
    /// (the bins between hold no row of the leaf, so only unseen values see the difference);
    /// and near `min_data_in_leaf` the right side's rows are the sum of its bins' rounded
    /// estimates, as LightGBM counts them when it scans from the right.
    #[test]
    fn thresholds_and_counts_follow_lightgbm() {
        let x: Vec<f64> = (0..40).map(|i| (i % 4) as f64).collect();
        let mappers = fit_mappers(&x, 40, 1, 255, 40, 1);
        assert_eq!(mappers[0].value_bins(), 4);
        let binned = bin_matrix(&x, 40, &mappers);
        let gh = vec![[0.0f32, 1.0]; 40];
        let pool = HistPool::default();
        let mut grow = learner(&binned, &mappers, &gh, &[0], &pool);
        let bin = |g: f64, h: f64| Bin { g, h };
        // A leaf whose rows have the values 0 and 3 only: any threshold in [0, 3) splits them.
        let hist = vec![bin(-5.0, 5.0), bin(0.0, 0.0), bin(0.0, 0.0), bin(5.0, 5.0), bin(0.0, 0.0)];
        let split = grow.best_split_of(&[0], &hist, Side { g: 0.0, h: 10.0, c: 10 }).unwrap();
        assert_eq!((split.bin, split.left.c, split.right.c), (2, 5, 5));
        // 40 rows, one per unit of hessian: 24.25 in bin 0, then three bins of 5.25 (5 rows
        // each), so the right side of a split after bin 0 counts 15 rows, not round(15.75) = 16.
        grow.min_data_in_leaf = 16;
        let hist = vec![bin(-3.0, 24.25), bin(1.0, 5.25), bin(1.0, 5.25), bin(1.0, 5.25), bin(0.0, 0.0)];
        assert!(grow.best_split_of(&[0], &hist, Side { g: 0.0, h: 40.0, c: 40 }).is_none());
        grow.min_data_in_leaf = 15;
        let split = grow.best_split_of(&[0], &hist, Side { g: 0.0, h: 40.0, c: 40 }).unwrap();
        assert_eq!((split.bin, split.left.c, split.right.c), (0, 25, 15));
    }
}
