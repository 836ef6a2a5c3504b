//! The MLflow backend: an MLflow tracking server over its REST API (`/api/2.0/mlflow/…`), the
//! artifacts through the server's `mlflow-artifacts` proxy (`mlflow server --serve-artifacts`,
//! the default since MLflow 2.0).
//!
//! How omen's records map onto MLflow's:
//!
//! | omen | MLflow |
//! |---|---|
//! | a registration | a run in experiment `omen` (configurable): params = hyperparameters, metrics = held-out metrics, tags `omen.*` = lineage, code version, schema hash |
//! | the artifact | `model/<file>` among the run's artifacts, with `model/omen-version.json` (the whole record, schema included) beside it |
//! | a version | a model version of the registered model, `source` = the run's `model/` folder, tags `omen.artifact.blake3`/`size`/`format`/`file` and `omen.schema_hash` |
//! | an alias | an MLflow alias; its moves are also kept in the registered model's tag `omen.alias.<alias>.history` for `rollback` |
//!
//! The checksum a download is verified against is the model version's tag, kept in MLflow's
//! database, not the JSON beside the artifact: an artifact store that is tampered with cannot
//! vouch for itself.
//!
//! MLflow has no conditional update of an alias, so a move here is check-then-set: the window
//! between the two is one round trip, not zero as in omen's own registry. Teams that need two
//! concurrent promoters to be arbitrated exactly use the store registry.
//!
//! Every call is retried on connection errors, timeouts, 429 and 5xx answers, a bounded number
//! of times with exponential backoff (0.25 s, 0.5 s, 1 s, …), then fails with
//! [`Error::Unreachable`]: never a hang.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    AliasEntry, ArtifactInfo, Expect, ModelSummary, ModelVersion, NewVersion, Progress, Registry, VerifiedArtifact, VersionRef,
    check_alias, check_name, now_rfc3339,
};
use crate::{Error, Result};

/// How to reach the server. Credentials are never logged or shown (`Debug` hides them).
#[derive(Clone)]
pub struct MlflowOptions {
    /// A bearer token (`MLFLOW_TRACKING_TOKEN`).
    pub token: Option<String>,
    /// Basic auth (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// The experiment omen's runs go to.
    pub experiment: String,
    /// Tries per call before giving up (at least 1).
    pub attempts: u32,
    pub connect_timeout: Duration,
    /// Per-request timeout (uploads included).
    pub timeout: Duration,
}

impl Default for MlflowOptions {
    fn default() -> Self {
        MlflowOptions {
            token: None,
            username: None,
            password: None,
            experiment: "omen".into(),
            attempts: 4,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(120),
        }
    }
}

impl std::fmt::Debug for MlflowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowOptions")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("experiment", &self.experiment)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// An MLflow tracking server as a registry. See the module docs.
#[derive(Debug, Clone)]
pub struct MlflowRegistry {
    /// As given, without credentials.
    url: String,
    /// `http(s)://host:port[/prefix]`, no trailing slash.
    base: String,
    client: reqwest::Client,
    opts: MlflowOptions,
}

/// A failed call: MLflow's answer (`error_code`), or a failure that ends the operation.
enum CallError {
    Api { status: u16, code: String, message: String },
    Fatal(Error),
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        CallError::Fatal(e)
    }
}

type CallResult<T> = std::result::Result<T, CallError>;

const RECORD: &str = "omen-version.json";

fn tag<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("tags")?.as_array()?.iter().find(|t| t["key"] == key)?.get("value")?.as_str()
}

fn history_tag(alias: &str) -> String {
    format!("omen.alias.{alias}.history")
}

