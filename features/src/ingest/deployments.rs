//! Deployment records, from JSON Lines or CSV, into `deployments/` rows.
//!
//! Fields (JSON keys or CSV header names, which are trimmed and matched case-insensitively):
//!
//! | field | required | form |
//! |---|---|---|
//! | `deployment_id` | yes | string (a JSON number is taken as its text) |
//! | `service` | yes | string |
//! | `version` | yes | string (a JSON number is taken as its text) |
//! | `from_sha` | no | string |
//! | `to_sha` | yes | string |
//! | `started_at` | yes | RFC 3339, any offset (converted to UTC) |
//! | `ended_at` | no | RFC 3339; not before `started_at` |
//! | `outcome` | no | `success`, `rolled_back`, `failed` or `aborted` (any case, `-` for `_`) |
//! | `steps` | no | traffic steps, below; none means an empty list |
//!
//! In JSON Lines `steps` is an array of `{"at": "<rfc 3339>", "weight": <0..=100>}`. In a CSV
//! cell it is either that JSON array, or the compact `at@weight;at@weight`
//! (`2024-05-01T10:00:00Z@10;2024-05-01T10:05:00Z@50`), which needs no quoting because RFC 3339
//! has neither `@` nor `;`. Weights are percent of traffic.
//!
//! Empty strings, empty CSV cells and JSON `null` mean the field is absent. Other keys or
//! columns are kept in `extra`: one JSON object per record, keys sorted (a JSON value as it was,
//! a CSV cell as a string; empty cells and `null`s left out), null when there are none — the
//! simulator's ground truth (`failure_mode`, `p_failure`, `bait`, …) reaches the store that way. Blank lines of a JSON Lines file are not records. A record with a missing
//! required field, a bad timestamp, an unknown outcome, a weight outside 0..=100 or an
//! `ended_at` before its `started_at` is rejected with a reason naming the field. When one file
//! holds the same `deployment_id` twice the last record wins, and the earlier one is rejected as
//! superseded, so that no line is dropped silently.
//!
//! `source_line` is the line of the record: the JSON Lines line, or the line a CSV record starts
//! on (the header is line 1).

use std::collections::HashMap;

use polars::chunked_array::builder::get_list_builder;
use polars::prelude::*;
use serde_json::Value;

use super::metrics::rfc3339_us;
use super::{CsvRecord, Reject, conform, csv_records, lines};
use crate::schema::{ColumnType, DEPLOYMENTS};
use crate::{Error, Result};

/// The deployments input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentsFormat {
    /// One JSON object per line.
    JsonLines,
    /// A header row naming the fields, then one record per row.
    Csv,
}

impl DeploymentsFormat {
    /// Guesses the format from the content (a first non-blank byte `{` is JSON Lines, a first
    /// line naming `deployment_id` among commas is CSV), then from the extension of `path`
    /// (`.jsonl`, `.ndjson`, `.json`, `.csv`; a trailing `.gz` is ignored).
    pub fn detect(path: &str, bytes: &[u8]) -> Option<DeploymentsFormat> {
        let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
        let body = &body[start..];
        if body.first() == Some(&b'{') {
            return Some(DeploymentsFormat::JsonLines);
        }
        if let Some((_, first)) = lines(body).next() {
            let first = String::from_utf8_lossy(first).to_ascii_lowercase();
            if first.contains(',') && first.contains("deployment_id") {
                return Some(DeploymentsFormat::Csv);
            }
        }
        let lower = path.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        match lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("") {
            "jsonl" | "ndjson" | "json" => Some(DeploymentsFormat::JsonLines),
            "csv" => Some(DeploymentsFormat::Csv),
            _ => None,
        }
    }
}

