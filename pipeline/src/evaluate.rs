//! `omen evaluate`: models on a time-ordered hold-out of the store's deployments, and the canary
//! decisions they lead to, replayed against the `mann-whitney` reference judge (DESIGN §3, §6).
//!
//! The hold-out is the last `holdout` fraction of the deployments by start time (`[evaluate]`
//! of `omen.toml`, or `--holdout`), less every deployment with a row a model was fitted on: a
//! version's lineage records the time range of its fitted rows, and only deployments whose first
//! checkpoint comes after the latest `time_to` of the models evaluated are scored, so that every
//! model is judged on the same unseen data.
//!
//! For each model: ROC-AUC, PR-AUC, Brier score and ECE over the held-out rows (deployment ×
//! checkpoint), with the ROC, PR and calibration curves; gain and mean |TreeSHAP| per feature.
//! Then the decisions: each held-out deployment's checkpoints are replayed, in order, as one
//! `ScoreStream` of `omen-serve` would answer them — the model's calibrated probability, the
//! reference judge on the canary and baseline samples from the start to the checkpoint, the
//! forecast SLO breaches of the sequence champion when there is one
//! ([`omen_models::sequence::SequenceModel::assess`] on the samples up to the checkpoint, with the
//! service's SLOs), and the policy of `[serve.policy]` ([`omen_models::policy`], the code
//! `omen-serve` runs); the first
//! `ROLLBACK` (before any `PROMOTE`) is omen's detection. The reference judge alone rolls back at
//! the first checkpoint it fails the canary (Kayenta: a score below `marginal`, or a critical
//! metric). Recall is over deployments that truly fail (`label_failed`), the false-rollback rate
//! over healthy ones; detection lead is the judge's detection time minus omen's, a side that
//! never detects counting as detecting at the last checkpoint (a censored lead), over failing
//! deployments that either detected. Per failure mode and per false-alarm bait when the
//! deployments carry them (the simulator's `failure_mode` and `bait`, kept in `extra`).

use std::collections::{BTreeMap, HashMap};

use omen_features::Store;
use omen_features::feature::{Role, encode_indicator};
use omen_features::history::{Deployment, read_deployments};
use omen_models::judge::{self, Classification, JudgeParams, MetricInput, ValidJudgeParams};
use omen_models::policy::{Decision, Evidence, Policy, PolicyConfig, StreamState};
use omen_models::registry::{AnyRegistry, ModelRef, Registry, VersionRef};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rfc3339_secs as rfc3339;
use crate::error::{Error, Result};

/// `[evaluate]` of `omen.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluateConfig {
    /// The last fraction of deployments, by start time, held out (0.2).
    pub holdout: f64,
    /// Equal-width probability bins of the calibration curve and the ECE (10).
    pub bins: usize,
    /// Features shown in the importance plot (20).
    pub top_features: usize,
    /// Failure modes that show only late (leak, saturation): the lead-time goal is on them.
    pub slow_modes: Vec<String>,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig { holdout: 0.2, bins: 10, top_features: 20, slow_modes: vec!["memory_leak".into(), "saturation".into()] }
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvaluateArgs {
    /// Model references (`omen-failure@champion`, `omen-failure/3`); empty: the champion.
    pub models: Vec<String>,
    pub config: EvaluateConfig,
    /// `[serve.policy]`, `[serve.judge]`.
    pub policy: PolicyConfig,
    pub judge: Option<JudgeParams>,
    /// The sequence models `omen-serve` answers with beside the candidates (the champion of
    /// `omen-sequence`, [`load_sequence`]): their forecast SLO breaches take part in the replayed
    /// decisions as they do in the served ones.
    pub sequence: Option<SequenceCandidate>,
    /// The performance model `omen-serve` answers with (the champion of `omen-performance`,
    /// [`load_performance`]): its predictions at 100 % traffic meet `[serve.policy.slo]` in the
    /// replayed decisions as in the served ones.
    pub performance: Option<PerformanceCandidate>,
    /// Leave out of the hold-out the deployments up to this time too (µs), as if a model fitted on
    /// them took part: `omen retrain` compares two replays on one hold-out with it.
    pub holdout_after_us: Option<i64>,
}

/// The performance model of the replay.
#[derive(Debug, Clone)]
pub struct PerformanceCandidate {
    pub name: String,
    pub version: u64,
    /// The metric it predicts at full traffic.
    pub metric: String,
    pub model: omen_models::gbdt::IntervalModel,
    pub trained_to_us: Option<i64>,
}

fn lineage_to(version: &omen_models::registry::ModelVersion) -> Result<Option<i64>> {
    time_to_us(&format!("{}/{}", version.name, version.version), version.lineage.time_to.as_deref())
}

/// A lineage's `time_to` (RFC 3339) in µs; `what` names the model in the error.
pub fn time_to_us(what: &str, time_to: Option<&str>) -> Result<Option<i64>> {
    match time_to {
        Some(t) => Ok(Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| Error::input(what, format!("lineage time_to `{t}`: {e}")))?
                .timestamp_micros(),
        )),
        None => Ok(None),
    }
}

