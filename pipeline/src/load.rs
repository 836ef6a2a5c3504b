//! `omen load run`: a built-in open-model load generator.
//!
//! # The open model
//!
//! Arrivals come at a constant total rate, `--rps` × `--stress`, split across the streams (the
//! profiles of a profile set, or the transactions of a file) by their shares: stream `i`'s `j`-th
//! arrival is intended at `t0 + j / (rate · share_i)`, for every intended time before
//! `--duration`. A scheduler thread dispatches each arrival no earlier than its intended time
//! (above 5,000 arrivals a second in batches, waking at most every 200 µs; the lag is reported as
//! `schedule_lag_ms`) and runs it as its own task: arrivals never wait for earlier responses, and every latency is
//! measured from the intended time, so a target that stalls shows as latency, not as fewer
//! requests (no coordinated omission). An arrival is *dropped*, never delayed, when
//! `--max-in-flight` arrivals are already running, or when the scheduler reaches it after its
//! deadline. Choices (which request of a stream, the values of `{…}` placeholders) are seeded
//! (`--seed`).
//!
//! Requests go through pools of keep-alive HTTP/1.1 connections (`TCP_NODELAY`): omen's own
//! lean client for `http://` (`http`), hyper's with rustls and the system's roots when a URL is
//! `https://`. Arrivals run on `--threads` sending threads (default: half the cores, 1 to 8),
//! each a single-threaded runtime with its own connections, as wrk's threads. `--connections N`
//! bounds the connections per target host (default: `--max-in-flight`): an arrival that finds
//! none free waits for one, the wait counted in its latency, so a bounded pool never hides a
//! slow target either. Each arrival has until its intended time plus `--timeout` to finish (a
//! later step of a transaction until its own start plus `--timeout`), and nothing runs past the
//! run's deadline, `--duration` + `--timeout`: what is still running then is cancelled and
//! counted as a timeout. A run therefore always ends by its deadline.
//!
//! # Transactions files
//!
//! ```yaml
//! target: http://staging.internal:8080      # optional base URL; --target overrides it
//! sla_success_threshold: 0.99               # optional: fraction of transactions that must succeed
//! error_budget: 10                          # optional: number of failed transactions allowed
//! transactions:
//!   - name: checkout                        # unique
//!     weight: 3                             # optional, > 0 (default 1): share of the arrivals
//!     steps:                                # run in order; the first failure ends the transaction
//!       - name: login                       # optional (default "METHOD url"), unique in its transaction
//!         method: POST                      # GET (default), HEAD, POST, PUT, PATCH, DELETE, OPTIONS
//!         url: /api/login                   # a path under the target, or an absolute http(s) URL
//!         headers: {X-Client: omen}         # optional
//!         payload: {user: demo}             # optional: a string is sent as it is (text/plain),
//!                                           # anything else as JSON (application/json)
//!         expected_response_code: 200       # optional (default 200)
//!         validate:                         # optional; every rule must pass
//!           - jsonpath: $.token             # the path selects something
//!           - jsonpath: $.user.id
//!             equals: 42                    # every node selected equals the value (at least one)
//!           - jsonpath: $.items[*].sku
//!             regex: "^[A-Z]{3}-[0-9]+$"    # every node selected matches
//!           - jsonpath: $.error
//!             exists: false                 # the path selects nothing
//!           - regex: "welcome"              # the body matches
//! ```
//!
//! JSONPath here is the subset `$`, `.key`, `['key']`, `[index]` (negative from the end), `[*]`
//! and `.*`. Unknown fields, a step without `url`, an unknown method, a bad regex or path, a
//! status outside 100–599, a threshold outside [0, 1] or a non-positive weight reject the file
//! with `FILE:LINE:COLUMN: field: reason`.
//!
//! A transaction succeeds when every step answers its `expected_response_code` and passes its
//! rules. It fails on the first step that does not, on a connect error, an I/O error or a
//! timeout; dropped arrivals count as failed transactions. A stream of a profile set succeeds on
//! any status below 400.
//!
//! # The verdict
//!
//! The SLA is met when the fraction of offered transactions that succeeded is at least
//! `sla_success_threshold` and the failed ones number at most `error_budget` (each only when
//! given; `budget_left` is the budget less the failures, negative when overspent). A run
//! without either has no SLA and fails only when no arrival succeeded. `omen load run` exits 0
//! when the run passed, 1 when it did not (and on any other error), 2 on a usage error.
//!
//! # Results
//!
//! `synthetic_runs/run=<id>/part-0.parquet` holds one row per stream, or per transaction and
//! per step (counts, status classes and codes, errors by kind, latency percentiles, and the
//! non-empty buckets of the log-linear latency histogram: `bucket_lower_us`, `bucket_count`);
//! `synthetic_runs/run=<id>/summary.json`, written last, is the report `--json` prints. The id
//! is the UTC start time and a short hash (`20261122T101500Z-3fa2c1`).

