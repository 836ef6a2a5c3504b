//! `omen simulate`: a deployment history of N services over D days, written in the input formats
//! omen ingests, with the truth beside it.
//!
//! Under `--out DIR`:
//!
//! | path | what |
//! |---|---|
//! | `repos/<service>.git` (or `.bundle`) | the service's git history (`git fast-import`, fixed dates) |
//! | `logs/<service>/access-YYYY-MM.log.gz` | sampled access log, `combined` + request time |
//! | `metrics/<service>-YYYY-MM.json.gz` | Prometheus `query_range` responses, one per deployment and metric |
//! | `deployments.jsonl` | every deployment (DESIGN §1 columns, steps to 100 %) and its truth: `failure_mode`, `p_failure`, `bait`, `change`, `effect` |
//! | `omen.toml` | the sources, `[features]` and `[serve]` that match what was written |
//! | `simulation.json` | the command that reproduces the run, per-service parameters, totals |
//!
//! Every service draws from its own generators (`rng::Rng::stream(seed, [service, stream])`)
//! and writes only its own files, so services are generated in parallel (rayon) and the output
//! is byte-identical for a seed whatever the thread count. `docs/simulator.md` documents every
//! distribution and parameter.

pub mod logs;
pub mod metrics;
pub mod repo;
pub mod rng;
pub mod schedule;
pub mod traffic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use rng::Rng;
use schedule::{Bait, Deployment, FailureMode};
use traffic::{Traffic, US_PER_DAY, US_PER_S};

/// How the repositories are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoFormat {
    /// A bare repository folder per service (fast; what a large run wants).
    Bare,
    /// A `git bundle` file per service (one small file; what the committed samples use).
    Bundle,
}

/// `omen simulate`'s parameters, unchecked.
#[derive(Debug, Clone)]
pub struct SimulateParams {
    pub out: PathBuf,
    pub services: usize,
    pub days: u32,
    pub seed: u64,
    /// First simulated day, `YYYY-MM-DD` (UTC midnight).
    pub start: String,
    /// Mean deployments per service and working day.
    pub deploys_per_day: f64,
    /// Mean access-log lines per service and day (the log is a sample of the modelled traffic).
    pub log_lines_per_day: f64,
    /// Metric resolution (`query_range` step): "60s", "30s", "1m".
    pub metrics_step: String,
    pub repos: RepoFormat,
    /// Days of git history before the first deployment (authors' experience, files' ages).
    pub history_days: u32,
}

impl Default for SimulateParams {
    fn default() -> Self {
        SimulateParams {
            out: PathBuf::from("simulated"),
            services: 10,
            days: 30,
            seed: 1,
            start: "2026-01-05".into(),
            deploys_per_day: 1.0,
            log_lines_per_day: 200.0,
            metrics_step: "60s".into(),
            repos: RepoFormat::Bare,
            history_days: 60,
        }
    }
}

/// [`SimulateParams`] that passed [`SimulateParams::check`].
#[derive(Debug, Clone)]
pub struct ValidSimulateParams {
    p: SimulateParams,
    start_us: i64,
    end_us: i64,
    step_s: i64,
}

fn bad(field: &str, message: impl Into<String>) -> Error {
    Error::input(format!("--{field}"), message)
}

impl SimulateParams {
    /// Validates every parameter, naming the first one at fault.
    pub fn check(self) -> Result<ValidSimulateParams> {
        if !(1..=10_000).contains(&self.services) {
            return Err(bad("services", format!("{} is not in 1..=10000", self.services)));
        }
        if !(1..=3660).contains(&self.days) {
            return Err(bad("days", format!("{} is not in 1..=3660", self.days)));
        }
        let start_us = parse_start(&self.start).map_err(|m| bad("start", m))?;
        if !(self.deploys_per_day > 0.0 && self.deploys_per_day <= 20.0) {
            return Err(bad("deploys-per-day", format!("{} is not in (0, 20]", self.deploys_per_day)));
        }
        if !(self.log_lines_per_day >= 0.0 && self.log_lines_per_day <= 10_000_000.0) {
            return Err(bad("log-lines-per-day", format!("{} is not in [0, 10000000]", self.log_lines_per_day)));
        }
        let step_s = parse_step(&self.metrics_step).map_err(|m| bad("metrics-step", m))?;
        if !(1..=3660).contains(&self.history_days) {
            return Err(bad("history-days", format!("{} is not in 1..=3660", self.history_days)));
        }
        if self.out.exists() {
            let empty = std::fs::read_dir(&self.out).map(|mut d| d.next().is_none()).unwrap_or(false);
            if !empty {
                return Err(Error::input(self.out.display().to_string(), "exists and is not an empty folder; omen simulate writes a new one"));
            }
        }
        let end_us = start_us + i64::from(self.days) * US_PER_DAY;
        Ok(ValidSimulateParams { start_us, end_us, step_s, p: self })
    }
}

