//! `omen-serve` from outside Rust: a Python client generated from `serve/proto` with
//! `grpc_tools.protoc` (health, reflection v1 and v1alpha, Score, ScoreStream, a bad request);
//! TLS and bearer tokens as a Python deployer meets them; load shedding and the message limit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use omen_serve::proto::{self, canary_scorer_client::CanaryScorerClient};
use omen_tests::{python, run_ok, workspace_root};
use prost::Message;

use crate::features::raw_deployments;
use crate::serve::{Serve, fixture, http, request};

/// Python stubs of `omen.v1` generated into `dir/stubs` (`omen/v1/omen_pb2{,_grpc}.py`).
fn python_stubs(dir: &Path) -> PathBuf {
    let out = dir.join("stubs");
    std::fs::create_dir_all(&out).unwrap();
    let root = workspace_root().join("serve/proto");
    run_ok(
        Command::new(python().unwrap())
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", root.display()))
            .arg(format!("--python_out={}", out.display()))
            .arg(format!("--grpc_python_out={}", out.display()))
            .arg("omen/v1/omen.proto"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    for f in ["omen_pb2.py", "omen_pb2_grpc.py"] {
        assert!(out.join("omen/v1").join(f).exists(), "protoc wrote no {f}");
    }
    out
}

/// Runs `script` (written to `dir`) with the test venv; its stdout is one JSON object.
fn run_script(dir: &Path, name: &str, script: &str, args: &[String], serve: &Serve) -> serde_json::Value {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let out = run_ok(Command::new(python().unwrap()).arg(&path).args(args)).unwrap_or_else(|e| panic!("{e:#}\nserver log:\n{}", serve.log()));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Deployment d-0003 ten minutes in, and then at 5, 10 and 20 minutes (a stream).
fn requests(inputs: &Path) -> (proto::ScoreRequest, Vec<proto::ScoreRequest>) {
    let d = raw_deployments(inputs).into_iter().find(|d| d.id == "d-0003").unwrap();
    let one = request(inputs, "d-0003", d.started_at + 600_000_000);
    let stream = [5, 10, 20].iter().map(|m| request(inputs, "d-0003", d.started_at + m * 60_000_000)).collect();
    (one, stream)
}

fn write_request(dir: &Path, name: &str, r: &proto::ScoreRequest) -> String {
    let p = dir.join(name);
    std::fs::write(&p, r.encode_to_vec()).unwrap();
    p.display().to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn client(port: u16) -> CanaryScorerClient<tonic::transport::Channel> {
    let t0 = Instant::now();
    loop {
        match CanaryScorerClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return c,
            Err(_) if t0.elapsed() < Duration::from_secs(20) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    }
}

const CLIENT_PY: &str = r#"
import json, struct, sys
stubs, port, one, *stream = sys.argv[1:]
sys.path.insert(0, stubs)
import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from omen.v1 import omen_pb2, omen_pb2_grpc

def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]

def load(path):
    with open(path, "rb") as f:
        return omen_pb2.ScoreRequest.FromString(f.read())

def answer(r):
    return {
        "deployment_id": r.deployment_id,
        "decision": omen_pb2.Decision.Name(r.decision),
        "failure_probability": r.failure_probability,
        "failure_probability_bits": bits(r.failure_probability),
        "confidence": r.confidence,
        "next_weight": r.next_weight,
        "judge_score": r.judge_score,
        "verdicts": [[v.metric, omen_pb2.Verdict.Name(v.verdict)] for v in r.verdicts],
        "reasons": [[omen_pb2.Reason.Kind.Name(x.kind), x.name] for x in r.reasons],
        "models": [[m.name, m.version, m.alias] for m in r.models],
        "explanation": r.explanation,
    }

def services(responses):
    return sorted(s.name for r in responses for s in r.list_services_response.service)

out = {}
with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
    grpc.channel_ready_future(ch).result(timeout=30)
    health = health_pb2_grpc.HealthStub(ch)
    Status = health_pb2.HealthCheckResponse.ServingStatus
    out["health"] = {s: Status.Name(health.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status) for s in ["", "omen.v1.CanaryScorer"]}
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        out["health_unknown"] = "OK"
    except grpc.RpcError as e:
        out["health_unknown"] = e.code().name
    watch = health.Watch(health_pb2.HealthCheckRequest(service="omen.v1.CanaryScorer"), timeout=10)
    out["health_watch_first"] = Status.Name(next(watch).status)
    watch.cancel()

    # Server reflection: v1alpha with grpcio-reflection's stub, v1 with the same messages (the
    # two protocols are the same on the wire), and a descriptor pool fed by the server.
    list_services = [reflection_pb2.ServerReflectionRequest(list_services="")]
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    out["reflection_v1alpha"] = services(refl.ServerReflectionInfo(iter(list_services), timeout=10))
    v1 = ch.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    out["reflection_v1"] = services(v1(iter(list_services), timeout=10))
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
    svc = pool.FindServiceByName("omen.v1.CanaryScorer")
    out["reflected_methods"] = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in svc.methods}
    out["reflected_request_fields"] = [f.name for f in pool.FindMessageTypeByName("omen.v1.ScoreRequest").fields]

    stub = omen_pb2_grpc.CanaryScorerStub(ch)
    req = load(one)
    out["request"] = {"deployment_id": req.deployment_id, "metrics": len(req.metrics)}
    resp, call = stub.Score.with_call(req, timeout=30)
    out["score"] = answer(resp)
    out["score_code"] = call.code().name
    out["stream"] = [answer(a) for a in stub.ScoreStream(iter([load(p) for p in stream]), timeout=60)]
    models = stub.GetModels(omen_pb2.GetModelsRequest(), timeout=10)
    out["get_models"] = [[m.name, m.version] for m in models.models]

    bad = omen_pb2.ScoreRequest()
    bad.CopyFrom(req)
    bad.service = ""
    try:
        stub.Score(bad, timeout=30)
        out["bad"] = {"code": "OK"}
    except grpc.RpcError as e:
        out["bad"] = {"code": e.code().name, "details": e.details()}
print(json.dumps(out))
"#;

#[test]
fn a_python_client_generated_from_the_proto_scores_over_the_network() {
    let f = fixture(true);
    let stubs = python_stubs(f.dir.path());
    let serve = Serve::start(&f.store, &[]);
    let (one, stream) = requests(&f.inputs);
    let mut args = vec![stubs.display().to_string(), serve.grpc.to_string(), write_request(f.dir.path(), "one.pb", &one)];
    for (i, r) in stream.iter().enumerate() {
        args.push(write_request(f.dir.path(), &format!("stream-{i}.pb"), r));
    }
    let j = run_script(f.dir.path(), "client.py", CLIENT_PY, &args, &serve);

    assert_eq!(j["health"], serde_json::json!({"": "SERVING", "omen.v1.CanaryScorer": "SERVING"}), "{j}");
    assert_eq!(j["health_unknown"], "NOT_FOUND", "{j}");
    assert_eq!(j["health_watch_first"], "SERVING", "{j}");
    for v in ["reflection_v1alpha", "reflection_v1"] {
        let names: Vec<&str> = j[v].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert!(names.contains(&"omen.v1.CanaryScorer"), "{v}: {names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{v}: {names:?}");
    }
    assert_eq!(
        j["reflected_methods"],
        serde_json::json!({
            "Score": ["omen.v1.ScoreRequest", "omen.v1.ScoreResponse"],
            "ScoreStream": ["omen.v1.ScoreRequest", "omen.v1.ScoreResponse"],
            "GetModels": ["omen.v1.GetModelsRequest", "omen.v1.GetModelsResponse"],
        }),
        "{j}"
    );
    assert!(j["reflected_request_fields"].as_array().unwrap().contains(&"deployment_id".into()), "{j}");

    // Python decoded what prost encoded, and the answer is the one a Rust client gets.
    assert_eq!(j["request"], serde_json::json!({"deployment_id": "d-0003", "metrics": one.metrics.len()}));
    assert_eq!(j["score_code"], "OK");
    let s = &j["score"];
    assert_eq!(s["deployment_id"], "d-0003");
    assert!(["PROMOTE", "CONTINUE", "HOLD", "ROLLBACK"].contains(&s["decision"].as_str().unwrap()), "{s}");
    let p = s["failure_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{s}");
    assert_eq!(s["confidence"].as_f64().unwrap(), p.max(1.0 - p), "{s}");
    assert_eq!(s["models"], serde_json::json!([["omen-failure", 1, "champion"]]), "{s}");
    assert!(s["reasons"].as_array().unwrap().iter().any(|r| r[0] == "POLICY"), "{s}");
    assert!(!s["verdicts"].as_array().unwrap().is_empty(), "{s}");
    assert!(!s["explanation"].as_str().unwrap().is_empty(), "{s}");
    let rt = rt();
    let mut c = rt.block_on(client(serve.grpc));
    let rust = rt.block_on(c.score(one.clone())).unwrap().into_inner();
    assert_eq!(s["failure_probability_bits"].as_u64().unwrap(), rust.failure_probability.to_bits(), "{s}");
    assert_eq!(s["decision"].as_str().unwrap(), proto::Decision::try_from(rust.decision).unwrap().as_str_name());

    // The stream: one answer per message, in order, all of d-0003.
    let answers = j["stream"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{j}");
    for a in answers {
        assert_eq!(a["deployment_id"], "d-0003", "{a}");
        assert!((0.0..=1.0).contains(&a["failure_probability"].as_f64().unwrap()), "{a}");
        assert!(["PROMOTE", "CONTINUE", "HOLD", "ROLLBACK"].contains(&a["decision"].as_str().unwrap()), "{a}");
    }
    assert_eq!(j["get_models"], serde_json::json!([["omen-failure", 1]]), "{j}");

    // The malformed request: INVALID_ARGUMENT naming the field.
    assert_eq!(j["bad"]["code"], "INVALID_ARGUMENT", "{j}");
    assert!(j["bad"]["details"].as_str().unwrap().contains("service: required"), "{j}");
}

const TLS_PY: &str = r#"
import json, sys
stubs, port, cert, token, one = sys.argv[1:]
sys.path.insert(0, stubs)
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from omen.v1 import omen_pb2, omen_pb2_grpc

with open(cert, "rb") as f:
    creds = grpc.ssl_channel_credentials(root_certificates=f.read())
with open(one, "rb") as f:
    req = omen_pb2.ScoreRequest.FromString(f.read())
good = [("authorization", f"Bearer {token}")]

def code(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name

def details(call):
    try:
        call()
        return ""
    except grpc.RpcError as e:
        return e.details()

def health_of(ch):
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="omen.v1.CanaryScorer"), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

list_services = [reflection_pb2.ServerReflectionRequest(list_services="")]
out = {}
with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
    grpc.channel_ready_future(ch).result(timeout=30)
    out["health"] = health_of(ch)
    stub = omen_pb2_grpc.CanaryScorerStub(ch)
    out["score_no_token"] = code(lambda: stub.Score(req, timeout=30))
    out["score_no_token_details"] = details(lambda: stub.Score(req, timeout=30))
    out["score_wrong_token"] = code(lambda: stub.Score(req, timeout=30, metadata=[("authorization", f"Bearer not-{token}")]))
    out["score_not_bearer"] = code(lambda: stub.Score(req, timeout=30, metadata=[("authorization", token)]))
    resp = stub.Score(req, timeout=30, metadata=good)
    out["score_token"] = {"deployment_id": resp.deployment_id, "decision": omen_pb2.Decision.Name(resp.decision), "failure_probability": resp.failure_probability}
    out["get_models_no_token"] = code(lambda: stub.GetModels(omen_pb2.GetModelsRequest(), timeout=10))
    out["stream_no_token"] = code(lambda: list(stub.ScoreStream(iter([req]), timeout=30)))
    out["stream_token"] = len(list(stub.ScoreStream(iter([req, req]), timeout=30, metadata=good)))
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    out["reflection_no_token"] = code(lambda: list(refl.ServerReflectionInfo(iter(list_services), timeout=10)))
    v1 = ch.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    out["reflection_v1_no_token"] = code(lambda: list(v1(iter(list_services), timeout=10)))
    rs = refl.ServerReflectionInfo(iter(list_services), timeout=10, metadata=good)
    out["reflection_token"] = sorted(s.name for r in rs for s in r.list_services_response.service)
# The certificate names localhost too.
with grpc.secure_channel(f"localhost:{port}", creds) as ch:
    out["health_localhost"] = health_of(ch)
# Plaintext to the TLS port, and TLS without trusting the certificate: no connection.
with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
    out["plaintext"] = code(lambda: health_of(ch))
with grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials()) as ch:
    out["untrusted"] = code(lambda: health_of(ch))
print(json.dumps(out))
"#;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    omen_tests::ensure_debian_package("openssl", "openssl").unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    (cert, key)
}

#[test]
fn tls_and_bearer_tokens_guard_the_scorer() {
    let f = fixture(true);
    let stubs = python_stubs(f.dir.path());
    let (cert, key) = self_signed(f.dir.path());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let token = format!("omen-test-token-{}-{nanos:x}", std::process::id());
    let tokens = f.dir.path().join("tokens");
    std::fs::write(&tokens, format!("# deployers\n{token}\n")).unwrap();
    let serve = Serve::start(
        &f.store,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--auth-tokens", tokens.to_str().unwrap()],
    );
    assert!(serve.log().contains(&format!("listening on grpcs://127.0.0.1:{}", serve.grpc)), "{}", serve.log());
    let (one, _) = requests(&f.inputs);
    let args =
        [stubs.display().to_string(), serve.grpc.to_string(), cert.display().to_string(), token.clone(), write_request(f.dir.path(), "one.pb", &one)];
    let j = run_script(f.dir.path(), "tls.py", TLS_PY, &args, &serve);

    assert_eq!(j["health"], "SERVING", "health needs no token: {j}");
    assert_eq!(j["health_localhost"], "SERVING", "{j}");
    for k in ["score_no_token", "score_wrong_token", "score_not_bearer", "get_models_no_token", "stream_no_token", "reflection_no_token", "reflection_v1_no_token"] {
        assert_eq!(j[k], "UNAUTHENTICATED", "{k}: {j}");
    }
    assert!(j["score_no_token_details"].as_str().unwrap().contains("bearer token"), "{j}");
    assert_eq!(j["score_token"]["deployment_id"], "d-0003", "{j}");
    assert!((0.0..=1.0).contains(&j["score_token"]["failure_probability"].as_f64().unwrap()), "{j}");
    assert_eq!(j["stream_token"], 2, "{j}");
    assert!(j["reflection_token"].as_array().unwrap().contains(&"omen.v1.CanaryScorer".into()), "{j}");
    assert_eq!(j["plaintext"], "UNAVAILABLE", "{j}");
    assert_eq!(j["untrusted"], "UNAVAILABLE", "{j}");

    // The HTTP adapter (plain HTTP) asks for the same token.
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(r#"{"service": ""}"#), None);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("UNAUTHENTICATED"), "{text}");
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(r#"{"service": ""}"#), Some(&format!("not-{token}")));
    assert_eq!(status, 401, "{text}");
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(r#"{"service": ""}"#), Some(&token));
    assert_eq!(status, 400, "past the token check: {text}");
    assert!(text.contains("service: required"), "{text}");
    assert_eq!(http(serve.http, "GET", "/healthz", None, None).0, 200);

    let (_, metrics) = http(serve.http, "GET", "/metrics", None, None);
    assert!(!metrics.contains(&token), "{metrics}");
    let log = serve.log();
    assert!(!log.contains(&token), "the token is in the server's log:\n{log}");
}

/// `r` with its samples repeated (times shifted by a millisecond a copy) until its encoding
/// reaches `bytes`, then trimmed back under it.
fn heavy(mut r: proto::ScoreRequest, bytes: usize) -> proto::ScoreRequest {
    let base = r.metrics.clone();
    let mut copy = 1.0;
    while r.encoded_len() < bytes {
        for (m, b) in r.metrics.iter_mut().zip(&base) {
            for (to, from) in [(&mut m.canary, &b.canary), (&mut m.baseline, &b.baseline)] {
                to.extend(from.iter().map(|s| proto::Sample { time: s.time + copy * 1e-3, value: s.value * (1.0 + copy * 1e-4) }));
            }
        }
        copy += 1.0;
    }
    while r.encoded_len() > bytes {
        let m = r.metrics.iter_mut().max_by_key(|m| m.canary.len() + m.baseline.len()).unwrap();
        if m.canary.len() >= m.baseline.len() {
            m.canary.pop();
        } else {
            m.baseline.pop();
        }
    }
    r
}

#[test]
fn excess_load_is_shed_with_resource_exhausted() {
    let f = fixture(true);
    let config = f.dir.path().join("omen.toml");
    std::fs::write(&config, "[serve.limits]\nmax_concurrent = 1\nmax_message_bytes = 65536\n").unwrap();
    let serve = Serve::start(&f.store, &["--config", config.to_str().unwrap()]);
    let (one, _) = requests(&f.inputs);
    let big = heavy(one.clone(), 60_000);
    assert!(big.encoded_len() <= 60_000 && big.encoded_len() > 50_000, "{}", big.encoded_len());
    let rt = rt();
    let c = rt.block_on(client(serve.grpc));

    // 64 calls at once against a limit of one: some are scored, the others shed, none fails
    // otherwise.
    let t0 = Instant::now();
    let codes: Vec<tonic::Code> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (mut c, r) = (c.clone(), big.clone());
            set.spawn(async move { c.score(r).await.map(|_| ()).map_err(|s| (s.code(), s.message().to_string())) });
        }
        let mut codes = Vec::new();
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(()) => codes.push(tonic::Code::Ok),
                Err((code, message)) => {
                    assert_eq!(code, tonic::Code::ResourceExhausted, "{message}");
                    assert!(message.contains("max_concurrent"), "{message}");
                    codes.push(code);
                }
            }
        }
        codes
    });
    let elapsed = t0.elapsed();
    let ok = codes.iter().filter(|c| **c == tonic::Code::Ok).count();
    let shed = codes.iter().filter(|c| **c == tonic::Code::ResourceExhausted).count();
    eprintln!("64 concurrent calls in {elapsed:?}: {ok} scored, {shed} shed");
    assert!(ok >= 1 && shed >= 1, "{ok} scored, {shed} shed");
    assert_eq!(ok + shed, 64);

    let (_, metrics) = http(serve.http, "GET", "/metrics", None, None);
    let counter = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
    };
    assert_eq!(counter("omen_shed_total "), shed as u64, "{metrics}");
    assert_eq!(counter("omen_requests_total{method=\"Score\",code=\"RESOURCE_EXHAUSTED\"} "), shed as u64, "{metrics}");
    assert_eq!(counter("omen_requests_total{method=\"Score\",code=\"OK\"} "), ok as u64, "{metrics}");

    // One at a time, every call is scored.
    let mut c = c;
    for _ in 0..3 {
        rt.block_on(c.score(big.clone())).unwrap();
    }

    // Past max_message_bytes: refused before scoring; the server serves on.
    let huge = heavy(one.clone(), 100_000);
    let huge_len = huge.encoded_len();
    assert!(huge_len > 65_536);
    let e = rt.block_on(c.score(huge)).unwrap_err();
    eprintln!("a request of {} bytes: {e}", huge_len);
    assert!(matches!(e.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted), "{e}");
    rt.block_on(c.score(one.clone())).unwrap();
    // The HTTP adapter has the same limit.
    let body = format!("{{\"service\": \"checkout\"{}}}", " ".repeat(70_000));
    let (status, text) = http(serve.http, "POST", "/v1/score", Some(&body), None);
    assert_eq!(status, 413, "{text}");
}