pub mod engine;
pub mod histogram;
mod http;
pub mod jsonpath;
pub mod transactions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Uri};
use omen_features::Store;
use polars::prelude::*;
use serde::Serialize;

use self::engine::{Call, ERROR_KINDS, ErrorKind, Expect, Flow, FlowKind, FlowSnapshot, Measured, Prepared, Settings, Template};
use self::histogram::Histogram;
pub use self::transactions::{Sla, TransactionFile};
use crate::error::{Error, Result};

/// A workload to replay: streams of requests, each at its share of the total rate.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    pub streams: Vec<Stream>,
}

/// One stream (a profile): its share of the total rate and the requests it draws from.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub name: String,
    /// Fraction of the total rate (normalised over the streams; must be ≥ 0, not all 0).
    pub share: f64,
    pub requests: Vec<RequestSpec>,
}

/// A request of a stream.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    pub method: String,
    /// A path under the target (or an absolute URL); each `{…}` placeholder (`/users/{id}`) is
    /// filled with a seeded random integer from 1 to 999,999.
    pub path: String,
    /// Size of the body sent (a JSON object padded to this size; none for 0).
    pub body_bytes: u64,
    /// Relative weight within the stream (≥ 0); all 0 means uniform.
    pub weight: f64,
}

/// How hard and how long to load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Arrivals per second before `stress`.
    pub rps: f64,
    /// Multiplier of `rps`.
    pub stress: f64,
    pub duration: Duration,
    /// Per request, from its intended send time.
    pub timeout: Duration,
    /// Arrivals running at once beyond which new ones are dropped.
    pub max_in_flight: u64,
    pub seed: u64,
    /// Threads sending requests, each with its own connections (`default_threads()`).
    pub threads: usize,
    /// Connections per target host at most (plain HTTP); arrivals beyond wait for one, the wait
    /// counted in their latency. `None`: as many as `max_in_flight`.
    pub connections: Option<u64>,
}

/// Threads for sending: half the cores (the target or other work needs the rest), 1 to 8.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).clamp(1, 8)
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            rps: 10.0,
            stress: 1.0,
            duration: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_in_flight: 10_000,
            seed: 1,
            threads: default_threads(),
            connections: None,
        }
    }
}

impl LoadOptions {
    /// Checks every option; the error names the flag.
    pub fn check(&self) -> Result<()> {
        let positive = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(Error::input(flag, format!("must be a positive number, got {v}"))) }
        };
        positive("--rps", self.rps)?;
        positive("--stress", self.stress)?;
        positive("--rps × --stress", self.rps * self.stress)?;
        if self.duration.is_zero() {
            return Err(Error::input("--duration", "must be positive"));
        }
        if self.timeout.is_zero() {
            return Err(Error::input("--timeout", "must be positive"));
        }
        if self.max_in_flight == 0 {
            return Err(Error::input("--max-in-flight", "must be at least 1"));
        }
        if self.connections == Some(0) {
            return Err(Error::input("--connections", "must be at least 1"));
        }
        if !(1..=256).contains(&self.threads) {
            return Err(Error::input("--threads", "must be from 1 to 256"));
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            threads: self.threads,
            connections: self.connections.unwrap_or(self.max_in_flight),
            rate: self.rps * self.stress,
            duration: self.duration,
            timeout: self.timeout,
            max_in_flight: self.max_in_flight,
            seed: self.seed,
        }
    }
}

/// Parses a duration: `500ms`, `3s`, `1.5s`, `2m`, `1h`, or a number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a duration (500ms, 3s, 2m, 1h)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Checks a target URL (`--target`): http or https with a host.
pub fn check_target(url: &str) -> std::result::Result<(), String> {
    transactions::check_base_url(url)
}

/// Reads and validates a transactions file (errors: `FILE:LINE:COL: field: reason`).
pub fn load_transactions(path: &std::path::Path) -> Result<TransactionFile> {
    transactions::load(path)
}