/// Parses `bytes` (the content of `source`) into a `deployments/` frame (the columns of
/// [`DEPLOYMENTS`] plus the partition key `service`) and the rejected records.
///
/// Fails, naming `source`, only when a CSV header lacks a required column.
pub fn parse_deployments(source: &str, bytes: &[u8], format: DeploymentsFormat) -> Result<(DataFrame, Vec<Reject>)> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut records = Records::default();
    let mut rejects = Vec::new();
    match format {
        DeploymentsFormat::JsonLines => {
            for (n, raw) in lines(bytes) {
                if raw.trim_ascii().is_empty() {
                    continue;
                }
                match json_record(raw) {
                    Ok(r) => records.push(source, r, n, raw, &mut rejects),
                    Err(reason) => rejects.push(Reject::new(source, n, reason, raw)),
                }
            }
        }
        DeploymentsFormat::Csv => parse_csv(source, bytes, &mut records, &mut rejects)?,
    }
    let df = records.into_frame(source)?;
    tracing::debug!(source, ?format, rows = df.height(), rejects = rejects.len(), "parsed deployments");
    Ok((df, rejects))
}

/// One valid deployment.
#[derive(Debug, Clone, PartialEq)]
struct Deployment {
    deployment_id: String,
    service: String,
    version: String,
    from_sha: Option<String>,
    to_sha: String,
    started_at: i64,
    ended_at: Option<i64>,
    outcome: Option<&'static str>,
    steps: Vec<(i64, f64)>,
    /// The other fields, as a JSON object.
    extra: Option<String>,
}

/// The fields of the contract; the others go to `extra`.
const KNOWN: [&str; 9] = ["deployment_id", "service", "version", "from_sha", "to_sha", "started_at", "ended_at", "outcome", "steps"];

/// The other fields as a JSON object (keys sorted), `None` when there are none.
fn extra_of(fields: impl Iterator<Item = (String, Value)>) -> Option<String> {
    let map: serde_json::Map<String, Value> = fields
        .filter(|(k, v)| !KNOWN.contains(&k.as_str()) && !v.is_null() && v.as_str() != Some(""))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    (!map.is_empty()).then(|| Value::Object(map).to_string())
}

/// The deployments read so far, the last of each `deployment_id` kept.
#[derive(Default)]
struct Records {
    /// `(record, line, raw)`; `None` where a later record superseded it.
    rows: Vec<Option<(Deployment, u64, Vec<u8>)>>,
    by_id: HashMap<String, usize>,
}

impl Records {
    fn push(&mut self, source: &str, d: Deployment, line: u64, raw: &[u8], rejects: &mut Vec<Reject>) {
        if let Some(&i) = self.by_id.get(&d.deployment_id)
            && let Some((old, old_line, old_raw)) = self.rows.get_mut(i).and_then(Option::take)
        {
            let reason =
                format!("deployment_id `{}` appears again on line {line}; the last record wins", old.deployment_id);
            rejects.push(Reject::new(source, old_line, reason, &old_raw));
        }
        self.by_id.insert(d.deployment_id.clone(), self.rows.len());
        self.rows.push(Some((d, line, raw.to_vec())));
    }

    fn into_frame(self, source: &str) -> Result<DataFrame> {
        let rows: Vec<(Deployment, u64)> = self.rows.into_iter().flatten().map(|(d, l, _)| (d, l)).collect();
        let n = rows.len();
        let ts = |name: &str, v: Vec<Option<i64>>| {
            Int64Chunked::from_iter_options(name.into(), v.into_iter())
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into_column()
        };
        let str_col = |name: &str, f: &dyn Fn(&Deployment) -> Option<&str>| {
            Column::new(name.into(), rows.iter().map(|(d, _)| f(d)).collect::<Vec<_>>())
        };
        let df = DataFrame::new_infer_height(vec![
            str_col("deployment_id", &|d| Some(&d.deployment_id)),
            str_col("version", &|d| Some(&d.version)),
            str_col("from_sha", &|d| d.from_sha.as_deref()),
            str_col("to_sha", &|d| Some(&d.to_sha)),
            ts("started_at", rows.iter().map(|(d, _)| Some(d.started_at)).collect()),
            ts("ended_at", rows.iter().map(|(d, _)| d.ended_at).collect()),
            str_col("outcome", &|d| d.outcome),
            steps_column(rows.iter().map(|(d, _)| d.steps.as_slice()))?,
            str_col("extra", &|d| d.extra.as_deref()),
            Column::new("source_file".into(), vec![source; n]),
            Column::new(
                "source_line".into(),
                rows.iter().map(|(_, l)| i64::try_from(*l).unwrap_or(i64::MAX)).collect::<Vec<_>>(),
            ),
            str_col("service", &|d| Some(&d.service)),
        ])?;
        Ok(conform(df, &DEPLOYMENTS)?)
    }
}

