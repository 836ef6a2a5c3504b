//! The metrics of each rollout, as a script that asks Prometheus' `query_range` API for every
//! metric of a deployment's analysis window would save them: one response per metric and
//! deployment, one per line, each with a series per role (`canary`, `baseline`, `primary`)
//! labelled with `service`, `deployment` and `role`.
//!
//! Most deployments (nine in ten) also run a load test of the new version at the canary start:
//! for [`LOAD_TEST_MINUTES`] its pods get synthetic traffic at the full (100 %) rate, and the
//! series come back with `role="loadtest"`. A failure shows there as it would at 100 % traffic
//! (the saturation mode included), so it is the only early sign of a saturation.
//!
//! Traffic per role follows the canary's weight: the canary gets `w` %, the baseline (a fresh
//! copy of the old version) `min(w, (100 − w)/2)` %, the primary the rest. Replicas scale with
//! the share, so the load per pod — and so CPU, memory and saturation — is the same in every role;
//! what the share changes is how many requests a scrape interval sees, and so how noisy the
//! latency quantiles and error ratios are (a 5 % canary is noisy, a 50 % one is not).

use std::io::Write;

use serde::Serialize;

use super::rng::Rng;
use super::schedule::{Bait, Deployment, FailureMode};
use super::traffic::{Traffic, US_PER_MIN, US_PER_S};

/// Metric names, in the order written.
pub const METRICS: [&str; 8] = [
    "http_requests_total",
    "http_requests_errors_total",
    "http_requests_error_ratio",
    "http_request_duration_seconds_p50",
    "http_request_duration_seconds_p99",
    "cpu_utilization",
    "process_resident_memory_bytes",
    "worker_saturation_ratio",
];

/// The steady-state behaviour of a service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceMetrics {
    /// Median latency at low load, seconds.
    pub p50_s: f64,
    /// p99 / p50.
    pub p99_ratio: f64,
    /// Error probability of a request.
    pub error_rate: f64,
    /// CPU (cores per pod) at idle, and added at the daily peak.
    pub cpu_idle: f64,
    pub cpu_peak: f64,
    /// Resident memory per pod, bytes.
    pub memory_bytes: f64,
    /// Worker-pool utilisation at the daily peak.
    pub saturation_peak: f64,
}

