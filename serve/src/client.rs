//! A small gRPC client of `omen-serve` in plain Rust types, for other omen crates.
//!
//! `omen quickstart` (in `omen-pipeline`) starts `omen-serve` for a moment and scores a few
//! held-out canaries through it. The pipeline must not know protobuf (ARCHITECTURE.md,
//! "Serialization at the edge"), so this module takes and returns plain structs and converts
//! them to and from the generated `omen.v1` types here, inside `omen-serve`. Deployers in other
//! languages use the proto itself (`serve/proto/omen/v1/omen.proto`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::proto::{self, canary_scorer_client::CanaryScorerClient};

/// What the client can fail with; messages name the address or the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{addr}: not a valid address: {message}")]
    Address { addr: String, message: String },
    #[error("{addr}: not serving after {seconds:.0}s: {last}")]
    NotReady { addr: String, seconds: f64, last: String },
    #[error("{addr}: {call} failed: {code}: {message}")]
    Call { addr: String, call: &'static str, code: String, message: String },
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// One time series of a metric, canary and baseline samples as (unix seconds, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub canary: Vec<(f64, f64)>,
    pub baseline: Vec<(f64, f64)>,
    /// The new version under synthetic load at the full-traffic rate.
    pub loadtest: Vec<(f64, f64)>,
}

/// A score request: one canary at one moment (DESIGN §5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreInput {
    pub service: String,
    pub deployment_id: String,
    /// The change as a commit range of a repository omen ingested: (from_sha, to_sha).
    pub commits: Option<(String, String)>,
    pub series: Vec<Series>,
    /// Percent.
    pub current_weight: f64,
    pub elapsed_seconds: f64,
    /// Unix seconds.
    pub started_at: f64,
    /// The traffic steps so far: (unix seconds, weight percent).
    pub steps: Vec<(f64, f64)>,
}

/// One reason of an answer: a model input (with its TreeSHAP contribution), a judged metric or a
/// policy rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reason {
    /// `feature`, `metric` or `policy`.
    pub kind: String,
    pub name: String,
    pub value: Option<f64>,
    pub contribution: f64,
    pub detail: String,
}

/// The answer to a [`ScoreInput`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreAnswer {
    pub deployment_id: String,
    pub failure_probability: f64,
    pub confidence: f64,
    /// `PROMOTE`, `CONTINUE`, `HOLD` or `ROLLBACK`.
    pub decision: String,
    pub next_weight: f64,
    pub judge_score: f64,
    pub reasons: Vec<Reason>,
    /// `name/version` of every model used.
    pub models: Vec<String>,
    pub explanation: String,
}

/// A connection to one `omen-serve`.
pub struct Client {
    addr: String,
    scorer: CanaryScorerClient<Channel>,
    health: HealthClient<Channel>,
}

