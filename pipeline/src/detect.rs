//! `omen detect`: anomaly detection over the store's metric series (`metrics/`), one series per
//! service, metric and label set, written to `anomalies/`; with `--labels`, the event-level
//! precision, recall and F1 of the alarms against labelled windows.
//!
//! Detectors (`omen_models::sequence::detect`): `lstm`, the residual detector of the
//! `omen-sequence` model's series forecaster (a model for "a metric": it scores series it never
//! saw), and the baselines `zscore` (rolling) and `ewma`. Every series is resampled on the step
//! (the model's for `lstm`, `--step` for the baselines; `omen_features::feature::series`), scored
//! step by step, and each run of steps at or above the threshold (runs closer than
//! `--merge-gap` steps merged) is one alarm: one row of `anomalies/`.
//!
//! # Idempotence
//! `anomalies/service=S/date=D/<detector>-<model>.parquet` holds one detector's alarms (of one
//! model version for `lstm`). A run replaces, in the files of the dates it scanned, the rows of
//! the series it scanned within the time it scanned, and keeps the others: running the same
//! detection twice gives the same files, and overlapping runs do not duplicate alarms.
//!
//! Counters (`_total`, `_count`, `_sum`, `_bucket`, `_created`) are scored as their per-second
//! rate, reset-aware, as `rate()` would show them; everything else as sampled. Series are read
//! one service at a time (memory holds one service's samples).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use omen_features::Store;
use omen_features::feature::series::{Grid, SeriesLayout, align, resample};
use omen_features::ingest::metrics::parse_labels_string;
use omen_features::schema::{ANOMALIES, METRICS};
use omen_features::store::{encode_parquet, partition_segment, partition_values};
use omen_models::registry::{AnyRegistry, ModelRef, Registry, VersionRef};
use omen_models::sequence::SequenceModel;
use omen_models::sequence::detect::{Detector, EventCounts, EwmaParams, ZScoreParams, alarms, match_events};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

/// One series: its identity and samples `(ts µs, value)`.
#[derive(Debug, Clone)]
pub struct Series {
    pub service: String,
    pub metric: String,
    pub labels: String,
    pub samples: Vec<(i64, f64)>,
}

/// A Prometheus-style series selector: `name`, `name{k="v",k!="v",k=~"re",k!~"re"}` or
/// `{…}`. `service` matches the series' service when its labels do not name one.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    name: Option<String>,
    matchers: Vec<(String, Op)>,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

