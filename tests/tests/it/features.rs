//! `omen features build`: the table on the samples, its parity with the online path (the
//! functions `omen-serve` calls, fed from the raw inputs as a deployer would send them), and
//! point-in-time correctness (changing every record after a checkpoint leaves that row alone).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use omen_features::feature::{
    Commit, DeploymentRef, FeatureParams, FeatureSet, FileChange, KAMEI, Kind, RepoHistory, Role, Sample, Value,
    WindowsBuilder, change_context_at, series_id,
};
use omen_features::ingest::metrics::canonical_labels;
use omen_tests::{json_ok, omen, workspace_root};
use polars::prelude::*;
use serde_json::Value as Json;

const SOURCES: [(&str, &[&str]); 5] = [
    ("logs", &[]),
    ("commits", &["repos/checkout.bundle", "--service", "checkout"]),
    ("metrics", &["metrics/checkout-canary.json", "metrics/checkout-memory.prom", "metrics/search-cpu.csv"]),
    ("deployments", &["deployments/deployments.jsonl"]),
    ("", &[]),
];

/// Ingests the inputs under `inputs` (a copy of data/samples, maybe altered) into `store` and
/// builds the features with the sample config's `[features]`.
pub(crate) fn build(dir: &Path, inputs: &Path, store: &Path) -> Json {
    let s = store.to_str().unwrap();
    for (kind, args) in SOURCES {
        if kind.is_empty() || args.is_empty() {
            continue;
        }
        let mut a: Vec<String> = vec!["ingest".into(), kind.into()];
        for (i, x) in args.iter().enumerate() {
            // Paths (not flags and their values) are relative to the inputs folder.
            let is_path = !x.starts_with("--") && (i == 0 || !args[i - 1].starts_with("--"));
            a.push(if is_path { inputs.join(x).display().to_string() } else { x.to_string() });
        }
        a.extend(["--store".into(), s.into(), "--json".into()]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        json_ok(&omen(dir, &refs));
    }
    let config = workspace_root().join("data/samples/omen.toml");
    json_ok(&omen(dir, &["features", "build", "--config", config.to_str().unwrap(), "--store", s, "--json"]))
}

pub(crate) fn copy_samples(to: &Path) -> PathBuf {
    let from = workspace_root().join("data/samples");
    for sub in ["repos", "metrics", "deployments"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap_or_else(|e| panic!("{}: {e}", from.join(sub).display())) {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
        }
    }
    to.to_path_buf()
}

pub(crate) fn read_features(store: &Path) -> DataFrame {
    let mut frames = Vec::new();
    for e in std::fs::read_dir(store.join("features")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let f = std::fs::File::open(p.join("part-0.parquet")).unwrap();
            frames.push(ParquetReader::new(f).finish().unwrap().lazy());
        }
    }
    concat(frames, UnionArgs::default()).unwrap().sort(["deployment_id", "checkpoint_at"], Default::default()).collect().unwrap()
}

pub(crate) fn schema_file(store: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(store.join("features/_schema.json")).unwrap()).unwrap()
}

/// The value of column `name` at `row`, as the feature functions give it.
pub(crate) fn value(df: &DataFrame, name: &str, kind: Kind, row: usize) -> Value {
    let c = df.column(name).unwrap_or_else(|_| panic!("no column {name}")).as_materialized_series();
    match kind {
        Kind::Float => Value::Float(c.f64().unwrap().get(row)),
        Kind::Int => Value::Int(c.i64().unwrap().get(row)),
        Kind::Bool => Value::Bool(c.bool().unwrap().get(row)),
        Kind::Str => Value::Str(c.str().unwrap().get(row).map(str::to_owned)),
    }
}

fn time_us(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
}

