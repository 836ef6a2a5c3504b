//! `omen retrain` (the scheduled job) and `omen evaluate` on the committed simulated history
//! (`data/samples/simulated`): first run promotes, a second on the same data promotes nothing,
//! the lock refuses a second run, `--dry-run` leaves the registry alone, a run killed half-way
//! is simply run again; the evaluation report has every section and a stable metrics shape.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use omen_tests::{bin, json_ok, omen, workspace_root};
use serde_json::Value as Json;

/// The simulated sample's omen.toml with absolute source paths, small GBDT parameters, and
/// `extra` appended.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let sim = workspace_root().join("data/samples/simulated");
    let text = std::fs::read_to_string(sim.join("omen.toml")).unwrap();
    let abs = sim.display().to_string();
    let text = text.replace("paths = [\"", &format!("paths = [\"{abs}/")).replace("repo = \"", &format!("repo = \"{abs}/"));
    let text = format!(
        "{text}\n[evaluate]\nholdout = 0.25\n\n[retrain]\nmin_auc = 0.5\nmax_ece = 0.5\n{extra}\n[retrain.gbdt]\nnum_iterations = 60\nnum_leaves = 8\nmin_data_in_leaf = 10\nearly_stopping_rounds = 0\n"
    );
    let p = dir.join("omen.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn retrain(dir: &Path, cfg: &Path, store: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["retrain", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"];
    a.extend_from_slice(extra);
    omen(dir, &a)
}