impl Selector {
    pub fn parse(s: &str) -> std::result::Result<Selector, String> {
        let t = s.trim();
        let (name, body) = match t.find('{') {
            Some(i) => {
                let body = t[i + 1..].strip_suffix('}').ok_or_else(|| format!("`{s}`: missing `}}`"))?;
                (t[..i].trim(), Some(body))
            }
            None => (t, None),
        };
        if name.is_empty() && body.is_none() {
            return Err("empty selector".into());
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return Err(format!("`{name}` is not a metric name"));
        }
        let mut matchers = Vec::new();
        for part in body.map(split_matchers).unwrap_or_default() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, op, v) = ["!~", "=~", "!=", "="]
                .iter()
                .find_map(|op| part.find(op).map(|i| (&part[..i], *op, &part[i + op.len()..])))
                .ok_or_else(|| format!("`{part}` in `{s}`: expected `label=\"value\"` (or `!=`, `=~`, `!~`)"))?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).replace("\\\"", "\"");
            let re = |v: &str| regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("`{part}` in `{s}`: {e}"));
            let op = match op {
                "=" => Op::Eq(v),
                "!=" => Op::Ne(v),
                "=~" => Op::Re(re(&v)?),
                _ => Op::NotRe(re(&v)?),
            };
            matchers.push((k.trim().to_string(), op));
        }
        Ok(Selector { text: s.to_string(), name: (!name.is_empty()).then(|| name.to_string()), matchers })
    }

    /// Whether the series `metric` with `labels` (the `metrics/` string) of `service` matches.
    pub fn matches(&self, service: &str, metric: &str, labels: &str) -> bool {
        if self.name.as_deref().is_some_and(|n| n != metric) {
            return false;
        }
        if self.matchers.is_empty() {
            return true;
        }
        let parsed = parse_labels_string(labels);
        self.matchers.iter().all(|(k, op)| {
            let v = parsed
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.as_str())
                .or_else(|| (k == "service").then_some(service))
                .unwrap_or("");
            match op {
                Op::Eq(x) => v == x,
                Op::Ne(x) => v != x,
                Op::Re(r) => r.is_match(v),
                Op::NotRe(r) => !r.is_match(v),
            }
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits a selector body on the commas outside quotes.
fn split_matchers(body: &str) -> Vec<&str> {
    let (mut out, mut from, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&body[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[from..]);
    out
}

/// Which series to read.
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    pub service: Option<String>,
    pub selector: Option<Selector>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
}

/// Reads the series of `metrics/` passing `filter`, one service at a time, calling `each` with
/// the service's series (sorted by metric and labels). Returns the samples read.
pub async fn for_each_service(
    store: &Store,
    filter: &SeriesFilter,
    mut each: impl FnMut(&str, Vec<Series>) -> Result<()>,
) -> Result<usize> {
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rel in store.list(METRICS.name).await? {
        if !rel.ends_with(".parquet") {
            continue;
        }
        let service = service_of(&rel);
        if filter.service.as_ref().is_some_and(|s| *s != service) {
            continue;
        }
        files.entry(service).or_default().push(rel);
    }
    let mut total = 0usize;
    for rels in files.into_values() {
        // One service at a time: memory holds one service's series.
        let mut collector = SeriesCollector::new(filter.clone());
        for rel in rels {
            let Some(bytes) = store.get(&rel).await? else { continue };
            let columns = ["ts", "metric", "labels", "value"].map(String::from).to_vec();
            let df = ParquetReader::new(std::io::Cursor::new(bytes))
                .with_columns(Some(columns))
                .finish()
                .map_err(|e| Error::input(&rel, e.to_string()))?;
            collector.add(&rel, &df)?;
        }
        total += collector.total;
        for (service, series) in collector.finish() {
            each(&service, series)?;
        }
    }
    Ok(total)
}

/// The service of a `metrics/` file, from its `service=` folder ("" without one).
fn service_of(rel: &str) -> String {
    partition_values(rel).into_iter().find(|(k, _)| k == "service").map(|(_, v)| v).unwrap_or_default()
}

/// The series of the `metrics/` files it is given (each file's `ts`, `metric`, `labels` and
/// `value` columns), grouped by service, as [`for_each_service`] reads them; for readers that
/// read the files for something else too (`omen train sequence`).
#[derive(Debug)]
pub struct SeriesCollector {
    filter: SeriesFilter,
    /// Per service: the samples of each (metric, labels), and whether the selector keeps it.
    services: BTreeMap<String, ServiceSeries>,
    /// Samples kept.
    pub total: usize,
}

#[derive(Debug, Default)]
struct ServiceSeries {
    by_key: HashMap<(String, String), Vec<(i64, f64)>>,
    selected: HashMap<(String, String), bool>,
}

impl SeriesCollector {
    pub fn new(filter: SeriesFilter) -> SeriesCollector {
        SeriesCollector { filter, services: BTreeMap::new(), total: 0 }
    }

    /// Adds the rows of the file `rel` (of its service, when the filter takes it).
    pub fn add(&mut self, rel: &str, df: &DataFrame) -> Result<()> {
        let service = service_of(rel);
        if self.filter.service.as_ref().is_some_and(|s| *s != service) {
            return Ok(());
        }
        let err = |c: &str, e: PolarsError| Error::input(rel, format!("column `{c}`: {e}"));
        let column = |c: &str| df.column(c).map_err(|e| err(c, e));
        let metric = column("metric")?.str().map_err(|e| err("metric", e))?;
        let labels = column("labels")?.str().map_err(|e| err("labels", e))?;
        let value = column("value")?.f64().map_err(|e| err("value", e))?;
        let ts = column("ts")?.datetime().map_err(|e| err("ts", e))?.physical();
        let filter = &self.filter;
        let out = self.services.entry(service.clone()).or_default();
        for (((m, l), v), t) in metric.iter().zip(labels.iter()).zip(value.iter()).zip(ts.iter()) {
            let (Some(m), Some(t)) = (m, t) else { continue };
            if filter.since_us.is_some_and(|s| t < s) || filter.until_us.is_some_and(|u| t > u) {
                continue;
            }
            let l = l.unwrap_or("");
            // the selector once per series
            let key = (m.to_string(), l.to_string());
            let keep = *out
                .selected
                .entry(key.clone())
                .or_insert_with(|| filter.selector.as_ref().is_none_or(|s| s.matches(&service, m, l)));
            if keep {
                out.by_key.entry(key).or_default().push((t, v.unwrap_or(f64::NAN)));
                self.total += 1;
            }
        }
        Ok(())
    }

    /// Each service's series (sorted by metric and labels; counters as rates), services in order,
    /// those without a series left out.
    pub fn finish(self) -> Vec<(String, Vec<Series>)> {
        let mut out = Vec::new();
        for (service, s) in self.services {
            let mut series: Vec<Series> = s
                .by_key
                .into_iter()
                .map(|((metric, labels), mut samples)| {
                    if crate::features::is_counter(&metric) {
                        samples = counter_rate(samples);
                    }
                    Series { service: service.clone(), metric, labels, samples }
                })
                .collect();
            series.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
            if !series.is_empty() {
                out.push((service, series));
            }
        }
        out
    }
}

/// The reference of each series, as an index into `series`: for a canary's series (a label whose
/// value is `canary`, the role label or one of its aliases), the series of the same service and
/// metric whose labels are its own with `baseline` in place of `canary`; `None` for every other
/// series and for a canary without a baseline.
pub fn references(series: &[Series]) -> Vec<Option<usize>> {
    let parsed: Vec<Vec<(String, String)>> = series.iter().map(|s| parse_labels_string(&s.labels)).collect();
    // (service, metric, labels) of each baseline series
    type Key<'a> = (&'a str, &'a str, &'a [(String, String)]);
    let mut baselines: HashMap<Key<'_>, usize> = HashMap::new();
    for (i, (s, l)) in series.iter().zip(&parsed).enumerate() {
        if l.iter().any(|(_, v)| v == "baseline") {
            baselines.entry((&s.service, &s.metric, l.as_slice())).or_insert(i);
        }
    }
    series
        .iter()
        .zip(&parsed)
        .map(|(s, l)| {
            if !l.iter().any(|(_, v)| v == "canary") {
                return None;
            }
            let partner: Vec<(String, String)> =
                l.iter().map(|(k, v)| (k.clone(), if v == "canary" { "baseline".to_string() } else { v.clone() })).collect();
            baselines.get(&(s.service.as_str(), s.metric.as_str(), partner.as_slice())).copied()
        })
        .collect()
}

/// Each series' reference ([`references`]) on the series' own steps ([`align`]); `grids[i]` is
/// `series[i]` on its grid.
pub fn aligned_references(series: &[Series], grids: &[Grid]) -> Vec<Option<Vec<f64>>> {
    references(series).iter().enumerate().map(|(i, r)| r.map(|r| align(&grids[r], &grids[i]))).collect()
}

/// A counter's samples as its per-second rate between consecutive samples (at the later one),
/// as `rate()` reads it: a decrease is a reset (the increase is the new value); NaN samples give
/// NaN rates.
pub fn counter_rate(mut samples: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    samples.sort_by_key(|s| s.0);
    samples
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let inc = if b.1 >= a.1 { b.1 - a.1 } else { b.1 };
            (b.0, inc / ((b.0 - a.0) as f64 / 1e6))
        })
        .collect()
}