/// Runs a workload (a profile set's streams) against `target` and writes the results to the
/// store.
pub async fn run_workload(workload: &Workload, target: &str, opts: &LoadOptions, store: &Store) -> Result<LoadReport> {
    let source = format!("profile streams ({})", workload.streams.len());
    let source = source.as_str();
    opts.check()?;
    check_target(target).map_err(|m| Error::input("--target", m))?;
    let base = target.trim_end_matches('/');
    let total: f64 = workload.streams.iter().map(|s| s.share).sum();
    if workload.streams.is_empty() || !(total.is_finite() && total > 0.0) {
        return Err(Error::input(source, "the workload has no stream with a positive share"));
    }
    let mut flows = Vec::new();
    for s in &workload.streams {
        let at = |m: String| Error::input(format!("{source}: stream {}", s.name), m);
        if !(s.share.is_finite() && s.share >= 0.0) {
            return Err(at(format!("share {} is not a non-negative number", s.share)));
        }
        if s.requests.is_empty() {
            return Err(at("no requests".into()));
        }
        let mut templates = Vec::new();
        let mut cumulative = Vec::new();
        let uniform = s.requests.iter().all(|r| r.weight == 0.0);
        let mut acc = 0.0;
        for r in &s.requests {
            if !(r.weight.is_finite() && r.weight >= 0.0) {
                return Err(at(format!("{} {}: weight {} is not a non-negative number", r.method, r.path, r.weight)));
            }
            let method = parse_method(&r.method).map_err(&at)?;
            let t = template(base, &method, &r.path, r.body_bytes).map_err(&at)?;
            acc += if uniform { 1.0 } else { r.weight };
            templates.push(t);
            cumulative.push(acc);
        }
        flows.push(Flow { name: s.name.clone(), share: s.share / total, kind: FlowKind::Requests { templates, cumulative } });
    }
    let measured = engine::run(flows, opts.settings()).await?;
    finish(measured, source, target, opts, None, store).await
}

/// Runs a transactions file against `target` (or the file's own `target`) and writes the
/// results to the store. `source` names the file in the report.
pub async fn run_transactions(
    file: &TransactionFile,
    source: &str,
    target: Option<&str>,
    opts: &LoadOptions,
    store: &Store,
) -> Result<LoadReport> {
    opts.check()?;
    let target = match (target, &file.target) {
        (Some(t), _) => {
            check_target(t).map_err(|m| Error::input("--target", m))?;
            t.to_string()
        }
        (None, Some(t)) => t.clone(),
        (None, None) => return Err(Error::input("--target", format!("required: {source} names no target"))),
    };
    let base = target.trim_end_matches('/');
    let total: f64 = file.transactions.iter().map(|t| t.weight).sum();
    let mut flows = Vec::new();
    for t in &file.transactions {
        let mut calls = Vec::new();
        for s in &t.steps {
            let url = if s.url.starts_with('/') { format!("{base}{}", s.url) } else { s.url.clone() };
            let uri: Uri = url.parse().map_err(|e| Error::input(source, format!("transaction {} step {}: `{url}`: {e}", t.name, s.name)))?;
            let has_ct = s.headers.iter().any(|(k, _)| k == CONTENT_TYPE);
            calls.push(Call {
                name: s.name.clone(),
                request: Prepared::new(
                    s.method.clone(),
                    uri,
                    Arc::from(s.headers.clone()),
                    s.body.as_ref().map(|b| b.0.clone()).unwrap_or_default(),
                    s.body.as_ref().filter(|_| !has_ct).map(|b| b.1),
                ),
                expect: Expect::Code(s.expected_response_code),
                validate: s.validate.clone(),
            });
        }
        flows.push(Flow { name: t.name.clone(), share: t.weight / total, kind: FlowKind::Steps(calls) });
    }
    let measured = engine::run(flows, opts.settings()).await?;
    finish(measured, &format!("transactions {source}"), &target, opts, Some(file.sla), store).await
}

fn parse_method(m: &str) -> std::result::Result<Method, String> {
    let up = m.trim().to_ascii_uppercase();
    if transactions::METHODS.contains(&up.as_str()) {
        Method::from_bytes(up.as_bytes()).map_err(|e| e.to_string())
    } else {
        Err(format!("unknown method `{m}` (one of {})", transactions::METHODS.join(", ")))
    }
}

/// A request template: the path cut at its `{…}` holes, the base in front.
fn template(base: &str, method: &Method, path: &str, body_bytes: u64) -> std::result::Result<Template, String> {
    let mut pieces = Vec::new();
    let mut cur = if path.contains("://") {
        String::new()
    } else if path.starts_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    };
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        cur.push_str(&rest[..open]);
        pieces.push(std::mem::take(&mut cur));
        rest = &rest[open + close + 1..];
    }
    cur.push_str(rest);
    pieces.push(cur);
    let probe = pieces.join("1");
    probe.parse::<Uri>().map_err(|e| format!("{method} {path}: `{probe}` is not a valid URL: {e}"))?;
    Ok(Template { method: method.clone(), pieces, body: padded_body(body_bytes) })
}