#[test]
fn features_of_the_samples_are_complete_documented_and_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = copy_samples(&dir.path().join("in"));
    let store = dir.path().join("store");
    let j = build(dir.path(), &inputs, &store);
    assert_eq!(j["deployments"], 7, "{j}");
    assert_eq!(j["rows"], 28);
    assert_eq!(j["change_states"]["commits_missing"], 1, "search's commits were never ingested: {j}");
    let df = read_features(&store);
    assert_eq!(df.height(), 28);
    // The schema beside the data: every column in order, with a hash that verifies.
    let schema: omen_features::feature::FeatureSchema = serde_json::from_value(schema_file(&store)).unwrap();
    assert!(schema.verify());
    assert_eq!(schema.hash, j["schema_hash"].as_str().unwrap());
    let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(&names[..2], ["deployment_id", "checkpoint_at"]);
    assert_eq!(names[2..].len(), schema.columns.len());
    for (n, c) in names[2..].iter().zip(&schema.columns) {
        assert_eq!(*n, c.name);
    }
    // No NaN anywhere: missing is null.
    for c in df.columns() {
        if let Ok(f) = c.as_materialized_series().f64() {
            assert!(f.iter().flatten().all(f64::is_finite), "{} holds a non-finite value", c.name());
        }
    }
    // The rolled-back deployment's leak and error burst are visible by its last checkpoint.
    let row = (0..df.height())
        .find(|&i| value(&df, "deployment_id", Kind::Str, i) == Value::Str(Some("d-0003".into())) && value(&df, "elapsed_s", Kind::Float, i) == Value::Float(Some(2400.0)))
        .unwrap();
    let f = |n: &str| match value(&df, n, Kind::Float, row) {
        Value::Float(Some(v)) => v,
        v => panic!("{n}: {v:?}"),
    };
    assert!(f("m__process_resident_memory_bytes__trend_slope") > 1e6, "memory grows by ~4 MB a minute");
    assert!(f("e__http_errors__p_value") < 1e-6);
    assert!(f("m__http_request_duration_seconds_p99__mwu_p") < 1e-3);
    assert_eq!(value(&df, "m__http_request_duration_seconds_p99__infinite", Kind::Int, row), Value::Int(Some(1)));
    assert_eq!(value(&df, "label_failed", Kind::Bool, row), Value::Bool(Some(true)));
    // Counters are not compared as gauges unless named.
    assert!(df.column("m__http_requests_total__mwu_p").is_err());
    // Its load test (role `loadtest`, minutes 1 to 5.5, one NaN) runs 1.8× the baseline's p99;
    // the other deployments have none.
    assert_eq!(value(&df, "l__http_request_duration_seconds_p99__state", Kind::Str, row), Value::Str(Some("ok".into())));
    assert_eq!(value(&df, "l__http_request_duration_seconds_p99__n", Kind::Int, row), Value::Int(Some(9)));
    let ratio = f("l__http_request_duration_seconds_p99__ratio");
    assert!((1.6..2.0).contains(&ratio), "load test / baseline {ratio}");
    let no_load_test = (0..df.height()).filter(|&i| value(&df, "l__http_request_duration_seconds_p99__state", Kind::Str, i) == Value::Str(Some("no_data".into()))).count();
    assert_eq!(no_load_test, 24, "the four rows of d-0003 have one");

    // Training on the folder never sees the other labels (outcomes) as inputs.
    let t = json_ok(&omen(
        dir.path(),
        &["train", "failure", "--features", store.join("features").to_str().unwrap(), "--label", "label_failed", "--time-column", "checkpoint_at", "--json"],
    ));
    let excluded: Vec<&str> = t["excluded_columns"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(excluded.contains(&"label_outcome") && excluded.iter().any(|c| c.starts_with("label__")), "{t}");
    assert!(t["features"].as_array().unwrap().iter().all(|f| !f.as_str().unwrap().starts_with("label")), "{t}");

    // A re-run writes the same bytes.
    let before = std::fs::read(store.join("features/service=checkout/part-0.parquet")).unwrap();
    let config = workspace_root().join("data/samples/omen.toml");
    json_ok(&omen(dir.path(), &["features", "build", "--config", config.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"]));
    assert_eq!(before, std::fs::read(store.join("features/service=checkout/part-0.parquet")).unwrap());
}

/// One deployment as a deployer knows it (from the raw JSON Lines).
pub(crate) struct Deployment {
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) started_at: i64,
    pub(crate) ended_at: Option<i64>,
    pub(crate) outcome: Option<String>,
    pub(crate) from_sha: Option<String>,
    pub(crate) to_sha: String,
    pub(crate) steps: Vec<(i64, f64)>,
}

pub(crate) fn raw_deployments(inputs: &Path) -> Vec<Deployment> {
    std::fs::read_to_string(inputs.join("deployments/deployments.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let d: Json = serde_json::from_str(l).unwrap();
            Deployment {
                id: d["deployment_id"].as_str().unwrap().into(),
                service: d["service"].as_str().unwrap().into(),
                started_at: time_us(d["started_at"].as_str().unwrap()),
                ended_at: d["ended_at"].as_str().map(time_us),
                outcome: d["outcome"].as_str().map(str::to_owned),
                from_sha: d["from_sha"].as_str().map(str::to_owned),
                to_sha: d["to_sha"].as_str().unwrap().into(),
                steps: d["steps"].as_array().unwrap().iter().map(|s| (time_us(s["at"].as_str().unwrap()), s["weight"].as_f64().unwrap())).collect(),
            }
        })
        .collect()
}

/// A sample as a deployer sends it: metric, labels, role, deployment (when it knows), time, value.
pub(crate) struct RawSample {
    pub(crate) metric: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) service: String,
    pub(crate) role: Option<Role>,
    pub(crate) deployment: Option<String>,
    pub(crate) ts: i64,
    pub(crate) value: f64,
}

fn number(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap(),
    }
}

