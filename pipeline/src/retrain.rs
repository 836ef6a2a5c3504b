//! `omen retrain`: the scheduled job. Incremental ingest of the configured sources → features →
//! profiles → challengers (GBDT failure and performance, the random-forest baseline beside them,
//! and the LSTM `omen-sequence` with `[retrain.sequence]`) → evaluation of challenger and
//! champion on the same time-ordered hold-out against the `mann-whitney` reference judge →
//! promotion when the challenger is better by `[retrain] margin` and passes the guardrails → the
//! report.
//!
//! The `omen-sequence` challenger is decided on its own: the decisions of the failure model
//! served after this run are replayed, on the same hold-out, with the served sequence model (or
//! none) and with the challenger (`decide_sequence`). Its outcome is in the report
//! (`sequence_challenger`) and the reasons; the exit code is the failure model's.
//!
//! Exit codes (for schedulers), [`Outcome::exit_code`]:
//! - `0`: a challenger was promoted, or there was nothing to promote (no better challenger, or
//!   the challenger is the champion's model again);
//! - `3`: the challenger was rejected by a guardrail (minimum AUC, maximum ECE, a rise in false
//!   rollbacks); the champion stays;
//! - `4`: another run holds the store's lock (it is younger than `stale_lock`, or its process is
//!   alive on this host); nothing was done;
//! - `1`: an error; `2`: a usage error.
//!
//! Safety: a create-only lock object `locks/retrain.json` (run id, pid, host, start) keeps two
//! runs off one store; a lock older than `stale_lock`, or whose process is gone on this host, is
//! taken over. Every stage is idempotent (ingest by its manifest, features and profiles rewrite
//! what changed, the same model twice is the same registry version), so a run that crashed is
//! simply run again. A run record `retrain/runs/<run-id>.json` is written last; the report goes to
//! `reports/<run-id>/index.html` and `metrics.json` in the store.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use omen_features::Store;
use omen_models::gbdt::GbdtParams;
use omen_models::registry::{AnyRegistry, CHALLENGER, CHAMPION, Expect, Registry, VersionRef};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluate::{self, Candidate, EvaluateArgs, Evaluation};
use crate::ingest::MetricsIngest;
use crate::train::{TrainArgs, TrainKind};

/// `[retrain]` of `omen.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainConfig {
    /// The challenger's held-out ROC-AUC must exceed the champion's by at least this (0.005).
    pub margin: f64,
    /// Guardrail: minimum held-out ROC-AUC (0.7).
    pub min_auc: f64,
    /// Guardrail: maximum expected calibration error (0.1).
    pub max_ece: f64,
    /// Guardrail: how much the false-rollback rate may rise over the champion's (0: not at all).
    pub max_false_rollback_increase: f64,
    /// The performance model's label (`label__<metric>__at_full`); none: the first such column
    /// of the p99 latency, else of any metric.
    pub performance_label: Option<String>,
    /// Fit request profiles (`omen profiles fit`) when the store has requests (true).
    pub profiles: bool,
    /// Train the random-forest baseline beside the GBDT and report it (true).
    pub baseline: bool,
    /// A lock older than this, in seconds, is stale and taken over (7200).
    pub stale_lock_seconds: u64,
    /// `[retrain.gbdt]`: the GBDT's hyperparameters (LightGBM's names), defaults otherwise.
    pub gbdt: GbdtParams,
    /// `[retrain.sequence]`: the LSTM `omen-sequence` challenger.
    pub sequence: SequenceRetrainConfig,
}

/// `[retrain.sequence]`: the `omen-sequence` challenger (the LSTM forecaster and failure
/// classifier, and the series detector of `omen detect`), as `omen train sequence` trains it but
/// smaller by default, so that a scheduled run stays short: shorter windows further apart, a
/// smaller LSTM, fewer epochs, the most recent training deployments only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceRetrainConfig {
    /// Train it (true).
    pub enabled: bool,
    /// Resampling step ("30s").
    pub step: String,
    /// Steps per window (30).
    pub window: usize,
    /// Steps between training windows of one deployment (8).
    pub stride: usize,
    /// Fit on at most this many of the most recent training deployments (2000).
    pub max_train_deployments: usize,
    /// LSTM hidden size (32).
    pub hidden: usize,
    /// Most epochs (15) and the early-stopping patience (3).
    pub epochs: usize,
    pub patience: usize,
    /// Steps forecast (10).
    pub horizon: usize,
    pub seed: u64,
    /// Training windows of the series detector (5000; 0: none, and `omen detect --detector lstm`
    /// then refuses the model).
    pub detector_windows: usize,
    /// The series detector's step ("60s") and window in steps (30).
    pub detector_step: String,
    pub detector_window: usize,
}