impl MlflowRegistry {
    /// `mlflow+http://host:port[/prefix]` or `mlflow+https://…`. User info in the URL is taken
    /// as basic-auth credentials and removed from what is shown.
    pub fn open(url: &str, mut opts: MlflowOptions) -> Result<MlflowRegistry> {
        let bad = |m: String| Error::Registry { registry: url.to_string(), message: m };
        let rest = url.strip_prefix("mlflow+").ok_or_else(|| bad("expected `mlflow+http://…` or `mlflow+https://…`".into()))?;
        let mut parsed = url::Url::parse(rest).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad("expected `mlflow+http://host:port` or `mlflow+https://host`".into()));
        }
        if !parsed.username().is_empty() {
            opts.username = Some(parsed.username().to_string());
            opts.password = parsed.password().map(str::to_string);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        if let Some(q) = parsed.query_pairs().find(|(k, _)| k == "experiment").map(|(_, v)| v.to_string()) {
            opts.experiment = q;
        }
        parsed.set_query(None);
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        opts.attempts = opts.attempts.max(1);
        Ok(MlflowRegistry { url: format!("mlflow+{base}"), base, client, opts })
    }

    fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::Registry { registry: self.url.clone(), message: m.to_string() }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound { registry: self.url.clone(), what }
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(t) = &self.opts.token {
            rb.bearer_auth(t)
        } else if let Some(u) = &self.opts.username {
            rb.basic_auth(u, self.opts.password.as_ref())
        } else {
            rb
        }
    }

    /// One HTTP exchange with retries; returns the body of a 2xx answer.
    async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder, what: &str) -> CallResult<Bytes> {
        let start = Instant::now();
        let mut last = String::new();
        for attempt in 0..self.opts.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << (attempt - 1).min(5))).await;
            }
            match self.auth(build()).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            last = format!("{what}: reading the answer: {e}");
                            continue;
                        }
                    };
                    if (200..300).contains(&status) {
                        return Ok(body);
                    }
                    if status == 429 || status >= 500 {
                        last = format!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                        continue;
                    }
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let code = v["error_code"].as_str().unwrap_or("").to_string();
                    let message = v["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
                    return Err(CallError::Api { status, code, message });
                }
                Err(e) => {
                    // Connection refused, DNS, timeouts: worth another try.
                    last = format!("{what}: {}", error_chain(&e));
                }
            }
        }
        Err(CallError::Fatal(Error::Unreachable {
            registry: self.url.clone(),
            attempts: self.opts.attempts,
            seconds: start.elapsed().as_secs_f64(),
            message: last,
        }))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> CallResult<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let body = self.send(|| self.client.get(&url).query(query), &format!("GET {path}")).await?;
        serde_json::from_slice(&body).map_err(|e| CallError::Fatal(self.err(format!("GET {path}: not JSON: {e}"))))
    }

    async fn post(&self, path: &str, body: &Value) -> CallResult<Value> {
        self.with_body(reqwest::Method::POST, path, body).await
    }

    async fn with_body(&self, method: reqwest::Method, path: &str, body: &Value) -> CallResult<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let text = body.to_string();
        let what = format!("{method} {path}");
        let out = self
            .send(
                || self.client.request(method.clone(), &url).header("content-type", "application/json").body(text.clone()),
                &what,
            )
            .await?;
        if out.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&out).map_err(|e| CallError::Fatal(self.err(format!("{what}: not JSON: {e}"))))
    }

    /// Any call error as this crate's error, `not_found` naming what a 404 means.
    fn fail(&self, e: CallError, not_found: impl FnOnce() -> String) -> Error {
        match e {
            CallError::Fatal(e) => e,
            CallError::Api { code, .. } if code == "RESOURCE_DOES_NOT_EXIST" => self.not_found(not_found()),
            CallError::Api { status, code, message } if code.is_empty() => {
                self.err(format!("HTTP {status} without an MLflow error (is this an MLflow tracking server?): {}", message.trim()))
            }
            CallError::Api { status, code, message } => self.err(format!("HTTP {status} {code}: {message}")),
        }
    }

    /// `mlflow-artifacts:/1/abc/artifacts/model` → the proxy URL of that folder.
    fn artifact_url(&self, uri: &str) -> Result<String> {
        let rest = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
            self.err(format!(
                "artifacts live at `{uri}`, which omen reaches only through the server's proxy: start `mlflow server` with `--serve-artifacts` and an `--artifacts-destination`"
            ))
        })?;
        // `mlflow-artifacts:/path` or `mlflow-artifacts://host:port/path`.
        let path = match rest.strip_prefix("//") {
            Some(r) => r.split_once('/').map_or("", |(_, p)| p),
            None => rest.trim_start_matches('/'),
        };
        Ok(format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", self.base, path.trim_end_matches('/')))
    }

    async fn upload(&self, folder: &str, file: &str, bytes: Bytes) -> Result<()> {
        let url = format!("{}/{file}", self.artifact_url(folder)?);
        self.send(
            || self.client.put(&url).header("content-type", "application/octet-stream").body(bytes.clone()),
            &format!("PUT artifact {file}"),
        )
        .await
        .map_err(|e| self.fail(e, || format!("artifact folder {folder}")))?;
        Ok(())
    }

    async fn download(&self, folder: &str, file: &str) -> CallResult<Bytes> {
        let url = format!("{}/{file}", self.artifact_url(folder)?);
        self.send(|| self.client.get(&url), &format!("GET artifact {file}")).await
    }

    async fn experiment_id(&self) -> Result<String> {
        let name = self.opts.experiment.as_str();
        for _ in 0..2 {
            match self.get("experiments/get-by-name", &[("experiment_name", name)]).await {
                Ok(v) => {
                    if let Some(id) = v["experiment"]["experiment_id"].as_str() {
                        return Ok(id.to_string());
                    }
                    return Err(self.err("experiments/get-by-name: no experiment_id in the answer"));
                }
                Err(CallError::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {}
                Err(e) => return Err(self.fail(e, || format!("experiment `{name}`"))),
            }
            match self.post("experiments/create", &json!({ "name": name })).await {
                Ok(v) => {
                    if let Some(id) = v["experiment_id"].as_str() {
                        return Ok(id.to_string());
                    }
                }
                // Created by someone else in between: read it again.
                Err(CallError::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {}
                Err(e) => return Err(self.fail(e, || format!("experiment `{name}`"))),
            }
        }
        Err(self.err(format!("could not create or find experiment `{name}`")))
    }

    async fn registered_model(&self, name: &str) -> Result<Value> {
        check_name(name)?;
        let v = self.get("registered-models/get", &[("name", name)]).await.map_err(|e| self.fail(e, || format!("model `{name}`")))?;
        Ok(v["registered_model"].clone())
    }

    async fn model_version(&self, name: &str, version: u64) -> Result<Value> {
        let v = self
            .get("model-versions/get", &[("name", name), ("version", &version.to_string())])
            .await
            .map_err(|e| self.fail(e, || format!("version {version} of `{name}`")))?;
        Ok(v["model_version"].clone())
    }

    /// Every model version of `name` as MLflow lists it (deleted ones are gone from MLflow).
    async fn search_versions(&self, name: &str) -> Result<Vec<Value>> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.get("model-versions/search", &q).await.map_err(|e| self.fail(e, || format!("model `{name}`")))?;
            out.extend(v["model_versions"].as_array().cloned().unwrap_or_default());
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        out.sort_by_key(version_number);
        Ok(out)
    }

    /// omen's record of a model version: `omen-version.json` beside the artifact, with the
    /// number, aliases and the checksum taken from MLflow's own record of the version.
    async fn record(&self, mv: &Value) -> Result<ModelVersion> {
        let name = mv["name"].as_str().unwrap_or_default().to_string();
        let version = version_number(mv);
        let source = mv["source"].as_str().ok_or_else(|| self.err(format!("version {version} of `{name}` has no source")))?;
        let bytes = self.download(source, RECORD).await.map_err(|e| match e {
            CallError::Api { status: 404, .. } => {
                self.err(format!("version {version} of `{name}` was not registered by omen (no {RECORD} in {source})"))
            }
            e => self.fail(e, || format!("{RECORD} of `{name}` version {version}")),
        })?;
        let mut m: ModelVersion =
            serde_json::from_slice(&bytes).map_err(|e| self.err(format!("{RECORD} of `{name}` version {version}: {e}")))?;
        m.name = name;
        m.version = version;
        if let Some(h) = tag(mv, "omen.artifact.blake3") {
            m.artifact.blake3 = h.to_string();
        }
        if let Some(s) = tag(mv, "omen.artifact.size").and_then(|s| s.parse().ok()) {
            m.artifact.size = s;
        }
        m.aliases = mv["aliases"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
        Ok(m)
    }

    async fn set_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.post("registered-models/set-tag", &json!({ "name": name, "key": key, "value": value }))
            .await
            .map_err(|e| self.fail(e, || format!("model `{name}`")))?;
        Ok(())
    }

    /// Where `alias` points according to MLflow (None if unset or removed with its version).
    async fn alias_version(&self, name: &str, alias: &str) -> Result<Option<u64>> {
        match self.get("registered-models/alias", &[("name", name), ("alias", alias)]).await {
            Ok(v) => Ok(Some(version_number(&v["model_version"]))),
            // A missing alias is a 400 "Registered model alias X not found." (MLflow 3), a
            // missing model a 404: tell them apart.
            Err(CallError::Api { code, message, .. })
                if code == "RESOURCE_DOES_NOT_EXIST" || (code == "INVALID_PARAMETER_VALUE" && message.contains("not found")) =>
            {
                self.registered_model(name).await?;
                Ok(None)
            }
            Err(e) => Err(self.fail(e, || format!("alias `{alias}` of `{name}`"))),
        }
    }
}

