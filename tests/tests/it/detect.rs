//! `omen detect`: the LSTM series detector trained by `omen train sequence` and the zscore and
//! EWMA baselines over a store's metric series, alarms written to `anomalies/` (a rerun gives
//! the same files), event-level precision, recall and F1 against labelled windows, selectors,
//! and the errors a user can make.

use std::fmt::Write as _;

use omen_tests::{json_ok, omen};

use crate::sequence::{START, STEP, STEPS, ingested_store};

fn rfc3339(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0).unwrap().to_rfc3339()
}

fn anomaly_files(store: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir(store.join("anomalies")) {
        out.push((e.display().to_string(), std::fs::read(&e).unwrap()));
    }
    out.sort();
    out
}

fn walkdir(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walkdir(p)) } else { out.push(p) }
    }
    out
}

#[test]
fn detect_scores_series_writes_anomalies_once_and_evaluates_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (history, store) = ingested_store(dir.path());
    let s = store.to_str().unwrap();
    let j = json_ok(&omen(
        dir.path(),
        &["train", "sequence", "--store", s, "--window", "40", "--param", "hidden=16", "--param", "epochs=6", "--param", "seed=3",
          "--detector-windows", "4000", "--detector-step", "30s", "--detector-window", "20", "--json"],
    ));
    let d = &j["detector"];
    assert!(d["series_train"].as_u64().unwrap() > 100 && d["series_valid"].as_u64().unwrap() > 10, "{d}");

    // Labelled windows: the leaking canaries' memory, from their start to their end.
    let labels = dir.path().join("labels.csv");
    let mut csv = String::from("service,series,start,end\n");
    for (i, (start, failing, _)) in history.iter().enumerate() {
        if *failing {
            writeln!(csv, "shop,\"memory_mb{{deployment=\"\"d-{i:03}\"\",role=\"\"canary\"\"}}\",{},{}", rfc3339(*start), rfc3339(start + STEPS * STEP)).unwrap();
        }
    }
    std::fs::write(&labels, csv).unwrap();
    let l = labels.to_str().unwrap();

    let run = |detector: &str| {
        json_ok(&omen(dir.path(), &["detect", "--store", s, "--detector", detector, "--step", "30s", "--labels", l, "--sweep", "3,4,8", "--json"]))
    };
    let lstm = run("lstm");
    // 90 deployments × canary and baseline × 2 metrics
    assert_eq!(lstm["series"], 360, "{}", lstm["series"]);
    assert_eq!(lstm["detector"], "lstm");
    assert_eq!(lstm["model_version"], 1);
    assert!(lstm["steps_scored"].as_u64().unwrap() > 5000, "{}", lstm["steps_scored"]);
    assert!(lstm["non_finite"].as_u64().unwrap() > 0, "the NaN samples are counted");
    let ev = lstm["evaluation"].as_array().unwrap();
    assert_eq!(ev.iter().map(|e| e["threshold"].as_f64().unwrap()).collect::<Vec<_>>(), [3.0, 4.0, 6.0, 8.0]);
    assert!(ev.iter().all(|e| e["labels"] == 45), "{ev:?}");
    // recall falls (weakly) and precision rises (weakly) with the threshold
    let recall: Vec<f64> = ev.iter().map(|e| e["recall"].as_f64().unwrap()).collect();
    assert!(recall.windows(2).all(|w| w[0] >= w[1]), "{recall:?}");
    assert!(recall[0] > 0.3, "the LSTM detector finds leaks at a low threshold: {ev:?}");

    // The baselines on the same labels; zscore finds most leaks (a sanity check of the labels).
    let z = run("zscore");
    assert_eq!(z["series"], 360);
    assert!(z["model_version"].is_null());
    let zr = z["evaluation"][0]["recall"].as_f64().unwrap();
    assert!(zr > 0.5, "{}", z["evaluation"]);
    run("ewma");

    // anomalies/: one file per detector (and model version) per service and date; rerunning
    // gives the same bytes.
    let first = anomaly_files(&store);
    let names: Vec<&str> = first.iter().map(|(n, _)| n.rsplit('/').next().unwrap()).collect();
    assert!(names.contains(&"lstm-v1.parquet") && names.contains(&"zscore.parquet") && names.contains(&"ewma.parquet"), "{names:?}");
    assert!(first.iter().all(|(n, _)| n.contains("service=shop/date=2026-11-")), "{names:?}");
    run("lstm");
    assert_eq!(anomaly_files(&store), first, "a rerun rewrites the same rows");
    let rows = |detector: &str| {
        let script = format!(
            "import pyarrow.dataset as ds; t = ds.dataset('{s}/anomalies', format='parquet', partitioning='hive').to_table(); \
             print(sum(1 for d in t.column('detector').to_pylist() if d == '{detector}'))"
        );
        omen_tests::run_python(&script, &[]).unwrap().trim().parse::<u64>().unwrap()
    };
    assert_eq!(rows("lstm"), lstm["alarm_count"].as_u64().unwrap(), "anomalies/ holds each alarm once");
    let schema = omen_tests::run_python(
        &format!("import pyarrow.dataset as ds; print(ds.dataset('{s}/anomalies', format='parquet', partitioning='hive').schema.field('ts').type)"),
        &[],
    )
    .unwrap();
    assert_eq!(schema.trim(), "timestamp[us, tz=UTC]");

    // A selector narrows the series; a narrower time range keeps the other rows.
    let canary = json_ok(&omen(dir.path(), &["detect", "--store", s, "--detector", "zscore", "--step", "30s", "--series", "memory_mb{role=\"canary\"}", "--no-write", "--json"]));
    assert_eq!(canary["series"], 90);
    let late = rfc3339(START + 80 * 7200);
    let part = json_ok(&omen(dir.path(), &["detect", "--store", s, "--detector", "lstm", "--since", &late, "--json"]));
    assert!(part["series"].as_u64().unwrap() < 360);
    assert_eq!(rows("lstm"), lstm["alarm_count"].as_u64().unwrap(), "a partial rerun neither drops nor duplicates");

    // A series with a sample decades before the rest is scored over its latest steps only.
    let far = dir.path().join("far.csv");
    let mut csv = String::from("ts,service,metric,value\n1971-01-01T00:00:00Z,shop,far_gauge,1\n");
    for k in 0..40 {
        writeln!(csv, "{},shop,far_gauge,{}", rfc3339(START + k * 60), 5 + k % 3).unwrap();
    }
    std::fs::write(&far, csv).unwrap();
    json_ok(&omen(dir.path(), &["ingest", "metrics", far.to_str().unwrap(), "--store", s, "--json"]));
    let f = json_ok(&omen(dir.path(), &["detect", "--store", s, "--detector", "ewma", "--series", "far_gauge", "--no-write", "--json"]));
    assert_eq!((f["series"].as_u64(), f["truncated"].as_u64()), (Some(1), Some(1)), "{f}");
    assert!(f["steps_scored"].as_u64().unwrap() <= 40, "{f}");

    // Errors name what is at fault.
    let out = omen(dir.path(), &["detect", "--store", s, "--series", "memory_mb{role}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--series"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&labels, "series,start\n").unwrap();
    let out = omen(dir.path(), &["detect", "--store", s, "--detector", "zscore", "--labels", l]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("labels.csv:1"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = omen(dir.path(), &["detect", "--store", s, "--model", "omen-sequence/7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("omen-sequence"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = omen(dir.path(), &["detect", "--store", s, "--detector", "median"]);
    assert_eq!(out.status.code(), Some(2), "an unknown detector is a usage error");
}