/// The `steps` column: one list of `{at, weight}` per deployment, typed exactly as
/// [`ColumnType::WeightSteps`].
fn steps_column<'a>(steps: impl ExactSizeIterator<Item = &'a [(i64, f64)]>) -> PolarsResult<Column> {
    let dtype = ColumnType::WeightSteps.dtype();
    let DataType::List(inner) = &dtype else {
        polars_bail!(ComputeError: "steps type is not a list");
    };
    let mut builder = get_list_builder(inner, 0, steps.len(), "steps".into());
    for s in steps {
        let at = Int64Chunked::from_iter_values("at".into(), s.iter().map(|p| p.0))
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_series();
        let weight = Float64Chunked::from_iter_values("weight".into(), s.iter().map(|p| p.1)).into_series();
        let item = StructChunked::from_series("item".into(), s.len(), [at, weight].iter())?.into_series();
        builder.append_series(&item)?;
    }
    Ok(builder.finish().into_series().into_column())
}

// ---------------------------------------------------------------------------------------------
// Validation shared by both formats

const REQUIRED: [&str; 5] = ["deployment_id", "service", "version", "to_sha", "started_at"];

/// Builds a deployment from its text fields (`field(name)`, `None` when absent) and its steps.
fn deployment(
    field: impl Fn(&str) -> Option<String>,
    steps: std::result::Result<Vec<(i64, f64)>, String>,
) -> std::result::Result<Deployment, String> {
    let required = |name: &str| field(name).ok_or_else(|| format!("missing required field `{name}`"));
    let ts = |name: &str, s: String| {
        rfc3339_us(&s)
            .filter(|t| (MIN_TS_US..=MAX_TS_US).contains(t))
            .ok_or_else(|| format!("field `{name}`: `{}` is not an rfc 3339 timestamp", snippet(&s)))
    };
    let deployment_id = required("deployment_id")?;
    let service = required("service")?;
    let version = required("version")?;
    let to_sha = required("to_sha")?;
    let started_at = ts("started_at", required("started_at")?)?;
    let ended_at = field("ended_at").map(|s| ts("ended_at", s)).transpose()?;
    if let Some(end) = ended_at
        && end < started_at
    {
        return Err("field `ended_at`: before `started_at`".into());
    }
    let outcome = field("outcome").map(|s| outcome_of(&s)).transpose()?;
    let steps = steps?;
    Ok(Deployment {
        deployment_id,
        service,
        version,
        from_sha: field("from_sha"),
        to_sha,
        started_at,
        ended_at,
        outcome,
        steps,
        extra: None,
    })
}

/// 0001-01-01T00:00:00Z and the last microsecond of 9999-12-31, in µs since the epoch.
const MIN_TS_US: i64 = -62_135_596_800_000_000;
const MAX_TS_US: i64 = 253_402_300_799_999_999;

fn outcome_of(s: &str) -> std::result::Result<&'static str, String> {
    match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "success" => Ok("success"),
        "rolled_back" => Ok("rolled_back"),
        "failed" => Ok("failed"),
        "aborted" => Ok("aborted"),
        _ => Err(format!(
            "field `outcome`: unknown outcome `{}` (expected success, rolled_back, failed or aborted)",
            snippet(s)
        )),
    }
}