fn version_number(mv: &Value) -> u64 {
    match &mv["version"] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

impl Registry for MlflowRegistry {
    fn url(&self) -> &str {
        &self.url
    }

    async fn register(&self, new: NewVersion, progress: &mut (dyn FnMut(Progress) + Send)) -> Result<ModelVersion> {
        check_name(&new.name)?;
        if !new.schema.verify() {
            return Err(Error::invalid("schema", "the feature schema's hash does not match its columns"));
        }
        let name = new.name.clone();
        let experiment = self.experiment_id().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let run_name = format!("{name}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
        let run = self
            .post(
                "runs/create",
                &json!({
                    "experiment_id": experiment,
                    "start_time": now_ms,
                    "run_name": run_name,
                    "tags": [{"key": "omen.model", "value": name}, {"key": "mlflow.source.name", "value": "omen"}],
                }),
            )
            .await
            .map_err(|e| self.fail(e, || format!("experiment {experiment}")))?;
        let run_id = run["run"]["info"]["run_id"].as_str().ok_or_else(|| self.err("runs/create: no run_id"))?.to_string();
        let artifact_uri =
            run["run"]["info"]["artifact_uri"].as_str().ok_or_else(|| self.err("runs/create: no artifact_uri"))?.to_string();
        let hash = blake3::hash(&new.artifact).to_hex().to_string();
        let size = new.artifact.len() as u64;
        let mut record = ModelVersion {
            name: name.clone(),
            version: 0,
            created_at: now_rfc3339(),
            description: new.description.clone(),
            artifact: ArtifactInfo { file: new.artifact_file.clone(), format: new.format.clone(), size, blake3: hash.clone() },
            metrics: new.metrics.clone(),
            params: new.params.clone(),
            schema: new.schema.clone(),
            feature_set: new.feature_set.clone(),
            lineage: new.lineage.clone(),
            code_version: new.code_version.clone(),
            tags: new.tags.clone(),
            aliases: Vec::new(),
            deleted_at: None,
        };
        // Params, metrics and tags; MLflow takes at most 100 params per batch.
        let params: Vec<Value> =
            new.params.iter().map(|(k, v)| json!({"key": k, "value": v.chars().take(6000).collect::<String>()})).collect();
        let metrics: Vec<Value> = new
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| json!({"key": k, "value": v, "timestamp": now_ms, "step": 0}))
            .collect();
        let lineage = &new.lineage;
        let mut tags = vec![
            json!({"key": "omen.code_version", "value": new.code_version}),
            json!({"key": "omen.schema_hash", "value": new.schema.hash}),
            json!({"key": "omen.artifact.blake3", "value": hash}),
            json!({"key": "omen.lineage.source", "value": lineage.source}),
            json!({"key": "omen.lineage.rows", "value": lineage.rows.to_string()}),
            json!({"key": "omen.lineage.rows_holdout", "value": lineage.rows_holdout.to_string()}),
        ];
        for (k, v) in [("omen.lineage.time_column", &lineage.time_column), ("omen.lineage.time_from", &lineage.time_from), ("omen.lineage.time_to", &lineage.time_to)] {
            if let Some(v) = v {
                tags.push(json!({"key": k, "value": v}));
            }
        }
        for (k, v) in &new.tags {
            tags.push(json!({"key": k, "value": v}));
        }
        for (i, chunk) in params.chunks(100).enumerate() {
            let body = if i == 0 {
                json!({"run_id": run_id, "params": chunk, "metrics": metrics, "tags": tags})
            } else {
                json!({"run_id": run_id, "params": chunk})
            };
            self.post("runs/log-batch", &body).await.map_err(|e| self.fail(e, || format!("run {run_id}")))?;
        }
        if params.is_empty() {
            self.post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics, "tags": tags}))
                .await
                .map_err(|e| self.fail(e, || format!("run {run_id}")))?;
        }
        let model_dir = format!("{}/model", artifact_uri.trim_end_matches('/'));
        self.upload(&model_dir, &new.artifact_file, new.artifact.clone()).await?;
        progress(Progress::Artifact { written: size, total: size });
        let body = serde_json::to_vec_pretty(&record).map_err(|e| self.err(e))?;
        self.upload(&model_dir, RECORD, Bytes::from(body)).await?;
        progress(Progress::ArtifactStored);
        self.post("runs/update", &json!({"run_id": run_id, "status": "FINISHED", "end_time": chrono::Utc::now().timestamp_millis()}))
            .await
            .map_err(|e| self.fail(e, || format!("run {run_id}")))?;
        match self.post("registered-models/create", &json!({"name": name, "description": "registered by omen"})).await {
            Ok(_) => {}
            Err(CallError::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {}
            Err(e) => return Err(self.fail(e, || format!("model `{name}`"))),
        }
        let mv = self
            .post(
                "model-versions/create",
                &json!({
                    "name": name,
                    "source": model_dir,
                    "run_id": run_id,
                    "description": new.description,
                    "tags": [
                        {"key": "omen.artifact.blake3", "value": hash},
                        {"key": "omen.artifact.size", "value": size.to_string()},
                        {"key": "omen.artifact.file", "value": new.artifact_file},
                        {"key": "omen.artifact.format", "value": new.format},
                        {"key": "omen.schema_hash", "value": new.schema.hash},
                        {"key": "omen.code_version", "value": new.code_version},
                    ],
                }),
            )
            .await
            .map_err(|e| self.fail(e, || format!("model `{name}`")))?;
        record.version = version_number(&mv["model_version"]);
        if record.version == 0 {
            return Err(self.err("model-versions/create: no version number in the answer"));
        }
        progress(Progress::Committed { version: record.version });
        Ok(record)
    }

    async fn models(&self) -> Result<Vec<ModelSummary>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("max_results", "1000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.get("registered-models/search", &q).await.map_err(|e| self.fail(e, || "registered models".into()))?;
            for m in v["registered_models"].as_array().cloned().unwrap_or_default() {
                let name = m["name"].as_str().unwrap_or_default().to_string();
                let versions = self.search_versions(&name).await?;
                let aliases = m["aliases"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| Some((x["alias"].as_str()?.to_string(), x["version"].as_str()?.parse().ok()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(ModelSummary { versions: versions.len() as u64, latest: versions.last().map(version_number), aliases, name });
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        let m = self.registered_model(name).await?;
        let mut out = Vec::new();
        for mv in self.search_versions(name).await? {
            let mut v = self.record(&mv).await?;
            // Search results carry no aliases; the registered model does.
            v.aliases = m["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["version"].as_str().and_then(|s| s.parse::<u64>().ok()) == Some(v.version))
                .filter_map(|a| a["alias"].as_str().map(str::to_string))
                .collect();
            out.push(v);
        }
        Ok(out)
    }

    async fn version(&self, name: &str, which: &VersionRef) -> Result<ModelVersion> {
        check_name(name)?;
        let mv = match which {
            VersionRef::Number(n) => self.model_version(name, *n).await?,
            VersionRef::Latest => {
                self.registered_model(name).await?;
                self.search_versions(name).await?.pop().ok_or_else(|| self.not_found(format!("a version of `{name}`")))?
            }
            VersionRef::Alias(a) => {
                check_alias(a)?;
                match self.alias_version(name, a).await? {
                    Some(v) => self.model_version(name, v).await?,
                    None => {
                        // MLflow drops an alias with its version; omen's history still knows.
                        let history = self.alias_history(name, a).await?;
                        return Err(match history.last() {
                            Some(e) => Error::Deleted {
                                registry: self.url.clone(),
                                what: format!("version {} of `{name}`, where alias `{a}` pointed (MLflow removed the alias with it),", e.version),
                            },
                            None => self.not_found(format!("alias `{a}` of `{name}`")),
                        });
                    }
                }
            }
        };
        self.record(&mv).await
    }

    async fn fetch(&self, name: &str, which: &VersionRef) -> Result<VerifiedArtifact> {
        let m = self.version(name, which).await?;
        let mv = self.model_version(name, m.version).await?;
        let source = mv["source"].as_str().unwrap_or_default().to_string();
        let expected = tag(&mv, "omen.artifact.blake3")
            .ok_or_else(|| self.err(format!("version {} of `{name}` has no tag omen.artifact.blake3: not registered by omen", m.version)))?;
        if expected != m.artifact.blake3 {
            return Err(self.err(format!("version {} of `{name}`: the checksum tag and {RECORD} disagree", m.version)));
        }
        let bytes = self
            .download(&source, &m.artifact.file)
            .await
            .map_err(|e| self.fail(e, || format!("artifact {} of `{name}` version {}", m.artifact.file, m.version)))?;
        VerifiedArtifact::verify(&self.url, m, bytes)
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u64, expect: Expect, reason: &str) -> Result<AliasEntry> {
        check_alias(alias)?;
        self.model_version(name, version).await?;
        let current = self.alias_version(name, alias).await?;
        let conflict = |message: String| Error::Conflict {
            registry: self.url.clone(),
            model: name.to_string(),
            alias: alias.to_string(),
            message,
        };
        let shown = |v: Option<u64>| v.map_or("nowhere (unset)".to_string(), |v| format!("version {v}"));
        match expect {
            Expect::Absent if current.is_some() => return Err(conflict(format!("expected it unset, it points at {}", shown(current)))),
            Expect::Version(v) if current != Some(v) => {
                return Err(conflict(format!("expected it at version {v}, it points at {}", shown(current))));
            }
            _ => {}
        }
        let mut history = self.alias_history(name, alias).await?;
        self.post("registered-models/alias", &json!({"name": name, "alias": alias, "version": version.to_string()}))
            .await
            .map_err(|e| self.fail(e, || format!("version {version} of `{name}`")))?;
        let entry = AliasEntry { alias: alias.to_string(), version, previous: current, at: now_rfc3339(), reason: reason.to_string() };
        history.push(entry.clone());
        // A tag value holds at most 5,000 characters: keep the newest moves that fit.
        let mut keep = history.len();
        let mut text = serde_json::to_string(&history).map_err(|e| self.err(e))?;
        while text.len() > 4900 && keep > 1 {
            keep -= 1;
            text = serde_json::to_string(&history[history.len() - keep..]).map_err(|e| self.err(e))?;
        }
        self.set_model_tag(name, &history_tag(alias), &text).await?;
        Ok(entry)
    }

    async fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEntry>> {
        check_alias(alias)?;
        let m = self.registered_model(name).await?;
        let mut history: Vec<AliasEntry> = tag(&m, &history_tag(alias))
            .map(|t| serde_json::from_str(t).map_err(|e| self.err(format!("tag {} of `{name}`: {e}", history_tag(alias)))))
            .transpose()?
            .unwrap_or_default();
        // Moved outside omen (the MLflow UI, another client): the server's word is the newest.
        let now: Option<u64> = m["aliases"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["alias"] == alias))
            .and_then(|x| x["version"].as_str()?.parse().ok());
        if let Some(v) = now
            && history.last().map(|e| e.version) != Some(v)
        {
            history.push(AliasEntry {
                alias: alias.to_string(),
                version: v,
                previous: history.last().map(|e| e.version),
                at: String::new(),
                reason: "set outside omen".into(),
            });
        }
        Ok(history)
    }

    async fn delete_version(&self, name: &str, version: u64) -> Result<()> {
        self.model_version(name, version).await?;
        self.with_body(reqwest::Method::DELETE, "model-versions/delete", &json!({"name": name, "version": version.to_string()}))
            .await
            .map_err(|e| self.fail(e, || format!("version {version} of `{name}`")))?;
        Ok(())
    }
}