/// A JSON object of exactly `n` bytes (`{"pad":"xxx…"}`, or `{}` and spaces when shorter than
/// that; one space for 1).
fn padded_body(n: u64) -> Bytes {
    let n = n.min(64 << 20) as usize;
    if n == 0 {
        return Bytes::new();
    }
    const FRAME: usize = r#"{"pad":""}"#.len();
    if n < FRAME {
        let mut b = if n >= 2 { b"{}".to_vec() } else { Vec::new() };
        b.resize(n, b' ');
        return Bytes::from(b);
    }
    let mut s = String::with_capacity(n);
    s.push_str(r#"{"pad":""#);
    s.extend(std::iter::repeat_n('x', n - FRAME));
    s.push_str(r#""}"#);
    Bytes::from(s)
}

// ---- the report ----

/// Latency percentiles in milliseconds (null without samples).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Percentiles {
    fn of(h: &Histogram) -> Self {
        let ms = |v: Option<f64>| v.map(|us| (us / 1000.0 * 1000.0).round() / 1000.0);
        Percentiles {
            p50: ms(h.quantile(0.5)),
            p90: ms(h.quantile(0.9)),
            p99: ms(h.quantile(0.99)),
            p999: ms(h.quantile(0.999)),
            max: ms((h.count > 0).then_some(h.max as f64)),
            mean: ms(h.mean()),
        }
    }
}

/// Failures by kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ErrorCounts {
    /// No connection (refused, unreachable, DNS, TLS).
    pub connect: u64,
    /// No response before the deadline.
    pub timeout: u64,
    /// Another status than expected.
    pub status: u64,
    /// A `validate` rule failed.
    pub validation: u64,
    /// The connection failed after it was made.
    pub io: u64,
}

impl ErrorCounts {
    fn from_array(a: &[u64; 5]) -> Self {
        ErrorCounts { connect: a[0], timeout: a[1], status: a[2], validation: a[3], io: a[4] }
    }
    fn total(&self) -> u64 {
        self.connect + self.timeout + self.status + self.validation + self.io
    }
}

/// One row of the results: a stream, a transaction, or a step of one.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `stream`, `transaction` or `step`.
    pub kind: String,
    pub name: String,
    /// The transaction of a step.
    pub transaction: Option<String>,
    /// A step's position in its transaction, from 1.
    pub step: Option<u32>,
    /// Arrivals per second offered to this stream or transaction.
    pub rate_rps: Option<f64>,
    /// Arrivals offered (streams, transactions) or requests sent (steps).
    pub count: u64,
    pub ok: u64,
    pub dropped: u64,
    pub errors: ErrorCounts,
    /// Responses by status class (`1xx` … `5xx`, `other`); none for transactions.
    pub status_classes: Option<BTreeMap<String, u64>>,
    /// Responses by status code; none for transactions.
    pub status_codes: Option<BTreeMap<u16, u64>>,
    /// The first message of each error kind seen.
    pub first_errors: BTreeMap<String, String>,
    /// From the intended time (streams, transactions, a transaction's first step) or from the
    /// step's start (later steps); responses only.
    pub latency_ms: Percentiles,
    /// Non-empty histogram buckets: (lowest µs, one past the highest µs, count).
    pub buckets: Vec<(u64, u64, u64)>,
}

/// The SLA and whether the run met it.
#[derive(Debug, Clone, Serialize)]
pub struct SlaVerdict {
    pub success_threshold: Option<f64>,
    pub error_budget: Option<u64>,
    /// Transactions offered.
    pub transactions: u64,
    pub succeeded: u64,
    /// Offered less succeeded (dropped arrivals included).
    pub failed: u64,
    pub success_ratio: f64,
    /// `error_budget` less `failed` (negative when overspent).
    pub budget_left: Option<i64>,
    pub met: bool,
}

/// What `omen load run` did, printed as the human summary or `--json`, and kept as
/// `summary.json` beside the Parquet.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub run_id: String,
    pub store: String,
    /// `transactions FILE` or the profile set's description.
    pub workload: String,
    pub target: String,
    pub started_at: String,
    pub rps: f64,
    pub stress: f64,
    /// Offered arrival rate: `rps` × `stress`.
    pub rate_rps: f64,
    pub duration_s: f64,
    pub timeout_s: f64,
    pub max_in_flight: u64,
    pub seed: u64,
    /// From the first intended arrival to the end of the run.
    pub elapsed_s: f64,
    /// Arrivals due during the run.
    pub offered: u64,
    /// Arrivals dispatched.
    pub sent: u64,
    /// Arrivals never sent (over `--max-in-flight`, or past their deadline).
    pub dropped: u64,
    /// Arrivals that succeeded.
    pub ok: u64,
    /// Arrivals that failed, by kind (dropped ones apart).
    pub errors: ErrorCounts,
    /// Arrivals answered (successfully or not) per second of `--duration`.
    pub achieved_rps: f64,
    /// HTTP responses received, every step counted.
    pub responses: u64,
    /// Latency of the arrivals answered, from their intended time.
    pub latency_ms: Percentiles,
    /// How late the scheduler dispatched arrivals (a generator that keeps up stays well under a
    /// millisecond).
    pub schedule_lag_ms: Percentiles,
    pub rows: Vec<Row>,
    /// Absent when the workload has no SLA.
    pub sla: Option<SlaVerdict>,
    /// SLA met (or, without one, at least one arrival succeeded): exit status 0.
    pub passed: bool,
    /// What went wrong, in words.
    pub messages: Vec<String>,
    /// Store paths written, relative to the root.
    pub outputs: Vec<String>,
}

