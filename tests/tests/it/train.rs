//! `omen train failure|performance --features FILE --label COLUMN`: an analyst's own table,
//! Parquet or CSV, split by time, with held-out metrics; and the errors that name the input.

use omen_tests::{json_ok, omen};

/// A CSV feature table: a time column out of order, a string column, a failure signal in x1·x2
/// (an interaction a linear model cannot see), a latency signal in x3 and sin(3·x1).
pub(crate) fn table(dir: &std::path::Path, rows: usize) -> std::path::PathBuf {
    let mut s = String::from("ts,x1,x2,x3,team,failed,latency\n");
    let mut state = 12345u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0 * 2.0 - 1.0
    };
    for i in 0..rows {
        let (a, b, c) = (next(), next(), next());
        let noise = next();
        let failed = u8::from(a * b + 0.3 * noise > 0.2);
        // Latency does not see the failure's interaction (else it would leak it to a linear model).
        let latency = 100.0 + 30.0 * c + 20.0 * (3.0 * a).sin() + 5.0 * noise;
        let ts = (i * 7919) % rows; // a permutation: the file is not in time order
        let x2 = if i % 17 == 0 { String::new() } else { format!("{b:.4}") };
        s.push_str(&format!("{ts},{a:.4},{x2},{c:.4},team{},{failed},{latency:.3}\n", i % 3));
    }
    let p = dir.join("features.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn train_on_an_analysts_table_reports_held_out_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(dir.path(), 6000);
    let f = t.to_str().unwrap();
    let model = dir.path().join("failure.omen");
    let j = json_ok(&omen(
        dir.path(),
        &["train", "failure", "--features", f, "--label", "failed", "--time-column", "ts", "--holdout", "0.25",
          "--param", "num_iterations=150", "--param", "early_stopping_rounds=10", "--out", model.to_str().unwrap(), "--baselines", "--json"],
    ));
    assert_eq!(j["model"], "omen-failure");
    assert_eq!(j["rows_test"], 1500, "{j}");
    assert!(j["rows_valid"].as_u64().unwrap() > 0);
    assert_eq!(j["categorical_columns"], serde_json::json!(["team"]), "a string column of few values is categorical");
    assert!(j["features"].as_array().unwrap().iter().any(|f| f == "team=team1"));
    assert_eq!(j["ignored_columns"], serde_json::json!([]));
    let m = &j["metrics"];
    assert!(m["auc"].as_f64().unwrap() > 0.85, "{m}");
    for k in ["pr_auc", "brier", "ece", "ece_uncalibrated"] {
        assert!(m[k].is_number(), "{k} missing: {m}");
    }
    assert!(j["train_seconds"].is_number());
    // The baselines on the same split: the forest finds the interaction, the linear model not.
    let rf = j["baselines"]["random_forest"]["metrics"]["auc"].as_f64().unwrap();
    let lr = j["baselines"]["logistic_regression"]["metrics"]["auc"].as_f64().unwrap();
    assert!(rf > 0.7 && lr < 0.7 && m["auc"].as_f64().unwrap() > rf, "gbdt {m}, forest {rf}, logistic {lr}");
    assert!(std::fs::metadata(&model).unwrap().len() > 1000);
    // The regressor on the same table (the failure label is then a feature like any other).
    let j = json_ok(&omen(dir.path(), &["train", "performance", "--features", f, "--label", "latency", "--time-column", "ts", "--json"]));
    let rmse = j["metrics"]["rmse"].as_f64().unwrap();
    assert!(rmse < 12.0, "latency sd is about 22; rmse {rmse}");
    // Conformal intervals cover about what they promise on the held-out rows.
    let (c80, c95) = (j["metrics"]["coverage_80"].as_f64().unwrap(), j["metrics"]["coverage_95"].as_f64().unwrap());
    assert!((0.72..=0.9).contains(&c80) && (0.9..=0.995).contains(&c95), "coverage {c80} {c95}");
    assert!(j["metrics"]["width_95"].as_f64().unwrap() > j["metrics"]["width_80"].as_f64().unwrap());
}

#[test]
fn train_errors_name_the_column_or_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(dir.path(), 200);
    let f = t.to_str().unwrap();
    let out = omen(dir.path(), &["train", "failure", "--features", f, "--label", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no label column `nope`"));
    let out = omen(dir.path(), &["train", "failure", "--features", f, "--label", "latency"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be 0, 1 or boolean"));
    let out = omen(dir.path(), &["train", "failure", "--features", f, "--label", "failed", "--param", "num_leaves=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("num_leaves"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = omen(dir.path(), &["train", "failure", "--features", f, "--label", "failed", "--param", "leaves=3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown hyperparameter"));
}

#[test]
fn train_reads_a_folder_of_parquet_as_one_table() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let csv = table(dir.path(), 3000);
    let df = CsvReadOptions::default().with_has_header(true).try_into_reader_with_file_path(Some(csv)).unwrap().finish().unwrap();
    // Two hive partitions, as `omen features build` writes them.
    for (i, part) in ["a", "b"].iter().enumerate() {
        let mut half = df.slice((i * 1500) as i64, 1500);
        let folder = dir.path().join("table").join(format!("part={part}"));
        std::fs::create_dir_all(&folder).unwrap();
        let file = std::fs::File::create(folder.join("part-0.parquet")).unwrap();
        ParquetWriter::new(file).finish(&mut half).unwrap();
    }
    let folder = dir.path().join("table");
    let j = json_ok(&omen(dir.path(), &["train", "failure", "--features", folder.to_str().unwrap(), "--label", "failed", "--time-column", "ts", "--json"]));
    let rows = j["rows_train"].as_u64().unwrap() + j["rows_valid"].as_u64().unwrap() + j["rows_test"].as_u64().unwrap();
    assert_eq!(rows, 3000, "{j}");
    assert_eq!(j["categorical_columns"], serde_json::json!(["team", "part"]), "the partition key is a string column");
    assert!(j["metrics"]["auc"].as_f64().unwrap() > 0.8);
}
