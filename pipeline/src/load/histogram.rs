//! A log-linear latency histogram in microseconds, recorded lock-free from many tasks.
//!
//! Values below 64 µs have a bucket each; above, every power of two is cut into 64 equal
//! buckets, so a bucket is at most 1/64 (1.6 %) of its lower bound wide, as HdrHistogram with
//! 64 sub-buckets. 2,048 buckets cover 0 µs to 2^36 µs (19 hours); larger values land in the last.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Number of buckets.
pub const BUCKETS: usize = 2048;

/// The bucket index of a value in µs.
pub fn index(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let k = 63 - us.leading_zeros(); // floor(log2), >= SUB_BITS
    let sub = (us >> (k - SUB_BITS)) - SUB; // 0..SUB
    let i = SUB + u64::from(k - SUB_BITS) * SUB + sub;
    (i as usize).min(BUCKETS - 1)
}

/// The lowest value (µs) of bucket `i`.
pub fn lower(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let k = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    (SUB + sub) << (k - u64::from(SUB_BITS))
}

/// One past the highest value (µs) of bucket `i`.
pub fn upper(i: usize) -> u64 {
    if i + 1 >= BUCKETS { u64::MAX } else { lower(i + 1) }
}

/// A histogram many tasks record into at once.
#[derive(Debug)]
pub struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    /// A plain copy of the counts.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: vec![0; BUCKETS], count: 0, sum: 0, max: 0 }
    }
}

impl Histogram {
    /// Records one value (single-threaded use).
    pub fn record(&mut self, us: u64) {
        self.buckets[index(us)] += 1;
        self.count += 1;
        self.sum += us;
        self.max = self.max.max(us);
    }

    /// The value at quantile `q` in µs: the middle of the bucket that holds the ⌈q·n⌉-th value,
    /// never above the largest value recorded. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return Some(self.max as f64);
        }
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (lower(i) as f64, upper(i).min(self.max + 1) as f64);
                let mid = if hi - lo <= 1.0 { lo } else { (lo + hi - 1.0) / 2.0 };
                return Some(mid.min(self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// Mean in µs, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The non-empty buckets as (lowest µs, one past the highest µs, count).
    pub fn nonzero(&self) -> Vec<(u64, u64, u64)> {
        self.buckets.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (lower(i), upper(i), *c)).collect()
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_with_bounded_width() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(lower(i)), i, "bucket {i}");
            assert_eq!(index(upper(i) - 1), i, "bucket {i}");
            let (lo, hi) = (lower(i), upper(i));
            if lo >= SUB {
                assert!((hi - lo) as f64 / lo as f64 <= 1.0 / 64.0 + 1e-12, "bucket {i}: {lo}..{hi}");
            } else {
                assert_eq!(hi - lo, 1);
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), Some(100_000.0));
        assert_eq!(h.mean(), Some(50_000.5));
        let a = AtomicHistogram::default();
        a.record(7);
        a.record(7);
        assert_eq!(a.snapshot().quantile(0.5), Some(7.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