/// The artifact of `which` (`none`: nothing), verified; by default the champion of `name`, and
/// nothing when it has none (a version asked for by name must exist).
async fn fetch_companion(registry: &AnyRegistry, which: Option<&str>, name: &str) -> Result<Option<omen_models::registry::VerifiedArtifact>> {
    if which == Some("none") {
        return Ok(None);
    }
    let r = ModelRef::parse(which.unwrap_or(&format!("{name}@champion")))?;
    let v = r.version.clone().unwrap_or(VersionRef::Alias(omen_models::registry::CHAMPION.into()));
    match registry.fetch(&r.name, &v).await {
        Ok(a) => Ok(Some(a)),
        Err(omen_models::Error::NotFound { .. }) if which.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Loads the performance model of `which` (`omen-performance@champion`, `omen-performance/2`;
/// `none`: none), verified; the champion by default, and nothing when there is none.
pub async fn load_performance(registry: &AnyRegistry, which: Option<&str>) -> Result<Option<PerformanceCandidate>> {
    let Some(art) = fetch_companion(registry, which, "omen-performance").await? else { return Ok(None) };
    let version = art.version().clone();
    let model = art.interval_model(Some(&version.schema.hash))?;
    let metric = version.target_metric().map(str::to_owned).unwrap_or_else(|| version.name.clone());
    Ok(Some(PerformanceCandidate { name: version.name.clone(), version: version.version, metric, model, trained_to_us: lineage_to(&version)? }))
}

/// The sequence models of the replay.
#[derive(Clone)]
pub struct SequenceCandidate {
    pub name: String,
    pub version: u64,
    pub model: omen_models::sequence::SequenceModel,
    /// End of the time range of its fitted deployments, µs (when its lineage records one).
    pub trained_to_us: Option<i64>,
}

impl std::fmt::Debug for SequenceCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceCandidate").field("name", &self.name).field("version", &self.version).finish_non_exhaustive()
    }
}

/// Loads the sequence models of `which` (`omen-sequence@champion`, `omen-sequence/2`; `none`:
/// none), verified; the champion by default, and nothing when there is none.
pub async fn load_sequence(registry: &AnyRegistry, which: Option<&str>) -> Result<Option<SequenceCandidate>> {
    let Some(art) = fetch_companion(registry, which, "omen-sequence").await? else { return Ok(None) };
    let model = omen_models::sequence::SequenceModel::from_verified(&art)?;
    let version = art.version();
    Ok(Some(SequenceCandidate { name: version.name.clone(), version: version.version, model, trained_to_us: lineage_to(version)? }))
}

/// `[serve.policy]` and `[serve.judge]` from the `[serve]` table of `omen.toml`, as `omen-serve`
/// reads them.
pub fn serve_settings(serve: Option<&toml::Value>) -> Result<(PolicyConfig, Option<JudgeParams>)> {
    let bad = |f: &str, e: toml::de::Error| Error::Config { path: format!("omen.toml [serve.{f}]"), message: e.to_string() };
    let policy = match serve.and_then(|s| s.get("policy")) {
        Some(v) => v.clone().try_into::<PolicyConfig>().map_err(|e| bad("policy", e))?,
        None => PolicyConfig::default(),
    };
    let judge = match serve.and_then(|s| s.get("judge")) {
        Some(v) => Some(v.clone().try_into::<JudgeParams>().map_err(|e| bad("judge", e))?),
        None => None,
    };
    Ok((policy, judge))
}

/// Decisions over the held-out deployments, of omen or of the reference judge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decisions {
    pub deployments: usize,
    pub failing: usize,
    pub healthy: usize,
    /// Failing deployments rolled back.
    pub detected: usize,
    /// Healthy deployments rolled back.
    pub false_rollbacks: usize,
    pub recall: Option<f64>,
    pub false_rollback_rate: Option<f64>,
    /// Minutes from the canary start to the rollback of each detected failing deployment.
    pub detection_minutes: Vec<f64>,
    pub detection_minutes_median: Option<f64>,
}

/// Detection lead over the reference judge (positive: omen earlier).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lead {
    /// Failing deployments detected by omen, the judge, or both.
    pub deployments: usize,
    pub median_minutes: Option<f64>,
    /// Each deployment's lead, minutes (censored at the last checkpoint).
    pub minutes: Vec<f64>,
    pub omen_earlier: usize,
    pub judge_earlier: usize,
    pub same: usize,
}

/// The decisions of one failure model replayed with one sequence model (or none).
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The sequence model whose forecast SLO breaches took part (`omen-sequence/3`); `None`: none.
    pub sequence: Option<String>,
    pub decisions: Decisions,
    pub lead: Lead,
    /// The slow failure modes (`[evaluate] slow_modes`), where forecasts matter.
    pub slow_modes: Vec<ModeFigures>,
}

impl Replay {
    /// The replay of `figures` (evaluated with `sequence`).
    pub fn of(figures: &ModelFigures, sequence: Option<String>) -> Replay {
        Replay {
            sequence,
            decisions: figures.decisions.clone(),
            lead: figures.lead.clone(),
            slow_modes: figures.by_mode.iter().filter(|m| m.slow).cloned().collect(),
        }
    }

    /// Median lead over the judge on the slow modes' deployments (minutes).
    pub fn slow_lead_minutes(&self) -> Option<f64> {
        let v: Vec<f64> = self.slow_modes.iter().flat_map(|m| m.lead.minutes.iter().copied()).collect();
        median(&v)
    }
}

/// `omen retrain`'s comparison of an `omen-sequence` challenger with the served sequence model:
/// the same failure model's decisions replayed with each, on the same hold-out.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceComparison {
    /// The failure model whose decisions were replayed (`omen-failure@challenger`).
    pub decider: String,
    /// The challenger (`omen-sequence/4`; version 0: not registered, a dry run).
    pub challenger: String,
    pub with_served: Replay,
    pub with_challenger: Replay,
    /// `promoted`, `kept`, `rejected`, or `dry_run`.
    pub outcome: String,
    pub reasons: Vec<String>,
}

/// One failure mode (or `none` for healthy deployments).
#[derive(Debug, Clone, Serialize)]
pub struct ModeFigures {
    pub mode: String,
    /// A slow mode (leak, saturation): the lead-time goal applies.
    pub slow: bool,
    pub deployments: usize,
    pub omen_recall: Option<f64>,
    pub judge_recall: Option<f64>,
    pub omen_detection_minutes_median: Option<f64>,
    pub judge_detection_minutes_median: Option<f64>,
    pub lead: Lead,
}

