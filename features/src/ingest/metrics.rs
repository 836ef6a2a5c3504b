//! Metric samples from the formats real exporters and servers produce, into `metrics/` rows.
//!
//! Three formats ([`MetricsFormat`]):
//!
//! - **Prometheus `query_range` JSON** (`/api/v1/query_range`, `resultType: matrix`; `vector` from
//!   `/api/v1/query` is accepted too). Several responses may be concatenated in one file (one per
//!   line, as scripts that loop over queries write them). A response with `status: error` fails
//!   the whole source with Prometheus' `errorType` and `error`. `source_line` is the series
//!   number: the 1-based position of the series in `data.result`, counted on across concatenated
//!   responses, so a reject names the series at fault. A series without `__name__` (the result
//!   of `rate(…)`, `sum(…)`) takes [`MetricsOptions::metric_name`], and is rejected without one.
//!   Native-histogram points are rejected (not supported). Stale markers never appear in a
//!   range-query response: Prometheus answers staleness with the absence of a point.
//! - **Prometheus / OpenMetrics text exposition with timestamps** (`name{a="b"} 1.5 1700000000000`).
//!   A file with a `# EOF` line is OpenMetrics and its timestamps are seconds (decimals allowed);
//!   any other file is the Prometheus text format and its timestamps are integer milliseconds.
//!   `#` lines (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`) and blank lines are skipped; every other
//!   line becomes a row or a reject naming what is wrong. Label values unescape `\\`, `\"` and
//!   `\n`; Prometheus 3 quoted names (`{"my.metric", "a.b"="c"}`) are read; OpenMetrics
//!   exemplars (`… # {trace_id="x"} 1`) are ignored. A sample without a timestamp takes
//!   [`MetricsOptions::default_ts`] and is rejected without one. The stale-marker NaN has no
//!   text form, so `NaN` is an ordinary NaN.
//! - **Long CSV**: a header naming `ts` (or `timestamp`, `time`), `metric` (or `__name__`,
//!   `name`) and `value`; every other column is a label (`service`, `deployment`, `role`, `app`,
//!   `pod`, …). Cells are trimmed; an empty label cell means the label is absent. `ts` is RFC 3339
//!   (any offset), or a unix time: a number with a decimal point is seconds, an integer is read
//!   by magnitude (below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
//!   nanoseconds). `source_line` is the line the record starts on (the header is line 1).
//!
//! In every format `NaN`, `+Inf` and `-Inf` are kept as values, a label with an empty value is
//! absent (as in Prometheus), and timestamps must fall in the years 1 to 9999.
//!
//! `labels` holds every label but `__name__`, sorted by name, as `k=v` joined by `,`, with `\`,
//! `,` and `=` escaped by a `\` in names and values. `service`, `deployment` and `role` are
//! filled from the first label of [`LabelAliases`] present, and stay in `labels` too. `service`
//! falls back to [`MetricsOptions::default_service`], then `unknown`. `role` is `canary`,
//! `baseline`, `primary` (a `stable` value means `primary`) or `loadtest` (the new version under
//! synthetic load at the full-traffic rate; `load-test` and `load_test` mean it too), matched
//! case-insensitively; any other value leaves `role` null.

use std::collections::HashSet;

use polars::prelude::*;
use serde_json::Value;

use super::{CsvRecord, Reject, conform, csv_records, lines};
use crate::schema::METRICS;
use crate::{Error, Result};

/// Which labels fill the `service`, `deployment` and `role` columns: the first one present, in
/// order, wins.
#[derive(Debug, Clone)]
pub struct LabelAliases {
    pub service: Vec<String>,
    pub deployment: Vec<String>,
    pub role: Vec<String>,
}

impl Default for LabelAliases {
    fn default() -> Self {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        LabelAliases {
            service: v(&["service", "app", "application"]),
            deployment: v(&["deployment", "rollouts_pod_template_hash", "deployment_id"]),
            role: v(&["role", "track", "canary_role"]),
        }
    }
}

/// The metrics input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// Prometheus HTTP API `query_range` (or `query`) response JSON.
    PromQueryRange,
    /// Prometheus or OpenMetrics text exposition with timestamps.
    Exposition,
    /// Long CSV: `ts,metric,value` plus label columns.
    Csv,
}