/// A labelled window of `--labels`: the series it applies to and its time.
#[derive(Debug, Clone)]
pub struct LabelWindow {
    pub service: Option<String>,
    pub selector: Selector,
    pub start_us: i64,
    pub end_us: i64,
}

/// Reads a labels CSV: header `service,series,start,end` (service may be empty: any; series a
/// selector; times RFC 3339 or Unix seconds). Errors name the line and field.
pub fn read_labels(path: &Path) -> Result<Vec<LabelWindow>> {
    let name = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::input(&name, e.to_string()))?;
    let header = reader.headers().map_err(|e| Error::input(format!("{name}:1"), e.to_string()))?.clone();
    if header.iter().collect::<Vec<_>>() != ["service", "series", "start", "end"] {
        let found = header.iter().collect::<Vec<_>>().join(",");
        return Err(Error::input(format!("{name}:1"), format!("expected the header `service,series,start,end`, found `{found}`")));
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::input(format!("{name}:{line}"), e.to_string())
        })?;
        let at = format!("{name}:{}", record.position().map_or(0, |p| p.line()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != 4 {
            return Err(Error::input(at, format!("{} fields, expected 4 (service,series,start,end)", record.len())));
        }
        let selector = Selector::parse(&record[1]).map_err(|m| Error::input(&at, format!("field `series`: {m}")))?;
        let time = |f: &str, v: &str| parse_time(v).map_err(|m| Error::input(&at, format!("field `{f}`: {m}")));
        let (start_us, end_us) = (time("start", &record[2])?, time("end", &record[3])?);
        if end_us < start_us {
            return Err(Error::input(at, "field `end`: before `start`"));
        }
        let service = (!record[0].is_empty()).then(|| record[0].to_string());
        out.push(LabelWindow { service, selector, start_us, end_us });
    }
    Ok(out)
}

