//! `omen quickstart`: the whole pipeline on the bundled samples (or any config's sources):
//! ingest → features → profiles → train (failure and performance GBDT) → register → evaluate →
//! `omen-serve` started for a moment → a few held-out canaries scored over gRPC → where every
//! output is and what to run next. Every stage is idempotent, so a second run adds nothing
//! (the score log aside: `scores/` records every answer served, and gets the new ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use omen_features::Store;
use omen_features::ingest::logs::LogFormat;
use omen_features::schema::DatasetSchema;
use omen_features::feature::Role;
use omen_models::registry::AnyRegistry;
use omen_serve::client::{Client, ScoreAnswer, ScoreInput, Series};
use polars::prelude::*;
use serde::Serialize;

use crate::rfc3339_secs as rfc3339;
use crate::config::{Config, Source};
use crate::error::{Error, Result};
use crate::features::FeaturesSummary;
use crate::ingest::{self, IngestSummary, MetricsIngest};
use crate::profiles::{FitArgs, FitReport};
use crate::registry::Registered;
use crate::train::{TrainArgs, TrainKind, TrainSummary};

/// What quickstart did.
#[derive(Debug, Serialize)]
pub struct QuickstartReport {
    pub store: String,
    pub registry: String,
    pub config: String,
    pub ingest: IngestSummary,
    pub features: FeaturesSummary,
    pub profiles: FitReport,
    /// `omen-failure` and `omen-performance`, with their held-out metrics and registration.
    pub models: Vec<TrainSummary>,
    /// `omen-sequence` (the LSTMs, `[retrain.sequence]`), unless `enabled = false` there.
    pub sequence: Option<crate::sequence::SequenceSummary>,
    /// The evaluation of the champion against the reference judge on the time-ordered
    /// hold-out (`omen evaluate`); its report is in `<store>/reports/quickstart/`.
    pub evaluation: crate::evaluate::Evaluation,
    /// Anomalies in every metric series (`omen detect --detector zscore`, written to
    /// `anomalies/`; `omen detect --detector lstm` runs the sequence champion's detector).
    pub anomalies: crate::detect::DetectReport,
    /// The held-out canaries scored by `omen-serve` over gRPC.
    pub scored: Vec<ScoredCanary>,
    pub serve: ServeRun,
    /// Rows now in each dataset of the store.
    pub datasets: Vec<DatasetCount>,
    pub seconds: f64,
    pub next: Vec<String>,
}

/// How `omen-serve` ran for the scoring.
#[derive(Debug, Serialize)]
pub struct ServeRun {
    pub binary: String,
    pub listen: String,
    /// From the start of the process until the first model was loaded and health said SERVING.
    pub ready_seconds: f64,
    /// Its exit status after SIGTERM (0: drained and wrote its score log).
    pub exit_code: Option<i32>,
}

/// One held-out deployment, scored at a checkpoint, beside what truly happened.
#[derive(Debug, Serialize)]
pub struct ScoredCanary {
    pub deployment_id: String,
    pub service: String,
    pub started_at: String,
    /// Minutes after the start whose samples were sent.
    pub checkpoint_minutes: f64,
    pub commits: String,
    pub series: usize,
    pub samples: usize,
    /// The true outcome (`success`, `rolled_back`, `failed`, …).
    pub outcome: String,
    pub answer: ScoreAnswer,
}

/// What [`run`] needs besides the store and the config.
pub struct QuickstartOptions {
    pub registry_url: String,
    /// The config file the run reads (reported, and given to `omen-serve` for its `[serve]`).
    pub config_path: PathBuf,
    /// The `omen-serve` binary (`None`: it was not found; the run stops before serving with an
    /// error saying how to build it).
    pub serve_binary: Option<PathBuf>,
    /// How many held-out deployments to score.
    pub canaries: usize,
}

