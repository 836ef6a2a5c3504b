//! The command line, as clap types. They never leave the binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// omen predicts whether a deployment will fail before it reaches all users.
#[derive(Debug, Parser)]
#[command(name = "omen", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Store root: a path, file://, s3://, gs:// or az:// URL [default: ./omen-data]
    #[arg(long, global = true, env = "OMEN_STORE")]
    pub store: Option<String>,
    /// Registry URL [default: <store>/registry]
    #[arg(long, global = true, env = "OMEN_REGISTRY")]
    pub registry: Option<String>,
    /// Configuration file (omen.toml)
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the human summary
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read inputs into the store
    #[command(subcommand)]
    Ingest(Ingest),
    /// Build model inputs from the ingested datasets
    #[command(subcommand)]
    Features(Features),
    /// Train a model on a feature table (Parquet or CSV)
    Train {
        /// failure (binary classifier) or performance (regressor)
        #[arg(value_enum)]
        target: TrainTarget,
        /// The feature table
        #[arg(long)]
        features: PathBuf,
        /// The label column
        #[arg(long)]
        label: String,
        /// Orders the time-based split (file order without it)
        #[arg(long)]
        time_column: Option<String>,
        /// The last fraction of rows held out for testing
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// A GBDT hyperparameter, LightGBM's names (num_leaves=31, learning_rate=0.05, …); repeatable
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Write the model artifact here
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also train a random forest and a logistic regression on the same split and report them
        #[arg(long)]
        baselines: bool,
        /// A column that is not an input (another outcome, an identifier); repeatable. The other
        /// labels of an omen feature folder are excluded without asking
        #[arg(long)]
        exclude: Vec<String>,
        /// Do not register the model (by default it becomes a new version in the registry, and
        /// the first version of a model its champion)
        #[arg(long)]
        no_register: bool,
    },
    /// Models in the registry: list, show, promote, roll back, delete
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Run the pipeline on the bundled samples (or the config's sources) and show the results
    Quickstart,
}

#[derive(Debug, Subcommand)]
pub enum Ingest {
    /// HTTP access logs (combined, common, nginx JSON, an nginx log_format; .gz too)
    Logs {
        /// Files, folders or glob patterns
        #[arg(required = true)]
        paths: Vec<String>,
        /// Service the requests were served by
        #[arg(long)]
        service: String,
        /// auto, combined, common, nginx-json, or an nginx log_format string
        #[arg(long)]
        format: Option<String>,
    },
    /// Git history with the change metrics of Kamei et al.
    Commits {
        /// Repository folder or git bundle file
        repo: String,
        #[arg(long)]
        service: String,
        /// Revision range A..B (history before A still informs the metrics)
        #[arg(long)]
        range: Option<String>,
    },
    /// Service metrics: query_range JSON, exposition text, long CSV, or a live Prometheus pull
    Metrics {
        /// Files, folders or glob patterns
        #[arg(conflicts_with = "prometheus", required_unless_present = "prometheus")]
        paths: Vec<String>,
        /// Prometheus server URL to pull from
        #[arg(long, requires_all = ["query", "start", "end", "step"])]
        prometheus: Option<String>,
        /// PromQL query
        #[arg(long)]
        query: Option<String>,
        /// Range start (RFC 3339 or Unix seconds)
        #[arg(long, allow_hyphen_values = true)]
        start: Option<String>,
        /// Range end (RFC 3339 or Unix seconds)
        #[arg(long, allow_hyphen_values = true)]
        end: Option<String>,
        /// Resolution (15s, 1m, or seconds)
        #[arg(long)]
        step: Option<String>,
        /// Service for samples whose labels name none
        #[arg(long)]
        service: Option<String>,
    },
    /// Deployment history: JSON Lines or CSV
    Deployments {
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Every model, its number of versions, its latest version and its aliases
    List,
    /// A model's versions and alias history (NAME), or one version's record
    /// (NAME@ALIAS, NAME/VERSION, NAME/latest)
    Show {
        #[arg(value_name = "NAME[@ALIAS|/VERSION]")]
        model: String,
    },
    /// Point an alias (champion by default) at a version, atomically
    Promote {
        name: String,
        /// A version number or `latest`
        #[arg(value_name = "VERSION")]
        number: String,
        #[arg(long, default_value = "champion")]
        alias: String,
        /// Only if the alias still points at this version (`none`: only if it is unset);
        /// otherwise fail with a conflict and change nothing
        #[arg(long, value_name = "VERSION|none")]
        expect: Option<String>,
    },
    /// Move an alias (champion by default) back to where it pointed before its current version
    Rollback {
        name: String,
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// Download a version's artifact, verified against its checksum (the champion by default)
    Pull {
        #[arg(value_name = "NAME[@ALIAS|/VERSION]")]
        model: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Delete a version: it is never loaded again and its number never reused
    Delete {
        #[arg(value_name = "NAME/VERSION")]
        model: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Features {
    /// Write `features/`: one row per deployment × checkpoint, point-in-time correct
    Build,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainTarget {
    Failure,
    Performance,
}