fn json(out: &Output) -> Json {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn registry_list(dir: &Path, store: &Path) -> Json {
    json_ok(&omen(dir, &["registry", "list", "--store", store.to_str().unwrap(), "--json"]))
}

/// Every number replaced by 0 and every array cut to its first element: the shape.
fn shape(v: &Json) -> Json {
    match v {
        Json::Number(_) => Json::from(0),
        Json::String(_) => Json::from("…"),
        Json::Array(a) => Json::Array(a.first().map(shape).into_iter().collect()),
        Json::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        x => x.clone(),
    }
}

#[test]
fn retrain_promotes_once_then_keeps_and_evaluate_reports_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(dir.path(), "");
    let out = retrain(dir.path(), &cfg, &store, &[]);
    let first = json(&out);
    assert_eq!(out.status.code(), Some(0), "{first:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(first["outcome"], "promoted", "{first:#}");
    let champion = first["champion_after"].as_u64().unwrap();
    let report = first["report"].as_str().unwrap();
    assert!(Path::new(report.strip_prefix("file://").unwrap_or(report)).is_file(), "{report}");
    let run = first["run_id"].as_str().unwrap();
    assert!(store.join(format!("retrain/runs/{run}.json")).is_file());
    assert!(!store.join("locks/retrain.json").exists(), "the lock is released");
    let e = &first["evaluation"];
    assert!(e["holdout"]["deployments"].as_u64().unwrap() > 0, "{e:#}");
    assert!(e["judge"]["decisions"]["deployments"].as_u64().unwrap() > 0);
    // The truth of the simulator reached the store and the per-mode figures.
    assert!(e["models"][0]["by_mode"].as_array().unwrap().iter().all(|m| m["mode"] != "unknown"), "{:#}", e["models"][0]["by_mode"]);
    // The LSTM challenger: trained, registered, replayed against no sequence model, crowned.
    let sc = &e["sequence_challenger"];
    assert_eq!(sc["outcome"], "promoted", "{sc:#}");
    assert_eq!(sc["challenger"], "omen-sequence/1", "{sc:#}");
    assert!(sc["with_served"]["sequence"].is_null() && sc["with_challenger"]["sequence"] == "omen-sequence/1", "{sc:#}");
    assert!(first["stages"].as_array().unwrap().iter().any(|s| s[0] == "train sequence"), "{:#}", first["stages"]);
    let html = std::fs::read_to_string(report.strip_prefix("file://").unwrap_or(report)).unwrap();
    assert!(html.contains("id=\"sequence-challenger\"") && html.contains("omen-sequence/1"), "the retrain report has the sequence section");
    let before = registry_list(dir.path(), &store);
    let alias = |l: &Json, name: &str, a: &str| {
        l["models"].as_array().unwrap().iter().find(|m| m["name"] == name).and_then(|m| m["aliases"][a].as_u64())
    };
    assert_eq!(alias(&before, "omen-sequence", "champion"), Some(1), "{before:#}");
    // `omen detect` runs the retrained champion's series detector.
    let s = store.to_str().unwrap();
    let d = json_ok(&omen(dir.path(), &["detect", "--store", s, "--detector", "lstm", "--no-write", "--json"]));
    assert!(d["series"].as_u64().unwrap_or(0) > 0, "{d:#}");

    // The same data again: the same model, nothing new, nothing promoted, exit 0.
    let out = retrain(dir.path(), &cfg, &store, &[]);
    let second = json(&out);
    assert_eq!(out.status.code(), Some(0), "{second:#}");
    assert_eq!(second["outcome"], "kept", "{second:#}");
    assert_eq!(second["champion_after"].as_u64(), Some(champion));
    let after = registry_list(dir.path(), &store);
    let versions = |l: &Json, name: &str| l["models"].as_array().unwrap().iter().find(|m| m["name"] == name).map(|m| m["versions"].clone());
    assert_eq!(versions(&before, "omen-failure"), versions(&after, "omen-failure"), "no new version on the same data");
    assert_eq!(versions(&before, "omen-sequence"), versions(&after, "omen-sequence"), "the same LSTM on the same data and seed");
    assert!(second["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("omen-sequence challenger is the champion's model")), "{second:#}");

    // Another seed: a new LSTM, replayed against the champion's; with no SLO in the config the
    // forecasts cannot change a decision, so it is not better and the champion stays.
    let cfg2 = config(dir.path(), "\n[retrain.sequence]\nseed = 2\n");
    let third = json(&retrain(dir.path(), &cfg2, &store, &[]));
    let sc = &third["evaluation"]["sequence_challenger"];
    assert_eq!(sc["outcome"], "kept", "{sc:#}");
    assert_eq!(sc["with_served"]["sequence"], "omen-sequence/1", "{sc:#}");
    assert_eq!(sc["challenger"], "omen-sequence/2", "{sc:#}");
    let l = registry_list(dir.path(), &store);
    assert_eq!((alias(&l, "omen-sequence", "champion"), alias(&l, "omen-sequence", "challenger")), (Some(1), Some(2)), "{l:#}");

    // `omen evaluate` on the champion: the report and its metrics.
    let rdir = dir.path().join("report");
    let out = omen(dir.path(), &["evaluate", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--report", rdir.to_str().unwrap(), "--json"]);
    let ev = json_ok(&out);
    let html = std::fs::read_to_string(rdir.join("index.html")).unwrap();
    for id in omen_pipeline_sections() {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id} missing");
    }
    assert!(html.contains("<svg") && !html.contains("<script"), "inline SVG, no script");
    let metrics: Json = serde_json::from_slice(&std::fs::read(rdir.join("metrics.json")).unwrap()).unwrap();
    let mut stdout = ev.clone();
    stdout.as_object_mut().unwrap().remove("report");
    let mut file = metrics.clone();
    file.as_object_mut().unwrap().remove("report");
    assert_eq!(stdout, file, "--json prints what metrics.json holds");
    let m = &metrics["models"][0];
    for k in ["auc", "pr_auc", "brier", "ece"] {
        assert!(m["classifier"][k].is_number(), "{k}: {:#}", m["classifier"]);
    }
    insta::assert_json_snapshot!("evaluate_metrics_shape", shape(&metrics));
    // Only unseen deployments are scored: the hold-out less those a model was fitted on.
    let h = &metrics["holdout"];
    assert_eq!(h["deployments"].as_u64().unwrap() + h["deployments_seen_in_training"].as_u64().unwrap(), h["deployments_held_out"].as_u64().unwrap(), "{h:#}");
    let trained_to = chrono::DateTime::parse_from_rfc3339(m["trained_to"].as_str().unwrap()).unwrap();
    let from = chrono::DateTime::parse_from_rfc3339(h["started_from"].as_str().unwrap()).unwrap();
    assert!(from > trained_to - chrono::Duration::hours(1), "held-out deployments start after the fitted rows: {from} vs {trained_to}");
}

/// The report's section ids (kept in step with `omen_pipeline::report::SECTIONS`).
fn omen_pipeline_sections() -> [&'static str; 9] {
    ["summary", "roc", "pr", "calibration", "lead-time", "false-rollbacks", "recall-by-mode", "importance", "profiles"]
}

#[test]
fn guardrails_reject_and_dry_run_leaves_the_registry_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // --dry-run: everything but registering and promoting.
    let cfg = config(dir.path(), "");
    let out = retrain(dir.path(), &cfg, &store, &["--dry-run"]);
    let j = json(&out);
    assert_eq!(out.status.code(), Some(0), "{j:#}");
    assert_eq!(j["outcome"], "dry_run", "{j:#}");
    assert!(j["would"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("promote")), "{j:#}");
    assert_eq!(registry_list(dir.path(), &store)["models"], serde_json::json!([]), "a dry run registers nothing");
    // An impossible guardrail: rejected, exit 3, still no champion.
    let strict = dir.path().join("strict");
    std::fs::create_dir_all(&strict).unwrap();
    let cfg = config(&strict, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("min_auc = 0.5", "min_auc = 1.01");
    std::fs::write(&cfg, text).unwrap();
    let out = retrain(dir.path(), &cfg, &store, &[]);
    let j = json(&out);
    assert_eq!(out.status.code(), Some(3), "{j:#}");
    assert_eq!(j["outcome"], "rejected");
    assert!(j["reasons"][0].as_str().unwrap().contains("retrain.min_auc"), "{j:#}");
    assert_eq!(j["champion_after"], Json::Null);
    let usage = omen(dir.path(), &["retrain", "--bogus"]);
    assert_eq!(usage.status.code(), Some(2));
    let help = omen(dir.path(), &["retrain", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"), "retrain --help documents its exit codes");
}

#[test]
fn a_second_run_is_refused_by_the_lock_and_a_killed_run_is_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(dir.path(), "");
    // A run in progress: the lock of a live process (this test) on this host, just taken.
    std::fs::create_dir_all(store.join("locks")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let lock = serde_json::json!({"run_id": "other", "pid": std::process::id(), "host": host, "started_at": chrono::Utc::now().to_rfc3339()});
    std::fs::write(store.join("locks/retrain.json"), lock.to_string()).unwrap();
    let out = retrain(dir.path(), &cfg, &store, &[]);
    let j = json(&out);
    assert_eq!(out.status.code(), Some(4), "{j:#}");
    assert_eq!(j["outcome"], "locked");
    assert_eq!(j["locked_by"]["run_id"], "other");
    assert!(!store.join("features").exists(), "a refused run does nothing");
    std::fs::remove_file(store.join("locks/retrain.json")).unwrap();

    // Killed in the middle (after it took the lock and started ingesting): run again.
    let mut child = Command::new(bin("omen"))
        .args(["retrain", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"])
        .current_dir(dir.path())
        .env_remove("OMEN_STORE")
        .env_remove("OMEN_REGISTRY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !store.join("locks/retrain.json").exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(store.join("locks/retrain.json").exists(), "the killed run left its lock");
    let out = retrain(dir.path(), &cfg, &store, &[]);
    let j = json(&out);
    assert_eq!(out.status.code(), Some(0), "{j:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(j["outcome"], "promoted", "{j:#}");
    assert!(!store.join("locks/retrain.json").exists());
}
