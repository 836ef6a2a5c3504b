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
    /// Train a model on a feature table (Parquet or CSV), or the sequence models on the store
    Train {
        /// failure (binary classifier), performance (regressor), or sequence (the LSTM
        /// forecaster and failure classifier, from the store's metrics and deployments)
        #[arg(value_enum)]
        target: TrainTarget,
        /// The feature table (failure, performance)
        #[arg(long, required_if_eq_any([("target", "failure"), ("target", "performance")]))]
        features: Option<PathBuf>,
        /// The label column (failure, performance)
        #[arg(long, required_if_eq_any([("target", "failure"), ("target", "performance")]))]
        label: Option<String>,
        /// sequence: resampling step of the windows
        #[arg(long, default_value = "30s")]
        step: String,
        /// sequence: steps per window
        #[arg(long, default_value_t = 60)]
        window: usize,
        /// sequence: steps between consecutive training windows of a deployment
        #[arg(long, default_value_t = 4)]
        stride: usize,
        /// sequence: an SLO to evaluate predictive rollback on (METRIC<=VALUE or METRIC>=VALUE);
        /// repeatable
        #[arg(long, value_name = "METRIC<=VALUE")]
        slo: Vec<String>,
        /// sequence: the breach probability at which predictive rollback alarms
        #[arg(long, default_value_t = 0.5)]
        alarm_probability: f64,
        /// sequence: training windows of the series detector of `omen detect` (0: no detector)
        #[arg(long, default_value_t = 20_000)]
        detector_windows: usize,
        /// sequence: the series detector's resampling step
        #[arg(long, default_value = "60s")]
        detector_step: String,
        /// sequence: the series detector's window, in steps
        #[arg(long, default_value_t = 30)]
        detector_window: usize,
        /// sequence: fit on at most this many of the most recent training deployments (all by
        /// default; the validation and held-out deployments do not change)
        #[arg(long)]
        max_train_deployments: Option<usize>,
        /// Orders the time-based split (file order without it)
        #[arg(long)]
        time_column: Option<String>,
        /// The last fraction of rows held out for testing
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// A hyperparameter; repeatable. GBDT: LightGBM's names (num_leaves=31, learning_rate=0.05, …);
        /// sequence: hidden=64, epochs=40, learning_rate=0.01, patience=6, seed=1, horizon=10,
        /// quantiles=0.1,0.5,0.9, …
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
    /// Behavioural request profiles (k-means over requests/): fit, list, show, diff, export
    #[command(subcommand)]
    Profiles(ProfilesCmd),
    /// Generate load against a target (open model at a constant arrival rate)
    #[command(subcommand)]
    Load(LoadCmd),
    /// Run the pipeline on the bundled samples (or the config's sources) and show the results
    Quickstart,
    /// Write a simulated deployment history (logs, git, metrics, deployments, omen.toml) to DIR
    Simulate(SimulateArgs),
    /// Detect anomalies in the store's metric series (one per service, metric and label set)
    /// and write them to anomalies/; with --labels, event-level precision, recall and F1
    Detect(DetectCli),
    /// Evaluate models on a time-ordered hold-out of the store's deployments: classifier figures
    /// and canary decisions replayed against the `mann-whitney` reference judge
    Evaluate {
        /// Write the report here: index.html (self-contained) and metrics.json
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// A model version to evaluate; repeatable [default: omen-failure@champion]
        #[arg(long = "model", value_name = "NAME[@ALIAS|/VERSION]")]
        models: Vec<String>,
        /// The last fraction of deployments (by start) held out [default: [evaluate] holdout, 0.2]
        #[arg(long)]
        holdout: Option<f64>,
        /// The sequence models whose forecast SLO breaches take part in the replayed decisions,
        /// as in omen-serve; `none` for none [default: omen-sequence@champion, when there is one]
        #[arg(long, value_name = "NAME[@ALIAS|/VERSION]|none")]
        sequence: Option<String>,
        /// The performance model whose predictions at 100 % traffic meet [serve.policy.slo] in
        /// the replayed decisions; `none` for none [default: omen-performance@champion, when
        /// there is one]
        #[arg(long, value_name = "NAME[@ALIAS|/VERSION]|none")]
        performance: Option<String>,
    },
    /// The scheduled job: ingest the configured sources, build features, fit profiles, train
    /// challengers, evaluate them against the champion and the reference judge, promote or not,
    /// and write the report to the store (reports/<run-id>/)
    #[command(after_help = "Exit codes:\n  0  a challenger was promoted, or nothing to promote (the champion stays)\n  3  the challenger was rejected by a guardrail ([retrain] min_auc, max_ece, false rollbacks)\n  4  another run holds the store's lock (locks/retrain.json); nothing was done\n  1  an error\n  2  a usage error")]
    Retrain {
        /// Do everything except registering and promoting; say what would be done
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct DetectCli {
    /// Only this service's series
    #[arg(long)]
    pub service: Option<String>,
    /// Only the series this selector matches: `name`, `name{label="v",label=~"re",…}`, `{…}`
    #[arg(long, value_name = "SELECTOR")]
    pub series: Option<String>,
    /// Only samples at or after this time (RFC 3339, YYYY-MM-DD or Unix seconds)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only samples at or before this time
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// The detector: the omen-sequence model's series forecaster, or a baseline
    #[arg(long, value_enum, default_value = "lstm")]
    pub detector: omen_pipeline::detect::DetectorChoice,
    /// The omen-sequence version for `lstm`: NAME@ALIAS, NAME/VERSION or NAME/latest
    #[arg(long, default_value = "omen-sequence@champion")]
    pub model: String,
    /// Alarm when a step's score (a standardised residual or z-score) reaches this
    #[arg(long, default_value_t = 6.0)]
    pub threshold: f64,
    /// Resampling step of the baselines (`lstm` uses its model's)
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub step: std::time::Duration,
    /// Alarmed runs at most this many steps apart are one alarm
    #[arg(long, default_value_t = 2)]
    pub merge_gap: usize,
    /// An alarm needs at least this many steps at or above the threshold (like Prometheus' `for`)
    #[arg(long = "for", value_name = "STEPS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_steps: u32,
    /// Threshold a CUSUM of the step scores with this drift instead of the scores themselves
    /// (sustained moderate deviations add up; isolated ones decay)
    #[arg(long, value_name = "DRIFT")]
    pub cusum: Option<f64>,
    /// zscore: steps of history
    #[arg(long, default_value_t = 30)]
    pub zscore_window: usize,
    /// ewma: weight of the newest value
    #[arg(long, default_value_t = 0.1)]
    pub ewma_alpha: f64,
    /// Labelled windows (CSV `service,series,start,end`): report event-level precision, recall, F1
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// More thresholds to evaluate --labels at (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "X,Y,…")]
    pub sweep: Vec<f64>,
    /// An alarm this long after a labelled window's end still counts for it
    #[arg(long, default_value = "0s", value_parser = duration_or_zero)]
    pub slack: std::time::Duration,
    /// Report only; do not write anomalies/
    #[arg(long)]
    pub no_write: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder (must not exist, or be empty)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of services
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub services: u64,
    /// Number of days
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Seed of every random choice (same seed, same bytes)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First simulated day (UTC)
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-01-05", value_parser = simulate_start)]
    pub start: String,
    /// Mean deployments per service and working day
    #[arg(long, default_value_t = 1.0, value_parser = positive_number, allow_hyphen_values = true)]
    pub deploys_per_day: f64,
    /// Mean access-log lines per service and day (the log samples the modelled traffic)
    #[arg(long, default_value_t = 200.0)]
    pub log_lines_per_day: f64,
    /// Metric resolution (query_range step), whole seconds from 5s to 10m
    #[arg(long, default_value = "60s", value_parser = simulate_step)]
    pub metrics_step: String,
    /// Repositories as bare folders or as git bundle files
    #[arg(long, value_enum, default_value = "bare")]
    pub repos: RepoFormatArg,
    /// Days of git history before the first deployment
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub history_days: u32,
}

fn simulate_start(s: &str) -> Result<String, String> {
    omen_pipeline::simulate::parse_start(s).map(|_| s.to_string())
}

fn simulate_step(s: &str) -> Result<String, String> {
    omen_pipeline::simulate::parse_step(s).map(|_| s.to_string())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RepoFormatArg {
    Bare,
    Bundle,
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
pub enum ProfilesCmd {
    /// Fit a profile set on requests/ and store it (profiles/) and register it (omen-profiles)
    Fit {
        /// Only this service's requests
        #[arg(long)]
        service: Option<String>,
        /// Number of profiles, or `auto` (chosen by the silhouette)
        #[arg(long, default_value = "auto")]
        k: String,
        /// Recent traffic counts more: a request this old counts half
        #[arg(long, default_value = "7d")]
        half_life: String,
        /// Requests the clustering is fitted on (drawn by recency weight); all are assigned
        #[arg(long, default_value_t = 100_000)]
        sample: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The stored profile sets
    List,
    /// One profile set (VERSION, a unique prefix of it, or `latest`)
    Show {
        #[arg(value_name = "VERSION")]
        set: String,
    },
    /// Which profiles grew, shrank, appeared or vanished from V1 to V2
    Diff {
        v1: String,
        v2: String,
        /// Centroids further apart than this (standardised units) are different profiles
        #[arg(long, default_value_t = 1.5)]
        max_distance: f64,
    },
    /// Export a profile set as load: a Locust locustfile, a k6 script, or JSON
    Export {
        #[arg(value_name = "VERSION")]
        set: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
        /// Virtual users (Locust users, k6 pre-allocated VUs)
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Multiplier of the rate
        #[arg(long, default_value_t = 1.0)]
        stress: f64,
        /// The rate as a percentage of the profile set's peak rate
        #[arg(long, default_value_t = 100.0)]
        percent_of_peak: f64,
        /// Run time of the k6 scenarios
        #[arg(long, default_value = "10m")]
        duration: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Locust,
    K6,
    Json,
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
    Sequence,
}

#[derive(Debug, Subcommand)]
pub enum LoadCmd {
    /// Replay a profile set or a synthetic-transactions file at a constant arrival rate;
    /// results go to `synthetic_runs/` in the store. Exit 1 when the SLA is not met
    Run(LoadRun),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("workload").required(true).args(["profile", "transactions"])))]
pub struct LoadRun {
    /// A profile set version (or `latest`) to replay
    #[arg(long, value_name = "VERSION")]
    pub profile: Option<String>,
    /// A synthetic-transactions file (YAML)
    #[arg(long, value_name = "FILE.yaml")]
    pub transactions: Option<PathBuf>,
    /// Base URL of the target (http or https) [default: the transactions file's `target`]
    #[arg(long, value_name = "URL", value_parser = target_url)]
    pub target: Option<String>,
    /// Arrivals per second [default: the profile set's peak rate; 10 for transactions]
    #[arg(long, value_name = "N", value_parser = positive_number, allow_hyphen_values = true)]
    pub rps: Option<f64>,
    /// How long arrivals are issued: 500ms, 30s, 5m, 1h
    #[arg(long, value_name = "D", default_value = "30s", value_parser = positive_duration, allow_hyphen_values = true)]
    pub duration: std::time::Duration,
    /// Multiplier of the arrival rate
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = positive_number, allow_hyphen_values = true)]
    pub stress: f64,
    /// Per request, from its intended send time; the run ends by --duration + --timeout
    #[arg(long, value_name = "D", default_value = "10s", value_parser = positive_duration)]
    pub timeout: std::time::Duration,
    /// Arrivals running at once beyond which new ones are dropped (never delayed)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Seed of the random choices (requests of a stream, placeholder values)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads sending requests, each with its own connections [default: half the cores, 1 to 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Connections per target host at most; arrivals beyond wait for one, the wait counted in
    /// their latency [default: --max-in-flight]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: Option<u64>,
}

fn positive_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a positive number, got {v}")),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

fn duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" || s.trim() == "0s" {
        return Ok(std::time::Duration::ZERO);
    }
    positive_duration(s)
}

fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = omen_pipeline::load::parse_duration(s)?;
    if d.is_zero() { Err(format!("`{s}`: must be positive")) } else { Ok(d) }
}

fn target_url(s: &str) -> Result<String, String> {
    omen_pipeline::load::check_target(s).map(|_| s.to_string())
}
