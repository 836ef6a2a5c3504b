//! Predictive rollback: from the forecaster's quantiles, the probability that a metric's SLO is
//! breached within the forecast horizon.
//!
//! Each step's forecast is read as a split normal through its quantiles: the median (the level
//! closest to 0.5) is the centre, and each side's spread is fixed by the outer quantile on that
//! side (`σ = (q − median) / Φ⁻¹(level)`), so an asymmetric forecast keeps its asymmetry. The
//! probability of a breach at a step is that distribution's mass beyond the limit; within the
//! horizon it is the largest of the steps' (the steps of one forecast are strongly dependent, so
//! the largest is the right order of magnitude where a union bound would overcount).

use omen_features::stats::dist::{normal_quantile, normal_sf};

use super::MetricForecast;

/// A service-level objective on one metric: breached when the value goes above `max` or below
/// `min`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slo {
    pub metric: String,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
}

/// The probability that `slo` is breached at each forecast step, and the largest of them.
pub fn breach_probability(forecast: &MetricForecast, slo: &Slo) -> (Vec<f64>, f64) {
    let levels = &forecast.levels;
    let median =
        levels.iter().enumerate().min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs())).map_or(0, |(i, _)| i);
    let per_step: Vec<f64> = forecast
        .quantiles
        .iter()
        .map(|q| {
            let centre = q[median];
            // spread below and above from the outer quantiles; a degenerate side borrows the other
            let side = |k: usize| {
                let z = normal_quantile(levels[k]) - normal_quantile(levels[median]);
                if z.abs() > 1e-9 { ((q[k] - centre) / z).abs() } else { 0.0 }
            };
            let (mut lo, mut hi) = (side(0), side(levels.len() - 1));
            if lo == 0.0 {
                lo = hi;
            }
            if hi == 0.0 {
                hi = lo;
            }
            let tail_above = |x: f64| {
                let s = if x >= centre { hi } else { lo };
                if s > 0.0 { normal_sf((x - centre) / s) } else if x < centre { 1.0 } else { 0.0 }
            };
            let above = slo.max.map_or(0.0, tail_above);
            let below = slo.min.map_or(0.0, |x| 1.0 - tail_above(x));
            (above + below).min(1.0)
        })
        .collect();
    let max = per_step.iter().copied().fold(0.0, f64::max);
    (per_step, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast(steps: &[[f64; 3]]) -> MetricForecast {
        MetricForecast { metric: "latency".into(), levels: vec![0.1, 0.5, 0.9], quantiles: steps.iter().map(|s| s.to_vec()).collect() }
    }

    #[test]
    fn breach_probability_reads_the_quantiles() {
        let f = forecast(&[[90.0, 100.0, 110.0], [100.0, 120.0, 140.0]]);
        // the limit at a step's upper quantile: 10 % beyond it
        let (p, max) = breach_probability(&f, &Slo { metric: "latency".into(), max: Some(110.0), min: None });
        assert!((p[0] - 0.1).abs() < 1e-6, "{p:?}");
        assert!(p[1] > 0.5 && p[1] < 0.9, "{p:?}");
        assert_eq!(max, p[1]);
        // the median: one half
        let (p, _) = breach_probability(&f, &Slo { metric: "latency".into(), max: Some(100.0), min: None });
        assert!((p[0] - 0.5).abs() < 1e-9);
        // a lower limit
        let (p, _) = breach_probability(&f, &Slo { metric: "latency".into(), max: None, min: Some(90.0) });
        assert!((p[0] - 0.1).abs() < 1e-6, "{p:?}");
        // no limit: never breached
        assert_eq!(breach_probability(&f, &Slo { metric: "latency".into(), max: None, min: None }).1, 0.0);
        // a degenerate forecast (all quantiles equal) is certain either way
        let f = forecast(&[[5.0, 5.0, 5.0]]);
        assert_eq!(breach_probability(&f, &Slo { metric: "x".into(), max: Some(4.0), min: None }).1, 1.0);
        assert_eq!(breach_probability(&f, &Slo { metric: "x".into(), max: Some(6.0), min: None }).1, 0.0);
    }
}
