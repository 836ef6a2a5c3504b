//! `omen`: parses the command line and calls [`run`].

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omen_features::Store;
use omen_features::ingest::logs::LogFormat;
use omen_features::ingest::metrics::MetricsOptions;
use omen_pipeline::config::Config;
use omen_pipeline::ingest::{self, MetricsIngest, PrometheusPull};
use omen_pipeline::quickstart;

use crate::cli::{Cli, Command, ExportFormat, Features, Ingest, LoadCmd, ProfilesCmd, RegistryCmd, TrainTarget};
use omen_models::registry::{AnyRegistry, MlflowOptions, Progress};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tune_memory();
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// mimalloc's `purge_delay` option: its index in v3's `mi_option_e` (libmimalloc-sys 0.1.49 names
/// no constant for it; the version is pinned by Cargo.lock and `tests::mimalloc_purge_delay_index`
/// checks the index against the option's default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The batch CLI's memory settings, each left alone where the user set mimalloc's variable for it:
/// - the memory it frees stays with the process for its next allocations (mimalloc's
///   `purge_delay = -1`) instead of going back to the kernel a second later: a log ingest
///   allocates and frees each 64 MB block's columns, and faulting those pages in again cost
///   0.1–0.9 s of system time per 120 MB. The process is short-lived, so what it keeps is its
///   own peak;
/// - no transparent huge pages (`prctl(PR_SET_THP_DISABLE)`, which is what mimalloc's
///   `allow_thp = 0` does at its start, before `main`): on these VMs a huge page is made of
///   memory the host has taken back, and the first touch of the 2 MB cost a 120 MB ingest
///   1.0–1.8 s of system time in most runs (0.12 s in the others), against a steady 0.26–0.38 s
///   with 4 KB pages.
///
/// Measured in BENCHMARKS.md ("Log ingest").
#[allow(unsafe_code)] // the allocator's option setter and prctl
fn tune_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists (the setter is not
        // thread-safe); the index is in range for the linked mimalloc.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a process-wide flag set with integer arguments. If it fails (a kernel older
        // than 3.15) huge pages stay on, which is only slower.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Object-store options from the environment (credentials, endpoints). Never logged.
fn store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn progress(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_bar}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn print<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, value)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", human())?;
    }
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Simulate(args) = &cli.command {
        return run_simulate(args, cli.global.json);
    }
    let g = &cli.global;
    let is_quickstart = matches!(cli.command, Command::Quickstart);
    let config_path = g.config.clone().or_else(|| {
        // The bundled samples: the simulated history and the hand-written quirky inputs.
        let samples = std::path::PathBuf::from("data/samples/quickstart.toml");
        (is_quickstart && samples.exists()).then_some(samples)
    });
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let store_url = g
        .store
        .clone()
        .or_else(|| config.store.as_ref().map(|s| config.resolve(s)))
        .unwrap_or_else(|| "./omen-data".into());
    let store = Store::open_with_options(&store_url, store_options()).context("opening the store")?;
    let registry_url = g
        .registry
        .clone()
        .or_else(|| config.registry.as_ref().map(|s| config.resolve(s)))
        .unwrap_or_else(|| format!("{}/registry", store.url()));
    let metrics = metrics_ingest(&config);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let json = g.json;
    let mut exit = ExitCode::SUCCESS;
    rt.block_on(async {
        match cli.command {
            Command::Ingest(cmd) => {
                let pb = progress(json);
                let summary = match cmd {
                    Ingest::Logs { paths, service, format } => {
                        let f = format.or(config.ingest.logs.format.clone()).unwrap_or_else(|| "auto".into());
                        let f = LogFormat::parse(&f)?;
                        ingest::ingest_logs(&store, &paths, &service, &f, &pb).await?
                    }
                    Ingest::Commits { repo, service, range } => {
                        ingest::ingest_commits(&store, &repo, &service, range.as_deref()).await?
                    }
                    Ingest::Metrics { paths, prometheus, query, start, end, step, service } => {
                        let mut m = metrics.clone();
                        m.options.default_service = service;
                        match prometheus {
                            Some(url) => {
                                let pull = PrometheusPull {
                                    url,
                                    query: query.unwrap_or_default(),
                                    start: start.unwrap_or_default(),
                                    end: end.unwrap_or_default(),
                                    step: step.unwrap_or_default(),
                                    timeout: Duration::from_secs(60),
                                };
                                ingest::ingest_metrics_prometheus(&store, &pull, &m).await?
                            }
                            None => ingest::ingest_metrics_files(&store, &paths, &m, &pb).await?,
                        }
                    }
                    Ingest::Deployments { paths } => ingest::ingest_deployments(&store, &paths).await?,
                };
                pb.finish_and_clear();
                print(json, &summary, || summary.human())?;
            }
            Command::Features(Features::Build) => {
                let pb = progress(json);
                let summary = omen_pipeline::features::build_features(&store, &config.features, &pb).await?;
                pb.finish_and_clear();
                print(json, &summary, || summary.human())?;
            }
            Command::Registry(cmd) => run_registry(cmd, &open_registry(&registry_url)?, json).await?,
            Command::Profiles(cmd) => run_profiles(cmd, &store, &registry_url, json).await?,
            Command::Load(LoadCmd::Run(args)) => exit = run_load(args, &store, json).await?,
            Command::Train {
                target: TrainTarget::Sequence,
                step,
                window,
                stride,
                slo,
                alarm_probability,
                holdout,
                params,
                out,
                no_register,
                detector_windows,
                detector_step,
                detector_window,
                max_train_deployments,
                ..
            } => {
                let slos = slo.iter().map(|s| omen_pipeline::sequence::parse_slo(s)).collect::<Result<Vec<_>, _>>()?;
                let args = omen_pipeline::sequence::SequenceArgs {
                    params: hyperparams(&params)?,
                    step,
                    window,
                    stride,
                    holdout,
                    out,
                    slos,
                    alarm_probability,
                    detector: omen_pipeline::sequence::detector_params(&detector_step, detector_window, detector_windows)?,
                    max_train_deployments,
                };
                run_train_sequence(&store, &config, &args, &registry_url, no_register, json).await?;
            }
            Command::Train { target, features, label, time_column, holdout, params, out, baselines, mut exclude, no_register, .. } => {
                let features = features.context("--features is required for `omen train failure|performance`")?;
                let label = label.context("--label is required for `omen train failure|performance`")?;
                exclude.extend(omen_pipeline::train::schema_labels(&features));
                let args = omen_pipeline::train::TrainArgs {
                    exclude,
                    kind: match target {
                        TrainTarget::Failure => omen_pipeline::train::TrainKind::Failure,
                        _ => omen_pipeline::train::TrainKind::Performance,
                    },
                    features,
                    label,
                    time_column,
                    holdout,
                    params: gbdt_params(&params)?,
                    out,
                    baselines: if baselines { omen_pipeline::train::Baselines::All } else { omen_pipeline::train::Baselines::None },
                };
                let t0 = std::time::Instant::now();
                let table = omen_pipeline::train::load_table(&args.features).await?;
                let load = t0.elapsed().as_secs_f64();
                let trained = tokio::task::block_in_place(|| omen_pipeline::train::train(&args, table, load))?;
                let mut summary = trained.summary;
                if !no_register {
                    let registry = open_registry(&registry_url)?;
                    let pb = progress(json);
                    let mut on_progress = |p: Progress| {
                        if let Progress::Artifact { written, total } = p {
                            pb.set_length(total);
                            pb.set_position(written);
                        }
                    };
                    let reg = omen_pipeline::registry::register_trained(&registry, &args, &summary, &trained.model, &trained.bands, trained.schema, &mut on_progress)
                        .await
                        .context("registering the model")?;
                    pb.finish_and_clear();
                    summary.registered = Some(reg);
                }
                print(json, &summary, || summary.human())?;
            }
            Command::Detect(d) => {
                let selector = d
                    .series
                    .as_deref()
                    .map(omen_pipeline::detect::Selector::parse)
                    .transpose()
                    .map_err(|m| anyhow::anyhow!("--series: {m}"))?;
                let time = |flag: &str, v: &Option<String>| {
                    v.as_deref().map(omen_pipeline::detect::parse_time).transpose().map_err(|m| anyhow::anyhow!("{flag}: {m}"))
                };
                let args = omen_pipeline::detect::DetectArgs {
                    filter: omen_pipeline::detect::SeriesFilter {
                        service: d.service.clone(),
                        selector,
                        since_us: time("--since", &d.since)?,
                        until_us: time("--until", &d.until)?,
                    },
                    detector: d.detector,
                    threshold: d.threshold,
                    model: d.model.clone(),
                    step_us: d.step.as_micros() as i64,
                    merge_gap: d.merge_gap,
                    min_steps: d.min_steps as usize,
                    cusum: d.cusum,
                    zscore: omen_models::sequence::detect::ZScoreParams { window: d.zscore_window, min_history: (d.zscore_window / 3).max(2) },
                    ewma: omen_models::sequence::detect::EwmaParams { alpha: d.ewma_alpha, ..Default::default() },
                    labels: d.labels.clone(),
                    sweep: d.sweep.clone(),
                    slack_us: d.slack.as_micros() as i64,
                    write: !d.no_write,
                };
                let model = if d.detector == omen_pipeline::detect::DetectorChoice::Lstm {
                    let registry = open_registry(&registry_url)?;
                    Some(omen_pipeline::detect::load_detector_model(&registry, &d.model).await?)
                } else {
                    None
                };
                let report = omen_pipeline::detect::detect(&store, model.as_ref().map(|(m, v)| (m, *v)), &args).await?;
                print(json, &report, || report.human())?;
            }
            Command::Evaluate { report, models, holdout, sequence, performance } => {
                let mut cfg = config.evaluate.clone();
                if let Some(h) = holdout {
                    cfg.holdout = h;
                }
                let (policy, judge) = omen_pipeline::evaluate::serve_settings(config.serve.as_ref())?;
                let registry = open_registry(&registry_url)?;
                let candidates = omen_pipeline::evaluate::load_candidates(&registry, &models).await?;
                let sequence = omen_pipeline::evaluate::load_sequence(&registry, sequence.as_deref()).await?;
                let performance = omen_pipeline::evaluate::load_performance(&registry, performance.as_deref()).await?;
                let args = omen_pipeline::evaluate::EvaluateArgs { models, config: cfg, policy, judge, sequence, performance, holdout_after_us: None };
                let mut e = omen_pipeline::evaluate::evaluate(&store, &registry_url, &candidates, &args).await?;
                if let Some(dir) = &report {
                    e.report = Some(dir.join("index.html").display().to_string());
                    omen_pipeline::evaluate::write_report(dir, &e)?;
                }
                print(json, &e, || e.human())?;
            }
            Command::Retrain { dry_run } => {
                let pb = progress(json);
                let now = chrono::Utc::now();
                let owner = omen_pipeline::retrain::Owner {
                    run_id: format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), std::process::id()),
                    pid: std::process::id(),
                    host: std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into()),
                    started_at: now.to_rfc3339(),
                };
                let registry = open_registry(&registry_url)?;
                let rep = omen_pipeline::retrain::retrain(&store, &registry, &config, &metrics, owner, dry_run, &pb).await?;
                pb.finish_and_clear();
                print(json, &rep, || rep.human())?;
                if rep.exit_code != 0 {
                    eprintln!("omen retrain: {:?}: {}", rep.outcome, rep.reasons.join("; "));
                }
                exit = ExitCode::from(rep.exit_code);
            }
            Command::Simulate(_) => anyhow::bail!("simulate is handled before the store is opened"),
            Command::Quickstart => {
                let Some(path) = &config_path else {
                    anyhow::bail!("quickstart needs --config omen.toml (or data/samples/quickstart.toml in the current folder)");
                };
                let pb = progress(json);
                // omen-serve is built beside omen (`cargo build --workspace`).
                let serve_binary = std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join(format!("omen-serve{}", std::env::consts::EXE_SUFFIX))))
                    .filter(|p| p.is_file());
                let opts = quickstart::QuickstartOptions { registry_url: registry_url.clone(), config_path: path.clone(), serve_binary, canaries: 3 };
                let report = quickstart::run(&store, &open_registry(&registry_url)?, &config, &metrics, &opts, &pb).await?;
                pb.finish_and_clear();
                print(json, &report, || report.human())?;
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit)
}

