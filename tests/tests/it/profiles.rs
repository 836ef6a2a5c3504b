//! `omen profiles fit | list | show | diff | export` on access logs with known behaviours, the
//! generated locustfile run by a real Locust against a server on 127.0.0.1, and bad input.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omen_tests::{json_ok, omen, python, run_ok};

/// A combined-format log of `n` requests over six hours from three behaviours: browsers reading
/// user pages (60 %), mobile apps posting orders (30 %), bots fetching static files (10 %) —
/// or, with `shifted`, a fourth one (curl calling /api/search) taking most of the traffic.
fn log(path: &Path, n: usize, shifted: bool) {
    let mut s = String::new();
    let mut state = 7u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..n {
        let r = next() % 100;
        let secs = i * 6 * 3600 / n;
        let (h, m, sec) = (10 + secs / 3600, (secs / 60) % 60, secs % 60);
        let client = format!("10.0.{}.{}", next() % 4, next() % 50);
        let t = format!("20/Nov/2026:{h:02}:{m:02}:{sec:02} +0000");
        let line = if shifted && r < 55 {
            format!("{client} - - [{t}] \"GET /api/search?q=x{} HTTP/1.1\" 200 {} \"-\" \"curl/8.5.0\" 0.{:03}", next() % 99, 800 + next() % 100, 20 + next() % 10)
        } else if r < 60 {
            format!("{client} - - [{t}] \"GET /api/users/{} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\" 0.{:03}", next() % 9000 + 1, 2000 + next() % 300, 30 + next() % 20)
        } else if r < 90 {
            format!("{client} - - [{t}] \"POST /api/orders HTTP/1.1\" 201 {} \"-\" \"MyShop/3.1 (iPhone; iOS 17.0) Mobile\" 0.{:03}", 150 + next() % 30, 120 + next() % 40)
        } else {
            format!("{client} - - [{t}] \"GET /static/js/app.{}.js HTTP/1.1\" 200 {} \"-\" \"Googlebot/2.1 (+http://www.google.com/bot.html)\" 0.{:03}", ["a1", "b2"][(next() % 2) as usize], 90_000 + next() % 1000, 2 + next() % 3)
        };
        s.push_str(&line);
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn ingest(dir: &Path, store: &Path, log_file: &Path) {
    json_ok(&omen(dir, &["ingest", "logs", log_file.to_str().unwrap(), "--service", "shop", "--store", store.to_str().unwrap(), "--json"]));
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn profiles_are_fitted_versioned_listed_diffed_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    let s = store.to_str().unwrap();
    let first = d.join("a.log");
    log(&first, 6000, false);
    ingest(d, &store, &first);
    let fit = json_ok(&omen(d, &["profiles", "fit", "--store", s, "--json"]));
    assert_eq!(fit["k_chosen_by"], "silhouette");
    assert_eq!(fit["k"], 3, "three behaviours, found by the silhouette: {fit}");
    assert_eq!(fit["registered"], 1, "{fit}");
    let v1 = fit["version"].as_str().unwrap().to_string();
    // Content-derived: the same data and parameters give the same version, and nothing new.
    let again = json_ok(&omen(d, &["profiles", "fit", "--store", s, "--json"]));
    assert_eq!((again["version"].as_str(), again["new"].as_bool(), again["registered"].as_u64()), (Some(v1.as_str()), Some(false), Some(1)));

    // The profiles: shares, routes, methods, distributions, masked examples.
    let set = json_ok(&omen(d, &["profiles", "show", "latest", "--store", s, "--json"]));
    let profiles = set["profiles"].as_array().unwrap();
    let total: f64 = profiles.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    let top = |p: &serde_json::Value| format!("{} {}", p["routes"][0]["method"].as_str().unwrap(), p["routes"][0]["route"].as_str().unwrap());
    assert_eq!(top(&profiles[0]), "GET /api/users/{id}", "ids masked in the examples");
    assert_eq!(top(&profiles[1]), "POST /api/orders");
    assert!(top(&profiles[2]).starts_with("GET /static/"));
    for (p, want) in profiles.iter().zip([0.6, 0.3, 0.1]) {
        assert!((p["share_raw"].as_f64().unwrap() - want).abs() < 0.03, "{p}");
        assert!(p["rate_rps_peak"].as_f64().unwrap() > 0.0);
        for k in ["bytes", "latency_ms", "inter_arrival_s"] {
            assert!(p[k]["p50"].is_number() && p[k]["p99"].is_number(), "{k}: {p}");
        }
    }
    assert_eq!(profiles[1]["methods"]["POST"], 1.0);
    assert!(profiles[2]["ua"]["bot"].as_f64().unwrap() > 0.99);
    assert!(!set.to_string().contains("10.0."), "no client address in a profile");
    // Decay: a long half-life weighs the day evenly (shares ≈ raw); a short one favours the end.
    assert!(profiles.iter().all(|p| (p["share"].as_f64().unwrap() - p["share_raw"].as_f64().unwrap()).abs() < 0.05));
    let k3 = json_ok(&omen(d, &["profiles", "fit", "--store", s, "--k", "2", "--json"]));
    assert_eq!((k3["k"].as_u64(), k3["k_chosen_by"].as_str()), (Some(2), Some("given")));

    // New traffic: /api/search appears and takes most of it.
    let second = d.join("b.log");
    log(&second, 6000, true);
    std::fs::remove_dir_all(store.join("requests")).unwrap();
    std::fs::remove_dir_all(store.join("_manifest")).unwrap();
    ingest(d, &store, &second);
    let v2 = json_ok(&omen(d, &["profiles", "fit", "--store", s, "--k", "4", "--json"]))["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    let list = json_ok(&omen(d, &["profiles", "list", "--store", s, "--json"]));
    assert_eq!(list["profile_sets"].as_array().unwrap().len(), 3);
    let diff = json_ok(&omen(d, &["profiles", "diff", &v1, &v2, "--store", s, "--json"]));
    let changes = diff["changes"].as_array().unwrap();
    let kinds: Vec<&str> = changes.iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"appeared") && kinds.contains(&"shrank"), "{diff}");
    let appeared = changes.iter().find(|c| c["change"] == "appeared").unwrap();
    assert_eq!(appeared["top_route"], "GET /api/search", "{diff}");
    // The registry has every set; an old version is exported again.
    let reg = json_ok(&omen(d, &["registry", "show", "omen-profiles", "--store", s, "--json"]));
    assert_eq!(reg["versions"].as_array().unwrap().len(), 3);
    for (fmt, needle) in [("locust", "constant_throughput"), ("k6", "constant-arrival-rate"), ("json", &v1[..])] {
        let out = d.join(format!("load.{fmt}"));
        json_ok(&omen(d, &["profiles", "export", &v1[..6], "--format", fmt, "--out", out.to_str().unwrap(), "--store", s, "--json"]));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(needle), "{fmt}: {text}");
    }
}

