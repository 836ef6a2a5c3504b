//! `omen-serve` over the network: a store built from the samples, a failure model trained on its
//! `features/` and registered, the server started on 127.0.0.1 and called as deployers call it
//! (tonic client, HTTP JSON); parity with the offline model; reloads; bad input; shutdown.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omen_features::feature::{FeatureSchema, InputEncoder, Kind};
use omen_serve::proto::{self, canary_scorer_client::CanaryScorerClient};
use omen_tests::{ChildGuard, bin, free_port, json_ok, omen};
use polars::prelude::*;

use crate::features::{RawSample, build, copy_samples, raw_deployments, raw_samples, read_features};

/// A store with the samples ingested, features built, and `omen-failure` v1 registered.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub inputs: PathBuf,
    pub store: PathBuf,
}

pub(crate) fn train(dir: &Path, store: &Path, extra: &[&str]) -> serde_json::Value {
    let features = store.join("features");
    let mut args = vec![
        "train", "failure", "--features", features.to_str().unwrap(), "--label", "label_failed", "--time-column", "checkpoint_at",
        "--holdout", "0.25", "--param", "min_data_in_leaf=2", "--param", "num_iterations=30", "--param", "min_sum_hessian_in_leaf=0.001",
        "--store", store.to_str().unwrap(), "--json",
    ];
    args.extend_from_slice(extra);
    json_ok(&omen(dir, &args))
}

pub(crate) fn fixture(register: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inputs = copy_samples(&dir.path().join("in"));
    let store = dir.path().join("store");
    build(dir.path(), &inputs, &store);
    if register {
        let j = train(dir.path(), &store, &[]);
        assert_eq!(j["registered"]["version"], 1, "{j}");
    }
    Fixture { dir, inputs, store }
}

/// A running `omen-serve`, stopped (SIGKILL) when dropped unless stopped before.
pub(crate) struct Serve {
    pub child: ChildGuard,
    pub grpc: u16,
    pub http: u16,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    pub(crate) fn start(store: &Path, extra: &[&str]) -> Serve {
        let (grpc, http) = (free_port(), free_port());
        let mut child = Command::new(bin("omen-serve"))
            .args(["--store", store.to_str().unwrap(), "--listen", &format!("127.0.0.1:{grpc}"), "--http", &format!("127.0.0.1:{http}")])
            .args(extra)
            .env_remove("OMEN_STORE")
            .env_remove("OMEN_REGISTRY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let listening = line.contains("listening on");
                // Logged before the start is announced, so that a caller reading the log then
                // finds the line.
                sink.lock().unwrap().push_str(&(line + "\n"));
                if listening {
                    let _ = tx.send(());
                }
            }
        });
        let child = ChildGuard(child);
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("omen-serve did not start:\n{}", stderr.lock().unwrap());
        }
        omen_tests::wait_for_port(http, Duration::from_secs(30)).unwrap();
        Serve { child, grpc, http, stderr }
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.0.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }
}