/// RFC 3339, `YYYY-MM-DD` (midnight UTC) or Unix seconds, as µs.
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros());
    }
    if let Ok(x) = s.parse::<f64>()
        && x.is_finite()
    {
        return Ok((x * 1e6).round() as i64);
    }
    Err(format!("`{s}` is not an RFC 3339 time, a date or Unix seconds"))
}

/// The detectors `omen detect` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DetectorChoice {
    /// The residual detector of the `omen-sequence` model's series forecaster
    Lstm,
    /// Rolling z-score over the previous steps
    Zscore,
    /// Exponentially weighted mean and variance
    Ewma,
}

/// What `omen detect` takes besides the store and the registry.
#[derive(Debug, Clone)]
pub struct DetectArgs {
    pub filter: SeriesFilter,
    pub detector: DetectorChoice,
    /// Alarm when a step scores at least this.
    pub threshold: f64,
    /// The model for `lstm` (`omen-sequence@champion`, `omen-sequence/3`, `omen-sequence/latest`).
    pub model: String,
    /// Step of the baselines (the model's own for `lstm`), µs.
    pub step_us: i64,
    pub merge_gap: usize,
    /// An alarm needs at least this many steps at or above the threshold (Prometheus' `for`).
    pub min_steps: usize,
    /// Accumulate the step scores in a CUSUM with this drift before thresholding (`None`: the
    /// step scores themselves).
    pub cusum: Option<f64>,
    pub zscore: ZScoreParams,
    pub ewma: EwmaParams,
    pub labels: Option<PathBuf>,
    /// Thresholds at which `--labels` evaluates (besides `threshold`).
    pub sweep: Vec<f64>,
    /// An alarm up to this long after a labelled window's end still counts for it, µs.
    pub slack_us: i64,
    /// Write `anomalies/` (off: only report).
    pub write: bool,
}

impl Default for DetectArgs {
    fn default() -> Self {
        DetectArgs {
            filter: SeriesFilter::default(),
            detector: DetectorChoice::Lstm,
            threshold: 6.0,
            model: "omen-sequence@champion".into(),
            step_us: 60_000_000,
            merge_gap: 2,
            min_steps: 1,
            cusum: None,
            zscore: ZScoreParams::default(),
            ewma: EwmaParams::default(),
            labels: None,
            sweep: Vec::new(),
            slack_us: 0,
            write: true,
        }
    }
}

/// One alarm, as `--json` prints it and `anomalies/` stores it.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmRow {
    pub ts: String,
    pub end_ts: String,
    pub peak_ts: String,
    pub service: String,
    pub metric: String,
    pub labels: String,
    pub score: f64,
    pub steps: usize,
    #[serde(skip)]
    ts_us: [i64; 3],
}

/// Event-level figures at one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub threshold: f64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub mean_delay_s: Option<f64>,
    #[serde(flatten)]
    pub counts: EventCounts,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    pub store: String,
    pub detector: DetectorChoice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u64>,
    pub threshold: f64,
    pub step_s: f64,
    pub series: usize,
    pub samples: usize,
    /// NaN and ±Inf samples (never scored).
    pub non_finite: usize,
    /// Series longer than [`MAX_STEPS`] steps, scored over their last `MAX_STEPS` only (a
    /// timestamp far in the past would otherwise ask for a grid of millions of empty steps).
    pub truncated: usize,
    pub steps_scored: usize,
    pub alarm_count: usize,
    pub alarms: Vec<AlarmRow>,
    /// Files of `anomalies/` written (or deleted when a rerun left them empty).
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Vec<EvalRow>>,
    pub seconds: f64,
}