/// A first day `YYYY-MM-DD`, as µs since the epoch (UTC midnight).
pub fn parse_start(s: &str) -> std::result::Result<i64, String> {
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("`{s}` is not a date YYYY-MM-DD: {e}"))?;
    date.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp_micros()).ok_or_else(|| format!("`{s}` is out of range"))
}

/// A metric step: whole seconds from 5 s to 10 min.
pub fn parse_step(s: &str) -> std::result::Result<i64, String> {
    let us = omen_features::feature::parse_duration(s)?;
    if us % US_PER_S != 0 || !(5..=600).contains(&(us / US_PER_S)) {
        return Err(format!("`{s}` must be whole seconds from 5s to 10m"));
    }
    Ok(us / US_PER_S)
}

impl ValidSimulateParams {
    /// The command line that reproduces this run.
    pub fn command(&self, out: &str) -> String {
        let p = &self.p;
        format!(
            "omen simulate --out {out} --services {} --days {} --seed {} --start {} --deploys-per-day {} --log-lines-per-day {} --metrics-step {} --history-days {} --repos {}",
            p.services,
            p.days,
            p.seed,
            p.start,
            p.deploys_per_day,
            p.log_lines_per_day,
            p.metrics_step,
            p.history_days,
            match p.repos {
                RepoFormat::Bare => "bare",
                RepoFormat::Bundle => "bundle",
            }
        )
    }
}

/// What `omen simulate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateSummary {
    pub out: String,
    pub command: String,
    pub seed: u64,
    pub services: usize,
    pub days: u32,
    pub start: String,
    pub end: String,
    pub deployments: usize,
    pub failed: usize,
    pub failures_by_mode: BTreeMap<String, usize>,
    pub bait: BTreeMap<String, usize>,
    /// Failure rate in each fifth of the deployments ordered by their true failure probability.
    pub failure_rate_by_risk_quintile: Vec<f64>,
    pub commits: usize,
    pub log_lines: u64,
    /// Lines planted that are not access-log lines: the only rejects an ingest should report.
    pub planted_log_rejects: u64,
    pub log_probes: u64,
    pub metric_samples: u64,
    /// Bytes written (not in `simulation.json`: bundles and gzip streams may differ by version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    pub files: Vec<String>,
    pub per_service: Vec<ServiceSummary>,
    /// Wall time of the run (not in `simulation.json`, which must not vary between runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// One service of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSummary {
    pub service: String,
    pub language: String,
    pub authors: usize,
    pub commits: usize,
    pub deployments: usize,
    pub failed: usize,
    pub deploys_per_working_day: f64,
    pub commits_per_working_day: f64,
    pub fragility: f64,
    pub peak_rps: f64,
    /// Logged lines per request of the modelled traffic.
    pub log_sample_fraction: f64,
    pub log_lines: u64,
    pub log_tz: String,
    pub profile_mix: BTreeMap<String, f64>,
    pub metrics: metrics::ServiceMetrics,
}

impl SimulateSummary {
    pub fn human(&self) -> String {
        let mut s = format!(
            "simulated {} services × {} days ({} to {}) into {}\n  {} deployments, {} would fail if promoted ({})\n  risk quintiles' failure rates: {}\n  {} commits, {} log lines ({} planted rejects, {} probes), {} metric samples, {:.1} MB\n",
            self.services,
            self.days,
            self.start,
            self.end,
            self.out,
            self.deployments,
            self.failed,
            self.failures_by_mode.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            self.failure_rate_by_risk_quintile.iter().map(|r| format!("{:.1} %", 100.0 * r)).collect::<Vec<_>>().join(" "),
            self.commits,
            self.log_lines,
            self.planted_log_rejects,
            self.log_probes,
            self.metric_samples,
            self.bytes_written.unwrap_or(0) as f64 / 1e6,
        );
        if let Some(t) = self.seconds {
            s.push_str(&format!("  in {t:.1}s\n"));
        }
        s.push_str(&format!("Next: omen quickstart --config {}/omen.toml --store <store>\n", self.out));
        s
    }
}