impl Client {
    /// A lazy connection to `addr` (`http://127.0.0.1:50051`): nothing is dialled until a call.
    pub fn new(addr: &str) -> Result<Client> {
        let channel = Endpoint::from_shared(addr.to_string())
            .map_err(|e| ClientError::Address { addr: addr.into(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        Ok(Client { addr: addr.into(), scorer: CanaryScorerClient::new(channel.clone()), health: HealthClient::new(channel) })
    }

    /// Waits until the standard health service says `omen.v1.CanaryScorer` is serving (a
    /// champion is loaded), asking every 100 ms for at most `timeout`.
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let last = match self.health.check(HealthCheckRequest { service: "omen.v1.CanaryScorer".into() }).await {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
                Ok(r) => format!("status {:?}", ServingStatus::try_from(r.get_ref().status).unwrap_or(ServingStatus::Unknown)),
                Err(e) => e.message().to_string(),
            };
            if t0.elapsed() >= timeout {
                return Err(ClientError::NotReady { addr: self.addr.clone(), seconds: t0.elapsed().as_secs_f64(), last });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One unary `Score` call.
    pub async fn score(&mut self, input: &ScoreInput) -> Result<ScoreAnswer> {
        let r = self
            .scorer
            .score(to_proto(input))
            .await
            .map_err(|s| ClientError::Call { addr: self.addr.clone(), call: "Score", code: format!("{:?}", s.code()), message: s.message().to_string() })?
            .into_inner();
        Ok(from_proto(r))
    }
}

fn samples(v: &[(f64, f64)]) -> Vec<proto::Sample> {
    v.iter().map(|&(time, value)| proto::Sample { time, value }).collect()
}

fn to_proto(i: &ScoreInput) -> proto::ScoreRequest {
    proto::ScoreRequest {
        service: i.service.clone(),
        deployment_id: i.deployment_id.clone(),
        change: i.commits.as_ref().map(|(from, to)| proto::Change {
            kind: Some(proto::change::Kind::Commits(proto::CommitRange { from_sha: from.clone(), to_sha: to.clone() })),
        }),
        metrics: i
            .series
            .iter()
            .map(|s| proto::MetricSamples {
                metric: s.metric.clone(),
                labels: s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                canary: samples(&s.canary),
                baseline: samples(&s.baseline),
                loadtest: samples(&s.loadtest),
            })
            .collect(),
        current_weight: i.current_weight,
        elapsed_seconds: i.elapsed_seconds,
        started_at: i.started_at,
        synthetic_load: vec![],
        steps: i.steps.iter().map(|&(time, weight)| proto::TrafficStep { time, weight }).collect(),
    }
}

fn from_proto(r: proto::ScoreResponse) -> ScoreAnswer {
    let decision = proto::Decision::try_from(r.decision).unwrap_or(proto::Decision::Unspecified);
    ScoreAnswer {
        deployment_id: r.deployment_id,
        failure_probability: r.failure_probability,
        confidence: r.confidence,
        decision: decision.as_str_name().to_string(),
        next_weight: r.next_weight,
        judge_score: r.judge_score,
        reasons: r
            .reasons
            .into_iter()
            .map(|x| Reason {
                kind: match proto::reason::Kind::try_from(x.kind) {
                    Ok(proto::reason::Kind::Feature) => "feature",
                    Ok(proto::reason::Kind::Metric) => "metric",
                    Ok(proto::reason::Kind::Policy) => "policy",
                    _ => "unspecified",
                }
                .into(),
                name: x.name,
                value: x.value,
                contribution: x.contribution,
                detail: x.detail,
            })
            .collect(),
        models: r.models.into_iter().map(|m| format!("{}/{}", m.name, m.version)).collect(),
        explanation: r.explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_the_proto_types() {
        let input = ScoreInput {
            service: "checkout".into(),
            deployment_id: "d-1".into(),
            commits: Some(("a".into(), "b".into())),
            series: vec![Series { metric: "m".into(), labels: BTreeMap::from([("k".into(), "v".into())]), canary: vec![(1.0, 2.0)], baseline: vec![(1.0, 3.0)], loadtest: vec![(1.0, 4.0)] }],
            current_weight: 25.0,
            elapsed_seconds: 600.0,
            started_at: 1.0e9,
            steps: vec![(1.0e9, 5.0)],
        };
        let p = to_proto(&input);
        assert_eq!(p.metrics[0].canary[0].value, 2.0);
        assert_eq!(p.metrics[0].labels["k"], "v");
        assert!(matches!(p.change.unwrap().kind, Some(proto::change::Kind::Commits(c)) if c.to_sha == "b"));
        let a = from_proto(proto::ScoreResponse { decision: proto::Decision::Rollback as i32, failure_probability: 0.9, ..Default::default() });
        assert_eq!(a.decision, "ROLLBACK");
    }

    #[test]
    fn a_bad_address_is_named() {
        let e = Client::new("not a url").err().unwrap();
        assert!(e.to_string().contains("not a url"), "{e}");
    }
}