impl DetectReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} detector{}: {} series, {} samples ({} NaN/Inf), {} steps of {}s scored; {} alarms at score ≥ {}\n",
            serde_json::to_value(self.detector).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            self.model.as_ref().map(|m| format!(" ({m}, version {})", self.model_version.unwrap_or(0))).unwrap_or_default(),
            self.series,
            self.samples,
            self.non_finite,
            self.steps_scored,
            self.step_s,
            self.alarm_count,
            self.threshold,
        );
        if self.truncated > 0 {
            s += &format!("  {} series span more than {MAX_STEPS} steps: scored over their latest {MAX_STEPS} only\n", self.truncated);
        }
        if self.series == 0 {
            s += "  no series matched (check --service, --series, --since and --until, and that metrics/ has samples)\n";
        }
        for a in self.alarms.iter().take(20) {
            s += &format!("  {} … {}  {}{{{}}} ({})  score {:.1}\n", a.ts, a.end_ts, a.metric, a.labels, a.service, a.score);
        }
        if self.alarms.len() > 20 {
            s += &format!("  … {} more (--json prints them all)\n", self.alarms.len() - 20);
        }
        if let Some(ev) = &self.evaluation {
            let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
            for e in ev {
                s += &format!(
                    "  threshold {:>5}: precision {} ({}/{} alarms), recall {} ({}/{} labelled windows), F1 {}, mean delay {} s\n",
                    e.threshold,
                    f(e.precision),
                    e.counts.alarms_true,
                    e.counts.alarms,
                    f(e.recall),
                    e.counts.labels_detected,
                    e.counts.labels,
                    f(e.f1),
                    e.mean_delay_s.map_or("-".into(), |v| format!("{v:.0}")),
                );
            }
        }
        for f in &self.files {
            s += &format!("  wrote {f}\n");
        }
        s
    }
}

/// Loads the `omen-sequence` model `what` and checks it has a series detector.
pub async fn load_detector_model(registry: &AnyRegistry, what: &str) -> Result<(SequenceModel, u64)> {
    let r = ModelRef::parse(what)?;
    let which = r.version.unwrap_or(VersionRef::Alias(omen_models::registry::CHAMPION.into()));
    let art = registry.fetch(&r.name, &which).await?;
    let version = art.version().version;
    let model = SequenceModel::from_verified(&art)?;
    if model.detector().is_none() {
        return Err(Error::input(
            format!("{}/{version}", r.name),
            "this omen-sequence version has no series detector (trained before `omen detect`); train a new one with `omen train sequence`",
        ));
    }
    Ok((model, version))
}

struct Scored {
    series: Series,
    grid: Grid,
    scores: Vec<f64>,
    truncated: bool,
}

/// The most steps a series is scored over (its latest ones): 2,000,000 (about 4 years of 60 s).
pub const MAX_STEPS: usize = 2_000_000;