impl MetricsFormat {
    /// Guesses the format from the content first (a JSON object naming `resultType` or `status`,
    /// a CSV header with `ts`, `metric` and `value`, a `#` comment or a sample line), then from
    /// the extension of `path` (`.json`, `.csv`, `.prom`/`.txt`/`.om`/`.metrics`; a trailing `.gz`
    /// is ignored). `None` when neither says.
    pub fn detect(path: &str, bytes: &[u8]) -> Option<MetricsFormat> {
        let body = strip_bom(bytes);
        let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
        let body = &body[start..];
        let head = &body[..body.len().min(1 << 16)];
        if head.first() == Some(&b'{')
            && (memchr::memmem::find(head, b"\"resultType\"").is_some()
                || memchr::memmem::find(head, b"\"status\"").is_some())
        {
            return Some(MetricsFormat::PromQueryRange);
        }
        if let Some((_, first)) = lines(body).next() {
            let first = String::from_utf8_lossy(first);
            if first.contains(',') && csv_header_columns(&first).is_some() {
                return Some(MetricsFormat::Csv);
            }
            let t = first.trim_start();
            let name_len = t.bytes().take_while(|&c| is_name_char(c)).count();
            let sample_start = t.as_bytes().first().is_some_and(|&c| is_name_start(c))
                && matches!(t.as_bytes().get(name_len), Some(b'{' | b' ' | b'\t'));
            if t.starts_with('#') || t.starts_with("{\"") || sample_start {
                return Some(MetricsFormat::Exposition);
            }
        }
        let lower = path.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "json" => Some(MetricsFormat::PromQueryRange),
            "csv" => Some(MetricsFormat::Csv),
            "prom" | "txt" | "om" | "metrics" | "openmetrics" => Some(MetricsFormat::Exposition),
            _ => None,
        }
    }
}

/// How to read labels and fill gaps.
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    pub aliases: LabelAliases,
    /// `service` when no alias label names one (else `unknown`).
    pub default_service: Option<String>,
    /// Metric name for `query_range` series without `__name__` (`rate(…)` results).
    pub metric_name: Option<String>,
    /// Timestamp, in milliseconds since the epoch, for exposition samples that carry none.
    pub default_ts: Option<i64>,
}

/// Parses `bytes` (the content of `source`) as `format` into a `metrics/` frame (the columns of
/// [`METRICS`] plus the partition keys `service` and `date`) and the rejected lines or series.
///
/// Fails, naming `source`, only when the source as a whole cannot be read: invalid JSON, a
/// Prometheus error response, or a CSV header without the required columns.
pub fn parse_metrics(
    source: &str,
    bytes: &[u8],
    format: MetricsFormat,
    opts: &MetricsOptions,
) -> Result<(DataFrame, Vec<Reject>)> {
    let bytes = strip_bom(bytes);
    let mut rows = Rows::default();
    let mut rejects = Vec::new();
    match format {
        MetricsFormat::PromQueryRange => parse_query_range(source, bytes, opts, &mut rows, &mut rejects)?,
        MetricsFormat::Exposition => parse_exposition(source, bytes, opts, &mut rows, &mut rejects),
        MetricsFormat::Csv => parse_csv(source, bytes, opts, &mut rows, &mut rejects)?,
    }
    tracing::debug!(source, ?format, rows = rows.ts.len(), rejects = rejects.len(), "parsed metrics");
    Ok((rows.into_frame(source)?, rejects))
}

// ---------------------------------------------------------------------------------------------
// Rows

/// Column buffers of the frame being built.
#[derive(Default)]
struct Rows {
    ts: Vec<i64>,
    metric: Vec<String>,
    labels: Vec<String>,
    value: Vec<f64>,
    deployment: Vec<Option<String>>,
    role: Vec<Option<&'static str>>,
    source_line: Vec<i64>,
    service: Vec<String>,
    date: Vec<String>,
    /// The last UTC day seen and its `YYYY-MM-DD`, to format each day once.
    last_day: Option<(i64, String)>,
}

impl Rows {
    /// Adds one sample of the series `key`.
    fn push(
        &mut self,
        ts_us: i64,
        metric: &str,
        key: &SeriesKey,
        value: f64,
        line: u64,
    ) -> std::result::Result<(), String> {
        let date = self.date_of(ts_us)?;
        self.ts.push(ts_us);
        self.metric.push(metric.to_string());
        self.labels.push(key.labels.clone());
        self.value.push(value);
        self.deployment.push(key.deployment.clone());
        self.role.push(key.role);
        self.source_line.push(i64::try_from(line).unwrap_or(i64::MAX));
        self.service.push(key.service.clone());
        self.date.push(date);
        Ok(())
    }

