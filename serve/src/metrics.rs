//! The server's own Prometheus metrics (`/metrics` of the HTTP adapter), kept with atomics:
//! calls by method and code, latency histograms, decisions by kind, shed calls, score-log
//! writes and drops, model reloads and the loaded versions.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency buckets, seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Every metric of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    decisions: Mutex<BTreeMap<String, u64>>,
    pub shed: AtomicU64,
    pub scorelog_written: AtomicU64,
    pub scorelog_dropped: AtomicU64,
    pub scorelog_failures: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    models: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// One call of `method` (`Score`, `ScoreStream`, `http`) ended with `code` after `seconds`.
    pub fn observe(&self, method: &str, code: &str, seconds: f64) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((method.into(), code.into())).or_default() += 1;
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = l.entry(method.into()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub fn decision(&self, d: &str) {
        *self.decisions.lock().unwrap_or_else(|e| e.into_inner()).entry(d.into()).or_default() += 1;
    }

    /// The loaded version of `name` (0: none).
    pub fn model(&self, name: &str, version: u64) {
        self.models.lock().unwrap_or_else(|e| e.into_inner()).insert(name.into(), version);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP omen_requests_total Scoring calls by method and status code.\n# TYPE omen_requests_total counter");
        for ((m, c), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "omen_requests_total{{method=\"{m}\",code=\"{c}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP omen_request_duration_seconds Time to answer a scoring call.\n# TYPE omen_request_duration_seconds histogram");
        for (m, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "omen_request_duration_seconds_bucket{{method=\"{m}\",le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(s, "omen_request_duration_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "omen_request_duration_seconds_sum{{method=\"{m}\"}} {}", h.sum);
            let _ = writeln!(s, "omen_request_duration_seconds_count{{method=\"{m}\"}} {}", h.count);
        }
        let _ = writeln!(s, "# HELP omen_decisions_total Decisions given, by kind.\n# TYPE omen_decisions_total counter");
        for (d, n) in self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "omen_decisions_total{{decision=\"{d}\"}} {n}");
        }
        let counters = [
            ("omen_shed_total", "Calls refused with RESOURCE_EXHAUSTED by the concurrency limit.", &self.shed),
            ("omen_scorelog_written_total", "Answers written to scores/ in the store.", &self.scorelog_written),
            ("omen_scorelog_dropped_total", "Answers dropped because the score log's buffer was full.", &self.scorelog_dropped),
            ("omen_scorelog_write_failures_total", "Score-log batches the store refused.", &self.scorelog_failures),
            ("omen_model_reloads_total", "New champions loaded.", &self.reloads),
            ("omen_model_reload_failures_total", "Champions refused (checksum, schema) or unreachable.", &self.reload_failures),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(s, "# HELP omen_model_version The loaded version of each model (0: none).\n# TYPE omen_model_version gauge");
        for (name, v) in self.models.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "omen_model_version{{model=\"{name}\"}} {v}");
        }
        s
    }
}
