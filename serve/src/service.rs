//! The `omen.v1.CanaryScorer` gRPC service, and the one path every scoring call takes (gRPC
//! unary, stream messages, the HTTP adapter): the concurrency limit, the scoring off the async
//! runtime, the metrics, the score log.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::models::Shared;
use crate::proto;
use crate::scorelog::{ScoreLog, ScoreRow};
use crate::scoring::{Memory, Scorer};

/// What every call shares.
#[derive(Debug)]
pub struct App {
    pub scorer: Scorer,
    pub shared: Shared,
    /// One permit per call admitted (scoring or queued for the pool); none left:
    /// `RESOURCE_EXHAUSTED`.
    pub limiter: Arc<Semaphore>,
    /// The scoring threads (`[serve.limits] workers`): CPU-bound work runs here, never on the
    /// async runtime's threads.
    pub pool: crate::pool::ScoringPool,
    pub metrics: Arc<Metrics>,
    pub log: ScoreLog,
    pub tokens: Option<Tokens>,
    /// The registry models come from, without credentials.
    pub registry: String,
    /// Pulls samples for requests without any (`[serve.prometheus]`).
    pub puller: Option<crate::prometheus::Puller>,
    /// When each deployment (service, id) was first scored, for requests that say neither
    /// when their canary started nor how long ago: bounded, oldest forgotten first.
    pub first_seen: std::sync::Mutex<std::collections::HashMap<(String, String), i64>>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn code_name(c: tonic::Code) -> &'static str {
    match c {
        tonic::Code::Ok => "OK",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::Cancelled => "CANCELLED",
        _ => "INTERNAL",
    }
}