    /// `YYYY-MM-DD` of the UTC day of `ts_us`, or why the timestamp is out of range.
    fn date_of(&mut self, ts_us: i64) -> std::result::Result<String, String> {
        if !(MIN_TS_US..=MAX_TS_US).contains(&ts_us) {
            return Err(format!("timestamp {ts_us}µs is outside the years 1 to 9999"));
        }
        let day = ts_us.div_euclid(86_400_000_000);
        if let Some((d, s)) = &self.last_day
            && *d == day
        {
            return Ok(s.clone());
        }
        let s = chrono::DateTime::from_timestamp_micros(ts_us)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .ok_or_else(|| format!("timestamp {ts_us}µs is out of range"))?;
        self.last_day = Some((day, s.clone()));
        Ok(s)
    }

    fn into_frame(self, source: &str) -> Result<DataFrame> {
        let n = self.ts.len();
        let ts = Int64Chunked::from_vec("ts".into(), self.ts)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
        let df = DataFrame::new_infer_height(vec![
            ts,
            Column::new("metric".into(), self.metric),
            Column::new("labels".into(), self.labels),
            Column::new("value".into(), self.value),
            Column::new("deployment".into(), self.deployment),
            Column::new("role".into(), self.role),
            Column::new("source_file".into(), vec![source; n]),
            Column::new("source_line".into(), self.source_line),
            Column::new("service".into(), self.service),
            Column::new("date".into(), self.date),
        ])?;
        Ok(conform(df, &METRICS)?)
    }
}

/// What the labels of a series put in a row, worked out once per series.
struct SeriesKey {
    labels: String,
    service: String,
    deployment: Option<String>,
    role: Option<&'static str>,
}

impl SeriesKey {
    /// `labels` in any order, with unique names; empty values and `__name__` are dropped.
    fn new(mut labels: Vec<(String, String)>, opts: &MetricsOptions) -> Self {
        labels.retain(|(k, v)| !v.is_empty() && k != "__name__");
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        SeriesKey {
            service: first_alias(&labels, &opts.aliases.service)
                .map(str::to_string)
                .or_else(|| opts.default_service.clone())
                .unwrap_or_else(|| "unknown".to_string()),
            deployment: first_alias(&labels, &opts.aliases.deployment).map(str::to_string),
            role: first_alias(&labels, &opts.aliases.role).and_then(role_of),
            labels: labels_string(&labels),
        }
    }
}

/// 0001-01-01T00:00:00Z and the last microsecond of 9999-12-31, in µs since the epoch.
const MIN_TS_US: i64 = -62_135_596_800_000_000;
const MAX_TS_US: i64 = 253_402_300_799_999_999;

/// The value of the first label named in `names` (in that order) that `labels` has.
fn first_alias<'a>(labels: &'a [(String, String)], names: &[String]) -> Option<&'a str> {
    names.iter().find_map(|n| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
}

/// The `role` column for a role label value: `canary`, `baseline`, `primary` (or `stable`),
/// `loadtest` (or `load-test`, `load_test`), case-insensitively; anything else is no role.
fn role_of(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("canary") {
        Some("canary")
    } else if v.eq_ignore_ascii_case("baseline") {
        Some("baseline")
    } else if v.eq_ignore_ascii_case("primary") || v.eq_ignore_ascii_case("stable") {
        Some("primary")
    } else if ["loadtest", "load-test", "load_test"].iter().any(|r| v.eq_ignore_ascii_case(r)) {
        Some("loadtest")
    } else {
        None
    }
}

/// The canonical `labels` string of a label set (the `labels` column of `metrics/`): labels with
/// an empty value and `__name__` dropped, sorted by name, `k=v` joined by `,`, with `\`, `,` and
/// `=` escaped by `\`. `omen-serve` keys request samples with it, as ingest does.
pub fn canonical_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(&str, &str)> = labels.into_iter().filter(|(k, v)| !v.is_empty() && *k != "__name__").collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    labels_string(&v)
}

/// `k=v,k=v` of sorted labels, with `\`, `,` and `=` escaped by `\`.
fn labels_string<K: AsRef<str>, V: AsRef<str>>(labels: &[(K, V)]) -> String {
    let mut out = String::with_capacity(labels.iter().map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2).sum());
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        escape_into(&mut out, k.as_ref());
        out.push('=');
        escape_into(&mut out, v.as_ref());
    }
    out
}

