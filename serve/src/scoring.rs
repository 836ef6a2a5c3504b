//! One answer: validate the request, gather its samples into windows, compute the model inputs
//! with `omen_features::feature` (the code `omen features build` runs), predict, judge, decide.
//! CPU-bound: callers run it off the async runtime.

use std::collections::BTreeMap;

use omen_features::feature::{
    ChangeContext, DeploymentRef, Kind, Role, Sample, Value, WindowsBuilder, change_columns, change_context_at, series_id,
};
use omen_features::ingest::metrics::canonical_labels;
use omen_models::judge::{self, Classification, JudgeParams, MetricInput, ValidJudgeParams, Verdict};

use crate::config::{Limits, SYNTHETIC_FIELDS, SyntheticLoadConfig};
use crate::error::{Error, Result};
use crate::models::{Loaded, Snapshot};
use crate::policy::{Evidence, Policy, StreamState};
use crate::proto;

/// The scoring settings, validated once.
#[derive(Debug, Clone)]
pub struct Scorer {
    pub policy: Policy,
    /// `None`: judge every metric of a request with Kayenta's defaults.
    pub judge: Option<ValidJudgeParams>,
    pub limits: Limits,
    /// Reasons per answer.
    pub reasons: usize,
    /// The metrics of the synthetic-load results' fields.
    pub synthetic_load: SyntheticLoadConfig,
    /// Without `judge`: the default judge of each set of metric names, built once per set.
    pub judges: JudgeCache,
    /// The change context of each canary, per loaded history.
    pub contexts: ContextCache,
}

/// The change context (the change features over the commit range, the service's deployment
/// history before the canary started) per (history loaded, service, deployment, range, start).
/// A deployer asks about the same canary every few seconds while its samples grow; the context
/// depends on none of the samples, and building it walks the service's past deployments. A new
/// snapshot (reload) is a new key. Bounded: when full it starts again.
#[derive(Debug, Clone, Default)]
pub struct ContextCache(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ContextKey, std::sync::Arc<ChangeContext>>>>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ContextKey {
    history: usize,
    loaded_at: u64,
    service: String,
    deployment_id: String,
    from_sha: String,
    to_sha: String,
    started: i64,
}

impl ContextCache {
    const CAPACITY: usize = 4096;

    fn get(&self, snap: &Snapshot, r: &proto::ScoreRequest, started: i64) -> std::sync::Arc<ChangeContext> {
        let range = match r.change.as_ref().and_then(|c| c.kind.as_ref()) {
            Some(proto::change::Kind::Commits(c)) => Some((c.from_sha.as_str(), c.to_sha.as_str())),
            None => Some(("", "")),
            // Change metrics given in the request: nothing worth keeping.
            Some(proto::change::Kind::Metrics(_)) => None,
        };
        let Some((from, to)) = range else { return std::sync::Arc::new(change_context(snap, r, started)) };
        let key = ContextKey {
            history: std::sync::Arc::as_ptr(&snap.history) as usize,
            loaded_at: snap.loaded_at.to_bits(),
            service: r.service.clone(),
            deployment_id: r.deployment_id.clone(),
            from_sha: from.to_string(),
            to_sha: to.to_string(),
            started,
        };
        if let Some(c) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return c.clone();
        }
        let ctx = std::sync::Arc::new(change_context(snap, r, started));
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key, ctx.clone());
        ctx
    }
}

/// The default judge parameters per set of metric names. Callers send the same few sets over
/// and over; building and checking parameters per call would cost more than judging. Keyed by
/// the sorted, distinct names, each after its length (so no two sets share a key). Bounded:
/// when full it starts again.
#[derive(Debug, Clone, Default)]
pub struct JudgeCache(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Option<std::sync::Arc<ValidJudgeParams>>>>>);

impl JudgeCache {
    const CAPACITY: usize = 1024;

