//! One metric series as the anomaly detector of `omen detect` reads it: resampled on a fixed
//! step, and windows of it encoded for the series forecaster (`omen_models::sequence::detect`).
//! Training (`omen train sequence`) and detection encode through this one module.
//!
//! # The grid
//! [`resample`] puts a series' samples on steps of `step_us` from `origin` (the first sample's
//! time rounded down to the step): step `k` covers `[origin + k·step, origin + (k + 1)·step)`
//! and its value is the mean of the finite samples in it. A step without a finite sample (a
//! scrape that failed, a pod restarting, a NaN or ±Inf sample) is a gap: NaN on the grid.
//!
//! # A window
//! The window *before* step `t` holds the steps `t − window .. t` (steps before the series'
//! start are padding). Each step gives [`SERIES_CHANNELS`] channels:
//! 1. the value, normalised: `(value − centre) / scale`, clamped to ±[`CLIP`]; 0 in a gap;
//! 2. 1 when the step has a value, else 0 (padding and gaps alike).
//!
//! `centre` is the median of the window's values; `scale` is 1.4826 × their median absolute
//! deviation, at least a quarter of their standard deviation (a series that is mostly one value,
//! such as an error ratio that is usually 0), 0.1 % of `|centre|` and 10⁻⁹. A forecaster trained
//! on some series therefore sees any other series on the same footing: as deviations from its own
//! recent level, in units of its own recent noise. The target of the window is step `t`,
//! normalised with the same centre and scale ([`SeriesWindow::normalise`]).
//!
//! # A window with a reference
//! A canary's series has a reference: its baseline's series of the same metric, on the same
//! steps ([`align`]). [`encode_paired_window`] adds [`PAIRED_CHANNELS`] − 2 channels to each
//! step of the window: 3. the reference one step *later*, normalised with the series' own centre
//! and scale (0 in its gaps); 4. 1 when that reference step has a value. The window's last row
//! therefore holds the reference at the target step itself: a forecaster reads what the baseline
//! does now, as well as what the canary did before. A series without a reference (not a canary,
//! or no baseline) has 0 in both. A canary that departs from its baseline from its first minute
//! (an error spike, a latency shift) is then a surprise at every step, where a series alone gives
//! no sign that its level is wrong.

/// Channels per step (see the module docs).
pub const SERIES_CHANNELS: usize = 2;
/// Channels per step of a window with its reference (see the module docs).
pub const PAIRED_CHANNELS: usize = 4;

/// Normalised values are clamped to ±`CLIP` (a step 1,000 scales away says no more than one 50
/// away, and keeps training stable).
pub const CLIP: f64 = 50.0;

/// What the series forecaster reads: the step and the window length in steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesLayout {
    /// Step in µs.
    pub step_us: i64,
    /// Steps per window.
    pub window: usize,
    /// The fewest steps with a value a window needs to be scored (fewer: the step is not scored).
    pub min_present: usize,
}

/// A series on its grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Start of step 0, µs.
    pub origin: i64,
    pub step_us: i64,
    /// Per step, the mean of its finite samples; NaN for a gap.
    pub values: Vec<f64>,
    /// NaN or ±Inf samples seen (never averaged).
    pub non_finite: usize,
}

impl Grid {
    /// The start of step `k`, µs.
    pub fn at(&self, k: usize) -> i64 {
        self.origin + k as i64 * self.step_us
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Resamples samples `(ts µs, value)` (any order) onto steps of `step_us` (see the module docs).
/// An empty grid for no samples; `step_us` must be positive.
pub fn resample(samples: &[(i64, f64)], step_us: i64) -> Grid {
    assert!(step_us > 0, "the step is positive (checked by the layout)");
    let Some(first) = samples.iter().map(|s| s.0).min() else {
        return Grid { origin: 0, step_us, values: Vec::new(), non_finite: 0 };
    };
    let last = samples.iter().map(|s| s.0).max().unwrap_or(first);
    let origin = first.div_euclid(step_us) * step_us;
    let steps = ((last - origin) / step_us) as usize + 1;
    let mut sum = vec![0.0f64; steps];
    let mut count = vec![0u32; steps];
    let mut non_finite = 0;
    for &(t, v) in samples {
        if !v.is_finite() {
            non_finite += 1;
            continue;
        }
        let k = ((t - origin) / step_us) as usize;
        sum[k] += v;
        count[k] += 1;
    }
    let values = sum.iter().zip(&count).map(|(&s, &c)| if c > 0 { s / c as f64 } else { f64::NAN }).collect();
    Grid { origin, step_us, values, non_finite }
}

/// One encoded window and how to read its target.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWindow {
    /// `[window, SERIES_CHANNELS]`, row-major.
    pub values: Vec<f32>,
    pub centre: f64,
    pub scale: f64,
    /// Steps of the window with a value.
    pub present: usize,
}

impl SeriesWindow {
    /// `value` in the window's normalised units (clamped to ±[`CLIP`]).
    pub fn normalise(&self, value: f64) -> f64 {
        ((value - self.centre) / self.scale).clamp(-CLIP, CLIP)
    }
}

fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let lower = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + m) / 2.0
    }
}

