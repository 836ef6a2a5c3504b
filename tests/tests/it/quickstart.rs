//! The README's first command: `omen quickstart` on the bundled samples, end to end.

use omen_tests::{json_ok, omen, run_python, workspace_root};

#[test]
fn quickstart_runs_the_whole_pipeline_and_rerunning_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // The README's first command: from the repository root, no --config (the bundled samples).
    let j = json_ok(&omen(&workspace_root(), &["quickstart", "--store", s, "--json"]));
    assert!(j["config"].as_str().unwrap().ends_with("data/samples/quickstart.toml"), "{}", j["config"]);
    let counts = row_counts(&j);
    for ds in ["requests", "commits", "commit_files", "metrics", "deployments", "features"] {
        assert!(counts[ds] > 0, "{ds} is empty after quickstart: {j}");
    }
    // Both the simulated history and the hand-written inputs went in.
    assert!(counts["deployments"] >= 188, "{counts:?}");
    assert!(j["profiles"]["k"].as_u64().unwrap() >= 2, "{}", j["profiles"]);
    // Trained and registered: the failure and performance models, each version 1 and champion.
    let models: Vec<(String, u64, bool)> = j["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model"].as_str().unwrap().to_string(), m["registered"]["version"].as_u64().unwrap(), m["registered"]["champion"].as_bool().unwrap()))
        .collect();
    assert_eq!(models, [("omen-failure".to_string(), 1, true), ("omen-performance".to_string(), 1, true)], "{}", j["models"]);
    // And the LSTM sequence models, as `omen retrain` trains them.
    let q = &j["sequence"];
    assert_eq!((q["registered"]["version"].as_u64(), q["registered"]["champion"].as_bool()), (Some(1), Some(true)), "{q}");
    assert!(q["forecast_windows"][0].as_u64().unwrap() > 0 && q["detector"]["series_train"].as_u64().unwrap() > 0, "{q}");
    let auc = j["models"][0]["metrics"]["auc"].as_f64().unwrap();
    assert!(auc > 0.5, "held-out AUC {auc}");
    // Evaluated against the reference judge on the time-ordered hold-out, report written.
    let e = &j["evaluation"];
    assert!(e["holdout"]["deployments"].as_u64().unwrap() > 0 && e["holdout"]["failing"].as_u64().unwrap() > 0, "{}", e["holdout"]);
    assert_eq!(e["models"][0]["name"], "omen-failure", "{e}");
    assert!(e["judge"]["decisions"]["recall"].is_number(), "{}", e["judge"]);
    let report = std::path::Path::new(e["report"].as_str().unwrap());
    assert!(report.is_file() && report.with_file_name("metrics.json").is_file(), "{e}");
    // Held-out canaries scored by omen-serve over gRPC, beside their true outcomes.
    let scored = j["scored"].as_array().unwrap();
    assert!(scored.len() >= 3, "{}", j["scored"]);
    assert!(scored.iter().any(|c| ["failed", "rolled_back"].contains(&c["outcome"].as_str().unwrap())), "no failing canary among {scored:?}");
    for c in scored {
        let a = &c["answer"];
        assert_eq!(a["deployment_id"], c["deployment_id"]);
        let p = a["failure_probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{c}");
        assert!(["PROMOTE", "CONTINUE", "HOLD", "ROLLBACK"].contains(&a["decision"].as_str().unwrap()), "{c}");
        assert!(a["models"].as_array().unwrap().iter().any(|m| m == "omen-failure/1"), "{c}");
        assert!(c["samples"].as_u64().unwrap() > 0 && !c["outcome"].as_str().unwrap().is_empty(), "{c}");
    }
    assert!(scored.iter().any(|c| c["answer"]["models"].as_array().unwrap().iter().any(|m| m == "omen-sequence/1")), "no answer used the sequence champion: {scored:?}");
    assert_eq!(j["serve"]["exit_code"], 0, "{}", j["serve"]);
    assert!(j["serve"]["listen"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Every output is listed where it is, with what to run next.
    for d in j["datasets"].as_array().unwrap() {
        if d["rows"].as_u64().unwrap() > 0 {
            assert!(std::path::Path::new(d["path"].as_str().unwrap()).is_dir(), "{d}");
        }
    }
    assert!(store.join("registry").is_dir() && store.join("scores").is_dir() && store.join("profiles").is_dir());
    assert!(j["next"].as_array().unwrap().len() >= 3, "{}", j["next"]);

    // A second run adds nothing: the same rows, the same model versions; only the score log
    // (a log of every answer served) gets the new answers.
    let j2 = json_ok(&omen(dir.path(), &["quickstart", "--config", workspace_root().join("data/samples/quickstart.toml").to_str().unwrap(), "--store", s, "--json"]));
    let mut again = row_counts(&j2);
    let mut first = counts.clone();
    let scores = (first.remove("scores"), again.remove("scores"));
    assert_eq!(first, again, "a second quickstart changed the store");
    if let (Some(a), Some(b)) = scores {
        assert_eq!(b, a + scored.len() as u64, "the score log");
    }
    assert_eq!(j2["profiles"]["new"], false, "{}", j2["profiles"]);
    for m in j2["models"].as_array().unwrap().iter().chain([&j2["sequence"]]) {
        assert_eq!(m["registered"]["version"], 1, "registered again: {m}");
    }
    let list = json_ok(&omen(dir.path(), &["registry", "list", "--store", s, "--json"]));
    for m in list["models"].as_array().unwrap() {
        assert_eq!(m["versions"], 1, "{list}");
    }
    let answers = |j: &serde_json::Value| j["scored"].as_array().unwrap().iter().map(|c| c["answer"]["failure_probability"].as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(answers(&j), answers(&j2), "the same models give the same answers");

    // Every dataset reads back with pyarrow with the documented columns and types.
    let mut expected = serde_json::Map::new();
    for d in omen_features::schema::DatasetSchema::all() {
        if d.name == "_rejects" {
            continue;
        }
        let cols: serde_json::Map<String, serde_json::Value> =
            d.columns.iter().map(|c| (c.name.to_string(), c.ty.arrow_name().into())).collect();
        expected.insert(d.name.to_string(), cols.into());
    }
    let script = r#"
import sys, json, pyarrow.dataset as ds
expected = json.loads(sys.argv[2])
bad = []
for name, cols in expected.items():
    t = ds.dataset(sys.argv[1] + "/" + name, format="parquet", partitioning="hive").to_table()
    got = {f.name: str(f.type) for f in t.schema}
    for c, ty in cols.items():
        if got.get(c) != ty:
            bad.append(f"{name}.{c}: expected {ty}, got {got.get(c)}")
print(json.dumps(bad))
"#;
    let bad = run_python(script, &[s, &serde_json::Value::Object(expected).to_string()]).unwrap();
    assert_eq!(bad.trim(), "[]", "schema mismatches: {bad}");
}

fn row_counts(summary: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    summary["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["dataset"].as_str().unwrap().to_string(), d["rows"].as_u64().unwrap()))
        .collect()
}