/// The inverse of [`canonical_labels`]: the `labels` column of `metrics/` back into its `(k, v)`
/// pairs, in order (`\` escapes the next character; a pair without `=` has an empty value).
pub fn parse_labels_string(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut k, mut v, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
    for c in s.chars() {
        if escaped {
            if in_value { v.push(c) } else { k.push(c) }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' if !in_value => in_value = true,
            ',' => {
                if !k.is_empty() {
                    out.push((std::mem::take(&mut k), std::mem::take(&mut v)));
                }
                in_value = false;
            }
            _ if in_value => v.push(c),
            _ => k.push(c),
        }
    }
    if !k.is_empty() {
        out.push((k, v));
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b',' | b'=')) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// A sample value: decimal or exponent notation, `NaN`, `+Inf`, `-Inf` (any case).
fn parse_value(s: &str) -> std::result::Result<f64, String> {
    s.parse::<f64>().map_err(|_| format!("value `{}` is not a number", snippet(s)))
}

/// Microseconds since the epoch for `secs` seconds, rounded; `None` when not finite or far out
/// of range.
fn secs_to_us(secs: f64) -> Option<i64> {
    let us = (secs * 1e6).round();
    (us.is_finite() && us.abs() < 9.0e18).then_some(us as i64)
}

/// Microseconds since the epoch of an RFC 3339 timestamp (any offset; `T`, `t` or a space
/// between date and time).
pub(crate) fn rfc3339_us(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros())
}

/// A CSV timestamp: RFC 3339, or unix time (decimal: seconds; integer: seconds, milliseconds,
/// microseconds or nanoseconds by magnitude).
fn parse_flexible_ts(s: &str) -> std::result::Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        let a = n.unsigned_abs();
        return Ok(if a < 100_000_000_000 {
            n.saturating_mul(1_000_000)
        } else if a < 100_000_000_000_000 {
            n.saturating_mul(1_000)
        } else if a < 100_000_000_000_000_000 {
            n
        } else {
            n / 1_000
        });
    }
    if s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && let Ok(f) = s.parse::<f64>()
        && let Some(us) = secs_to_us(f)
    {
        return Ok(us);
    }
    rfc3339_us(s)
        .ok_or_else(|| format!("timestamp `{}` is neither rfc 3339 nor unix seconds or milliseconds", snippet(s)))
}

/// At most 64 characters of `s`, for messages.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

// ---------------------------------------------------------------------------------------------
// Prometheus query_range JSON

fn parse_query_range(
    source: &str,
    bytes: &[u8],
    opts: &MetricsOptions,
    rows: &mut Rows,
    rejects: &mut Vec<Reject>,
) -> Result<()> {
    let mut series_no = 0u64;
    for (d, doc) in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>().enumerate() {
        let doc = doc.map_err(|e| Error::Json { path: source.to_string(), source: e })?;
        let d = d + 1;
        let Value::Object(obj) = &doc else {
            return Err(Error::input(source, format!("json document {d} is not an object")));
        };
        match obj.get("status").and_then(Value::as_str) {
            Some("success") | None => {}
            Some("error") => {
                let kind = obj.get("errorType").and_then(Value::as_str).unwrap_or("error");
                let msg = obj.get("error").and_then(Value::as_str).unwrap_or("no message");
                return Err(Error::input(source, format!("prometheus returned an error ({kind}): {msg}")));
            }
            Some(other) => {
                return Err(Error::input(source, format!("json document {d} has status `{}`", snippet(other))));
            }
        }
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::input(source, format!("json document {d} has no `data` object")))?;
        let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or("");
        let single = match result_type {
            "matrix" => false,
            "vector" => true,
            other => {
                return Err(Error::input(
                    source,
                    format!("resultType `{}` is not supported (expected matrix or vector)", snippet(other)),
                ));
            }
        };
        let result = data
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::input(source, format!("json document {d} has no `data.result` array")))?;
        for series in result {
            series_no += 1;
            parse_series(source, series, series_no, single, opts, rows, rejects);
        }
    }
    Ok(())
}

