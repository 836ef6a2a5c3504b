//! The MLflow backend against a real `mlflow server` (SQLite backend, proxied artifacts) on
//! 127.0.0.1: omen registers, MLflow's own Python client finds everything, omen loads it back.

use std::path::Path;
use std::time::{Duration, Instant};

use omen_tests::mlflow::MlflowServer;
use omen_tests::{free_port, json_ok, omen};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn walk(p: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn omen_models_in_mlflow_are_seen_by_its_client_and_loaded_back() {
    let server = MlflowServer::start().unwrap();
    let reg = format!("mlflow+{}", server.url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let table = crate::train::table(d, 2000);
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train", "failure", "--features", table.to_str().unwrap(), "--label", "failed", "--time-column", "ts",
            "--exclude", "latency", "--param", "num_iterations=30", "--registry", &reg, "--json",
        ];
        args.extend_from_slice(extra);
        json_ok(&omen(d, &args))
    };
    let t1 = train(&[]);
    assert_eq!((t1["registered"]["version"].as_u64(), t1["registered"]["champion"].as_bool()), (Some(1), Some(true)), "{t1}");
    let t2 = train(&["--param", "num_leaves=7"]);
    assert_eq!(t2["registered"]["version"], 2);

    // MLflow's own client sees the champion, its run's metrics and params, and the artifacts.
    let script = r#"
import json
from mlflow import MlflowClient
c = MlflowClient()
mv = c.get_model_version_by_alias("omen-failure", "champion")
run = c.get_run(mv.run_id)
print(json.dumps({
    "version": mv.version, "aliases": list(mv.aliases), "status": mv.status, "tags": dict(mv.tags),
    "metrics": run.data.metrics, "params": run.data.params, "run_tags": run.data.tags,
    "run_status": run.info.status,
    "files": sorted(f.path for f in c.list_artifacts(mv.run_id, "model")),
    "versions": sorted(int(v.version) for v in c.search_model_versions("name='omen-failure'")),
}))
"#;
    let v: serde_json::Value = serde_json::from_str(&server.python_client(script).unwrap()).unwrap();
    assert_eq!(v["version"], "1", "{v}");
    assert_eq!(v["aliases"], serde_json::json!(["champion"]));
    assert_eq!(v["status"], "READY");
    assert_eq!(v["run_status"], "FINISHED");
    assert_eq!(v["versions"], serde_json::json!([1, 2]));
    let auc = v["metrics"]["auc"].as_f64().unwrap();
    assert!((auc - t1["metrics"]["auc"].as_f64().unwrap()).abs() < 1e-12, "{v}");
    assert_eq!(v["params"]["num_leaves"], "31");
    assert_eq!(v["files"], serde_json::json!(["model/model.omengbdt", "model/omen-version.json"]));
    assert_eq!(v["tags"]["omen.artifact.format"], "omen-gbdt/1");
    assert_eq!(v["tags"]["omen.artifact.blake3"].as_str().unwrap().len(), 64);
    assert_eq!(v["run_tags"]["omen.lineage.rows"], "1600");
    assert!(v["run_tags"]["omen.code_version"].as_str().unwrap().starts_with("omen "));

    // omen reads it all back: list, show by alias, pull (verified, loaded).
    let list = json_ok(&omen(d, &["registry", "list", "--registry", &reg, "--json"]));
    assert_eq!(list["models"][0]["name"], "omen-failure", "{list}");
    assert_eq!((list["models"][0]["versions"].as_u64(), list["models"][0]["latest"].as_u64()), (Some(2), Some(2)));
    assert_eq!(list["models"][0]["aliases"]["champion"], 1);
    let show = json_ok(&omen(d, &["registry", "show", "omen-failure@champion", "--registry", &reg, "--json"]));
    assert_eq!(show["version"], 1);
    assert_eq!(show["schema"]["hash"], v["tags"]["omen.schema_hash"]);
    let pulled = d.join("champion.omengbdt");
    let p = json_ok(&omen(d, &["registry", "pull", "omen-failure@champion", "--registry", &reg, "--out", pulled.to_str().unwrap(), "--json"]));
    assert_eq!(p["version"], 1);
    assert!(p["trees"].as_u64().unwrap() > 0);

    // Promote with a compare, roll back; the Python client agrees at each step.
    let champion = || server.python_client("from mlflow import MlflowClient; print(MlflowClient().get_model_version_by_alias('omen-failure', 'champion').version)").unwrap();
    let out = omen(d, &["registry", "promote", "omen-failure", "2", "--expect", "2", "--registry", &reg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expected it at version 2, it points at version 1"), "{}", stderr(&out));
    json_ok(&omen(d, &["registry", "promote", "omen-failure", "2", "--expect", "1", "--registry", &reg, "--json"]));
    assert_eq!(champion().trim(), "2");
    let r = json_ok(&omen(d, &["registry", "rollback", "omen-failure", "--registry", &reg, "--json"]));
    assert_eq!((r["version"].as_u64(), r["previous"].as_u64()), (Some(1), Some(2)), "{r}");
    assert_eq!(champion().trim(), "1");

    // Bad input: an unknown model; an alias whose version was deleted; a tampered artifact.
    let out = omen(d, &["registry", "show", "omen-nope@champion", "--registry", &reg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("model `omen-nope` not found"), "{}", stderr(&out));
    json_ok(&omen(d, &["registry", "promote", "omen-failure", "2", "--alias", "challenger", "--registry", &reg, "--json"]));
    json_ok(&omen(d, &["registry", "delete", "omen-failure/2", "--registry", &reg, "--json"]));
    let out = omen(d, &["registry", "pull", "omen-failure@challenger", "--registry", &reg, "--out", d.join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version 2 of `omen-failure`, where alias `challenger` pointed"), "{}", stderr(&out));
    assert!(stderr(&out).contains("was deleted"), "{}", stderr(&out));
    let mut files = Vec::new();
    walk(&server.artifacts_dir(), &mut files);
    let run_id = t1_run_id(&server);
    let artifact = files
        .iter()
        .find(|f| f.ends_with("model/model.omengbdt") && f.display().to_string().contains(&run_id))
        .expect("the champion's artifact on the server's disk")
        .clone();
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&artifact, bytes).unwrap();
    let out = omen(d, &["registry", "pull", "omen-failure@champion", "--registry", &reg, "--out", d.join("y").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("fails its checksum"), "{}", stderr(&out));
    assert!(!d.join("y").exists());
}

fn t1_run_id(server: &MlflowServer) -> String {
    server
        .python_client("from mlflow import MlflowClient; print(MlflowClient().get_model_version_by_alias('omen-failure', 'champion').run_id)")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn an_unreachable_mlflow_server_fails_after_bounded_retries() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there
    let reg = format!("mlflow+http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let out = omen(dir.path(), &["registry", "list", "--registry", &reg]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains(&format!("registry mlflow+http://127.0.0.1:{port}: unreachable after 4 attempts")), "{e}");
    assert!(e.to_lowercase().contains("connect"), "the cause is named: {e}");
    assert!(took < Duration::from_secs(20), "bounded: {took:?}");
    // Credentials in the URL are never shown.
    let out = omen(dir.path(), &["registry", "list", "--registry", &format!("mlflow+http://alice:s3cret@127.0.0.1:{port}")]);
    let e = stderr(&out);
    assert!(!e.contains("s3cret") && !e.contains("alice"), "{e}");
}
