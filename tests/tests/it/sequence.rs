//! `omen train sequence`: the LSTM forecaster and failure classifier trained on a small store
//! (metrics ingested from a long CSV with gaps and NaN, deployments from JSON Lines), registered
//! as `omen-sequence`, fetched back through the registry's checksum, and predicting.

use std::fmt::Write as _;

use omen_features::feature::{Role, Sample, WindowsBuilder};
use omen_models::registry::{MlflowOptions, Registry, VersionRef};
use omen_models::sequence::SequenceModel;
use omen_tests::{json_ok, omen};

pub(crate) const START: i64 = 1_794_000_000; // 2026-11-11, seconds
pub(crate) const STEP: i64 = 30;
pub(crate) const STEPS: i64 = 80; // 40 minutes of canary
const N: usize = 90;

/// xorshift in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// (deployment start s, failing, samples as (metric, role, ts s, value)).
pub(crate) type Deployment = (i64, bool, Vec<(&'static str, Role, i64, f64)>);

/// Canary and baseline of two metrics every 30 s; every other deployment leaks memory (and its
/// latency creeps) from an onset between 2 and 12 minutes, and is rolled back. Scrapes go
/// missing now and then and some values are NaN.
fn history() -> Vec<Deployment> {
    let mut rng = Rng(0x5eed);
    (0..N)
        .map(|i| {
            let start = START + i as i64 * 7200;
            let failing = i % 2 == 1;
            let onset = 4 + (rng.next() * 20.0) as i64;
            let level = 80.0 + 60.0 * rng.next(); // each deployment its own latency level
            let mut samples = Vec::new();
            for s in 0..STEPS {
                let ts = start + s * STEP;
                for role in [Role::Canary, Role::Baseline] {
                    if rng.next() < 0.05 {
                        continue; // a missed scrape
                    }
                    let leak = if failing && role == Role::Canary && s >= onset { (s - onset) as f64 } else { 0.0 };
                    let memory = 500.0 + 10.0 * rng.next() + 4.0 * leak;
                    let latency = level * (1.0 + 0.05 * (rng.next() - 0.5)) + 0.6 * leak;
                    let latency = if rng.next() < 0.01 { f64::NAN } else { latency };
                    samples.push(("memory_mb", role, ts, memory));
                    samples.push(("latency_p99_ms", role, ts, latency));
                }
            }
            (start, failing, samples)
        })
        .collect()
}

fn rfc3339(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0).unwrap().to_rfc3339()
}

fn write_store_inputs(dir: &std::path::Path, history: &[Deployment]) -> (String, String) {
    let mut csv = String::from("ts,service,metric,value,role,deployment\n");
    let mut jsonl = String::new();
    for (i, (start, failing, samples)) in history.iter().enumerate() {
        for (metric, role, ts, v) in samples {
            let role = if *role == Role::Canary { "canary" } else { "baseline" };
            let value = if v.is_nan() { "NaN".to_string() } else { format!("{v:.3}") };
            writeln!(csv, "{},shop,{metric},{value},{role},d-{i:03}", rfc3339(*ts)).unwrap();
        }
        let end = start + STEPS * STEP;
        let outcome = if *failing { "rolled_back" } else { "success" };
        writeln!(
            jsonl,
            r#"{{"deployment_id":"d-{i:03}","service":"shop","version":"1.{i}","from_sha":null,"to_sha":"{i:040x}","started_at":"{}","ended_at":"{}","outcome":"{outcome}","steps":[{{"at":"{}","weight":10}},{{"at":"{}","weight":100}}]}}"#,
            rfc3339(*start),
            rfc3339(end),
            rfc3339(*start),
            rfc3339(start + 30 * 60)
        )
        .unwrap();
    }
    let m = dir.join("metrics.csv");
    let d = dir.join("deployments.jsonl");
    std::fs::write(&m, csv).unwrap();
    std::fs::write(&d, jsonl).unwrap();
    (m.display().to_string(), d.display().to_string())
}

/// A store in `dir/store` with [`history`]'s metrics and deployments ingested.
pub(crate) fn ingested_store(dir: &std::path::Path) -> (Vec<Deployment>, std::path::PathBuf) {
    let history = history();
    let (metrics, deployments) = write_store_inputs(dir, &history);
    let store = dir.join("store");
    let s = store.to_str().unwrap();
    json_ok(&omen(dir, &["ingest", "metrics", &metrics, "--store", s, "--json"]));
    json_ok(&omen(dir, &["ingest", "deployments", &deployments, "--store", s, "--json"]));
    (history, store)
}

#[test]
fn train_sequence_registers_a_model_that_reloads_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let (history, store) = ingested_store(dir.path());
    let s = store.to_str().unwrap();

    let out = dir.path().join("model");
    let j = json_ok(&omen(
        dir.path(),
        &["train", "sequence", "--store", s, "--window", "40", "--stride", "4", "--holdout", "0.25",
          "--param", "hidden=16", "--param", "epochs=40", "--param", "learning_rate=0.01", "--param", "horizon=6", "--param", "seed=3",
          "--param", "quantiles=0.1,0.5,0.9", "--slo", "memory_mb<=600", "--out", out.to_str().unwrap(), "--json"],
    ));
    assert_eq!(j["model"], "omen-sequence");
    assert_eq!(j["metrics"], serde_json::json!(["latency_p99_ms", "memory_mb"]));
    assert_eq!(j["deployments_test"], 23, "{j}");
    assert!(j["classifier"]["auc"].as_f64().unwrap() > 0.8, "held-out classifier: {}", j["classifier"]);
    let f = &j["forecaster"];
    assert!(f["mae"].as_f64().unwrap() < f["mae_persistence"].as_f64().unwrap(), "forecaster vs persistence: {j}");
    let coverage = f["coverage"].as_f64().unwrap();
    assert!((0.55..=0.98).contains(&coverage), "80 % interval covers {coverage}: {f}");
    // predictive rollback on the held-out leaks: alarms before most breaches, none on healthy canaries
    let r = &j["rollback"][0];
    assert_eq!(r["metric"], "memory_mb");
    let (breached, detected) = (r["breached"].as_u64().unwrap(), r["model_detected"].as_u64().unwrap());
    assert!(breached >= 5 && 2 * detected >= breached, "{r}");
    assert!(r["model_lead_before_breach_s"].as_f64().unwrap() >= 0.0, "{r}");
    assert!(r["healthy"].as_u64().unwrap() >= 5 && r["model_false_alarms"].as_u64().unwrap() <= 1, "{r}");
    assert_eq!(j["registered"]["name"], "omen-sequence");
    assert_eq!(j["registered"]["version"], 1);
    assert_eq!(j["registered"]["champion"], true);
    // the burn training config is written beside the weights
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["seed"], 3);
    assert_eq!(config["forecaster"]["lstm"]["d_hidden"], 16);

    // Reloaded from the registry (checksum, format and schema checked) it predicts, and the
    // file written by --out is the same model.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = omen_models::registry::open(store.join("registry").to_str().unwrap(), Vec::<(String, String)>::new(), MlflowOptions::default()).unwrap();
    let artifact = rt.block_on(registry.fetch("omen-sequence", &VersionRef::Alias("champion".into()))).unwrap();
    assert_eq!(artifact.version().artifact.format, "omen-sequence/2");
    assert!(SequenceModel::from_verified(&artifact).unwrap().detector().is_some(), "trained with its series detector by default");
    let model = SequenceModel::from_verified(&artifact).unwrap();
    let file = SequenceModel::from_bytes(&std::fs::read(out.join("model.omenseq")).unwrap()).unwrap();

    // The held-out deployments, 20 minutes in: failing canaries score higher.
    let (mut failing, mut healthy) = (Vec::new(), Vec::new());
    for (start, fails, samples) in &history[N - 20..] {
        let mut b = WindowsBuilder::new(start * 1_000_000, None, None, vec![]);
        for (m, role, ts, v) in samples {
            b.extend(m, *role, [Sample { ts: ts * 1_000_000, series: 0, value: *v }]);
        }
        let w = b.finish();
        let input = model.encode(&w, (start + 20 * 60) * 1_000_000, start * 1_000_000);
        let p = model.failure_probability(&input).unwrap();
        assert_eq!(p, file.failure_probability(&input).unwrap());
        let forecast = model.forecast(&input).unwrap();
        assert_eq!(forecast.len(), 2);
        assert_eq!(forecast[1].metric, "memory_mb");
        assert_eq!(forecast[1].quantiles.len(), 6);
        assert!(forecast[1].quantiles.iter().all(|q| q[0] <= q[1] && q[1] <= q[2]));
        // in the metric's units: memory sits around 500 MB
        assert!((300.0..2000.0).contains(&forecast[1].quantiles[0][1]), "{:?}", forecast[1]);
        if *fails { failing.push(p) } else { healthy.push(p) }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&failing) > mean(&healthy) + 0.3, "failing {failing:?} healthy {healthy:?}");
    // a metric the model was not trained on is an error naming it
    let w = WindowsBuilder::new(0, None, None, vec![]).finish();
    let input = model.encode(&w, 600_000_000, 0);
    assert_eq!(input.missing, vec!["latency_p99_ms".to_string(), "memory_mb".to_string()]);
    let err = model.forecast_metric(&input, "cpu_seconds").unwrap_err().to_string();
    assert!(err.contains("cpu_seconds"), "{err}");
}

