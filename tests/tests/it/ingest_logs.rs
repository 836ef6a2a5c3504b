//! `omen ingest logs` on real-world and broken input, read back by pyarrow.

use std::io::Write;

use omen_tests::{json_ok, omen, run_python};

const COMBINED: &str = concat!(
    "203.0.113.7 - - [20/Nov/2026:10:00:00 +0000] \"GET /users/123?token=s3cr3t&x=1 HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0 (X11; Linux) Firefox/120\"\n",
    "2001:db8::42 - alice [20/Nov/2026:11:00:01 +0100] \"POST /orders HTTP/2.0\" 201 - \"https://shop.example/cart?id=7\" \"curl/8.5 \\\"x\\\"\" 1532\n",
    "198.51.100.1 - - [20/Nov/2026:23:59:59 -0500] \"-\" 400 0 \"-\" \"-\"\n",
    "198.51.100.1 - - [20/Nov/2026:10:00:02 +0000] \"\\x16\\x03\\x01\\x00\" 400 157 \"-\" \"-\" 0.001\n",
);

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn combined_log_is_ingested_masked_partitioned_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let log = write(dir.path(), "access.log", COMBINED.as_bytes());
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let out = omen(dir.path(), &["ingest", "logs", &log, "--service", "shop", "--store", s, "--json"]);
    let j = json_ok(&out);
    assert_eq!(j["rows_written"], 4, "{j}");
    assert_eq!(j["rows_rejected"], 0, "{j}");
    assert_eq!(j["files_ingested"], 1);
    for key in ["bytes_read", "bytes_written", "seconds", "files"] {
        assert!(j.get(key).is_some(), "summary lacks {key}: {j}");
    }
    // Times in other offsets land on their UTC day: 23:59:59 -0500 is the 21st.
    assert!(store.join("requests/service=shop/date=2026-11-20").is_dir());
    assert!(store.join("requests/service=shop/date=2026-11-21").is_dir());

    // The same input again adds nothing.
    let j2 = json_ok(&omen(dir.path(), &["ingest", "logs", &log, "--service", "shop", "--store", s, "--json"]));
    assert_eq!(j2["rows_written"], 0, "{j2}");
    assert_eq!(j2["files_skipped"], 1);

    // An independent reader sees the documented schema, masked clients, no query strings.
    let script = r#"
import sys, json, pyarrow.dataset as ds
d = ds.dataset(sys.argv[1] + "/requests", format="parquet", partitioning="hive")
t = d.to_table()
print(json.dumps({"schema": {f.name: str(f.type) for f in t.schema}, "rows": t.to_pylist()}, default=str))
"#;
    let v: serde_json::Value = serde_json::from_str(&run_python(script, &[s]).unwrap()).unwrap();
    let schema = v["schema"].as_object().unwrap();
    for c in omen_features::schema::REQUESTS.columns {
        assert_eq!(schema[c.name].as_str().unwrap(), c.ty.arrow_name(), "column {}", c.name);
    }
    assert!(schema.contains_key("service") && schema.contains_key("date"));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let text = v["rows"].to_string();
    for pii in ["203.0.113.7", "2001:db8::42", "198.51.100.1", "s3cr3t"] {
        assert!(!text.contains(pii), "{pii} leaked into requests/: {text}");
    }
    let get = |line: i64| rows.iter().find(|r| r["source_line"] == line).unwrap();
    assert_eq!(get(1)["path"], "/users/123");
    assert_eq!(get(1)["route"], "/users/{id}");
    assert_eq!(get(1)["query_keys"], "token&x");
    assert_eq!(get(1)["ua_class"], "browser");
    assert_eq!(get(2)["ua_class"], "tool");
    assert_eq!(get(2)["bytes"], serde_json::Value::Null);
    assert_eq!(get(2)["latency_ms"], 1.532);
    assert_eq!(get(2)["protocol"], "HTTP/2.0");
    assert_eq!(get(3)["route"], "{malformed}");
    assert_eq!(get(4)["status"], 400);
    assert_eq!(get(4)["latency_ms"], 1.0);
    // Masking is stable across runs of one store: the same client gives the same id.
    assert_eq!(get(3)["client"], get(4)["client"]);
}

#[test]
fn every_format_and_gzip_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // common with Apache %D
    let common = "10.1.1.1 - - [20/Nov/2026:10:00:00 +0000] \"GET /a/9 HTTP/1.0\" 304 - 2500\n";
    let json = "{\"time_iso8601\":\"2026-11-20T10:00:00+00:00\",\"remote_addr\":\"10.1.1.2\",\"request\":\"GET /b HTTP/1.1\",\"status\":\"200\",\"body_bytes_sent\":\"10\",\"request_time\":\"0.020\",\"http_user_agent\":\"Mozilla/5.0 (iPhone)\"}\n";
    let mut gz = flate(COMBINED.as_bytes());
    let f1 = write(dir.path(), "common.log", common.as_bytes());
    let f2 = write(dir.path(), "nginx.json", json.as_bytes());
    let f3 = write(dir.path(), "access.log.gz", &gz);
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", &f1, &f2, &f3, "--service", "api", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 1 + 1 + 4, "{j}");
    let formats: Vec<&str> = j["files"].as_array().unwrap().iter().map(|f| f["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["common", "nginx-json", "combined"]);

    // A custom nginx log_format.
    let custom = "10.0.0.9|2026-11-20T10:00:00Z|GET /c/42 HTTP/1.1|503|0.250\n";
    let f4 = write(dir.path(), "custom.log", custom.as_bytes());
    let j = json_ok(&omen(
        dir.path(),
        &["ingest", "logs", &f4, "--service", "api", "--store", s, "--json", "--format", "$remote_addr|$time_iso8601|$request|$status|$request_time"],
    ));
    assert_eq!(j["rows_written"], 1, "{j}");

    // A truncated gzip keeps what it could read and rejects the rest with a reason.
    gz.truncate(gz.len() - 30);
    let f5 = write(dir.path(), "cut.log.gz", &gz);
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", &f5, "--service", "cut", "--store", s, "--json"]));
    assert!(j["rows_rejected"].as_u64().unwrap() >= 1, "{j}");
    let rej = read_rejects(s);
    assert!(rej.contains("gzip stream broke off"), "{rej}");
}

fn flate(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new());
    e.write_all(b).unwrap();
    e.finish()
}

