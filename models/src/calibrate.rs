//! Confidence: probability calibration (isotonic regression, Platt scaling), the expected
//! calibration error, and split-conformal intervals around quantile predictions.
//!
//! All fitted on a calibration split the model did not train on (in time order, the rows just
//! before the held-out test rows), and judged on the test rows.

use serde::{Deserialize, Serialize};

/// A monotone step function from predicted to observed frequency (pool-adjacent-violators).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    /// Upper end (largest input) of each step, ascending.
    pub upper: Vec<f64>,
    /// The calibrated probability of each step, non-decreasing.
    pub value: Vec<f64>,
}

impl Isotonic {
    /// Fits the least-squares non-decreasing step function of `y` (0/1) on `p`. Ties in `p` share
    /// a step. `None` without data.
    pub fn fit(p: &[f64], y: &[f64]) -> Option<Isotonic> {
        let mut idx: Vec<usize> = (0..p.len().min(y.len())).filter(|&i| p[i].is_finite() && y[i].is_finite()).collect();
        if idx.is_empty() {
            return None;
        }
        idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        // Blocks: (sum of y, weight, upper p); equal neighbours merge too, so steps are distinct.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            let (mut s, mut w) = (0.0, 0.0);
            while j < idx.len() && p[idx[j]] == p[idx[i]] {
                s += y[idx[j]];
                w += 1.0;
                j += 1;
            }
            blocks.push((s, w, p[idx[i]]));
            while blocks.len() >= 2 {
                let (b, a) = (blocks[blocks.len() - 1], blocks[blocks.len() - 2]);
                if a.0 / a.1 < b.0 / b.1 {
                    break;
                }
                blocks.pop();
                let last = blocks.last_mut().expect("two blocks");
                *last = (a.0 + b.0, a.1 + b.1, b.2);
            }
            i = j;
        }
        Some(Isotonic { upper: blocks.iter().map(|b| b.2).collect(), value: blocks.iter().map(|b| b.0 / b.1).collect() })
    }

    /// The calibrated probability of `p`: the value of the first step whose upper end is ≥ p
    /// (the last step above every step).
    pub fn predict(&self, p: f64) -> f64 {
        let k = self.upper.partition_point(|&u| u < p).min(self.value.len() - 1);
        self.value[k]
    }
}

