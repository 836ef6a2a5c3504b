//! `omen-serve`: parses the command line, reads the environment and the files it names, installs
//! the tracing subscriber and the signal handlers, and calls [`omen_serve::server::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use omen_models::registry::MlflowOptions;
use omen_serve::config::ConfigFile;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server runs without transparent huge pages (`prctl(PR_SET_THP_DISABLE)`, what mimalloc's
/// `allow_thp = 0` does at its start, which is before `main`; a user's `MIMALLOC_ALLOW_THP`
/// wins). A huge-page fault on a VM whose host has taken the memory back stalls the thread that
/// touches it for milliseconds, and that thread is serving a call: at 6,000 calls/s the p99 was
/// 5.5–6.9 ms with them and 4.3–4.5 ms without, the p99.9 14–19 ms against 8.2–8.7 ms
/// (BENCHMARKS.md, "omen-serve").
#[allow(unsafe_code)] // prctl
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a process-wide flag set with integer arguments, before any other thread
        // exists. If it fails (a kernel older than 3.15) huge pages stay on, which is only slower.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// Score live canaries over gRPC (and HTTP).
#[derive(Debug, Parser)]
#[command(name = "omen-serve", version, about)]
struct Cli {
    /// Registry URL to load champion models from [default: <store>/registry]
    #[arg(long, env = "OMEN_REGISTRY")]
    registry: Option<String>,
    /// gRPC listen address
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: String,
    /// HTTP adapter listen address (POST /v1/score, /healthz, /readyz, /metrics)
    #[arg(long)]
    http: Option<String>,
    /// Store root URL: the services' history (deployments, commits) and the score log (scores/)
    #[arg(long, env = "OMEN_STORE")]
    store: Option<String>,
    /// Configuration file ([serve] of omen.toml)
    #[arg(long)]
    config: Option<PathBuf>,
    /// TLS certificate chain (PEM)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// File of bearer tokens, one per line; with it every scoring call needs one
    #[arg(long)]
    auth_tokens: Option<PathBuf>,
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Object-store options from the environment (credentials, endpoints). Never logged.
fn store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let base = cli.config.as_ref().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    let resolve = |s: &str| if s.contains("://") || base.as_os_str().is_empty() { s.to_string() } else { base.join(s).display().to_string() };
    let store_url = cli.store.clone().or_else(|| file.store.as_deref().map(resolve));
    let store = store_url
        .as_deref()
        .map(|u| omen_features::Store::open_with_options(u, store_options()))
        .transpose()
        .context("opening the store")?;
    let registry_url = cli
        .registry
        .clone()
        .or_else(|| file.registry.as_deref().map(resolve))
        .or_else(|| store.as_ref().map(|s| format!("{}/registry", s.url())))
        .context("no registry: give --registry (or --store, whose registry/ is the default)")?;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mlflow = MlflowOptions {
        token: var("MLFLOW_TRACKING_TOKEN"),
        username: var("MLFLOW_TRACKING_USERNAME"),
        password: var("MLFLOW_TRACKING_PASSWORD"),
        ..MlflowOptions::default()
    };
    let registry = omen_models::registry::open(&registry_url, store_options(), mlflow)?;
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("reading --tls-cert {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("reading --tls-key {}", k.display()))?,
        )),
        _ => None,
    };
    let tokens = cli.auth_tokens.as_deref().map(omen_serve::auth::Tokens::load).transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let grpc = tokio::net::TcpListener::bind(&cli.listen).await.with_context(|| format!("binding --listen {}", cli.listen))?;
        let http = match &cli.http {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding --http {a}"))?),
            None => None,
        };
        let reload = Arc::new(tokio::sync::Notify::new());
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let r = reload.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: asking the registry for new champions");
                r.notify_one();
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let opts = omen_serve::server::Options { registry, grpc, http, store, config: file.serve, tls, tokens };
        omen_serve::server::run(opts, reload, shutdown).await?;
        Ok::<_, anyhow::Error>(())
    })
}