/// A minimal gzip writer using the system `gzip`, so the tests crate needs no compression crate.
struct GzEncoder(Vec<u8>);
impl GzEncoder {
    fn new(v: Vec<u8>) -> Self {
        GzEncoder(v)
    }
    fn finish(self) -> Vec<u8> {
        let mut c = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&self.0).unwrap();
        c.wait_with_output().unwrap().stdout
    }
}
impl Write for GzEncoder {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_rejects(store: &str) -> String {
    let script = r#"
import sys, json, glob, pyarrow.parquet as pq
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/_rejects/requests/*.parquet")):
    rows += pq.read_table(f).to_pylist()
print(json.dumps(rows))
"#;
    run_python(script, &[store]).unwrap()
}

#[test]
fn bad_input_is_counted_rejected_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let good = "10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n";
    let mut bytes = Vec::new();
    bytes.extend_from_slice(good.as_bytes());
    bytes.extend_from_slice(b"10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET /\xff\xfe HTTP/1.1\" 200 1 \"-\" \"x\"\n");
    bytes.extend_from_slice(b"10.0.0.1 - - [32/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n");
    let mut huge = b"10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET /".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b" HTTP/1.1\" 200 1 \"-\" \"x\"\n");
    bytes.extend_from_slice(&huge);
    bytes.extend_from_slice(b"total garbage line\n");
    bytes.extend_from_slice(good.as_bytes());
    let f = write(dir.path(), "mixed.log", &bytes);
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", &f, "--service", "x", "--store", s, "--json", "--format", "combined"]));
    // good, 1 MB line (a valid request) and good again are rows; the other three are rejects.
    assert_eq!(j["rows_written"], 3, "{j}");
    assert_eq!(j["rows_rejected"], 3, "{j}");
    let rej: serde_json::Value = serde_json::from_str(&read_rejects(s)).unwrap();
    let lines: Vec<(i64, String)> = rej
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["source_line"].as_i64().unwrap(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), [2, 3, 5], "{lines:?}");
    assert!(lines[0].1.contains("invalid UTF-8"), "{lines:?}");
    assert!(lines[1].1.contains("unparsable time"), "{lines:?}");
    assert!(rej.to_string().contains(f.as_str()));
    assert!(!rej.to_string().contains("10.0.0.1"), "raw reject lines are masked");

    // Unknown format: a clear error naming the file, exit 1, nothing written for it.
    let f = write(dir.path(), "notalog.txt", b"hello\nworld\n");
    let out = omen(dir.path(), &["ingest", "logs", &f, "--service", "x", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notalog.txt") && err.contains("unknown log format"), "{err}");

    // Empty file: not an error, said so.
    let f = write(dir.path(), "empty.log", b"");
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", &f, "--service", "x", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 0);
    assert!(j["warnings"].to_string().contains("empty"), "{j}");

    // A folder with no files, a missing file, a pattern matching nothing.
    std::fs::create_dir(dir.path().join("nothing")).unwrap();
    for (arg, msg) in [("nothing", "no files"), ("missing.log", "no such file"), ("*.nomatch", "matched no files")] {
        let out = omen(dir.path(), &["ingest", "logs", arg, "--service", "x", "--store", s]);
        assert_eq!(out.status.code(), Some(1), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(arg) && err.contains(msg), "{arg}: {err}");
    }

    // Usage errors exit 2; a bad service name is named.
    assert_eq!(omen(dir.path(), &["ingest", "logs"]).status.code(), Some(2));
    let out = omen(dir.path(), &["ingest", "logs", &f, "--service", "../etc", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("service"));
    let out = omen(dir.path(), &["ingest", "logs", &f, "--service", "x", "--store", s, "--format", "nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown log format `nonsense`"));
}

#[test]
fn a_log_that_grew_adds_only_its_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let lines: Vec<&str> = COMBINED.lines().collect();
    let path = dir.path().join("growing.log");
    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let p = path.to_str().unwrap();
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", p, "--service", "web", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 2, "{j}");
    // The server appends; the scheduled ingest runs again.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(f, "{}", lines[2]).unwrap();
    drop(f);
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", p, "--service", "web", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 1, "only the appended line is new: {j}");
    assert_eq!(j["files"][0]["status"], "appended", "{j}");
    // Nothing new: nothing added.
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", p, "--service", "web", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 0, "{j}");
    let script = r#"
import sys, json, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/requests", format="parquet", partitioning="hive").to_table()
print(json.dumps(sorted(t.column("source_line").to_pylist())))
"#;
    assert_eq!(run_python(script, &[s]).unwrap().trim(), "[1, 2, 3]");
    // A rewritten file (its old bytes changed) is a new source, read whole.
    std::fs::write(&path, format!("{}\n", lines[3])).unwrap();
    let j = json_ok(&omen(dir.path(), &["ingest", "logs", p, "--service", "web", "--store", s, "--json"]));
    assert_eq!(j["rows_written"], 1, "{j}");
    assert_eq!(j["files"][0]["status"], "ingested", "{j}");
}