/// Platt scaling: P(y = 1 | s) = 1 / (1 + exp(a·s + b)) on the raw score s, fitted by Newton's
/// method with Platt's smoothed targets (J. Platt 1999; H.-T. Lin, C.-J. Lin & R. Weng 2007).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub fn fit(score: &[f64], y: &[f64]) -> Option<Platt> {
        let n = score.len().min(y.len());
        let pos = (0..n).filter(|&i| y[i] == 1.0).count() as f64;
        let neg = n as f64 - pos;
        if n == 0 {
            return None;
        }
        let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let t: Vec<f64> = (0..n).map(|i| if y[i] == 1.0 { hi } else { lo }).collect();
        let (mut a, mut b) = (0.0, ((neg + 1.0) / (pos + 1.0)).ln());
        let loss = |a: f64, b: f64| -> f64 {
            (0..n)
                .map(|i| {
                    let f = score[i] * a + b;
                    if f >= 0.0 { t[i] * f + (1.0 + (-f).exp()).ln() } else { (t[i] - 1.0) * f + (1.0 + f.exp()).ln() }
                })
                .sum()
        };
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
            for i in 0..n {
                let f = score[i] * a + b;
                let (p, q) = if f >= 0.0 {
                    let e = (-f).exp();
                    (e / (1.0 + e), 1.0 / (1.0 + e))
                } else {
                    let e = f.exp();
                    (1.0 / (1.0 + e), e / (1.0 + e))
                };
                let d2 = p * q;
                h11 += score[i] * score[i] * d2;
                h22 += d2;
                h21 += score[i] * d2;
                let d1 = t[i] - p;
                g1 += score[i] * d1;
                g2 += d1;
            }
            if g1.abs() < 1e-9 && g2.abs() < 1e-9 {
                break;
            }
            let det = h11 * h22 - h21 * h21;
            let (da, db) = (-(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det);
            let gd = g1 * da + g2 * db;
            let mut step = 1.0;
            while step >= 1e-10 {
                let (na, nb) = (a + step * da, b + step * db);
                let l = loss(na, nb);
                if l < current + 1e-4 * step * gd {
                    a = na;
                    b = nb;
                    current = l;
                    break;
                }
                step /= 2.0;
            }
            if step < 1e-10 {
                break;
            }
        }
        Some(Platt { a, b })
    }

    /// Temperature scaling (C. Guo, G. Pleiss, Y. Sun & K. Weinberger, ICML 2017): Platt scaling
    /// with no offset, P(y = 1 | s) = σ(s / T), T minimising the log loss. One parameter: it
    /// corrects over- or under-confidence but not the base rate, so a small calibration split
    /// whose failure rate differs by chance from the future's does not move every probability.
    /// `None` without data or without both classes.
    pub fn fit_temperature(score: &[f64], y: &[f64]) -> Option<Platt> {
        let n = score.len().min(y.len());
        let pos = (0..n).filter(|&i| y[i] == 1.0).count();
        if pos == 0 || pos == n {
            return None;
        }
        let loss = |log_t: f64| -> f64 {
            let inv = (-log_t).exp();
            (0..n)
                .map(|i| {
                    let f = score[i] * inv;
                    // −log σ(f) for a failure, −log(1 − σ(f)) otherwise, in a stable form.
                    let m = if y[i] == 1.0 { -f } else { f };
                    if m > 0.0 { m + (1.0 + (-m).exp()).ln() } else { (1.0 + m.exp()).ln() }
                })
                .sum()
        };
        // Golden-section search of log T in [−4, 4] (T from 0.018 to 55): the loss is unimodal in it.
        let g = (5f64.sqrt() - 1.0) / 2.0;
        let (mut lo, mut hi) = (-4.0f64, 4.0f64);
        let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
        let (mut fc, mut fd) = (loss(c), loss(d));
        for _ in 0..80 {
            if fc < fd {
                hi = d;
                d = c;
                fd = fc;
                c = hi - g * (hi - lo);
                fc = loss(c);
            } else {
                lo = c;
                c = d;
                fc = fd;
                d = lo + g * (hi - lo);
                fd = loss(d);
            }
        }
        let t = ((lo + hi) / 2.0).exp();
        Some(Platt { a: -1.0 / t, b: 0.0 })
    }

    pub fn predict(&self, score: f64) -> f64 {
        1.0 / (1.0 + (self.a * score + self.b).exp())
    }
}

/// A fitted probability calibration, kept with the model it calibrates.
#[derive(Debug, Clone, PartialEq)]
pub enum Calibration {
    Isotonic(Isotonic),
    /// Platt scaling of the raw score (log-odds).
    Platt(Platt),
}

impl Calibration {
    /// The calibrated probability from the model's raw score (log-odds) and probability.
    pub fn apply(&self, raw: f64, probability: f64) -> f64 {
        match self {
            Calibration::Isotonic(i) => i.predict(probability),
            Calibration::Platt(p) => p.predict(raw),
        }
    }
}

/// Expected calibration error over `bins` equal-width probability bins: Σ_b (n_b / n) ·
/// |mean(y)_b − mean(p)_b|.
pub fn expected_calibration_error(p: &[f64], y: &[f64], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut acc = vec![(0.0f64, 0.0f64, 0usize); bins];
    for (&pi, &yi) in p.iter().zip(y) {
        let k = ((pi * bins as f64) as usize).min(bins - 1);
        acc[k].0 += yi;
        acc[k].1 += pi;
        acc[k].2 += 1;
    }
    let n = p.len().max(1) as f64;
    acc.iter().filter(|a| a.2 > 0).map(|a| (a.0 - a.1).abs()).sum::<f64>() / n
}

/// Split-conformal correction of a quantile interval (conformalized quantile regression:
/// Y. Romano, E. Patterson & E. Candès, NeurIPS 2019): on a calibration split, the scores
/// max(lo − y, y − hi) and their ⌈(n + 1)(1 − α)⌉-th smallest, `q`; the interval [lo − q, hi + q]
/// then covers a new exchangeable row with probability ≥ 1 − α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conformal {
    /// Nominal coverage 1 − α.
    pub coverage: f64,
    /// The correction added on both sides (may be negative: the raw interval was too wide).
    pub q: f64,
}