async fn finish(m: Measured, workload: &str, target: &str, opts: &LoadOptions, sla: Option<Sla>, store: &Store) -> Result<LoadReport> {
    let mut report = build_report(&m, workload, target, opts, sla.filter(|s| s.success_threshold.is_some() || s.error_budget.is_some()));
    report.store = store.url().to_string();
    let dir = format!("synthetic_runs/run={}", report.run_id);
    let part = format!("{dir}/part-0.parquet");
    let mut df = rows_frame(&report, &m).map_err(Error::Polars)?;
    store.write_parquet(&part, &mut df).await?;
    let summary = format!("{dir}/summary.json");
    report.outputs = vec![part, summary.clone()];
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::input(&summary, e.to_string()))?;
    store.put(&summary, Bytes::from(json)).await?;
    tracing::info!(run = %report.run_id, offered = report.offered, ok = report.ok, passed = report.passed, "load run written");
    Ok(report)
}

fn run_id(m: &Measured, workload: &str, target: &str, seed: u64) -> String {
    let stamp = m.started.format("%Y%m%dT%H%M%SZ");
    let h = blake3::hash(
        format!("{}\0{}\0{workload}\0{target}\0{seed}", m.started.timestamp_nanos_opt().unwrap_or_default(), std::process::id())
            .as_bytes(),
    );
    format!("{stamp}-{}", &h.to_hex()[..6])
}

fn classes(a: &[u64; 6]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (i, n) in a.iter().enumerate() {
        let k = if i == 0 { "other".to_string() } else { format!("{i}xx") };
        out.insert(k, *n);
    }
    out
}

fn first_errors(a: &[Option<String>; 5]) -> BTreeMap<String, String> {
    ERROR_KINDS.iter().filter_map(|k| a[*k as usize].clone().map(|m| (k.as_str().to_string(), m))).collect()
}