/// `omen simulate`: writes files only (no store, no registry).
fn run_simulate(args: &cli::SimulateArgs, json: bool) -> anyhow::Result<ExitCode> {
    use omen_pipeline::simulate::{RepoFormat, SimulateParams, simulate};
    let params = SimulateParams {
        out: args.out.clone(),
        services: usize::try_from(args.services)?,
        days: args.days,
        seed: args.seed,
        start: args.start.clone(),
        deploys_per_day: args.deploys_per_day,
        log_lines_per_day: args.log_lines_per_day,
        metrics_step: args.metrics_step.clone(),
        repos: match args.repos {
            cli::RepoFormatArg::Bare => RepoFormat::Bare,
            cli::RepoFormatArg::Bundle => RepoFormat::Bundle,
        },
        history_days: args.history_days,
    }
    .check()?;
    let summary = simulate(&params)?;
    print(json, &summary, || summary.human())?;
    Ok(ExitCode::SUCCESS)
}

/// `omen load run`: exit 0 when the run passed (its SLA met), 1 when not, 2 on a usage error.
async fn run_load(args: cli::LoadRun, store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    use omen_pipeline::load;
    let opts = load::LoadOptions {
        rps: args.rps.unwrap_or(10.0),
        stress: args.stress,
        duration: args.duration,
        timeout: args.timeout,
        max_in_flight: args.max_in_flight,
        seed: args.seed,
        threads: args.threads.map_or_else(load::default_threads, usize::from),
        connections: args.connections,
    };
    let report = match (&args.profile, &args.transactions) {
        (Some(version), _) => {
            let Some(target) = args.target.as_deref() else {
                eprintln!("error: --target URL is required with --profile");
                return Ok(ExitCode::from(2));
            };
            let set = omen_pipeline::profiles::load(store, version).await?;
            let mut opts = opts;
            // Without --rps, the profile set's peak rate.
            if args.rps.is_none() {
                opts.rps = set.rate_rps_peak.max(0.1);
            }
            load::run_workload(&omen_pipeline::profiles::workload(&set), target, &opts, store).await?
        }
        (None, Some(path)) => {
            let file = load::load_transactions(path)?;
            if args.target.is_none() && file.target.is_none() {
                eprintln!("error: --target URL is required: {} names no `target`", path.display());
                return Ok(ExitCode::from(2));
            }
            load::run_transactions(&file, &path.display().to_string(), args.target.as_deref(), &opts, store).await?
        }
        (None, None) => anyhow::bail!("one of --profile and --transactions is required"),
    };
    print(json, &report, || report.human())?;
    if report.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("omen load run: {}", report.messages.last().map_or("the run did not pass", String::as_str));
        Ok(ExitCode::from(1))
    }
}

