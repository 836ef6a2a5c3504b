//! Records the git commit of the build as `OMEN_GIT_SHA` (empty outside a git checkout), for
//! the code version every registered model carries.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let sha = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=OMEN_GIT_SHA={sha}");
    // Run again when HEAD moves (a commit, a checkout), and only then.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