    fn get(&self, r: &proto::ScoreRequest) -> Option<std::sync::Arc<ValidJudgeParams>> {
        let mut names: Vec<&str> = r.metrics.iter().map(|m| m.metric.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut key = String::new();
        for n in &names {
            key.push_str(&n.len().to_string());
            key.push(':');
            key.push_str(n);
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(&key) {
            return v.clone();
        }
        let v = judge_params(&names).map(std::sync::Arc::new);
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key, v.clone());
        v
    }
}

const US: f64 = 1e6;

fn finite(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() { Ok(v) } else { Err(Error::invalid(field, format!("must be a finite number, got {v}"))) }
}

/// Unix seconds to µs.
fn micros(field: &str, t: f64) -> Result<i64> {
    let t = finite(field, t)?;
    if !(0.0..=1e11).contains(&t) {
        return Err(Error::invalid(field, format!("must be Unix seconds, got {t}")));
    }
    Ok((t * US).round() as i64)
}

/// Checks a request against the contract and the limits; the error names the field.
pub fn validate(r: &proto::ScoreRequest, limits: &Limits) -> Result<()> {
    if r.service.trim().is_empty() {
        return Err(Error::invalid("service", "required"));
    }
    if r.deployment_id.trim().is_empty() {
        return Err(Error::invalid("deployment_id", "required"));
    }
    if !(0.0..=100.0).contains(&finite("current_weight", r.current_weight)?) {
        return Err(Error::invalid("current_weight", format!("must lie in [0, 100], got {}", r.current_weight)));
    }
    if finite("elapsed_seconds", r.elapsed_seconds)? < 0.0 {
        return Err(Error::invalid("elapsed_seconds", format!("must not be negative, got {}", r.elapsed_seconds)));
    }
    if r.started_at != 0.0 {
        micros("started_at", r.started_at)?;
    }
    if r.metrics.len() > limits.max_metrics {
        return Err(Error::invalid("metrics", format!("{} metrics, at most {}", r.metrics.len(), limits.max_metrics)));
    }
    for (i, m) in r.metrics.iter().enumerate() {
        if m.metric.trim().is_empty() {
            return Err(Error::invalid(format!("metrics[{i}].metric"), "required"));
        }
        for (role, samples) in [("canary", &m.canary), ("baseline", &m.baseline), ("loadtest", &m.loadtest)] {
            if samples.len() > limits.max_samples {
                return Err(Error::invalid(format!("metrics[{i}].{role}"), format!("{} samples, at most {}", samples.len(), limits.max_samples)));
            }
            // The field is named only when a sample is at fault (no allocation per sample).
            if let Some(j) = samples.iter().position(|s| !(s.time.is_finite() && (0.0..=1e11).contains(&s.time))) {
                micros(&format!("metrics[{i}].{role}[{j}].time"), samples[j].time)?;
            }
        }
    }
    for (i, s) in r.steps.iter().enumerate() {
        if !(s.time.is_finite() && (0.0..=1e11).contains(&s.time)) {
            micros(&format!("steps[{i}].time"), s.time)?;
        }
        if !(0.0..=100.0).contains(&finite(&format!("steps[{i}].weight"), s.weight)?) {
            return Err(Error::invalid(format!("steps[{i}].weight"), format!("must lie in [0, 100], got {}", s.weight)));
        }
    }
    match r.change.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(proto::change::Kind::Commits(c)) if c.to_sha.trim().is_empty() => {
            return Err(Error::invalid("change.commits.to_sha", "required"));
        }
        Some(proto::change::Kind::Metrics(m)) => {
            let known: Vec<String> = change_columns().into_iter().map(|c| c.0).collect();
            for (k, v) in &m.values {
                if !known.contains(k) || k == "change_state" {
                    return Err(Error::invalid(format!("change.metrics.values[{k}]"), "not a change feature (see docs/features.md)"));
                }
                finite(&format!("change.metrics.values[{k}]"), *v)?;
            }
        }
        _ => {}
    }
    if r.synthetic_load.len() > limits.max_samples {
        return Err(Error::invalid("synthetic_load", format!("{} results, at most {}", r.synthetic_load.len(), limits.max_samples)));
    }
    for (i, s) in r.synthetic_load.iter().enumerate() {
        for d in &SYNTHETIC_FIELDS {
            finite(&format!("synthetic_load[{i}].{}", d.name), (d.value)(s))?;
        }
    }
    Ok(())
}

