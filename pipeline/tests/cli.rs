//! The `omen` command line itself: help, version, usage errors. (The end-to-end tests in
//! `tests/` drive its commands; having an integration test here also makes `cargo test` build the
//! binary they run.)

use std::process::Command;

fn omen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_omen")).args(args).env_remove("OMEN_STORE").output().unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = omen(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["ingest", "quickstart", "--store", "--json", "--config"] {
        assert!(text.contains(c), "help lacks {c}: {text}");
    }
    let out = omen(&["ingest", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["logs", "commits", "metrics", "deployments"] {
        assert!(text.contains(c), "ingest help lacks {c}: {text}");
    }
}

#[test]
fn usage_errors_exit_2_and_other_errors_exit_1() {
    assert_eq!(omen(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(omen(&["ingest", "logs", "x.log"]).status.code(), Some(2), "--service is required");
    assert_eq!(omen(&["ingest", "metrics", "--prometheus", "http://127.0.0.1:1"]).status.code(), Some(2));
    let dir = std::env::temp_dir().join(format!("omen-cli-{}", std::process::id()));
    let out = omen(&["ingest", "logs", "/no/such/file.log", "--service", "x", "--store", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.log"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn version_is_printed() {
    let out = omen(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("omen "));
}
