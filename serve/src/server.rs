//! Putting the server together: the gRPC services (scorer, health, reflection) with TLS, auth,
//! deadlines and limits; the HTTP adapter; the model reload loop; graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omen_features::Store;
use omen_models::registry::{AnyRegistry, CHAMPION, ModelVersion, Registry, VersionRef};
use tokio::sync::{Notify, Semaphore, watch};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::auth::Tokens;
use crate::config::{ServeConfig, duration};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::models::{FAILURE, PERFORMANCE, SEQUENCE, Shared, Snapshot, load_champion, load_sequence_champion, same};
use crate::policy::Policy;
use crate::proto;
use crate::scorelog::ScoreLog;
use crate::scoring::Scorer;
use crate::service::{App, ScorerService};

/// How `omen-serve` was started.
#[derive(Debug)]
pub struct Options {
    pub registry: AnyRegistry,
    /// A bound listener for gRPC (bind it first so the address is known, port 0 included).
    pub grpc: tokio::net::TcpListener,
    pub http: Option<tokio::net::TcpListener>,
    /// History (deployments, commits) and the score log.
    pub store: Option<Store>,
    pub config: ServeConfig,
    /// PEM certificate chain and key.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub tokens: Option<Tokens>,
}

/// Loads the champions (and the store's history) into a new snapshot, keeping a loaded model
/// whose champion has not changed and the old one when a new champion fails verification.
async fn reload(registry: &AnyRegistry, store: Option<&Store>, old: &Snapshot, metrics: &Metrics, force_history: bool) -> Snapshot {
    let mut next = Snapshot {
        failure: old.failure.clone(),
        performance: old.performance.clone(),
        sequence: old.sequence.clone(),
        history: old.history.clone(),
        loaded_at: old.loaded_at,
    };
    let mut changed = false;
    for name in [FAILURE, PERFORMANCE] {
        let slot = if name == FAILURE { &mut next.failure } else { &mut next.performance };
        let current = slot.as_ref().map(|m| &m.version);
        if let Some(m) = reload_one(registry, name, current, metrics, load_champion(registry, name), |m| m.version.version).await {
            *slot = Some(Arc::new(m));
            changed = true;
        }
    }
    // The sequence models: optional, verified the same way.
    let current = next.sequence.as_ref().map(|m| &m.version);
    if let Some(m) = reload_one(registry, SEQUENCE, current, metrics, load_sequence_champion(registry), |m| m.version.version).await {
        next.sequence = Some(Arc::new(m));
        changed = true;
    }
    if changed {
        next.loaded_at = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    }
    // The services' history: reread on every reload that asks (start, SIGHUP, new models).
    if let Some(store) = store
        && (force_history || changed)
    {
        match (omen_features::history::read_deployments(store).await, omen_features::history::read_repos(store).await) {
            (Ok(deps), Ok(repos)) => {
                let mut h = crate::models::History { repos, deployments: Default::default() };
                for d in deps {
                    h.deployments.entry(d.service.clone()).or_default().push(d);
                }
                next.history = Arc::new(h);
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "the store's history could not be read; keeping the one loaded"),
        }
    }
    next
}

/// One champion: the newly loaded model when the registry's champion of `name` is not `current`
/// and `load` fetches and verifies it; `None` when nothing changed, there is no champion, or the
/// registry did not answer or the new champion was refused (counted and logged: what is loaded
/// keeps serving).
async fn reload_one<T>(
    registry: &AnyRegistry,
    name: &str,
    current: Option<&ModelVersion>,
    metrics: &Metrics,
    load: impl std::future::Future<Output = Result<Option<T>>>,
    version: impl Fn(&T) -> u64,
) -> Option<T> {
    match registry.version(name, &VersionRef::Alias(CHAMPION.into())).await {
        Ok(v) if same(current, &v) => return None,
        Ok(_) => {}
        Err(omen_models::Error::NotFound { .. }) => return None,
        Err(e) => {
            metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(model = name, error = %e, "the registry did not answer; keeping what is loaded");
            return None;
        }
    }
    match load.await {
        Ok(Some(m)) => {
            tracing::info!(model = name, version = version(&m), "loaded the champion");
            metrics.model(name, version(&m));
            metrics.reloads.fetch_add(1, Ordering::Relaxed);
            Some(m)
        }
        Ok(None) => None,
        Err(e) => {
            metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(model = name, error = %e, "refused the new champion; the loaded model keeps serving");
            None
        }
    }
}

async fn set_health(reporter: &tonic_health::server::HealthReporter, ready: bool) {
    let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
    reporter.set_service_status("omen.v1.CanaryScorer", status).await;
    reporter.set_service_status("", status).await;
}