const NAMES: &[&str] = &[
    "checkout", "search", "payments", "catalog", "cart", "accounts", "inventory", "shipping", "pricing", "reviews",
    "recommendations", "notifications", "auth", "orders", "billing", "gateway", "media", "profile", "wishlist",
    "loyalty", "fraud", "tax", "returns", "support", "analytics", "ads", "sessions", "email", "sms", "feeds",
    "promotions", "coupons", "stores", "delivery", "tracking", "ratings", "images", "uploads", "reports", "exports",
    "ledger", "invoices", "subscriptions", "geo", "currency", "translations", "audit", "scheduler", "webhooks",
    "identity",
];

/// The services' names: a fixed list, then numbered.
pub fn service_names(n: usize) -> Vec<String> {
    (0..n).map(|i| if i < NAMES.len() { NAMES[i].to_string() } else { format!("{}-{}", NAMES[i % NAMES.len()], i / NAMES.len() + 1) }).collect()
}

/// Runs the simulation.
pub fn simulate(params: &ValidSimulateParams) -> Result<SimulateSummary> {
    let t0 = Instant::now();
    let p = &params.p;
    let out = &p.out;
    for d in ["", "repos", "logs", "metrics"] {
        let dir = out.join(d);
        std::fs::create_dir_all(&dir).map_err(|e| Error::input(dir.display().to_string(), e.to_string()))?;
    }
    let names = service_names(p.services);
    let results: Vec<ServiceOutput> =
        names.par_iter().map(|name| simulate_service(params, name)).collect::<Result<Vec<_>>>()?;

    // deployments.jsonl: all services, by start.
    let mut records: Vec<(i64, &str, String)> = Vec::new();
    for r in &results {
        for (d, line) in r.deployments.iter().zip(&r.lines) {
            records.push((d.start, r.summary.service.as_str(), line.clone()));
        }
    }
    records.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let mut jsonl = Vec::new();
    for (_, _, l) in &records {
        jsonl.extend_from_slice(l.as_bytes());
        jsonl.push(b'\n');
    }
    write_file(&out.join("deployments.jsonl"), &jsonl)?;
    let toml = omen_toml(params, &names);
    write_file(&out.join("omen.toml"), toml.as_bytes())?;

    let all: Vec<&Deployment> = results.iter().flat_map(|r| r.deployments.iter()).collect();
    let mut failures_by_mode = BTreeMap::new();
    let mut bait = BTreeMap::new();
    for m in FailureMode::FAILING {
        failures_by_mode.insert(m.as_str().to_string(), 0);
    }
    for b in [Bait::Noisy, Bait::NodataGap, Bait::MissingMetric] {
        bait.insert(b.as_str().to_string(), 0);
    }
    for d in &all {
        if d.mode != FailureMode::None {
            *failures_by_mode.entry(d.mode.as_str().to_string()).or_default() += 1;
        }
        if d.bait != Bait::None {
            *bait.entry(d.bait.as_str().to_string()).or_default() += 1;
        }
    }
    let mut by_risk: Vec<(f64, bool)> = all.iter().map(|d| (d.p_failure, d.mode != FailureMode::None)).collect();
    by_risk.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quintiles = (0..5)
        .map(|q| {
            let part = &by_risk[by_risk.len() * q / 5..by_risk.len() * (q + 1) / 5];
            if part.is_empty() { 0.0 } else { part.iter().filter(|x| x.1).count() as f64 / part.len() as f64 }
        })
        .collect();
    let mut files: Vec<String> = vec!["deployments.jsonl".into(), "omen.toml".into(), "simulation.json".into()];
    files.extend(results.iter().flat_map(|r| r.files.iter().cloned()));
    files.sort();
    let fmt_day = |us: i64| chrono::DateTime::from_timestamp_micros(us).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let mut summary = SimulateSummary {
        out: out.display().to_string(),
        command: params.command("DIR"),
        seed: p.seed,
        services: p.services,
        days: p.days,
        start: fmt_day(params.start_us),
        end: fmt_day(params.end_us),
        deployments: all.len(),
        failed: all.iter().filter(|d| d.mode != FailureMode::None).count(),
        failures_by_mode,
        bait,
        failure_rate_by_risk_quintile: quintiles,
        commits: results.iter().map(|r| r.summary.commits).sum(),
        log_lines: results.iter().map(|r| r.log.lines).sum(),
        planted_log_rejects: results.iter().map(|r| r.log.planted_rejects).sum(),
        log_probes: results.iter().map(|r| r.log.probes).sum(),
        metric_samples: results.iter().map(|r| r.samples).sum(),
        bytes_written: None,
        files,
        per_service: results.iter().map(|r| r.summary.clone()).collect(),
        seconds: None,
    };
    // simulation.json holds no path and no time: the same parameters give the same bytes.
    let mut recorded = summary.clone();
    recorded.out = String::new();
    let json = serde_json::to_vec_pretty(&recorded).map_err(|e| Error::input("simulation.json", e.to_string()))?;
    write_file(&out.join("simulation.json"), &json)?;
    let written = results.iter().map(|r| r.bytes).sum::<u64>() + (jsonl.len() + toml.len() + json.len()) as u64;
    summary.bytes_written = Some(written);
    summary.seconds = Some(t0.elapsed().as_secs_f64());
    Ok(summary)
}