impl Default for SequenceRetrainConfig {
    fn default() -> Self {
        SequenceRetrainConfig {
            enabled: true,
            step: "30s".into(),
            window: 30,
            stride: 8,
            max_train_deployments: 2000,
            hidden: 32,
            epochs: 15,
            patience: 3,
            horizon: 10,
            seed: 1,
            detector_windows: 5000,
            detector_step: "60s".into(),
            detector_window: 30,
        }
    }
}

impl SequenceRetrainConfig {
    /// `omen train sequence`'s arguments for these settings (checked when training).
    pub fn args(&self, holdout: f64) -> Result<crate::sequence::SequenceArgs> {
        let params = omen_models::sequence::SequenceParams {
            hidden: self.hidden,
            epochs: self.epochs,
            patience: self.patience,
            horizon: self.horizon,
            seed: self.seed,
            ..Default::default()
        };
        params.check().map_err(|e| Error::Config { path: "omen.toml [retrain.sequence]".into(), message: e.to_string() })?;
        Ok(crate::sequence::SequenceArgs {
            params,
            step: self.step.clone(),
            window: self.window,
            stride: self.stride,
            holdout,
            out: None,
            slos: Vec::new(),
            alarm_probability: 0.5,
            detector: crate::sequence::detector_params(&self.detector_step, self.detector_window, self.detector_windows)?,
            max_train_deployments: Some(self.max_train_deployments),
        })
    }
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            margin: 0.005,
            min_auc: 0.7,
            max_ece: 0.1,
            max_false_rollback_increase: 0.0,
            performance_label: None,
            profiles: true,
            baseline: true,
            stale_lock_seconds: 7200,
            gbdt: GbdtParams::default(),
            sequence: SequenceRetrainConfig::default(),
        }
    }
}

/// Who runs: written into the lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owner {
    pub run_id: String,
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

/// What a run decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The challenger became the champion (or the first champion).
    Promoted,
    /// The champion stays: the challenger is not better by the margin, or is the same model.
    Kept,
    /// A guardrail rejected the challenger.
    Rejected,
    /// `--dry-run`: what would have happened is in `would`.
    DryRun,
    /// Another run holds the lock.
    Locked,
}

impl Outcome {
    /// The process exit code (module docs).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Promoted | Outcome::Kept | Outcome::DryRun => 0,
            Outcome::Rejected => 3,
            Outcome::Locked => 4,
        }
    }
}

/// One trained challenger.
#[derive(Debug, Clone, Serialize)]
pub struct Challenger {
    pub name: String,
    /// Its registry version (none in a dry run).
    pub version: Option<u64>,
    /// Already in the registry (the same artifact as an earlier version).
    pub existing: bool,
    pub label: String,
    pub metrics: crate::train::Metrics,
    pub trees: usize,
    pub train_seconds: f64,
}

/// What `omen retrain` did.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    pub run_id: String,
    pub store: String,
    pub registry: String,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub exit_code: u8,
    /// Why, in words.
    pub reasons: Vec<String>,
    /// Stages done, in order, with their seconds.
    pub stages: Vec<(String, f64)>,
    /// Stages skipped, with why.
    pub skipped: Vec<String>,
    pub challengers: Vec<Challenger>,
    /// The baselines' held-out metrics (random forest), on the training hold-out rows.
    pub baselines: std::collections::BTreeMap<String, crate::train::BaselineResult>,
    /// The champion of `omen-failure` before and after.
    pub champion_before: Option<u64>,
    pub champion_after: Option<u64>,
    /// What a dry run would have done.
    pub would: Vec<String>,
    /// `reports/<run-id>/index.html` in the store.
    pub report: Option<String>,
    pub evaluation: Option<Evaluation>,
    /// When the lock was held by another run: its owner.
    pub locked_by: Option<Owner>,
    pub seconds: f64,
}

impl RetrainReport {
    pub fn human(&self) -> String {
        let mut s = format!("retrain {} ({}): {:?}, exit {}\n", self.run_id, if self.dry_run { "dry run" } else { "live" }, self.outcome, self.exit_code);
        for r in &self.reasons {
            s += &format!("  {r}\n");
        }
        for (st, secs) in &self.stages {
            s += &format!("  {st}: {secs:.1}s\n");
        }
        for k in &self.skipped {
            s += &format!("  skipped: {k}\n");
        }
        for c in &self.challengers {
            s += &format!(
                "  challenger {} {}: trees {}, training hold-out {}\n",
                c.name,
                c.version.map_or("(not registered)".into(), |v| format!("version {v}{}", if c.existing { " (existing)" } else { "" })),
                c.trees,
                c.metrics.auc.map_or_else(|| c.metrics.rmse.map_or("-".into(), |r| format!("rmse {r:.4}")), |a| format!("auc {a:.3}"))
            );
        }
        for w in &self.would {
            s += &format!("  would: {w}\n");
        }
        match &self.evaluation {
            Some(e) => s += &e.human(),
            None => {
                if let Some(r) = &self.report {
                    s += &format!("  report: {r}\n");
                }
            }
        }
        s
    }
}