/// False rollbacks of healthy deployments per false-alarm bait (`none`: no bait).
#[derive(Debug, Clone, Serialize)]
pub struct BaitFigures {
    pub bait: String,
    pub deployments: usize,
    pub omen_false_rollbacks: usize,
    pub judge_false_rollbacks: usize,
}

/// One point of the calibration curve.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: Option<f64>,
    pub observed: Option<f64>,
}

/// A feature's importance.
#[derive(Debug, Clone, Serialize)]
pub struct Importance {
    pub feature: String,
    /// Share of the total split gain.
    pub gain: f64,
    /// Mean |TreeSHAP| over the held-out rows (log-odds).
    pub mean_abs_shap: f64,
}

/// Classifier figures over the held-out rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Classifier {
    pub rows: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub brier: Option<f64>,
    pub ece: Option<f64>,
}

/// One evaluated model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFigures {
    pub name: String,
    pub version: u64,
    /// How it was asked for (`omen-failure@champion`).
    pub asked_as: String,
    /// End of the time range of its fitted rows (its lineage).
    pub trained_to: String,
    pub classifier: Classifier,
    /// (false-positive rate, true-positive rate), at most 200 points.
    pub roc: Vec<[f64; 2]>,
    /// (recall, precision), at most 200 points.
    pub pr: Vec<[f64; 2]>,
    pub calibration: Vec<CalibrationBin>,
    pub decisions: Decisions,
    pub lead: Lead,
    pub by_mode: Vec<ModeFigures>,
    pub by_bait: Vec<BaitFigures>,
    pub importance: Vec<Importance>,
}

/// The hold-out.
#[derive(Debug, Clone, Serialize)]
pub struct Holdout {
    pub fraction: f64,
    /// Labelled deployments with feature rows.
    pub deployments_total: usize,
    /// The last `fraction` of them by start.
    pub deployments_held_out: usize,
    /// Of those, left out because a model was fitted on one of their rows.
    pub deployments_seen_in_training: usize,
    pub deployments: usize,
    pub rows: usize,
    pub failing: usize,
    pub healthy: usize,
    pub started_from: Option<String>,
    pub started_to: Option<String>,
}

/// The reference judge's figures.
#[derive(Debug, Clone, Serialize)]
pub struct JudgeFigures {
    pub name: String,
    pub metrics: Vec<String>,
    pub decisions: Decisions,
    pub by_mode: Vec<ModeFigures>,
}

/// One profile of the profile mix.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileShare {
    pub id: String,
    pub share: f64,
    pub top_route: String,
}

/// The latest profile set.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileMix {
    pub version: String,
    pub service: Option<String>,
    pub profiles: Vec<ProfileShare>,
}

/// What `omen evaluate` measured; `metrics.json` of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub store: String,
    pub registry: String,
    pub holdout: Holdout,
    pub policy: PolicyConfig,
    pub judge: JudgeFigures,
    /// The sequence models whose forecast SLO breaches took part in the decisions
    /// (`omen-sequence/3`); `None`: none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// The performance model whose predictions at 100 % traffic met the SLOs in the decisions
    /// (`omen-performance/2`); `None`: none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<String>,
    pub models: Vec<ModelFigures>,
    /// `omen retrain`'s comparison of a new `omen-sequence` challenger with the served one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_challenger: Option<SequenceComparison>,
    pub profiles: Vec<ProfileMix>,
    /// Where the report was written, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Evaluation {
    pub fn human(&self) -> String {
        let h = &self.holdout;
        let mut out = format!(
            "evaluated on {} held-out deployments ({} failing, {} healthy; {} rows), started {} to {}\n",
            h.deployments,
            h.failing,
            h.healthy,
            h.rows,
            h.started_from.as_deref().unwrap_or("-"),
            h.started_to.as_deref().unwrap_or("-")
        );
        if h.deployments_seen_in_training > 0 {
            out += &format!("  {} held-out deployments left out: a model was fitted on their rows\n", h.deployments_seen_in_training);
        }
        let pct = |v: Option<f64>| v.map_or("-".into(), |x| format!("{:.1} %", x * 100.0));
        let num = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.3}"));
        let min = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.0} min"));
        let j = &self.judge.decisions;
        out += &format!(
            "  reference judge {}: recall {}, false rollbacks {}, median detection {}\n",
            self.judge.name,
            pct(j.recall),
            pct(j.false_rollback_rate),
            min(j.detection_minutes_median)
        );
        if let Some(s) = &self.sequence {
            out += &format!("  decisions replayed with {s}: its forecast SLO breaches hold and roll back as in omen-serve\n");
        }
        if let Some(p) = &self.performance {
            out += &format!("  decisions replayed with {p}: its predictions at 100 % traffic meet [serve.policy.slo] as in omen-serve\n");
        }
        for m in &self.models {
            let c = &m.classifier;
            out += &format!(
                "  {} version {} ({}): AUC {}, PR-AUC {}, Brier {}, ECE {}\n    decisions: recall {}, false rollbacks {}, median detection {}, median lead over the judge {}\n",
                m.name,
                m.version,
                m.asked_as,
                num(c.auc),
                num(c.pr_auc),
                num(c.brier),
                num(c.ece),
                pct(m.decisions.recall),
                pct(m.decisions.false_rollback_rate),
                min(m.decisions.detection_minutes_median),
                min(m.lead.median_minutes)
            );
            for f in &m.by_mode {
                out += &format!(
                    "    {:<14} {:>3} deployments  recall omen {} judge {}  median lead {}{}\n",
                    f.mode,
                    f.deployments,
                    pct(f.omen_recall),
                    pct(f.judge_recall),
                    min(f.lead.median_minutes),
                    if f.slow { " (slow)" } else { "" }
                );
            }
        }
        if let Some(r) = &self.report {
            out += &format!("  report: {r}\n");
        }
        out
    }

    /// The figures of the model called `name` with version `version`.
    pub fn model(&self, name: &str, version: u64) -> Option<&ModelFigures> {
        self.models.iter().find(|m| m.name == name && m.version == version)
    }
}