async fn run_profiles(cmd: ProfilesCmd, store: &Store, registry_url: &str, json: bool) -> anyhow::Result<()> {
    use omen_pipeline::profiles as p;
    match cmd {
        ProfilesCmd::Fit { service, k, half_life, sample, seed } => {
            let k = match k.as_str() {
                "auto" => None,
                n => Some(n.parse::<usize>().map_err(|_| anyhow::anyhow!("--k: `{n}` is neither a number nor `auto`"))?),
            };
            let registry = open_registry(registry_url)?;
            let args = p::FitArgs { service, k, half_life, sample, seed, max_route_groups: 8 };
            let rep = p::fit(store, Some(&registry), &args).await?;
            print(json, &rep, || rep.human())
        }
        ProfilesCmd::List => {
            let sets = p::list(store).await?;
            let rows: Vec<serde_json::Value> = sets
                .iter()
                .map(|s| serde_json::json!({"version": s.version, "service": s.service, "k": s.k, "rows": s.rows, "data_from": s.data_from, "data_to": s.data_to, "rate_rps_peak": s.rate_rps_peak}))
                .collect();
            print(json, &serde_json::json!({"profile_sets": rows}), || {
                let mut out = String::new();
                for s in &sets {
                    out += &format!("{}  {} profiles  {} requests  {} to {}{}\n", s.version, s.k, s.rows, s.data_from, s.data_to, s.service.as_ref().map(|x| format!("  ({x})")).unwrap_or_default());
                }
                if sets.is_empty() {
                    out += "no profile sets: run `omen profiles fit`\n";
                }
                out
            })
        }
        ProfilesCmd::Show { set } => {
            let set = p::load(store, &set).await?;
            print(json, &set, || {
                let mut out = format!("profile set {} ({} profiles, {} requests, {} to {}, peak {:.2} req/s)\n", set.version, set.k, set.rows, set.data_from, set.data_to, set.rate_rps_peak);
                for pr in &set.profiles {
                    out += &format!("  {}: {:.1} % of traffic, {:.2} req/s at peak, p50 {:.0} B, {:.1} ms\n", pr.id, pr.share * 100.0, pr.rate_rps_peak, pr.bytes.p50, pr.latency_ms.p50);
                    for r in pr.routes.iter().take(3) {
                        out += &format!("      {:.0} %  {} {}\n", r.share * 100.0, r.method, r.route);
                    }
                }
                out
            })
        }
        ProfilesCmd::Diff { v1, v2, max_distance } => {
            let (a, b) = (p::load(store, &v1).await?, p::load(store, &v2).await?);
            let changes = p::diff(&a, &b, max_distance);
            print(json, &serde_json::json!({"from": a.version, "to": b.version, "changes": changes}), || {
                let mut out = format!("{} → {}\n", a.version, b.version);
                for c in &changes {
                    out += &format!(
                        "  {:<9} {:>4} → {:<4} {:5.1} % → {:5.1} %  {}\n",
                        c.change,
                        c.old.as_deref().unwrap_or("-"),
                        c.new.as_deref().unwrap_or("-"),
                        c.share_old * 100.0,
                        c.share_new * 100.0,
                        c.top_route
                    );
                }
                out
            })
        }
        ProfilesCmd::Export { set, format, out, users, stress, percent_of_peak, duration, seed } => {
            let set = p::load(store, &set).await?;
            let o = p::ExportOptions { users, stress, percent_of_peak, duration, seed };
            let text = match format {
                ExportFormat::Locust => p::export_locust(&set, &o)?,
                ExportFormat::K6 => p::export_k6(&set, &o)?,
                ExportFormat::Json => serde_json::to_string_pretty(&set)?,
            };
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            let rep = serde_json::json!({"version": set.version, "format": format!("{format:?}").to_lowercase(), "out": out.display().to_string(), "rate_rps": o.rate(&set), "users": users});
            print(json, &rep, || format!("profile set {} exported to {} ({:.2} req/s)\n", set.version, out.display(), o.rate(&set)))
        }
    }
}