/// The raw metric inputs of the samples, parsed here, independently of ingest.
pub(crate) fn raw_samples(inputs: &Path) -> Vec<RawSample> {
    let mut out = Vec::new();
    let range: Json = serde_json::from_slice(&std::fs::read(inputs.join("metrics/checkout-canary.json")).unwrap()).unwrap();
    for series in range["data"]["result"].as_array().unwrap() {
        let labels: BTreeMap<String, String> =
            series["metric"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        for v in series["values"].as_array().unwrap() {
            out.push(RawSample {
                metric: labels["__name__"].clone(),
                labels: labels.clone(),
                service: labels["app"].clone(),
                role: Role::parse(&labels["track"]),
                deployment: Some(labels["rollouts_pod_template_hash"].clone()),
                ts: (v[0].as_f64().unwrap() * 1e6).round() as i64,
                value: number(v[1].as_str().unwrap()),
            });
        }
    }
    for line in std::fs::read_to_string(inputs.join("metrics/checkout-memory.prom")).unwrap().lines() {
        if line.starts_with('#') {
            continue;
        }
        let (head, rest) = line.split_once('}').unwrap();
        let (name, labels) = head.split_once('{').unwrap();
        let labels: BTreeMap<String, String> = labels
            .split(',')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        let mut parts = rest.split_whitespace();
        let value = number(parts.next().unwrap());
        let ts_ms: i64 = parts.next().unwrap().parse().unwrap();
        out.push(RawSample {
            metric: name.into(),
            service: labels["service"].clone(),
            role: Role::parse(&labels["role"]),
            deployment: None,
            labels,
            ts: ts_ms * 1000,
            value,
        });
    }
    let csv = std::fs::read_to_string(inputs.join("metrics/search-cpu.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        let cells: HashMap<&str, &str> = header.iter().copied().zip(line.split(',')).collect();
        let labels: BTreeMap<String, String> = cells
            .iter()
            .filter(|(k, _)| !["ts", "metric", "value"].contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(RawSample {
            metric: cells["metric"].into(),
            service: cells["service"].into(),
            role: Role::parse(cells["role"]),
            deployment: Some(cells["deployment"].into()),
            labels,
            ts: time_us(cells["ts"]),
            value: number(cells["value"]),
        });
    }
    out
}

/// The commits and files of the store, as `omen-serve` reads them at start.
fn repo_from_store(store: &Path, service: &str) -> RepoHistory {
    let dir = store.join(format!("commits/service={service}"));
    if !dir.exists() {
        return RepoHistory::default();
    }
    let read = |ds: &str| {
        let mut frames = Vec::new();
        for e in std::fs::read_dir(store.join(format!("{ds}/service={service}"))).unwrap() {
            frames.push(ParquetReader::new(std::fs::File::open(e.unwrap().path()).unwrap()).finish().unwrap().lazy());
        }
        concat(frames, UnionArgs::default()).unwrap().collect().unwrap()
    };
    let c = read("commits");
    let strs = |df: &DataFrame, n: &str| -> Vec<String> { df.column(n).unwrap().str().unwrap().iter().map(|s| s.unwrap_or("").to_owned()).collect() };
    let ts = c.column("ts").unwrap().datetime().unwrap().physical().clone();
    let fix = c.column("fix").unwrap().bool().unwrap().clone();
    let kamei: Vec<Vec<f64>> = KAMEI
        .iter()
        .map(|k| c.column(k).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().map(|v| v.unwrap()).collect())
        .collect();
    let (sha, parents, author) = (strs(&c, "sha"), strs(&c, "parent_shas"), strs(&c, "author"));
    let commits = (0..c.height())
        .map(|i| Commit {
            sha: sha[i].clone(),
            parents: parents[i].split_whitespace().map(str::to_owned).collect(),
            ts: ts.get(i).unwrap(),
            author: author[i].clone(),
            fix: fix.get(i).unwrap(),
            kamei: std::array::from_fn(|k| kamei[k][i]),
        })
        .collect();
    let f = read("commit_files");
    let added = f.column("lines_added").unwrap().i64().unwrap().clone();
    let deleted = f.column("lines_deleted").unwrap().i64().unwrap().clone();
    let files = strs(&f, "sha")
        .into_iter()
        .zip(strs(&f, "path"))
        .enumerate()
        .map(|(i, (sha, path))| FileChange { sha, path, lines_added: added.get(i).unwrap(), lines_deleted: deleted.get(i).unwrap() })
        .collect();
    RepoHistory::new(commits, files)
}

#[test]
fn offline_features_equal_the_online_computation_of_the_same_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = copy_samples(&dir.path().join("in"));
    let store = dir.path().join("store");
    build(dir.path(), &inputs, &store);
    let offline = read_features(&store);

    // The online side: the feature set from the schema file (as a model carries it)...
    let file = schema_file(&store);
    let params: FeatureParams = serde_json::from_value(file["params"].clone()).unwrap();
    let metrics: Vec<String> = file["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str()?.strip_prefix("m__")?.strip_suffix("__state").map(str::to_owned))
        .collect();
    let set = FeatureSet::new(params.check().unwrap(), metrics);
    assert_eq!(set.schema().hash, file["hash"].as_str().unwrap());

    // ...and each deployment's samples, parsed from the raw inputs and sent as a deployer would.
    let deployments = raw_deployments(&inputs);
    let samples = raw_samples(&inputs);
    let mut compared = 0;
    for d in &deployments {
        let mut builder = WindowsBuilder::new(d.started_at, d.ended_at, d.outcome.clone(), d.steps.clone());
        for s in &samples {
            // The deployer's own attribution: its label, or its service's latest start before it.
            let mine = match &s.deployment {
                Some(id) => *id == d.id,
                None => {
                    s.service == d.service
                        && deployments.iter().filter(|o| o.service == s.service && o.started_at <= s.ts).max_by_key(|o| (o.started_at, o.id.clone())).map(|o| &o.id) == Some(&d.id)
                }
            };
            let Some(role) = s.role else { continue };
            if mine {
                let labels = canonical_labels(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                builder.extend(&s.metric, role, [Sample { ts: s.ts, series: series_id(&labels), value: s.value }]);
            }
        }
        let windows = builder.finish();
        let repo = repo_from_store(&store, &d.service);
        let known: Vec<DeploymentRef<'_>> = deployments
            .iter()
            .filter(|o| o.service == d.service)
            .map(|o| DeploymentRef {
                deployment_id: &o.id,
                started_at: o.started_at,
                ended_at: o.ended_at,
                outcome: o.outcome.as_deref(),
                from_sha: o.from_sha.as_deref(),
                to_sha: &o.to_sha,
            })
            .collect();
        let change = change_context_at(&repo, &known, d.from_sha.as_deref(), &d.to_sha, d.started_at);
        let labels = set.labels(&windows);
        for cp in set.checkpoints(d.started_at) {
            let mut online = set.inputs(&windows, cp, &change.features, change.history);
            online.extend(labels.iter().cloned());
            let row = (0..offline.height())
                .find(|&i| {
                    value(&offline, "deployment_id", Kind::Str, i) == Value::Str(Some(d.id.clone()))
                        && offline.column("checkpoint_at").unwrap().datetime().unwrap().physical().get(i) == Some(cp)
                })
                .unwrap_or_else(|| panic!("no offline row for {} at {cp}", d.id));
            for (j, col) in set.schema().columns.iter().enumerate() {
                let off = value(&offline, &col.name, col.kind, row);
                assert!(off.identical(&online[j]), "{} at {cp}: {}: offline {off:?}, online {:?}", d.id, col.name, online[j]);
            }
            compared += 1;
        }
    }
    assert_eq!(compared, offline.height());
}

/// Alters every input record time-stamped after `cut` (µs): metric values change and a sample
/// is added after the last; deployments that start after it change entirely, those that end after
/// it change their outcome and end; steps after it change weight.
fn alter_after(inputs: &Path, cut: i64) {
    let changed = |v: &str| if v == "NaN" { "7".to_owned() } else { format!("{}", number(v) * 3.0 + 1.0) };
    let p = inputs.join("metrics/checkout-canary.json");
    let mut range: Json = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    for series in range["data"]["result"].as_array_mut().unwrap() {
        let values = series["values"].as_array_mut().unwrap();
        for v in values.iter_mut() {
            if (v[0].as_f64().unwrap() * 1e6) as i64 > cut {
                v[1] = Json::String(changed(v[1].as_str().unwrap()));
            }
        }
        // A new sample after the cut (and after the series' last).
        let last = values.last().unwrap()[0].as_f64().unwrap().max(cut as f64 / 1e6);
        values.push(serde_json::json!([last + 30.0, "1000"]));
    }
    std::fs::write(&p, serde_json::to_vec(&range).unwrap()).unwrap();

    let p = inputs.join("metrics/checkout-memory.prom");
    let text: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.rsplitn(3, ' ').collect();
            if l.starts_with('#') || parts.len() < 3 || parts[0].parse::<i64>().unwrap() * 1000 <= cut {
                l.to_owned()
            } else {
                format!("{} {} {}", parts[2], changed(parts[1]), parts[0])
            }
        })
        .collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();

    let p = inputs.join("metrics/search-cpu.csv");
    let text: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let mut cells: Vec<String> = l.split(',').map(str::to_owned).collect();
            if cells[0] != "ts" && time_us(&cells[0]) > cut {
                cells[3] = changed(&cells[3]);
            }
            cells.join(",")
        })
        .collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();

    let p = inputs.join("deployments/deployments.jsonl");
    let fmt = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap().to_rfc3339();
    let text: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let mut d: Json = serde_json::from_str(l).unwrap();
            let start = time_us(d["started_at"].as_str().unwrap());
            let end = time_us(d["ended_at"].as_str().unwrap());
            if end > cut {
                let flipped = if d["outcome"] == "success" { "rolled_back" } else { "success" };
                d["outcome"] = flipped.into();
                d["ended_at"] = fmt(end + 3_600_000_000).into();
            }
            if start > cut {
                d["to_sha"] = d["from_sha"].clone();
            }
            for s in d["steps"].as_array_mut().unwrap() {
                if time_us(s["at"].as_str().unwrap()) > cut {
                    s["weight"] = (s["weight"].as_f64().unwrap() / 2.0 + 1.0).into();
                }
            }
            serde_json::to_string(&d).unwrap()
        })
        .collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();
}

