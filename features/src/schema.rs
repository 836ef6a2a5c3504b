//! The datasets omen writes, written down once: name, partition keys, and every column with its
//! type and meaning. `docs/schemas.md` is generated from these tables and a test reads the
//! Parquet back with an independent reader (pyarrow) to check names and types against them.

use polars::prelude::{DataType, Field, PlSmallStr, Schema, TimeUnit, TimeZone};

/// Logical column types, each with one Polars type and the type pyarrow reports when it reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Microseconds since the epoch, UTC.
    Timestamp,
    String,
    Int64,
    Int32,
    Float64,
    Boolean,
    Binary,
    /// Canary steps: a list of `{at: timestamp, weight: f64}`.
    WeightSteps,
}

impl ColumnType {
    /// The Polars data type of the column.
    pub fn dtype(self) -> DataType {
        match self {
            ColumnType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
            ColumnType::String => DataType::String,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Binary => DataType::Binary,
            ColumnType::WeightSteps => DataType::List(Box::new(DataType::Struct(vec![
                Field::new("at".into(), ColumnType::Timestamp.dtype()),
                Field::new("weight".into(), DataType::Float64),
            ]))),
        }
    }

    /// How pyarrow (21) prints the type it reads from our Parquet (`str(field.type)`). Polars
    /// stores its Arrow schema in the file, so pyarrow reads strings as `string_view`; pandas,
    /// Polars and DuckDB read them as ordinary strings.
    pub fn arrow_name(self) -> &'static str {
        match self {
            ColumnType::Timestamp => "timestamp[us, tz=UTC]",
            ColumnType::String => "string_view",
            ColumnType::Int64 => "int64",
            ColumnType::Int32 => "int32",
            ColumnType::Float64 => "double",
            ColumnType::Boolean => "bool",
            ColumnType::Binary => "binary_view",
            ColumnType::WeightSteps => {
                "large_list<element: struct<at: timestamp[us, tz=UTC], weight: double>>"
            }
        }
    }
}

/// One column of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn col(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column { name, ty, nullable: false, doc }
}
const fn opt(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column { name, ty, nullable: true, doc }
}

/// A dataset: a folder of Parquet under the store root.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSchema {
    /// Folder name under the store root.
    pub name: &'static str,
    /// Hive partition keys, outermost first. They live in the path (`service=api/`), not in the
    /// files; readers with hive partitioning see them as string columns.
    pub partition_by: &'static [&'static str],
    /// Columns stored in the files.
    pub columns: &'static [Column],
    pub doc: &'static str,
}

impl DatasetSchema {
    /// The Polars schema of the columns stored in the files (partition keys excluded).
    pub fn polars_schema(&self) -> Schema {
        self.columns
            .iter()
            .map(|c| Field::new(PlSmallStr::from_static(c.name), c.ty.dtype()))
            .collect()
    }

    /// The column called `name`, if the dataset has one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Every dataset omen writes at ingest, and `anomalies/` (`omen detect`).
    pub fn all() -> &'static [&'static DatasetSchema] {
        static ALL: [&DatasetSchema; 7] = [&REQUESTS, &COMMITS, &COMMIT_FILES, &METRICS, &DEPLOYMENTS, &ANOMALIES, &REJECTS];
        &ALL
    }

    /// The schema called `name` (its folder name).
    pub fn by_name(name: &str) -> Option<&'static DatasetSchema> {
        Self::all().iter().copied().find(|d| d.name == name)
    }

    /// A Markdown table of the dataset, for `docs/schemas.md`.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("## `{}/`\n\n{}\n\n", self.name, self.doc);
        if !self.partition_by.is_empty() {
            let keys: Vec<String> = self.partition_by.iter().map(|k| format!("`{k}=…`")).collect();
            out.push_str(&format!("Partitioned as {}/ (string keys in the path).\n\n", keys.join("/")));
        }
        out.push_str("| column | type (pyarrow) | null | meaning |\n|---|---|---|---|\n");
        for c in self.columns {
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                c.name,
                c.ty.arrow_name(),
                if c.nullable { "yes" } else { "no" },
                c.doc
            ));
        }
        out
    }
}

use ColumnType::{Boolean, Float64, Int32, Int64, Timestamp, WeightSteps};
use ColumnType::String as Str;