/// What one service's simulation produced.
struct ServiceOutput {
    summary: ServiceSummary,
    deployments: Vec<Deployment>,
    /// The deployments.jsonl line of each deployment.
    lines: Vec<String>,
    log: logs::LogCounts,
    samples: u64,
    bytes: u64,
    files: Vec<String>,
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::input(path.display().to_string(), e.to_string()))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // flate2's default header has no name and a zero mtime: the same bytes every run.
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::new(6));
    e.write_all(bytes).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

fn month_key(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.format("%Y-%m").to_string()).unwrap_or_default()
}

/// Start of the UTC month after the one holding `us`.
fn next_month(us: i64) -> i64 {
    use chrono::Datelike;
    let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().date_naive();
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_micros())
        .unwrap_or(i64::MAX)
}

const TZ_MINUTES: [i64; 5] = [0, 60, -300, 330, -480];

fn simulate_service(params: &ValidSimulateParams, name: &str) -> Result<ServiceOutput> {
    let p = &params.p;
    let seed = p.seed;
    let mut setup = Rng::stream(seed, &[name, "service"]);
    let traffic = Traffic::draw(&mut setup, rng::derive(seed, &[name, "traffic-noise"]), params.start_us);
    let sm = metrics::ServiceMetrics::draw(&mut setup);
    let deploys_per_day = p.deploys_per_day * setup.lognormal(-0.06, 0.35);
    // Teams that deploy more often ship smaller ranges.
    let commits_per_day = deploys_per_day.powf(0.6) * setup.uniform(1.5, 4.5);
    let fragility = 0.35 * setup.normal();
    let mut mix = [0.0; 5];
    for m in &mut mix {
        *m = setup.exponential(1.0); // Dirichlet(1, …, 1)
    }
    let total: f64 = mix.iter().sum();
    mix.iter_mut().for_each(|m| *m /= total);
    let tz_minutes = TZ_MINUTES[setup.below(TZ_MINUTES.len() as u64) as usize];
    // The log's sampling fraction: `log_lines_per_day` on the first weekday's traffic.
    let reference = traffic.day_mean(params.start_us) * 86_400.0;
    let sample = if reference > 0.0 { p.log_lines_per_day / reference } else { 0.0 };
    let log_plan = logs::LogPlan {
        mix,
        tz_minutes,
        sample,
        latency_scale: sm.p50_s / 0.04,
        client_key: rng::derive(seed, &[name, "clients"]),
    };

    // The repository, with history before the first deployment.
    let history_start = params.start_us - i64::from(p.history_days) * US_PER_DAY;
    let plan = repo::RepoPlan { history_start, end: params.end_us, commits_per_day, domain: "example.com".into() };
    let mut repo = repo::generate(&mut Rng::stream(seed, &[name, "git"]), &plan, name);
    let mut files = Vec::new();
    let mut bytes = 0u64;
    match p.repos {
        RepoFormat::Bare => {
            let rel = format!("repos/{name}.git");
            repo.write_bare(&p.out.join(&rel))?;
            bytes += dir_size(&p.out.join(&rel));
            files.push(rel);
        }
        RepoFormat::Bundle => {
            let rel = format!("repos/{name}.bundle");
            let tmp = p.out.join(format!("repos/.{name}.tmp.git"));
            repo.write_bundle(&p.out.join(&rel), &tmp)?;
            bytes += std::fs::metadata(p.out.join(&rel)).map(|m| m.len()).unwrap_or(0);
            files.push(rel);
        }
    }

    // Deployments and their metrics, one file per month of starts.
    let sched = schedule::SchedulePlan { start: params.start_us, end: params.end_us, per_day: deploys_per_day, fragility };
    let deployments = schedule::deployments(&mut Rng::stream(seed, &[name, "deploy"]), &sched, name, &repo.commits);
    let mut samples = 0u64;
    let mut by_month: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for d in &deployments {
        let buf = by_month.entry(month_key(d.start)).or_default();
        let mut r = Rng::stream(seed, &[name, "metrics", &d.id]);
        samples += metrics::write_deployment(&mut r, buf, name, d, &sm, &traffic, params.step_s);
    }
    for (month, buf) in &by_month {
        let rel = format!("metrics/{name}-{month}.json.gz");
        let gz = gzip(buf);
        bytes += gz.len() as u64;
        write_file(&p.out.join(&rel), &gz)?;
        files.push(rel);
    }

    // Access logs, one file per month.
    let mut log = logs::LogCounts::default();
    let log_dir = p.out.join("logs").join(name);
    std::fs::create_dir_all(&log_dir).map_err(|e| Error::input(log_dir.display().to_string(), e.to_string()))?;
    let mut from = params.start_us;
    while from < params.end_us && p.log_lines_per_day > 0.0 {
        let to = next_month(from).min(params.end_us);
        let month = month_key(from);
        let mut r = Rng::stream(seed, &[name, "logs", &month]);
        let expected = p.log_lines_per_day * ((to - from) / US_PER_DAY).max(1) as f64;
        let plant_at = r.below((expected * 0.5) as u64 + 1);
        let mut buf = Vec::new();
        let c = logs::write_period(&mut r, &log_plan, &traffic, from, to, Some(plant_at), &mut buf);
        log.lines += c.lines;
        log.planted_rejects += c.planted_rejects;
        log.probes += c.probes;
        let rel = format!("logs/{name}/access-{month}.log.gz");
        let gz = gzip(&buf);
        bytes += gz.len() as u64;
        write_file(&p.out.join(&rel), &gz)?;
        files.push(rel);
        from = to;
    }

    let lines: Vec<String> = deployments.iter().map(|d| record(name, d, &repo.commits)).collect::<Result<_>>()?;
    let summary = ServiceSummary {
        service: name.to_string(),
        language: repo.language.name().to_string(),
        authors: repo.authors.len(),
        commits: repo.commits.len(),
        deployments: deployments.len(),
        failed: deployments.iter().filter(|d| d.mode != FailureMode::None).count(),
        deploys_per_working_day: round4(deploys_per_day),
        commits_per_working_day: round4(commits_per_day),
        fragility: round4(fragility),
        peak_rps: round4(traffic.peak_rps),
        log_sample_fraction: round4(sample * 1e4) / 1e4,
        log_lines: log.lines,
        log_tz: format!("{}{:02}{:02}", if tz_minutes < 0 { '-' } else { '+' }, tz_minutes.abs() / 60, tz_minutes.abs() % 60),
        profile_mix: logs::PROFILES.iter().zip(mix).map(|(p, m)| (p.name.to_string(), round4(m))).collect(),
        metrics: sm,
    };
    Ok(ServiceOutput { summary, deployments, lines, log, samples, bytes, files })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// One line of deployments.jsonl: DESIGN §1's columns, then the truth.
fn record(service: &str, d: &Deployment, commits: &[repo::CommitInfo]) -> Result<String> {
    #[derive(Serialize)]
    struct Step {
        at: String,
        weight: f64,
    }
    #[derive(Serialize)]
    struct Record<'a> {
        deployment_id: &'a str,
        service: &'a str,
        version: &'a str,
        from_sha: &'a str,
        to_sha: &'a str,
        started_at: String,
        ended_at: String,
        outcome: &'a str,
        steps: Vec<Step>,
        failure_mode: &'a str,
        p_failure: f64,
        bait: &'a str,
        change: &'a schedule::Change,
        effect: &'a schedule::Effect,
        bait_detail: &'a schedule::BaitDetail,
    }
    let r = Record {
        deployment_id: &d.id,
        service,
        version: &d.version,
        from_sha: &commits[d.from_commit].sha,
        to_sha: &commits[d.to_commit].sha,
        started_at: rfc3339(d.start),
        ended_at: rfc3339(d.end),
        outcome: if d.mode == FailureMode::None { "success" } else { "failed" },
        steps: d.steps.iter().map(|(at, w)| Step { at: rfc3339(*at), weight: *w }).collect(),
        failure_mode: d.mode.as_str(),
        p_failure: round4(d.p_failure),
        bait: d.bait.as_str(),
        change: &d.change,
        effect: &d.effect,
        bait_detail: &d.bait_detail,
    };
    serde_json::to_string(&r).map_err(|e| Error::input("deployments.jsonl", e.to_string()))
}