/// A held-out deployment.
struct Held<'a> {
    dep: &'a Deployment,
    failed: bool,
    mode: String,
    bait: String,
    /// Feature rows, in checkpoint order, with their checkpoint (µs).
    rows: Vec<(usize, i64)>,
}

/// A model to evaluate, loaded.
#[derive(Clone)]
pub struct Candidate {
    pub asked_as: String,
    pub name: String,
    /// Its registry version (0: not registered, as in `omen retrain --dry-run`).
    pub version: u64,
    pub model: omen_models::gbdt::Gbdt,
    /// End of the time range of its fitted rows, µs.
    pub trained_to_us: i64,
}

/// Loads `refs` (default: the champion of `omen-failure`) from the registry, verified.
pub async fn load_candidates(registry: &AnyRegistry, refs: &[String]) -> Result<Vec<Candidate>> {
    let refs: Vec<String> = if refs.is_empty() { vec!["omen-failure@champion".into()] } else { refs.to_vec() };
    let mut out = Vec::new();
    for r in refs {
        let m = ModelRef::parse(&r)?;
        let which = m.version.clone().unwrap_or(VersionRef::Alias(omen_models::registry::CHAMPION.into()));
        let art = registry.fetch(&m.name, &which).await?;
        let version = art.version().clone();
        let model = art.gbdt(Some(version.schema.hash.as_str()))?;
        out.push(candidate(r, &version.name, version.version, version.lineage.time_to.as_deref(), model)?);
    }
    Ok(out)
}

/// A model in hand as a candidate: `time_to` is the end of its fitted rows (RFC 3339).
pub fn candidate(asked_as: String, name: &str, version: u64, time_to: Option<&str>, model: omen_models::gbdt::Gbdt) -> Result<Candidate> {
    if model.objective != omen_models::gbdt::Objective::Binary {
        return Err(Error::input(&asked_as, "not a failure classifier (evaluate takes omen-failure versions)"));
    }
    let to = time_to.ok_or_else(|| {
        Error::input(&asked_as, "its lineage records no training time range (train with --time-column); evaluate cannot tell which rows it saw")
    })?;
    let trained_to_us = chrono::DateTime::parse_from_rfc3339(to)
        .map_err(|e| Error::input(&asked_as, format!("lineage time_to `{to}`: {e}")))?
        .timestamp_micros();
    Ok(Candidate { asked_as, name: name.to_string(), version, model, trained_to_us })
}