/// Runs the detector over the store's series (see the module docs).
pub async fn detect(store: &Store, model: Option<(&SequenceModel, u64)>, args: &DetectArgs) -> Result<DetectReport> {
    let start = std::time::Instant::now();
    let zscore = args.zscore.check()?;
    let ewma = args.ewma.check()?;
    if args.cusum.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
        return Err(Error::input("--cusum", format!("the drift must be a number ≥ 0, got {:?}", args.cusum)));
    }
    if !(args.threshold.is_finite() && args.threshold > 0.0) {
        return Err(Error::input("--threshold", format!("must be a positive number, got {}", args.threshold)));
    }
    let (detector, step_us, model_version): (&(dyn Detector + Sync), i64, Option<u64>) = match args.detector {
        DetectorChoice::Lstm => {
            let (m, v) = model.ok_or_else(|| Error::input("--detector lstm", "needs an omen-sequence model"))?;
            let d = m.detector().ok_or_else(|| Error::input("--model", "the omen-sequence model has no series detector"))?;
            (d, d.layout.step_us, Some(v))
        }
        DetectorChoice::Zscore => (&zscore, args.step_us, None),
        DetectorChoice::Ewma => (&ewma, args.step_us, None),
    };
    if step_us <= 0 {
        return Err(Error::input("--step", "must be positive"));
    }
    let labels = match &args.labels {
        Some(p) => Some(read_labels(p)?),
        None => None,
    };
    let mut thresholds: Vec<f64> = args.sweep.iter().copied().chain([args.threshold]).collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let mut counts = vec![EventCounts::default(); thresholds.len()];
    let name = detector.name();
    let file_name = match model_version {
        Some(v) => format!("{name}-v{v}.parquet"),
        None => format!("{name}.parquet"),
    };
    let mut report = DetectReport {
        store: store.url().to_string(),
        detector: args.detector,
        model: (args.detector == DetectorChoice::Lstm).then(|| args.model.clone()),
        model_version,
        threshold: args.threshold,
        step_s: step_us as f64 / 1e6,
        series: 0,
        samples: 0,
        non_finite: 0,
        truncated: 0,
        steps_scored: 0,
        alarm_count: 0,
        alarms: Vec::new(),
        files: Vec::new(),
        evaluation: None,
        seconds: 0.0,
    };
    // Per service: score, alarm, evaluate; the writes are collected and done after the read.
    let mut pending: Vec<(String, Vec<Scored>)> = Vec::new();
    report.samples = for_each_service(store, &args.filter, |service, series| {
        // Every series on its grid (its latest MAX_STEPS steps), then scored with its reference.
        let mut series = series;
        let (grids, truncated): (Vec<Grid>, Vec<bool>) = series
            .par_iter_mut()
            .map(|s| {
                let last = s.samples.iter().map(|x| x.0).max().unwrap_or(0);
                let from = last.saturating_sub(step_us.saturating_mul(MAX_STEPS as i64 - 1));
                let truncated = s.samples.iter().any(|x| x.0 < from);
                if truncated {
                    s.samples.retain(|x| x.0 >= from);
                }
                (resample(&s.samples, step_us), truncated)
            })
            .unzip();
        // Only the LSTM reads a reference; the baselines score each series alone.
        let aligned = if args.detector == DetectorChoice::Lstm { aligned_references(&series, &grids) } else { vec![None; series.len()] };
        let scored: Vec<Scored> = series
            .into_par_iter()
            .zip(grids.into_par_iter().zip(truncated).zip(aligned))
            .map(|(s, ((grid, truncated), reference))| {
                let mut scores = detector.scores_with(&grid.values, reference.as_deref());
                if let Some(drift) = args.cusum {
                    scores = omen_models::sequence::detect::cusum(&scores, drift);
                }
                Scored { series: s, grid, scores, truncated }
            })
            .collect();
        for sc in &scored {
            report.series += 1;
            report.non_finite += sc.grid.non_finite;
            report.truncated += usize::from(sc.truncated);
            report.steps_scored += sc.scores.iter().filter(|v| v.is_finite()).count();
            if let Some(labels) = &labels {
                let windows: Vec<(i64, i64)> = labels
                    .iter()
                    .filter(|l| {
                        l.service.as_deref().is_none_or(|s| s == sc.series.service)
                            && l.selector.matches(&sc.series.service, &sc.series.metric, &sc.series.labels)
                    })
                    .map(|l| (l.start_us, l.end_us))
                    .collect();
                for (t, c) in thresholds.iter().zip(counts.iter_mut()) {
                    let a: Vec<(i64, i64)> = alarms(&sc.scores, *t, args.merge_gap)
                        .iter()
                        .filter(|a| a.steps >= args.min_steps)
                        .map(|a| (sc.grid.at(a.start), sc.grid.at(a.end) + step_us - 1))
                        .collect();
                    c.add(&match_events(&a, &windows, args.slack_us));
                }
            }
        }
        pending.push((service.to_string(), scored));
        Ok(())
    })
    .await?;
    for (service, scored) in pending {
        let mut rows: Vec<AlarmRow> = Vec::new();
        for sc in &scored {
            for a in alarms(&sc.scores, args.threshold, args.merge_gap).into_iter().filter(|a| a.steps >= args.min_steps) {
                let us = [sc.grid.at(a.start), sc.grid.at(a.end) + step_us, sc.grid.at(a.peak)];
                rows.push(AlarmRow {
                    ts: crate::rfc3339(us[0]),
                    end_ts: crate::rfc3339(us[1]),
                    peak_ts: crate::rfc3339(us[2]),
                    service: service.clone(),
                    metric: sc.series.metric.clone(),
                    labels: sc.series.labels.clone(),
                    score: a.peak_score,
                    steps: a.steps,
                    ts_us: us,
                });
            }
        }
        rows.sort_by(|a, b| (a.ts_us[0], &a.metric, &a.labels).cmp(&(b.ts_us[0], &b.metric, &b.labels)));
        if args.write {
            let files = write_anomalies(store, &service, &scored, &rows, &file_name, name, model_version, args.threshold).await?;
            report.files.extend(files);
        }
        report.alarm_count += rows.len();
        report.alarms.extend(rows);
    }
    if labels.is_some() {
        report.evaluation = Some(
            thresholds
                .iter()
                .zip(&counts)
                .map(|(&threshold, c)| EvalRow {
                    threshold,
                    precision: c.precision(),
                    recall: c.recall(),
                    f1: c.f1(),
                    mean_delay_s: c.mean_delay_s(),
                    counts: *c,
                })
                .collect(),
        );
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn date_of(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// Rewrites the `file_name` of every date the service's scanned series cover: the rows of other
/// series, or outside the scanned time, are kept; this run's alarms added.
#[allow(clippy::too_many_arguments)]
async fn write_anomalies(
    store: &Store,
    service: &str,
    scored: &[Scored],
    rows: &[AlarmRow],
    file_name: &str,
    detector: &str,
    model_version: Option<u64>,
    threshold: f64,
) -> Result<Vec<String>> {
    // The scanned time of each series, and the dates they cover.
    let mut scope: HashMap<(&str, &str), (i64, i64)> = HashMap::new();
    let mut dates: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for sc in scored {
        let Some(lo) = sc.series.samples.iter().map(|s| s.0).min() else { continue };
        let hi = sc.series.samples.iter().map(|s| s.0).max().unwrap_or(lo);
        scope.insert((&sc.series.metric, &sc.series.labels), (lo, hi));
        let mut d = lo - lo.rem_euclid(86_400_000_000);
        while d <= hi {
            dates.insert(date_of(d));
            d += 86_400_000_000;
        }
    }
    let mut new_by_date: BTreeMap<String, Vec<&AlarmRow>> = BTreeMap::new();
    for r in rows {
        new_by_date.entry(date_of(r.ts_us[0])).or_default().push(r);
    }
    dates.extend(new_by_date.keys().cloned());
    let mut written = Vec::new();
    for date in dates {
        let rel = format!("{}/{}/{}/{file_name}", ANOMALIES.name, partition_segment("service", service), partition_segment("date", &date));
        let mut keep: Option<DataFrame> = None;
        if let Some(old) = store.read_parquet(&rel).await? {
            let err = |c: &str, e: PolarsError| Error::input(&rel, format!("column `{c}`: {e}"));
            let metric = old.column("metric")?.str().map_err(|e| err("metric", e))?;
            let labels = old.column("labels")?.str().map_err(|e| err("labels", e))?;
            let ts = old.column("ts")?.datetime().map_err(|e| err("ts", e))?.physical();
            let mask: BooleanChunked = metric
                .iter()
                .zip(labels.iter())
                .zip(ts.iter())
                .map(|((m, l), t)| match (m, l, t) {
                    (Some(m), Some(l), Some(t)) => !scope.get(&(m, l)).is_some_and(|&(lo, hi)| t >= lo && t <= hi),
                    _ => true,
                })
                .collect();
            keep = Some(old.filter(&mask)?);
        }
        let new = new_by_date.get(&date).map(|v| v.as_slice()).unwrap_or(&[]);
        let kept = keep.as_ref().map_or(0, |k| k.height());
        if kept == 0 && new.is_empty() {
            if keep.is_some() {
                store.delete(&rel).await?;
                written.push(format!("{}/{rel} (removed: no alarm left)", store.url()));
            }
            continue;
        }
        let mut df = anomalies_frame(new, detector, model_version, threshold)?;
        if let Some(k) = keep.filter(|k| k.height() > 0) {
            df = k.select(df.get_column_names_owned())?.vstack(&df)?;
        }
        let df = df.sort(["ts", "metric", "labels"], SortMultipleOptions::default())?;
        let mut df = df;
        let bytes = encode_parquet(&mut df).map_err(|e| Error::input(&rel, e.to_string()))?;
        store.put(&rel, Bytes::from(bytes)).await?;
        written.push(format!("{}/{rel}", store.url()));
    }
    Ok(written)
}

fn anomalies_frame(rows: &[&AlarmRow], detector: &str, model_version: Option<u64>, threshold: f64) -> Result<DataFrame> {
    let ts = |i: usize, name: &str| {
        Int64Chunked::from_vec(name.into(), rows.iter().map(|r| r.ts_us[i]).collect())
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column()
    };
    let n = rows.len();
    Ok(DataFrame::new_infer_height(vec![
        ts(0, "ts"),
        ts(1, "end_ts"),
        ts(2, "peak_ts"),
        Column::new("metric".into(), rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>()),
        Column::new("labels".into(), rows.iter().map(|r| r.labels.as_str()).collect::<Vec<_>>()),
        Column::new("score".into(), rows.iter().map(|r| r.score).collect::<Vec<f64>>()),
        Column::new("threshold".into(), vec![threshold; n]),
        Column::new("steps".into(), rows.iter().map(|r| r.steps as i64).collect::<Vec<i64>>()),
        Column::new("detector".into(), vec![detector; n]),
        Column::new("model_version".into(), vec![model_version.map(|v| v as i64); n]),
    ])?)
}

/// The layout of the series detector `omen train sequence` fits.
pub fn default_series_layout() -> SeriesLayout {
    SeriesLayout { step_us: 60_000_000, window: 30, min_present: 10 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_names_and_labels() {
        let l = "deployment=d-1,pod=a\\,b,role=canary";
        assert_eq!(parse_labels_string(l), vec![("deployment".into(), "d-1".into()), ("pod".into(), "a,b".into()), ("role".into(), "canary".into())]);
        let s = Selector::parse("cpu{role=\"canary\",pod=~\"a.*\"}").unwrap();
        assert!(s.matches("svc", "cpu", l));
        assert!(!s.matches("svc", "mem", l));
        assert!(Selector::parse("{role!=\"canary\"}").unwrap().matches("svc", "x", "role=baseline"));
        assert!(Selector::parse("{service=\"svc\"}").unwrap().matches("svc", "x", ""));
        assert!(Selector::parse("cpu").unwrap().matches("svc", "cpu", ""));
        assert!(Selector::parse("cpu{role}").unwrap_err().contains("expected"));
        assert!(Selector::parse("cpu{a=~\"(\"}").is_err());
        assert!(Selector::parse("").is_err());
    }

    #[test]
    fn a_canary_series_has_its_baseline_for_reference() {
        let s = |service: &str, metric: &str, labels: &str| Series { service: service.into(), metric: metric.into(), labels: labels.into(), samples: vec![] };
        let series = [
            s("shop", "cpu", "deployment=d1,role=canary"),
            s("shop", "cpu", "deployment=d1,role=baseline"),
            s("shop", "cpu", "deployment=d1,role=primary"),
            s("shop", "mem", "deployment=d1,role=canary"),
            s("shop", "cpu", "deployment=d2,track=canary"),
            s("shop", "cpu", "deployment=d2,track=baseline"),
            s("other", "cpu", "deployment=d1,role=canary"),
            s("shop", "cpu", "deployment=d3,role=canary"),
        ];
        // d1's cpu canary: its baseline; the role label's alias (track) too; no baseline of that
        // metric, service or deployment: none; every other series: none
        assert_eq!(references(&series), [Some(1), None, None, None, Some(5), None, None, None]);
    }

    #[test]
    fn counters_become_reset_aware_rates() {
        let r = counter_rate(vec![(2_000_000, 30.0), (0, 10.0), (4_000_000, 5.0), (6_000_000, f64::NAN)]);
        assert_eq!(r[..2], [(2_000_000, 10.0), (4_000_000, 2.5)]);
        assert!(r[2].1.is_nan());
    }

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Ok(60_000_000));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000_000));
        assert_eq!(parse_time("1.5"), Ok(1_500_000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn labels_files_name_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.csv");
        std::fs::write(&p, "service,series,start,end\nsvc,\"cpu{role=\"\"canary\"\"}\",2026-01-01T00:00:00Z,2026-01-01T01:00:00Z\n").unwrap();
        let l = read_labels(&p).unwrap();
        assert_eq!(l.len(), 1);
        assert!(l[0].selector.matches("svc", "cpu", "role=canary"));
        std::fs::write(&p, "service,series,start,end\n,cpu,2026-01-01T00:00:00Z,soon\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("l.csv:2") && e.contains("`end`"), "{e}");
        std::fs::write(&p, "a,b\n").unwrap();
        assert!(read_labels(&p).unwrap_err().to_string().contains("l.csv:1"));
    }
}