#[test]
fn a_row_does_not_change_when_every_record_after_its_checkpoint_does() {
    let dir = tempfile::tempdir().unwrap();
    let original = copy_samples(&dir.path().join("in"));
    let store = dir.path().join("store");
    build(dir.path(), &original, &store);
    let base = read_features(&store);
    let schema: omen_features::feature::FeatureSchema = serde_json::from_value(schema_file(&store)).unwrap();
    let cps = base.column("checkpoint_at").unwrap().datetime().unwrap().physical().clone();
    let ids = base.column("deployment_id").unwrap().str().unwrap().clone();
    // Checkpoints inside the sampled windows: d-0003 at 5, 10 and 20 minutes, d-0104 at 10.
    let cuts: Vec<(String, i64)> = (0..base.height())
        .filter(|&i| {
            let e = value(&base, "elapsed_s", Kind::Float, i);
            (ids.get(i) == Some("d-0003") && e != Value::Float(Some(2400.0))) || (ids.get(i) == Some("d-0104") && e == Value::Float(Some(600.0)))
        })
        .map(|i| (ids.get(i).unwrap().to_owned(), cps.get(i).unwrap()))
        .collect();
    assert_eq!(cuts.len(), 4);
    for (id, cut) in cuts {
        let altered = copy_samples(&dir.path().join(format!("in-{cut}")));
        alter_after(&altered, cut);
        let store2 = dir.path().join(format!("store-{cut}"));
        build(dir.path(), &altered, &store2);
        let after = read_features(&store2);
        assert_eq!(after.height(), base.height());
        let (mut same, mut differ) = (0, 0);
        for i in 0..base.height() {
            let row_changed = schema.inputs().any(|c| !value(&base, &c.name, c.kind, i).identical(&value(&after, &c.name, c.kind, i)));
            if cps.get(i).unwrap() <= cut {
                let bad: Vec<&str> = schema
                    .inputs()
                    .filter(|c| !value(&base, &c.name, c.kind, i).identical(&value(&after, &c.name, c.kind, i)))
                    .map(|c| c.name.as_str())
                    .collect();
                assert!(bad.is_empty(), "cut at {id}'s checkpoint {cut}: row {} @ {} changed in {bad:?}", ids.get(i).unwrap(), cps.get(i).unwrap());
                same += 1;
            } else if row_changed {
                differ += 1;
            }
        }
        // The alteration is real: rows after the cut see it (and the labels after it changed).
        assert!(same > 0 && differ > 0, "cut {cut}: {same} rows before, {differ} changed after");
    }
}