impl ServiceMetrics {
    pub fn draw(rng: &mut Rng) -> ServiceMetrics {
        ServiceMetrics {
            p50_s: rng.lognormal(0.04f64.ln(), 0.5).clamp(0.005, 0.4),
            p99_ratio: rng.uniform(3.0, 7.0),
            error_rate: rng.lognormal(0.003f64.ln(), 0.7).clamp(0.0003, 0.03),
            cpu_idle: rng.uniform(0.03, 0.12),
            cpu_peak: rng.uniform(0.3, 1.5),
            memory_bytes: rng.lognormal(3.0e8f64.ln(), 0.5).round(),
            saturation_peak: rng.uniform(0.25, 0.5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Canary,
    Baseline,
    Primary,
    LoadTest,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Canary => "canary",
            Role::Baseline => "baseline",
            Role::Primary => "primary",
            Role::LoadTest => "loadtest",
        }
    }
}

/// The series of one role: `(ts seconds, value per metric in METRICS order)`.
struct RoleSeries {
    role: Role,
    points: Vec<(i64, [f64; 8])>,
}

/// Minutes of primary data before the canary starts (the analysis window's lead-in).
const LEAD_IN_MIN: i64 = 10;

/// Minutes of a load test, from the canary start.
pub const LOAD_TEST_MINUTES: i64 = 5;

/// The share of deployments whose pipeline runs a load test.
pub const LOAD_TEST_SHARE: f64 = 0.9;

/// Generates the samples of one deployment and appends its responses (one line per metric) to
/// `out`; returns the number of samples written.
pub fn write_deployment(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    service: &str,
    d: &Deployment,
    sm: &ServiceMetrics,
    traffic: &Traffic,
    step_s: i64,
) -> u64 {
    let step = step_s * US_PER_S;
    let grid = |t: i64| t.div_euclid(step) * step;
    let first = grid(d.start + step - 1); // first grid point at or after the start
    let full = d.full_at();
    let mut roles = Vec::with_capacity(4);
    // The load test comes last, so that the other roles' samples do not depend on it.
    for role in [Role::Canary, Role::Baseline, Role::Primary, Role::LoadTest] {
        if role == Role::LoadTest && !rng.bernoulli(LOAD_TEST_SHARE) {
            continue;
        }
        let (from, to) = match role {
            Role::Canary => (first, d.end),
            Role::Baseline => (first, full),
            Role::Primary => (grid(d.start - LEAD_IN_MIN * US_PER_MIN), full),
            // Its own pods, with the per-pod load of the time, at the full-traffic rate.
            Role::LoadTest => (first, first + LOAD_TEST_MINUTES * US_PER_MIN),
        };
        let noisy = role == Role::Canary && d.bait == Bait::Noisy;
        let mut counters = match role {
            Role::Primary => {
                let r = rng.uniform(1e6, 5e7).round();
                (r, (r * sm.error_rate).round())
            }
            _ => (0.0, 0.0),
        };
        let mut points = Vec::new();
        let mut t = from;
        while t <= to {
            let w = if role == Role::LoadTest { 100.0 } else { d.weight_at(t) };
            let share = match role {
                Role::LoadTest => 1.0,
                Role::Canary => w / 100.0,
                Role::Baseline => w.min((100.0 - w) / 2.0) / 100.0,
                Role::Primary => {
                    if t < d.start {
                        1.0
                    } else {
                        (100.0 - w - w.min((100.0 - w) / 2.0)) / 100.0
                    }
                }
            };
            let mut values = sample(rng, sm, traffic, t, step_s, share, noisy, role == Role::Primary);
            // The load test shows the failure as it is at 100 % traffic, and no bait.
            if role == Role::Canary || role == Role::LoadTest {
                apply_failure(rng, d, sm, t, w, &mut values);
                if noisy {
                    let minute = (t - d.start) / US_PER_MIN;
                    if d.bait_detail.spikes_minute.iter().any(|&m| minute == m || minute == m + 1) {
                        values.p99 *= rng.uniform(2.0, 3.0);
                        values.p50 *= rng.uniform(1.2, 1.6);
                        let extra = rng.binomial(values.requests, 0.02);
                        values.errors = (values.errors + extra).min(values.requests);
                    }
                }
            }
            counters.0 += values.requests as f64;
            counters.1 += values.errors as f64;
            let ratio = if values.requests == 0 { f64::NAN } else { values.errors as f64 / values.requests as f64 };
            let (p50, p99) = if values.requests == 0 { (f64::NAN, f64::NAN) } else { (values.p50, values.p99) };
            // The first sample of a new pod's counter is its count so far: zero.
            let at_first = t == from && role != Role::Primary;
            let (req, err) = if at_first { (0.0, 0.0) } else { counters };
            if at_first {
                counters = (0.0, 0.0);
            }
            let gap = role == Role::Canary
                && d.bait_detail.gap_minutes.is_some_and(|(a, b)| t >= d.start + a * US_PER_MIN && t < d.start + b * US_PER_MIN);
            if !gap {
                points.push((t / US_PER_S, [req, err, ratio, p50, p99, values.cpu, values.memory, values.saturation]));
            }
            t += step;
        }
        roles.push(RoleSeries { role, points });
    }
    let mut samples = 0u64;
    for (m, name) in super::metrics::METRICS.iter().enumerate() {
        out.extend_from_slice(br#"{"status":"success","data":{"resultType":"matrix","result":["#);
        let mut first_series = true;
        for rs in &roles {
            let missing = rs.role == Role::Canary && d.bait_detail.missing_metric.as_deref() == Some(name);
            if rs.points.is_empty() || missing {
                continue;
            }
            if !first_series {
                out.push(b',');
            }
            first_series = false;
            write!(
                out,
                r#"{{"metric":{{"__name__":"{name}","deployment":"{}","namespace":"prod","role":"{}","service":"{service}"}},"values":["#,
                d.id,
                rs.role.as_str()
            )
            .expect("vec");
            for (i, (ts, v)) in rs.points.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write!(out, "[{ts},\"").expect("vec");
                format_value(out, m, v[m]);
                out.extend_from_slice(b"\"]");
                samples += 1;
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]}}\n");
    }
    samples
}