fn parse_series(
    source: &str,
    series: &Value,
    line: u64,
    single: bool,
    opts: &MetricsOptions,
    rows: &mut Rows,
    rejects: &mut Vec<Reject>,
) {
    let head = |series: &Value| -> Vec<u8> {
        let metric = series.get("metric").cloned().unwrap_or(Value::Null);
        serde_json::to_vec(&serde_json::json!({ "metric": metric })).unwrap_or_default()
    };
    let reject = |rejects: &mut Vec<Reject>, reason: String, raw: Vec<u8>| {
        rejects.push(Reject::new(source, line, format!("series {line}: {reason}"), &raw));
    };
    let Value::Object(s) = series else {
        let raw = serde_json::to_vec(series).unwrap_or_default();
        return reject(rejects, "not a json object".into(), raw);
    };
    let mut labels = Vec::new();
    let mut name = None;
    match s.get("metric") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return reject(rejects, format!("label `{}` is not a string", snippet(k)), head(series));
                };
                if k == "__name__" {
                    name = Some(v.to_string());
                } else {
                    labels.push((k.clone(), v.to_string()));
                }
            }
        }
        Some(_) => return reject(rejects, "`metric` is not an object".into(), head(series)),
    }
    let Some(name) = name.filter(|n| !n.is_empty()).or_else(|| opts.metric_name.clone()) else {
        return reject(rejects, "series has no __name__ label; pass a metric name".into(), head(series));
    };
    if s.contains_key("histograms") || s.contains_key("histogram") {
        reject(rejects, "native histogram samples are not supported".into(), head(series));
    }
    let points: Vec<&Value> = if single {
        match s.get("value") {
            None | Some(Value::Null) => vec![],
            Some(p) => vec![p],
        }
    } else {
        match s.get("values") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(ps)) => ps.iter().collect(),
            Some(_) => return reject(rejects, "`values` is not an array".into(), head(series)),
        }
    };
    let key = SeriesKey::new(labels, opts);
    for (i, p) in points.into_iter().enumerate() {
        let parsed = point(p).and_then(|(ts, v)| rows.push(ts, &name, &key, v, line));
        if let Err(reason) = parsed {
            let raw = serde_json::to_vec(p).unwrap_or_default();
            reject(rejects, format!("point {}: {reason}", i + 1), raw);
        }
    }
}

/// `[ts, "value"]`: seconds since the epoch (a number, or a string of one) and a value string
/// (or number).
fn point(p: &Value) -> std::result::Result<(i64, f64), String> {
    let Some([ts, v]) = p.as_array().map(Vec::as_slice) else {
        return Err("expected [timestamp, value]".into());
    };
    let secs = match ts {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("timestamp `{}` is not a number", snippet(&ts.to_string())))?;
    let ts = secs_to_us(secs).ok_or_else(|| format!("timestamp `{secs}` is out of range"))?;
    let value = match v {
        Value::String(s) => parse_value(s.trim())?,
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("value `{n}` is not a number"))?,
        other => return Err(format!("value `{}` is not a number", snippet(&other.to_string()))),
    };
    Ok((ts, value))
}

// ---------------------------------------------------------------------------------------------
// Text exposition

fn parse_exposition(source: &str, bytes: &[u8], opts: &MetricsOptions, rows: &mut Rows, rejects: &mut Vec<Reject>) {
    let openmetrics = lines(bytes).any(|(_, l)| l.trim_ascii() == b"# EOF");
    for (n, raw) in lines(bytes) {
        let t = raw.trim_ascii();
        if t.is_empty() || t.starts_with(b"#") {
            continue;
        }
        let parsed = std::str::from_utf8(t)
            .map_err(|_| "line is not valid utf-8".to_string())
            .and_then(|line| parse_sample(line, openmetrics, opts.default_ts))
            .and_then(|s| rows.push(s.ts_us, &s.name, &SeriesKey::new(s.labels, opts), s.value, n));
        if let Err(reason) = parsed {
            rejects.push(Reject::new(source, n, reason, raw));
        }
    }
}

/// One parsed exposition sample.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts_us: i64,
}

