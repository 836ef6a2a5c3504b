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
    /// One permit per call scored at once; none left: `RESOURCE_EXHAUSTED`.
    pub limiter: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub log: ScoreLog,
    pub tokens: Option<Tokens>,
    /// The registry models come from, without credentials.
    pub registry: String,
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
    /// blocking pool, records the call and logs the answer.
    pub async fn score(self: &Arc<Self>, req: proto::ScoreRequest, memory: Memory, stream: bool, method: &'static str) -> (Result<proto::ScoreResponse, Status>, Memory) {
        let t0 = Instant::now();
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
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let snap = app.shared.get();
            let mut memory = memory;
            let r = app.scorer.score(&snap, &req, &mut memory, stream, now_us());
            (r, memory)
        })
        .await;
        let (result, memory) = match joined {
            Ok((r, m)) => (r.map_err(Status::from), m),
            Err(e) => (Err(Status::internal(format!("scoring failed: {e}"))), Memory::default()),
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

    /// The models loaded now.
    pub fn models(&self) -> proto::GetModelsResponse {
        let snap = self.shared.get();
        let models = [&snap.failure, &snap.performance]
            .into_iter()
            .flatten()
            .map(|m| proto::ModelUsed {
                name: m.version.name.clone(),
                version: m.version.version,
                alias: omen_models::registry::CHAMPION.into(),
                artifact_blake3: m.version.artifact.blake3.clone(),
            })
            .collect();
        proto::GetModelsResponse { models, registry: self.registry.clone(), loaded_at: snap.loaded_at }
    }

    /// The interceptor of the protected services: a valid bearer token when auth is on.
    pub fn check_auth(&self, header: Option<&str>) -> Result<(), Status> {
        match &self.tokens {
            Some(t) if !t.check(header) => Err(Status::unauthenticated("a valid bearer token is required (authorization: Bearer <token>)")),
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