#[test]
fn bad_input_gets_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    let s = store.to_str().unwrap();
    let out = omen(d, &["profiles", "fit", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no requests") && stderr(&out).contains("requests/"), "{}", stderr(&out));
    // One distinct request: the same probe from 50 clients at one moment.
    let one = d.join("one.log");
    let lines: String = (0..50)
        .map(|i| format!("10.0.1.{i} - - [20/Nov/2026:10:00:00 +0000] \"GET /health HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\" 0.001\n"))
        .collect();
    std::fs::write(&one, lines).unwrap();
    ingest(d, &store, &one);
    let out = omen(d, &["profiles", "fit", "--store", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("single distinct point"), "{}", stderr(&out));
    let out = omen(d, &["profiles", "fit", "--store", s, "--k", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("k = 5 but the data has only"), "{}", stderr(&out));
    let out = omen(d, &["profiles", "show", "nope", "--store", s]);
    assert!(stderr(&out).contains("no profile set `nope`"), "{}", stderr(&out));
    assert_eq!(omen(d, &["profiles", "export", "latest", "--format", "locust", "--out", "x", "--users", "0", "--store", s]).status.code(), Some(1));
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering 200 to everything and counting request lines
/// by method and path shape (digits → {id}).
fn server() -> (u16, Arc<Mutex<HashMap<String, u64>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let c = counts.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut w = stream;
                loop {
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body);
                    let mut parts = first.split_whitespace();
                    let (m, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let shape: String = p.split('/').map(|seg| if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) { "{id}" } else { seg }).collect::<Vec<_>>().join("/");
                    *c.lock().unwrap().entry(format!("{m} {shape}")).or_default() += 1;
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, counts)
}

#[test]
fn the_exported_locustfile_runs_in_locust_with_the_profile_mix() {
    let py = python().unwrap();
    let locust = py.with_file_name("locust");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    let s = store.to_str().unwrap();
    let l = d.join("a.log");
    log(&l, 6000, false);
    ingest(d, &store, &l);
    let set = json_ok(&omen(d, &["profiles", "fit", "--store", s, "--json"]));
    let version = set["version"].as_str().unwrap();
    let shown = json_ok(&omen(d, &["profiles", "show", version, "--store", s, "--json"]));
    // 100 requests per second in all, from 20 users.
    let peak = shown["rate_rps_peak"].as_f64().unwrap();
    let file = d.join("locustfile.py");
    json_ok(&omen(d, &[
        "profiles", "export", version, "--format", "locust", "--out", file.to_str().unwrap(), "--users", "20",
        "--percent-of-peak", &format!("{}", 100.0 * 100.0 / peak), "--store", s, "--json",
    ]));
    let (port, counts) = server();
    let csv = d.join("run");
    let out = run_ok(
        Command::new(&locust)
            .args(["-f", file.to_str().unwrap(), "--headless", "-u", "20", "-r", "20", "--run-time", "10s", "--only-summary"])
            .args(["--host", &format!("http://127.0.0.1:{port}"), "--csv", csv.to_str().unwrap()])
            .current_dir(d),
    )
    .unwrap();
    let _ = out;
    std::thread::sleep(Duration::from_millis(200));
    // Locust's own statistics: no failures, every request named `<profile> <METHOD> <route>`.
    let stats = std::fs::read_to_string(d.join("run_stats.csv")).unwrap();
    let mut rdr = stats.lines();
    let header: Vec<&str> = rdr.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let mut by_profile: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for line in rdr {
        let cells: Vec<&str> = line.split(',').collect();
        let name = cells[col("Name")].trim_matches('"');
        if name == "Aggregated" {
            assert_eq!(cells[col("Failure Count")], "0", "{stats}");
            continue;
        }
        let n: f64 = cells[col("Request Count")].parse().unwrap();
        *by_profile.entry(name.split(' ').next().unwrap().to_string()).or_default() += n;
        total += n;
    }
    assert!(total > 500.0, "Locust sent {total} requests in 10 s at 100/s:\n{stats}");
    for p in shown["profiles"].as_array().unwrap() {
        let observed = by_profile.get(p["id"].as_str().unwrap()).copied().unwrap_or(0.0) / total;
        let want = p["share"].as_f64().unwrap();
        assert!((observed - want).abs() <= 0.05, "{}: observed {observed:.3}, profile share {want:.3}", p["id"]);
    }
    // And at the server: the route mix of the requests that arrived.
    let counts = counts.lock().unwrap().clone();
    let arrived: f64 = counts.values().sum::<u64>() as f64;
    let share = |k: &str| counts.iter().filter(|(name, _)| name.starts_with(k)).map(|(_, n)| *n).sum::<u64>() as f64 / arrived;
    for (route, want) in [("GET /api/users/{id}", 0.6), ("POST /api/orders", 0.3), ("GET /static/", 0.1)] {
        assert!((share(route) - want).abs() <= 0.05, "{route}: {:.3} of {arrived} vs {want}: {counts:?}", share(route));
    }
}