/// One step, checked: `at` RFC 3339, `weight` finite in 0..=100.
fn step(i: usize, at: &str, weight: Option<f64>) -> std::result::Result<(i64, f64), String> {
    let at = rfc3339_us(at.trim())
        .filter(|t| (MIN_TS_US..=MAX_TS_US).contains(t))
        .ok_or_else(|| format!("field `steps[{i}].at`: `{}` is not an rfc 3339 timestamp", snippet(at)))?;
    let weight = weight.ok_or_else(|| format!("field `steps[{i}].weight`: not a number"))?;
    if !(0.0..=100.0).contains(&weight) {
        return Err(format!("field `steps[{i}].weight`: {weight} is outside 0..=100"));
    }
    Ok((at, weight))
}

/// Steps given as a JSON array of `{"at", "weight"}`.
fn json_steps(v: &Value) -> std::result::Result<Vec<(i64, f64)>, String> {
    let items = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        _ => return Err("field `steps`: not an array of {at, weight}".into()),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(o) = item else {
                return Err(format!("field `steps[{i}]`: not an object with `at` and `weight`"));
            };
            let at = o
                .get("at")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("field `steps[{i}].at`: missing or not a string"))?;
            let weight = match o.get("weight") {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            step(i, at, weight)
        })
        .collect()
}

/// Steps in a CSV cell: a JSON array, or `at@weight;at@weight`.
fn cell_steps(cell: &str) -> std::result::Result<Vec<(i64, f64)>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(vec![]);
    }
    if cell.starts_with('[') {
        let v: Value =
            serde_json::from_str(cell).map_err(|e| format!("field `steps`: invalid json: {}", json_reason(&e)))?;
        return json_steps(&v);
    }
    cell.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, part)| {
            let Some((at, weight)) = part.rsplit_once('@') else {
                return Err(format!("field `steps[{i}]`: `{}` is not `at@weight`", snippet(part)));
            };
            step(i, at, weight.trim().parse::<f64>().ok())
        })
        .collect()
}

/// A serde_json error without its "at line 1 column N" suffix, plus the column.
fn json_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match msg.strip_suffix(&suffix) {
        Some(m) => format!("{m} (column {})", e.column()),
        None => msg,
    }
}

/// At most 64 characters of `s`, for messages.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