fn build_report(m: &Measured, workload: &str, target: &str, opts: &LoadOptions, sla: Option<Sla>) -> LoadReport {
    let rate = opts.rps * opts.stress;
    let duration = opts.duration.as_secs_f64();
    let steps = m.flows.iter().any(|f| matches!(f.kind, FlowKind::Steps(_)));
    let mut rows = Vec::new();
    let mut total = FlowSnapshot::default();
    let mut latency = Histogram::default();
    let mut responses = 0;
    let mut flow_first: BTreeMap<ErrorKind, (u64, String)> = BTreeMap::new();
    for (f, s) in m.flows.iter().zip(&m.stats) {
        total.offered += s.offered;
        total.dropped += s.dropped;
        total.ok += s.ok;
        total.cancelled += s.cancelled;
        for (t, x) in total.failed.iter_mut().zip(&s.failed) {
            *t += x;
        }
        latency.merge(&s.latency);
        let mut fe = [None, None, None, None, None];
        for c in &s.calls {
            responses += c.classes.iter().sum::<u64>();
            for k in ERROR_KINDS {
                if fe[k as usize].is_none() {
                    fe[k as usize] = c.first_error[k as usize].clone();
                }
            }
        }
        if s.cancelled > 0 && fe[ErrorKind::Timeout as usize].is_none() {
            fe[ErrorKind::Timeout as usize] = Some("still running at the run's deadline (--duration + --timeout): cancelled".into());
        }
        for k in ERROR_KINDS {
            if let Some(msg) = &fe[k as usize] {
                flow_first.entry(k).or_insert((0, msg.clone()));
            }
        }
        let flow_row = |kind: &str| Row {
            kind: kind.into(),
            name: f.name.clone(),
            transaction: None,
            step: None,
            rate_rps: Some(rate * f.share),
            count: s.offered,
            ok: s.ok,
            dropped: s.dropped,
            errors: ErrorCounts::from_array(&s.failed),
            status_classes: None,
            status_codes: None,
            first_errors: first_errors(&fe),
            latency_ms: Percentiles::of(&s.latency),
            buckets: s.latency.nonzero(),
        };
        match &f.kind {
            FlowKind::Requests { .. } => {
                let c = &s.calls[0];
                let mut r = flow_row("stream");
                r.status_classes = Some(classes(&c.classes));
                r.status_codes = Some(c.codes.iter().copied().collect());
                rows.push(r);
            }
            FlowKind::Steps(calls) => {
                rows.push(flow_row("transaction"));
                for (k, (call, c)) in calls.iter().zip(&s.calls).enumerate() {
                    rows.push(Row {
                        kind: "step".into(),
                        name: call.name.clone(),
                        transaction: Some(f.name.clone()),
                        step: Some(k as u32 + 1),
                        rate_rps: None,
                        count: c.sent,
                        ok: c.ok,
                        dropped: 0,
                        errors: ErrorCounts::from_array(&c.errors),
                        status_classes: Some(classes(&c.classes)),
                        status_codes: Some(c.codes.iter().copied().collect()),
                        first_errors: first_errors(&c.first_error),
                        latency_ms: Percentiles::of(&c.latency),
                        buckets: c.latency.nonzero(),
                    });
                }
            }
        }
    }
    let errors = ErrorCounts::from_array(&total.failed);
    let what = if steps { "transactions" } else { "requests" };
    let mut messages = Vec::new();
    for k in ERROR_KINDS {
        let n = total.failed[k as usize];
        if n == 0 {
            continue;
        }
        let example = flow_first.get(&k).map(|(_, m)| m.as_str()).unwrap_or("");
        let hint = match k {
            ErrorKind::Connect => " (is the target up and listening?)",
            ErrorKind::Timeout => " (the target answers slowly or not at all)",
            _ => "",
        };
        messages.push(format!("{n} {what} failed with {} errors{hint}, e.g. {example}", k.as_str()));
    }
    if total.dropped > 0 {
        messages.push(format!(
            "{} arrivals dropped: {} already in flight (--max-in-flight) or past their deadline before they could be sent",
            total.dropped, opts.max_in_flight
        ));
    }
    let verdict = sla.map(|sla| {
        let failed = total.offered - total.ok.min(total.offered);
        let ratio = if total.offered == 0 { 1.0 } else { total.ok as f64 / total.offered as f64 };
        let budget_left = sla.error_budget.map(|b| b as i64 - failed as i64);
        let met = sla.success_threshold.is_none_or(|t| ratio >= t) && budget_left.is_none_or(|l| l >= 0);
        SlaVerdict {
            success_threshold: sla.success_threshold,
            error_budget: sla.error_budget,
            transactions: total.offered,
            succeeded: total.ok,
            failed,
            success_ratio: ratio,
            budget_left,
            met,
        }
    });
    let passed = match &verdict {
        Some(v) => v.met,
        None => total.ok > 0 || total.offered == 0,
    };
    match &verdict {
        Some(v) if !v.met => {
            let mut why = Vec::new();
            if let Some(t) = v.success_threshold.filter(|t| v.success_ratio < *t) {
                why.push(format!("{:.2} % of the transactions succeeded, below the threshold {:.2} %", v.success_ratio * 100.0, t * 100.0));
            }
            if let (Some(b), Some(l)) = (v.error_budget, v.budget_left.filter(|l| *l < 0)) {
                why.push(format!("{} failed, over the error budget of {b} by {}", v.failed, -l));
            }
            messages.push(format!("SLA not met: {}", why.join("; ")));
        }
        None if !passed => messages.push(format!("no {what} succeeded")),
        _ => {}
    }
    let answered = latency.count;
    let id = run_id(m, workload, target, opts.seed);
    LoadReport {
        run_id: id,
        store: String::new(),
        workload: workload.to_string(),
        target: target.to_string(),
        started_at: m.started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        rps: opts.rps,
        stress: opts.stress,
        rate_rps: rate,
        duration_s: duration,
        timeout_s: opts.timeout.as_secs_f64(),
        max_in_flight: opts.max_in_flight,
        seed: opts.seed,
        elapsed_s: m.elapsed.as_secs_f64(),
        offered: total.offered,
        sent: total.offered - total.dropped,
        dropped: total.dropped,
        ok: total.ok,
        errors,
        achieved_rps: answered as f64 / duration,
        responses,
        latency_ms: Percentiles::of(&latency),
        schedule_lag_ms: Percentiles::of(&m.lag),
        rows,
        sla: verdict,
        passed,
        messages,
        outputs: Vec::new(),
    }
}

