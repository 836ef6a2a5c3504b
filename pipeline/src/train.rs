//! `omen train failure|performance --features FILE --label COLUMN`: a GBDT on any feature
//! table an analyst brings (Parquet or CSV), split by time, with held-out metrics (DESIGN §3).
//!
//! The table's numeric and boolean columns other than the label and the time column are the
//! features; a string column of at most 32 distinct values becomes one indicator feature per
//! value (`state=no_data`); other columns are listed as ignored. Rows are ordered by `--time-column` when it
//! is given (file order otherwise); the last `--holdout` fraction is the test set, and the last
//! 10 % of the rest the validation split: early stopping watches it, the failure model's
//! probabilities are calibrated on it (isotonic regression, Platt scaling under 1,000 rows), and
//! the performance model's 80 % and 95 % intervals (quantile models at their ends) get their
//! split-conformal correction from it. Rows without a label are dropped and counted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use omen_features::stats::{Alternative, mann_whitney_u};
use omen_models::calibrate::{Calibration, Conformal, Isotonic, Platt, expected_calibration_error};
use omen_models::gbdt::{GbdtParams, Matrix, Objective};
use polars::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

/// Which model `omen train` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainKind {
    /// `omen-failure`: a binary classifier of the label (0/1 or boolean).
    Failure,
    /// `omen-performance`: a regressor of the label (squared error).
    Performance,
}

#[derive(Debug, Clone)]
pub struct TrainArgs {
    pub kind: TrainKind,
    /// Columns that are not inputs (other outcomes, identifiers), besides the label and time.
    pub exclude: Vec<String>,
    pub features: PathBuf,
    pub label: String,
    pub time_column: Option<String>,
    pub holdout: f64,
    pub params: GbdtParams,
    pub out: Option<PathBuf>,
    /// Which baselines to train beside a failure model.
    pub baselines: Baselines,
}

/// The baselines trained beside a failure model and reported with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baselines {
    None,
    /// The random forest only (`omen retrain`: smartcore's logistic regression alone took 232 s
    /// of a 50-service year, more than everything else in training).
    RandomForest,
    /// The random forest and the logistic regression (`omen train --baselines`).
    All,
}

/// A baseline's held-out metrics and training time.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    pub metrics: Metrics,
    pub train_seconds: f64,
    /// Training rows it saw (the most recent of the training split, at most 100,000).
    pub rows_train: usize,
}

/// Held-out metrics (DESIGN §6).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brier: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// ECE of the model's own probabilities, before calibration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece_uncalibrated: Option<f64>,
    /// Share of held-out labels inside the 80 % interval (quantile models, conformal correction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_80: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_95: Option<f64>,
    /// Mean width of the 80 % and 95 % intervals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width_80: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width_95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub model: String,
    pub features_file: String,
    pub label: String,
    pub features: Vec<String>,
    /// String columns turned into one indicator feature per value.
    pub categorical_columns: Vec<String>,
    pub ignored_columns: Vec<String>,
    /// Columns left out on purpose (`--exclude`, and the other labels of an omen feature table).
    pub excluded_columns: Vec<String>,
    pub rows_train: usize,
    pub rows_valid: usize,
    pub rows_test: usize,
    pub rows_without_label: usize,
    /// First and last value of the time column over the rows fitted on (training and
    /// validation), as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to: Option<String>,
    pub trees: usize,
    pub metrics: Metrics,
    pub train_seconds: f64,
    pub load_seconds: f64,
    /// Held-out rows predicted in one batch (all threads).
    pub predict_batch_seconds: f64,
    /// One row predicted alone, mean of 20,000 calls.
    pub single_row_us: f64,
    pub out: Option<String>,
    /// Where the model was registered (`omen train` registers unless told not to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<crate::registry::Registered>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub baselines: std::collections::BTreeMap<String, BaselineResult>,
}

impl TrainSummary {
    pub fn human(&self) -> String {
        let m = serde_json::to_string(&self.metrics).unwrap_or_default();
        format!(
            "{}: {} trees on {} features; train {} / valid {} / test {} rows ({} without a label)\n  held-out {m}\n  trained in {:.2}s (loading {:.2}s){}\n",
            self.model,
            self.trees,
            self.features.len(),
            self.rows_train,
            self.rows_valid,
            self.rows_test,
            self.rows_without_label,
            self.train_seconds,
            self.load_seconds,
            self.out.as_ref().map(|o| format!("\n  model written to {o}")).unwrap_or_default()
        ) + &self
            .registered
            .as_ref()
            .map(|r| format!("  registered as {} version {}{} in {}\n", r.name, r.version, if r.champion { " (champion)" } else { "" }, r.registry))
            .unwrap_or_default()
            + &self
            .baselines
            .iter()
            .map(|(k, b)| format!("  baseline {k}: {} ({:.2}s)\n", serde_json::to_string(&b.metrics).unwrap_or_default(), b.train_seconds))
            .collect::<String>()
    }
}