/// Encodes the window before step `t` of `grid` (steps `t − window .. t`; see the module docs),
/// reusing `scratch`. `None` when fewer than `layout.min_present` of its steps have a value.
pub fn encode_series_window(layout: &SeriesLayout, grid: &[f64], t: usize, scratch: &mut Vec<f64>) -> Option<SeriesWindow> {
    let w = layout.window;
    let from = t.saturating_sub(w);
    let steps = &grid[from..t.min(grid.len())];
    scratch.clear();
    scratch.extend(steps.iter().copied().filter(|v| v.is_finite()));
    let present = scratch.len();
    if present < layout.min_present.max(1) {
        return None;
    }
    let mean = scratch.iter().sum::<f64>() / present as f64;
    let std = (scratch.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / present as f64).sqrt();
    let centre = median(scratch);
    for v in scratch.iter_mut() {
        *v = (*v - centre).abs();
    }
    let mad = median(scratch);
    let scale = (1.4826 * mad).max(0.25 * std).max(1e-3 * centre.abs()).max(1e-9);
    let mut values = vec![0.0f32; w * SERIES_CHANNELS];
    let window = SeriesWindow { values: Vec::new(), centre, scale, present };
    // Padding first (steps before the series' start), then the steps themselves.
    let pad = w - steps.len();
    for (k, &v) in steps.iter().enumerate() {
        if v.is_finite() {
            let row = (pad + k) * SERIES_CHANNELS;
            values[row] = window.normalise(v) as f32;
            values[row + 1] = 1.0;
        }
    }
    Some(SeriesWindow { values, ..window })
}

/// `reference`'s values on the steps of `grid` (NaN where it has none); both on the same step.
pub fn align(reference: &Grid, grid: &Grid) -> Vec<f64> {
    assert_eq!(reference.step_us, grid.step_us, "a reference on the series' step");
    (0..grid.len())
        .map(|k| {
            let at = grid.at(k) - reference.origin;
            if at < 0 || at % reference.step_us != 0 {
                return f64::NAN;
            }
            reference.values.get((at / reference.step_us) as usize).copied().unwrap_or(f64::NAN)
        })
        .collect()
}