/// Runs the whole pipeline (see the module's documentation).
pub async fn run(store: &Store, registry: &AnyRegistry, config: &Config, metrics: &MetricsIngest, opts: &QuickstartOptions, pb: &ProgressBar) -> Result<QuickstartReport> {
    let t0 = Instant::now();
    pb.set_message("ingesting the sources");
    let ingest = ingest_sources(store, config, metrics, pb).await?;
    pb.set_message("building the features");
    let features = crate::features::build_features(store, &config.features, pb).await?;
    pb.set_message("fitting the traffic profiles");
    let profiles = crate::profiles::fit(
        store,
        Some(registry),
        &FitArgs { service: None, k: None, half_life: "7d".into(), sample: 100_000, seed: 1, max_route_groups: 8 },
    )
    .await?;
    // Training reads the feature folder as `omen train --features` does: a local store.
    if store.url().contains("://") {
        return Err(Error::input(store.url(), "quickstart trains on the feature table of a local store; give --store a path"));
    }
    let folder = Path::new(store.url()).join("features");
    let table = crate::train::load_table(&folder).await?;
    let mut models = Vec::new();
    let performance_label = performance_label(&table);
    let mut jobs = vec![(TrainKind::Failure, "label_failed".to_string())];
    if let Some(l) = performance_label {
        jobs.push((TrainKind::Performance, l));
    }
    let mut failure_time_to = None;
    for (kind, label) in jobs {
        pb.set_message(format!("training {}", if kind == TrainKind::Failure { "omen-failure" } else { "omen-performance" }));
        let mut exclude = crate::train::schema_labels(&folder);
        exclude.retain(|c| c != &label);
        let args = TrainArgs {
            kind,
            exclude,
            features: folder.clone(),
            label,
            time_column: Some("checkpoint_at".into()),
            holdout: HOLDOUT,
            params: omen_models::gbdt::GbdtParams { seed: 1, ..Default::default() },
            out: None,
            baselines: crate::train::Baselines::None,
        };
        let df = table.clone();
        let trained = tokio::task::block_in_place(|| crate::train::train(&args, df, 0.0))?;
        let mut summary = trained.summary;
        let mut ignore = |_p: omen_models::registry::Progress| {};
        let reg: Registered = crate::registry::register_trained(registry, &args, &summary, &trained.model, &trained.bands, trained.schema, &mut ignore).await?;
        summary.registered = Some(reg);
        if kind == TrainKind::Failure {
            failure_time_to = summary.time_to.clone();
        }
        models.push(summary);
    }
    // The LSTM sequence models, as `omen retrain` trains them (`[retrain.sequence]`); the first
    // version is the champion that evaluate's replay and omen-serve use.
    let sequence_model = if config.retrain.sequence.enabled {
        pb.set_message("training omen-sequence (LSTM forecaster and classifier)");
        let args = config.retrain.sequence.args(HOLDOUT)?;
        let mut trained = crate::sequence::train_on_store(store, &config.features, args, pb).await?;
        let mut ignore = |_p: omen_models::registry::Progress| {};
        trained.summary.registered = Some(crate::sequence::register_sequence(registry, &trained, &mut ignore).await?);
        Some(trained.summary)
    } else {
        None
    };
    // The champion on the time-ordered hold-out, against the `mann-whitney` reference judge,
    // with the decisions omen-serve would make ([serve.policy] of the config).
    pb.set_message("evaluating against the reference judge");
    let (policy, judge) = crate::evaluate::serve_settings(config.serve.as_ref())?;
    let candidates = crate::evaluate::load_candidates(registry, &[]).await?;
    let sequence = crate::evaluate::load_sequence(registry, None).await?;
    let performance = crate::evaluate::load_performance(registry, None).await?;
    let eval_args = crate::evaluate::EvaluateArgs { models: vec![], config: config.evaluate.clone(), policy, judge, sequence, performance, holdout_after_us: None };
    let mut evaluation = crate::evaluate::evaluate(store, &opts.registry_url, &candidates, &eval_args).await?;
    let report_dir = Path::new(store.url()).join("reports").join("quickstart");
    evaluation.report = Some(report_dir.join("index.html").display().to_string());
    crate::evaluate::write_report(&report_dir, &evaluation)?;

    pb.set_message("detecting anomalies in the metric series");
    let detect_args = crate::detect::DetectArgs { detector: crate::detect::DetectorChoice::Zscore, ..Default::default() };
    let anomalies = crate::detect::detect(store, None, &detect_args).await?;

    pb.set_message("scoring held-out canaries with omen-serve");
    let picks = held_out(store, failure_time_to.as_deref(), &config.features.checkpoints, opts.canaries).await?;
    let inputs = canary_inputs(store, &picks).await?;
    let binary = opts.serve_binary.clone().ok_or_else(|| {
        Error::input("omen-serve", "the omen-serve binary is not next to omen: build both with `cargo build --workspace`")
    })?;
    let (serve, answers) = serve_and_score(&binary, store.url(), &opts.registry_url, &opts.config_path, &inputs).await?;
    let scored = picks
        .into_iter()
        .zip(inputs)
        .zip(answers)
        .map(|((p, i), answer)| ScoredCanary {
            deployment_id: p.id,
            service: p.service,
            started_at: rfc3339(p.started_at),
            checkpoint_minutes: (p.checkpoint - p.started_at) as f64 / 60e6,
            commits: i.commits.as_ref().map(|(a, b)| format!("{}..{}", short(a), short(b))).unwrap_or_default(),
            series: i.series.len(),
            samples: i.series.iter().map(|s| s.canary.len() + s.baseline.len()).sum(),
            outcome: p.outcome,
            answer,
        })
        .collect();
    let datasets = dataset_counts(store).await?;
    let config_text = opts.config_path.display().to_string();
    let next = vec![
        format!("omen registry list --store {}", store.url()),
        format!("omen detect --store {} --detector lstm --json", store.url()),
        format!("omen-serve --store {} --config {config_text} --listen 127.0.0.1:50051 --http 127.0.0.1:8080", store.url()),
        format!("OMEN_STORE={} python3 notebooks/run.py --out /tmp/omen-notebooks models_and_scores.ipynb   (or open notebooks/ in Jupyter)", store.url()),
        format!("duckdb -c \"select deployment_id, checkpoint_at, label_failed from read_parquet('{}/features/**/*.parquet', hive_partitioning=true) limit 10\"", store.url()),
        "omen simulate --out /tmp/sim --services 50 --days 365   then   omen quickstart --config /tmp/sim/omen.toml --store /tmp/sim-store".into(),
        format!("omen ingest logs <your access logs> --service <name> --store {}", store.url()),
    ];
    Ok(QuickstartReport {
        store: store.url().to_string(),
        registry: opts.registry_url.clone(),
        config: config_text,
        ingest,
        features,
        profiles,
        models,
        sequence: sequence_model,
        evaluation,
        anomalies,
        scored,
        serve,
        datasets,
        seconds: t0.elapsed().as_secs_f64(),
        next,
    })
}