/// Parses one sample line (already trimmed, not a comment). Timestamps are seconds when
/// `seconds` (OpenMetrics), else integer milliseconds; `default_ts` (ms) stands in for a missing
/// one.
fn parse_sample(line: &str, seconds: bool, default_ts: Option<i64>) -> std::result::Result<Sample, String> {
    let mut c = Cursor { s: line, i: 0 };
    let mut name = c.take_while(is_name_char).to_string();
    if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(format!("metric name `{}` starts with a digit", snippet(&name)));
    }
    let mut had_ws = c.skip_ws();
    let mut labels: Vec<(String, String)> = Vec::new();
    if c.peek() == Some(b'{') {
        c.i += 1;
        parse_labels(&mut c, &mut name, &mut labels)?;
        had_ws = c.skip_ws();
    } else if name.is_empty() {
        return Err("line does not start with a metric name".into());
    }
    if name.is_empty() {
        return Err("sample has no metric name".into());
    }
    let value = c.take_while(|b| !matches!(b, b' ' | b'\t'));
    if value.is_empty() {
        return Err("sample has no value".into());
    }
    if !had_ws {
        return Err(format!("expected a space before the value `{}`", snippet(value)));
    }
    let value = parse_value(value)?;
    c.skip_ws();
    let ts = if c.peek().is_none_or(|b| b == b'#') { None } else { Some(c.take_while(|b| !matches!(b, b' ' | b'\t'))) };
    c.skip_ws();
    let rest = c.rest();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected text after the timestamp: `{}`", snippet(rest)));
    }
    let ts_us = match ts {
        Some(t) if seconds => {
            let secs = t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("timestamp `{}` is not a number of seconds (openmetrics)", snippet(t)))?;
            secs_to_us(secs).ok_or_else(|| format!("timestamp `{}` is out of range", snippet(t)))?
        }
        Some(t) => {
            let ms = t
                .parse::<i64>()
                .map_err(|_| format!("timestamp `{}` is not an integer number of milliseconds", snippet(t)))?;
            ms.checked_mul(1000).ok_or_else(|| format!("timestamp `{}` is out of range", snippet(t)))?
        }
        None => match default_ts {
            Some(ms) => ms.checked_mul(1000).ok_or_else(|| "default timestamp is out of range".to_string())?,
            None => return Err("sample has no timestamp".into()),
        },
    };
    Ok(Sample { name, labels, value, ts_us })
}

/// Reads a label set after its `{` up to and including `}`. A quoted string on its own is the
/// metric name (Prometheus 3); `__name__="x"` is too.
fn parse_labels(
    c: &mut Cursor<'_>,
    name: &mut String,
    labels: &mut Vec<(String, String)>,
) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    loop {
        c.skip_ws();
        match c.peek() {
            None => return Err("unterminated label set (missing `}`)".into()),
            Some(b'}') => {
                c.i += 1;
                return Ok(());
            }
            _ => {}
        }
        let (key, quoted) = if c.peek() == Some(b'"') {
            c.i += 1;
            (c.quoted().map_err(|_| "unterminated quoted label name".to_string())?, true)
        } else {
            let k = c.take_while(is_name_char);
            if k.is_empty() || k.as_bytes()[0].is_ascii_digit() {
                let at = c.rest().chars().next().map(String::from).unwrap_or_default();
                return Err(format!("expected a label name, found `{}`", snippet(&at)));
            }
            (k.to_string(), false)
        };
        c.skip_ws();
        match c.peek() {
            Some(b'=') => {
                c.i += 1;
                c.skip_ws();
                if c.peek() != Some(b'"') {
                    return Err(format!("label `{}` has no quoted value", snippet(&key)));
                }
                c.i += 1;
                let value = c.quoted().map_err(|_| format!("unterminated label value of `{}`", snippet(&key)))?;
                if !seen.insert(key.clone()) {
                    return Err(format!("duplicate label `{}`", snippet(&key)));
                }
                if key == "__name__" {
                    if !name.is_empty() {
                        return Err("metric name given twice".into());
                    }
                    *name = value;
                } else {
                    labels.push((key, value));
                }
            }
            Some(b',' | b'}') if quoted => {
                if !name.is_empty() {
                    return Err("metric name given twice".into());
                }
                *name = key;
            }
            _ => return Err(format!("expected `=` after label name `{}`", snippet(&key))),
        }
        c.skip_ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            Some(b'}') => {}
            None => return Err("unterminated label set (missing `}`)".into()),
            Some(_) => {
                let at = c.rest().chars().next().map(String::from).unwrap_or_default();
                return Err(format!("expected `,` or `}}` after a label, found `{}`", snippet(&at)));
            }
        }
    }
}

/// A byte cursor over a `str`; it only stops on ASCII bytes, so slices stay on char boundaries.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or("")
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    /// The longest run of bytes from here satisfying `f` (an ASCII predicate, or one that
    /// accepts every non-ASCII byte).
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or("")
    }

    /// The rest of a double-quoted string whose opening `"` was consumed, unescaping `\\`,
    /// `\"` and `\n` (other escapes are kept as written); `Err` when it never closes.
    fn quoted(&mut self) -> std::result::Result<String, ()> {
        let mut out = String::new();
        let rest = self.rest();
        let mut chars = rest.char_indices();
        while let Some((j, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.i += j + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => return Err(()),
                },
                other => out.push(other),
            }
        }
        Err(())
    }
}