fn json_record(raw: &[u8]) -> std::result::Result<Deployment, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("invalid json: {}", json_reason(&e)))?;
    let Value::Object(obj) = v else {
        return Err("not a json object".into());
    };
    let obj: HashMap<String, Value> = obj.into_iter().map(|(k, v)| (k.trim().to_ascii_lowercase(), v)).collect();
    for name in ["deployment_id", "service", "version", "from_sha", "to_sha", "started_at", "ended_at", "outcome"] {
        match obj.get(name) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(Value::Number(_)) if matches!(name, "deployment_id" | "version") => {}
            Some(_) => return Err(format!("field `{name}`: not a string")),
        }
    }
    let field = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let steps = json_steps(obj.get("steps").unwrap_or(&Value::Null));
    let mut d = deployment(field, steps)?;
    d.extra = extra_of(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// CSV

fn parse_csv(source: &str, bytes: &[u8], records: &mut Records, rejects: &mut Vec<Reject>) -> Result<()> {
    let mut header: Option<Vec<String>> = None;
    for CsvRecord { line, raw, fields: rec } in csv_records(source, bytes, rejects) {
        let Some(names) = &header else {
            let names: Vec<String> =
                rec.iter().map(|f| String::from_utf8_lossy(f).trim().to_ascii_lowercase()).collect();
            if let Some(missing) = REQUIRED.iter().find(|r| !names.iter().any(|n| n == *r)) {
                return Err(Error::Line {
                    path: source.to_string(),
                    line,
                    message: format!("csv header has no `{missing}` column"),
                });
            }
            header = Some(names);
            continue;
        };
        match csv_record(&rec, names) {
            Ok(d) => records.push(source, d, line, raw, rejects),
            Err(reason) => rejects.push(Reject::new(source, line, reason, raw)),
        }
    }
    Ok(())
}

fn csv_record(rec: &csv::ByteRecord, names: &[String]) -> std::result::Result<Deployment, String> {
    if rec.len() != names.len() {
        return Err(format!("record has {} fields, the header has {}", rec.len(), names.len()));
    }
    let mut cells: HashMap<&str, &str> = HashMap::new();
    for (field, name) in rec.iter().zip(names) {
        let cell = std::str::from_utf8(field).map_err(|_| format!("field `{name}`: not valid utf-8"))?.trim();
        // The first column of a name wins, as with the other fields.
        cells.entry(name.as_str()).or_insert(cell);
    }
    let field = |name: &str| cells.get(name).filter(|c| !c.is_empty()).map(|c| c.to_string());
    let steps = cell_steps(cells.get("steps").copied().unwrap_or(""));
    let mut d = deployment(field, steps)?;
    d.extra = extra_of(cells.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))));
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_json_steps_agree() {
        let compact = cell_steps("2024-05-01T10:00:00Z@10; 2024-05-01T12:05:00+02:00@50").unwrap();
        let json =
            cell_steps(r#"[{"at":"2024-05-01T10:00:00Z","weight":10},{"at":"2024-05-01T10:05:00Z","weight":"50"}]"#)
                .unwrap();
        assert_eq!(compact, json);
        assert_eq!(compact[1], (1_714_557_900_000_000, 50.0));
        assert_eq!(cell_steps(" ").unwrap(), vec![]);
    }

    #[test]
    fn step_errors_name_the_field() {
        assert_eq!(
            cell_steps("2024-05-01T10:00:00Z@150").unwrap_err(),
            "field `steps[0].weight`: 150 is outside 0..=100"
        );
        assert_eq!(
            cell_steps("2024-05-01T10:00:00Z@5;noon@10").unwrap_err(),
            "field `steps[1].at`: `noon` is not an rfc 3339 timestamp"
        );
        assert_eq!(cell_steps("10").unwrap_err(), "field `steps[0]`: `10` is not `at@weight`");
        assert!(cell_steps("[1,").unwrap_err().starts_with("field `steps`: invalid json"));
    }

    #[test]
    fn other_fields_are_kept_in_extra() {
        let line = br#"{"deployment_id":"d1","service":"s","version":"1","to_sha":"a","started_at":"2024-05-01T10:00:00Z","failure_mode":"memory_leak","p_failure":0.25,"bait":null,"note":""}"#;
        let d = json_record(line).unwrap();
        assert_eq!(d.extra.as_deref(), Some(r#"{"failure_mode":"memory_leak","p_failure":0.25}"#));
        let names: Vec<String> = ["deployment_id", "service", "version", "to_sha", "started_at", "failure_mode"].map(String::from).to_vec();
        let rec = csv::ByteRecord::from(vec!["d1", "s", "1", "a", "2024-05-01T10:00:00Z", "latency_shift"]);
        assert_eq!(csv_record(&rec, &names).unwrap().extra.as_deref(), Some(r#"{"failure_mode":"latency_shift"}"#));
        let plain = br#"{"deployment_id":"d1","service":"s","version":"1","to_sha":"a","started_at":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(json_record(plain).unwrap().extra, None);
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome_of("Rolled-Back"), Ok("rolled_back"));
        assert!(outcome_of("ok").unwrap_err().contains("unknown outcome `ok`"));
    }

    #[test]
    fn detect() {
        assert_eq!(DeploymentsFormat::detect("x", b"\n{\"a\":1}"), Some(DeploymentsFormat::JsonLines));
        assert_eq!(DeploymentsFormat::detect("x", b"deployment_id,service\n"), Some(DeploymentsFormat::Csv));
        assert_eq!(DeploymentsFormat::detect("d.ndjson.gz", b""), Some(DeploymentsFormat::JsonLines));
        assert_eq!(DeploymentsFormat::detect("d.txt", b"hello"), None);
    }
}
