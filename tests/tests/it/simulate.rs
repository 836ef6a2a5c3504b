//! `omen simulate`: a deployment history in omen's real input formats. Determinism, the committed
//! sample under `data/samples/simulated/`, and that the history goes through `omen quickstart`
//! unchanged and carries the signal it was built with (risk in the commits, failure modes in the
//! canary metrics where they should show and nowhere else).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use omen_tests::{json_ok, omen, omen_env, workspace_root};
use polars::prelude::*;
use serde_json::Value as Json;

use crate::features::read_features;

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git").args(args).env("GIT_CONFIG_GLOBAL", "/dev/null").env("LC_ALL", "C").output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn simulate(dir: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Json {
    let mut a = vec!["simulate", "--out", out.to_str().unwrap(), "--json"];
    a.extend_from_slice(args);
    json_ok(&omen_env(dir, &a, env))
}

#[test]
fn simulate_is_deterministic_for_a_seed_and_differs_across_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--services", "3", "--days", "5", "--deploys-per-day", "2", "--seed", "5", "--repos", "bundle"];
    let a = simulate(dir.path(), &dir.path().join("a"), &args, &[]);
    // One thread instead of all of them: the same bytes.
    simulate(dir.path(), &dir.path().join("b"), &args, &[("RAYON_NUM_THREADS", "1")]);
    let fa = files(&dir.path().join("a"));
    assert_eq!(fa, files(&dir.path().join("b")));
    assert!(fa.len() >= 3 + 3 * 3, "{fa:?}");
    for f in &fa {
        let x = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let y = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(x == y, "{} differs between two runs with the same seed", f.display());
    }
    assert!(a["deployments"].as_u64().unwrap() > 5, "{a}");
    let mut other = args;
    other[7] = "6";
    simulate(dir.path(), &dir.path().join("c"), &other, &[]);
    for f in ["deployments.jsonl", "repos/checkout.bundle", "logs/checkout/access-2026-01.log.gz"] {
        let x = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let z = std::fs::read(dir.path().join("c").join(f)).unwrap();
        assert!(x != z, "{f} is the same for seeds 5 and 6");
    }
}

