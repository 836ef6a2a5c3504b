//! omen's own registry, driven through the CLI: `omen train` registers, `omen registry
//! list | show | promote | rollback | pull | delete`; two processes promoting at once; a writer
//! killed with SIGKILL half-way through a version; the same registry on S3 (moto).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use omen_tests::{ChildGuard, Moto, bin, json_ok, omen, omen_env};

fn train(dir: &Path, table: &Path, extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut args = vec![
        "train", "failure", "--features", table.to_str().unwrap(), "--label", "failed", "--time-column", "ts",
        "--exclude", "latency", "--param", "num_iterations=30", "--json",
    ];
    args.extend_from_slice(extra);
    json_ok(&omen_env(dir, &args, env))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn train_registers_and_the_cli_lists_shows_promotes_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let table = crate::train::table(dir.path(), 3000);
    let d = dir.path();
    let j = train(d, &table, &[], &[]);
    assert_eq!(j["registered"]["version"], 1, "{j}");
    assert_eq!(j["registered"]["champion"], true, "the first version becomes the champion");
    let j = train(d, &table, &["--param", "num_leaves=7"], &[]);
    assert_eq!((j["registered"]["version"].as_u64(), j["registered"]["champion"].as_bool()), (Some(2), Some(false)));
    // The same training again makes the same artifact: that version, not a third.
    let again = train(d, &table, &["--param", "num_leaves=7"], &[]);
    assert_eq!((again["registered"]["version"].as_u64(), again["registered"]["champion"].as_bool()), (Some(2), Some(false)), "{again}");
    let list = json_ok(&omen(d, &["registry", "list", "--json"]));
    assert_eq!(list["models"][0]["name"], "omen-failure", "{list}");
    assert_eq!(list["models"][0]["versions"], 2);
    assert_eq!(list["models"][0]["aliases"]["champion"], 1);

    // A version's record: metrics, hyperparameters, schema with its hash, lineage, code, checksum.
    let v = json_ok(&omen(d, &["registry", "show", "omen-failure/2", "--json"]));
    assert!(v["metrics"]["auc"].as_f64().unwrap() > 0.8, "{v}");
    assert_eq!(v["params"]["num_leaves"], "7");
    assert_eq!(v["lineage"]["rows"], 2400);
    assert_eq!(v["lineage"]["rows_holdout"], 600);
    assert_eq!((v["lineage"]["time_from"].as_str(), v["lineage"]["time_to"].as_str()), (Some("0"), Some("2399")));
    assert!(v["lineage"]["source"].as_str().unwrap().ends_with("features.csv"));
    assert!(v["code_version"].as_str().unwrap().starts_with("omen "), "{v}");
    assert_eq!(v["artifact"]["format"], "omen-gbdt/1");
    assert_eq!(v["artifact"]["blake3"].as_str().unwrap().len(), 64);
    let inputs: Vec<&str> = v["schema"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(inputs.contains(&"x1") && inputs.contains(&"team=team0") && !inputs.contains(&"latency") && !inputs.contains(&"failed"), "{inputs:?}");
    assert_eq!(v["schema"]["hash"].as_str().unwrap().len(), 64);
    let by_alias = json_ok(&omen(d, &["registry", "show", "omen-failure@champion", "--json"]));
    assert_eq!(by_alias["version"], 1);
    assert_eq!(by_alias["aliases"], serde_json::json!(["champion"]));

    // Pull: verified, loadable, byte for byte what was recorded.
    let out = d.join("champion.omengbdt");
    let p = json_ok(&omen(d, &["registry", "pull", "omen-failure", "--out", out.to_str().unwrap(), "--json"]));
    assert_eq!(p["version"], 1);
    assert!(p["trees"].as_u64().unwrap() > 0);
    assert_eq!(p["blake3"], by_alias["artifact"]["blake3"]);

    // Promote with and without --expect, then roll back.
    let out = omen(d, &["registry", "promote", "omen-failure", "2", "--expect", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("conflict on alias `champion` of `omen-failure`: expected it at version 2, it points at version 1"), "{}", stderr(&out));
    let m = json_ok(&omen(d, &["registry", "promote", "omen-failure", "latest", "--expect", "1", "--json"]));
    assert_eq!((m["version"].as_u64(), m["previous"].as_u64()), (Some(2), Some(1)));
    let m = json_ok(&omen(d, &["registry", "rollback", "omen-failure", "--json"]));
    assert_eq!((m["version"].as_u64(), m["previous"].as_u64()), (Some(1), Some(2)), "{m}");
    let out = omen(d, &["registry", "rollback", "omen-failure"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no earlier version to roll back to"), "{}", stderr(&out));
    let show = json_ok(&omen(d, &["registry", "show", "omen-failure", "--json"]));
    let moves: Vec<u64> = show["alias_history"]["champion"].as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(moves, [1, 2, 1]);
    // A challenger alias beside the champion.
    json_ok(&omen(d, &["registry", "promote", "omen-failure", "2", "--alias", "challenger", "--expect", "none", "--json"]));
    let list = json_ok(&omen(d, &["registry", "list", "--json"]));
    assert_eq!(list["models"][0]["aliases"], serde_json::json!({"champion": 1, "challenger": 2}));

    // Bad input: a model that does not exist, an alias to a deleted version, a tampered artifact.
    let out = omen(d, &["registry", "show", "omen-nope@champion"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("model `omen-nope` not found"), "{}", stderr(&out));
    json_ok(&omen(d, &["registry", "delete", "omen-failure/2", "--json"]));
    let out = omen(d, &["registry", "pull", "omen-failure@challenger", "--out", d.join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version 2 of `omen-failure`, where alias `challenger` points, was deleted"), "{}", stderr(&out));
    let blake = by_alias["artifact"]["blake3"].as_str().unwrap();
    let artifact = d.join("omen-data/registry/models/omen-failure/artifacts").join(blake);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&artifact, bytes).unwrap();
    let out = omen(d, &["registry", "pull", "omen-failure@champion", "--out", d.join("y").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("fails its checksum"), "{}", stderr(&out));
    assert!(!d.join("y").exists(), "nothing unverified is written");
    // Usage errors are exit 2.
    assert_eq!(omen(d, &["registry", "promote", "omen-failure"]).status.code(), Some(2));
}

#[test]
fn two_processes_promoting_at_once_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let table = crate::train::table(d, 1500);
    // Three different models (the same training twice is the same version).
    for leaves in ["num_leaves=31", "num_leaves=7", "num_leaves=5"] {
        train(d, &table, &["--param", leaves], &[]);
    }
    // Both saw version 1 as the champion: whatever the timing, one wins and one conflicts.
    let spawn = |v: &str| {
        Command::new(bin("omen"))
            .args(["registry", "promote", "omen-failure", v, "--expect", "1"])
            .current_dir(d)
            .env_remove("OMEN_REGISTRY")
            .env_remove("OMEN_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("2"), spawn("3"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(codes.contains(&Some(0)) && codes.contains(&Some(1)), "{codes:?}\n{}\n{}", stderr(&a), stderr(&b));
    let loser = if a.status.success() { &b } else { &a };
    assert!(stderr(loser).contains("conflict on alias `champion`"), "{}", stderr(loser));
    let winner = if a.status.success() { 2 } else { 3 };
    let v = json_ok(&omen(d, &["registry", "show", "omen-failure@champion", "--json"]));
    assert_eq!(v["version"], winner);

    // Eight processes racing without --expect: each either moves the alias or gets a conflict,
    // never both silently; the log has one entry per success, nothing lost or doubled.
    let before = json_ok(&omen(d, &["registry", "show", "omen-failure", "--json"]))["alias_history"]["champion"].as_array().unwrap().len();
    let children: Vec<_> = (0..8).map(|i| spawn_plain(d, &["registry", "promote", "omen-failure", &(1 + i % 3).to_string()])).collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(stderr(o).contains("conflict"), "{}", stderr(o));
    }
    assert!(ok >= 1);
    let after = json_ok(&omen(d, &["registry", "show", "omen-failure", "--json"]))["alias_history"]["champion"].as_array().unwrap().len();
    assert_eq!(after - before, ok);
}

fn spawn_plain(d: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin("omen"))
        .args(args)
        .current_dir(d)
        .env_remove("OMEN_REGISTRY")
        .env_remove("OMEN_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the writer until it prints a line starting with `stall`'s step, then SIGKILLs it.
fn kill_writer_at(registry: &Path, stall: &str, seed: u32) -> Vec<String> {
    let mut child = ChildGuard(
        Command::new(bin("omen-registry-writer"))
            .args([registry.to_str().unwrap(), "omen-blob", "24", stall, &seed.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let want = if stall == "part" { "part " } else { "stored" };
    let mut lines = Vec::new();
    let stdout = child.0.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let hit = line.starts_with(want);
        lines.push(line);
        if hit {
            child.0.kill().unwrap(); // SIGKILL
            let status = child.0.wait().unwrap();
            assert!(!status.success());
            return lines;
        }
    }
    panic!("the writer ended before `{want}`: {lines:?}");
}

#[test]
fn a_writer_killed_mid_version_leaves_no_visible_version() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    let list = |reg: &Path| json_ok(&omen(dir.path(), &["registry", "list", "--registry", reg.to_str().unwrap(), "--json"]));
    // Killed after the first 8 MiB part of a 24 MiB artifact: no model at all.
    let lines = kill_writer_at(&reg, "part", 1);
    assert_eq!(lines, ["part 8388608 25165824"]);
    assert_eq!(list(&reg)["models"], serde_json::json!([]));
    let all_files: Vec<String> = walk(&reg);
    assert!(all_files.iter().any(|f| f.contains('#')), "the multipart upload was in flight: {all_files:?}");
    // A complete version next, then a writer killed after its artifact but before the commit.
    let ok = Command::new(bin("omen-registry-writer")).args([reg.to_str().unwrap(), "omen-blob", "24", "never", "2"]).output().unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("done 1"));
    let lines = kill_writer_at(&reg, "stored", 3);
    assert_eq!(lines.last().map(String::as_str), Some("stored"));
    let l = list(&reg);
    assert_eq!(l["models"][0]["versions"], 1, "{l}");
    assert_eq!(l["models"][0]["latest"], 1);
    // What is visible is whole: version 1 pulls and verifies; the next writer gets number 2.
    let out = dir.path().join("blob");
    let p = json_ok(&omen(dir.path(), &["registry", "pull", "omen-blob/1", "--registry", reg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]));
    assert_eq!(p["bytes"], 24 << 20);
    let ok = Command::new(bin("omen-registry-writer")).args([reg.to_str().unwrap(), "omen-blob", "24", "never", "4"]).output().unwrap();
    assert!(String::from_utf8_lossy(&ok.stdout).contains("done 2"), "{}", String::from_utf8_lossy(&ok.stdout));
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn the_own_registry_works_on_s3_with_conditional_writes() {
    let moto = Moto::start(&["models"]);
    let env = moto.env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let table = crate::train::table(d, 1500);
    let reg = "s3://models/omen";
    // Two different models (the same one twice would be one version: same artifact).
    for leaves in ["num_leaves=31", "num_leaves=7"] {
        train(d, &table, &["--registry", reg, "--param", leaves], &env);
    }
    let list = json_ok(&omen_env(d, &["registry", "list", "--registry", reg, "--json"], &env));
    assert_eq!(list["models"][0]["versions"], 2, "{list}");
    assert_eq!(list["models"][0]["aliases"]["champion"], 1);
    // The conditional create is S3's If-None-Match: a stale --expect loses.
    json_ok(&omen_env(d, &["registry", "promote", "omen-failure", "2", "--expect", "1", "--registry", reg, "--json"], &env));
    let out = omen_env(d, &["registry", "promote", "omen-failure", "1", "--expect", "1", "--registry", reg], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    let p = json_ok(&omen_env(d, &["registry", "pull", "omen-failure@champion", "--registry", reg, "--out", d.join("m").to_str().unwrap(), "--json"], &env));
    assert_eq!(p["version"], 2);
}