/// One Parquet row per report row.
fn rows_frame(r: &LoadReport, m: &Measured) -> PolarsResult<DataFrame> {
    let n = r.rows.len();
    let rows = &r.rows;
    let u = |f: &dyn Fn(&Row) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
    let class = |k: &'static str| rows.iter().map(|x| x.status_classes.as_ref().map(|c| c[k])).collect::<Vec<Option<u64>>>();
    let pct = |f: &dyn Fn(&Percentiles) -> Option<f64>| rows.iter().map(|x| f(&x.latency_ms)).collect::<Vec<Option<f64>>>();
    let started_us = m.started.timestamp_micros();
    let lists = |pick: &dyn Fn(&(u64, u64, u64)) -> u64, name: &str| -> Vec<Series> {
        rows.iter().map(|x| Series::new(name.into(), x.buckets.iter().map(pick).collect::<Vec<u64>>())).collect()
    };
    let columns = vec![
        Column::new("run_id".into(), vec![r.run_id.clone(); n]),
        Column::new("started_at".into(), vec![started_us; n])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))?,
        Column::new("target".into(), vec![r.target.clone(); n]),
        Column::new("workload".into(), vec![r.workload.clone(); n]),
        Column::new("kind".into(), rows.iter().map(|x| x.kind.clone()).collect::<Vec<_>>()),
        Column::new("name".into(), rows.iter().map(|x| x.name.clone()).collect::<Vec<_>>()),
        Column::new("transaction".into(), rows.iter().map(|x| x.transaction.clone()).collect::<Vec<_>>()),
        Column::new("step".into(), rows.iter().map(|x| x.step).collect::<Vec<_>>()),
        Column::new("rate_rps".into(), rows.iter().map(|x| x.rate_rps).collect::<Vec<_>>()),
        Column::new("duration_s".into(), vec![r.duration_s; n]),
        Column::new("count".into(), u(&|x| x.count)),
        Column::new("ok".into(), u(&|x| x.ok)),
        Column::new("dropped".into(), u(&|x| x.dropped)),
        Column::new("error_connect".into(), u(&|x| x.errors.connect)),
        Column::new("error_timeout".into(), u(&|x| x.errors.timeout)),
        Column::new("error_status".into(), u(&|x| x.errors.status)),
        Column::new("error_validation".into(), u(&|x| x.errors.validation)),
        Column::new("error_io".into(), u(&|x| x.errors.io)),
        Column::new("status_1xx".into(), class("1xx")),
        Column::new("status_2xx".into(), class("2xx")),
        Column::new("status_3xx".into(), class("3xx")),
        Column::new("status_4xx".into(), class("4xx")),
        Column::new("status_5xx".into(), class("5xx")),
        Column::new("status_other".into(), class("other")),
        Column::new(
            "status_codes".into(),
            rows.iter()
                .map(|x| x.status_codes.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()))
                .collect::<Vec<_>>(),
        ),
        Column::new("p50_ms".into(), pct(&|p| p.p50)),
        Column::new("p90_ms".into(), pct(&|p| p.p90)),
        Column::new("p99_ms".into(), pct(&|p| p.p99)),
        Column::new("p999_ms".into(), pct(&|p| p.p999)),
        Column::new("max_ms".into(), pct(&|p| p.max)),
        Column::new("mean_ms".into(), pct(&|p| p.mean)),
        Series::new("bucket_lower_us".into(), lists(&|b| b.0, "bucket_lower_us")).into(),
        Series::new("bucket_count".into(), lists(&|b| b.2, "bucket_count")).into(),
    ];
    DataFrame::new(n, columns)
}