impl App {
    /// Scores one request: sheds it when the limit is reached, runs the CPU-bound work on the
    /// scoring threads, records the call and logs the answer.
    pub async fn score(self: &Arc<Self>, mut req: proto::ScoreRequest, memory: Memory, stream: bool, method: &'static str) -> (Result<proto::ScoreResponse, Status>, Memory) {
        let t0 = Instant::now();
        let notes = self.pull(&mut req).await;
        let Ok(permit) = self.limiter.clone().try_acquire_owned() else {
            self.metrics.shed.fetch_add(1, Ordering::Relaxed);
            self.metrics.observe(method, "RESOURCE_EXHAUSTED", t0.elapsed().as_secs_f64());
            return (
                Err(Status::resource_exhausted(format!(
                    "omen-serve is scoring {} calls at once, its limit ([serve.limits] max_concurrent); retry with backoff",
                    self.scorer.limits.max_concurrent
                ))),
                memory,
            );
        };
        let app = self.clone();
        let (service, deployment, weight, elapsed, n_metrics) =
            (req.service.clone(), req.deployment_id.clone(), req.current_weight, req.elapsed_seconds, req.metrics.len() as u32);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _permit = permit;
            // The caller gave up (deadline, cancellation) while the call waited: no work.
            if tx.is_closed() {
                return;
            }
            let snap = app.shared.get();
            let mut memory = memory;
            // A panic is a bug: it fails this call (INTERNAL), not the process.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.scorer.score(&snap, &req, &mut memory, stream, now_us())));
            let _ = tx.send(r.map(|r| (r, memory)).map_err(|p| {
                p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
            }));
        });
        let joined = rx.await;
        let (result, memory) = match joined {
            Ok(Ok((Ok(mut resp), m))) => {
                for n in notes {
                    resp.explanation.push_str(&format!("; {n}"));
                    resp.reasons.push(proto::Reason { kind: proto::reason::Kind::Policy as i32, name: "samples".into(), value: None, contribution: 0.0, detail: n });
                }
                (Ok(resp), m)
            }
            Ok(Ok((Err(e), m))) => (Err(Status::from(e)), m),
            Ok(Err(panic)) => {
                tracing::error!(%panic, "scoring panicked");
                (Err(Status::internal(format!("scoring failed: {panic}"))), Memory::default())
            }
            Err(_) => (Err(Status::internal("scoring failed: the scoring thread stopped")), Memory::default()),
        };
        let seconds = t0.elapsed().as_secs_f64();
        match &result {
            Ok(resp) => {
                let decision = proto::Decision::try_from(resp.decision).map(|d| d.as_str_name()).unwrap_or("DECISION_UNSPECIFIED");
                self.metrics.observe(method, "OK", seconds);
                self.metrics.decision(decision);
                self.log.push(ScoreRow {
                    ts: now_us(),
                    method,
                    service,
                    deployment_id: deployment,
                    current_weight: weight,
                    elapsed_seconds: elapsed,
                    metrics: n_metrics,
                    failure_probability: resp.failure_probability,
                    confidence: resp.confidence,
                    judge_score: resp.judge_score,
                    decision: decision.to_string(),
                    next_weight: resp.next_weight,
                    models: resp.models.iter().map(|m| format!("{}@{}", m.name, m.version)).collect::<Vec<_>>().join(","),
                    reasons: serde_json::to_string(
                        &resp.reasons.iter().map(|r| serde_json::json!({"name": r.name, "contribution": r.contribution, "detail": r.detail})).collect::<Vec<_>>(),
                    )
                    .unwrap_or_default(),
                    latency_ms: seconds * 1e3,
                });
            }
            Err(s) => self.metrics.observe(method, code_name(s.code()), seconds),
        }
        (result, memory)
    }

    /// For a request without samples, when Prometheus is configured: fixes the canary start
    /// (the request's, now − `elapsed_seconds`, the store's record of the deployment, or
    /// `lookback` before omen-serve first saw it) and pulls the series from it to now. Returns notes for the
    /// answer (a failed pull leaves the metrics empty: the judge says NODATA and the policy
    /// holds).
    async fn pull(&self, req: &mut proto::ScoreRequest) -> Vec<String> {
        let Some(puller) = &self.puller else { return vec![] };
        if !req.metrics.is_empty() || req.service.is_empty() || req.deployment_id.is_empty() {
            return vec![];
        }
        let now = now_us();
        let start = if req.started_at > 0.0 {
            (req.started_at * 1e6) as i64
        } else if req.elapsed_seconds > 0.0 && req.elapsed_seconds.is_finite() {
            now - (req.elapsed_seconds * 1e6) as i64
        } else if let Some(d) =
            self.shared.get().history.deployments.get(&req.service).and_then(|v| v.iter().find(|d| d.id == req.deployment_id).map(|d| d.started_at))
        {
            d
        } else {
            let mut seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= 10_000 {
                let mut by_age: Vec<((String, String), i64)> = seen.drain().collect();
                by_age.sort_by_key(|e| std::cmp::Reverse(e.1));
                seen.extend(by_age.into_iter().take(5_000));
            }
            *seen.entry((req.service.clone(), req.deployment_id.clone())).or_insert(now - puller.lookback)
        };
        req.started_at = start as f64 / 1e6;
        req.elapsed_seconds = ((now - start) as f64 / 1e6).max(0.0);
        match puller.fetch(&req.service, &req.deployment_id, req.started_at, now as f64 / 1e6).await {
            Ok(m) => {
                let n: usize = m.iter().map(|s| s.canary.len() + s.baseline.len() + s.loadtest.len()).sum();
                req.metrics = m;
                vec![format!("{n} samples pulled from Prometheus since {}", chrono::DateTime::from_timestamp_micros(start).map(|t| t.to_rfc3339()).unwrap_or_default())]
            }
            Err(e) => {
                tracing::warn!(error = %e, "pulling samples");
                vec![format!("no samples: {e}")]
            }
        }
    }

    /// The models loaded now.
    pub fn models(&self) -> proto::GetModelsResponse {
        let snap = self.shared.get();
        let models = [&snap.failure, &snap.performance]
            .into_iter()
            .flatten()
            .map(|m| &m.version)
            .chain(snap.sequence.as_ref().map(|s| &s.version))
            .map(crate::scoring::used)
            .collect();
        proto::GetModelsResponse { models, registry: self.registry.clone(), loaded_at: snap.loaded_at }
    }

    /// The interceptor of the protected services: a valid bearer token when auth is on.
    pub fn check_auth(&self, header: Option<&str>) -> Result<(), Status> {
        match &self.tokens {
            Some(t) if !t.check(header) => {
                self.metrics.observe("auth", "UNAUTHENTICATED", 0.0);
                Err(Status::unauthenticated("a valid bearer token is required (authorization: Bearer <token>)"))
            }
            _ => Ok(()),
        }
    }
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct ScorerService {
    pub app: Arc<App>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<proto::ScoreResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl proto::canary_scorer_server::CanaryScorer for ScorerService {
    async fn score(&self, request: Request<proto::ScoreRequest>) -> Result<Response<proto::ScoreResponse>, Status> {
        let (r, _) = self.app.score(request.into_inner(), Memory::default(), false, "Score").await;
        r.map(Response::new)
    }

    type ScoreStreamStream = ResponseStream;

    async fn score_stream(&self, request: Request<Streaming<proto::ScoreRequest>>) -> Result<Response<Self::ScoreStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let app = self.app.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut memory = Memory::default();
            loop {
                let req = match inbound.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                if memory.deployment_id.is_empty() {
                    memory.deployment_id = req.deployment_id.clone();
                } else if req.deployment_id != memory.deployment_id {
                    let msg = format!("deployment_id: a stream is one deployment, `{}`; got `{}`", memory.deployment_id, req.deployment_id);
                    let _ = tx.send(Err(Status::invalid_argument(msg))).await;
                    break;
                }
                let (r, m) = app.score(req, memory, true, "ScoreStream").await;
                memory = m;
                let failed = r.is_err();
                if tx.send(r).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_models(&self, _request: Request<proto::GetModelsRequest>) -> Result<Response<proto::GetModelsResponse>, Status> {
        Ok(Response::new(self.app.models()))
    }
}
