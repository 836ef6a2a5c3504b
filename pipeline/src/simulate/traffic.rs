//! The traffic of a service over time: a diurnal curve, a weekly one, a slow trend and hourly
//! noise. The same function drives the access logs (how many lines each hour) and the metric
//! counters (requests per scrape), so the two agree.

use super::rng::{Rng, hashed_normal};

pub const US_PER_S: i64 = 1_000_000;
pub const US_PER_MIN: i64 = 60 * US_PER_S;
pub const US_PER_HOUR: i64 = 60 * US_PER_MIN;
pub const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// The traffic parameters of one service.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Requests per second at the daily peak of an average weekday.
    pub peak_rps: f64,
    /// Hour of the daily peak, UTC (fractional).
    pub peak_hour: f64,
    /// Traffic at the daily trough as a fraction of the peak.
    pub night_floor: f64,
    /// Saturday and Sunday traffic as a fraction of a weekday's.
    pub weekend: f64,
    /// Relative growth over a year (linear).
    pub growth_per_year: f64,
    /// Standard deviation of the hourly log-noise.
    pub hourly_noise: f64,
    /// Key of the hourly noise.
    pub noise_key: u64,
    /// Start of the simulation, µs (the trend's origin).
    pub origin: i64,
}

impl Traffic {
    pub fn draw(rng: &mut Rng, noise_key: u64, origin: i64) -> Traffic {
        Traffic {
            peak_rps: rng.lognormal(80f64.ln(), 0.8).clamp(5.0, 2000.0),
            peak_hour: rng.uniform(12.0, 18.0),
            night_floor: rng.uniform(0.12, 0.35),
            weekend: rng.uniform(0.45, 0.9),
            growth_per_year: rng.uniform(-0.1, 0.4),
            hourly_noise: 0.08,
            noise_key,
            origin,
        }
    }

    /// The diurnal shape at a fractional UTC hour: 1 at the peak, `night_floor` at the trough.
    pub fn diurnal(&self, hour: f64) -> f64 {
        let phase = std::f64::consts::TAU * (hour - self.peak_hour) / 24.0;
        let bump = ((1.0 + phase.cos()) / 2.0).powf(1.5);
        self.night_floor + (1.0 - self.night_floor) * bump
    }

    /// Requests per second at time `t` (µs UTC): never negative.
    pub fn rate(&self, t: i64) -> f64 {
        let day = t.div_euclid(US_PER_DAY);
        let hour = (t.rem_euclid(US_PER_DAY)) as f64 / US_PER_HOUR as f64;
        let weekday = (day + 3).rem_euclid(7); // Monday = 0
        let week = if weekday >= 5 { self.weekend } else { 1.0 };
        let years = (t - self.origin) as f64 / (365.0 * US_PER_DAY as f64);
        let trend = (1.0 + self.growth_per_year * years).max(0.05);
        let noise = (self.hourly_noise * hashed_normal(self.noise_key, t.div_euclid(US_PER_HOUR))).exp();
        (self.peak_rps * self.diurnal(hour) * week * trend * noise).max(0.0)
    }

    /// Mean of `rate` over one UTC day starting at `day_start` (hourly midpoints).
    pub fn day_mean(&self, day_start: i64) -> f64 {
        (0..24).map(|h| self.rate(day_start + h * US_PER_HOUR + US_PER_HOUR / 2)).sum::<f64>() / 24.0
    }
}

/// Monday = 0 … Sunday = 6, for a UTC time in µs.
pub fn weekday(t: i64) -> i64 {
    (t.div_euclid(US_PER_DAY) + 3).rem_euclid(7)
}

/// Hour of day, UTC.
pub fn hour(t: i64) -> i64 {
    t.rem_euclid(US_PER_DAY) / US_PER_HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_positive_diurnal_and_weekly() {
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let t = Traffic::draw(&mut rng, seed, 0);
            let monday = 4 * US_PER_DAY; // 1970-01-05 was a Monday
            let mut peak: f64 = 0.0;
            let mut trough = f64::MAX;
            for m in 0..(7 * 24 * 6) {
                let r = t.rate(monday + m * 10 * US_PER_MIN);
                assert!(r.is_finite() && r > 0.0, "rate {r}");
                peak = peak.max(r);
                trough = trough.min(r);
            }
            assert!(peak / trough > 2.0, "no diurnal swing: {peak} / {trough}");
            let weekday_mean = t.day_mean(monday + 2 * US_PER_DAY);
            let sunday_mean = t.day_mean(monday + 6 * US_PER_DAY);
            assert!(sunday_mean < weekday_mean * 1.05, "weekend {sunday_mean} above weekday {weekday_mean}");
        }
        assert_eq!(weekday(4 * US_PER_DAY), 0);
        assert_eq!(hour(4 * US_PER_DAY + 13 * US_PER_HOUR + 5), 13);
    }
}