const LOCK: &str = "locks/retrain.json";
const SEQUENCE: &str = "omen-sequence";

/// Promotion of a sequence challenger, on the replayed decisions of one failure model with the
/// served sequence model (`served`, its figures; `None` and no champion: without one) and with
/// the challenger. Guardrails: recall may not fall, the false-rollback rate may rise by at most
/// `max_false_rollback_increase`. Better: recall − false-rollback rate higher, or equal and the
/// median lead over the judge on the slow modes longer. With no champion yet, passing the
/// guardrails is enough (the first model is crowned, as `omen train sequence` does).
fn decide_sequence(
    rc: &RetrainConfig,
    served: evaluate::ModelFigures,
    served_sequence: Option<String>,
    challenger: &evaluate::ModelFigures,
    challenger_name: String,
    champion: Option<u64>,
) -> evaluate::SequenceComparison {
    let a = evaluate::Replay::of(&served, served_sequence);
    let b = evaluate::Replay::of(challenger, Some(challenger_name.clone()));
    let (ra, rb) = (a.decisions.recall.unwrap_or(0.0), b.decisions.recall.unwrap_or(0.0));
    let (fa, fb) = (a.decisions.false_rollback_rate.unwrap_or(0.0), b.decisions.false_rollback_rate.unwrap_or(0.0));
    let against = a.sequence.clone().unwrap_or_else(|| "no sequence model".into());
    let figures = |r: &evaluate::Replay| {
        format!(
            "recall {:.3}, false rollbacks {:.1} %, slow-mode lead {}",
            r.decisions.recall.unwrap_or(0.0),
            r.decisions.false_rollback_rate.unwrap_or(0.0) * 100.0,
            r.slow_lead_minutes().map_or("-".into(), |m| format!("{m:+.0} min"))
        )
    };
    let mut reasons = vec![format!("{challenger_name}: {}; {against}: {}", figures(&b), figures(&a))];
    let mut failed = Vec::new();
    if rb + 1e-12 < ra {
        failed.push(format!("guardrail: recall falls from {ra:.3} to {rb:.3}"));
    }
    if fb > fa + rc.max_false_rollback_increase + 1e-12 {
        failed.push(format!("guardrail: false-rollback rate {:.1} % rises over {:.1} %", fb * 100.0, fa * 100.0));
    }
    let outcome = if !failed.is_empty() {
        reasons.extend(failed);
        "rejected"
    } else if champion.is_none() {
        reasons.push("no champion yet: the challenger passes the guardrails".into());
        "promote"
    } else {
        let (sa, sb) = (ra - fa, rb - fb);
        let (la, lb) = (a.slow_lead_minutes().unwrap_or(f64::NEG_INFINITY), b.slow_lead_minutes().unwrap_or(f64::NEG_INFINITY));
        if sb > sa + 1e-12 || ((sb - sa).abs() <= 1e-12 && lb > la) {
            reasons.push("better replayed decisions than the champion's".into());
            "promote"
        } else {
            reasons.push("not better than the champion's replayed decisions: the champion stays".into());
            "kept"
        }
    };
    evaluate::SequenceComparison {
        decider: served.asked_as.clone(),
        challenger: challenger_name,
        with_served: a,
        with_challenger: b,
        outcome: outcome.into(),
        reasons,
    }
}

/// The lock: taken when absent, stale, or left by a dead process of this host.
async fn lock(store: &Store, owner: &Owner, stale_after: u64) -> Result<Option<Owner>> {
    let bytes = serde_json::to_vec_pretty(owner).map_err(|e| Error::input(LOCK, e.to_string()))?;
    for _ in 0..2 {
        if store.put_if_absent(LOCK, bytes.clone().into()).await? {
            return Ok(None);
        }
        let Some(held) = store.get(LOCK).await? else { continue };
        let held: Owner = match serde_json::from_slice(&held) {
            Ok(o) => o,
            Err(e) => return Err(Error::input(format!("{}/{LOCK}", store.url()), format!("unreadable lock ({e}); remove it if no run is going on"))),
        };
        let age = chrono::DateTime::parse_from_rfc3339(&held.started_at)
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
            .unwrap_or(i64::MAX);
        let dead = held.host == owner.host && !std::path::Path::new(&format!("/proc/{}", held.pid)).exists();
        if age < stale_after as i64 && !dead {
            return Ok(Some(held));
        }
        tracing::warn!(run = %held.run_id, pid = held.pid, age, dead, "taking over a stale retrain lock");
        store.delete(LOCK).await?;
    }
    Err(Error::input(format!("{}/{LOCK}", store.url()), "could not take the lock (another run raced for it)"))
}