impl Conformal {
    pub fn fit(lo: &[f64], hi: &[f64], y: &[f64], coverage: f64) -> Option<Conformal> {
        let mut s: Vec<f64> = lo.iter().zip(hi).zip(y).map(|((l, h), t)| (l - t).max(t - h)).filter(|v| v.is_finite()).collect();
        if s.is_empty() || !(coverage > 0.0 && coverage < 1.0) {
            return None;
        }
        s.sort_unstable_by(f64::total_cmp);
        let n = s.len();
        let k = (((n + 1) as f64) * coverage).ceil() as usize;
        let q = if k > n { f64::INFINITY } else { s[k.max(1) - 1] };
        Some(Conformal { coverage, q })
    }

    pub fn interval(&self, lo: f64, hi: f64) -> (f64, f64) {
        (lo - self.q, hi + self.q)
    }
}

/// The share of `y` inside [lo, hi].
pub fn coverage(lo: &[f64], hi: &[f64], y: &[f64]) -> f64 {
    let n = y.len().max(1) as f64;
    lo.iter().zip(hi).zip(y).filter(|((l, h), t)| *l <= *t && *t <= *h).count() as f64 / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_adjacent_violators() {
        // y over p: 0 1 0 1 1 → the violation (1, 0) pools to 0.5.
        let p = [0.1, 0.2, 0.3, 0.4, 0.5];
        let y = [0.0, 1.0, 0.0, 1.0, 1.0];
        let iso = Isotonic::fit(&p, &y).unwrap();
        assert_eq!(iso.value, vec![0.0, 0.5, 1.0]);
        assert_eq!(iso.upper, vec![0.1, 0.3, 0.5]);
        assert_eq!(iso.predict(0.25), 0.5);
        assert_eq!(iso.predict(0.9), 1.0);
        assert_eq!(iso.predict(0.0), 0.0);
    }

    #[test]
    fn platt_recovers_a_logistic_link() {
        // y = 1 with probability 1/(1 + exp(-2s + 1)): a = -2, b = 1.
        let mut state = 99u64;
        let mut u = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut s, mut y) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let x = u() * 6.0 - 3.0;
            s.push(x);
            y.push(if u() < 1.0 / (1.0 + (-2.0 * x + 1.0).exp()) { 1.0 } else { 0.0 });
        }
        let pl = Platt::fit(&s, &y).unwrap();
        assert!((pl.a + 2.0).abs() < 0.1 && (pl.b - 1.0).abs() < 0.1, "{pl:?}");
        // Temperature: scores 4 times too confident (y from σ(s / 4)) give T ≈ 4, no offset.
        let y4: Vec<f64> = s.iter().map(|&x| if u() < 1.0 / (1.0 + (-x / 4.0).exp()) { 1.0 } else { 0.0 }).collect();
        let t = Platt::fit_temperature(&s, &y4).unwrap();
        assert!((-1.0 / t.a - 4.0).abs() < 0.4 && t.b == 0.0, "{t:?}");
        assert!(Platt::fit_temperature(&s, &vec![1.0; s.len()]).is_none(), "one class");
    }

    #[test]
    fn conformal_uses_the_finite_sample_rank() {
        // Scores 1..=9 (lo = hi = 0, y = 1..9): n = 9, ⌈10 · 0.8⌉ = 8 → q = 8.
        let y: Vec<f64> = (1..=9).map(f64::from).collect();
        let z = vec![0.0; 9];
        let c = Conformal::fit(&z, &z, &y, 0.8).unwrap();
        assert_eq!(c.q, 8.0);
        assert_eq!(coverage(&[-1.0, 0.0], &[1.0, 0.5], &[0.5, 0.7]), 0.5);
        assert_eq!(Conformal::fit(&z, &z, &y, 0.95).unwrap().q, f64::INFINITY, "too few rows for 95 %");
    }
}
