//! One regression tree and its leaf-wise learner over binned data: histograms of gradient and
//! hessian per feature bin, built in parallel for the smaller child of each split, the larger
//! child's histogram being its parent's minus the smaller's (the sibling-subtraction trick).
//! Each leaf keeps the features that had a split allowed by the row and hessian limits; its
//! children fill and search only those (a child's rows are fewer: a feature without an allowed
//! split has none below either).

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

/// What the search left for a leaf: its histogram (none for a final leaf), its best split and
/// its splittable features, those its children search.
#[derive(Default)]
struct Child {
    hist: Option<Hist>,
    best: Option<Split>,
    features: Vec<usize>,
}

struct Leaf {
    start: usize,
    len: usize,
    sum: Side,
    depth: usize,
    child: Child,
    /// (internal node, is left child) that points at this leaf; None for the root.
    parent: Option<(usize, bool)>,
}

/// `h` (bins `at..` of a histogram) cut before each bin of `cuts` (ascending, ≥ `at`).
fn split_at_cuts<'h>(mut h: &'h mut [Bin], mut at: usize, cuts: &[usize]) -> Vec<&'h mut [Bin]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    for &c in cuts {
        let (a, b) = h.split_at_mut(c - at);
        out.push(a);
        h = b;
        at = c;
    }
    out.push(h);
    out
}