/// Runs until `shutdown` resolves, then stops accepting calls, lets the calls in flight finish
/// and writes what the score log holds. `reload_now` (SIGHUP) asks the registry at once.
pub async fn run(opts: Options, reload_now: Arc<Notify>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let cfg = &opts.config;
    let policy: Policy = cfg.policy.clone().check()?;
    let judge = cfg.judge.clone().map(|j| j.check()).transpose().map_err(|e| Error::Config { field: format!("serve.judge.{}", e.field()), message: e.to_string() })?;
    let request_timeout = duration("serve.limits.request_timeout", &cfg.limits.request_timeout)?;
    let reload_every = duration("serve.reload_interval", &cfg.reload_interval)?;
    let flush = duration("serve.score_log.flush_interval", &cfg.score_log.flush_interval)?;
    cfg.synthetic_load.check()?;
    if cfg.limits.max_concurrent == 0 {
        return Err(Error::Config { field: "serve.limits.max_concurrent".into(), message: "must be at least 1".into() });
    }
    let workers = match cfg.limits.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let pool = crate::pool::ScoringPool::new(workers, "omen-score")
        .map_err(|e| Error::Config { field: "serve.limits.workers".into(), message: format!("cannot start {workers} scoring threads: {e}") })?;
    let metrics = Arc::new(Metrics::default());
    let (log, log_task) = match &opts.store {
        Some(s) => {
            let (l, h) = ScoreLog::start(s.clone(), cfg.score_log.buffer, cfg.score_log.batch_rows, flush, metrics.clone());
            (l, Some(h))
        }
        None => (ScoreLog::disabled(metrics.clone()), None),
    };
    let app = Arc::new(App {
        scorer: Scorer {
            policy,
            judge,
            limits: cfg.limits.clone(),
            reasons: cfg.reasons,
            synthetic_load: cfg.synthetic_load.clone(),
            judges: Default::default(),
            contexts: Default::default(),
        },
        shared: Shared::default(),
        limiter: Arc::new(Semaphore::new(cfg.limits.max_concurrent)),
        pool,
        metrics: metrics.clone(),
        log,
        tokens: opts.tokens.clone(),
        registry: opts.registry.url().to_string(),
        puller: crate::prometheus::Puller::new(&cfg.prometheus)?,
        first_seen: Default::default(),
    });
    let (reporter, health) = tonic_health::server::health_reporter();

    // The first load: serving starts either way, UNAVAILABLE until a champion exists.
    let first = reload(&opts.registry, opts.store.as_ref(), &Snapshot::default(), &metrics, true).await;
    let ready = first.failure.is_some();
    if !ready {
        tracing::warn!(registry = %opts.registry.url(), "no champion of omen-failure yet: answering UNAVAILABLE until one is promoted");
    }
    app.shared.set(first);
    set_health(&reporter, ready).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    // Reloads: on a timer and on SIGHUP.
    let reloader = {
        let (app, registry, store, reporter, mut stop) = (app.clone(), opts.registry.clone(), opts.store.clone(), reporter.clone(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                let forced = tokio::select! {
                    _ = tokio::time::sleep(reload_every) => false,
                    _ = reload_now.notified() => true,
                    _ = stop.changed() => return,
                };
                let old = app.shared.get();
                let next = reload(&registry, store.as_ref(), &old, &app.metrics, forced).await;
                let ready = next.failure.is_some();
                app.shared.set(next);
                set_health(&reporter, ready).await;
            }
        })
    };

    let grpc_addr: SocketAddr = opts.grpc.local_addr().map_err(|e| Error::Io { path: "--listen".into(), message: e.to_string() })?;
    let max = cfg.limits.max_message_bytes;
    let auth_app = app.clone();
    let interceptor = move |req: tonic::Request<()>| -> std::result::Result<tonic::Request<()>, tonic::Status> {
        auth_app.check_auth(req.metadata().get("authorization").and_then(|v| v.to_str().ok()))?;
        Ok(req)
    };
    let scorer = proto::canary_scorer_server::CanaryScorerServer::new(ScorerService { app: app.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Config { field: "reflection".into(), message: e.to_string() })?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Config { field: "reflection".into(), message: e.to_string() })?;
    let mut builder = Server::builder()
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(1024));
    let scheme = if let Some((cert, key)) = &opts.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| Error::Config { field: "--tls-cert/--tls-key".into(), message: e.to_string() })?;
        "grpcs"
    } else {
        "grpc"
    };
    let router = builder
        .add_service(health)
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1, interceptor.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1alpha, interceptor.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(scorer, interceptor));
    let mut stop = stop_rx.clone();
    // `Server::tcp_nodelay` applies only to `serve(addr)`: an incoming stream keeps its own
    // setting, and without it every answer waited ~40 ms for the client's delayed ACK (Nagle).
    let incoming = tonic::transport::server::TcpIncoming::from(opts.grpc).with_nodelay(Some(true));
    let grpc = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop.changed().await;
    }));
    eprintln!("omen-serve: listening on {scheme}://{grpc_addr}");

    let http = match opts.http {
        Some(listener) => {
            let addr = listener.local_addr().map_err(|e| Error::Io { path: "--http".into(), message: e.to_string() })?;
            eprintln!("omen-serve: HTTP adapter on http://{addr}");
            let mut stop = stop_rx.clone();
            let router = crate::http::router(app.clone(), request_timeout);
            Some(tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await
            }))
        }
        None => None,
    };

    shutdown.await;
    tracing::info!("shutting down: draining calls in flight");
    set_health(&reporter, false).await;
    let _ = stop_tx.send(true);
    let grpc_result = grpc.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    let _ = reloader.await;
    // The last answers of the score log: every sender is gone once the services are.
    drop(app);
    if let Some(t) = log_task {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    match grpc_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Io { path: grpc_addr.to_string(), message: e.to_string() }),
        Err(e) => Err(Error::Io { path: grpc_addr.to_string(), message: e.to_string() }),
    }
}