/// Reads the feature table: a Parquet or CSV file, or a folder of Parquet (a dataset such as
/// `features/`, hive partition keys added as columns).
/// A folder written by `omen features build` carries `_schema.json`: its label columns (the
/// outcomes, known only after a deployment) are never model inputs, so they are dropped here,
/// all but the one trained on being excluded in [`train`].
pub async fn load_table(path: &Path) -> Result<DataFrame> {
    let name = path.display().to_string();
    if path.is_dir() {
        let store = omen_features::Store::open(&name)?;
        return store.read_parquet_tree("").await?.ok_or_else(|| Error::input(&name, "no .parquet file in the folder"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let file = std::fs::File::open(path).map_err(|e| Error::input(&name, e.to_string()))?;
    let df = match ext.as_str() {
        "parquet" | "pq" => ParquetReader::new(file).finish(),
        "csv" => CsvReadOptions::default().with_has_header(true).into_reader_with_file_handle(file).finish(),
        _ => return Err(Error::input(&name, "expected a .parquet or .csv feature table, or a folder of Parquet")),
    };
    df.map_err(|e| Error::input(&name, e.to_string()))
}

fn is_feature_type(dt: &DataType) -> bool {
    dt.is_primitive_numeric() || matches!(dt, DataType::Boolean)
}

/// A column as f64, nulls (and NaN) as NaN.
fn as_f64(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// What [`train`] made.
#[derive(Debug)]
pub struct Trained {
    pub summary: TrainSummary,
    /// Calibrated (failure), carrying the hash of `schema`.
    pub model: omen_models::gbdt::Gbdt,
    /// The model's inputs.
    pub schema: omen_features::feature::FeatureSchema,
    /// The performance model's 80 % and 95 % intervals (empty for the failure model).
    pub bands: Vec<omen_models::gbdt::Band>,
}

/// Trains on `df`, the table [`load_table`] read from `args.features`, which took
/// `load_seconds`. CPU-bound: call it off an async runtime's worker threads.
pub fn train(args: &TrainArgs, mut df: DataFrame, load_seconds: f64) -> Result<Trained> {
    let t0 = Instant::now();
    let file = args.features.display().to_string();
    if !(args.holdout > 0.0 && args.holdout < 1.0) {
        return Err(Error::input("--holdout", format!("must lie in (0, 1), got {}", args.holdout)));
    }
    if df.column(&args.label).is_err() {
        return Err(Error::input(&file, format!("no label column `{}`", args.label)));
    }
    if let Some(t) = &args.time_column {
        if df.column(t).is_err() {
            return Err(Error::input(&file, format!("no time column `{t}`")));
        }
        df = df.sort([t.as_str()], SortMultipleOptions::default().with_maintain_order(true))?;
    }
    // Numeric and boolean columns are features as they are; a string column with at most
    // `MAX_CATEGORIES` distinct values (a state, a kind) becomes one indicator per value,
    // `column=value` (1 or 0, missing where the column is null); other columns are ignored.
    const MAX_CATEGORIES: usize = 32;
    let mut features = Vec::new();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    let mut categorical = Vec::new();
    let mut ignored = Vec::new();
    let mut excluded = Vec::new();
    for c in df.columns() {
        let name = c.name().to_string();
        if name == args.label || Some(&name) == args.time_column.as_ref() {
            continue;
        }
        if args.exclude.contains(&name) {
            excluded.push(name);
            continue;
        }
        if is_feature_type(c.dtype()) {
            cols.push(as_f64(&df, &name)?);
            features.push(name);
        } else if let Ok(strings) = c.str() {
            // Distinct values, giving up as soon as there are too many.
            let mut values = std::collections::BTreeSet::new();
            for v in strings.iter().flatten() {
                values.insert(v);
                if values.len() > MAX_CATEGORIES {
                    break;
                }
            }
            if values.is_empty() || values.len() > MAX_CATEGORIES {
                ignored.push(name);
                continue;
            }
            for v in &values {
                cols.push(strings.iter().map(|x| omen_features::feature::encode_indicator(x, v)).collect());
                features.push(format!("{name}={v}"));
            }
            categorical.push(name);
        } else {
            ignored.push(name);
        }
    }
    if features.is_empty() {
        return Err(Error::input(&file, "no numeric, boolean or categorical feature column"));
    }
    let label = as_f64(&df, &args.label)?;
    let keep: Vec<usize> = (0..label.len()).filter(|&i| !label[i].is_nan()).collect();
    let rows_without_label = label.len() - keep.len();
    if args.kind == TrainKind::Failure
        && let Some(&i) = keep.iter().find(|&&i| label[i] != 0.0 && label[i] != 1.0)
    {
        return Err(Error::input(&file, format!("label `{}` of row {i} is {}: a failure label must be 0, 1 or boolean", args.label, label[i])));
    }
    let d = features.len();
    let n = keep.len();
    let n_test = ((n as f64) * args.holdout).round() as usize;
    let n_fit = n - n_test;
    // The validation split (early stopping) doubles as the calibration split.
    let n_valid = n_fit / 10;
    let n_train = n_fit - n_valid;
    if n_train < 2 || n_test < 1 {
        return Err(Error::input(&file, format!("{n} labelled rows are too few to split")));
    }
    let matrix = |rows: &[usize]| -> Vec<f64> {
        let mut x = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            for c in &cols {
                x.push(c[r]);
            }
        }
        x
    };
    let (tr, va, te) = (&keep[..n_train], &keep[n_train..n_fit], &keep[n_fit..]);
    let (xt, xv, xh) = (matrix(tr), matrix(va), matrix(te));
    let pick = |rows: &[usize]| rows.iter().map(|&r| label[r]).collect::<Vec<f64>>();
    let (yt, yv, yh) = (pick(tr), pick(va), pick(te));
    let (time_from, time_to) = match &args.time_column {
        Some(t) if n_fit > 0 => {
            let c = df.column(t)?;
            (time_text(c, keep[0])?, time_text(c, keep[n_fit - 1])?)
        }
        _ => (None, None),
    };
    let load_seconds = load_seconds + t0.elapsed().as_secs_f64();

    let mut params = args.params.clone();
    params.objective = match args.kind {
        TrainKind::Failure => Objective::Binary,
        TrainKind::Performance => match params.objective {
            Objective::Binary => Objective::SquaredError,
            o => o,
        },
    };
    let valid = params.clone().check()?;
    let t1 = Instant::now();
    let validation = (n_valid > 0 && params.early_stopping_rounds > 0).then(|| (Matrix::new(&xv, d), yv.as_slice()));
    let (mut model, report) = valid.fit(Matrix::new(&xt, d), &yt, validation, features.clone())?;
    let train_seconds = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let pred = model.predict_batch(Matrix::new(&xh, d));
    let predict_batch_seconds = t2.elapsed().as_secs_f64();
    // Single-row latency: the first held-out row, many times.
    let row = &xh[..d];
    let reps = 20_000;
    let t3 = Instant::now();
    let mut sink = 0.0;
    for _ in 0..reps {
        sink += model.predict(std::hint::black_box(row));
    }
    std::hint::black_box(sink);
    let single_row_us = t3.elapsed().as_secs_f64() / reps as f64 * 1e6;
    // The performance model's intervals (quantile models with their conformal correction).
    let mut bands: Vec<omen_models::gbdt::Band> = Vec::new();
    let metrics = match args.kind {
        TrainKind::Failure => {
            // Isotonic calibration on the calibration split (Platt scaling when it is small).
            let pv = model.predict_batch(Matrix::new(&xv, d));
            let logit = |p: f64| (p.clamp(1e-12, 1.0 - 1e-12) / (1.0 - p.clamp(1e-12, 1.0 - 1e-12))).ln();
            model.calibration = if yv.len() >= 1000 {
                Isotonic::fit(&pv, &yv).map(Calibration::Isotonic)
            } else {
                let sv: Vec<f64> = pv.iter().map(|&p| logit(p)).collect();
                Platt::fit(&sv, &yv).map(Calibration::Platt)
            };
            let calibrated: Vec<f64> = match &model.calibration {
                Some(c) => pred.iter().map(|&p| c.apply(logit(p), p)).collect(),
                None => pred.clone(),
            };
            let mut m = classifier_metrics(&yh, &calibrated);
            m.auc = classifier_metrics(&yh, &pred).auc;
            m.ece_uncalibrated = Some(expected_calibration_error(&pred, &yh, 10));
            m
        }
        TrainKind::Performance => {
            let mut m = regressor_metrics(&yh, &pred);
            bands.clear();
            // 80 % and 95 % intervals: quantile models at the interval ends, corrected by split
            // conformal prediction on the calibration split.
            if n_valid >= 20 {
                for (coverage, lo_a, hi_a) in [(0.8, 0.1, 0.9), (0.95, 0.025, 0.975)] {
                    let quantile_model = |alpha: f64| -> Result<omen_models::gbdt::Gbdt> {
                        let mut p = params.clone();
                        p.objective = Objective::Quantile { alpha };
                        p.early_stopping_rounds = 0;
                        Ok(p.check()?.fit(Matrix::new(&xt, d), &yt, None, features.clone())?.0)
                    };
                    let (lo, hi) = (quantile_model(lo_a)?, quantile_model(hi_a)?);
                    let (lv, hv) = (lo.predict_batch(Matrix::new(&xv, d)), hi.predict_batch(Matrix::new(&xv, d)));
                    let Some(conf) = Conformal::fit(&lv, &hv, &yv, coverage) else { continue };
                    let (lh, hh) = (lo.predict_batch(Matrix::new(&xh, d)), hi.predict_batch(Matrix::new(&xh, d)));
                    let (l, h): (Vec<f64>, Vec<f64>) = lh.iter().zip(&hh).map(|(&a, &b)| conf.interval(a, b)).unzip();
                    let cov = omen_models::calibrate::coverage(&l, &h, &yh);
                    bands.push(omen_models::gbdt::Band { lo, hi, conformal: conf });
                    let width = l.iter().zip(&h).map(|(a, b)| b - a).sum::<f64>() / l.len().max(1) as f64;
                    if coverage == 0.8 {
                        (m.coverage_80, m.width_80) = (Some(cov), Some(width));
                    } else {
                        (m.coverage_95, m.width_95) = (Some(cov), Some(width));
                    }
                }
            }
            m
        }
    };
    let mut baselines = std::collections::BTreeMap::new();
    if args.baselines != Baselines::None && args.kind == TrainKind::Failure {
        // The most recent training rows, at most 100,000 (smartcore's trees are not built for
        // millions of rows).
        let keep = n_train.min(100_000);
        let (bx, by) = (&xt[(n_train - keep) * d..], &yt[n_train - keep..]);
        let t = Instant::now();
        let rf = omen_models::baseline::RandomForest::fit(Matrix::new(bx, d), by, 50, 12, 20, params.seed)?;
        let p = rf.predict(Matrix::new(&xh, d))?;
        baselines.insert("random_forest".to_string(), BaselineResult { metrics: classifier_metrics(&yh, &p), train_seconds: t.elapsed().as_secs_f64(), rows_train: keep });
        if args.baselines == Baselines::All {
            let t = Instant::now();
            let lr = omen_models::baseline::Logistic::fit(Matrix::new(bx, d), by, 1.0)?;
            let p = lr.predict(Matrix::new(&xh, d));
            baselines.insert("logistic_regression".to_string(), BaselineResult { metrics: classifier_metrics(&yh, &p), train_seconds: t.elapsed().as_secs_f64(), rows_train: keep });
        }
    }
    let schema = crate::registry::model_schema(&features, folder_schema(&args.features).as_ref());
    model.schema_hash = Some(schema.hash.clone());
    for b in &mut bands {
        b.lo.schema_hash = Some(schema.hash.clone());
        b.hi.schema_hash = Some(schema.hash.clone());
    }
    let out = match &args.out {
        Some(p) => {
            std::fs::write(p, model.to_bytes()).map_err(|e| Error::input(p.display().to_string(), e.to_string()))?;
            Some(p.display().to_string())
        }
        None => None,
    };
    let summary = TrainSummary {
        model: match args.kind {
            TrainKind::Failure => "omen-failure".into(),
            TrainKind::Performance => "omen-performance".into(),
        },
        features_file: file,
        label: args.label.clone(),
        features,
        categorical_columns: categorical,
        ignored_columns: ignored,
        excluded_columns: excluded,
        rows_train: n_train,
        rows_valid: n_valid,
        rows_test: n_test,
        rows_without_label,
        time_from,
        time_to,
        trees: report.trees,
        metrics,
        train_seconds,
        load_seconds,
        predict_batch_seconds,
        single_row_us,
        out,
        registered: None,
        baselines,
    };
    Ok(Trained { summary, model, schema, bands })
}

/// Row `i` of a time column as text: RFC 3339 (UTC) for a datetime, as printed otherwise.
fn time_text(c: &Column, i: usize) -> Result<Option<String>> {
    if let DataType::Datetime(unit, _) = c.dtype() {
        let v = c.cast(&DataType::Int64)?;
        let Some(x) = v.i64()?.get(i) else { return Ok(None) };
        let nanos = match unit {
            TimeUnit::Nanoseconds => x,
            TimeUnit::Microseconds => x.saturating_mul(1_000),
            TimeUnit::Milliseconds => x.saturating_mul(1_000_000),
        };
        return Ok(Some(chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    }
    let s = c.cast(&DataType::String)?;
    Ok(s.str()?.get(i).map(str::to_string))
}

/// ROC-AUC (ties averaged), average precision, Brier score and the expected calibration error
/// over 10 equal-width probability bins.
pub fn classifier_metrics(y: &[f64], p: &[f64]) -> Metrics {
    let n = y.len();
    let pos = y.iter().filter(|&&v| v == 1.0).count();
    // ROC-AUC is the Mann-Whitney probability of superiority of positives over negatives.
    let positives: Vec<f64> = (0..n).filter(|&i| y[i] == 1.0).map(|i| p[i]).collect();
    let negatives: Vec<f64> = (0..n).filter(|&i| y[i] != 1.0).map(|i| p[i]).collect();
    let auc = mann_whitney_u(&positives, &negatives, Alternative::TwoSided).ok().map(|m| m.prob_superiority());
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Average precision: Σ (recall step) × precision, by decreasing score, ties as one step.
    let pr_auc = (pos > 0).then(|| {
        let mut ap = 0.0;
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut k = n;
        while k > 0 {
            let mut j = k - 1;
            while j > 0 && p[idx[j - 1]] == p[idx[k - 1]] {
                j -= 1;
            }
            let group = &idx[j..k];
            let new_tp = group.iter().filter(|&&q| y[q] == 1.0).count();
            tp += new_tp;
            fp += group.len() - new_tp;
            ap += new_tp as f64 / pos as f64 * tp as f64 / (tp + fp) as f64;
            k = j;
        }
        ap
    });
    let brier = y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n.max(1) as f64;
    let ece = expected_calibration_error(p, y, 10);
    Metrics { auc, pr_auc, brier: Some(brier), ece: Some(ece), ..Default::default() }
}

pub fn regressor_metrics(y: &[f64], p: &[f64]) -> Metrics {
    let n = y.len().max(1) as f64;
    let rmse = (y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n).sqrt();
    let mae = y.iter().zip(p).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    Metrics { rmse: Some(rmse), mae: Some(mae), ..Default::default() }
}

/// The label and key columns of a feature folder with `_schema.json` (none for a file or a
/// folder without one): outcomes and identifiers, never inputs.
pub fn schema_labels(path: &Path) -> Vec<String> {
    let Some(schema) = folder_schema(path) else { return Vec::new() };
    // The keys of a row identify it; they are not inputs (and `omen-serve` has no such column).
    let mut out: Vec<String> = ["service", "deployment_id", "checkpoint_at"].map(String::from).to_vec();
    out.extend(schema.labels().map(|c| c.name.clone()));
    out
}

/// The feature set an omen feature folder was built with (its `_schema.json`), checked against
/// the schema it records: what `omen-serve` needs to compute the same inputs.
pub fn folder_feature_set(path: &Path) -> Option<omen_features::feature::FeatureSetSpec> {
    let text = std::fs::read(path.join("_schema.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let params: omen_features::feature::FeatureParams = serde_json::from_value(v.get("params")?.clone()).ok()?;
    let metrics: Vec<String> = match v.get("metrics") {
        Some(m) => serde_json::from_value(m.clone()).ok()?,
        // Written before the list was: the metric columns say it.
        None => v["columns"]
            .as_array()?
            .iter()
            .filter_map(|c| c["name"].as_str()?.strip_prefix("m__")?.strip_suffix("__state").map(str::to_owned))
            .collect(),
    };
    let spec = omen_features::feature::FeatureSetSpec { params, metrics, schema_hash: v.get("hash")?.as_str()?.to_owned() };
    omen_features::feature::FeatureSet::from_spec(&spec).ok().map(|_| spec)
}

/// The `_schema.json` of an omen feature folder, if `path` is one.
pub fn folder_schema(path: &Path) -> Option<omen_features::feature::FeatureSchema> {
    let text = std::fs::read(path.join("_schema.json")).ok()?;
    serde_json::from_slice(&text).ok()
}
