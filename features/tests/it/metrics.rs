//! Metrics and deployments ingest: worked examples of each format with the quirks real files
//! have, rejects with their reasons and lines, and properties over arbitrary input.

use omen_features::ingest::Reject;
use omen_features::ingest::deployments::{DeploymentsFormat, parse_deployments};
use omen_features::ingest::metrics::{MetricsFormat, MetricsOptions, parse_metrics};
use omen_features::schema::{DEPLOYMENTS, METRICS};
use polars::prelude::*;
use proptest::prelude::*;

/// One line per row: every column, `|`-separated, as Polars prints the values.
fn table(df: &DataFrame) -> String {
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let mut out = names.join(" | ");
    for i in 0..df.height() {
        let row: Vec<String> = df.columns().iter().map(|c| fmt_value(&c.get(i).unwrap())).collect();
        out.push('\n');
        out.push_str(&row.join(" | "));
    }
    out
}

fn fmt_value(v: &AnyValue<'_>) -> String {
    match v {
        AnyValue::Null => "null".into(),
        AnyValue::String(s) => format!("{s:?}"),
        AnyValue::StringOwned(s) => format!("{:?}", s.as_str()),
        // Polars' own Display of a zoned datetime needs its `timezones` feature.
        AnyValue::Datetime(us, TimeUnit::Microseconds, _) | AnyValue::DatetimeOwned(us, TimeUnit::Microseconds, _) => {
            chrono::DateTime::from_timestamp_micros(*us).map_or_else(|| format!("{us}µs"), |t| t.to_rfc3339())
        }
        other => other.to_string(),
    }
}

fn rejects(rs: &[Reject]) -> Vec<(u64, String)> {
    rs.iter().map(|r| (r.source_line, r.reason.clone())).collect()
}

fn metrics(bytes: &str, format: MetricsFormat) -> (DataFrame, Vec<Reject>) {
    parse_metrics("in", bytes.as_bytes(), format, &MetricsOptions::default()).unwrap()
}

fn strs(df: &DataFrame, col: &str) -> Vec<Option<String>> {
    df.column(col).unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect()
}

fn floats(df: &DataFrame, col: &str) -> Vec<f64> {
    df.column(col).unwrap().f64().unwrap().into_no_null_iter().collect()
}

fn micros(df: &DataFrame, col: &str) -> Vec<Option<i64>> {
    df.column(col).unwrap().datetime().unwrap().physical().iter().collect()
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

fn assert_metrics_schema(df: &DataFrame) {
    let mut expected: Vec<(String, DataType)> =
        METRICS.columns.iter().map(|c| (c.name.to_string(), c.ty.dtype())).collect();
    expected.push(("service".into(), DataType::String));
    expected.push(("date".into(), DataType::String));
    let got: Vec<(String, DataType)> = df.columns().iter().map(|c| (c.name().to_string(), c.dtype().clone())).collect();
    assert_eq!(got, expected);
}

// -----------------------------------------------------------------------------------------------
// Prometheus query_range JSON

const QUERY_RANGE: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"__name__":"http_request_duration_seconds","app":"checkout","track":"canary","rollouts_pod_template_hash":"6d4f8","le":"0.5"},
  "values":[[1700000000.123,"0.5"],[1700000015,"NaN"],[1700000030,"+Inf"],[1700000045,"-Inf"]]},
 {"metric":{"__name__":"up","service":"cart","app":"ignored","role":"Stable","path":"/a,b=c"},
  "values":[[1700086400,"1"],[1700086415,"zero"]]},
 {"metric":{"job":"api"},"values":[[1700000000,"3"]]}
]}}"#;