/// Evaluates `candidates` on the store's hold-out.
pub async fn evaluate(store: &Store, registry_url: &str, candidates: &[Candidate], args: &EvaluateArgs) -> Result<Evaluation> {
    let cfg = &args.config;
    if !(cfg.holdout > 0.0 && cfg.holdout < 1.0) {
        return Err(Error::input("evaluate.holdout", format!("must lie in (0, 1), got {}", cfg.holdout)));
    }
    if cfg.bins < 2 {
        return Err(Error::input("evaluate.bins", format!("must be at least 2, got {}", cfg.bins)));
    }
    let policy: Policy = args.policy.clone().check()?;
    let df = store
        .read_parquet_tree("features")
        .await?
        .ok_or_else(|| Error::input(format!("{}/features/", store.url()), "no feature table: run `omen features build`"))?;
    let deployments = read_deployments(store).await?;
    let truth = read_truth(store).await?;
    let ids = df.column("deployment_id").map_err(|e| col_err("deployment_id", e))?.str().map_err(|e| col_err("deployment_id", e))?.clone();
    let cps = df.column("checkpoint_at").map_err(|e| col_err("checkpoint_at", e))?.cast(&DataType::Int64)?;
    let cps = cps.i64()?.clone();
    let label = df.column("label_failed").map_err(|e| col_err("label_failed", e))?.cast(&DataType::Float64)?;
    let label = label.f64()?.clone();

    // Rows per deployment, labelled ones only.
    let by_id: HashMap<&str, &Deployment> = deployments.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut rows: HashMap<&str, (Vec<(usize, i64)>, Option<f64>)> = HashMap::new();
    for i in 0..df.height() {
        let (Some(id), Some(cp)) = (ids.get(i), cps.get(i)) else { continue };
        let e = rows.entry(id).or_default();
        e.0.push((i, cp));
        if let Some(y) = label.get(i).filter(|y| !y.is_nan()) {
            e.1 = Some(y);
        }
    }
    let mut labelled: Vec<Held<'_>> = rows
        .into_iter()
        .filter_map(|(id, (mut r, y))| {
            let dep = by_id.get(id)?;
            let y = y?;
            r.sort_by_key(|x| x.1);
            let (mode, bait) = truth.get(id).cloned().unwrap_or_else(|| ((if y == 1.0 { "unknown" } else { "none" }).to_string(), "none".to_string()));
            // A healthy deployment has no failure mode, whatever the input says.
            let mode = if y == 1.0 { if mode == "none" { "unknown".into() } else { mode } } else { "none".into() };
            Some(Held { dep, failed: y == 1.0, mode, bait, rows: r })
        })
        .collect();
    labelled.sort_by(|a, b| a.dep.started_at.cmp(&b.dep.started_at).then(a.dep.id.cmp(&b.dep.id)));
    let total = labelled.len();
    let n_hold = ((total as f64) * cfg.holdout).ceil() as usize;
    let held_all = labelled.split_off(total - n_hold.min(total));
    let cutoff = candidates
        .iter()
        .map(|c| c.trained_to_us)
        .chain(args.sequence.as_ref().and_then(|s| s.trained_to_us))
        .chain(args.performance.as_ref().and_then(|p| p.trained_to_us))
        .chain(args.holdout_after_us)
        .max()
        .unwrap_or(i64::MIN);
    let (held, seen): (Vec<Held<'_>>, Vec<Held<'_>>) = held_all.into_iter().partition(|h| h.rows.first().is_some_and(|r| r.1 > cutoff));
    if held.is_empty() {
        return Err(Error::input(
            format!("{}/features/", store.url()),
            format!(
                "no held-out deployment left to evaluate on: of the last {n_hold} of {total} deployments, every one has rows a model was fitted on (trained up to {}); train with a hold-out (`--holdout`)",
                rfc3339(cutoff)
            ),
        ));
    }

    // The reference judge at every checkpoint of every held-out deployment.
    let judge_rows = judge_checkpoints(store, &deployments, &held, args.judge.as_ref(), args.sequence.as_ref(), &policy).await?;
    let (judge_names, judge_at) = judge_rows;
    let judge_decisions: Vec<Option<f64>> = held
        .iter()
        .enumerate()
        .map(|(k, h)| {
            h.rows.iter().zip(&judge_at[k]).find(|(_, j)| j.classification == Classification::Fail || !j.critical.is_empty()).map(|((_, cp), _)| minutes(*cp - h.dep.started_at))
        })
        .collect();
    let horizons: Vec<f64> = held.iter().map(|h| h.rows.last().map_or(0.0, |r| minutes(r.1 - h.dep.started_at))).collect();
    let judge_dec = decisions(&held, &judge_decisions);
    let judge_modes = by_mode(&held, &judge_decisions, &judge_decisions, &horizons, &cfg.slow_modes);

    // The performance model's predictions at 100 % traffic per row: (point, 95 % lower end).
    let perf: Option<Vec<(f64, Option<f64>)>> = match &args.performance {
        Some(p) => {
            let names = &p.model.point.feature_names;
            let x = design(&df, names, &format!("{}/{}", p.name, p.version))?;
            let d = names.len();
            Some(
                (0..df.height())
                    .map(|i| {
                        let xi = &x[i * d..(i + 1) * d];
                        let point = p.model.point.predict(xi);
                        (point, p.model.interval(xi, point, 0.95).map(|b| b.0))
                    })
                    .collect(),
            )
        }
        None => None,
    };
    let mut models = Vec::new();
    for c in candidates {
        let x = design(&df, &c.model.feature_names, &c.asked_as)?;
        let d = c.model.feature_names.len();
        let mut p_rows = Vec::new();
        let mut y_rows = Vec::new();
        let mut shap_sum = vec![0.0; d];
        let mut omen_at = Vec::with_capacity(held.len());
        for (k, h) in held.iter().enumerate() {
            let mut state = StreamState::default();
            let mut detected = None;
            let mut done = false;
            for ((row, cp), j) in h.rows.iter().zip(&judge_at[k]) {
                let xi = &x[row * d..(row + 1) * d];
                let p = c.model.predict_calibrated(xi).clamp(0.0, 1.0);
                p_rows.push(p);
                y_rows.push(if h.failed { 1.0 } else { 0.0 });
                for (s, v) in shap_sum.iter_mut().zip(c.model.shap(xi)) {
                    *s += v.abs();
                }
                if done {
                    continue;
                }
                let e = Evidence {
                    probability: p,
                    confidence: p.max(1.0 - p),
                    critical_failures: j.critical.clone(),
                    judge: j.classification,
                    judge_score: j.score,
                    mostly_nodata: j.mostly_nodata,
                    performance: match (&args.performance, &perf) {
                        (Some(pc), Some(rows)) => vec![(pc.metric.clone(), rows[*row].0, rows[*row].1)],
                        _ => vec![],
                    },
                    breaches: j.breaches.clone(),
                    service: h.dep.service.clone(),
                    current_weight: weight_at(h.dep, *cp),
                };
                match policy.decide(&e, &mut state, true).decision {
                    Decision::Rollback => {
                        detected = Some(minutes(cp - h.dep.started_at));
                        done = true;
                    }
                    Decision::Promote => done = true,
                    _ => {}
                }
            }
            omen_at.push(detected);
        }
        let m = crate::train::classifier_metrics(&y_rows, &p_rows);
        let n_rows = p_rows.len().max(1) as f64;
        let gain = c.model.gain_importance();
        let gain_total: f64 = gain.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut importance: Vec<Importance> = c
            .model
            .feature_names
            .iter()
            .enumerate()
            .map(|(i, f)| Importance { feature: f.clone(), gain: gain.get(i).copied().unwrap_or(0.0) / gain_total, mean_abs_shap: shap_sum[i] / n_rows })
            .collect();
        importance.sort_by(|a, b| b.mean_abs_shap.total_cmp(&a.mean_abs_shap).then(b.gain.total_cmp(&a.gain)).then(a.feature.cmp(&b.feature)));
        importance.truncate(cfg.top_features);
        let dec = decisions(&held, &omen_at);
        models.push(ModelFigures {
            name: c.name.clone(),
            version: c.version,
            asked_as: c.asked_as.clone(),
            trained_to: rfc3339(c.trained_to_us),
            classifier: Classifier {
                rows: p_rows.len(),
                positives: y_rows.iter().filter(|&&y| y == 1.0).count(),
                auc: m.auc.filter(|v| v.is_finite()),
                pr_auc: m.pr_auc.filter(|v| v.is_finite()),
                brier: m.brier.filter(|v| v.is_finite()),
                ece: m.ece.filter(|v| v.is_finite()),
            },
            roc: roc_curve(&y_rows, &p_rows),
            pr: pr_curve(&y_rows, &p_rows),
            calibration: calibration_curve(&y_rows, &p_rows, cfg.bins),
            lead: lead(&held, &omen_at, &judge_decisions, &horizons, |_| true),
            by_mode: by_mode(&held, &omen_at, &judge_decisions, &horizons, &cfg.slow_modes),
            by_bait: by_bait(&held, &omen_at, &judge_decisions),
            decisions: dec,
            importance,
        });
    }

    let starts = held.iter().map(|h| h.dep.started_at);
    let holdout = Holdout {
        fraction: cfg.holdout,
        deployments_total: total,
        deployments_held_out: n_hold.min(total),
        deployments_seen_in_training: seen.len(),
        deployments: held.len(),
        rows: held.iter().map(|h| h.rows.len()).sum(),
        failing: held.iter().filter(|h| h.failed).count(),
        healthy: held.iter().filter(|h| !h.failed).count(),
        started_from: starts.clone().min().map(rfc3339),
        started_to: starts.max().map(rfc3339),
    };
    Ok(Evaluation {
        store: store.url().to_string(),
        registry: registry_url.to_string(),
        holdout,
        policy: args.policy.clone(),
        judge: JudgeFigures { name: "mann-whitney".into(), metrics: judge_names, decisions: judge_dec, by_mode: judge_modes },
        sequence: args.sequence.as_ref().map(|s| format!("{}/{}", s.name, s.version)),
        performance: args.performance.as_ref().map(|p| format!("{}/{}", p.name, p.version)),
        models,
        sequence_challenger: None,
        profiles: profile_mix(store).await?,
        report: None,
    })
}

