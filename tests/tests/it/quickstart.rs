//! The README's first command: `omen quickstart` on the bundled samples.

use omen_tests::{json_ok, omen, run_python, workspace_root};

#[test]
fn quickstart_ingests_every_sample_and_rerunning_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let config = workspace_root().join("data/samples/omen.toml");
    let c = config.to_str().unwrap();
    let j = json_ok(&omen(dir.path(), &["quickstart", "--config", c, "--store", s, "--json"]));
    let counts = row_counts(&j);
    for ds in ["requests", "commits", "commit_files", "metrics", "deployments"] {
        assert!(counts[ds] > 0, "{ds} is empty after quickstart: {j}");
    }
    let first = counts.clone();
    let j2 = json_ok(&omen(dir.path(), &["quickstart", "--config", c, "--store", s, "--json"]));
    assert_eq!(first, row_counts(&j2), "a second quickstart changed the store");

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
