//! Typed windows: the samples of one metric and one role, normalised once, so that the offline
//! pipeline and `omen-serve` hand the feature functions the same thing.

/// One sample of a metric series. `series` identifies the label set the sample came from (a
/// pod, an instance): use [`series_id`] of the `labels` string so that both paths agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Microseconds since the epoch, UTC.
    pub ts: i64,
    pub series: u64,
    pub value: f64,
}

/// A stable id for a label set (the `labels` column of `metrics/`): the first 8 bytes of its
/// BLAKE3 hash. Only equality matters: two samples of one series at one time are duplicates.
pub fn series_id(labels: &str) -> u64 {
    let hash = blake3::hash(labels.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The samples of one metric for one role (canary or baseline) of one deployment, pooled over
/// its series, in time order.
///
/// Normalisation, the same for every caller:
/// - samples are ordered by (time, series);
/// - **duplicates** — two or more samples of the same series at the same time, as overlapping
///   ingests of one source produce — become one sample: the mean of their non-NaN values taken in
///   ascending order (NaN when all are NaN). The result does not depend on input order, and the
///   number of samples collapsed is kept in [`TimeSeries::duplicates`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeSeries {
    ts: Vec<i64>,
    series: Vec<u64>,
    values: Vec<f64>,
    duplicates: Vec<u32>,
}

impl TimeSeries {
    /// Normalises `samples` (see the type's docs).
    pub fn from_samples(mut samples: Vec<Sample>) -> TimeSeries {
        samples.sort_unstable_by(|a, b| {
            (a.ts, a.series).cmp(&(b.ts, b.series)).then_with(|| a.value.total_cmp(&b.value))
        });
        let mut out = TimeSeries {
            ts: Vec::with_capacity(samples.len()),
            series: Vec::with_capacity(samples.len()),
            values: Vec::with_capacity(samples.len()),
            duplicates: Vec::with_capacity(samples.len()),
        };
        let mut i = 0;
        while i < samples.len() {
            let first = samples[i];
            let mut j = i + 1;
            while j < samples.len() && samples[j].ts == first.ts && samples[j].series == first.series {
                j += 1;
            }
            let value = if j - i == 1 {
                first.value
            } else {
                // Sorted by total order: the NaN (positive ones) come last; mean of the rest.
                let group = &samples[i..j];
                let (sum, n) = group
                    .iter()
                    .filter(|s| !s.value.is_nan())
                    .fold((0.0f64, 0usize), |(sum, n), s| (sum + s.value, n + 1));
                if n == 0 { f64::NAN } else { sum / n as f64 }
            };
            out.ts.push(first.ts);
            out.series.push(first.series);
            out.values.push(value);
            out.duplicates.push((j - i - 1) as u32);
            i = j;
        }
        out
    }

    /// The samples with `from ≤ ts ≤ to` (both ends included).
    pub fn between(&self, from: i64, to: i64) -> Window<'_> {
        let start = self.ts.partition_point(|&t| t < from);
        let end = self.ts.partition_point(|&t| t <= to);
        let end = end.max(start);
        Window {
            ts: &self.ts[start..end],
            series: &self.series[start..end],
            values: &self.values[start..end],
            duplicates: self.duplicates[start..end].iter().map(|&d| d as usize).sum(),
        }
    }

    /// Every sample.
    pub fn all(&self) -> Window<'_> {
        self.between(i64::MIN, i64::MAX)
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// A time slice of a [`TimeSeries`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Window<'a> {
    /// Sample times, ascending.
    pub ts: &'a [i64],
    /// The series of each sample.
    pub series: &'a [u64],
    /// Sample values (NaN for a missing sample).
    pub values: &'a [f64],
    /// Duplicate samples collapsed into the samples of this window.
    pub duplicates: usize,
}

impl Window<'_> {
    /// Samples with a non-NaN value.
    pub fn count(&self) -> usize {
        self.values.iter().filter(|v| !v.is_nan()).count()
    }

    /// The finite values (NaN and ±Inf left out), in time order: what a statistic that averages
    /// or subtracts reads.
    pub fn finite_values(&self) -> Vec<f64> {
        self.values.iter().copied().filter(|v| v.is_finite()).collect()
    }

    /// Samples whose value is NaN.
    pub fn nan(&self) -> usize {
        self.values.len() - self.count()
    }

    /// The increase of a counter over the window, summed over its series, as Prometheus'
    /// `increase()` counts it without extrapolation: within each series, the sum of the positive
    /// steps between consecutive non-NaN samples, and after a drop (a counter reset) the new
    /// value itself. `None` when no series has two non-NaN samples or a value is infinite.
    pub fn counter_increase(&self) -> Option<f64> {
        let mut last: Vec<(u64, f64)> = Vec::new();
        let mut total = 0.0;
        let mut steps = 0usize;
        for (&series, &v) in self.series.iter().zip(self.values) {
            if v.is_nan() {
                continue;
            }
            if !v.is_finite() {
                return None;
            }
            match last.iter_mut().find(|(s, _)| *s == series) {
                Some((_, prev)) => {
                    total += if v >= *prev { v - *prev } else { v };
                    *prev = v;
                    steps += 1;
                }
                None => last.push((series, v)),
            }
        }
        (steps > 0).then_some(total)
    }
}