/// [`encode_series_window`] with the reference's channels (see the module docs): `reference`
/// is on `grid`'s steps ([`align`]); `None` leaves them 0.
pub fn encode_paired_window(layout: &SeriesLayout, grid: &[f64], reference: Option<&[f64]>, t: usize, scratch: &mut Vec<f64>) -> Option<SeriesWindow> {
    let single = encode_series_window(layout, grid, t, scratch)?;
    let w = layout.window;
    let mut values = vec![0.0f32; w * PAIRED_CHANNELS];
    for (k, row) in single.values.chunks_exact(SERIES_CHANNELS).enumerate() {
        values[k * PAIRED_CHANNELS..k * PAIRED_CHANNELS + SERIES_CHANNELS].copy_from_slice(row);
        // Row k holds step t − w + k; its reference channels the step after it.
        let step = (t + k + 1).checked_sub(w);
        if let Some(r) = reference.zip(step).and_then(|(r, s)| r.get(s)).filter(|r| r.is_finite()) {
            values[k * PAIRED_CHANNELS + 2] = single.normalise(*r) as f32;
            values[k * PAIRED_CHANNELS + 3] = 1.0;
        }
    }
    Some(SeriesWindow { values, ..single })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn resample_means_finite_samples_and_leaves_gaps() {
        let s = [(MIN * 10 + 5, 1.0), (MIN * 10 + 30_000_000, 3.0), (MIN * 12, f64::NAN), (MIN * 13 + 1, 7.0), (MIN * 12 + 9, f64::INFINITY)];
        let g = resample(&s, MIN);
        assert_eq!(g.origin, MIN * 10);
        assert_eq!(g.values.len(), 4);
        assert_eq!(g.values[0], 2.0);
        assert!(g.values[1].is_nan() && g.values[2].is_nan());
        assert_eq!(g.values[3], 7.0);
        assert_eq!(g.non_finite, 2);
        assert_eq!(g.at(3), MIN * 13);
        assert!(resample(&[], MIN).is_empty());
    }

    #[test]
    fn windows_pad_mask_and_normalise_robustly() {
        let layout = SeriesLayout { step_us: MIN, window: 4, min_present: 2 };
        let grid = [10.0, f64::NAN, 12.0, 11.0, 1000.0];
        let mut scratch = Vec::new();
        // before step 2: two padding steps, 10, a gap → only one value: not enough
        assert!(encode_series_window(&layout, &grid, 2, &mut scratch).is_none());
        // before step 3: padding, 10, gap, 12
        let w = encode_series_window(&layout, &grid, 3, &mut scratch).unwrap();
        assert_eq!(w.present, 2);
        assert_eq!(w.centre, 11.0);
        assert_eq!(&w.values[..2], &[0.0, 0.0]);
        assert_eq!(w.values[3], 1.0);
        assert_eq!(w.values[5], 0.0);
        assert!(w.values[2] < 0.0 && w.values[6] > 0.0);
        // before step 4: the outlier is the target, not in the window; it clips
        let w = encode_series_window(&layout, &grid, 4, &mut scratch).unwrap();
        assert_eq!(w.normalise(1000.0), CLIP);
        // a constant window still has a positive scale
        let w = encode_series_window(&layout, &[5.0; 6], 6, &mut scratch).unwrap();
        assert!(w.scale > 0.0 && w.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_paired_window_reads_the_reference_up_to_the_target_step() {
        let layout = SeriesLayout { step_us: MIN, window: 3, min_present: 2 };
        let grid = [10.0, 12.0, 11.0, 30.0];
        let reference = [10.0, f64::NAN, 11.0, 11.5];
        let mut scratch = Vec::new();
        let single = encode_series_window(&layout, &grid, 3, &mut scratch).unwrap();
        let w = encode_paired_window(&layout, &grid, Some(&reference), 3, &mut scratch).unwrap();
        assert_eq!((w.centre, w.scale), (single.centre, single.scale));
        for k in 0..3 {
            assert_eq!(&w.values[k * 4..k * 4 + 2], &single.values[k * 2..k * 2 + 2], "the series' own channels");
        }
        // rows hold steps 0, 1, 2 and the reference at steps 1 (a gap), 2, 3 (the target's step)
        assert_eq!(&w.values[2..4], &[0.0, 0.0]);
        assert_eq!(w.values[6..8], [w.normalise(11.0) as f32, 1.0]);
        assert_eq!(w.values[10..12], [w.normalise(11.5) as f32, 1.0]);
        // no reference: zeros; a window with padding reads no reference before step 0
        let none = encode_paired_window(&layout, &grid, None, 3, &mut scratch).unwrap();
        assert!(none.values.chunks(4).all(|r| r[2] == 0.0 && r[3] == 0.0));
        let early = encode_paired_window(&layout, &grid, Some(&reference), 2, &mut scratch).unwrap();
        // the padding row (step −1) reads the reference at step 0: the reference does not depend
        // on the series having a value
        assert_eq!(early.values[2..4], [early.normalise(10.0) as f32, 1.0]);
        assert_eq!(early.values[6..8], [0.0, 0.0], "step 1 is a gap of the reference");
        assert_eq!(early.values[11], 1.0);
    }

    #[test]
    fn align_puts_a_reference_on_the_series_steps() {
        let series = Grid { origin: MIN * 10, step_us: MIN, values: vec![1.0; 4], non_finite: 0 };
        let reference = Grid { origin: MIN * 11, step_us: MIN, values: vec![5.0, 6.0, 7.0, 8.0], non_finite: 0 };
        let a = align(&reference, &series);
        assert!(a[0].is_nan());
        assert_eq!(&a[1..], &[5.0, 6.0, 7.0]);
    }
}