// ---------------------------------------------------------------------------------------------
// Long CSV

/// Indexes of the `ts`, `metric` and `value` columns of a CSV header, if it has all three.
fn csv_header_columns(header: &str) -> Option<(usize, usize, usize)> {
    let names: Vec<String> =
        header.split(',').map(|h| h.trim().trim_matches('"').trim().to_ascii_lowercase()).collect();
    header_indexes(&names)
}

fn header_indexes(names: &[String]) -> Option<(usize, usize, usize)> {
    let find = |alts: &[&str]| alts.iter().find_map(|a| names.iter().position(|n| n == a));
    Some((find(&["ts", "timestamp", "time"])?, find(&["metric", "__name__", "name"])?, find(&["value"])?))
}

fn parse_csv(
    source: &str,
    bytes: &[u8],
    opts: &MetricsOptions,
    rows: &mut Rows,
    rejects: &mut Vec<Reject>,
) -> Result<()> {
    let mut header: Option<(Vec<String>, (usize, usize, usize))> = None;
    for CsvRecord { line, raw, fields: rec } in csv_records(source, bytes, rejects) {
        let Some((names, (its, imetric, ivalue))) = &header else {
            let names: Vec<String> = rec.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
            let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
            let idx = header_indexes(&lower).ok_or_else(|| Error::Line {
                path: source.to_string(),
                line,
                message: "csv header needs `ts`, `metric` and `value` columns (plus label columns)".into(),
            })?;
            let mut seen = HashSet::new();
            if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(Error::Line {
                    path: source.to_string(),
                    line,
                    message: format!("column `{dup}` appears twice in the csv header"),
                });
            }
            header = Some((names, idx));
            continue;
        };
        let result = csv_row(&rec, names, *its, *imetric, *ivalue)
            .and_then(|(ts, metric, labels, value)| rows.push(ts, &metric, &SeriesKey::new(labels, opts), value, line));
        if let Err(reason) = result {
            rejects.push(Reject::new(source, line, reason, raw));
        }
    }
    Ok(())
}

type CsvSample = (i64, String, Vec<(String, String)>, f64);