pub static REQUESTS: DatasetSchema = DatasetSchema {
    name: "requests",
    partition_by: &["service", "date"],
    doc: "One row per access-log request. `date` is the UTC day of `ts`.",
    columns: &[
        col("ts", Timestamp, "request time, converted to UTC from the log's offset"),
        col("method", Str, "HTTP method as logged (`GET`, `POST`, …); `-` when the request line has none"),
        col("path", Str, "request path, query string removed"),
        col("route", Str, "templated path: ids, UUIDs, hex hashes, emails and tokens become `{id}`, `{uuid}`, `{hash}`, `{email}`, `{token}`"),
        opt("query_keys", Str, "the query string's parameter names, sorted and `&`-joined, values dropped; null without a query"),
        opt("protocol", Str, "`HTTP/1.1`, `HTTP/2.0`, …; null when the request line has none"),
        col("status", Int32, "HTTP status code"),
        opt("bytes", Int64, "response body size; null for `-`"),
        opt("latency_ms", Float64, "request time in milliseconds (Apache `%D` µs or nginx `$request_time` s); null when the log has none"),
        col("client", Str, "keyed BLAKE3 hash of the client address (16 hex digits); the key lives in the store at `_meta/mask.key`"),
        opt("referer", Str, "referer with its query string removed; null for `-`"),
        opt("user_agent", Str, "user agent as logged; null for `-`"),
        col("ua_class", Str, "`browser`, `bot`, `mobile`, `tool` or `other`"),
        col("source_file", Str, "the file the line came from, as given on the command line"),
        col("source_line", Int64, "1-based line number in the (decompressed) file"),
    ],
};

pub static COMMITS: DatasetSchema = DatasetSchema {
    name: "commits",
    partition_by: &["service"],
    doc: "One row per commit, with the change metrics of Kamei et al. (TSE 2013) computed from \
          history up to and including that commit only. See `docs/kamei.md` for each definition.",
    columns: &[
        col("sha", Str, "full commit id"),
        col("ts", Timestamp, "author time, UTC"),
        col("committed_at", Timestamp, "committer time, UTC"),
        col("author", Str, "keyed hash of the author e-mail (16 hex digits)"),
        col("message", Str, "commit message, e-mail addresses masked"),
        col("parents", Int32, "number of parents (2 or more for a merge; merges are diffed against their first parent)"),
        col("parent_shas", Str, "the parent commit ids, space-separated, first parent first; empty for a root commit"),
        col("ns", Int64, "NS: number of modified subsystems (top-level directories)"),
        col("nd", Int64, "ND: number of modified directories"),
        col("nf", Int64, "NF: number of modified files"),
        col("entropy", Float64, "Entropy: distribution of modified lines across files (Shannon, base 2, normalised by log2 NF)"),
        col("la", Int64, "LA: lines added (binary files count 0)"),
        col("ld", Int64, "LD: lines deleted"),
        col("lt", Float64, "LT: mean lines of code in the touched files before the change"),
        col("fix", Boolean, "FIX: the message says the commit fixes a defect"),
        col("ndev", Int64, "NDEV: distinct developers who changed the touched files before"),
        col("age", Float64, "AGE: mean days since the touched files were last changed"),
        col("nuc", Int64, "NUC: number of unique earlier changes to the touched files"),
        col("exp", Float64, "EXP: the author's earlier commits"),
        col("rexp", Float64, "REXP: the author's earlier commits, each weighted 1/(1 + whole years ago)"),
        col("sexp", Float64, "SEXP: the author's earlier commits to the subsystems touched"),
    ],
};

pub static COMMIT_FILES: DatasetSchema = DatasetSchema {
    name: "commit_files",
    partition_by: &["service"],
    doc: "One row per file touched by a commit (merges: against the first parent).",
    columns: &[
        col("sha", Str, "commit id"),
        col("path", Str, "path after the change"),
        opt("old_path", Str, "path before a rename or copy; null otherwise"),
        col("lines_added", Int64, "lines added, as `git show --numstat` prints (0 for binary files)"),
        col("lines_deleted", Int64, "lines deleted (0 for binary files)"),
        col("change_kind", Str, "`added`, `modified`, `deleted` or `renamed`"),
        col("is_binary", Boolean, "git reports the file as binary"),
    ],
};

