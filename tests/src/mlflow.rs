//! A real MLflow tracking server on 127.0.0.1 for the model-registry tests: the `mlflow` of the
//! test venv (`tests/requirements.txt`), a SQLite backend store and a local artifact root served
//! through the server's artifact proxy (`mlflow-artifacts:/…` URIs), all in a temporary folder.
//!
//! The server runs in a process group of its own (the `mlflow` CLI plus its uvicorn worker) and
//! the whole group is stopped when the [`MlflowServer`] drops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{ChildGuard, free_port, python, run_ok};

/// How long a server may take to answer `GET /health` (it takes 5–10 s on an idle machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment for the server and the Python client: no job-runner processes (huey consumers,
/// ~0.7 GB and a folder in /dev/shm that outlives a killed server), no telemetry.
const QUIET_ENV: [(&str, &str); 3] =
    [("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true")];

/// A running MLflow tracking server; stopped (with its worker) when dropped.
pub struct MlflowServer {
    /// `http://127.0.0.1:PORT`, the tracking URI.
    pub url: String,
    pub port: u16,
    /// Holds `mlflow.db`, `artifacts/` (the proxied artifact root) and `server.log`.
    pub dir: tempfile::TempDir,
    // Declared after `dir` but stopped first, by `Drop for MlflowServer`.
    child: ChildGuard,
}

impl std::fmt::Debug for MlflowServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowServer").field("url", &self.url).field("dir", &self.dir.path()).finish()
    }
}

impl MlflowServer {
    /// Starts a server on a free loopback port and waits until it answers `GET /health`.
    pub fn start() -> Result<MlflowServer> {
        let py = python()?;
        let mlflow = py.with_file_name("mlflow");
        if !mlflow.exists() {
            bail!("{} is missing: is mlflow in tests/requirements.txt?", mlflow.display());
        }
        let dir = tempfile::Builder::new().prefix("omen-mlflow-").tempdir()?;
        // A port picked here may be taken before the server binds it; try again with another.
        let mut last_err = None;
        for _ in 0..3 {
            match Self::try_start(&mlflow, dir.path()) {
                Ok((port, child)) => {
                    return Ok(MlflowServer { url: format!("http://127.0.0.1:{port}"), port, dir, child });
                }
                Err(e) if format!("{e:#}").contains("address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn try_start(mlflow: &Path, dir: &Path) -> Result<(u16, ChildGuard)> {
        let port = free_port();
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(mlflow);
        cmd.arg("server")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .args(["--serve-artifacts", "--workers", "1"])
            .envs(QUIET_ENV)
            .env_remove("MLFLOW_TRACKING_URI")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let mut child = ChildGuard(cmd.spawn().with_context(|| format!("starting {cmd:?}"))?);
        let t0 = Instant::now();
        loop {
            // Our uvicorn logs that it bound the port before we trust /health there: another
            // server may have taken the port we picked.
            let bound = std::fs::read_to_string(&log_path)
                .is_ok_and(|l| l.contains(&format!("running on http://127.0.0.1:{port}")));
            if bound && health(port) {
                return Ok((port, child));
            }
            if let Some(status) = child.0.try_wait()? {
                let tail = log_tail(&log_path);
                let hint = if tail.to_lowercase().contains("address already in use") {
                    " (address already in use)"
                } else {
                    ""
                };
                bail!("mlflow server exited {status} before answering{hint}; log tail:\n{tail}");
            }
            if t0.elapsed() > STARTUP_TIMEOUT {
                stop_group(&mut child);
                bail!(
                    "mlflow server on port {port} did not answer GET /health within {STARTUP_TIMEOUT:?}; log tail:\n{}",
                    log_tail(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The proxied artifact root on disk: `mlflow-artifacts:/<p>` is `artifacts_dir()/<p>`.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// The last lines of the server's output (for assertion messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("server.log"))
    }

    /// Runs a Python snippet with the test venv and `MLFLOW_TRACKING_URI` (and
    /// `MLFLOW_REGISTRY_URI`) set to this server; returns its stdout, fails with its output.
    pub fn python_client(&self, script: &str) -> Result<String> {
        let py = python()?;
        let out = run_ok(
            Command::new(py)
                .arg("-c")
                .arg(script)
                .envs(QUIET_ENV)
                .env("MLFLOW_TRACKING_URI", &self.url)
                .env("MLFLOW_REGISTRY_URI", &self.url)
                .current_dir(self.dir.path()),
        )
        .with_context(|| format!("python client against {}; server log tail:\n{}", self.url, self.log_tail()))?;
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Stops the process group led by `child`: TERM (the CLI forwards it to uvicorn and waits for
/// it), up to 10 s for the leader to exit, then KILL for whatever is left. The leader is not
/// reaped until after the KILL, so its process-group id cannot have been reused.
fn stop_group(child: &mut ChildGuard) {
    let pgid = child.0.id();
    signal_group("TERM", pgid);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) && !exited(pgid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group("KILL", pgid);
    let _ = child.0.kill();
    let _ = child.0.wait();
}

fn signal_group(signal: &str, pgid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether the (unreaped) process `pid` has exited: it is gone or a zombie (Linux /proc).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Whether `GET /health` on 127.0.0.1:`port` answers 200.
fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
}

/// The last 60 lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