/// The last fraction of the feature rows (by `checkpoint_at`) that training holds out.
pub const HOLDOUT: f64 = 0.25;

/// The performance model's label: the 100 %-traffic p99 latency when the table has it, else the
/// first `label__*__at_full` column with values.
fn performance_label(df: &DataFrame) -> Option<String> {
    let labels: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.starts_with("label__") && c.ends_with("__at_full"))
        .filter(|c| df.column(c).is_ok_and(|col| col.null_count() < col.len()))
        .collect();
    labels.iter().find(|c| c.contains("p99")).or_else(|| labels.first()).cloned()
}

struct Pick {
    id: String,
    service: String,
    started_at: i64,
    checkpoint: i64,
    outcome: String,
    from_sha: Option<String>,
    to_sha: String,
    steps: Vec<(i64, f64)>,
}

/// The last `n` deployments by start whose every feature row came after the training rows
/// (`time_to`), plus the last failing one of those when none of the `n` failed; each at the
/// configured checkpoint nearest 30 minutes that it reached.
async fn held_out(store: &Store, time_to: Option<&str>, checkpoints: &[String], n: usize) -> Result<Vec<Pick>> {
    let cut = match time_to {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t).map_err(|e| Error::input("training time_to", e.to_string()))?.timestamp_micros(),
        None => i64::MIN,
    };
    let mut offsets: Vec<i64> = checkpoints.iter().filter_map(|c| omen_features::feature::parse_duration(c).ok()).collect();
    if offsets.is_empty() {
        offsets.push(20 * 60_000_000);
    }
    let first = offsets.iter().copied().min().unwrap_or(0);
    let mut deps = omen_features::history::read_deployments(store).await?;
    deps.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let mut candidates: Vec<Pick> = Vec::new();
    for d in deps.iter().rev() {
        let Some(outcome) = d.outcome.clone() else { continue };
        let end = d.ended_at.unwrap_or(i64::MAX);
        // The reached checkpoint nearest 30 minutes.
        let Some(&off) = offsets.iter().filter(|&&o| d.started_at + o <= end).min_by_key(|&&o| (o - 30 * 60_000_000).abs()) else { continue };
        if d.started_at + first <= cut {
            break;
        }
        candidates.push(Pick {
            id: d.id.clone(),
            service: d.service.clone(),
            started_at: d.started_at,
            checkpoint: d.started_at + off,
            outcome,
            from_sha: d.from_sha.clone(),
            to_sha: d.to_sha.clone(),
            steps: d.steps.clone(),
        });
    }
    let failing = |p: &Pick| matches!(p.outcome.as_str(), "failed" | "rolled_back");
    let mut out: Vec<Pick> = Vec::new();
    let mut rest = Vec::new();
    for (i, p) in candidates.into_iter().enumerate() {
        if i < n { out.push(p) } else { rest.push(p) }
    }
    if !out.iter().any(failing)
        && let Some(i) = rest.iter().position(failing)
    {
        out.push(rest.swap_remove(i));
    }
    out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(out)
}

