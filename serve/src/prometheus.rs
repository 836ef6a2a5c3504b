//! Samples pulled from Prometheus for requests that carry none (`[serve.prometheus]`): what an
//! Argo Rollouts Web metric or a Flagger webhook sends is a fixed body naming the service and
//! the canary, so omen-serve queries the canary's and the baseline's series itself, as Kayenta
//! does, over `query_range` from the canary start to now.
//!
//! ```toml
//! [serve.prometheus]
//! url = "http://prometheus.monitoring:9090"
//! step = "15s"
//! [[serve.prometheus.metrics]]
//! name = "http_latency_p99"
//! canary = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{app="$service",rollouts_pod_template_hash="$deployment"}[1m])))'
//! baseline = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{app="$service",rollouts_pod_template_hash!="$deployment"}[1m])))'
//! # Optional: the new version under a load test at the full-traffic rate (`role="loadtest"`).
//! loadtest = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{app="$service-loadtest",rollouts_pod_template_hash="$deployment"}[1m])))'
//! ```
//! `$service` and `$deployment` are replaced by the request's values, escaped for a PromQL
//! string.

use std::collections::HashMap;
use std::time::Duration;

use omen_features::feature::Role;
use serde::Deserialize;

use crate::config::duration;
use crate::error::{Error, Result};
use crate::proto;

/// `[serve.prometheus]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API; empty: no pulling.
    pub url: String,
    /// Resolution of the query ("15s"); widened when the window would exceed 11,000 points.
    pub step: String,
    /// Per query.
    pub timeout: String,
    /// For a canary whose start nobody gave (not in the request, not in the store), the window
    /// starts this long before omen-serve first scored it ("10m"), and stays anchored there.
    pub lookback: String,
    pub metrics: Vec<PromMetric>,
}

/// One metric: its name (as the models and the judge know it) and its queries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromMetric {
    pub name: String,
    pub canary: String,
    pub baseline: String,
    /// The new version under synthetic load at the full-traffic rate (optional).
    #[serde(default)]
    pub loadtest: Option<String>,
}


/// A configured puller.
#[derive(Debug, Clone)]
pub struct Puller {
    client: reqwest::Client,
    base: String,
    step: f64,
    /// µs.
    pub lookback: i64,
    metrics: Vec<PromMetric>,
}

/// A value for a PromQL string literal between double quotes.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Puller {
    /// `None` when no URL is configured.
    pub fn new(cfg: &PrometheusConfig) -> Result<Option<Puller>> {
        if cfg.url.is_empty() {
            return Ok(None);
        }
        let step = duration("serve.prometheus.step", if cfg.step.is_empty() { "15s" } else { &cfg.step })?.as_secs_f64();
        let timeout = duration("serve.prometheus.timeout", if cfg.timeout.is_empty() { "5s" } else { &cfg.timeout })?;
        if cfg.metrics.is_empty() {
            return Err(Error::Config { field: "serve.prometheus.metrics".into(), message: "a URL without metrics to query".into() });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Config { field: "serve.prometheus".into(), message: e.to_string() })?;
        let lookback = duration("serve.prometheus.lookback", if cfg.lookback.is_empty() { "10m" } else { &cfg.lookback })?;
        Ok(Some(Puller {
            client,
            base: cfg.url.trim_end_matches('/').to_string(),
            step: step.max(1.0),
            lookback: lookback.as_micros() as i64,
            metrics: cfg.metrics.clone(),
        }))
    }

    /// The canary's and baseline's series (and the load test's, where configured) of every
    /// configured metric over `[start, end]` (Unix seconds). The error names the metric and query
    /// that failed.
    pub async fn fetch(&self, service: &str, deployment: &str, start: f64, end: f64) -> std::result::Result<Vec<proto::MetricSamples>, String> {
        let step = self.step.max(((end - start) / 11_000.0).ceil());
        let mut jobs = Vec::new();
        for m in &self.metrics {
            let roles = [(Role::Canary, Some(&m.canary)), (Role::Baseline, Some(&m.baseline)), (Role::LoadTest, m.loadtest.as_ref())];
            for (role, q) in roles.into_iter().filter_map(|(role, q)| Some((role, q?))) {
                let query = q.replace("$service", &escape(service)).replace("$deployment", &escape(deployment));
                jobs.push(async move { (m.name.clone(), role, self.query_range(&query, start, end, step).await) });
            }
        }
        let mut out = Vec::new();
        for (name, role, result) in futures::future::join_all(jobs).await {
            let series = result.map_err(|e| format!("prometheus {} ({} of `{name}`): {e}", self.base, role.as_str()))?;
            for (labels, samples) in series {
                let mut m = proto::MetricSamples { metric: name.clone(), labels, ..Default::default() };
                match role {
                    Role::Canary => m.canary = samples,
                    Role::Baseline => m.baseline = samples,
                    Role::LoadTest => m.loadtest = samples,
                }
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn query_range(&self, query: &str, start: f64, end: f64, step: f64) -> std::result::Result<Vec<(HashMap<String, String>, Vec<proto::Sample>)>, String> {
        let resp = self
            .client
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&[("query", query.to_string()), ("start", format!("{start:.3}")), ("end", format!("{end:.3}")), ("step", format!("{step}"))])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| format!("HTTP {status}: not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("HTTP {status}: {} {}", body["errorType"].as_str().unwrap_or(""), body["error"].as_str().unwrap_or("")));
        }
        let mut out = Vec::new();
        for s in body["data"]["result"].as_array().into_iter().flatten() {
            let labels: HashMap<String, String> = s["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "__name__")
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            let samples = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some(proto::Sample { time: p[0].as_f64()?, value: p[1].as_str()?.parse().ok()? }))
                .collect();
            out.push((labels, samples));
        }
        Ok(out)
    }
}
