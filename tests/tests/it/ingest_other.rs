//! `omen ingest commits | metrics | deployments` through the CLI: dedup and bad input.

use omen_tests::{json_ok, omen, workspace_root};


fn sample(p: &str) -> String {
    workspace_root().join("data/samples").join(p).display().to_string()
}

#[test]
fn commits_from_a_bundle_are_deduplicated_by_sha() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    let bundle = sample("repos/checkout.bundle");
    let j = json_ok(&omen(dir.path(), &["ingest", "commits", &bundle, "--service", "checkout", "--store", s, "--json"]));
    let n = j["rows_written"].as_u64().unwrap();
    assert!(n >= 40, "{j}");
    let j = json_ok(&omen(dir.path(), &["ingest", "commits", &bundle, "--service", "checkout", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 0, "{j}");
    let out = omen(dir.path(), &["ingest", "commits", "/nonexistent/repo", "--service", "x", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/repo"));
    let notrepo = dir.path().join("plain");
    std::fs::create_dir(&notrepo).unwrap();
    let out = omen(dir.path(), &["ingest", "commits", notrepo.to_str().unwrap(), "--service", "x", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn metrics_files_in_every_format_and_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    let s = s.to_str().unwrap();
    let j = json_ok(&omen(dir.path(), &["ingest", "metrics", &sample("metrics"), "--store", s, "--json"]));
    assert_eq!(j["files_ingested"], 3, "{j}");
    assert!(j["rows_written"].as_u64().unwrap() > 300, "{j}");
    let j2 = json_ok(&omen(dir.path(), &["ingest", "metrics", &sample("metrics"), "--store", s, "--json"]));
    assert_eq!(j2["rows_written"], 0, "{j2}");

    let f = dir.path().join("bad.prom");
    std::fs::write(&f, "ok_metric{a=\"1\"} 1 1700000000000\nbroken{a=\"1\" 2 1700000000000\nno_ts 3\n").unwrap();
    let j = json_ok(&omen(dir.path(), &["ingest", "metrics", f.to_str().unwrap(), "--service", "x", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 1, "{j}");
    assert_eq!(j["rows_rejected"], 2, "{j}");

    let deps = sample("deployments/deployments.jsonl");
    let j = json_ok(&omen(dir.path(), &["ingest", "deployments", &deps, "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 7, "{j}");
    let j = json_ok(&omen(dir.path(), &["ingest", "deployments", &deps, "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 0, "the same records again change nothing: {j}");
    assert_eq!(j["files_skipped"], 1, "{j}");
    // Re-ingesting (even a changed record) keeps one row per deployment_id.
    let changed = std::fs::read_to_string(&deps).unwrap().replace("\"rolled_back\"", "\"failed\"");
    let f2 = dir.path().join("changed.jsonl");
    std::fs::write(&f2, changed).unwrap();
    json_ok(&omen(dir.path(), &["ingest", "deployments", &deps, "--store", s, "--json"]));
    json_ok(&omen(dir.path(), &["ingest", "deployments", f2.to_str().unwrap(), "--store", s, "--json"]));
    let script = r#"
import sys, json, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/deployments", format="parquet", partitioning="hive").to_table()
print(json.dumps({r["deployment_id"]: r["outcome"] for r in t.to_pylist()}))
"#;
    let v: serde_json::Value = serde_json::from_str(&omen_tests::run_python(script, &[s]).unwrap()).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 7, "{v}");
    assert_eq!(v["d-0003"], "failed", "the later record replaces the earlier: {v}");
}