/// The score requests of the picks: their canary, baseline and load-test samples from `metrics/` up to the
/// checkpoint, one series per stored label set, and the change as a commit range.
async fn canary_inputs(store: &Store, picks: &[Pick]) -> Result<Vec<ScoreInput>> {
    let services: std::collections::BTreeSet<&str> = picks.iter().map(|p| p.service.as_str()).collect();
    let schema = DatasetSchema::all().iter().find(|d| d.name == "metrics").ok_or_else(|| Error::input("metrics", "no such dataset schema"))?;
    let df = store
        .read_dataset_columns(schema, Some(&["ts", "metric", "labels", "value", "deployment", "role"][..]), |parts| {
            parts.iter().any(|(k, v)| k == "service" && services.contains(v.as_str()))
        })
        .await?;
    let ids: std::collections::HashSet<&str> = picks.iter().map(|p| p.id.as_str()).collect();
    let ts = df.column("ts")?.cast(&DataType::Datetime(TimeUnit::Microseconds, None))?.cast(&DataType::Int64)?;
    let ts = ts.i64()?;
    let metric = df.column("metric")?.str()?.clone();
    let labels = df.column("labels")?.str()?.clone();
    let value = df.column("value")?.f64()?.clone();
    let dep = df.column("deployment")?.str()?.clone();
    let role = df.column("role")?.str()?.clone();
    // deployment → (metric, labels) → series
    let mut by_dep: BTreeMap<&str, BTreeMap<(String, String), Series>> = BTreeMap::new();
    for i in 0..df.height() {
        let Some(d) = dep.get(i).filter(|d| ids.contains(d)) else { continue };
        let (Some(r), Some(t), Some(m)) = (role.get(i), ts.get(i), metric.get(i)) else { continue };
        let pick = picks.iter().find(|p| p.id == d).expect("an id of the picks");
        let Some(role) = Role::parse(r).filter(|_| t <= pick.checkpoint) else { continue };
        let l = labels.get(i).unwrap_or("");
        let s = by_dep.entry(d).or_default().entry((m.to_string(), l.to_string())).or_insert_with(|| Series {
            metric: m.to_string(),
            labels: parse_labels(l),
            ..Default::default()
        });
        let sample = (t as f64 / 1e6, value.get(i).unwrap_or(f64::NAN));
        match role {
            Role::Canary => s.canary.push(sample),
            Role::Baseline => s.baseline.push(sample),
            Role::LoadTest => s.loadtest.push(sample),
        }
    }
    Ok(picks
        .iter()
        .map(|p| {
            let mut series: Vec<Series> = by_dep.remove(p.id.as_str()).map(|m| m.into_values().collect()).unwrap_or_default();
            for s in &mut series {
                for side in [&mut s.canary, &mut s.baseline, &mut s.loadtest] {
                    side.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
            }
            let steps: Vec<(f64, f64)> = p.steps.iter().filter(|(at, _)| *at <= p.checkpoint).map(|&(at, w)| (at as f64 / 1e6, w)).collect();
            ScoreInput {
                service: p.service.clone(),
                deployment_id: p.id.clone(),
                commits: Some((p.from_sha.clone().unwrap_or_default(), p.to_sha.clone())),
                series,
                current_weight: steps.last().map_or(0.0, |s| s.1),
                elapsed_seconds: (p.checkpoint - p.started_at) as f64 / 1e6,
                started_at: p.started_at as f64 / 1e6,
                steps,
            }
        })
        .collect())
}

/// The `labels` column back into a map.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    omen_features::ingest::metrics::parse_labels_string(s).into_iter().collect()
}