pub static METRICS: DatasetSchema = DatasetSchema {
    name: "metrics",
    partition_by: &["service", "date"],
    doc: "One row per metric sample. NaN and ±Inf are kept as values (a range query has no point \
          where a series was stale, and the text formats cannot carry a stale marker, so none reaches \
          the rows). `service` falls back to `--service`, then `unknown`, when no label names it.",
    columns: &[
        col("ts", Timestamp, "sample time, UTC"),
        col("metric", Str, "metric name (`__name__`)"),
        col("labels", Str, "every label but `__name__`, sorted by name, `k=v` joined by `,`; `\\`, `,` and `=` in values are escaped with `\\`"),
        col("value", Float64, "sample value; NaN and ±Inf kept"),
        opt("deployment", Str, "deployment id from the `deployment` label or an alias"),
        opt("role", Str, "`canary`, `baseline`, `primary`, `loadtest` (the new version under synthetic load at the full-traffic rate), or null"),
        col("source_file", Str, "file, or `prometheus:<url>` for a live pull"),
        col("source_line", Int64, "line of the text formats (CSV header is line 1); 1-based series number for query_range JSON"),
    ],
};

pub static DEPLOYMENTS: DatasetSchema = DatasetSchema {
    name: "deployments",
    partition_by: &["service"],
    doc: "One row per deployment. A later ingest of the same `deployment_id` replaces the row.",
    columns: &[
        col("deployment_id", Str, "unique id"),
        col("version", Str, "version deployed"),
        opt("from_sha", Str, "commit running before"),
        col("to_sha", Str, "commit being deployed"),
        col("started_at", Timestamp, "canary start"),
        opt("ended_at", Timestamp, "end of the rollout; null while running"),
        opt("outcome", Str, "`success`, `rolled_back`, `failed`, `aborted`; null while running"),
        col("steps", WeightSteps, "traffic steps `{at, weight}` (weight in percent)"),
        opt("extra", Str, "the record's other fields as a JSON object, keys sorted (the simulator's `failure_mode`, `p_failure`, `bait`, …); null when none"),
        col("source_file", Str, "the file the record came from"),
        col("source_line", Int64, "line (JSON Lines) or record (CSV, header is line 1) number"),
    ],
};

pub static ANOMALIES: DatasetSchema = DatasetSchema {
    name: "anomalies",
    partition_by: &["service", "date"],
    doc: "One row per alarm of `omen detect`: a run of steps of one series (service, metric, label \
          set) scoring at or above the threshold. `<detector>[-v<model version>].parquet` in each \
          partition holds one detector's alarms; a rerun replaces the rows of the series and time it \
          scanned.",
    columns: &[
        col("ts", Timestamp, "start of the first alarmed step, UTC"),
        col("end_ts", Timestamp, "end of the last alarmed step"),
        col("peak_ts", Timestamp, "start of the highest-scoring step"),
        col("metric", Str, "metric name"),
        col("labels", Str, "the series' labels, as in `metrics/`"),
        col("score", Float64, "the highest step score of the alarm (a z-score-like standardised residual)"),
        col("threshold", Float64, "the threshold the run alarmed at"),
        col("steps", Int64, "steps at or above the threshold"),
        col("detector", Str, "`lstm` (the omen-sequence series forecaster), `zscore` or `ewma`"),
        opt("model_version", Int64, "the omen-sequence version for `lstm`; null for the baselines"),
    ],
};

/// Rejects of dataset `d` are written under `_rejects/d/`, one file per source.
pub static REJECTS: DatasetSchema = DatasetSchema {
    name: "_rejects",
    partition_by: &[],
    doc: "Every input line or record that did not become a row, with where it came from and why. \
          Client addresses and e-mails in `raw` are masked like the rows are.",
    columns: &[
        col("source_file", Str, "input file or source"),
        col("source_line", Int64, "1-based line (or record) number; 0 when the whole source is at fault"),
        col("reason", Str, "why it was rejected"),
        col("raw", Str, "the line, invalid UTF-8 replaced by U+FFFD, PII masked"),
        col("raw_len", Int64, "length of the original line in bytes"),
    ],
};