#[test]
fn train_sequence_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // an empty store: no deployments
    let out = omen(dir.path(), &["train", "sequence", "--store", s, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployments"), "{err}");
    // an SLO that is not one
    let out = omen(dir.path(), &["train", "sequence", "--store", s, "--slo", "memory_mb=600"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory_mb=600"));
    // an unknown hyperparameter
    let out = omen(dir.path(), &["train", "sequence", "--store", s, "--param", "hiden=3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hiden"));
    // failure still needs its table
    let out = omen(dir.path(), &["train", "failure", "--store", s]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The held-out deployment `d` as a deployer sends it at `minute` of its canary: every sample up
/// to then, both metrics, canary and baseline.
fn score_request(i: usize, d: &Deployment, minute: i64) -> omen_serve::proto::ScoreRequest {
    use omen_serve::proto;
    let (start, _, samples) = d;
    let until = start + minute * 60;
    let metrics = ["latency_p99_ms", "memory_mb"]
        .into_iter()
        .map(|name| {
            let pick = |role: Role| {
                samples
                    .iter()
                    .filter(|(m, r, ts, _)| *m == name && *r == role && *ts <= until)
                    .map(|(_, _, ts, v)| proto::Sample { time: *ts as f64, value: *v })
                    .collect()
            };
            proto::MetricSamples { metric: name.into(), labels: Default::default(), canary: pick(Role::Canary), baseline: pick(Role::Baseline), loadtest: vec![] }
        })
        .collect();
    proto::ScoreRequest {
        service: "shop".into(),
        deployment_id: format!("d-{i:03}"),
        change: None,
        metrics,
        current_weight: 10.0,
        elapsed_seconds: (minute * 60) as f64,
        started_at: *start as f64,
        synthetic_load: vec![],
        steps: vec![],
    }
}

#[test]
fn omen_serve_answers_with_the_sequence_champion_and_rolls_back_before_the_breach() {
    use crate::serve::{Serve, client, rt};
    use omen_serve::proto;
    let dir = tempfile::tempdir().unwrap();
    let (history, store) = ingested_store(dir.path());
    let s = store.to_str().unwrap();
    // The SLO on memory, the judge on latency; the GBDT's own rollback is switched off so that
    // what rolls back here is the memory forecast (rule 3), or the judge once the latency creeps
    // (rule 4). Checkpoints every 2 minutes (the rows `omen evaluate` replays).
    let config = dir.path().join("omen.toml");
    let checkpoints: Vec<String> = (2..=40).step_by(2).map(|m| format!("\"{m}m\"")).collect();
    std::fs::write(
        &config,
        format!(
            "[features]\ncheckpoints = [{}]\n\
             [serve.policy]\nrollback_probability = 1.0\nmin_confidence = 0.0\nbreach_rollback_probability = 0.9\nbreach_hold_probability = 0.5\n[serve.policy.slo]\nmemory_mb = 600\n\
             [serve.judge]\nscoreThresholds = {{ pass = 95.0, marginal = 75.0 }}\n[[serve.judge.metrics]]\nname = \"latency_p99_ms\"\ngroups = [\"latency\"]\n",
            checkpoints.join(", ")
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    // omen-serve needs a failure champion: the GBDT on the store's feature table …
    json_ok(&omen(dir.path(), &["features", "build", "--store", s, "--config", c, "--json"]));
    let j = crate::serve::train(dir.path(), &store, &[]);
    assert_eq!(j["registered"]["champion"], true, "{j}");
    // … and gets the sequence champion beside it.
    let j = json_ok(&omen(
        dir.path(),
        &["train", "sequence", "--store", s, "--window", "40", "--stride", "4", "--holdout", "0.25",
          "--param", "hidden=16", "--param", "epochs=40", "--param", "learning_rate=0.01", "--param", "horizon=6", "--param", "seed=3",
          "--param", "quantiles=0.1,0.5,0.9", "--detector-windows", "0", "--json"],
    ));
    assert_eq!(j["registered"]["champion"], true, "{j}");
    let serve = Serve::start(&store, &["--config", c]);

    let registry = omen_models::registry::open(store.join("registry").to_str().unwrap(), Vec::<(String, String)>::new(), MlflowOptions::default()).unwrap();
    let rt = rt();
    let artifact = rt.block_on(registry.fetch("omen-sequence", &VersionRef::Alias("champion".into()))).unwrap();
    let model = SequenceModel::from_verified(&artifact).unwrap();
    let slo: std::collections::BTreeMap<String, f64> = [("memory_mb".to_string(), 600.0)].into();

    rt.block_on(async {
        let mut c = client(serve.grpc).await;
        let models = c.get_models(proto::GetModelsRequest {}).await.unwrap().into_inner().models;
        assert!(models.iter().any(|m| m.name == "omen-sequence" && m.version == 1 && m.artifact_blake3 == artifact.version().artifact.blake3), "{models:?}");

        let (mut breached, mut ahead, mut healthy, mut false_alarms, mut compared) = (0, 0, 0, 0, 0);
        for (i, d) in history.iter().enumerate().skip(N - 20) {
            let (start, failing, samples) = d;
            // the breach as it happened: the first canary memory sample above the SLO
            let breach = samples.iter().filter(|(m, r, _, v)| *m == "memory_mb" && *r == Role::Canary && *v > 600.0).map(|x| x.2).min();
            let mut forecast_rollback = None;
            for minute in (4..=40).step_by(2) {
                let req = score_request(i, d, minute);
                let answer = c.score(req.clone()).await.unwrap().into_inner();
                let seq = answer.sequence.as_ref().expect("a sequence assessment with a sequence champion");
                assert!(answer.models.iter().any(|m| m.name == "omen-sequence"), "{:?}", answer.models);
                // the offline model on the same samples gives the same numbers, bit for bit
                let mut b = WindowsBuilder::new(start * 1_000_000, None, None, vec![]);
                for m in &req.metrics {
                    for (role, ss) in [(Role::Canary, &m.canary), (Role::Baseline, &m.baseline)] {
                        b.extend(&m.metric, role, ss.iter().map(|x| Sample { ts: (x.time * 1e6).round() as i64, series: 0, value: x.value }));
                    }
                }
                let offline = model.assess(&b.finish(), (start + minute * 60) * 1_000_000, start * 1_000_000, &slo).unwrap().unwrap();
                assert_eq!(seq.failure_probability.to_bits(), offline.failure_probability.to_bits());
                assert_eq!(seq.forecasts.len(), 2);
                for (f, o) in seq.forecasts.iter().zip(&offline.forecasts) {
                    assert_eq!(f.metric, o.metric);
                    assert_eq!(f.levels, o.levels);
                    let served: Vec<Vec<f64>> = f.steps.iter().map(|q| q.values.clone()).collect();
                    assert_eq!(served, o.quantiles, "{minute} min of d-{i:03}");
                }
                assert_eq!(seq.breaches.len(), 1);
                assert_eq!((seq.breaches[0].metric.as_str(), seq.breaches[0].limit), ("memory_mb", 600.0));
                assert_eq!(seq.breaches[0].probability.to_bits(), offline.breaches[0].probability.to_bits());
                assert_eq!(seq.step_seconds, 30.0);
                assert_eq!(seq.window_end, (start + minute * 60) as f64);
                compared += 1;
                if answer.decision == proto::Decision::Rollback as i32 {
                    if answer.explanation.contains("forecast above its SLO") {
                        forecast_rollback = Some(start + minute * 60);
                    }
                    break;
                }
            }
            if *failing {
                if let Some(at) = breach {
                    breached += 1;
                    if forecast_rollback.is_some_and(|r| r < at) {
                        ahead += 1;
                    }
                }
            } else {
                healthy += 1;
                if forecast_rollback.is_some() {
                    false_alarms += 1;
                }
            }
        }
        assert!(compared >= 100, "{compared}");
        // The leaks also raise latency, which the judge sees first in most of them (this store's
        // leaks are steep and the horizon is 3 minutes); where it does not, the forecast rolls
        // back before memory crosses its SLO. Healthy canaries are not rolled back on a forecast.
        assert!(breached >= 5 && ahead >= 3, "ahead of {ahead} of {breached} breaches");
        assert!(healthy >= 5 && false_alarms <= 1, "{false_alarms} of {healthy} healthy canaries rolled back on a forecast");

        // Without samples of the model's metrics there is no assessment (and no guess).
        let mut req = score_request(N - 1, &history[N - 1], 10);
        for m in &mut req.metrics {
            m.metric = format!("other_{}", m.metric);
        }
        let answer = c.score(req).await.unwrap().into_inner();
        assert!(answer.sequence.is_none());
        assert!(!answer.models.iter().any(|m| m.name == "omen-sequence"));
    });
    // The same assessment in the HTTP adapter's JSON.
    let req = score_request(N - 1, &history[N - 1], 20);
    let body = serde_json::json!({
        "service": req.service, "deploymentId": req.deployment_id, "startedAt": req.started_at, "elapsedSeconds": req.elapsed_seconds,
        "currentWeight": req.current_weight,
        "metrics": req.metrics.iter().map(|m| serde_json::json!({
            "metric": m.metric,
            "canary": m.canary.iter().map(|x| serde_json::json!({"time": x.time, "value": x.value})).collect::<Vec<_>>(),
            "baseline": m.baseline.iter().map(|x| serde_json::json!({"time": x.time, "value": x.value})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let (status, out) = crate::serve::http(serve.http, "POST", "/v1/score", Some(&body.to_string()), None);
    assert_eq!(status, 200, "{out}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["sequence"]["breaches"][0]["metric"], "memory_mb", "{out}");
    assert_eq!(out["sequence"]["forecasts"][1]["steps"].as_array().unwrap().len(), 6, "{out}");

    // `omen evaluate` replays the held-out canaries through the same assessment and policy.
    let with = json_ok(&omen(dir.path(), &["evaluate", "--store", s, "--config", c, "--holdout", "0.25", "--json"]));
    let without = json_ok(&omen(dir.path(), &["evaluate", "--store", s, "--config", c, "--holdout", "0.25", "--sequence", "none", "--json"]));
    assert_eq!(with["sequence"], "omen-sequence/1");
    assert!(without.get("sequence").is_none());
    let (w, wo) = (&with["models"][0], &without["models"][0]);
    // The forecast rolls some leaks back before the judge; no healthy canary more.
    let earlier = |m: &serde_json::Value| m["lead"]["omen_earlier"].as_u64().unwrap();
    assert!(earlier(w) >= earlier(wo) + 2, "with {}\nwithout {}", w["lead"], wo["lead"]);
    assert!(w["decisions"]["recall"].as_f64() >= wo["decisions"]["recall"].as_f64(), "{}", w["decisions"]);
    assert_eq!(w["decisions"]["false_rollbacks"], wo["decisions"]["false_rollbacks"], "{}", w["decisions"]);
}