/// `large` − `small`, bin by bin, into `large` (a larger child's histogram from its parent's).
fn subtract(large: &mut [Bin], small: &[Bin]) {
    for (x, y) in large.iter_mut().zip(small) {
        x.g -= y.g;
        x.h -= y.h;
    }
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

/// Bins from which a histogram is zeroed in parallel (512 KB).
const PARALLEL_BINS: usize = 32_768;

/// Features from which a table is wide: each thread fills, subtracts and searches its own part
/// of a leaf's features ([`Grow::fill_and_search`]).
const PARALLEL_FEATURES: usize = 64;

/// Bins of a feature's histogram in the blocked layout: every `u8` bin.
const BLOCK: usize = 256;

/// How many rows ahead the scattered reads of a leaf's rows are prefetched.
const PREFETCH_AHEAD: usize = 24;

/// Hints the CPU to bring `slice[i]` into cache (nothing when `i` is out of bounds). A hint
/// only: it cannot change a result. One of omen's few `unsafe` (ARCHITECTURE.md): `_mm_prefetch` is an intrinsic
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

    /// A buffer from the pool, sized for this tree's layout (compact or blocked), its bins as
    /// they were left.
    fn pooled(&self) -> Option<Hist> {
        let mut h = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None)?;
        h.resize(self.total_bins(), Bin::default());
        Some(h)
    }

    fn take_hist(&self) -> Hist {
        match self.pooled() {
            Some(mut h) => {
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

    /// A histogram buffer of the right size whose bins are not zeroed (its user zeroes what it
    /// fills).
    fn take_hist_unzeroed(&self) -> Hist {
        self.pooled().unwrap_or_else(|| vec![Bin::default(); self.total_bins()])
    }

    fn give_hist(&self, h: Hist) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(h);
        }
    }

    /// Fills the bins of the features `fs` (ascending; a leaf's splittable features) from `rows`.
    fn fill_hist(&self, rows: &[u32], hist: &mut Hist, fs: &[usize]) {
        if fs.len() < self.binned.n_features {
            self.fill_subset(rows, fs, hist, 0);
        } else if self.blocked {
            let (blocks, _) = hist.as_chunks_mut::<BLOCK>();
            self.for_each_row(rows, true, |g, h, row| {
                for (block, &b) in blocks.iter_mut().zip(row) {
                    let e = &mut block[b as usize];
                    e.g += g;
                    e.h += h;
                }
            });
        } else {
            self.fill_features(rows, 0..self.binned.n_features, hist);
        }
    }

    /// Fills the bins of the features `fs` (ascending) into `hist`, the part of a histogram that
    /// starts at bin `base`.
    fn fill_subset(&self, rows: &[u32], fs: &[usize], hist: &mut [Bin], base: usize) {
        let offsets: Vec<usize> = fs.iter().map(|&f| self.offsets[f] - base).collect();
        self.for_each_row(rows, true, |g, h, row| {
            for (&f, &o) in fs.iter().zip(&offsets) {
                let e = &mut hist[o + row[f] as usize];
                e.g += g;
                e.h += h;
            }
        });
    }

    /// Fills the bins of the features `fs` (every feature, in order, compact layout) into `hist`,
    /// the part of a histogram that starts at the first of them.
    fn fill_features(&self, rows: &[u32], fs: std::ops::Range<usize>, hist: &mut [Bin]) {
        let base = self.offsets[fs.start];
        let offsets: Vec<usize> = self.offsets[fs.clone()].iter().map(|&o| o - base).collect();
        self.for_each_row(rows, true, |g, h, row| {
            for (&b, &o) in row[fs.clone()].iter().zip(&offsets) {
                let e = &mut hist[o + b as usize];
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

    /// The histogram of the features `fs` (ascending) over `rows` of a narrow table (a wide
    /// one's is [`Grow::fill_and_search`]'s); the bins of other features are zero.
    fn build_hist(&self, rows: &[u32], fs: &[usize]) -> Hist {
        let threads = rayon::current_num_threads().max(1);
        if rows.len() < PARALLEL_ROWS || threads == 1 {
            let mut h = self.take_hist();
            self.fill_hist(rows, &mut h, fs);
            return h;
        }
        // One chunk per thread, each into its own buffer; the first collects the others.
        let chunk = rows.len().div_ceil(threads);
        let mut parts: Vec<Hist> = rows
            .par_chunks(chunk)
            .map(|c| {
                let mut h = self.take_hist();
                self.fill_hist(c, &mut h, fs);
                h
            })
            .collect();
        let mut total = parts.swap_remove(0);
        for p in parts {
            for r in self.ranges(fs) {
                for (x, y) in total[r.clone()].iter_mut().zip(&p[r]) {
                    x.g += y.g;
                    x.h += y.h;
                }
            }
            self.give_hist(p);
        }
        total
    }

    /// Whether a search over `fs` runs as [`Grow::fill_and_search`]: a wide table, more than
    /// one thread.
    fn wide(&self, fs: &[usize]) -> bool {
        fs.len() >= PARALLEL_FEATURES && rayon::current_num_threads() > 1
    }

    /// A wide table's leaf in one parallel pass, each thread a contiguous part of the features
    /// `fs`: it zeroes and fills its part of `hist` from `rows`, turns its part of `other` (the
    /// parent's histogram, when given) into the parent's minus `hist`, and searches both. One
    /// hand-over between threads per leaf, instead of one each for the zeroing, the filling, the
    /// subtraction and the two searches. Returns the best split and the splittable features of
    /// `hist` (with `sums[0]`), then of `other` (with `sums[1]`; none without `other`). Each bin
    /// gets its rows in order and the parts' winners are compared in feature order: the same
    /// histograms and splits as the serial path.
    #[allow(clippy::type_complexity)]
    fn fill_and_search(&self, rows: &[u32], fs: &[usize], hist: &mut Hist, other: Option<&mut Hist>, sums: [Side; 2], depth: usize) -> [(Option<Split>, Vec<usize>); 2] {
        let threads = rayon::current_num_threads().max(1);
        // Parts of about equal numbers of features, each a range of histogram bins.
        let per = fs.len().div_ceil(threads);
        let parts: Vec<&[usize]> = fs.chunks(per).collect();
        let cuts: Vec<usize> = parts.iter().skip(1).map(|p| self.offsets[p[0]]).collect();
        let start = self.offsets[fs[0]];
        let mine = split_at_cuts(&mut hist[start..], start, &cuts);
        let theirs: Vec<Option<&mut [Bin]>> = match other {
            Some(o) => split_at_cuts(&mut o[start..], start, &cuts).into_iter().map(Some).collect(),
            None => (0..parts.len()).map(|_| None).collect(),
        };
        let found: Vec<[(Option<Split>, Vec<usize>); 2]> = parts
            .par_iter()
            .zip(mine)
            .zip(theirs)
            .map(|((&p, h), o)| {
                let base = self.offsets[p[0]];
                let end = self.offsets[p[p.len() - 1] + 1] - base;
                h[..end].fill(Bin::default());
                if p[p.len() - 1] - p[0] + 1 == p.len() {
                    // A range of features: read as one slice of each row.
                    self.fill_features(rows, p[0]..p[p.len() - 1] + 1, h);
                } else {
                    self.fill_subset(rows, p, h, base);
                }
                let a = self.best_split(p, h, base, sums[0], depth);
                let b = match o {
                    Some(o) => {
                        for r in self.ranges(p) {
                            let r = r.start - base..r.end - base;
                            subtract(&mut o[r.clone()], &h[r]);
                        }
                        self.best_split(p, o, base, sums[1], depth)
                    }
                    None => (None, Vec::new()),
                };
                [a, b]
            })
            .collect();
        let mut out: [(Option<Split>, Vec<usize>); 2] = Default::default();
        for part in found {
            for (k, (best, splittable)) in part.into_iter().enumerate() {
                if let Some(b) = best
                    && out[k].0.is_none_or(|x| b.gain > x.gain)
                {
                    out[k].0 = Some(b);
                }
                out[k].1.extend(splittable);
            }
        }
        out
    }

    /// The histogram bins of the features `fs` (ascending), neighbours merged into one range.
    fn ranges(&self, fs: &[usize]) -> Vec<std::ops::Range<usize>> {
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        for &f in fs {
            let (a, b) = (self.offsets[f], self.offsets[f + 1]);
            match out.last_mut() {
                Some(r) if r.end == a => r.end = b,
                _ => out.push(a..b),
            }
        }
        out
    }

    /// The best split of a leaf over the features `fs` (ascending) of the histogram part `hist`,
    /// which starts at bin `base`, and those of `fs` that have a split allowed by the limits on
    /// rows and hessian, whatever its gain: a feature without one has none in any descendant
    /// either (their rows are fewer), so, as in LightGBM, the leaf's children neither fill nor
    /// scan it.
    fn best_split(&self, fs: &[usize], hist: &[Bin], base: usize, sum: Side, depth: usize) -> (Option<Split>, Vec<usize>) {
        let mut splittable = Vec::with_capacity(fs.len());
        if self.max_depth.is_some_and(|m| depth >= m) || sum.c < 2 * self.min_data_in_leaf {
            return (None, splittable);
        }
        let best = self.best_split_of(fs, hist, base, sum, &mut splittable);
        (best, splittable)
    }

    /// One scan of a split search: the value bins of `h` in `order` join one side of the split,
    /// one at a time, and `emit(bin, g, h, rows)` gets that side after each bin while both sides
    /// keep `min_data_in_leaf` rows and `min_sum_hessian`; the scan stops once the other side has
    /// too little. An empty bin is scanned like the others, without a branch: its candidate equals
    /// the one before it, so it never wins (a later candidate needs a larger gain). A side's rows
    /// are the sum of its bins' rows, each estimated from its hessian (`per_hess` rows per unit of
    /// hessian, rounded), the other side the rest of the leaf's rows, as LightGBM counts them.
    #[inline(always)]
    fn scan_side(&self, h: &[Bin], order: impl Iterator<Item = usize>, sum: Side, per_hess: f64, mut emit: impl FnMut(usize, f64, f64, u32)) {
        let (min_c, min_h) = (self.min_data_in_leaf, self.min_sum_hessian);
        let (mut g, mut hs, mut c) = (0.0, 0.0, 0u32);
        for t in order {
            let bin = h[t];
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

    /// The best split over `features` of the histogram part `hist`, which starts at bin `base`;
    /// the features with an allowed split are pushed to `splittable`.
    fn best_split_of(&self, features: &[usize], hist: &[Bin], base: usize, sum: Side, splittable: &mut Vec<usize>) -> Option<Split> {
        // LightGBM's search, so that the same histograms give the same splits: a scan from the
        // right with the missing values (if any) on the left, then, for a feature with missing
        // values in the leaf, a scan from the left with them on the right; a later candidate
        // replaces the best only with a strictly larger gain; row counts as in `scan_side`. From
        // the right, a threshold lands just below the first bin with rows on the right: the bins
        // in a gap hold no row of the leaf, and unseen values there go left.
        let per_hess = if sum.h > 0.0 { sum.c as f64 / sum.h } else { 0.0 };
        let parent = leaf_gain(sum.g, sum.h, self.l1, self.l2);
        let mut best: Option<Split> = None;
        // A gain within rounding of 0 (a pure leaf) is no gain.
        let floor = self.min_gain.max(1e-10 * parent.abs().max(1e-300));
        // The gain a candidate must beat, plus the parent's: `parent + max(floor, best gain)`.
        let mut bar = parent + floor;
        let mut consider = |f: usize, bin: usize, default_left: bool, lg: f64, lh: f64, lc: u32| {
            let (rg, rh) = (sum.g - lg, sum.h - lh);
            // Most candidates lose. Without dividing: the children's gains are a/dl + b/dr, so a
            // candidate whose a·dr + b·dl is below bar·dl·dr, with a margin far wider than the
            // rounding of these few products of non-negative numbers, cannot win; the others are
            // decided by the gain itself, exactly as before.
            let (dl, dr) = (lh + self.l2, rh + self.l2);
            if dl > 0.0 && dr > 0.0 && bar >= 0.0 {
                let (a, b) = (threshold_l1(lg, self.l1), threshold_l1(rg, self.l1));
                if (a * a * dr + b * b * dl) * (1.0 + 1e-12) < bar * (dl * dr) * (1.0 - 1e-12) {
                    return;
                }
            }
            let gain = leaf_gain(lg, lh, self.l1, self.l2) + leaf_gain(rg, rh, self.l1, self.l2) - parent;
            if gain > floor && best.is_none_or(|s| gain > s.gain) {
                let left = Side { g: lg, h: lh, c: lc };
                let right = Side { g: rg, h: rh, c: sum.c - lc };
                best = Some(Split { feature: f, bin: bin as u8, default_left, gain, left, right });
                bar = parent + gain.max(floor);
            }
        };
        for &f in features {
            let nb = self.mappers[f].value_bins();
            let o = self.offsets[f] - base;
            let h = &hist[o..o + nb + 1];
            let miss = h[nb];
            let mut allowed = false;
            // From the right: bins t.. go right, the threshold is bin t − 1; the missing values go
            // left, as LightGBM's default, also when this leaf has none.
            self.scan_side(h, (1..nb).rev(), sum, per_hess, |t, rg, rh, rc| {
                allowed = true;
                consider(f, t - 1, true, sum.g - rg, sum.h - rh, sum.c - rc)
            });
            if miss.h > 0.0 || miss.g != 0.0 {
                // From the left, the missing values right: bins ..=t go left ("every value left"
                // is a split too).
                self.scan_side(h, 0..nb, sum, per_hess, |t, lg, lh, lc| {
                    allowed = true;
                    consider(f, t, false, lg, lh, lc)
                });
            }
            if allowed {
                splittable.push(f);
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

    /// The two children of a split of `rows` (left rows first, `n_left` of them), searched over
    /// `fs`, the features splittable in their parent: the smaller child's histogram is built, the
    /// larger's is the parent's minus it (bins of other features are left as they are: no one
    /// reads them again).
    fn children(&self, parent_hist: Hist, rows: &[u32], n_left: usize, (left_sum, right_sum): (Side, Side), depth: usize, fs: &[usize]) -> [Child; 2] {
        let small_is_left = n_left <= rows.len() - n_left;
        let small_rows = if small_is_left { &rows[..n_left] } else { &rows[n_left..] };
        if self.wide(fs) {
            let mut small = self.take_hist_unzeroed();
            let mut large = parent_hist;
            let sums = if small_is_left { [left_sum, right_sum] } else { [right_sum, left_sum] };
            let [(small_best, small_fs), (large_best, large_fs)] = self.fill_and_search(small_rows, fs, &mut small, Some(&mut large), sums, depth);
            let small = Child { hist: Some(small), best: small_best, features: small_fs };
            let large = Child { hist: Some(large), best: large_best, features: large_fs };
            return if small_is_left { [small, large] } else { [large, small] };
        }
        // Not wide (fewer than PARALLEL_FEATURES features, or one thread): the subtraction is
        // serial, on fewer bins than a hand-over between threads pays for.
        let small = self.build_hist(small_rows, fs);
        let mut large = parent_hist;
        for r in self.ranges(fs) {
            subtract(&mut large[r.clone()], &small[r]);
        }
        let (left_hist, right_hist) = if small_is_left { (small, large) } else { (large, small) };
        let (left_best, left_fs) = self.best_split(fs, &left_hist, 0, left_sum, depth);
        let (right_best, right_fs) = self.best_split(fs, &right_hist, 0, right_sum, depth);
        [Child { hist: Some(left_hist), best: left_best, features: left_fs }, Child { hist: Some(right_hist), best: right_best, features: right_fs }]
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
        let (root_hist, best, features) = if self.wide(self.features) {
            let mut h = self.take_hist_unzeroed();
            let [(best, features), _] = self.fill_and_search(indices, self.features, &mut h, None, [sum, sum], 0);
            (h, best, features)
        } else {
            let h = self.build_hist(indices, self.features);
            let (best, features) = self.best_split(self.features, &h, 0, sum, 0);
            (h, best, features)
        };
        let root = Child { hist: Some(root_hist), best, features };
        let mut leaves = vec![Leaf { start: 0, len: indices.len(), sum, depth: 0, child: root, parent: None }];
        let mut tree = Tree::default();
        let mut scratch: Vec<u32> = Vec::with_capacity(indices.len());
        while leaves.len() < self.num_leaves {
            // The leaf with the best split (the first on ties: deterministic).
            let mut pick: Option<usize> = None;
            for (i, l) in leaves.iter().enumerate() {
                if let Some(s) = l.child.best
                    && pick.is_none_or(|p| s.gain > leaves[p].child.best.map_or(f64::NEG_INFINITY, |b| b.gain))
                {
                    pick = Some(i);
                }
            }
            let Some(i) = pick else { break };
            let split = leaves[i].child.best.take().expect("picked a leaf with a split");
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
            let parent_hist = leaves[i].child.hist.take().expect("a leaf keeps its histogram until split");
            let features = std::mem::take(&mut leaves[i].child.features);
            // The tree's last split: its leaves are final, so no histograms and no splits.
            let [left, right] = if leaves.len() + 1 == self.num_leaves {
                self.give_hist(parent_hist);
                [Child::default(), Child::default()]
            } else {
                self.children(parent_hist, &indices[start..start + len], n_left, (left_sum, right_sum), depth + 1, &features)
            };
            leaves[i] = Leaf { start, len: n_left, sum: left_sum, depth: depth + 1, child: left, parent: Some((node, true)) };
            leaves.push(Leaf { start: start + n_left, len: len - n_left, sum: right_sum, depth: depth + 1, child: right, parent: Some((node, false)) });
        }
        for l in &mut leaves {
            if let Some(h) = l.child.hist.take() {
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
        blocked.fill_hist(&rows, &mut hb, &all);
        compact.fill_hist(&rows, &mut hc, &reordered);
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

    /// A wide table's leaf, filled by two threads each over its part of the features
    /// ([`Grow::fill_and_search`]), has the sums of one pass over every feature, bit for bit.
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
        let mut halves = grow.take_hist_unzeroed();
        halves.fill(Bin { g: f64::NAN, h: f64::NAN });
        two.install(|| grow.fill_and_search(&rows, &all, &mut halves, None, [Side::default(); 2], 0));
        let mut one = grow.take_hist();
        grow.fill_hist(&rows, &mut one, &all);
        assert_eq!(halves.len(), one.len());
        for (k, (a, b)) in halves.iter().zip(&one).enumerate() {
            assert_eq!((a.g.to_bits(), a.h.to_bits()), (b.g.to_bits(), b.h.to_bits()), "bin {k}");
        }
    }

    /// A wide table's tree grown on two threads (each leaf filled and searched in feature parts,
    /// children searching only their parent's splittable features) is the tree of one thread,
    /// split for split: the same histograms, the same winners.
    #[test]
    fn wide_trees_on_two_threads_are_the_trees_of_one() {
        let (n, d) = (3_000, PARALLEL_FEATURES + 29);
        let mut r = SplitMix64::new(5);
        // Many values, few values, a constant, a rare value, missing values.
        let x: Vec<f64> = (0..n * d)
            .map(|i| match (i % d) % 5 {
                _ if i % 31 == 0 => f64::NAN,
                0 => r.next_f64(),
                1 => (r.next_f64() * 4.0).floor(),
                2 => 1.0,
                3 => f64::from(u8::from(r.next_f64() < 0.004)),
                _ => (r.next_f64() * 40.0).floor(),
            })
            .collect();
        let mappers = fit_mappers(&x, n, d, 255, n, 1);
        let binned = bin_matrix(&x, n, &mappers);
        // A gradient that feature 0 and feature 1 explain in part (missing counts as 0).
        let v = |i: usize, f: usize| if x[i * d + f].is_nan() { 0.0 } else { x[i * d + f] };
        let gh: Vec<[f32; 2]> = (0..n).map(|i| [(v(i, 0) - 0.5 + 0.1 * v(i, 1) + 0.3 * r.next_f64()) as f32, 0.25]).collect();
        let pool = HistPool::default();
        let all: Vec<usize> = (0..d).collect();
        let mut grow = learner(&binned, &mappers, &gh, &all, &pool);
        grow.min_data_in_leaf = 20;
        let grown = |threads: usize| {
            let mut rows: Vec<u32> = (0..n as u32).collect();
            let p = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            p.install(|| grow.grow(&mut rows))
        };
        let (one, ranges_one) = grown(1);
        let (two, ranges_two) = grown(2);
        assert!(grow.wide(&all) || rayon::current_num_threads() == 1);
        assert_eq!(one.num_leaves(), 31);
        assert_eq!(one, two);
        assert_eq!(ranges_one, ranges_two);
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
        let split = grow.best_split_of(&[0], &hist, 0, Side { g: 0.0, h: 10.0, c: 10 }, &mut Vec::new()).unwrap();
        assert_eq!((split.bin, split.left.c, split.right.c), (2, 5, 5));
        // 40 rows, one per unit of hessian: 24.25 in bin 0, then three bins of 5.25 (5 rows
        // each), so the right side of a split after bin 0 counts 15 rows, not round(15.75) = 16.
        grow.min_data_in_leaf = 16;
        let hist = vec![bin(-3.0, 24.25), bin(1.0, 5.25), bin(1.0, 5.25), bin(1.0, 5.25), bin(0.0, 0.0)];
        assert!(grow.best_split_of(&[0], &hist, 0, Side { g: 0.0, h: 40.0, c: 40 }, &mut Vec::new()).is_none());
        grow.min_data_in_leaf = 15;
        let split = grow.best_split_of(&[0], &hist, 0, Side { g: 0.0, h: 40.0, c: 40 }, &mut Vec::new()).unwrap();
        assert_eq!((split.bin, split.left.c, split.right.c), (0, 25, 15));
    }
}