#[test]
fn query_range_matrix_keeps_special_values_and_fills_columns_from_aliases() {
    let (df, rej) = metrics(QUERY_RANGE, MetricsFormat::PromQueryRange);
    assert_metrics_schema(&df);
    assert_eq!(df.height(), 5);
    let v = floats(&df, "value");
    assert_eq!(v[0], 0.5);
    assert!(v[1].is_nan());
    assert_eq!(&v[2..], &[f64::INFINITY, f64::NEG_INFINITY, 1.0]);
    assert_eq!(micros(&df, "ts")[0], Some(1_700_000_000_123_000));
    assert_eq!(strs(&df, "service"), some(&["checkout", "checkout", "checkout", "checkout", "cart"]));
    assert_eq!(strs(&df, "role")[0].as_deref(), Some("canary"));
    assert_eq!(strs(&df, "role")[4].as_deref(), Some("primary"));
    assert_eq!(strs(&df, "deployment")[0].as_deref(), Some("6d4f8"));
    assert_eq!(strs(&df, "deployment")[4], None);
    assert_eq!(
        strs(&df, "labels")[0].as_deref(),
        Some("app=checkout,le=0.5,rollouts_pod_template_hash=6d4f8,track=canary")
    );
    assert_eq!(strs(&df, "labels")[4].as_deref(), Some(r"app=ignored,path=/a\,b\=c,role=Stable,service=cart"));
    assert_eq!(strs(&df, "date")[4].as_deref(), Some("2023-11-15"));
    // source_line is the series number.
    let lines: Vec<i64> = df.column("source_line").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(lines, vec![1, 1, 1, 1, 2]);
    assert_eq!(
        rejects(&rej),
        vec![
            (2, "series 2: point 2: value `zero` is not a number".to_string()),
            (3, "series 3: series has no __name__ label; pass a metric name".to_string()),
        ]
    );
    assert_eq!(rej[0].raw, br#"[1700086415,"zero"]"#);
}

#[test]
fn query_range_series_without_name_takes_the_given_metric_name() {
    let opts = MetricsOptions {
        metric_name: Some("job:rate5m".into()),
        default_service: Some("fallback".into()),
        ..Default::default()
    };
    let (df, rej) = parse_metrics("in", QUERY_RANGE.as_bytes(), MetricsFormat::PromQueryRange, &opts).unwrap();
    assert_eq!(rej.len(), 1);
    assert_eq!(strs(&df, "metric")[5].as_deref(), Some("job:rate5m"));
    assert_eq!(strs(&df, "service")[5].as_deref(), Some("fallback"));
}

#[test]
fn query_range_vector_and_concatenated_responses() {
    let doc = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up"},"value":[1700000000,"1"]}]}}
{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up"},"values":[[1700000060,"0"]]}]}}"#;
    let (df, rej) = metrics(doc, MetricsFormat::PromQueryRange);
    assert!(rej.is_empty());
    assert_eq!(floats(&df, "value"), vec![1.0, 0.0]);
    let lines: Vec<i64> = df.column("source_line").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(lines, vec![1, 2]);
    assert_eq!(strs(&df, "service"), some(&["unknown", "unknown"]));
}

#[test]
fn query_range_error_response_fails_with_prometheus_message() {
    let doc = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error"}"#;
    let err = parse_metrics("q.json", doc.as_bytes(), MetricsFormat::PromQueryRange, &MetricsOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, r#"q.json: prometheus returned an error (bad_data): invalid parameter "query": 1:1: parse error"#);
    let err = parse_metrics("q.json", b"{\"status\":", MetricsFormat::PromQueryRange, &MetricsOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("json q.json: "), "{err}");
    let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
    let err = parse_metrics("q.json", scalar.as_bytes(), MetricsFormat::PromQueryRange, &MetricsOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "q.json: resultType `scalar` is not supported (expected matrix or vector)");
}

// -----------------------------------------------------------------------------------------------
// Text exposition

const PROMETHEUS_TEXT: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200",app="api"} 1027 1700000000000
http_requests_total{method="post",code="400",app="api"}    3 1700000000000

# A user agent with quotes: escaped
ua_requests{ua="curl \"7.1\" \\ok",track="baseline",deployment="d-42"} 1.5e3 1700000000000
rpc_duration_seconds{quantile="0.99"} NaN 1700000000000
rpc_duration_seconds_bucket{le="+Inf"} +Inf 1700000000000
temperature -Inf 1700000000000
no_timestamp 1
broken{method="post} 1 1700000000000
bad_value{a="b"} abc 1700000000000
"#;

#[test]
fn prometheus_text_with_millisecond_timestamps() {
    let (df, rej) = metrics(PROMETHEUS_TEXT, MetricsFormat::Exposition);
    assert_metrics_schema(&df);
    assert_eq!(df.height(), 6);
    assert_eq!(micros(&df, "ts")[0], Some(1_700_000_000_000_000));
    assert_eq!(strs(&df, "labels")[0].as_deref(), Some("app=api,code=200,method=post"));
    assert_eq!(strs(&df, "labels")[2].as_deref(), Some(r#"deployment=d-42,track=baseline,ua=curl "7.1" \\ok"#));
    assert_eq!(strs(&df, "role")[2].as_deref(), Some("baseline"));
    assert_eq!(strs(&df, "deployment")[2].as_deref(), Some("d-42"));
    let v = floats(&df, "value");
    assert_eq!(v[..3], [1027.0, 3.0, 1500.0]);
    assert!(v[3].is_nan());
    assert_eq!(v[4..], [f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(
        rejects(&rej),
        vec![
            (11, "sample has no timestamp".to_string()),
            (12, "unterminated label value of `method`".to_string()),
            (13, "value `abc` is not a number".to_string()),
        ]
    );
    assert_eq!(rej[1].raw, br#"broken{method="post} 1 1700000000000"#);
}

#[test]
fn openmetrics_with_eof_reads_timestamps_as_seconds() {
    let text = "# TYPE acme_http_router_request_seconds summary\n\
                # UNIT acme_http_router_request_seconds seconds\n\
                acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32 1700000000.25\n\
                acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0 1700000000 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                # EOF\n";
    let (df, rej) = metrics(text, MetricsFormat::Exposition);
    assert!(rej.is_empty(), "{rej:?}");
    assert_eq!(micros(&df, "ts"), vec![Some(1_700_000_000_250_000), Some(1_700_000_000_000_000)]);
    assert_eq!(floats(&df, "value"), vec![9036.32, 807283.0]);
}

#[test]
fn exposition_default_timestamp_and_default_service() {
    let opts = MetricsOptions {
        default_ts: Some(1_700_000_000_000),
        default_service: Some("web".into()),
        ..Default::default()
    };
    let (df, rej) = parse_metrics("in", b"up 1\nup{service=\"db\"} 0\n", MetricsFormat::Exposition, &opts).unwrap();
    assert!(rej.is_empty());
    assert_eq!(strs(&df, "service"), some(&["web", "db"]));
    assert_eq!(micros(&df, "ts"), vec![Some(1_700_000_000_000_000); 2]);
}

#[test]
fn small_exposition_frame_snapshot() {
    let text = "up{app=\"shop\",track=\"canary\",pod=\"a\"} 1 1700000000000\n\
                latency_seconds{app=\"shop\",track=\"stable\",quantile=\"0.5\"} 0.25 1700000015000\n\
                latency_seconds{app=\"shop\",le=\"x,y\"} NaN 1700086400000\n";
    let (df, rej) = metrics(text, MetricsFormat::Exposition);
    assert!(rej.is_empty());
    insta::assert_snapshot!(table(&df));
}

// -----------------------------------------------------------------------------------------------
// Long CSV

const LONG_CSV: &str = "ts,service,metric,value,pod,role,deployment\n\
2023-11-14T23:13:20+01:00,checkout,latency_p99,0.25,pod-1,canary,dep-7\n\
1700000000,checkout,latency_p99,NaN,pod-2,baseline,dep-7\n\
1700000000500,,errors,+Inf,,,\n\
\"2023-11-14T22:13:20.5Z\",\"cart, eu\",errors,-Inf,pod=3,primary,\n\
not-a-time,checkout,latency_p99,1,,,\n\
2023-11-14T22:13:20Z,checkout,latency_p99,one,,,\n\
2023-11-14T22:13:20Z,checkout,latency_p99\n\
2023-11-14T22:13:20Z,checkout,,1,,,\n";

#[test]
fn long_csv_with_label_columns_and_offsets() {
    let (df, rej) = metrics(LONG_CSV, MetricsFormat::Csv);
    assert_metrics_schema(&df);
    assert_eq!(df.height(), 4);
    assert_eq!(
        micros(&df, "ts"),
        vec![
            Some(1_700_000_000_000_000),
            Some(1_700_000_000_000_000),
            Some(1_700_000_000_500_000),
            Some(1_700_000_000_500_000),
        ]
    );
    assert_eq!(strs(&df, "service"), some(&["checkout", "checkout", "unknown", "cart, eu"]));
    assert_eq!(strs(&df, "role"), vec![Some("canary".into()), Some("baseline".into()), None, Some("primary".into())]);
    assert_eq!(strs(&df, "deployment"), vec![Some("dep-7".into()), Some("dep-7".into()), None, None]);
    assert_eq!(strs(&df, "labels")[0].as_deref(), Some("deployment=dep-7,pod=pod-1,role=canary,service=checkout"));
    assert_eq!(strs(&df, "labels")[2].as_deref(), Some(""));
    assert_eq!(strs(&df, "labels")[3].as_deref(), Some(r"pod=pod\=3,role=primary,service=cart\, eu"));
    let v = floats(&df, "value");
    assert!(v[1].is_nan());
    assert_eq!([v[0], v[2], v[3]], [0.25, f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(
        rejects(&rej),
        vec![
            (6, "timestamp `not-a-time` is neither rfc 3339 nor unix seconds or milliseconds".to_string()),
            (7, "value `one` is not a number".to_string()),
            (8, "record has 3 fields, the header has 7".to_string()),
            (9, "field `metric` is empty".to_string()),
        ]
    );
    assert_eq!(rej[2].raw, b"2023-11-14T22:13:20Z,checkout,latency_p99");
}

#[test]
fn csv_header_without_required_columns_fails_naming_the_line() {
    let err = parse_metrics("m.csv", b"time,name\n1,2\n", MetricsFormat::Csv, &MetricsOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "m.csv:1: csv header needs `ts`, `metric` and `value` columns (plus label columns)");
}

#[test]
fn detection_of_metrics_formats() {
    assert_eq!(MetricsFormat::detect("a", QUERY_RANGE.as_bytes()), Some(MetricsFormat::PromQueryRange));
    assert_eq!(MetricsFormat::detect("a", PROMETHEUS_TEXT.as_bytes()), Some(MetricsFormat::Exposition));
    assert_eq!(MetricsFormat::detect("a.txt", LONG_CSV.as_bytes()), Some(MetricsFormat::Csv));
    assert_eq!(MetricsFormat::detect("a", b""), None);
}

#[test]
fn empty_inputs_give_empty_frames_with_the_schema() {
    for format in [MetricsFormat::PromQueryRange, MetricsFormat::Exposition, MetricsFormat::Csv] {
        let (df, rej) = metrics("", format);
        assert_eq!((df.height(), rej.len()), (0, 0));
        assert_metrics_schema(&df);
    }
}

// -----------------------------------------------------------------------------------------------
// Properties

const VALID_LINES: &[&str] = &[
    "# HELP x_total A counter.",
    "# TYPE x_total counter",
    "x_total{a=\"b\",c=\"d\\\"q\"} 1.5 1700000000000",
    "x_total 2 1700000000000",
    "y{le=\"+Inf\"} +Inf 1700000000123",
    "z{app=\"shop\",track=\"canary\"} NaN -1",
    "{\"dotted.name\",\"k.v\"=\"w\"} -Inf 1700000000000",
    "",
];

fn mutate(line: &str, op: u8, pos: usize, byte: u8) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    let i = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
    match op % 4 {
        0 => b,
        1 => {
            b.insert(i, byte);
            b
        }
        2 => {
            if i < b.len() {
                b.remove(i);
            }
            b
        }
        _ => {
            b.truncate(i);
            b
        }
    }
}

fn sample_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).trim_ascii())
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for format in [MetricsFormat::PromQueryRange, MetricsFormat::Exposition, MetricsFormat::Csv] {
            let _ = parse_metrics("p", &bytes, format, &MetricsOptions::default());
        }
        for format in [DeploymentsFormat::JsonLines, DeploymentsFormat::Csv] {
            let _ = parse_deployments("p", &bytes, format);
        }
        let _ = MetricsFormat::detect("p", &bytes);
        let _ = DeploymentsFormat::detect("p", &bytes);
    }

    #[test]
    fn mutated_exposition_lines_each_become_a_row_or_a_reject(
        picks in proptest::collection::vec((0..VALID_LINES.len(), any::<u8>(), any::<usize>(), any::<u8>()), 0..24),
    ) {
        let mut bytes = Vec::new();
        for (k, op, pos, byte) in picks {
            bytes.extend(mutate(VALID_LINES[k], op, pos, byte));
            bytes.push(b'\n');
        }
        let (df, rej) = parse_metrics("p", &bytes, MetricsFormat::Exposition, &MetricsOptions::default()).unwrap();
        prop_assert_eq!(df.height() + rej.len(), sample_lines(&bytes));
        // The same lines as long CSV or JSON: no panic.
        let _ = parse_metrics("p", &bytes, MetricsFormat::Csv, &MetricsOptions::default());
        let _ = parse_metrics("p", &bytes, MetricsFormat::PromQueryRange, &MetricsOptions::default());
    }

    #[test]
    fn mutated_query_range_json_never_panics(op in any::<u8>(), pos in any::<usize>(), byte in any::<u8>()) {
        let bytes = mutate(QUERY_RANGE, op, pos, byte);
        let _ = parse_metrics("p", &bytes, MetricsFormat::PromQueryRange, &MetricsOptions::default());
    }

    #[test]
    fn mutated_csv_never_panics(op in any::<u8>(), pos in any::<usize>(), byte in any::<u8>()) {
        let bytes = mutate(LONG_CSV, op, pos, byte);
        let _ = parse_metrics("p", &bytes, MetricsFormat::Csv, &MetricsOptions::default());
    }

    #[test]
    fn mutated_deployment_lines_each_become_a_row_or_a_reject(
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = Vec::new();
        let base: Vec<&str> = DEPLOYMENTS_JSONL.lines().collect();
        for (i, (op, pos, byte)) in ops.into_iter().enumerate() {
            bytes.extend(mutate(base[i % base.len()], op, pos, byte));
            bytes.push(b'\n');
        }
        let (df, rej) = parse_deployments("p", &bytes, DeploymentsFormat::JsonLines).unwrap();
        let records = bytes.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).count();
        prop_assert_eq!(df.height() + rej.len(), records);
    }
}

// -----------------------------------------------------------------------------------------------
// Deployments

const DEPLOYMENTS_JSONL: &str = r#"{"deployment_id":"d1","service":"checkout","version":"1.4.0","from_sha":"aaa111","to_sha":"bbb222","started_at":"2024-05-01T12:00:00+02:00","ended_at":"2024-05-01T10:30:00Z","outcome":"success","steps":[{"at":"2024-05-01T10:00:00Z","weight":10},{"at":"2024-05-01T10:10:00Z","weight":50},{"at":"2024-05-01T10:20:00Z","weight":100}]}
{"deployment_id":"d2","service":"cart","version":7,"to_sha":"ccc333","started_at":"2024-05-02T08:00:00Z","steps":[]}

{"deployment_id":"d3","service":"cart","version":"2","to_sha":"ddd444","started_at":"2024-05-03T08:00:00Z","ended_at":"2024-05-03T08:05:00.5Z","outcome":"Rolled-Back","steps":[{"at":"2024-05-03T08:00:00Z","weight":5.5}]}
"#;

const DEPLOYMENTS_CSV: &str = "deployment_id,service,version,from_sha,to_sha,started_at,ended_at,outcome,steps,extra\n\
d1,checkout,1.4.0,aaa111,bbb222,2024-05-01T12:00:00+02:00,2024-05-01T10:30:00Z,success,2024-05-01T10:00:00Z@10;2024-05-01T10:10:00Z@50;2024-05-01T10:20:00Z@100,x\n\
d2,cart,7,,ccc333,2024-05-02T08:00:00Z,,,,\n\
d3,cart,2,,ddd444,2024-05-03T08:00:00Z,2024-05-03T08:05:00.5Z,rolled_back,\"[{\"\"at\"\":\"\"2024-05-03T08:00:00Z\"\",\"\"weight\"\":5.5}]\",\n";

fn assert_deployments_schema(df: &DataFrame) {
    let mut expected: Vec<(String, DataType)> =
        DEPLOYMENTS.columns.iter().map(|c| (c.name.to_string(), c.ty.dtype())).collect();
    expected.push(("service".into(), DataType::String));
    let got: Vec<(String, DataType)> = df.columns().iter().map(|c| (c.name().to_string(), c.dtype().clone())).collect();
    assert_eq!(got, expected);
}

/// `(at µs, weight)` lists of the `steps` column.
fn steps(df: &DataFrame) -> Vec<Vec<(i64, f64)>> {
    let list = df.column("steps").unwrap().list().unwrap().clone();
    (0..list.len())
        .map(|i| {
            let s = list.get_as_series(i).unwrap();
            let st = s.struct_().unwrap();
            let at: Vec<i64> = st
                .field_by_name("at")
                .unwrap()
                .cast(&DataType::Int64)
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect();
            let w: Vec<f64> = st.field_by_name("weight").unwrap().f64().unwrap().into_no_null_iter().collect();
            at.into_iter().zip(w).collect()
        })
        .collect()
}

#[test]
fn deployments_jsonl_and_csv_give_the_same_rows() {
    let (j, jr) = parse_deployments("d.jsonl", DEPLOYMENTS_JSONL.as_bytes(), DeploymentsFormat::JsonLines).unwrap();
    let (c, cr) = parse_deployments("d.csv", DEPLOYMENTS_CSV.as_bytes(), DeploymentsFormat::Csv).unwrap();
    assert!(jr.is_empty() && cr.is_empty(), "{jr:?} {cr:?}");
    assert_deployments_schema(&j);
    assert_deployments_schema(&c);
    // The CSV has one column beyond the contract (`extra`, "x" for d1): kept in `extra`.
    let without_source = |df: &DataFrame| df.drop_many(["source_file", "source_line", "extra"]);
    assert!(without_source(&j).equals_missing(&without_source(&c)));
    assert_eq!(strs(&j, "extra"), vec![None, None, None]);
    assert_eq!(strs(&c, "extra"), vec![Some(r#"{"extra":"x"}"#.into()), None, None]);
    assert_eq!(strs(&j, "outcome"), vec![Some("success".into()), None, Some("rolled_back".into())]);
    assert_eq!(strs(&j, "version"), some(&["1.4.0", "7", "2"]));
    assert_eq!(
        micros(&j, "started_at"),
        vec![Some(1_714_557_600_000_000), Some(1_714_636_800_000_000), Some(1_714_723_200_000_000)]
    );
    assert_eq!(micros(&j, "ended_at")[2], Some(1_714_723_500_500_000));
    assert_eq!(
        steps(&j),
        vec![
            vec![(1_714_557_600_000_000, 10.0), (1_714_558_200_000_000, 50.0), (1_714_558_800_000_000, 100.0)],
            vec![],
            vec![(1_714_723_200_000_000, 5.5)],
        ]
    );
    let jl: Vec<i64> = j.column("source_line").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(jl, vec![1, 2, 4]);
    let cl: Vec<i64> = c.column("source_line").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(cl, vec![2, 3, 4]);
}

#[test]
fn deployments_survive_a_parquet_round_trip() {
    let (mut df, _) = parse_deployments("d.jsonl", DEPLOYMENTS_JSONL.as_bytes(), DeploymentsFormat::JsonLines).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();
    let back = ParquetReader::new(std::fs::File::open(&path).unwrap()).finish().unwrap();
    assert!(back.equals_missing(&df));
}

#[test]
fn bad_deployments_are_rejected_naming_field_and_line() {
    let text = r#"{"deployment_id":"a","service":"s","version":"1","to_sha":"x","started_at":"2024-05-01T10:00:00Z"}
{"deployment_id":"b","service":"s","version":"1","started_at":"2024-05-01T10:00:00Z"}
{"deployment_id":"c","service":"s","version":"1","to_sha":"x","started_at":"yesterday"}
{"deployment_id":"d","service":"s","version":"1","to_sha":"x","started_at":"2024-05-01T10:00:00Z","outcome":"ok"}
{"deployment_id":"e","service":"s","version":"1","to_sha":"x","started_at":"2024-05-01T10:00:00Z","steps":[{"at":"2024-05-01T10:00:00Z","weight":101}]}
{"deployment_id":"f","service":"s","version":"1","to_sha":"x","started_at":"2024-05-01T10:00:00Z","ended_at":"2024-05-01T09:00:00Z"}
{"deployment_id":"g","service":["s"],"version":"1","to_sha":"x","started_at":"2024-05-01T10:00:00Z"}
{"deployment_id":"h",
[1,2]
{"deployment_id":"a","service":"s","version":"2","to_sha":"y","started_at":"2024-05-01T11:00:00Z"}
"#;
    let (df, rej) = parse_deployments("bad.jsonl", text.as_bytes(), DeploymentsFormat::JsonLines).unwrap();
    assert_eq!(strs(&df, "version"), some(&["2"]));
    assert_eq!(
        rejects(&rej),
        vec![
            (2, "missing required field `to_sha`".to_string()),
            (3, "field `started_at`: `yesterday` is not an rfc 3339 timestamp".to_string()),
            (4, "field `outcome`: unknown outcome `ok` (expected success, rolled_back, failed or aborted)".to_string()),
            (5, "field `steps[0].weight`: 101 is outside 0..=100".to_string()),
            (6, "field `ended_at`: before `started_at`".to_string()),
            (7, "field `service`: not a string".to_string()),
            (8, "invalid json: EOF while parsing a value (column 21)".to_string()),
            (9, "not a json object".to_string()),
            (1, "deployment_id `a` appears again on line 10; the last record wins".to_string()),
        ]
    );
}

#[test]
fn bad_deployment_csv_rows_and_header() {
    let text = "deployment_id,service,version,to_sha,started_at,steps\n\
                a,s,1,x,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z@-1\n\
                b,s,1,x\n\
                c,,1,x,2024-05-01T10:00:00Z,\n";
    let (df, rej) = parse_deployments("d.csv", text.as_bytes(), DeploymentsFormat::Csv).unwrap();
    assert_eq!(df.height(), 0);
    assert_deployments_schema(&df);
    assert_eq!(
        rejects(&rej),
        vec![
            (2, "field `steps[0].weight`: -1 is outside 0..=100".to_string()),
            (3, "record has 4 fields, the header has 6".to_string()),
            (4, "missing required field `service`".to_string()),
        ]
    );
    let err = parse_deployments("d.csv", b"deployment_id,service\n", DeploymentsFormat::Csv).unwrap_err().to_string();
    assert_eq!(err, "d.csv:1: csv header has no `version` column");
}