/// A `[features] metrics` list narrows the gauges, never the error-rate counters: the
/// `e__<name>__*` columns are computed from them all the same (they all came out `no_data`).
#[test]
fn a_metrics_list_keeps_the_error_rate_counters() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = copy_samples(&dir.path().join("inputs"));
    let store = dir.path().join("store");
    build(dir.path(), &inputs, &store);
    let config = dir.path().join("omen.toml");
    std::fs::write(
        &config,
        "[features]\ncheckpoints = [\"5m\", \"10m\", \"20m\", \"40m\"]\nmax_pair_gap = \"60s\"\nmetrics = [\"http_requests_error_ratio\"]\n\n\
         [[features.error_rates]]\nname = \"http_errors\"\nerrors = \"http_requests_errors_total\"\ntotal = \"http_requests_total\"\n",
    )
    .unwrap();
    let s = store.to_str().unwrap();
    let j = json_ok(&omen(dir.path(), &["features", "build", "--config", config.to_str().unwrap(), "--store", s, "--json"]));
    assert_eq!(j["metrics"], serde_json::json!(["http_requests_error_ratio"]), "{j}");
    let df = read_features(&store);
    let state = df.column("e__http_errors__state").unwrap().str().unwrap().clone();
    let ok = state.iter().filter(|v| *v == Some("ok")).count();
    assert!(ok > 0, "every e__http_errors__state is {:?}", state.iter().collect::<Vec<_>>());
    let rate = df.column("e__http_errors__rate_canary").unwrap().f64().unwrap().clone();
    assert!(rate.iter().any(|v| v.is_some()), "no canary error rate was computed");
}
