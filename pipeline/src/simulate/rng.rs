//! The simulator's random numbers: xoshiro256** seeded through SplitMix64, written out here so
//! that a seed gives the same history on every platform and with every version of the `rand`
//! crates. Each service and each stream of a service (repository, schedule, metrics, logs) gets
//! its own generator, derived from the seed and names only, so services can be generated in
//! parallel and in any order with the same bytes out.

/// SplitMix64 step: a well-mixed 64-bit value from a counter.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of a seed and a list of words (FNV-1a over the words, then SplitMix64).
pub fn derive(seed: u64, words: &[&str]) -> u64 {
    let mut h = splitmix64(seed ^ 0x6f6d_656e_5f73_696d);
    for w in words {
        let mut f: u64 = 0xcbf2_9ce4_8422_2325;
        for b in w.bytes() {
            f ^= u64::from(b);
            f = f.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = splitmix64(h ^ f);
    }
    h
}

/// Standard normal noise that is a pure function of `(key, index)`: the same hour of the same
/// service gets the same traffic deviation in the logs and in the metrics.
pub fn hashed_normal(key: u64, index: i64) -> f64 {
    let a = splitmix64(key ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = splitmix64(a);
    let u1 = ((a >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// xoshiro256** (Blackman and Vigna).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *v = splitmix64(x);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// The generator of one stream: `derive(seed, words)`.
    pub fn stream(seed: u64, words: &[&str]) -> Rng {
        Rng::new(derive(seed, words))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the bias is below 2⁻³² for the sizes used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box-Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// exp(N(mu, sigma²)).
    pub fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Poisson: Knuth's product method below a mean of 30, a rounded normal above.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0u64;
            let mut p = self.f64();
            while p > limit {
                k += 1;
                p *= self.f64();
            }
            k
        } else {
            (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64
        }
    }

    /// Binomial(n, p): exact below 40 trials, else the normal approximation, clamped to [0, n].
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let p = p.clamp(0.0, 1.0);
        if n < 40 {
            return (0..n).filter(|_| self.f64() < p).count() as u64;
        }
        let mean = n as f64 * p;
        if mean < 20.0 {
            return self.poisson(mean).min(n);
        }
        let sd = (mean * (1.0 - p)).sqrt();
        (mean + sd * self.normal()).round().clamp(0.0, n as f64) as u64
    }

    /// An index drawn with probability proportional to `weights` (all ≥ 0, not all 0).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map({
            let mut r = Rng::stream(7, &["checkout", "git"]);
            move |_| r.next_u64()
        }).collect();
        let b: Vec<u64> = (0..4).map({
            let mut r = Rng::stream(7, &["checkout", "git"]);
            move |_| r.next_u64()
        }).collect();
        let c: Vec<u64> = (0..4).map({
            let mut r = Rng::stream(7, &["checkout", "logs"]);
            move |_| r.next_u64()
        }).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(derive(1, &["a", "bc"]), derive(1, &["ab", "c"]));
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        let p: f64 = (0..n).map(|_| r.poisson(4.5) as f64).sum::<f64>() / n as f64;
        assert!((p - 4.5).abs() < 0.03, "{p}");
        let b: f64 = (0..20_000).map(|_| r.binomial(1000, 0.01) as f64).sum::<f64>() / 20_000.0;
        assert!((b - 10.0).abs() < 0.1, "{b}");
        for _ in 0..1000 {
            let k = r.range(3, 5);
            assert!((3..=5).contains(&k));
        }
    }
}