/// The request's synthetic-load results as load-test samples of the mapped metrics (see
/// [`SyntheticLoadConfig`]): one per result and mapped field, at the checkpoint, each result a
/// series of its own.
pub fn synthetic_samples<'a>(config: &'a SyntheticLoadConfig, r: &proto::ScoreRequest, checkpoint: i64) -> Vec<(&'a str, Sample)> {
    let mapped: Vec<_> = config.mapped().collect();
    let mut out = Vec::new();
    if mapped.is_empty() {
        return out;
    }
    for (i, s) in r.synthetic_load.iter().enumerate() {
        let name = if s.name.trim().is_empty() { i.to_string() } else { s.name.clone() };
        let series = series_id(&canonical_labels([("synthetic_load", name.as_str())]));
        for &(d, map) in &mapped {
            out.push((map.metric.as_str(), Sample { ts: checkpoint, series, value: (d.value)(s) * map.scale }));
        }
    }
    out
}

/// What a stream remembers of its canary besides the policy's state.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub policy: StreamState,
    /// Steps seen so far `(µs, weight)`.
    pub steps: Vec<(i64, f64)>,
    pub deployment_id: String,
}

/// The time frame of a request: the canary start and the checkpoint (now), µs.
fn frame(r: &proto::ScoreRequest, now_us: i64) -> Result<(i64, i64)> {
    let elapsed = (r.elapsed_seconds * US).round() as i64;
    if r.started_at != 0.0 {
        let start = micros("started_at", r.started_at)?;
        return Ok((start, start + elapsed.max(0)));
    }
    let latest = r
        .metrics
        .iter()
        .flat_map(|m| m.canary.iter().chain(&m.baseline))
        .map(|s| (s.time * US).round() as i64)
        .max()
        .unwrap_or(now_us);
    Ok((latest - elapsed, latest))
}

fn change_context(snap: &Snapshot, r: &proto::ScoreRequest, started: i64) -> ChangeContext {
    let empty = omen_features::feature::RepoHistory::default();
    let repo = snap.history.repos.get(&r.service).unwrap_or(&empty);
    let known: Vec<DeploymentRef<'_>> = snap
        .history
        .deployments
        .get(&r.service)
        .map(|v| v.iter().filter(|d| d.id != r.deployment_id).map(|d| d.as_ref()).collect())
        .unwrap_or_default();
    match r.change.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(proto::change::Kind::Commits(c)) => {
            let from = (!c.from_sha.is_empty()).then_some(c.from_sha.as_str());
            change_context_at(repo, &known, from, &c.to_sha, started)
        }
        Some(proto::change::Kind::Metrics(m)) => {
            // The history context from the store; the change features as given.
            let mut ctx = change_context_at(repo, &known, None, "", started);
            let cols = change_columns();
            ctx.features.values = cols
                .iter()
                .map(|(name, kind, _)| {
                    if name == "change_state" {
                        return Value::Str(Some("ok".into()));
                    }
                    let v = m.values.get(name).copied();
                    match kind {
                        Kind::Float => Value::float(v),
                        Kind::Int => Value::Int(v.map(|x| x.round() as i64)),
                        Kind::Bool => Value::Bool(v.map(|x| x != 0.0)),
                        Kind::Str => Value::Str(None),
                    }
                })
                .collect();
            ctx
        }
        None => change_context_at(repo, &known, None, "", started),
    }
}

/// The inputs of `m` for this request: the row of its feature set, then the model's vector.
fn inputs(m: &Loaded, windows: &omen_features::feature::DeploymentWindows, checkpoint: i64, ctx: &ChangeContext) -> (Vec<Value>, Vec<f64>) {
    let row = m.features.inputs(windows, checkpoint, &ctx.features, ctx.history);
    let x = m.encoder.encode(&row);
    (row, x)
}

