//! The HTTP adapter (`--http ADDR`): the same scoring as JSON for Argo Rollouts' Web metric
//! provider and Flagger webhooks, plus probes and Prometheus metrics.
//!
//! - `POST /v1/score`: a `ScoreRequest` in the proto3 JSON mapping (`deploymentId` or
//!   `deployment_id`, enums by name), answered with the `ScoreResponse` in the same mapping,
//!   every field present (`"decision": "PROMOTE"`, `"nextWeight": 25`), so a `jsonPath` never
//!   misses a default. Errors: `{"code": "INVALID_ARGUMENT", "message": "metrics[0].metric:
//!   required"}` with 400; 401 without a valid token when auth is on; 429 when shedding; 503
//!   without a model; 504 past the deadline.
//! - `POST /v1/flagger?gate=check|promotion`: a Flagger webhook. Flagger sends its own payload
//!   (`name`, `namespace`, `phase`, `checksum`, `metadata`); the service is `metadata.service`
//!   (else `name`), the deployment `metadata.deployment` (else `checksum`, else `name`), the
//!   weight `metadata.weight` when given, and the samples are pulled from Prometheus
//!   (`[serve.prometheus]`). As a `rollout` webhook (`gate=check`, the default) it answers 200
//!   unless the decision is `ROLLBACK` (409: a failed check, and Flagger rolls back after its
//!   threshold); as a `confirm-promotion` webhook (`gate=promotion`) 200 only for `PROMOTE` or
//!   `CONTINUE` (403 otherwise: Flagger waits and asks again). The body is the score either way.
//! - `GET /healthz`: 200 while the process runs. `GET /readyz`: 200 once a failure model is
//!   loaded, 503 before.
//! - `GET /metrics`: Prometheus text format.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::proto;
use crate::scoring::Memory;
use crate::service::App;

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(proto::DESCRIPTOR).expect("the descriptor set built by build.rs decodes"));

/// The adapter's routes.
pub fn router(app: Arc<App>, timeout: Duration) -> Router {
    Router::new()
        .route("/v1/score", post(score))
        .route("/v1/flagger", post(flagger))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state((app, timeout))
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn grpc_to_http(s: &tonic::Status) -> (StatusCode, &'static str) {
    match s.code() {
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        tonic::Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        tonic::Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        tonic::Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// A JSON body to a `ScoreRequest`, through the descriptor (the proto3 JSON mapping).
pub fn request_from_json(body: &[u8]) -> Result<proto::ScoreRequest, String> {
    let desc = POOL.get_message_by_name("omen.v1.ScoreRequest").ok_or("no omen.v1.ScoreRequest in the descriptor")?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let msg = DynamicMessage::deserialize(desc, &mut de).map_err(|e| format!("body: {e}"))?;
    de.end().map_err(|e| format!("body: {e}"))?;
    msg.transcode_to::<proto::ScoreRequest>().map_err(|e| format!("body: {e}"))
}

/// A `ScoreResponse` as proto3 JSON with every field present.
pub fn response_to_json(resp: &proto::ScoreResponse) -> Result<String, String> {
    let desc = POOL.get_message_by_name("omen.v1.ScoreResponse").ok_or("no omen.v1.ScoreResponse in the descriptor")?;
    let mut msg = DynamicMessage::new(desc);
    msg.transcode_from(resp).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize_with_options(&mut ser, &SerializeOptions::new().skip_default_fields(false)).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

async fn score(State((app, timeout)): State<(Arc<App>, Duration)>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(s) = app.check_auth(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", s.message().to_string());
    }
    if body.len() > app.scorer.limits.max_message_bytes {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "RESOURCE_EXHAUSTED", format!("body of {} bytes, at most {}", body.len(), app.scorer.limits.max_message_bytes));
    }
    let req = match request_from_json(&body) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m),
    };
    let result = match tokio::time::timeout(timeout, app.score(req, Memory::default(), false, "http")).await {
        Ok((r, _)) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
    };
    match result {
        Ok(resp) => match response_to_json(&resp) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e),
        },
        Err(s) => {
            let (status, code) = grpc_to_http(&s);
            error(status, code, s.message().to_string())
        }
    }
}

async fn ready(State((app, _)): State<(Arc<App>, Duration)>) -> Response {
    let snap = app.shared.get();
    match &snap.failure {
        Some(m) => (StatusCode::OK, format!("ready: {} version {}\n", m.version.name, m.version.version)).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no champion of omen-failure loaded\n").into_response(),
    }
}

async fn metrics(State((app, _)): State<(Arc<App>, Duration)>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

/// Flagger's webhook payload.
#[derive(Debug, serde::Deserialize)]
struct FlaggerPayload {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    checksum: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

async fn flagger(
    State((app, timeout)): State<(Arc<App>, Duration)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(s) = app.check_auth(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", s.message().to_string());
    }
    let gate = query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("gate="))).unwrap_or("check").to_string();
    if gate != "check" && gate != "promotion" {
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", format!("gate: `{gate}` is neither `check` nor `promotion`"));
    }
    let p: FlaggerPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", format!("body: not a Flagger webhook payload: {e}")),
    };
    let weight = match p.metadata.get("weight").map(|w| w.parse::<f64>()) {
        Some(Ok(w)) => w,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "metadata.weight: not a number".into()),
        None => 0.0,
    };
    let deployment = p.metadata.get("deployment").cloned().unwrap_or_else(|| if p.checksum.is_empty() { format!("{}.{}", p.name, p.namespace) } else { p.checksum.clone() });
    let req = proto::ScoreRequest {
        service: p.metadata.get("service").cloned().unwrap_or(p.name.clone()),
        deployment_id: deployment,
        current_weight: weight,
        ..Default::default()
    };
    let result = match tokio::time::timeout(timeout, app.score(req, Memory::default(), false, "flagger")).await {
        Ok((r, _)) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
    };
    match result {
        Ok(resp) => {
            let decision = proto::Decision::try_from(resp.decision).unwrap_or(proto::Decision::Unspecified);
            let status = match (gate.as_str(), decision) {
                ("check", proto::Decision::Rollback) => StatusCode::CONFLICT,
                ("check", _) => StatusCode::OK,
                (_, proto::Decision::Promote | proto::Decision::Continue) => StatusCode::OK,
                _ => StatusCode::FORBIDDEN,
            };
            match response_to_json(&resp) {
                Ok(json) => (status, [(header::CONTENT_TYPE, "application/json")], json).into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e),
            }
        }
        Err(s) => {
            let (status, code) = grpc_to_http(&s);
            error(status, code, s.message().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_load_results_come_in_the_proto3_json_mapping() {
        let body = br#"{"service": "checkout", "deploymentId": "d-1", "currentWeight": 10,
            "syntheticLoad": [{"name": "full-rate", "rps": 1200, "latencyP50Ms": 80.5, "latencyP99Ms": 850, "errorRate": 0.02}]}"#;
        let r = request_from_json(body).unwrap();
        assert_eq!(r.synthetic_load.len(), 1);
        let s = &r.synthetic_load[0];
        assert_eq!((s.name.as_str(), s.rps, s.latency_p50_ms, s.latency_p99_ms, s.error_rate), ("full-rate", 1200.0, 80.5, 850.0, 0.02));
        // An unknown field of a result is refused, named.
        let e = request_from_json(br#"{"syntheticLoad": [{"latencyP90Ms": 1}]}"#).unwrap_err();
        assert!(e.contains("latencyP90Ms"), "{e}");
    }
}