/// The registry a URL names, with MLflow credentials from the environment (never logged).
fn open_registry(url: &str) -> anyhow::Result<AnyRegistry> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mlflow = MlflowOptions {
        token: var("MLFLOW_TRACKING_TOKEN"),
        username: var("MLFLOW_TRACKING_USERNAME"),
        password: var("MLFLOW_TRACKING_PASSWORD"),
        ..MlflowOptions::default()
    };
    Ok(omen_models::registry::open(url, store_options(), mlflow)?)
}

async fn run_registry(cmd: RegistryCmd, registry: &AnyRegistry, json: bool) -> anyhow::Result<()> {
    use omen_pipeline::registry as r;
    match cmd {
        RegistryCmd::List => {
            let rep = r::list(registry).await?;
            print(json, &rep, || rep.human())
        }
        RegistryCmd::Show { model } => {
            let rep = r::show(registry, &model).await?;
            print(json, &rep, || rep.human())
        }
        RegistryCmd::Promote { name, number, alias, expect } => {
            let rep = r::promote(registry, &name, &number, &alias, r::parse_expect(expect.as_deref())?).await?;
            print(json, &rep, || rep.human())
        }
        RegistryCmd::Rollback { name, alias } => {
            let rep = r::rollback(registry, &name, &alias).await?;
            print(json, &rep, || rep.human())
        }
        RegistryCmd::Pull { model, out } => {
            let rep = r::pull(registry, &model, &out).await?;
            print(json, &rep, || {
                format!("{} version {} ({} bytes, blake3 {}, checksum verified) written to {}\n", rep.name, rep.version, rep.bytes, rep.blake3, rep.out)
            })
        }
        RegistryCmd::Delete { model } => {
            let rep = r::delete(registry, &model).await?;
            print(json, &rep, || {
                let mut s = format!("{} version {} deleted\n", rep.name, rep.version);
                if !rep.dangling_aliases.is_empty() {
                    s += &format!("  aliases {} still point at it and refuse to load until moved\n", rep.dangling_aliases.join(", "));
                }
                s
            })
        }
    }
}