impl LoadReport {
    /// The human summary.
    pub fn human(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
        let mut s = format!(
            "load run {} against {} ({}): {} arrivals offered at {:.1}/s for {:.1}s; {} ok, {} failed, {} dropped; achieved {:.1}/s\n",
            self.run_id,
            self.target,
            self.workload,
            self.offered,
            self.rate_rps,
            self.duration_s,
            self.ok,
            self.errors.total(),
            self.dropped,
            self.achieved_rps
        );
        s.push_str(&format!(
            "  {:<40} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "latency ms", "count", "ok", "failed", "p50", "p90", "p99", "p99.9", "max"
        ));
        for r in &self.rows {
            let name = match r.kind.as_str() {
                "step" => format!("    {}. {}", r.step.unwrap_or(0), r.name),
                _ => format!("{} {}", r.kind, r.name),
            };
            let l = &r.latency_ms;
            s.push_str(&format!(
                "  {:<40} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                name,
                r.count,
                r.ok,
                r.errors.total() + r.dropped,
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.p999),
                f(l.max)
            ));
        }
        s.push_str(&format!(
            "  scheduler lag ms: p50 {} p99 {} max {}\n",
            f(self.schedule_lag_ms.p50),
            f(self.schedule_lag_ms.p99),
            f(self.schedule_lag_ms.max)
        ));
        if let Some(v) = &self.sla {
            let threshold = v.success_threshold.map_or_else(String::new, |t| format!(", threshold {:.2} %", t * 100.0));
            let budget = match (v.error_budget, v.budget_left) {
                (Some(b), Some(l)) => format!(", error budget {b} ({l} left)"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "  SLA {}: {:.2} % of {} transactions succeeded{threshold}{budget}\n",
                if v.met { "met" } else { "NOT met" },
                v.success_ratio * 100.0,
                v.transactions
            ));
        }
        for m in &self.messages {
            s.push_str(&format!("  {m}\n"));
        }
        if let Some(dir) = self.outputs.first().and_then(|p| p.rsplit_once('/')).map(|(d, _)| d) {
            s.push_str(&format!("  results: {}/{dir}/\n", self.store));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workload of two streams against a small server: shares, weights, placeholders.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workload_replays_its_streams() {
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}", l.local_addr().unwrap());
        let seen = paths.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let len = head
                                .lines()
                                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                                .unwrap_or(0);
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            buf.drain(..end + 4 + len);
                            let line = head.lines().next().unwrap_or("").to_string();
                            seen.lock().unwrap().push(line.clone());
                            let status = if line.contains("/missing") { "404 Not Found" } else { "200 OK" };
                            let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}");
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        let spec = |method: &str, path: &str, body_bytes, weight| RequestSpec { method: method.into(), path: path.into(), body_bytes, weight };
        let workload = Workload {
            streams: vec![
                Stream {
                    name: "browsers".into(),
                    share: 3.0,
                    requests: vec![spec("GET", "/users/{id}/orders/{n}", 0, 1.0), spec("POST", "/cart", 40, 0.0)],
                },
                Stream { name: "bots".into(), share: 1.0, requests: vec![spec("get", "/missing", 0, 0.0)] },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let opts = LoadOptions { rps: 200.0, duration: Duration::from_secs(1), threads: 2, ..LoadOptions::default() };
        let r = run_workload(&workload, &target, &opts, &store).await.unwrap();
        assert_eq!((r.offered, r.dropped), (200, 0));
        let (browsers, bots) = (&r.rows[0], &r.rows[1]);
        assert_eq!((browsers.kind.as_str(), browsers.name.as_str(), browsers.count, browsers.ok), ("stream", "browsers", 150, 150));
        assert_eq!((bots.count, bots.ok, bots.errors.status), (50, 0, 50));
        assert_eq!(bots.status_codes.as_ref().unwrap()[&404], 50);
        assert!(r.passed, "some arrivals succeeded and there is no SLA");
        let paths = paths.lock().unwrap();
        assert_eq!(paths.len(), 200);
        // The weight-0 request of a stream with weights is never chosen; placeholders are digits.
        assert!(paths.iter().all(|p| !p.starts_with("POST")), "{paths:?}");
        let re = regex::Regex::new(r"^GET /users/[1-9][0-9]*/orders/[1-9][0-9]* HTTP/1.1$").unwrap();
        assert_eq!(paths.iter().filter(|p| re.is_match(p)).count(), 150, "{paths:?}");
        // The results are in the store.
        let df = store.read_parquet(&r.outputs[0]).await.unwrap().unwrap();
        assert_eq!(df.height(), 2);
        assert!(store.get(&r.outputs[1]).await.unwrap().is_some());
    }

    /// The schema example of the module documentation is a valid file.
    #[test]
    fn the_documented_example_parses() {
        let src = include_str!("load.rs");
        let start = src.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let yaml: String = src[start..end].lines().map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n").collect();
        let f = transactions::parse("doc", &yaml).unwrap();
        assert_eq!(f.transactions[0].steps[0].validate.len(), 5);
        assert_eq!(f.sla, Sla { success_threshold: Some(0.99), error_budget: Some(10) });
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn options_name_the_flag() {
        let bad = LoadOptions { rps: 0.0, ..LoadOptions::default() };
        assert!(bad.check().unwrap_err().to_string().starts_with("--rps:"));
        let bad = LoadOptions { duration: Duration::ZERO, ..LoadOptions::default() };
        assert!(bad.check().unwrap_err().to_string().starts_with("--duration:"));
        assert!(LoadOptions::default().check().is_ok());
    }

    #[test]
    fn templates_and_bodies() {
        let t = template("http://h:1/api", &Method::GET, "/users/{id}/orders/{n}", 0).unwrap();
        assert_eq!(t.pieces, vec!["http://h:1/api/users/", "/orders/", ""]);
        let t = template("http://h:1", &Method::GET, "https://x.example/a", 0).unwrap();
        assert_eq!(t.pieces, vec!["https://x.example/a"]);
        assert!(template("http://h:1", &Method::GET, "/a b", 0).is_err());
        for n in [0u64, 3, 10, 11, 100] {
            let b = padded_body(n);
            assert_eq!(b.len() as u64, n);
            if n >= 2 {
                serde_json::from_slice::<serde_json::Value>(&b).unwrap();
            }
        }
    }
}