/// A minimal HTTP/1.1 exchange with the adapter: (status, body).
pub(crate) fn http(port: u16, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, raw) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        // size-in-hex CRLF data CRLF … 0 CRLF CRLF
        let mut rest = raw;
        let mut body = String::new();
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            body.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        body
    } else {
        raw.to_string()
    };
    (status, body)
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub(crate) async fn client(port: u16) -> CanaryScorerClient<tonic::transport::Channel> {
    let t0 = Instant::now();
    loop {
        match CanaryScorerClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return c,
            Err(e) if t0.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A deployer's request for deployment `id` at `checkpoint` (µs), from the raw inputs.
pub(crate) fn request(inputs: &Path, id: &str, checkpoint: i64) -> proto::ScoreRequest {
    let deployments = raw_deployments(inputs);
    let d = deployments.iter().find(|d| d.id == id).unwrap();
    let samples = raw_samples(inputs);
    let mut metrics: HashMap<(String, String), proto::MetricSamples> = HashMap::new();
    for s in &samples {
        let mine = match &s.deployment {
            Some(dep) => dep == id,
            None => {
                s.service == d.service
                    && deployments.iter().filter(|o| o.service == s.service && o.started_at <= s.ts).max_by_key(|o| (o.started_at, o.id.clone())).map(|o| &o.id) == Some(&d.id)
            }
        };
        let Some(role) = s.role else { continue };
        if !mine {
            continue;
        }
        let key = (s.metric.clone(), format!("{:?}", labels_without_role(s)));
        let e = metrics.entry(key).or_insert_with(|| proto::MetricSamples {
            metric: s.metric.clone(),
            labels: s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Default::default()
        });
        let sample = proto::Sample { time: s.ts as f64 / 1e6, value: s.value };
        match role {
            omen_features::feature::Role::Canary => e.canary.push(sample),
            omen_features::feature::Role::Baseline => e.baseline.push(sample),
            omen_features::feature::Role::LoadTest => e.loadtest.push(sample),
        }
    }
    let mut metrics: Vec<proto::MetricSamples> = metrics.into_values().collect();
    // A deployer's order: by metric, then by series (labels).
    let key = |m: &proto::MetricSamples| {
        let mut l: Vec<(&String, &String)> = m.labels.iter().collect();
        l.sort();
        (m.metric.clone(), format!("{l:?}"), m.canary.is_empty())
    };
    metrics.sort_by_key(key);
    let weight = d.steps.iter().filter(|(at, _)| *at <= checkpoint).max_by_key(|(at, _)| *at).map(|s| s.1).unwrap_or(0.0);
    proto::ScoreRequest {
        service: d.service.clone(),
        deployment_id: d.id.clone(),
        change: Some(proto::Change {
            kind: Some(proto::change::Kind::Commits(proto::CommitRange { from_sha: d.from_sha.clone().unwrap_or_default(), to_sha: d.to_sha.clone() })),
        }),
        metrics,
        current_weight: weight,
        elapsed_seconds: (checkpoint - d.started_at) as f64 / 1e6,
        started_at: d.started_at as f64 / 1e6,
        synthetic_load: vec![],
        steps: d.steps.iter().filter(|(at, _)| *at <= checkpoint).map(|(at, w)| proto::TrafficStep { time: *at as f64 / 1e6, weight: *w }).collect(),
    }
}

/// The series key of a sample: its labels. (Canary and baseline samples of one series share
/// them, the role label aside, but a deployer sends them per role anyway.)
fn labels_without_role(s: &RawSample) -> Vec<(String, String)> {
    s.labels.iter().filter(|(k, _)| !["role", "track"].contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn served_scores_equal_the_offline_model_on_the_feature_rows() {
    let f = fixture(true);
    let serve = Serve::start(&f.store, &[]);
    // The offline side: the registered model, pulled (verified), on the Parquet rows.
    let pulled = f.dir.path().join("model.omengbdt");
    json_ok(&omen(f.dir.path(), &["registry", "pull", "omen-failure", "--store", f.store.to_str().unwrap(), "--out", pulled.to_str().unwrap(), "--json"]));
    let model = omen_models::gbdt::Gbdt::from_bytes(&std::fs::read(&pulled).unwrap(), None).unwrap();
    let schema: FeatureSchema = serde_json::from_slice(&std::fs::read(f.store.join("features/_schema.json")).unwrap()).unwrap();
    let encoder = InputEncoder::new(&schema, &model.feature_names).unwrap();
    let table = read_features(&f.store);
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    let mut compared = 0;
    for row in 0..table.height() {
        let id = table.column("deployment_id").unwrap().str().unwrap().get(row).unwrap().to_string();
        let cp = table.column("checkpoint_at").unwrap().datetime().unwrap().physical().get(row).unwrap();
        let values: Vec<omen_features::feature::Value> =
            schema.columns.iter().map(|col| crate::features::value(&table, &col.name, col.kind, row)).collect();
        let offline = model.predict_calibrated(&encoder.encode(&values)).clamp(0.0, 1.0);
        let req = request(&f.inputs, &id, cp);
        let resp = rt.block_on(c.score(req.clone())).unwrap_or_else(|s| panic!("{id} at {cp}: {s}")).into_inner();
        assert_eq!(resp.failure_probability.to_bits(), offline.to_bits(), "{id} at {cp}: served {} offline {offline}", resp.failure_probability);
        assert_eq!(resp.confidence, offline.max(1.0 - offline));
        assert_eq!(resp.deployment_id, id);
        assert_eq!(resp.models.len(), 1);
        assert_eq!((resp.models[0].name.as_str(), resp.models[0].version, resp.models[0].alias.as_str()), ("omen-failure", 1, "champion"));
        assert!(resp.decision != proto::Decision::Unspecified as i32);
        assert!(resp.reasons.iter().any(|r| r.kind == proto::reason::Kind::Policy as i32), "{:?}", resp.reasons);
        assert!(!resp.explanation.is_empty());
        if !req.metrics.is_empty() {
            assert!(!resp.verdicts.is_empty(), "{id}: the judge saw the metrics");
        }
        compared += 1;
    }
    assert!(compared >= 20, "{compared}");
    // The reasons of one answer: TreeSHAP contributions with the inputs' values.
    let req = request(&f.inputs, "d-0003", raw_deployments(&f.inputs).iter().find(|d| d.id == "d-0003").unwrap().started_at + 600_000_000);
    let resp = rt.block_on(c.score(req)).unwrap().into_inner();
    let features: Vec<&proto::Reason> = resp.reasons.iter().filter(|r| r.kind == proto::reason::Kind::Feature as i32).collect();
    for w in features.windows(2) {
        assert!(w[0].contribution.abs() >= w[1].contribution.abs(), "largest first");
    }
    let _ = Kind::Float;
    drop(serve);
}

#[test]
fn bad_requests_name_the_field_and_streams_keep_one_deployment() {
    let f = fixture(true);
    // The sample configuration's [serve] section (the CLI read the same file to build features).
    let config = omen_tests::workspace_root().join("data/samples/omen.toml");
    let serve = Serve::start(&f.store, &["--config", config.to_str().unwrap()]);
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    let d = raw_deployments(&f.inputs).into_iter().find(|d| d.id == "d-0003").unwrap();
    let good = request(&f.inputs, "d-0003", d.started_at + 600_000_000);
    let cases: Vec<(Box<dyn Fn(&mut proto::ScoreRequest)>, &str)> = vec![
        (Box::new(|r| r.service.clear()), "service: required"),
        (Box::new(|r| r.current_weight = 250.0), "current_weight: must lie in [0, 100]"),
        (Box::new(|r| r.metrics[0].canary.insert(0, proto::Sample { time: f64::NAN, value: 1.0 })), "metrics[0].canary[0].time: must be a finite number"),
        (Box::new(|r| r.metrics[1].metric.clear()), "metrics[1].metric: required"),
        (Box::new(|r| r.change = Some(proto::Change { kind: Some(proto::change::Kind::Commits(proto::CommitRange::default())) })), "change.commits.to_sha: required"),
        (
            Box::new(|r| r.synthetic_load.push(proto::SyntheticLoad { latency_p99_ms: f64::NAN, ..Default::default() })),
            "synthetic_load[0].latency_p99_ms: must be a finite number",
        ),
    ];
    for (alter, want) in cases {
        let mut r = good.clone();
        alter(&mut r);
        let e = rt.block_on(c.score(r)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains(want), "{} does not name `{want}`", e.message());
    }
    // A load test's summary in `synthetic_load` scores as its samples did (the sample config maps
    // `latency_p99_ms` to the p99 metric in seconds): the finite load-test samples of the window
    // become one result each, in milliseconds (a summary is a number; the NaN samples that the
    // load-test features leave out are not sent).
    let p99 = "http_request_duration_seconds_p99";
    let (start, checkpoint) = (good.started_at, good.started_at + good.elapsed_seconds);
    let mut summarised = good.clone();
    let mut results = Vec::new();
    for m in summarised.metrics.iter_mut().filter(|m| m.metric == p99) {
        results.extend(m.loadtest.iter().filter(|s| s.time >= start && s.time <= checkpoint && s.value.is_finite()).map(|s| s.value));
        m.loadtest.clear();
    }
    assert!(results.len() >= 3, "the sample canary has a load test: {results:?}");
    summarised.synthetic_load = results
        .iter()
        .enumerate()
        .map(|(i, v)| proto::SyntheticLoad { name: format!("run {i}"), rps: 50.0, latency_p99_ms: v * 1000.0, ..Default::default() })
        .collect();
    let [a, b] = [&good, &summarised].map(|r| rt.block_on(c.score(r.clone())).unwrap().into_inner());
    // The mean of the load test may differ in its last bits (v × 1000 × 0.001, another order).
    // (This small model does not split on the load-test features; the unit test
    // `synthetic_load_results_are_load_test_samples_of_the_mapped_metrics` checks the features.)
    assert!((a.failure_probability - b.failure_probability).abs() < 1e-9, "{} vs {}", a.failure_probability, b.failure_probability);
    assert_eq!((a.decision, a.next_weight), (b.decision, b.next_weight));
    // A stream: one answer per message, in order; a second deployment in it is refused.
    let mut msgs = Vec::new();
    for minutes in [5, 10, 20] {
        msgs.push(request(&f.inputs, "d-0003", d.started_at + minutes * 60_000_000));
    }
    let mut other = good.clone();
    other.deployment_id = "d-9999".into();
    msgs.push(other);
    let answers = rt.block_on(async {
        let mut s = c.score_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(m) = s.message().await.transpose() {
            out.push(m);
        }
        out
    });
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(answers[..3].iter().all(|a| a.as_ref().is_ok_and(|r| r.deployment_id == "d-0003")));
    let e = answers[3].as_ref().unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("deployment_id: a stream is one deployment"), "{e}");
    // GetModels.
    let m = rt.block_on(c.get_models(proto::GetModelsRequest {})).unwrap().into_inner();
    assert_eq!(m.models.len(), 1);
    assert!(m.registry.ends_with("/registry"), "{}", m.registry);
}

#[test]
fn no_model_means_unavailable_then_champions_are_picked_up_and_bad_ones_refused() {
    let f = fixture(false);
    let serve = Serve::start(&f.store, &[]);
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    let d = raw_deployments(&f.inputs).into_iter().find(|d| d.id == "d-0003").unwrap();
    let req = request(&f.inputs, "d-0003", d.started_at + 600_000_000);
    let e = rt.block_on(c.score(req.clone())).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert_eq!(http(serve.http, "GET", "/readyz", None, None).0, 503);
    assert_eq!(http(serve.http, "GET", "/healthz", None, None).0, 200);

    // A champion appears: SIGHUP loads it without a restart.
    train(f.dir.path(), &f.store, &[]);
    serve.signal("HUP");
    let t0 = Instant::now();
    while rt.block_on(c.get_models(proto::GetModelsRequest {})).unwrap().into_inner().models.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "not reloaded:\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(serve.http, "GET", "/readyz", None, None).0, 200);
    let first = rt.block_on(c.score(req.clone())).unwrap().into_inner();
    assert_eq!(first.models[0].version, 1);

    // Version 2 is promoted, but its artifact was tampered with: refused, version 1 serves on.
    train(f.dir.path(), &f.store, &["--param", "num_leaves=4"]);
    let v2 = json_ok(&omen(f.dir.path(), &["registry", "show", "omen-failure/2", "--store", f.store.to_str().unwrap(), "--json"]));
    let artifact = f.store.join("registry/models/omen-failure/artifacts").join(v2["artifact"]["blake3"].as_str().unwrap());
    let mut b = std::fs::read(&artifact).unwrap();
    let n = b.len() / 2;
    b[n] ^= 0xff;
    std::fs::write(&artifact, b).unwrap();
    json_ok(&omen(f.dir.path(), &["registry", "promote", "omen-failure", "2", "--store", f.store.to_str().unwrap(), "--json"]));
    serve.signal("HUP");
    let t0 = Instant::now();
    loop {
        let (_, metrics) = http(serve.http, "GET", "/metrics", None, None);
        if metrics.lines().any(|l| l.starts_with("omen_model_reload_failures_total") && !l.ends_with(" 0")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no refusal:\n{metrics}\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(serve.log().contains("refused the new champion"), "{}", serve.log());
    let still = rt.block_on(c.score(req)).unwrap().into_inner();
    assert_eq!(still.models[0].version, 1, "the old model keeps serving");
}

#[test]
fn http_adapter_metrics_score_log_and_graceful_shutdown() {
    let f = fixture(true);
    let serve = Serve::start(&f.store, &[]);
    let d = raw_deployments(&f.inputs).into_iter().find(|d| d.id == "d-0003").unwrap();
    let req = request(&f.inputs, "d-0003", d.started_at + 600_000_000);
    // The proto3 JSON mapping: camelCase names, a oneof by its field name.
    let body = serde_json::json!({
        "service": req.service,
        "deploymentId": req.deployment_id,
        "change": {"commits": {"fromSha": "", "toSha": match &req.change.as_ref().unwrap().kind { Some(proto::change::Kind::Commits(c)) => c.to_sha.clone(), _ => unreachable!() }}},
        "metrics": req.metrics.iter().map(|m| serde_json::json!({
            "metric": m.metric, "labels": m.labels,
            "canary": m.canary.iter().map(|s| serde_json::json!({"time": s.time, "value": if s.value.is_finite() { serde_json::json!(s.value) } else { serde_json::json!("NaN") }})).collect::<Vec<_>>(),
            "baseline": m.baseline.iter().map(|s| serde_json::json!({"time": s.time, "value": if s.value.is_finite() { serde_json::json!(s.value) } else { serde_json::json!("NaN") }})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "currentWeight": req.current_weight,
        "elapsedSeconds": req.elapsed_seconds,
        "startedAt": req.started_at,
    });
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(&body.to_string()), None);
    assert_eq!(status, 200, "{text}");
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(["PROMOTE", "CONTINUE", "HOLD", "ROLLBACK"].contains(&j["decision"].as_str().unwrap()), "{j}");
    for k in ["failureProbability", "confidence", "nextWeight", "judgeScore", "verdicts", "reasons", "models", "explanation"] {
        assert!(j.get(k).is_some(), "{k} missing: {j}");
    }
    assert_eq!(j["models"][0]["name"], "omen-failure");
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(r#"{"service": "checkout", "metrics": [{"metric": ""}]}"#), None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("INVALID_ARGUMENT") && text.contains("deployment_id: required"), "{text}");
    let (status, text) = http(serve.http, "POST", "/v1/score", Some("{not json"), None);
    assert_eq!(status, 400, "{text}");
    let (_, metrics) = http(serve.http, "GET", "/metrics", None, None);
    assert!(metrics.contains("omen_requests_total{method=\"http\",code=\"OK\"} 1"), "{metrics}");
    assert!(metrics.contains("omen_requests_total{method=\"http\",code=\"INVALID_ARGUMENT\"} 1"), "{metrics}");
    assert!(metrics.contains("omen_decisions_total{decision="), "{metrics}");
    assert!(metrics.contains("omen_model_version{model=\"omen-failure\"} 1"), "{metrics}");
    assert!(metrics.contains("omen_request_duration_seconds_bucket{method=\"http\",le=\"+Inf\"} 2"), "{metrics}");

    // SIGTERM: drains, writes the score log, exits 0.
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    for _ in 0..5 {
        rt.block_on(c.score(req.clone())).unwrap();
    }
    let mut serve = serve;
    serve.signal("TERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = serve.child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no exit after SIGTERM:\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", serve.log());
    let mut files = Vec::new();
    for e in std::fs::read_dir(f.store.join("scores")).unwrap() {
        for p in std::fs::read_dir(e.unwrap().path()).unwrap() {
            files.push(p.unwrap().path());
        }
    }
    let mut rows = 0;
    for p in &files {
        let df = ParquetReader::new(std::fs::File::open(p).unwrap()).finish().unwrap();
        rows += df.height();
        for c in ["ts", "service", "deployment_id", "failure_probability", "decision", "next_weight", "models", "latency_ms"] {
            assert!(df.column(c).is_ok(), "scores/ lacks {c}");
        }
    }
    assert_eq!(rows, 6, "every answer is logged: {files:?}");
}

#[test]
fn samples_are_pulled_from_prometheus_for_argo_and_flagger_bodies() {
    omen_tests::ensure_debian_package("prometheus", "prometheus").unwrap();
    let f = fixture(true);
    // A real Prometheus scraping itself twice: once labelled as the canary, once as the stable.
    let port = free_port();
    let cfg = f.dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: canary\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n        labels: {{app: 'checkout', track: 'canary', rollouts_pod_template_hash: 'abc123'}}\n  - job_name: stable\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n        labels: {{app: 'checkout', track: 'stable'}}\n"
        ),
    )
    .unwrap();
    let _prom = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", f.dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    omen_tests::wait_for_port(port, Duration::from_secs(60)).unwrap();
    let toml = f.dir.path().join("omen.toml");
    std::fs::write(
        &toml,
        format!(
            r#"[serve.prometheus]
url = "http://127.0.0.1:{port}"
step = "1s"
[[serve.prometheus.metrics]]
name = "prom_heap"
canary = 'go_memstats_heap_inuse_bytes{{app="$service",track="canary",rollouts_pod_template_hash="$deployment"}}'
baseline = 'go_memstats_heap_inuse_bytes{{app="$service",track="stable"}}'
"#
        ),
    )
    .unwrap();
    let serve = Serve::start(&f.store, &["--config", toml.to_str().unwrap()]);
    // Wait for a few scrapes of both jobs.
    let t0 = Instant::now();
    let body = r#"{"service": "checkout", "deploymentId": "abc123", "elapsedSeconds": 120}"#;
    let j = loop {
        let (status, text) = http(serve.http, "POST", "/v1/score", Some(body), None);
        assert_eq!(status, 200, "{text}");
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        let v = j["verdicts"].as_array().unwrap().iter().find(|v| v["metric"] == "prom_heap").cloned();
        if v.as_ref().is_some_and(|v| v["canarySamples"].as_u64().unwrap() >= 3 && v["baselineSamples"].as_u64().unwrap() >= 3) {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no samples pulled: {j}\n{}", serve.log());
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(j["reasons"].as_array().unwrap().iter().any(|r| r["detail"].as_str().unwrap().contains("samples pulled from Prometheus")), "{j}");
    // Flagger's own payload, as a check and as a promotion gate.
    let payload = r#"{"name": "checkout", "namespace": "prod", "phase": "Progressing", "checksum": "abc123", "metadata": {"service": "checkout"}}"#;
    for gate in ["check", "promotion"] {
        let (status, text) = http(serve.http, "POST", &format!("/v1/flagger?gate={gate}"), Some(payload), None);
        let j: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let decision = j["decision"].as_str().unwrap();
        let want = match (gate, decision) {
            ("check", "ROLLBACK") => 409,
            ("check", _) => 200,
            (_, "PROMOTE" | "CONTINUE") => 200,
            _ => 403,
        };
        assert_eq!(status, want, "{gate}: {decision}: {text}");
        assert!(j["verdicts"].as_array().unwrap().iter().any(|v| v["metric"] == "prom_heap" && v["canarySamples"].as_u64().unwrap() > 0), "{text}");
    }
    let (status, text) = http(serve.http, "POST", "/v1/flagger", Some(r#"{"namespace": "x"}"#), None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a Flagger webhook payload"), "{text}");
}

#[test]
fn a_performance_champion_adds_predictions_at_full_traffic_with_intervals() {
    // A store of 400 synthetic deployments (bench/gen_features.py), enough for the conformal
    // calibration split of the intervals.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let py = omen_tests::python().unwrap();
    omen_tests::run_ok(
        Command::new(py)
            .arg(omen_tests::workspace_root().join("bench/gen_features.py"))
            .arg(&store)
            .args(["--deployments", "400", "--metrics", "3", "--services", "2"]),
    )
    .unwrap();
    let s = store.to_str().unwrap();
    json_ok(&omen(dir.path(), &["features", "build", "--store", s, "--json"]));
    let f = store.join("features");
    let common = ["--features", f.to_str().unwrap(), "--time-column", "checkpoint_at", "--store", s, "--json"];
    let mut a = vec!["train", "failure", "--label", "label_failed"];
    a.extend(common);
    json_ok(&omen(dir.path(), &a));
    let mut a = vec!["train", "performance", "--label", "label__metric_00__at_full"];
    a.extend(common);
    let p = json_ok(&omen(dir.path(), &a));
    assert!(p["metrics"]["coverage_95"].is_number(), "{p}");
    let v = json_ok(&omen(dir.path(), &["registry", "show", "omen-performance@champion", "--store", s, "--json"]));
    assert_eq!(v["artifact"]["format"], "omen-gbdt-interval/1", "{v}");

    let serve = Serve::start(&store, &[]);
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    let models = rt.block_on(c.get_models(proto::GetModelsRequest {})).unwrap().into_inner();
    let names: Vec<&str> = models.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["omen-failure", "omen-performance"]);
    let start = 1_800_000_000.0;
    let series = |base: f64, k: usize| (0..20).map(|i| proto::Sample { time: start + 30.0 * i as f64, value: base + 0.01 * ((i * 7 + k) % 5) as f64 }).collect::<Vec<_>>();
    let req = proto::ScoreRequest {
        service: "svc-00".into(),
        deployment_id: "new-one".into(),
        metrics: (0..3)
            .map(|m| proto::MetricSamples {
                metric: format!("metric_{m:02}"),
                labels: Default::default(),
                canary: series(1.0, m),
                baseline: series(1.0, m + 1),
                loadtest: vec![],
            })
            .collect(),
        current_weight: 10.0,
        elapsed_seconds: 600.0,
        started_at: start,
        ..Default::default()
    };
    let r = rt.block_on(c.score(req)).unwrap().into_inner();
    assert_eq!(r.performance.len(), 1, "{r:?}");
    let p = &r.performance[0];
    assert_eq!(p.metric, "metric_00");
    let (i80, i95) = (p.interval_80.unwrap(), p.interval_95.unwrap());
    assert!(i95.lower <= i80.lower && i80.lower <= p.point && p.point <= i80.upper && i80.upper <= i95.upper, "{p:?}");
    assert!(i95.upper.is_finite() && i95.lower.is_finite());
    assert_eq!(r.models.len(), 2);

    // `omen evaluate` replays the policy with the performance champion too: an SLO that every
    // prediction breaks, surely, rolls every held-out canary back at its first checkpoint, except
    // in the service whose own SLO is lax.
    let config = dir.path().join("omen.toml");
    std::fs::write(&config, "[serve.policy.slo]\nmetric_00 = -1e12\n[serve.policy.services.svc01.slo]\nmetric_00 = 1e12\n").unwrap();
    let c = config.to_str().unwrap();
    let with = json_ok(&omen(dir.path(), &["evaluate", "--store", s, "--config", c, "--json"]));
    let without = json_ok(&omen(dir.path(), &["evaluate", "--store", s, "--config", c, "--performance", "none", "--json"]));
    assert_eq!(with["performance"], "omen-performance/1", "{with}");
    assert!(without.get("performance").is_none());
    let (w, wo) = (&with["models"][0]["decisions"], &without["models"][0]["decisions"]);
    let healthy = w["healthy"].as_u64().unwrap();
    let rolled = w["false_rollbacks"].as_u64().unwrap();
    assert!(healthy >= 10 && rolled > wo["false_rollbacks"].as_u64().unwrap() && rolled < healthy, "with {w}\nwithout {wo}");
    assert_eq!(w["detection_minutes"].as_array().unwrap().len(), w["detected"].as_u64().unwrap() as usize);
}