/// GBDT hyperparameters from `--param key=value` flags over the defaults.
/// `omen train sequence`: reads the store, trains with an epoch progress bar, registers.
async fn run_train_sequence(
    store: &Store,
    config: &Config,
    args: &omen_pipeline::sequence::SequenceArgs,
    registry_url: &str,
    no_register: bool,
    json: bool,
) -> anyhow::Result<()> {
    let data = omen_pipeline::sequence::read_sequence_data_for(store, &config.features, args).await?;
    let pb = progress(json);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} epoch {pos}/{len} {wide_bar} {elapsed}") {
        pb.set_style(style);
    }
    pb.set_length(args.params.epochs as u64);
    let mut on_epoch = |r: &omen_models::sequence::EpochReport| {
        pb.set_message(format!("{} loss {:.4} valid {:.4}", r.model, r.train_loss, r.valid_loss));
        pb.set_position(r.epoch as u64);
    };
    let mut trained = tokio::task::block_in_place(|| {
        omen_pipeline::sequence::train_sequence(&data, &config.features, args, &mut on_epoch)
    })?;
    pb.finish_and_clear();
    if !no_register {
        let registry = open_registry(registry_url)?;
        let mut on_progress = |_: Progress| {};
        let reg = omen_pipeline::sequence::register_sequence(&registry, &trained, &mut on_progress)
            .await
            .context("registering the model")?;
        trained.summary.registered = Some(reg);
    }
    print(json, &trained.summary, || trained.summary.human())?;
    Ok(())
}

