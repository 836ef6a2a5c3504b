//! `omen-serve`: gRPC scoring of live canaries (DESIGN §5).
//!
//! A skeleton for now: it parses the documented command line and says that scoring is not
//! available yet. The tonic server, its proto and the HTTP adapter arrive with the serving issue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Score live canaries over gRPC.
#[derive(Debug, Parser)]
#[command(name = "omen-serve", version, about)]
struct Cli {
    /// Registry URL to load champion models from
    #[arg(long, env = "OMEN_REGISTRY")]
    registry: Option<String>,
    /// gRPC listen address
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: String,
    /// HTTP adapter listen address (POST /v1/score, /healthz, /readyz, /metrics)
    #[arg(long)]
    http: Option<String>,
    /// Store root URL (score log)
    #[arg(long, env = "OMEN_STORE")]
    store: Option<String>,
    /// Configuration file
    #[arg(long)]
    config: Option<PathBuf>,
    /// TLS certificate (PEM)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// File of bearer tokens, one per line
    #[arg(long)]
    auth_tokens: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    tracing::debug!(listen = %cli.listen, "omen-serve starting");
    anyhow::bail!("gRPC scoring is not implemented yet (it arrives with the omen-serve issue); nothing is listening on {}", cli.listen)
}
