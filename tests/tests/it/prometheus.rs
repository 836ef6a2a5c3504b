//! A live pull from a real Prometheus server (Debian's package) scraping itself on 127.0.0.1.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omen_tests::{ChildGuard, ensure_debian_package, free_port, json_ok, omen, run_python, wait_for_port};

#[test]
fn live_pull_from_prometheus() {
    ensure_debian_package("prometheus", "prometheus").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n        labels: {{app: 'prom', track: 'canary', rollouts_pod_template_hash: 'abc123'}}\n"
        ),
    )
    .unwrap();
    let _server = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );
    wait_for_port(port, Duration::from_secs(60)).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // Wait until a few scrapes are stored.
    let t0 = std::time::Instant::now();
    let mut rows = 0;
    let mut summary = serde_json::Value::Null;
    while t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (start, end) = ((now - 120).to_string(), now.to_string());
        let out = omen(
            dir.path(),
            &["ingest", "metrics", "--prometheus", &url, "--query", "up", "--start", &start, "--end", &end, "--step", "1s", "--store", s, "--json"],
        );
        summary = json_ok(&out);
        rows += summary["rows_written"].as_u64().unwrap();
        if rows >= 3 {
            break;
        }
    }
    assert!(rows >= 3, "no samples pulled in time: {summary}");
    let script = r#"
import sys, json, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/metrics", format="parquet", partitioning="hive").to_table()
print(json.dumps(t.to_pylist(), default=str))
"#;
    let v: serde_json::Value = serde_json::from_str(&run_python(script, &[s]).unwrap()).unwrap();
    let first = &v[0];
    assert_eq!(first["metric"], "up", "{first}");
    assert_eq!(first["value"], 1.0);
    assert_eq!(first["service"], "prom", "app is an alias of service: {first}");
    assert_eq!(first["role"], "canary", "track is an alias of role: {first}");
    assert_eq!(first["deployment"], "abc123");
    assert!(first["labels"].as_str().unwrap().contains("job=self"), "{first}");
    assert!(first["source_file"].as_str().unwrap().starts_with("prometheus:http://127.0.0.1"));

    // A server that is not there: a clear error naming it, exit 1, no hang.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = omen(
        dir.path(),
        &["ingest", "metrics", "--prometheus", &dead, "--query", "up", "--start", "0", "--end", "60", "--step", "15s", "--store", s],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&dead), "{err}");
}
