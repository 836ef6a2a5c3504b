//! Support for omen's end-to-end tests: find the binaries, run them, provision what a test needs
//! (a Python virtual environment, Debian packages), and keep child servers from outliving a test.
//!
//! Everything a test starts listens on 127.0.0.1 and is stopped when its guard drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod mlflow;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    // Cargo sets CARGO_MANIFEST_DIR when it runs a test, to the tests/ folder of *this* checkout;
    // the compile-time value may name another checkout that shared the target directory.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest = manifest.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().expect("tests/ has a parent").to_path_buf()
}

/// The folder the test binary's sibling binaries live in (`target/<profile>/`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash>
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

static BUILD: Mutex<()> = Mutex::new(());

/// Path of a workspace binary (`omen`, `omen-serve`). `cargo test --workspace` builds both (their
/// packages have integration tests); a run of this crate alone builds them first, with the same
/// package selection as the workspace test so no dependency is rebuilt with other features.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["test", "--workspace", "--no-run"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo test --workspace --no-run failed");
    }
    path
}

/// Runs `omen` with `args` in `cwd`; the environment is cleared of OMEN_* so tests are hermetic.
pub fn omen(cwd: &Path, args: &[&str]) -> Output {
    omen_env(cwd, args, &[])
}

/// Runs `omen` with extra environment variables.
pub fn omen_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin("omen"));
    c.args(args).current_dir(cwd).env_remove("OMEN_STORE").env_remove("OMEN_REGISTRY").env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running omen")
}

/// Stdout of a successful run parsed as the `--json` summary; panics with stderr otherwise.
pub fn json_ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listened on 127.0.0.1:{port} within {timeout:?}")
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An S3-compatible server (moto, from the tests' venv) on a free port of 127.0.0.1, stopped
/// when dropped, with the buckets asked for.
#[derive(Debug)]
pub struct Moto {
    _server: ChildGuard,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    pub fn start(buckets: &[&str]) -> Moto {
        let port = free_port();
        let server = ChildGuard(
            Command::new(python().unwrap().parent().unwrap().join("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto_server"),
        );
        wait_for_port(port, Duration::from_secs(30)).unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut args = vec![endpoint.as_str()];
        args.extend_from_slice(buckets);
        run_python(
            "import sys, boto3\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\nfor b in sys.argv[2:]:\n    s3.create_bucket(Bucket=b)",
            &args,
        )
        .unwrap();
        Moto { _server: server, endpoint }
    }

    /// The `AWS_*` variables omen (object_store) reads to reach it.
    pub fn env(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
    }
}

/// The files installed into the tests' virtual environment: `tests/requirements.txt`, which
/// includes the second (`-r`). The venv is stamped with their contents, concatenated in this
/// order (`.ci/run` writes the same stamp), so a change to either reinstalls.
const REQUIREMENTS: [&str; 2] = ["tests/requirements.txt", "notebooks/requirements.txt"];

/// The Python of the tests' virtual environment, with `tests/requirements.txt` installed.
/// Kept at `$OMEN_TEST_VENV` or `~/.cache/omen/venv` so repeat runs reuse it; `.ci/run` creates
/// it ahead of the tests. Creation is locked so parallel tests wait for one another.
pub fn python() -> Result<PathBuf> {
    let dir = std::env::var_os("OMEN_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/omen/venv"));
    let req = workspace_root().join("tests/requirements.txt");
    let py = dir.join("bin/python");
    let stamp = dir.join(".omen-requirements");
    let mut wanted = String::new();
    for r in REQUIREMENTS {
        wanted.push_str(&std::fs::read_to_string(workspace_root().join(r))?);
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/tmp")))?;
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    if py.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(py);
    }
    if !py.exists() {
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&dir)).context("creating the test venv")?;
    }
    run_ok(Command::new(&py).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"]).arg(&req))
        .context("installing tests/requirements.txt")?;
    std::fs::write(&stamp, wanted)?;
    Ok(py)
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Runs a command and fails with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Makes sure `binary` is on the PATH, installing Debian's `package` if it is not (the tests run
/// as root on Debian machines; elsewhere install it by hand).
pub fn ensure_debian_package(binary: &str, package: &str) -> Result<()> {
    static APT: Mutex<()> = Mutex::new(());
    let _g = APT.lock().unwrap_or_else(|e| e.into_inner());
    if which(binary) {
        return Ok(());
    }
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run_ok(Command::new("apt-get").args(["update", "-qq"]).envs(env)).context("apt-get update")?;
    run_ok(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends", package]).envs(env))
        .with_context(|| format!("installing {package}"))?;
    if !which(binary) {
        bail!("{package} installed but {binary} is not on the PATH");
    }
    Ok(())
}

fn which(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a Python snippet with the test venv and returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> Result<String> {
    let py = python()?;
    let out = run_ok(Command::new(py).arg("-c").arg(script).args(args))?;
    Ok(String::from_utf8(out.stdout)?)
}