fn judge_params(names: &[&str]) -> Option<ValidJudgeParams> {
    if names.is_empty() {
        return None;
    }
    let json = serde_json::json!({
        "metrics": names.iter().map(|n| serde_json::json!({"name": n, "groups": ["all"]})).collect::<Vec<_>>(),
        "scoreThresholds": {"pass": 95.0, "marginal": 75.0},
    });
    serde_json::from_value::<JudgeParams>(json).ok()?.check().ok()
}

impl Scorer {
    /// Scores one request. `memory` is a stream's (or a fresh one for a unary call).
    pub fn score(&self, snap: &Snapshot, r: &proto::ScoreRequest, memory: &mut Memory, stream: bool, now_us: i64) -> Result<proto::ScoreResponse> {
        validate(r, &self.limits)?;
        let failure = snap.failure.as_ref().ok_or_else(|| Error::Unavailable("no failure model is loaded yet (no champion of omen-failure in the registry)".into()))?;
        let (started, checkpoint) = frame(r, now_us)?;
        // Steps: the request's, the stream's, and the weight now.
        for s in &r.steps {
            memory.steps.push(((s.time * US).round() as i64, s.weight));
        }
        memory.steps.push((checkpoint, r.current_weight));
        memory.steps.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        memory.steps.dedup();
        if memory.steps.len() > 10_000 {
            memory.steps.drain(..memory.steps.len() - 10_000);
        }
        let mut builder = WindowsBuilder::new(started, None, None, memory.steps.clone());
        let mut judged: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for m in &r.metrics {
            let labels = canonical_labels(m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let series = series_id(&labels);
            let sample = |s: &proto::Sample| Sample { ts: (s.time * US).round() as i64, series, value: s.value };
            builder.extend(&m.metric, Role::Canary, m.canary.iter().map(sample));
            builder.extend(&m.metric, Role::Baseline, m.baseline.iter().map(sample));
            builder.extend(&m.metric, Role::LoadTest, m.loadtest.iter().map(sample));
            let e = judged.entry(m.metric.as_str()).or_default();
            e.0.extend(m.canary.iter().filter(|s| within(s, started, checkpoint)).map(|s| s.value));
            e.1.extend(m.baseline.iter().filter(|s| within(s, started, checkpoint)).map(|s| s.value));
        }
        for (metric, sample) in synthetic_samples(&self.synthetic_load, r, checkpoint) {
            builder.extend(metric, Role::LoadTest, std::iter::once(sample));
        }
        let windows = builder.finish();
        let ctx = self.contexts.get(snap, r, started);

        // The failure model: calibrated probability, and the TreeSHAP reasons.
        let (_, x) = inputs(failure, &windows, checkpoint, &ctx);
        let probability = failure.model.predict_calibrated(&x).clamp(0.0, 1.0);
        let confidence = probability.max(1.0 - probability);
        let shap = failure.model.shap(&x);

        // The performance model, when there is one.
        let mut performance = Vec::new();
        let mut evidence_perf = Vec::new();
        if let Some(p) = &snap.performance {
            let (_, xp) = inputs(p, &windows, checkpoint, &ctx);
            let point = p.model.predict(&xp);
            let metric = p.target_metric.clone().unwrap_or_else(|| p.version.name.clone());
            let band = |coverage: f64| {
                p.bands.iter().find(|b| (b.conformal.coverage - coverage).abs() < 1e-9).map(|b| {
                    let (lower, upper) = b.around(&xp, point);
                    proto::Interval { lower, upper }
                })
            };
            let (interval_80, interval_95) = (band(0.8), band(0.95));
            evidence_perf.push((metric.clone(), point, interval_95.as_ref().map(|i| i.lower)));
            performance.push(proto::PerformancePrediction { metric, point, interval_80, interval_95 });
        }

        // The sequence models, when there is a champion: the very `assess` that `omen evaluate`
        // replays held-out canaries through.
        let assessment = match &snap.sequence {
            Some(s) => s.model.assess(&windows, checkpoint, started, self.policy.slo(&r.service))?,
            None => None,
        };

        // The reference judge on the same windows.
        let cached;
        let params: Option<&ValidJudgeParams> = match &self.judge {
            Some(p) => Some(p),
            None => {
                cached = self.judges.get(r);
                cached.as_deref()
            }
        };
        let report = params.map(|p| {
            let inputs: Vec<MetricInput<'_>> =
                judged.iter().map(|(name, (c, b))| MetricInput { name, canary: c, baseline: b }).collect();
            judge::judge(p, &inputs)
        });
        let (classification, judge_score, critical, mostly_nodata, verdicts) = match &report {
            Some(rep) => {
                let nodata = rep.metrics.iter().filter(|m| m.classification == Verdict::NoData).count();
                (
                    rep.classification,
                    rep.score,
                    rep.critical_failures.clone(),
                    rep.metrics.is_empty() || nodata * 2 >= rep.metrics.len(),
                    rep.metrics.clone(),
                )
            }
            None => (Classification::Pass, 0.0, vec![], true, vec![]),
        };
        let evidence = Evidence {
            probability,
            confidence,
            critical_failures: critical,
            judge: classification,
            judge_score,
            mostly_nodata,
            performance: evidence_perf,
            breaches: assessment.as_ref().map(|a| a.breaches.clone()).unwrap_or_default(),
            service: r.service.clone(),
            current_weight: r.current_weight,
        };
        let outcome = self.policy.decide(&evidence, &mut memory.policy, stream);

        // Reasons: the policy's rule, the metrics that were not PASS, the largest contributions.
        let mut reasons = vec![proto::Reason {
            kind: proto::reason::Kind::Policy as i32,
            name: outcome.decision.as_str().into(),
            value: None,
            contribution: 0.0,
            detail: outcome.because.join("; "),
        }];
        for v in verdicts.iter().filter(|v| v.classification != Verdict::Pass) {
            reasons.push(proto::Reason {
                kind: proto::reason::Kind::Metric as i32,
                name: v.name.clone(),
                value: v.effect_size,
                contribution: 0.0,
                detail: v.reason.clone(),
            });
        }
        let mut order: Vec<usize> = (0..shap.len()).filter(|&i| shap[i] != 0.0).collect();
        order.sort_by(|&a, &b| shap[b].abs().total_cmp(&shap[a].abs()).then(a.cmp(&b)));
        for &i in order.iter().take(self.reasons) {
            let name = &failure.model.feature_names[i];
            reasons.push(proto::Reason {
                kind: proto::reason::Kind::Feature as i32,
                name: name.clone(),
                value: x[i].is_finite().then_some(x[i]),
                contribution: shap[i],
                detail: format!("{} the failure log-odds by {:.3}", if shap[i] > 0.0 { "raises" } else { "lowers" }, shap[i].abs()),
            });
        }
        let mut models = vec![used(&failure.version)];
        if let Some(p) = &snap.performance {
            models.push(used(&p.version));
        }
        if let (Some(s), Some(_)) = (&snap.sequence, &assessment) {
            models.push(used(&s.version));
        }
        Ok(proto::ScoreResponse {
            deployment_id: r.deployment_id.clone(),
            failure_probability: probability,
            confidence,
            performance,
            verdicts: verdicts.iter().map(verdict).collect(),
            judge_score,
            decision: match outcome.decision {
                crate::policy::Decision::Promote => proto::Decision::Promote,
                crate::policy::Decision::Continue => proto::Decision::Continue,
                crate::policy::Decision::Hold => proto::Decision::Hold,
                crate::policy::Decision::Rollback => proto::Decision::Rollback,
            } as i32,
            next_weight: outcome.next_weight,
            reasons,
            models,
            explanation: format!(
                "{}: {} (failure probability {:.2}, confidence {:.2}, judge {:.0})",
                outcome.decision.as_str(),
                outcome.because.join("; "),
                probability,
                confidence,
                judge_score
            ),
            sequence: assessment.map(sequence_answer),
        })
    }
}

fn within(s: &proto::Sample, start: i64, end: i64) -> bool {
    let t = (s.time * US).round() as i64;
    t >= start && t <= end
}

/// A champion as the answer names it.
pub(crate) fn used(v: &omen_models::registry::ModelVersion) -> proto::ModelUsed {
    proto::ModelUsed {
        name: v.name.clone(),
        version: v.version,
        alias: omen_models::registry::CHAMPION.into(),
        artifact_blake3: v.artifact.blake3.clone(),
    }
}

fn sequence_answer(a: omen_models::sequence::Assessment) -> proto::SequenceAssessment {
    proto::SequenceAssessment {
        failure_probability: a.failure_probability,
        window_end: a.end as f64 / US,
        step_seconds: a.step_us as f64 / US,
        steps_with_data: a.steps_with_data as u32,
        missing_metrics: a.missing,
        forecasts: a
            .forecasts
            .into_iter()
            .map(|f| proto::MetricForecast {
                metric: f.metric,
                levels: f.levels,
                steps: f.quantiles.into_iter().map(|values| proto::Quantiles { values }).collect(),
            })
            .collect(),
        breaches: a
            .breaches
            .into_iter()
            .map(|b| proto::SloBreach { metric: b.metric, limit: b.limit, probability: b.probability, step: b.step as u32 })
            .collect(),
    }
}

fn verdict(v: &judge::MetricVerdict) -> proto::MetricVerdict {
    proto::MetricVerdict {
        metric: v.name.clone(),
        verdict: match v.classification {
            Verdict::Pass => proto::Verdict::Pass,
            Verdict::High => proto::Verdict::High,
            Verdict::Low => proto::Verdict::Low,
            Verdict::NoData => proto::Verdict::Nodata,
        } as i32,
        effect_size: v.effect_size,
        p_value: v.p_value,
        shift: v.hl_estimate,
        canary_samples: v.n_canary as u32,
        baseline_samples: v.n_baseline as u32,
        critical_failure: v.critical_failure,
        reason: v.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use omen_features::feature::{LoadTestState, load_test_features};

    use super::*;
    use crate::config::SyntheticField;

    const S: i64 = 1_000_000;

    /// The load-test features of `metric` in the windows of `r` (started at 0, checkpoint 600 s),
    /// with the synthetic-load results mapped by `config`.
    fn load_test(config: &SyntheticLoadConfig, r: &proto::ScoreRequest, metric: &str) -> omen_features::feature::LoadTestFeatures {
        let mut builder = WindowsBuilder::new(0, None, None, vec![(0, 5.0)]);
        for m in &r.metrics {
            let sample = |s: &proto::Sample| Sample { ts: (s.time * US).round() as i64, series: series_id(""), value: s.value };
            builder.extend(&m.metric, Role::Baseline, m.baseline.iter().map(sample));
            builder.extend(&m.metric, Role::LoadTest, m.loadtest.iter().map(sample));
        }
        for (m, sample) in synthetic_samples(config, r, 600 * S) {
            builder.extend(m, Role::LoadTest, std::iter::once(sample));
        }
        let w = builder.finish();
        let s = &w.metrics[metric];
        load_test_features(s.loadtest.between(0, 600 * S), s.baseline.between(0, 600 * S))
    }

    #[test]
    fn synthetic_load_results_are_load_test_samples_of_the_mapped_metrics() {
        let p99 = "http_request_duration_seconds_p99";
        let baseline: Vec<proto::Sample> = (0..20).map(|i| proto::Sample { time: f64::from(i) * 30.0, value: 0.25 }).collect();
        let results = [(750.0, 0.5), (1000.0, 1.5), (500.0, 0.0)];
        let synthetic: Vec<proto::SyntheticLoad> = results
            .iter()
            .enumerate()
            .map(|(i, &(p99_ms, err))| proto::SyntheticLoad {
                // Two unnamed results and a named one: each is a series of its own.
                name: if i == 1 { "full-rate".into() } else { String::new() },
                rps: 900.0,
                latency_p50_ms: 100.0,
                latency_p99_ms: p99_ms,
                error_rate: err,
            })
            .collect();
        let request = |loadtest: Vec<proto::Sample>, synthetic_load: Vec<proto::SyntheticLoad>| proto::ScoreRequest {
            metrics: vec![proto::MetricSamples { metric: p99.into(), baseline: baseline.clone(), loadtest, ..Default::default() }],
            synthetic_load,
            ..Default::default()
        };
        let mapped = SyntheticLoadConfig {
            latency_p99_ms: Some(SyntheticField { metric: p99.into(), scale: 0.001 }),
            error_rate: Some(SyntheticField { metric: "http_error_rate".into(), scale: 1.0 }),
            ..Default::default()
        };
        // The same values sent as load-test samples under `metrics`.
        let as_samples: Vec<proto::Sample> = results.iter().enumerate().map(|(i, r)| proto::Sample { time: 100.0 + i as f64, value: r.0 / 1000.0 }).collect();
        let want = load_test(&SyntheticLoadConfig::default(), &request(as_samples, vec![]), p99);
        assert_eq!(want.state, Some(LoadTestState::Ok));
        assert_eq!(want.n, 3);
        let got = load_test(&mapped, &request(vec![], synthetic.clone()), p99);
        assert_eq!(got, want);
        assert_eq!(got.mean, Some(0.75));
        assert_eq!(got.shift, Some(0.5));
        // Another field into another metric (one without a baseline).
        let err = load_test(&mapped, &request(vec![], synthetic.clone()), "http_error_rate");
        assert_eq!((err.state, err.n, err.mean), (Some(LoadTestState::BaselineMissing), 3, Some(2.0 / 3.0)));
        // Without a mapping the results are not samples.
        let none = load_test(&SyntheticLoadConfig::default(), &request(vec![], synthetic), p99);
        assert_eq!((none.state, none.n), (Some(LoadTestState::NoData), 0));
    }

    #[test]
    fn a_synthetic_load_mapping_needs_a_metric_and_a_usable_scale() {
        let bad = |f: SyntheticField| SyntheticLoadConfig { latency_p50_ms: Some(f), ..Default::default() }.check().unwrap_err().to_string();
        assert!(bad(SyntheticField { metric: " ".into(), scale: 1.0 }).contains("serve.synthetic_load.latency_p50_ms.metric"));
        let e = bad(SyntheticField { metric: "m".into(), scale: 0.0 });
        assert!(e.contains("serve.synthetic_load.latency_p50_ms.scale") && e.contains("non-zero"), "{e}");
        assert!(bad(SyntheticField { metric: "m".into(), scale: f64::NAN }).contains("finite"));
        let text = "[serve.synthetic_load]\nlatency_p99_ms = { metric = \"p99\", scale = 0.001 }\n";
        let cfg: crate::config::ConfigFile = toml::from_str(text).unwrap();
        let mapped: Vec<_> = cfg.serve.synthetic_load.mapped().map(|(d, f)| (d.name, f.metric.as_str(), f.scale)).collect();
        assert_eq!(mapped, [("latency_p99_ms", "p99", 0.001)]);
        assert!(toml::from_str::<crate::config::ConfigFile>("[serve.synthetic_load]\nlatency_p90_ms = { metric = \"p\" }\n").is_err());
        // Every field of the proto can be mapped, under its own name.
        let all: String = SYNTHETIC_FIELDS.iter().map(|d| format!("{} = {{ metric = \"m_{}\" }}\n", d.name, d.name)).collect();
        let cfg: crate::config::ConfigFile = toml::from_str(&format!("[serve.synthetic_load]\n{all}")).unwrap();
        for d in &SYNTHETIC_FIELDS {
            assert_eq!((d.mapping)(&cfg.serve.synthetic_load).map(|f| f.metric.clone()), Some(format!("m_{}", d.name)));
        }
    }
}
