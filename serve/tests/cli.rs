//! `omen-serve`'s command line (DESIGN §5). Having an integration test here also makes
//! `cargo test` build the binary.

use std::process::Command;

#[test]
fn help_names_the_documented_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_omen-serve")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for f in ["--registry", "--listen", "--http", "--store", "--config", "--tls-cert", "--tls-key", "--auth-tokens"] {
        assert!(text.contains(f), "help lacks {f}");
    }
}

#[test]
fn tls_flags_come_in_pairs() {
    let out = Command::new(env!("CARGO_BIN_EXE_omen-serve")).args(["--tls-cert", "c.pem"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