/// The local folder of a `file://` or plain-path store (for `omen train`'s schema file).
fn local_path(store: &Store, rel: &str) -> PathBuf {
    let u = store.url();
    let base = u.strip_prefix("file://").unwrap_or(u);
    PathBuf::from(base).join(rel)
}

/// Runs the job. `owner` names this process (the binary fills in pid and host).
pub async fn retrain(
    store: &Store,
    registry: &AnyRegistry,
    config: &Config,
    metrics: &MetricsIngest,
    owner: Owner,
    dry_run: bool,
    progress: &ProgressBar,
) -> Result<RetrainReport> {
    let t0 = Instant::now();
    let rc = &config.retrain;
    let mut rep = RetrainReport {
        run_id: owner.run_id.clone(),
        store: store.url().to_string(),
        registry: registry.url().to_string(),
        dry_run,
        outcome: Outcome::Kept,
        exit_code: 0,
        reasons: vec![],
        stages: vec![],
        skipped: vec![],
        challengers: vec![],
        baselines: Default::default(),
        champion_before: None,
        champion_after: None,
        would: vec![],
        report: None,
        evaluation: None,
        locked_by: None,
        seconds: 0.0,
    };
    // Checked before any work.
    let (policy, judge) = evaluate::serve_settings(config.serve.as_ref())?;
    rc.gbdt.clone().check()?;
    if let Some(held) = lock(store, &owner, rc.stale_lock_seconds).await? {
        rep.outcome = Outcome::Locked;
        rep.exit_code = Outcome::Locked.exit_code();
        rep.reasons.push(format!("another run ({}, pid {} on {}, since {}) holds {}/{LOCK}", held.run_id, held.pid, held.host, held.started_at, store.url()));
        rep.locked_by = Some(held);
        return Ok(rep);
    }
    let result = run_locked(store, registry, config, metrics, dry_run, progress, &mut rep, policy, judge).await;
    // The lock goes whatever happened (a crash leaves it: the next run sees its process gone).
    if let Err(e) = store.delete(LOCK).await {
        tracing::warn!(error = %e, "could not remove the retrain lock");
    }
    result?;
    rep.exit_code = rep.outcome.exit_code();
    rep.seconds = t0.elapsed().as_secs_f64();
    // The run record, last.
    let record = serde_json::to_vec_pretty(&rep).map_err(|e| Error::input("run record", e.to_string()))?;
    store.put(&format!("retrain/runs/{}.json", rep.run_id), record.into()).await?;
    Ok(rep)
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    store: &Store,
    registry: &AnyRegistry,
    config: &Config,
    metrics: &MetricsIngest,
    dry_run: bool,
    progress: &ProgressBar,
    rep: &mut RetrainReport,
    policy: omen_models::policy::PolicyConfig,
    judge: Option<omen_models::judge::JudgeParams>,
) -> Result<()> {
    let rc = &config.retrain;
    let stage = |rep: &mut RetrainReport, name: &str, t: Instant| rep.stages.push((name.to_string(), t.elapsed().as_secs_f64()));
    // 1. Ingest (idempotent by the manifest) and features.
    let t = Instant::now();
    progress.set_message("ingest");
    crate::quickstart::ingest_sources(store, config, metrics, progress).await?;
    stage(rep, "ingest", t);
    let t = Instant::now();
    progress.set_message("features");
    crate::features::build_features(store, &config.features, progress).await?;
    stage(rep, "features", t);
    // 2. Profiles, when there are requests.
    if rc.profiles {
        let t = Instant::now();
        if store.list("requests").await?.iter().any(|p| p.ends_with(".parquet")) {
            let args = crate::profiles::FitArgs { service: None, k: None, half_life: "7d".into(), sample: 100_000, seed: 1, max_route_groups: 8 };
            let reg = if dry_run { None } else { Some(registry) };
            match crate::profiles::fit(store, reg, &args).await {
                Ok(r) => {
                    if dry_run {
                        rep.would.push(format!("register profile set {} as omen-profiles", r.version));
                    }
                    stage(rep, "profiles", t);
                }
                Err(e) => rep.skipped.push(format!("profiles: {e}")),
            }
        } else {
            rep.skipped.push("profiles: no requests/ in the store".into());
        }
    }
    // 3. Challengers.
    let t = Instant::now();
    progress.set_message("training");
    let table = store
        .read_parquet_tree("features")
        .await?
        .ok_or_else(|| Error::input(format!("{}/features/", store.url()), "no feature table after `features build`"))?;
    let labels: Vec<String> = table.get_column_names().iter().map(|c| c.to_string()).filter(|c| c.starts_with("label_")).collect();
    let features_path = local_path(store, "features");
    let holdout = config.evaluate.holdout;
    let args_for = |kind: TrainKind, label: &str| TrainArgs {
        kind,
        exclude: labels.iter().filter(|l| *l != label).cloned().collect(),
        features: features_path.clone(),
        label: label.to_string(),
        time_column: Some("checkpoint_at".into()),
        holdout,
        params: rc.gbdt.clone(),
        out: None,
        baselines: if kind == TrainKind::Failure && rc.baseline { crate::train::Baselines::RandomForest } else { crate::train::Baselines::None },
    };
    let fargs = args_for(TrainKind::Failure, "label_failed");
    let failure = {
        let (a, df) = (fargs.clone(), table.clone());
        tokio::task::spawn_blocking(move || crate::train::train(&a, df, 0.0)).await.map_err(|e| Error::Join(e.to_string()))??
    };
    rep.baselines = failure.summary.baselines.clone();
    let perf_label = rc.performance_label.clone().or_else(|| {
        let at_full: Vec<&String> = labels.iter().filter(|l| l.ends_with("__at_full")).collect();
        at_full.iter().find(|l| l.contains("p99")).or(at_full.first()).map(|l| l.to_string())
    });
    let performance = match &perf_label {
        Some(label) => {
            let (a, df) = (args_for(TrainKind::Performance, label), table.clone());
            match tokio::task::spawn_blocking(move || crate::train::train(&a, df, 0.0).map(|t| (a, t))).await.map_err(|e| Error::Join(e.to_string()))? {
                Ok(p) => Some(p),
                Err(e) => {
                    rep.skipped.push(format!("omen-performance: {e}"));
                    None
                }
            }
        }
        None => {
            rep.skipped.push("omen-performance: no label__<metric>__at_full column".into());
            None
        }
    };
    stage(rep, "train", t);
    // The sequence challenger: its own stage (it reads the metric samples again).
    let sequence = if rc.sequence.enabled {
        let t = Instant::now();
        progress.set_message("training omen-sequence");
        let trained = match rc.sequence.args(config.evaluate.holdout) {
            Ok(args) => crate::sequence::train_on_store(store, &config.features, args, progress).await,
            Err(e) => Err(e),
        };
        match trained {
            Ok(s) => {
                stage(rep, "train sequence", t);
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "omen-sequence not trained");
                rep.skipped.push(format!("omen-sequence: {e}"));
                None
            }
        }
    } else {
        rep.skipped.push("omen-sequence: [retrain.sequence] enabled = false".into());
        None
    };

    // 4. Register the challengers (alias `challenger`), or say what would be.
    let champion = match registry.version("omen-failure", &VersionRef::Alias(CHAMPION.into())).await {
        Ok(v) => Some(v),
        Err(omen_models::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    rep.champion_before = champion.as_ref().map(|v| v.version);
    rep.champion_after = rep.champion_before;
    let mut nop = |_: omen_models::registry::Progress| {};
    let mut failure_version = None;
    let mut perf_version = None;
    // The version that already holds the failure challenger's artifact, if one does.
    let same = if dry_run {
        let same = crate::registry::same_artifact(registry, "omen-failure", &failure.model.to_bytes()).await?;
        rep.would.push(match &same {
            Some(v) => format!("omen-failure: the challenger is version {} again (no new version)", v.version),
            None => "register the omen-failure challenger as a new version with alias `challenger`".into(),
        });
        if performance.is_some() {
            rep.would.push("register the omen-performance challenger with alias `challenger`".into());
        }
        same
    } else {
        let (v, existing) =
            crate::registry::register_version(registry, &fargs, &failure.summary, &failure.model, &failure.bands, failure.schema.clone(), &mut nop).await?;
        registry.set_alias(&v.name, CHALLENGER, v.version, Expect::Current, "retrain").await?;
        failure_version = Some(v.version);
        if let Some((a, p)) = &performance {
            let (v, _) = crate::registry::register_version(registry, a, &p.summary, &p.model, &p.bands, p.schema.clone(), &mut nop).await?;
            registry.set_alias(&v.name, CHALLENGER, v.version, Expect::Current, "retrain").await?;
            perf_version = Some(v.version);
        }
        existing.then_some(v)
    };
    rep.challengers.push(Challenger {
        name: "omen-failure".into(),
        version: failure_version.or(same.as_ref().map(|v| v.version)),
        existing: same.is_some(),
        label: "label_failed".into(),
        metrics: failure.summary.metrics.clone(),
        trees: failure.summary.trees,
        train_seconds: failure.summary.train_seconds,
    });
    if let Some((a, p)) = &performance {
        rep.challengers.push(Challenger {
            name: "omen-performance".into(),
            version: perf_version,
            existing: false,
            label: a.label.clone(),
            metrics: p.summary.metrics.clone(),
            trees: p.summary.trees,
            train_seconds: p.summary.train_seconds,
        });
    }
    // The sequence challenger: registered (or found again) with alias `challenger`.
    let mut seq_version = None;
    if let Some(sq) = &sequence {
        let seq_existing = if dry_run {
            let same = crate::registry::same_artifact(registry, SEQUENCE, &sq.model.to_bytes()).await?;
            seq_version = same.as_ref().map(|v| v.version);
            if same.is_none() {
                rep.would.push("register the omen-sequence challenger as a new version with alias `challenger`".into());
            }
            same.is_some()
        } else {
            let (v, existing) = crate::sequence::register_sequence_version(registry, sq, &mut nop).await?;
            registry.set_alias(&v.name, CHALLENGER, v.version, Expect::Current, "retrain").await?;
            seq_version = Some(v.version);
            existing
        };
        rep.challengers.push(Challenger {
            name: SEQUENCE.into(),
            version: seq_version,
            existing: seq_existing,
            label: "label_failed".into(),
            metrics: sq.summary.classifier.clone(),
            trees: 0,
            train_seconds: sq.summary.train_seconds,
        });
    }
    let challenger_version = failure_version.or(same.as_ref().map(|v| v.version));

    // The served sequence model (it takes part in the replayed decisions, as in omen-serve), and
    // whether the challenger is it again.
    let served_sequence = evaluate::load_sequence(registry, None).await?;
    let seq_champion = served_sequence.as_ref().map(|s| s.version);
    let sequence = match sequence {
        Some(_) if seq_champion.is_some() && seq_champion == seq_version => {
            rep.reasons.push(format!("the omen-sequence challenger is the champion's model (version {}): nothing to promote", seq_version.unwrap_or(0)));
            None
        }
        s => s,
    };

    // 5. The same artifact as the champion: nothing to decide for omen-failure (nor for
    //    omen-sequence when it has no new challenger either).
    let failure_is_champion = matches!((&champion, &same), (Some(c), Some(s)) if c.version == s.version);
    if failure_is_champion && sequence.is_none() {
        rep.outcome = if dry_run { Outcome::DryRun } else { Outcome::Kept };
        rep.reasons.push(format!("the challenger is the champion's model (version {}): nothing to promote", rep.champion_before.unwrap_or(0)));
        return Ok(());
    }

    // 6. Evaluate champion and challenger on the same hold-out, against the reference judge.
    let t = Instant::now();
    progress.set_message("evaluating");
    let mut candidates: Vec<Candidate> = Vec::new();
    if let Some(c) = &champion {
        candidates.extend(evaluate::load_candidates(registry, &[format!("omen-failure/{}", c.version)]).await?);
        if let Some(x) = candidates.last_mut() {
            x.asked_as = "omen-failure@champion".into();
        }
    }
    if !failure_is_champion {
        candidates.push(evaluate::candidate(
            "omen-failure@challenger".into(),
            "omen-failure",
            challenger_version.unwrap_or(0),
            failure.summary.time_to.as_deref(),
            failure.model.clone(),
        )?);
    }
    // A sequence challenger's fitted deployments leave both replays, so they share one hold-out.
    let performance = evaluate::load_performance(registry, None).await?;
    let seq_candidate = match &sequence {
        Some(sq) => Some(evaluate::SequenceCandidate {
            name: SEQUENCE.into(),
            version: seq_version.unwrap_or(0),
            model: sq.model.clone(),
            trained_to_us: evaluate::time_to_us(SEQUENCE, sq.summary.time_to.as_deref())?,
        }),
        None => None,
    };
    let eargs = EvaluateArgs {
        models: vec![],
        config: config.evaluate.clone(),
        policy,
        judge,
        sequence: served_sequence,
        performance,
        holdout_after_us: seq_candidate.as_ref().and_then(|c| c.trained_to_us),
    };
    let mut evaluation = evaluate::evaluate(store, registry.url(), &candidates, &eargs).await?;
    stage(rep, "evaluate", t);
    let ch = evaluation.models.last().ok_or_else(|| Error::input("evaluate", "no figures for the challenger"))?;
    let champ = champion.as_ref().and_then(|_| evaluation.models.first());

    // 7. Guardrails, then the margin.
    let mut failed = Vec::new();
    match ch.classifier.auc {
        Some(a) if a >= rc.min_auc => {}
        a => failed.push(format!("held-out AUC {} below retrain.min_auc {}", a.map_or("n/a".into(), |a| format!("{a:.3}")), rc.min_auc)),
    }
    match ch.classifier.ece {
        Some(e) if e <= rc.max_ece => {}
        e => failed.push(format!("held-out ECE {} above retrain.max_ece {}", e.map_or("n/a".into(), |e| format!("{e:.3}")), rc.max_ece)),
    }
    if let Some(c) = champ {
        let (a, b) = (ch.decisions.false_rollback_rate.unwrap_or(0.0), c.decisions.false_rollback_rate.unwrap_or(0.0));
        if a > b + rc.max_false_rollback_increase + 1e-12 {
            failed.push(format!("false-rollback rate {:.1} % rises over the champion's {:.1} %", a * 100.0, b * 100.0));
        }
    }
    let better = match champ {
        None => true,
        Some(c) => match (ch.classifier.auc, c.classifier.auc) {
            (Some(a), Some(b)) => a >= b + rc.margin,
            (Some(_), None) => true,
            _ => false,
        },
    };
    let promote_to = |rep: &mut RetrainReport, why: String| {
        rep.reasons.push(why);
    };
    let mut failure_promotes = false;
    if failure_is_champion {
        rep.outcome = Outcome::Kept;
        rep.reasons.push(format!("the challenger is the champion's model (version {}): nothing to promote", rep.champion_before.unwrap_or(0)));
    } else if !failed.is_empty() {
        rep.outcome = Outcome::Rejected;
        rep.reasons.extend(failed.into_iter().map(|f| format!("guardrail: {f}")));
    } else if !better {
        rep.outcome = Outcome::Kept;
        rep.reasons.push(format!(
            "the challenger's AUC {} does not beat the champion's {} by retrain.margin {}",
            ch.classifier.auc.map_or("n/a".into(), |a| format!("{a:.4}")),
            champ.and_then(|c| c.classifier.auc).map_or("n/a".into(), |a| format!("{a:.4}")),
            rc.margin
        ));
    } else if dry_run {
        rep.outcome = Outcome::DryRun;
        rep.would.push("promote the omen-failure challenger to champion (it passes the guardrails and the margin)".into());
        failure_promotes = true;
    } else {
        let v = challenger_version.ok_or_else(|| Error::input("retrain", "no challenger version to promote"))?;
        let expect = champion.as_ref().map_or(Expect::Absent, |c| Expect::Version(c.version));
        registry.promote("omen-failure", CHAMPION, v, expect).await?;
        if let Some(pv) = perf_version {
            registry.promote("omen-performance", CHAMPION, pv, Expect::Current).await?;
        }
        rep.champion_after = Some(v);
        rep.outcome = Outcome::Promoted;
        failure_promotes = true;
        promote_to(rep, format!("omen-failure version {v} promoted to champion (was {})", rep.champion_before.map_or("none".into(), |c| c.to_string())));
    }
    if dry_run && rep.outcome != Outcome::Rejected {
        rep.outcome = Outcome::DryRun;
    }

    // 7b. The sequence challenger: the decisions of the failure model served after this run
    // (the challenger when promoted, else the champion), replayed with it against the served
    // sequence model (or none).
    if let Some(sc) = seq_candidate {
        let t = Instant::now();
        progress.set_message("evaluating omen-sequence");
        let decider = if failure_promotes || champion.is_none() { candidates.len() - 1 } else { 0 };
        let served_figures = evaluation.models[decider].clone();
        let challenger_name = format!("{SEQUENCE}/{}", sc.version);
        let args_b = EvaluateArgs { sequence: Some(sc), ..eargs.clone() };
        // The failure model's decision stands whatever happens here: a failed comparison leaves
        // the sequence champion as it was and says why.
        match evaluate::evaluate(store, registry.url(), &candidates[decider..=decider], &args_b).await {
            Err(e) => {
                tracing::warn!(error = %e, "omen-sequence challenger not evaluated");
                rep.skipped.push(format!("omen-sequence: not evaluated ({e}); its champion stays"));
            }
            Ok(with_challenger) => {
                stage(rep, "evaluate sequence", t);
                let mut cmp = decide_sequence(
                    rc,
                    served_figures,
                    evaluation.sequence.clone(),
                    &with_challenger.models[0],
                    challenger_name,
                    seq_champion,
                );
                if cmp.outcome == "promote" {
                    if dry_run {
                        rep.would.push(format!("promote the omen-sequence challenger to champion ({})", cmp.reasons.last().map_or("", |r| r.as_str())));
                        cmp.outcome = "dry_run".into();
                    } else {
                        let v = seq_version.ok_or_else(|| Error::input("retrain", "no omen-sequence version to promote"))?;
                        let expect = seq_champion.map_or(Expect::Absent, Expect::Version);
                        registry.promote(SEQUENCE, CHAMPION, v, expect).await?;
                        cmp.outcome = "promoted".into();
                    }
                }
                rep.reasons.extend(cmp.reasons.iter().map(|r| format!("omen-sequence: {r}")));
                evaluation.sequence_challenger = Some(cmp);
            }
        }
    }
    // 8. The report, in the store.
    let prefix = format!("reports/{}", rep.run_id);
    evaluation.report = Some(format!("{}/{prefix}/index.html", store.url()));
    evaluate::put_report(store, &prefix, &evaluation).await?;
    rep.report = evaluation.report.clone();
    rep.evaluation = Some(evaluation);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{Decisions, Lead, ModeFigures, ModelFigures};

    /// Figures of a replay: `detected` of 10 failing, `false_rollbacks` of 100 healthy, and the
    /// leads over the judge on one slow mode.
    fn figures(detected: usize, false_rollbacks: usize, slow_leads: &[f64]) -> ModelFigures {
        let decisions = Decisions {
            deployments: 110,
            failing: 10,
            healthy: 100,
            detected,
            false_rollbacks,
            recall: Some(detected as f64 / 10.0),
            false_rollback_rate: Some(false_rollbacks as f64 / 100.0),
            ..Default::default()
        };
        let lead = Lead { minutes: slow_leads.to_vec(), ..Default::default() };
        ModelFigures {
            name: "omen-failure".into(),
            version: 1,
            asked_as: "omen-failure@challenger".into(),
            trained_to: String::new(),
            classifier: Default::default(),
            roc: vec![],
            pr: vec![],
            calibration: vec![],
            decisions,
            lead: lead.clone(),
            by_mode: vec![ModeFigures {
                mode: "memory_leak".into(),
                slow: true,
                deployments: slow_leads.len(),
                omen_recall: None,
                judge_recall: None,
                omen_detection_minutes_median: None,
                judge_detection_minutes_median: None,
                lead,
            }],
            by_bait: vec![],
            importance: vec![],
        }
    }

    fn decide(served: ModelFigures, challenger: ModelFigures, champion: Option<u64>) -> String {
        let rc = RetrainConfig::default();
        let c = decide_sequence(&rc, served, champion.map(|v| format!("omen-sequence/{v}")), &challenger, "omen-sequence/2".into(), champion);
        assert!(!c.reasons.is_empty());
        c.outcome
    }

    #[test]
    fn a_sequence_challenger_is_promoted_only_on_better_replayed_decisions() {
        // No champion: passing the guardrails is enough, even with equal decisions.
        assert_eq!(decide(figures(8, 2, &[0.0]), figures(8, 2, &[0.0]), None), "promote");
        // Guardrails, with or without a champion.
        assert_eq!(decide(figures(8, 2, &[0.0]), figures(7, 0, &[10.0]), None), "rejected", "recall falls");
        assert_eq!(decide(figures(8, 2, &[0.0]), figures(9, 3, &[10.0]), Some(1)), "rejected", "false rollbacks rise");
        // Against a champion: better recall, or fewer false rollbacks, or the same and a longer
        // slow-mode lead.
        assert_eq!(decide(figures(8, 2, &[0.0]), figures(9, 2, &[0.0]), Some(1)), "promote");
        assert_eq!(decide(figures(8, 2, &[0.0]), figures(8, 1, &[0.0]), Some(1)), "promote");
        assert_eq!(decide(figures(8, 2, &[0.0, 5.0]), figures(8, 2, &[10.0, 5.0]), Some(1)), "promote");
        assert_eq!(decide(figures(8, 2, &[5.0]), figures(8, 2, &[5.0]), Some(1)), "kept", "equal is not better");
        assert_eq!(decide(figures(8, 2, &[10.0]), figures(8, 2, &[5.0]), Some(1)), "kept");
    }
}