/// Prometheus' text form of a value, with the precision the metric needs.
fn format_value(out: &mut Vec<u8>, metric: usize, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    let r = match metric {
        0 | 1 => write!(out, "{}", v.round() as i64),
        // Resident memory in pages of 4 KiB.
        6 => write!(out, "{}", (v / 4096.0).round() as i64 * 4096),
        2 => write!(out, "{:.5}", v),
        3 | 4 => write!(out, "{}", Sig4(v)),
        _ => write!(out, "{:.3}", v),
    };
    r.expect("vec");
}

/// Four significant digits, as a decimal (latencies in seconds).
struct Sig4(f64);

impl std::fmt::Display for Sig4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() {
            return write!(f, "{v}");
        }
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        write!(f, "{v:.digits$}")
    }
}

/// One scrape interval of one role, before failures.
struct Values {
    requests: u64,
    errors: u64,
    p50: f64,
    p99: f64,
    cpu: f64,
    memory: f64,
    saturation: f64,
}

#[allow(clippy::too_many_arguments)]
fn sample(rng: &mut Rng, sm: &ServiceMetrics, traffic: &Traffic, t: i64, step_s: i64, share: f64, noisy: bool, primary: bool) -> Values {
    let rate = traffic.rate(t);
    let load = rate / traffic.peak_rps;
    let requests = rng.poisson(rate * share * step_s as f64);
    let k = if noisy { 3.0 } else if primary { 0.5 } else { 1.0 };
    let n = requests as f64;
    let error_rate = (sm.error_rate * (1.0 + 0.15 * k * rng.normal())).max(0.0);
    let errors = rng.binomial(requests, error_rate);
    let s50 = k * (0.03 + 0.4 / (n + 1.0).sqrt());
    let s99 = k * (0.05 + 1.5 / (n + 1.0).sqrt());
    let p50 = sm.p50_s * (1.0 + 0.25 * load) * (s50 * rng.normal()).exp();
    let p99 = sm.p50_s * sm.p99_ratio * (1.0 + 0.5 * load) * (s99 * rng.normal()).exp();
    let cpu = (sm.cpu_idle + sm.cpu_peak * load * (1.0 + 0.04 * k * rng.normal())).max(0.0);
    let memory = sm.memory_bytes * (1.0 + 0.05 * load) * (1.0 + 0.015 * k.min(1.0) * rng.normal());
    let saturation = (sm.saturation_peak * load * (1.0 + 0.05 * k * rng.normal())).clamp(0.0, 1.0);
    Values { requests, errors, p50, p99, cpu, memory, saturation }
}

/// The failure's effect on a canary sample at time `t` and weight `w`.
fn apply_failure(rng: &mut Rng, d: &Deployment, sm: &ServiceMetrics, t: i64, w: f64, v: &mut Values) {
    let minutes = (t - d.start) as f64 / US_PER_MIN as f64 - d.effect.onset_minute;
    if minutes < 0.0 {
        return;
    }
    match d.mode {
        FailureMode::None => {}
        FailureMode::ErrorSpike => {
            let extra = rng.binomial(v.requests - v.errors, d.effect.error_rate_added.unwrap_or(0.0));
            v.errors += extra;
        }
        FailureMode::LatencyShift => {
            let f = d.effect.latency_factor.unwrap_or(1.0);
            v.p50 *= f;
            v.p99 *= 1.0 + 1.3 * (f - 1.0);
            v.cpu *= 1.0 + 0.5 * (f - 1.0);
        }
        FailureMode::MemoryLeak => {
            v.memory += sm.memory_bytes * d.effect.leak_per_minute.unwrap_or(0.0) * minutes;
        }
        FailureMode::Saturation => {
            // A limit shared by the new version's pods (a connection pool, a lock): nothing
            // shows until the canary carries more than half the traffic.
            let excess = d.effect.saturation_at_full.unwrap_or(0.0) * ((w - 50.0) / 50.0).max(0.0);
            if excess > 0.0 {
                v.saturation = (v.saturation + excess).min(1.0);
                let over = (v.saturation - 0.75).max(0.0);
                v.p99 *= 1.0 + 4.0 * over;
                v.p50 *= 1.0 + 1.5 * over;
                let timeouts = rng.binomial(v.requests - v.errors, (0.5 * (v.saturation - 0.9)).max(0.0));
                v.errors += timeouts;
            }
        }
    }
}