/// The omen.toml of a run.
fn omen_toml(params: &ValidSimulateParams, names: &[String]) -> String {
    let p = &params.p;
    let mut s = format!(
        r#"# Written by `{}`.
# Relative paths are relative to this file. No `store`: give --store (or OMEN_STORE), else ./omen-data.
#   omen quickstart --config omen.toml --store <store>

[ingest.logs]
format = "combined"        # combined with a trailing $request_time (seconds)

[ingest.metrics]
service_labels = ["service"]
deployment_labels = ["deployment"]
role_labels = ["role"]
"#,
        params.command("DIR")
    );
    for n in names {
        s.push_str(&format!("\n[[sources]]\nkind = \"logs\"\nservice = \"{n}\"\npaths = [\"logs/{n}/\"]\n"));
    }
    for n in names {
        let repo = match p.repos {
            RepoFormat::Bare => format!("repos/{n}.git"),
            RepoFormat::Bundle => format!("repos/{n}.bundle"),
        };
        s.push_str(&format!("\n[[sources]]\nkind = \"commits\"\nservice = \"{n}\"\nrepo = \"{repo}\"\n"));
    }
    s.push_str(
        r#"
[[sources]]
kind = "metrics"
paths = ["metrics/"]

[[sources]]
kind = "deployments"
paths = ["deployments.jsonl"]

# One row per deployment × checkpoint. The canary is at 5 % from 0 min, 10 % from 10, 25 % from
# 20, 50 % from 30 and 100 % from about 45 min until about 60 min.
[features]
checkpoints = ["5m", "10m", "20m", "30m", "40m", "50m"]
# No `metrics` list: every gauge with canary or baseline samples becomes features (cpu_utilization,
# the two latency quantiles, http_requests_error_ratio, process_resident_memory_bytes,
# worker_saturation_ratio); the counters feed the error-rate pair below.
max_pair_gap = "60s"
# Nine deployments in ten run a 5-minute load test of the new version at the full-traffic rate
# from the canary start (series with role="loadtest"): these metrics compare it with the baseline.
load_tests = ["http_request_duration_seconds_p99", "http_requests_error_ratio", "worker_saturation_ratio"]

[[features.error_rates]]
name = "http_errors"
errors = "http_requests_errors_total"
total = "http_requests_total"

[serve.policy]
steps = [5, 10, 25, 50, 100]
rollback_probability = 0.7
advance_probability = 0.2
hold_probability = 0.35
min_confidence = 0.65
stable_checks = 2
nodata = "hold"

[serve.limits]
max_concurrent = 64
request_timeout = "5s"

# The reference judge (Kayenta's canary config): what a Kayenta user would judge these metrics by.
[serve.judge]
scoreThresholds = { pass = 95.0, marginal = 75.0 }

[[serve.judge.metrics]]
name = "http_requests_error_ratio"
groups = ["errors"]
direction = "increase"
nanStrategy = "replace"

[[serve.judge.metrics]]
name = "http_request_duration_seconds_p50"
groups = ["latency"]
direction = "increase"
effectSize = { allowedIncrease = 1.1 }

[[serve.judge.metrics]]
name = "http_request_duration_seconds_p99"
groups = ["latency"]
direction = "increase"
effectSize = { allowedIncrease = 1.1 }

[[serve.judge.metrics]]
name = "cpu_utilization"
groups = ["resources"]
direction = "increase"
effectSize = { allowedIncrease = 1.1 }

[[serve.judge.metrics]]
name = "process_resident_memory_bytes"
groups = ["resources"]
direction = "increase"
effectSize = { allowedIncrease = 1.05 }

[[serve.judge.metrics]]
name = "worker_saturation_ratio"
groups = ["resources"]
direction = "increase"
effectSize = { allowedIncrease = 1.1 }
"#,
    );
    s
}