/// `--param KEY=VALUE` flags over the defaults of `T` (its serde field names); a value with
/// commas is a list of numbers.
fn hyperparams<T: serde::Serialize + serde::de::DeserializeOwned + Default>(flags: &[String]) -> anyhow::Result<T> {
    let mut map = match serde_json::to_value(T::default())? {
        serde_json::Value::Object(m) => m,
        _ => anyhow::bail!("hyperparameters are not an object"),
    };
    let scalar = |v: &str| match v {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        _ => match v.parse::<i64>() {
            Ok(i) => i.into(),
            Err(_) => v.parse::<f64>().map(Into::into).unwrap_or_else(|_| v.into()),
        },
    };
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("--param {f}: expected KEY=VALUE");
        };
        if !map.contains_key(k) {
            anyhow::bail!("--param {k}: unknown hyperparameter (known: {})", map.keys().cloned().collect::<Vec<_>>().join(", "));
        }
        let value = if v.contains(',') { v.split(',').map(|x| scalar(x.trim())).collect() } else { scalar(v) };
        map.insert(k.to_string(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| anyhow::anyhow!("--param: {e}"))
}

fn gbdt_params(flags: &[String]) -> anyhow::Result<omen_models::gbdt::GbdtParams> {
    let mut map = match serde_json::to_value(omen_models::gbdt::GbdtParams::default())? {
        serde_json::Value::Object(m) => m,
        _ => anyhow::bail!("hyperparameters are not an object"),
    };
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("--param {f}: expected KEY=VALUE");
        };
        let value = match v {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => match v.parse::<i64>() {
                Ok(i) => i.into(),
                Err(_) => match v.parse::<f64>() {
                    Ok(x) => x.into(),
                    Err(_) => v.into(),
                },
            },
        };
        if !map.contains_key(k) {
            anyhow::bail!("--param {k}: unknown hyperparameter (known: {})", map.keys().cloned().collect::<Vec<_>>().join(", "));
        }
        map.insert(k.to_string(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| anyhow::anyhow!("--param: {e}"))
}

fn metrics_ingest(config: &Config) -> MetricsIngest {
    let mut options = MetricsOptions::default();
    let m = &config.ingest.metrics;
    if let Some(v) = &m.service_labels {
        options.aliases.service = v.clone();
    }
    if let Some(v) = &m.deployment_labels {
        options.aliases.deployment = v.clone();
    }
    if let Some(v) = &m.role_labels {
        options.aliases.role = v.clone();
    }
    MetricsIngest { options }
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every subcommand (they otherwise run only when one is used).
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    /// The option `tune_memory` sets is mimalloc's `purge_delay`: in a process that has not set
    /// it, it reads its default (1000 ms) between `eager_commit_delay` (1) and `use_numa_nodes` (0).
    #[test]
    #[allow(unsafe_code)] // reads of the allocator's options
    fn mimalloc_purge_delay_index() {
        use libmimalloc_sys::mi_option_get;
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        let i = super::MI_OPTION_PURGE_DELAY;
        // SAFETY: reads only; indices below `_mi_option_last`.
        let got = unsafe { [mi_option_get(i - 1), mi_option_get(i), mi_option_get(i + 1)] };
        assert_eq!(got, [1, 1000, 0]);
    }
}