fn col_err(column: &str, e: PolarsError) -> Error {
    Error::input("features/", format!("column `{column}`: {e} (rebuild with `omen features build`)"))
}

fn minutes(us: i64) -> f64 {
    us as f64 / 60e6
}


/// The median of `v` (the mean of the two middle values for an even count); `None` when empty.
pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// The canary's weight at `t`: the last step at or before it (the first step before any).
fn weight_at(d: &Deployment, t: i64) -> f64 {
    d.steps.iter().rev().find(|s| s.0 <= t).or(d.steps.first()).map_or(0.0, |s| s.1)
}

/// The ground truth the deployments carry beyond the contract (`extra`): failure mode and bait.
async fn read_truth(store: &Store) -> Result<HashMap<String, (String, String)>> {
    let mut out = HashMap::new();
    let Some(df) = store.read_parquet_tree("deployments").await? else { return Ok(out) };
    let (Ok(ids), Ok(extra)) = (df.column("deployment_id"), df.column("extra")) else { return Ok(out) };
    let (Ok(ids), Ok(extra)) = (ids.str(), extra.str()) else { return Ok(out) };
    for (id, e) in ids.iter().zip(extra.iter()) {
        let (Some(id), Some(e)) = (id, e) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(e) else { continue };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("none").to_string();
        out.insert(id.to_string(), (text("failure_mode"), text("bait")));
    }
    Ok(out)
}

/// The judge's answer at one checkpoint.
struct JudgeAt {
    classification: Classification,
    score: f64,
    critical: Vec<String>,
    mostly_nodata: bool,
    /// The sequence models' forecast SLO breaches at the checkpoint (none without them).
    breaches: Vec<omen_models::sequence::SloBreach>,
}