fn csv_row(
    rec: &csv::ByteRecord,
    names: &[String],
    its: usize,
    imetric: usize,
    ivalue: usize,
) -> std::result::Result<CsvSample, String> {
    if rec.len() != names.len() {
        return Err(format!("record has {} fields, the header has {}", rec.len(), names.len()));
    }
    let mut ts = None;
    let mut metric = String::new();
    let mut value = None;
    let mut labels = Vec::new();
    for (i, (field, name)) in rec.iter().zip(names).enumerate() {
        let cell =
            std::str::from_utf8(field).map_err(|_| format!("field `{}` is not valid utf-8", snippet(name)))?.trim();
        if i == its {
            if cell.is_empty() {
                return Err(format!("field `{name}` is empty"));
            }
            ts = Some(parse_flexible_ts(cell)?);
        } else if i == imetric {
            if cell.is_empty() {
                return Err(format!("field `{name}` is empty"));
            }
            metric = cell.to_string();
        } else if i == ivalue {
            if cell.is_empty() {
                return Err(format!("field `{name}` is empty"));
            }
            value = Some(parse_value(cell)?);
        } else if !cell.is_empty() {
            labels.push((name.clone(), cell.to_string()));
        }
    }
    match (ts, value) {
        (Some(ts), Some(value)) => Ok((ts, metric, labels, value)),
        _ => Err("record lacks a timestamp or value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(line: &str) -> std::result::Result<Sample, String> {
        parse_sample(line, false, None)
    }

    #[test]
    fn exposition_sample_with_escapes_and_timestamp() {
        let s = sample(r#"http_requests_total{method="post",path="/a\"b\\c\nd"} 1027 1395066363000"#).unwrap();
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.labels, vec![("method".into(), "post".into()), ("path".into(), "/a\"b\\c\nd".into())]);
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.ts_us, 1_395_066_363_000_000);
    }

    #[test]
    fn exposition_special_values_and_forms() {
        assert!(sample("x NaN 1").unwrap().value.is_nan());
        assert_eq!(sample("x +Inf 1").unwrap().value, f64::INFINITY);
        assert_eq!(sample("x -Inf 1").unwrap().value, f64::NEG_INFINITY);
        assert_eq!(sample("x{} 1.5e3 1").unwrap().value, 1500.0);
        assert_eq!(sample("x{a=\"b\",} 1 1").unwrap().labels.len(), 1);
        let q = sample(r#"{"my.metric", "a.b"="c"} 2 5"#).unwrap();
        assert_eq!((q.name.as_str(), q.labels[0].0.as_str()), ("my.metric", "a.b"));
        let om = parse_sample("x_total 3 1700000000.5 # {trace_id=\"a\"} 1", true, None).unwrap();
        assert_eq!(om.ts_us, 1_700_000_000_500_000);
        assert_eq!(parse_sample("x 1", false, Some(7)).unwrap().ts_us, 7000);
    }

    #[test]
    fn exposition_errors_name_what_is_wrong() {
        let err = |l: &str| sample(l).unwrap_err();
        assert_eq!(err("x 1"), "sample has no timestamp");
        assert_eq!(err("x abc 1"), "value `abc` is not a number");
        assert_eq!(err("x{a=\"b} 1 2"), "unterminated label value of `a`");
        assert_eq!(err("x{a=\"b\" 1 2"), "expected `,` or `}` after a label, found `1`");
        assert_eq!(err("x{a=b} 1 2"), "label `a` has no quoted value");
        assert_eq!(err("x{a=\"1\",a=\"2\"} 1 2"), "duplicate label `a`");
        assert_eq!(err("x 1 1.5"), "timestamp `1.5` is not an integer number of milliseconds");
        assert_eq!(err("x 1 2 3"), "unexpected text after the timestamp: `3`");
        assert_eq!(err("9x 1 2"), "metric name `9x` starts with a digit");
        assert_eq!(err("x"), "sample has no value");
        assert_eq!(err("{a=\"b\"} 1 2"), "sample has no metric name");
        assert_eq!(err("-x 1 2"), "line does not start with a metric name");
    }

    #[test]
    fn labels_are_sorted_and_escaped() {
        let l = vec![("b".to_string(), "x,y=z\\".to_string()), ("a".to_string(), "1".to_string())];
        let mut l2 = l.clone();
        l2.sort();
        assert_eq!(labels_string(&l2), r"a=1,b=x\,y\=z\\");
    }

    #[test]
    fn flexible_timestamps() {
        assert_eq!(parse_flexible_ts("1700000000"), Ok(1_700_000_000_000_000));
        assert_eq!(parse_flexible_ts("1700000000.25"), Ok(1_700_000_000_250_000));
        assert_eq!(parse_flexible_ts("1700000000123"), Ok(1_700_000_000_123_000));
        assert_eq!(parse_flexible_ts("1700000000123456"), Ok(1_700_000_000_123_456));
        assert_eq!(parse_flexible_ts("1700000000123456789"), Ok(1_700_000_000_123_456));
        assert_eq!(parse_flexible_ts("2023-11-14T22:13:20+01:00"), Ok(1_699_996_400_000_000));
        assert_eq!(parse_flexible_ts("2023-11-14 22:13:20Z"), Ok(1_700_000_000_000_000));
        assert!(parse_flexible_ts("yesterday").is_err());
        assert!(parse_flexible_ts("NaN").is_err());
    }

    #[test]
    fn roles_and_aliases() {
        assert_eq!(role_of("Canary"), Some("canary"));
        assert_eq!(role_of("stable"), Some("primary"));
        assert_eq!(role_of("Load-Test"), Some("loadtest"));
        assert_eq!(role_of("blue"), None);
        let labels = vec![("app".to_string(), "a".to_string()), ("job".to_string(), "j".to_string())];
        assert_eq!(first_alias(&labels, &LabelAliases::default().service), Some("a"));
    }

    #[test]
    fn detect_by_content_then_extension() {
        let d = MetricsFormat::detect;
        assert_eq!(
            d("x", br#"{"status":"success","data":{"resultType":"matrix"}}"#),
            Some(MetricsFormat::PromQueryRange)
        );
        assert_eq!(d("x", b"ts,service,metric,value\n"), Some(MetricsFormat::Csv));
        assert_eq!(d("x", b"# HELP x y\n"), Some(MetricsFormat::Exposition));
        assert_eq!(d("x", b"up{job=\"a\"} 1 2\n"), Some(MetricsFormat::Exposition));
        assert_eq!(d("a.JSON.gz", b""), Some(MetricsFormat::PromQueryRange));
        assert_eq!(d("a.prom", b"\xff"), Some(MetricsFormat::Exposition));
        assert_eq!(d("a.bin", b"\x00\x01"), None);
    }
}