/// A started `omen-serve`, killed when dropped unless it was stopped.
struct ServeChild(Child);

impl Drop for ServeChild {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `binary` on 127.0.0.1 (a free port), waits until it serves, scores every input over
/// gRPC, then stops it with SIGTERM and waits for it to drain.
async fn serve_and_score(binary: &Path, store: &str, registry: &str, config: &Path, inputs: &[ScoreInput]) -> Result<(ServeRun, Vec<ScoreAnswer>)> {
    let name = binary.display().to_string();
    let fail = |m: String| Error::input(&name, m);
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| fail(format!("no free port on 127.0.0.1: {e}")))?.port();
    let listen = format!("127.0.0.1:{port}");
    let log = tempfile::NamedTempFile::new().map_err(|e| fail(format!("a log file: {e}")))?;
    let t0 = Instant::now();
    let child = Command::new(binary)
        .args(["--store", store, "--registry", registry, "--listen", &listen])
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().map_err(|e| fail(e.to_string()))?)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    let mut child = ServeChild(child);
    let tail = |log: &tempfile::NamedTempFile| {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let mut client = Client::new(&format!("http://{listen}")).map_err(|e| fail(e.to_string()))?;
    // Ready: health says SERVING (a champion loaded); give up if the process exits first.
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(fail(format!("exited before serving ({status}):\n{}", tail(&log))));
        }
        match client.wait_serving(Duration::from_millis(500)).await {
            Ok(()) => break,
            Err(e) if t0.elapsed() > Duration::from_secs(120) => return Err(fail(format!("{e}\n{}", tail(&log)))),
            Err(_) => {}
        }
    }
    let ready_seconds = t0.elapsed().as_secs_f64();
    let mut answers = Vec::new();
    for i in inputs {
        answers.push(client.score(i).await.map_err(|e| fail(format!("{e}\n{}", tail(&log))))?);
    }
    drop(client);
    // SIGTERM: drain, write the score log, exit.
    let pid = child.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().map_err(|e| fail(e.to_string()))? {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(30) {
            return Err(fail(format!("did not exit 30 s after SIGTERM:\n{}", tail(&log))));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if !status.success() {
        return Err(fail(format!("exited with {status} after SIGTERM:\n{}", tail(&log))));
    }
    Ok((ServeRun { binary: name.clone(), listen, ready_seconds, exit_code: status.code() }, answers))
}


fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

#[derive(Debug, Serialize)]
pub struct DatasetCount {
    pub dataset: String,
    pub rows: u64,
    pub files: u64,
    pub path: String,
}

/// Ingests every source of `config` into `store`.
pub async fn ingest_sources(store: &Store, config: &Config, metrics: &MetricsIngest, progress: &ProgressBar) -> Result<IngestSummary> {
    let mut total = IngestSummary { dataset: "all".into(), store: store.url().into(), ..Default::default() };
    let default_format = config.ingest.logs.format.clone().unwrap_or_else(|| "auto".into());
    for src in &config.sources {
        let s = match src {
            Source::Logs { service, paths, format } => {
                let f = LogFormat::parse(format.as_deref().unwrap_or(&default_format))?;
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_logs(store, &paths, service, &f, progress).await?
            }
            Source::Commits { service, repo, range } => {
                ingest::ingest_commits(store, &config.resolve(repo), service, range.as_deref()).await?
            }
            Source::Metrics { paths, service } => {
                let mut m = metrics.clone();
                if service.is_some() {
                    m.options.default_service = service.clone();
                }
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_metrics_files(store, &paths, &m, progress).await?
            }
            Source::Deployments { paths } => {
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_deployments(store, &paths).await?
            }
        };
        total.seconds += s.seconds;
        total.merge(s);
    }
    Ok(total)
}

/// Row and file counts of every dataset in the store.
pub async fn dataset_counts(store: &Store) -> Result<Vec<DatasetCount>> {
    let mut out = Vec::new();
    for schema in DatasetSchema::all() {
        if schema.name == "_rejects" {
            continue;
        }
        let files = store.list(schema.name).await?.into_iter().filter(|f| f.ends_with(".parquet")).count() as u64;
        let df = store.read_dataset(schema, |_| true).await?;
        out.push(DatasetCount { dataset: schema.name.into(), rows: df.height() as u64, files, path: format!("{}/{}/", store.url(), schema.name) });
    }
    let mut rows = 0u64;
    let mut files = 0u64;
    for rel in store.list("features").await? {
        if rel.ends_with(".parquet") {
            files += 1;
            rows += store.read_parquet(&rel).await?.map_or(0, |df| df.height() as u64);
        }
    }
    out.push(DatasetCount { dataset: "features".into(), rows, files, path: format!("{}/features/", store.url()) });
    // The score log of omen-serve (each answer it served).
    let (mut rows, mut files) = (0u64, 0u64);
    for rel in store.list("scores").await? {
        if rel.ends_with(".parquet") {
            files += 1;
            rows += store.read_parquet(&rel).await?.map_or(0, |df| df.height() as u64);
        }
    }
    out.push(DatasetCount { dataset: "scores".into(), rows, files, path: format!("{}/scores/", store.url()) });
    let rejects = store.list("_rejects").await?.len() as u64;
    out.push(DatasetCount { dataset: "_rejects".into(), rows: 0, files: rejects, path: format!("{}/_rejects/", store.url()) });
    Ok(out)
}

impl QuickstartReport {
    pub fn human(&self) -> String {
        let mut s = self.ingest.human();
        s.push('\n');
        s.push_str(&self.features.human());
        s.push('\n');
        s.push_str(&self.profiles.human());
        for m in &self.models {
            s.push_str(&m.human());
        }
        if let Some(q) = &self.sequence {
            s.push_str(&q.human());
        }
        s.push_str(&self.evaluation.human());
        s.push_str(&format!(
            "\nAnomalies (omen detect --detector zscore, score ≥ {}): {} alarms in {} metric series; `omen detect --detector lstm` runs the LSTM detector\n",
            self.anomalies.threshold, self.anomalies.alarm_count, self.anomalies.series
        ));
        s.push_str(&format!(
            "\nomen-serve ({}) answered on {} after {:.1}s; scored {} held-out canaries over gRPC:\n",
            self.serve.binary,
            self.serve.listen,
            self.serve.ready_seconds,
            self.scored.len()
        ));
        for c in &self.scored {
            let a = &c.answer;
            s.push_str(&format!(
                "  {:<16} {:<9} at {:>4.0} min  {:<8} p(fail) {:.3}  confidence {:.2}  next weight {:>3.0} %   truly: {}\n",
                c.deployment_id, c.service, c.checkpoint_minutes, a.decision, a.failure_probability, a.confidence, a.next_weight, c.outcome
            ));
            s.push_str(&format!("      change {}, {} series, {} samples\n", c.commits, c.series, c.samples));
            for r in a.reasons.iter().filter(|r| r.kind == "feature").take(3) {
                s.push_str(&format!("      {:+.3}  {}{}\n", r.contribution, r.name, r.value.map(|v| format!(" = {v:.4}")).unwrap_or_default()));
            }
        }
        s.push_str(&format!("\nThe store at {} now holds:\n", self.store));
        for d in &self.datasets {
            if d.dataset == "_rejects" {
                s.push_str(&format!("  {:<13} {:>5} files        {}\n", d.dataset, d.files, d.path));
            } else {
                s.push_str(&format!("  {:<13} {:>5} files {:>9} rows  {}\n", d.dataset, d.files, d.rows, d.path));
            }
        }
        s.push_str(&format!("  registry      {}\n  config        {}\n", self.registry, self.config));
        s.push_str(&format!("\nDone in {:.1}s. Next:\n", self.seconds));
        for n in &self.next {
            s.push_str(&format!("  {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_the_canonical_string() {
        let m = BTreeMap::from([("a".to_string(), "x,y=z\\w".to_string()), ("role".to_string(), "canary".to_string())]);
        let s = omen_features::ingest::metrics::canonical_labels(m.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(parse_labels(&s), m);
        assert!(parse_labels("").is_empty());
    }
}
