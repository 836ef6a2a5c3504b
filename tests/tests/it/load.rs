//! `omen load run` against a small HTTP/1.1 server started by the test on 127.0.0.1: the open
//! model's rate and counts, the SLA verdict and exit status, the results in the store (read back
//! by pyarrow), invalid files and flags, a refused target and a slow one ending on time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omen_tests::{free_port, json_ok, omen, run_python};
use serde_json::Value;

/// A keep-alive HTTP/1.1 server, a thread per connection, counting requests per path.
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, u64>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &h);
                });
            }
        });
        Server { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<HashMap<String, u64>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let (status, answer) = match (method.as_str(), path.as_str()) {
            ("GET", "/ok") => ("200 OK", r#"{"ok": true, "user": {"id": 42}}"#.to_string()),
            ("GET", "/items") => ("200 OK", r#"{"items": [{"sku": "ABC-1"}, {"sku": "ABC-22"}]}"#.to_string()),
            ("POST", "/login") => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if v["user"] == "demo" {
                    ("200 OK", r#"{"token": "t-1"}"#.to_string())
                } else {
                    ("400 Bad Request", r#"{"error": "no user"}"#.to_string())
                }
            }
            ("GET", "/broken") => ("200 OK", r#"{"ok": false}"#.to_string()),
            ("GET", "/50ms") => {
                std::thread::sleep(Duration::from_millis(50));
                ("200 OK", r#"{"ok": true}"#.to_string())
            }
            ("GET", "/slow") => {
                std::thread::sleep(Duration::from_secs(5));
                ("200 OK", r#"{"ok": true}"#.to_string())
            }
            _ => ("404 Not Found", "{}".to_string()),
        };
        write!(out, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}", answer.len())?;
        out.flush()?;
    }
}

const GOOD: &str = r#"
sla_success_threshold: 0.99
error_budget: 5
transactions:
  - name: browse
    weight: 3
    steps:
      - name: home
        url: /ok
        validate:
          - jsonpath: $.ok
            equals: true
          - jsonpath: $.user.id
      - name: items
        method: get
        url: /items
        validate:
          - jsonpath: $.items[*].sku
            regex: "^ABC-[0-9]+$"
          - regex: '"items"'
  - name: login
    steps:
      - name: login
        method: POST
        url: /login
        headers: {X-Client: omen-test}
        payload: {user: demo}
        expected_response_code: 200
        validate:
          - jsonpath: $.token
          - jsonpath: $.error
            exists: false
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

fn row<'a>(v: &'a Value, kind: &str, name: &str) -> &'a Value {
    v["rows"].as_array().unwrap().iter().find(|r| r["kind"] == kind && r["name"] == name).unwrap_or_else(|| panic!("no {kind} {name}: {v}"))
}

#[test]
fn transactions_at_a_steady_rate_meet_their_sla() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "good.yaml", GOOD);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let t0 = Instant::now();
    let out = omen(
        dir.path(),
        &["load", "run", "--transactions", &file, "--target", &server.url(), "--rps", "200", "--duration", "3s", "--store", s, "--json"],
    );
    let wall = t0.elapsed();
    let v = json_ok(&out);
    assert!(wall < Duration::from_secs(8), "took {wall:?}");
    // The open model: 200/s for 3 s, split 3:1 by weight, every arrival answered.
    assert_eq!(v["offered"], 600, "{v}");
    assert_eq!(v["dropped"], 0);
    let rate = v["achieved_rps"].as_f64().unwrap();
    assert!((rate - 200.0).abs() <= 20.0, "achieved {rate}/s");
    assert_eq!(v["ok"], 600, "{}", v["messages"]);
    assert_eq!(v["passed"], true);
    assert_eq!(v["sla"]["met"], true);
    assert_eq!(v["sla"]["budget_left"], 5);
    assert_eq!(v["sla"]["success_ratio"], 1.0);
    let browse = row(&v, "transaction", "browse");
    assert_eq!(browse["count"], 450);
    assert_eq!(browse["ok"], 450);
    assert!(browse["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(row(&v, "transaction", "login")["count"], 150);
    for (name, n) in [("home", 450), ("items", 450), ("login", 150)] {
        let r = row(&v, "step", name);
        assert_eq!(r["count"], n, "{r}");
        assert_eq!(r["ok"], n, "{r}");
        assert_eq!(r["status_classes"]["2xx"], n, "{r}");
        assert_eq!(r["status_codes"]["200"], n, "{r}");
        let buckets: u64 = r["buckets"].as_array().unwrap().iter().map(|b| b[2].as_u64().unwrap()).sum();
        assert_eq!(buckets, n as u64, "{r}");
    }
    assert_eq!(server.hits("/ok"), 450);
    assert_eq!(server.hits("/items"), 450);
    assert_eq!(server.hits("/login"), 150);

    // The store: the Parquet rows (an independent reader) and summary.json, the same report.
    let id = v["run_id"].as_str().unwrap();
    let script = r#"
import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
rows = t.to_pylist()
print(json.dumps({"columns": t.column_names, "rows": rows}, default=str))
"#;
    let part = store.join(format!("synthetic_runs/run={id}/part-0.parquet"));
    let p: Value = serde_json::from_str(&run_python(script, &[part.to_str().unwrap()]).unwrap()).unwrap();
    for c in ["run_id", "started_at", "kind", "name", "transaction", "step", "count", "ok", "error_timeout", "status_2xx", "p50_ms", "p99_ms", "p999_ms", "max_ms", "bucket_lower_us", "bucket_count"] {
        assert!(p["columns"].as_array().unwrap().iter().any(|x| x == c), "no column {c}: {}", p["columns"]);
    }
    let rows = p["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "2 transactions and 3 steps");
    let items = rows.iter().find(|r| r["name"] == "items").unwrap();
    assert_eq!((items["kind"].as_str(), items["transaction"].as_str(), items["step"].as_u64()), (Some("step"), Some("browse"), Some(2)));
    assert_eq!(items["count"], 450);
    assert_eq!(items["bucket_count"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 450);
    assert_eq!(items["run_id"], id);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(store.join(format!("synthetic_runs/run={id}/summary.json"))).unwrap()).unwrap();
    assert_eq!(summary, v, "summary.json is the --json report");

    // The human summary names the rows and the verdict.
    let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--target", &server.url(), "--rps", "20", "--duration", "500ms", "--store", s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("transaction browse") && text.contains("2. items") && text.contains("SLA met"), "{text}");
}

#[test]
fn a_failed_validation_breaks_the_sla_and_the_exit_status() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        &format!(
            "target: {}\nsla_success_threshold: 0.9\ntransactions:\n  - name: good\n    steps:\n      - url: /ok\n  - name: broken\n    steps:\n      - url: /broken\n        validate:\n          - jsonpath: $.ok\n            equals: true\n      - url: /ok\n",
            server.url()
        ),
    );
    let s = dir.path().join("store");
    let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--rps", "100", "--duration", "1s", "--store", s.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["offered"], 100);
    assert_eq!(v["ok"], 50);
    assert_eq!(v["errors"]["validation"], 50);
    assert_eq!(v["passed"], false);
    assert_eq!(v["sla"]["met"], false);
    assert_eq!(v["sla"]["success_ratio"], 0.5);
    assert_eq!(v["sla"]["budget_left"], Value::Null);
    let step = row(&v, "step", "GET /broken");
    assert_eq!(step["errors"]["validation"], 50);
    let msg = step["first_errors"]["validation"].as_str().unwrap();
    assert!(msg.contains("$.ok is false, expected true"), "{msg}");
    // The transaction stopped at its failed step: its second step never ran.
    let second = v["rows"].as_array().unwrap().iter().find(|r| r["transaction"] == "broken" && r["step"] == 2).unwrap();
    assert_eq!(second["count"], 0, "{second}");
    assert_eq!(server.hits("/ok"), 50);
    assert_eq!(server.hits("/broken"), 50);
    assert!(stderr(&out).contains("SLA not met"), "{}", stderr(&out));
    assert!(v["messages"].as_array().unwrap().iter().any(|m| m.as_str().unwrap().contains("below the threshold 90.00 %")), "{v}");

    // An error budget of 10 is overspent by 40 with the threshold met.
    let file = write(dir.path(), "budget.yaml", &std::fs::read_to_string(&file).unwrap().replace("sla_success_threshold: 0.9", "sla_success_threshold: 0.5\nerror_budget: 10"));
    let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--rps", "100", "--duration", "1s", "--store", s.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["sla"]["budget_left"], -40);
    assert_eq!(v["sla"]["met"], false);
}

#[test]
fn invalid_files_and_flags_are_rejected_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let head = "transactions:\n  - name: a\n    steps:\n";
    for (body, want) in [
        ("      - name: s\n", ":4:9: transactions[0].steps[0]: missing field `url`"),
        ("      - url: /x\n        method: FETCH\n", ":5:17: transactions[0].steps[0].method: unknown method `FETCH`"),
        ("      - url: /x\n        validate:\n          - regex: '(['\n", ":6:20: transactions[0].steps[0].validate[0].regex: bad regex"),
        ("      - url: /x\n        expect: 200\n", ":5:9: transactions[0].steps[0]: unknown field `expect`"),
    ] {
        let file = write(dir.path(), "t.yaml", &format!("{head}{body}"));
        let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--target", "http://127.0.0.1:9"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("{file}{want}")), "want {want}\ngot {err}");
    }
    let file = write(dir.path(), "t.yaml", "sla_success_threshold: 1.5\ntransactions:\n  - name: a\n    steps: [{url: /}]\n");
    let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--target", "http://127.0.0.1:9"]);
    assert!(stderr(&out).contains(&format!("{file}:1:24: sla_success_threshold: 1.5 is not in [0, 1]")), "{}", stderr(&out));

    // Usage errors name the flag and exit 2.
    let good = write(dir.path(), "ok.yaml", "transactions:\n  - name: a\n    steps: [{url: /}]\n");
    for (args, want) in [
        (vec!["--rps", "0"], "--rps"),
        (vec!["--rps", "-5"], "--rps"),
        (vec!["--duration", "0s"], "--duration"),
        (vec!["--duration", "soon"], "--duration"),
        (vec!["--target", "ftp://x"], "--target"),
        (vec!["--target", "not a url"], "--target"),
    ] {
        let mut a = vec!["load", "run", "--transactions", &good];
        if !args.contains(&"--target") {
            a.extend(["--target", "http://127.0.0.1:9"]);
        }
        a.extend(args.iter().copied());
        let out = omen(dir.path(), &a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = omen(dir.path(), &["load", "run", "--transactions", &good]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--target"), "{}", stderr(&out));
    let out = omen(dir.path(), &["load", "run", "--target", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_refused_target_ends_on_time_with_connect_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.yaml", "sla_success_threshold: 0.99\ntransactions:\n  - name: a\n    steps: [{url: /ok}]\n");
    let target = format!("http://127.0.0.1:{}", free_port());
    let s = dir.path().join("store");
    let t0 = Instant::now();
    let out = omen(dir.path(), &["load", "run", "--transactions", &file, "--target", &target, "--rps", "50", "--duration", "2s", "--store", s.to_str().unwrap(), "--json"]);
    let wall = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(wall < Duration::from_secs(5), "took {wall:?}");
    let v = json(&out);
    assert_eq!(v["offered"], 100);
    assert_eq!(v["errors"]["connect"], 100, "{v}");
    assert_eq!(v["sla"]["met"], false);
    let msgs = v["messages"].to_string();
    assert!(msgs.contains("connect errors") && msgs.contains(&target[7..]) && msgs.to_lowercase().contains("refused"), "{msgs}");
}

#[test]
fn a_slow_target_times_out_and_the_run_ends_at_its_deadline() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.yaml", "transactions:\n  - name: slow\n    steps: [{url: /slow}]\n");
    let s = dir.path().join("store");
    let t0 = Instant::now();
    let out = omen(
        dir.path(),
        &["load", "run", "--transactions", &file, "--target", &server.url(), "--rps", "10", "--duration", "2s", "--timeout", "1s", "--store", s.to_str().unwrap(), "--json"],
    );
    let wall = t0.elapsed();
    // Deadline: 2 s of arrivals + 1 s of timeout; the process ends right after (waiting for the
    // answers would take 7 s).
    assert!(wall < Duration::from_millis(5000), "took {wall:?}");
    assert_eq!(out.status.code(), Some(1), "no SLA, but nothing succeeded: {}", stderr(&out));
    let v = json(&out);
    assert!(v["elapsed_s"].as_f64().unwrap() <= 3.3, "{}", v["elapsed_s"]);
    assert_eq!(v["offered"], 20);
    assert_eq!(v["errors"]["timeout"], 20, "{v}");
    assert_eq!(v["ok"], 0);
    assert!(v["messages"].to_string().contains("timeout errors"), "{}", v["messages"]);
}

#[test]
fn latency_counts_from_the_intended_time() {
    // One connection to a target answering in 50 ms serves 20 requests a second; at 40 a second
    // the arrivals queue, and each one's latency is its wait plus 50 ms (arrival k: about
    // 50 + 25·k ms). A closed-loop client would report 50 ms for all of them.
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.yaml", "transactions:\n  - name: queue\n    steps: [{url: /50ms}]\n");
    let s = dir.path().join("store");
    let out = omen(
        dir.path(),
        &["load", "run", "--transactions", &file, "--target", &server.url(), "--rps", "40", "--duration", "1s", "--connections", "1", "--store", s.to_str().unwrap(), "--json"],
    );
    let v = json_ok(&out);
    assert_eq!(v["ok"], 40, "{v}");
    let l = &v["latency_ms"];
    let (p50, max) = (l["p50"].as_f64().unwrap(), l["max"].as_f64().unwrap());
    // Loose upper bounds: a loaded machine oversleeps the server's 50 ms.
    assert!((400.0..1500.0).contains(&p50), "p50 {p50} ms");
    assert!((950.0..3000.0).contains(&max), "max {max} ms");
    assert_eq!(server.hits("/50ms"), 40);
}