/// The reference judge at every checkpoint of every held-out deployment, as `omen-serve` judges a
/// request carrying the samples from the canary start to the checkpoint.
async fn judge_checkpoints(
    store: &Store,
    deployments: &[Deployment],
    held: &[Held<'_>],
    configured: Option<&JudgeParams>,
    sequence: Option<&SequenceCandidate>,
    policy: &Policy,
) -> Result<(Vec<String>, Vec<Vec<JudgeAt>>)> {
    // One read of `metrics/` for the judge and the sequence models.
    let only: Vec<String> = match configured {
        Some(j) => {
            let mut only: Vec<String> = j.metrics.iter().map(|m| m.name.clone()).collect();
            only.extend(sequence.iter().flat_map(|s| s.model.layout.metrics.iter().cloned()));
            only.sort();
            only.dedup();
            only
        }
        None => Vec::new(),
    };
    let (samples, names) = crate::features::read_samples(store, deployments, &only).await?;
    let judged: Vec<String> = match configured {
        Some(j) => j.metrics.iter().map(|m| m.name.clone()).collect(),
        None => names.iter().filter(|m| !crate::features::is_counter(m)).cloned().collect(),
    };
    let params: Option<ValidJudgeParams> = match configured {
        Some(j) => Some(j.clone().check()?),
        None => default_judge(&judged)?,
    };
    let index: HashMap<&str, usize> = deployments.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
    let metric_ids: Vec<(usize, &String)> = names.iter().enumerate().filter(|(_, n)| judged.contains(*n)).collect();
    // The held-out deployments' windows, as `omen-serve` gathers a request's samples.
    let mut windows: HashMap<usize, omen_features::feature::WindowsBuilder> = HashMap::new();
    if sequence.is_some() {
        for h in held {
            let d = h.dep;
            windows.insert(index[d.id.as_str()], omen_features::feature::WindowsBuilder::new(d.started_at, None, None, d.steps.clone()));
        }
        for ((di, mi, role), list) in &samples.groups {
            if let Some(b) = windows.get_mut(di) {
                b.extend(&names[*mi as usize], *role, list.iter().cloned());
            }
        }
    }
    let windows: HashMap<usize, omen_features::feature::DeploymentWindows> = windows.into_iter().map(|(k, b)| (k, b.finish())).collect();
    let mut out = Vec::with_capacity(held.len());
    for h in held {
        let di = index[h.dep.id.as_str()];
        let series: Vec<(&str, Vec<(i64, f64)>, Vec<(i64, f64)>)> = metric_ids
            .iter()
            .map(|(mi, name)| {
                let get = |role: Role| {
                    let mut v: Vec<(i64, f64)> =
                        samples.groups.get(&(di, *mi as u32, role)).map(|s| s.iter().map(|x| (x.ts, x.value)).collect()).unwrap_or_default();
                    v.sort_by_key(|x| x.0);
                    v
                };
                (name.as_str(), get(Role::Canary), get(Role::Baseline))
            })
            .collect();
        let mut at = Vec::with_capacity(h.rows.len());
        for &(_, cp) in &h.rows {
            // The code `omen-serve` runs: `SequenceModel::assess` against the service's SLOs.
            let breaches = match (sequence, windows.get(&di)) {
                (Some(s), Some(w)) => {
                    s.model.assess(w, cp, h.dep.started_at, policy.slo(&h.dep.service))?.map(|a| a.breaches).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let Some(p) = &params else {
                at.push(JudgeAt { classification: Classification::Pass, score: 0.0, critical: vec![], mostly_nodata: true, breaches });
                continue;
            };
            let within = |v: &[(i64, f64)]| -> Vec<f64> { v.iter().filter(|x| x.0 >= h.dep.started_at && x.0 <= cp).map(|x| x.1).collect() };
            let values: Vec<(&str, Vec<f64>, Vec<f64>)> = series.iter().map(|(n, c, b)| (*n, within(c.as_slice()), within(b.as_slice()))).collect();
            let inputs: Vec<MetricInput<'_>> = values.iter().map(|(name, c, b)| MetricInput { name, canary: c, baseline: b }).collect();
            let rep = judge::judge(p, &inputs);
            let nodata = rep.metrics.iter().filter(|m| m.classification == judge::Verdict::NoData).count();
            at.push(JudgeAt {
                classification: rep.classification,
                score: rep.score,
                critical: rep.critical_failures.clone(),
                mostly_nodata: rep.metrics.is_empty() || nodata * 2 >= rep.metrics.len(),
                breaches,
            });
        }
        out.push(at);
    }
    Ok((judged, out))
}

/// `omen-serve`'s judge when `[serve.judge]` is absent: every metric, both directions, pass at
/// 95, marginal at 75.
fn default_judge(names: &[String]) -> Result<Option<ValidJudgeParams>> {
    if names.is_empty() {
        return Ok(None);
    }
    let json = serde_json::json!({
        "metrics": names.iter().map(|n| serde_json::json!({"name": n, "groups": ["all"]})).collect::<Vec<_>>(),
        "scoreThresholds": {"pass": 95.0, "marginal": 75.0},
    });
    let p: JudgeParams = serde_json::from_value(json).map_err(|e| Error::input("serve.judge", e.to_string()))?;
    Ok(Some(p.check()?))
}

/// The model's inputs for every row of `df`, row-major, as `omen train` encoded them.
fn design(df: &DataFrame, features: &[String], model: &str) -> Result<Vec<f64>> {
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(features.len());
    for f in features {
        if let Ok(c) = df.column(f) {
            let c = c.cast(&DataType::Float64).map_err(|e| Error::input("features/", format!("column `{f}`: {e}")))?;
            cols.push(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
        } else if let Some((name, level)) = f.split_once('=')
            && let Ok(c) = df.column(name)
            && let Ok(s) = c.str()
        {
            cols.push(s.iter().map(|v| encode_indicator(v, level)).collect());
        } else {
            return Err(Error::input(model, format!("input `{f}` is not a column of features/ (the model was trained on another feature table)")));
        }
    }
    let n = df.height();
    let mut x = Vec::with_capacity(n * features.len());
    for i in 0..n {
        for c in &cols {
            x.push(c[i]);
        }
    }
    Ok(x)
}

fn decisions(held: &[Held<'_>], at: &[Option<f64>]) -> Decisions {
    let failing = held.iter().filter(|h| h.failed).count();
    let healthy = held.len() - failing;
    let detection: Vec<f64> = held.iter().zip(at).filter(|(h, _)| h.failed).filter_map(|(_, a)| *a).collect();
    let false_rollbacks = held.iter().zip(at).filter(|(h, a)| !h.failed && a.is_some()).count();
    Decisions {
        deployments: held.len(),
        failing,
        healthy,
        detected: detection.len(),
        false_rollbacks,
        recall: (failing > 0).then(|| detection.len() as f64 / failing as f64),
        false_rollback_rate: (healthy > 0).then(|| false_rollbacks as f64 / healthy as f64),
        detection_minutes_median: median(&detection),
        detection_minutes: detection,
    }
}

fn lead(held: &[Held<'_>], omen: &[Option<f64>], judge: &[Option<f64>], horizon: &[f64], keep: impl Fn(&Held<'_>) -> bool) -> Lead {
    let mut l = Lead::default();
    for (k, h) in held.iter().enumerate() {
        if !h.failed || !keep(h) || (omen[k].is_none() && judge[k].is_none()) {
            continue;
        }
        let v = judge[k].unwrap_or(horizon[k]) - omen[k].unwrap_or(horizon[k]);
        l.deployments += 1;
        match v.total_cmp(&0.0) {
            std::cmp::Ordering::Greater => l.omen_earlier += 1,
            std::cmp::Ordering::Less => l.judge_earlier += 1,
            std::cmp::Ordering::Equal => l.same += 1,
        }
        l.minutes.push(v);
    }
    l.median_minutes = median(&l.minutes);
    l
}

fn by_mode(held: &[Held<'_>], omen: &[Option<f64>], judge: &[Option<f64>], horizon: &[f64], slow: &[String]) -> Vec<ModeFigures> {
    let modes: std::collections::BTreeSet<&str> = held.iter().filter(|h| h.failed).map(|h| h.mode.as_str()).collect();
    modes
        .into_iter()
        .map(|mode| {
            let idx: Vec<usize> = (0..held.len()).filter(|&k| held[k].failed && held[k].mode == mode).collect();
            let n = idx.len();
            let det = |at: &[Option<f64>]| idx.iter().filter_map(|&k| at[k]).collect::<Vec<f64>>();
            let (o, j) = (det(omen), det(judge));
            ModeFigures {
                mode: mode.to_string(),
                slow: slow.iter().any(|s| s == mode),
                deployments: n,
                omen_recall: (n > 0).then(|| o.len() as f64 / n as f64),
                judge_recall: (n > 0).then(|| j.len() as f64 / n as f64),
                omen_detection_minutes_median: median(&o),
                judge_detection_minutes_median: median(&j),
                lead: lead(held, omen, judge, horizon, |h| h.mode == mode),
            }
        })
        .collect()
}

fn by_bait(held: &[Held<'_>], omen: &[Option<f64>], judge: &[Option<f64>]) -> Vec<BaitFigures> {
    let mut m: BTreeMap<&str, BaitFigures> = BTreeMap::new();
    for (k, h) in held.iter().enumerate().filter(|(_, h)| !h.failed) {
        let e = m.entry(h.bait.as_str()).or_insert_with(|| BaitFigures { bait: h.bait.clone(), deployments: 0, omen_false_rollbacks: 0, judge_false_rollbacks: 0 });
        e.deployments += 1;
        e.omen_false_rollbacks += usize::from(omen[k].is_some());
        e.judge_false_rollbacks += usize::from(judge[k].is_some());
    }
    m.into_values().collect()
}

/// Points of the curve at every distinct threshold, thinned to at most 200.
fn thin(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    if points.len() <= 200 {
        return points;
    }
    let step = points.len() as f64 / 199.0;
    let mut out: Vec<[f64; 2]> = (0..199).map(|i| points[(i as f64 * step) as usize]).collect();
    out.push(points[points.len() - 1]);
    out
}

/// Sorted by descending probability; each distinct threshold's cumulative (tp, fp).
fn sweep(y: &[f64], p: &[f64]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (k, &i) in idx.iter().enumerate() {
        if y[i] == 1.0 { tp += 1 } else { fp += 1 }
        if k + 1 == idx.len() || p[idx[k + 1]] != p[i] {
            out.push((tp, fp));
        }
    }
    out
}

fn roc_curve(y: &[f64], p: &[f64]) -> Vec<[f64; 2]> {
    let pos = y.iter().filter(|&&v| v == 1.0).count();
    let neg = y.len() - pos;
    if pos == 0 || neg == 0 {
        return vec![];
    }
    let mut pts = vec![[0.0, 0.0]];
    pts.extend(sweep(y, p).into_iter().map(|(tp, fp)| [fp as f64 / neg as f64, tp as f64 / pos as f64]));
    thin(pts)
}

fn pr_curve(y: &[f64], p: &[f64]) -> Vec<[f64; 2]> {
    let pos = y.iter().filter(|&&v| v == 1.0).count();
    if pos == 0 {
        return vec![];
    }
    thin(sweep(y, p).into_iter().map(|(tp, fp)| [tp as f64 / pos as f64, tp as f64 / (tp + fp) as f64]).collect())
}

fn calibration_curve(y: &[f64], p: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut n = vec![0usize; bins];
    for (&yi, &pi) in y.iter().zip(p) {
        let b = ((pi * bins as f64) as usize).min(bins - 1);
        sum_p[b] += pi;
        sum_y[b] += yi;
        n[b] += 1;
    }
    (0..bins)
        .map(|b| CalibrationBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count: n[b],
            mean_predicted: (n[b] > 0).then(|| sum_p[b] / n[b] as f64),
            observed: (n[b] > 0).then(|| sum_y[b] / n[b] as f64),
        })
        .collect()
}

/// The latest profile set of each service (and the global one), when `profiles/` has any.
async fn profile_mix(store: &Store) -> Result<Vec<ProfileMix>> {
    let sets = match crate::profiles::list(store).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "profiles/ unreadable: the report has no profile mix");
            return Ok(vec![]);
        }
    };
    // The latest set per service scope (list is oldest first).
    let mut latest: BTreeMap<Option<String>, String> = BTreeMap::new();
    for s in &sets {
        latest.insert(s.service.clone(), s.version.clone());
    }
    let mut out = Vec::new();
    for version in latest.into_values() {
        let set = crate::profiles::load(store, &version).await?;
        out.push(ProfileMix {
            version: set.version.clone(),
            service: set.service.clone(),
            profiles: set
                .profiles
                .iter()
                .map(|p| ProfileShare {
                    id: p.id.clone(),
                    share: p.share,
                    top_route: p.routes.first().map(|r| format!("{} {}", r.method, r.route)).unwrap_or_default(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Writes `index.html` and `metrics.json` into `dir` (a local folder).
pub fn write_report(dir: &std::path::Path, e: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|err| Error::input(dir.display().to_string(), err.to_string()))?;
    let json = serde_json::to_vec_pretty(e).map_err(|err| Error::input("metrics.json", err.to_string()))?;
    for (name, bytes) in [("metrics.json", json), ("index.html", crate::report::html(e).into_bytes())] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|err| Error::input(p.display().to_string(), err.to_string()))?;
    }
    Ok(())
}

/// Writes `index.html` and `metrics.json` under `prefix` of the store.
pub async fn put_report(store: &Store, prefix: &str, e: &Evaluation) -> Result<()> {
    let json = serde_json::to_vec_pretty(e).map_err(|err| Error::input("metrics.json", err.to_string()))?;
    store.put(&format!("{prefix}/metrics.json"), json.into()).await?;
    store.put(&format!("{prefix}/index.html"), crate::report::html(e).into_bytes().into()).await?;
    Ok(())
}
