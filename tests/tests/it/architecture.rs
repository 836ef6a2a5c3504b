//! Keeps ARCHITECTURE.md's invariants true: what must never depend on what.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use omen_tests::workspace_root;

fn direct_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null()) // normal dependencies only
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let deps = direct_dependencies();
    let names: BTreeSet<&str> = deps.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["omen-features", "omen-models", "omen-pipeline", "omen-serve", "omen-tests"]));
    let forbid = |krate: &str, banned: &[&str], why: &str| {
        for b in banned {
            assert!(!deps[krate].contains(*b), "{krate} must not depend on {b}: {why}");
        }
    };
    // Layering: features <- models <- {pipeline, serve}.
    forbid("omen-features", &["omen-models", "omen-pipeline", "omen-serve"], "features is the bottom layer");
    forbid("omen-models", &["omen-pipeline", "omen-serve"], "models knows no CLI and no server");
    // The pipeline uses omen-serve only through `omen_serve::client` (checked on its sources below).
    // Serialization at the edge: only serve knows protobuf and gRPC.
    for k in ["omen-features", "omen-models", "omen-pipeline"] {
        forbid(k, &["prost", "tonic", "tonic-prost", "tonic-health", "tonic-reflection"], "only serve knows the proto");
    }
    // Libraries return their own errors and never install a subscriber or parse a CLI.
    for k in ["omen-features", "omen-models"] {
        forbid(k, &["anyhow", "clap", "tracing-subscriber", "indicatif"], "libraries are not binaries");
    }
}

#[test]
fn the_pipeline_uses_only_the_client_of_omen_serve() {
    // `omen quickstart` scores canaries through a running omen-serve with `omen_serve::client`
    // (plain Rust types); nothing else of the server, and no generated proto type, is used.
    let mut offenders = Vec::new();
    for entry in walk(&workspace_root().join("pipeline/src")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for (i, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("omen_serve::") {
                rest = &rest[at + "omen_serve::".len()..];
                if !rest.starts_with("client") {
                    offenders.push(format!("{}:{}: {}", entry.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "the pipeline uses omen-serve beyond its client: {offenders:?}");
}

#[test]
fn only_binaries_read_the_environment() {
    // The library sources (not main.rs) never read environment variables.
    let root = workspace_root();
    let mut offenders = Vec::new();
    for dir in ["features/src", "models/src", "pipeline/src", "serve/src"] {
        for entry in walk(&root.join(dir)) {
            if entry.file_name().is_some_and(|n| n == "main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&entry).unwrap();
            if text.contains("env::var") || text.contains("env::vars") {
                offenders.push(entry.display().to_string());
            }
        }
    }
    assert!(offenders.is_empty(), "library code reads the environment: {offenders:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn architecture_md_names_every_crate() {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    for k in ["omen-features", "omen-models", "omen-pipeline", "omen-serve", "omen-tests"] {
        assert!(text.contains(k), "ARCHITECTURE.md does not describe {k}");
    }
}