#[test]
fn simulate_refuses_bad_parameters_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let d = dir.path().to_str().unwrap();
    let out = omen(dir.path(), &["simulate", "--out", d]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(d) && err.contains("not an empty folder"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "wrote into a folder it refused");
    for (flag, value) in [("--metrics-step", "7ms"), ("--start", "2026-13-01"), ("--days", "0"), ("--deploys-per-day", "-1")] {
        let o = dir.path().join("new");
        let out = omen(dir.path(), &["simulate", "--out", o.to_str().unwrap(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!o.exists(), "{flag} {value}: wrote output");
    }
}

/// The sample's recorded command, run again, writes the committed files (gzip streams compared
/// by content, bundles by their refs: both may differ by zlib or git version, never in content).
#[test]
fn committed_samples_are_what_the_simulator_writes() {
    let sample = workspace_root().join("data/samples/simulated");
    let recorded: Json = serde_json::from_slice(&std::fs::read(sample.join("simulation.json")).unwrap()).unwrap();
    let command = recorded["command"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let args: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|a| if a == "DIR" { out.to_str().unwrap().to_string() } else { a.to_string() })
        .collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--json");
    json_ok(&omen(dir.path(), &args));
    let committed = files(&sample);
    assert_eq!(files(&out), committed, "the files differ from data/samples/simulated");
    for f in &committed {
        let (a, b) = (std::fs::read(out.join(f)).unwrap(), std::fs::read(sample.join(f)).unwrap());
        let name = f.to_str().unwrap();
        if name.ends_with(".gz") {
            assert!(gunzip(&a) == gunzip(&b), "{name}: content differs from the committed copy");
        } else if name.ends_with(".bundle") {
            let heads = |p: &Path| git(&["bundle", "list-heads", p.to_str().unwrap()]);
            assert_eq!(heads(&out.join(f)), heads(&sample.join(f)), "{name}");
        } else {
            assert!(a == b, "{name}: differs from the committed copy (regenerate with the command in simulation.json)");
        }
    }
}

/// Column `name` of `df` as f64 (nulls as NaN).
fn col_f64(df: &DataFrame, name: &str) -> Vec<f64> {
    let c = df.column(name).unwrap_or_else(|_| panic!("no column {name}")).cast(&DataType::Float64).unwrap();
    c.f64().unwrap().iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

fn col_str(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name).unwrap().str().unwrap().iter().map(|v| v.map(str::to_string)).collect()
}

/// The sample through `omen quickstart`, then checks of what came out against the truth the
/// simulator wrote beside it.
#[test]
fn simulated_history_ingests_cleanly_and_carries_its_signal() {
    let sample = workspace_root().join("data/samples/simulated");
    let recorded: Json = serde_json::from_slice(&std::fs::read(sample.join("simulation.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = sample.join("omen.toml");
    let q = json_ok(&omen(dir.path(), &["quickstart", "--config", config.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"]));

    // omen-serve accepts its [serve]: the policy and the reference judge's Kayenta config.
    let serve = omen_serve::config::ConfigFile::load(&config).unwrap().serve;
    serve.policy.check().unwrap();
    let judge = serve.judge.expect("a [serve.judge]");
    assert_eq!(judge.metrics.len(), 6);
    judge.check().unwrap();

    // Everything ingested; the only rejects are the planted ones.
    let planted = recorded["planted_log_rejects"].as_u64().unwrap();
    assert!(planted > 0);
    assert_eq!(q["ingest"]["rows_rejected"].as_u64(), Some(planted), "unexpected rejects: {}", q["ingest"]);
    for f in q["ingest"]["files"].as_array().unwrap() {
        let expected = u64::from(f["source"].as_str().unwrap().contains("/logs/"));
        assert_eq!(f["rejected"].as_u64(), Some(expected), "{f}");
    }
    let rows: BTreeMap<String, u64> =
        q["datasets"].as_array().unwrap().iter().map(|d| (d["dataset"].as_str().unwrap().into(), d["rows"].as_u64().unwrap())).collect();
    let deployments = recorded["deployments"].as_u64().unwrap();
    assert_eq!(rows["deployments"], deployments);
    assert_eq!(rows["commits"], recorded["commits"].as_u64().unwrap());
    assert_eq!(rows["requests"], recorded["log_lines"].as_u64().unwrap());
    assert_eq!(rows["metrics"], recorded["metric_samples"].as_u64().unwrap());
    assert_eq!(rows["features"], deployments * 6, "six checkpoints per deployment");
    assert_eq!(q["features"]["change_states"], serde_json::json!({"ok": deployments}), "every commit range resolves");
    assert_eq!(q["features"]["samples_unmatched"].as_u64(), Some(0));

    let truth: Vec<Json> = std::fs::read_to_string(sample.join("deployments.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_numstat(&sample, &store, &truth);

    let features = read_features(&store);
    let ids = col_str(&features, "deployment_id");
    let by_id: BTreeMap<&str, &Json> = truth.iter().map(|d| (d["deployment_id"].as_str().unwrap(), d)).collect();
    let mode: Vec<&str> = ids.iter().map(|i| by_id[i.as_deref().unwrap()]["failure_mode"].as_str().unwrap()).collect();
    let bait: Vec<&str> = ids.iter().map(|i| by_id[i.as_deref().unwrap()]["bait"].as_str().unwrap()).collect();
    let minute: Vec<i64> = col_f64(&features, "elapsed_s").iter().map(|s| (s / 60.0).round() as i64).collect();
    // Labels: every deployment reached 100 % (the counterfactual rollout), so every one has them.
    let failed: Vec<f64> = col_f64(&features, "label_failed");
    for (i, f) in failed.iter().enumerate() {
        assert_eq!(*f == 1.0, mode[i] != "none", "label_failed of {:?}", ids[i]);
    }
    let p50_full = col_f64(&features, "label__http_request_duration_seconds_p50__at_full");
    for i in 0..ids.len() {
        let missing = by_id[ids[i].as_deref().unwrap()]["bait_detail"]["missing_metric"] == "http_request_duration_seconds_p50";
        assert_eq!(p50_full[i].is_nan(), missing, "p50 at full of {:?}", ids[i]);
    }
    check_risk(&features, &minute, &failed);
    check_modes(&features, &mode, &bait, &minute);
    check_bait(&features, &ids, &by_id, &minute);
}

/// `la`/`ld` as omen ingested them equal `git show --numstat`, and each deployment's recorded
/// change size equals git's count over its range.
fn check_numstat(sample: &Path, store: &Path, truth: &[Json]) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("checkout.git");
    git(&["clone", "--quiet", "--bare", sample.join("repos/checkout.bundle").to_str().unwrap(), repo.to_str().unwrap()]);
    let r = repo.to_str().unwrap();
    let mut commits = Vec::new();
    for e in std::fs::read_dir(store.join("commits/service=checkout")).unwrap() {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        commits.push(ParquetReader::new(f).finish().unwrap().lazy());
    }
    let commits = concat(commits, UnionArgs::default()).unwrap().sort(["sha"], Default::default()).collect().unwrap();
    let shas = col_str(&commits, "sha");
    let (la, ld) = (col_f64(&commits, "la"), col_f64(&commits, "ld"));
    let mut checked = 0;
    for i in (0..shas.len()).step_by(17) {
        let sha = shas[i].as_deref().unwrap();
        let out = git(&["--git-dir", r, "show", "--numstat", "--format=", "-M", "--diff-merges=first-parent", sha]);
        let (mut a, mut d) = (0.0, 0.0);
        for line in out.lines().filter(|l| !l.is_empty()) {
            let mut parts = line.split('\t');
            a += parts.next().unwrap().parse::<f64>().unwrap_or(0.0); // `-` for a binary file
            d += parts.next().unwrap().parse::<f64>().unwrap_or(0.0);
        }
        assert_eq!((la[i], ld[i]), (a, d), "commit {sha}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
    for d in truth.iter().filter(|d| d["service"] == "checkout") {
        let range = format!("{}..{}", d["from_sha"].as_str().unwrap(), d["to_sha"].as_str().unwrap());
        let out = git(&["--git-dir", r, "log", "--numstat", "--format=", "-M", "--diff-merges=first-parent", &range]);
        let (mut a, mut del) = (0u64, 0u64);
        for line in out.lines().filter(|l| !l.is_empty()) {
            let mut parts = line.split('\t');
            a += parts.next().unwrap().parse::<u64>().unwrap_or(0);
            del += parts.next().unwrap().parse::<u64>().unwrap_or(0);
        }
        assert_eq!((d["change"]["la"].as_u64().unwrap(), d["change"]["ld"].as_u64().unwrap()), (a, del), "{}", d["deployment_id"]);
    }
}

/// Failure rate by fifth of the deployments ordered by a risk score; (bottom, top).
fn quintile_rates(score: &[f64], failed: &[f64]) -> (f64, f64) {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let n = order.len();
    let rate = |part: &[usize]| part.iter().filter(|&&i| failed[i] == 1.0).count() as f64 / part.len() as f64;
    (rate(&order[..n / 5]), rate(&order[n - n / 5..]))
}

/// The change features omen computed from git carry the risk: the largest, most spread changes
/// of the least experienced authors fail more often than the smallest.
fn check_risk(f: &DataFrame, minute: &[i64], failed: &[f64]) {
    let rows: Vec<usize> = (0..minute.len()).filter(|&i| minute[i] == 5).collect();
    let pick = |name: &str| -> Vec<f64> {
        let c = col_f64(f, name);
        rows.iter().map(|&i| c[i]).collect()
    };
    let (la, ld, ns, exp) = (pick("la_sum"), pick("ld_sum"), pick("ns_max"), pick("exp_min"));
    let fails: Vec<f64> = rows.iter().map(|&i| failed[i]).collect();
    let score: Vec<f64> = (0..rows.len())
        .map(|i| (1.0 + la[i] + ld[i]).ln() + 0.5 * ns[i] - if exp[i].is_nan() { 0.0 } else { 0.3 * (1.0 + exp[i]).ln() })
        .collect();
    let (bottom, top) = quintile_rates(&score, &fails);
    assert!(top > bottom + 0.1, "failure rate of the riskiest fifth {top:.3} vs the safest {bottom:.3}");
    let size: Vec<f64> = (0..rows.len()).map(|i| la[i] + ld[i]).collect();
    let (bottom, top) = quintile_rates(&size, &fails);
    assert!(top > bottom, "by size alone: {top:.3} vs {bottom:.3}");
}

/// Share of `rows` for which `pred` holds.
fn share(rows: &[usize], pred: impl Fn(usize) -> bool) -> f64 {
    rows.iter().filter(|&&i| pred(i)).count() as f64 / rows.len().max(1) as f64
}

/// Each failure mode shows in the canary's features where it should, and not before.
fn check_modes(f: &DataFrame, mode: &[&str], bait: &[&str], minute: &[i64]) {
    let rows = |m: &str, at: i64| -> Vec<usize> { (0..mode.len()).filter(|&i| mode[i] == m && bait[i] == "none" && minute[i] == at).collect() };
    for m in ["error_spike", "latency_shift", "memory_leak", "saturation"] {
        assert!(rows(m, 5).len() >= 2, "the sample has {} clean deployments failing by {m}", rows(m, 5).len());
    }
    let c = |name: &str| col_f64(f, name);

    // Error spike: the canary's error rate is above the baseline's from the first checkpoint —
    // except a small spike in a canary that sees a few hundred requests at night, which stays
    // invisible until more traffic comes (a true limit, kept in the data).
    let (rc, rb, p) = (c("e__http_errors__rate_canary"), c("e__http_errors__rate_baseline"), c("e__http_errors__p_value"));
    let r = rows("error_spike", 10);
    assert!(share(&r, |i| rc[i] > 1.5 * rb[i] && p[i] < 0.05) >= 0.6, "error spikes not visible at 10 min");
    let r = rows("error_spike", 50);
    assert!(share(&r, |i| rc[i] > 1.5 * rb[i]) >= 0.8, "error spikes not visible at 50 min");
    let healthy = rows("none", 10);
    assert!(share(&healthy, |i| p[i] < 0.01) <= 0.1, "healthy canaries look like error spikes");

    // Latency shift: the median latency is up from the first checkpoint.
    let p50 = c("m__http_request_duration_seconds_p50__ratio_mean");
    assert!(share(&rows("latency_shift", 5), |i| p50[i] > 1.15) >= 0.75, "latency shifts not visible at 5 min");
    assert!(share(&rows("none", 40), |i| (0.9..1.1).contains(&p50[i])) >= 0.9, "healthy canaries' latency moves");

    // Memory leak: the canary's memory drifts up, more at 40 min than at 10.
    let mem = c("m__process_resident_memory_bytes__ratio_mean");
    let slope = c("m__process_resident_memory_bytes__trend_slope");
    let (r10, r40) = (rows("memory_leak", 10), rows("memory_leak", 40));
    assert!(share(&r40, |i| slope[i] > 0.0) >= 0.75, "leaks without an upward memory trend at 40 min");
    let mean = |r: &[usize]| r.iter().map(|&i| mem[i]).sum::<f64>() / r.len() as f64;
    assert!(mean(&r40) > mean(&r10) + 0.005, "leak at 10 min {:.4}, at 40 min {:.4}", mean(&r10), mean(&r40));
    let h40 = rows("none", 40);
    assert!(mean(&r40) > mean(&h40) + 0.01, "leaks {:.4} vs healthy {:.4} at 40 min", mean(&r40), mean(&h40));

    // Saturation: nothing while the canary carries at most 50 % (up to 40 min), clear at 100 %.
    let sat = c("m__worker_saturation_ratio__ratio_mean");
    let sat_base = c("m__worker_saturation_ratio__baseline_mean");
    let sat_full = c("label__worker_saturation_ratio__at_full");
    for at in [5, 10, 20, 30, 40] {
        let r = rows("saturation", at);
        assert!(r.iter().all(|&i| (0.85..1.15).contains(&sat[i])), "saturation visible at {at} min: {:?}", r.iter().map(|&i| sat[i]).collect::<Vec<_>>());
    }
    let r = rows("saturation", 40);
    assert!(r.iter().all(|&i| sat_full[i] > 1.3 * sat_base[i]), "saturation not visible at 100 %");
    assert!(share(&h40, |i| sat_full[i] < 1.3 * sat_base[i]) >= 0.9, "healthy canaries saturate at 100 %");

    // ...but the load test at the full-traffic rate shows it from the first checkpoint (where one
    // ran: nine deployments in ten), and shows nothing of the kind for a healthy version.
    let state = col_str(f, "l__worker_saturation_ratio__state");
    let shift = c("l__worker_saturation_ratio__shift");
    let tested = |r: Vec<usize>| -> Vec<usize> { r.into_iter().filter(|&i| state[i].as_deref() == Some("ok")).collect() };
    let (sat5, healthy5) = (tested(rows("saturation", 5)), tested(rows("none", 5)));
    assert!(!sat5.is_empty() && healthy5.len() * 10 >= rows("none", 5).len() * 7, "load tests: {} saturations, {} healthy", sat5.len(), healthy5.len());
    assert!(sat5.iter().all(|&i| shift[i] > 0.2), "saturation not in the load test: {:?}", sat5.iter().map(|&i| shift[i]).collect::<Vec<_>>());
    assert!(share(&healthy5, |i| shift[i].abs() < 0.1) >= 0.95, "healthy versions saturate under the load test");
    let untested = (0..state.len()).filter(|&i| state[i].as_deref() == Some("no_data")).count();
    assert!(untested > 0 && untested * 5 < state.len(), "{untested} of {} rows without a load test", state.len());
}

/// False-alarm bait: a missing metric is `canary_missing`, a scrape gap leaves fewer samples.
fn check_bait(f: &DataFrame, ids: &[Option<String>], by_id: &BTreeMap<&str, &Json>, minute: &[i64]) {
    let mut seen = 0;
    for (i, id) in ids.iter().enumerate() {
        let d = by_id[id.as_deref().unwrap()];
        if let Some(m) = d["bait_detail"]["missing_metric"].as_str() {
            let state = col_str(f, &format!("m__{m}__state"));
            assert_eq!(state[i].as_deref(), Some("canary_missing"), "{id:?} at {} min", minute[i]);
            seen += 1;
        }
        if let Some(gap) = d["bait_detail"]["gap_minutes"].as_array() {
            let (from, to) = (gap[0].as_i64().unwrap(), gap[1].as_i64().unwrap());
            if minute[i] >= to {
                let n = col_f64(f, "m__cpu_utilization__n_canary")[i];
                assert!(n <= (minute[i] - (to - from)) as f64 + 1.0, "{id:?}: {n} canary samples at {} min despite a gap of {} min", minute[i], to - from);
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "the sample has no NODATA bait");
}
