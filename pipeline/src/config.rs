//! `omen.toml`: the store, the registry, ingest settings and the sources a scheduled job ingests.
//!
//! Relative paths in the file are relative to the file's folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration file. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Store root URL.
    pub store: Option<String>,
    /// Registry URL.
    pub registry: Option<String>,
    #[serde(default)]
    pub ingest: IngestConfig,
    /// `[features]`: checkpoints, metrics, error-rate pairs (see `omen_features::feature`).
    #[serde(default)]
    pub features: omen_features::feature::FeatureParams,
    /// Inputs `omen quickstart` and `omen retrain` ingest.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// `[serve]`: read by `omen-serve` (policy, judge, limits); `omen evaluate` and `omen retrain`
    /// replay its `policy` and `judge`.
    #[serde(default)]
    pub serve: Option<toml::Value>,
    /// `[evaluate]`: the hold-out of `omen evaluate` and `omen retrain`.
    #[serde(default)]
    pub evaluate: crate::evaluate::EvaluateConfig,
    /// `[retrain]`: the scheduled job's training parameters, promotion margin and guardrails.
    #[serde(default)]
    pub retrain: crate::retrain::RetrainConfig,
    /// The folder the file was read from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(default)]
    pub logs: LogsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `auto`, `combined`, `common`, `nginx-json` or an nginx `log_format` string.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Labels that name the service, first match wins (default: service, app, application).
    pub service_labels: Option<Vec<String>>,
    /// Labels that name the deployment (default: deployment, rollouts_pod_template_hash, deployment_id).
    pub deployment_labels: Option<Vec<String>>,
    /// Labels that give the role canary/baseline/primary (default: role, track, canary_role).
    pub role_labels: Option<Vec<String>>,
}

/// One input of a scheduled job.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    Logs { service: String, paths: Vec<String>, format: Option<String> },
    Commits { service: String, repo: String, range: Option<String> },
    Metrics { paths: Vec<String>, service: Option<String> },
    Deployments { paths: Vec<String> },
}

impl Config {
    /// Reads `path`; errors name the file and, for TOML errors, the line and field.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config { path: path.display().to_string(), message: e.to_string() })?;
        let mut c: Config = toml::from_str(&text)
            .map_err(|e| Error::Config { path: path.display().to_string(), message: e.to_string() })?;
        c.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(c)
    }

    /// `p` resolved against the config file's folder (absolute paths and URLs unchanged).
    pub fn resolve(&self, p: &str) -> String {
        if p.contains("://") || Path::new(p).is_absolute() || self.base_dir.as_os_str().is_empty() {
            p.to_string()
        } else {
            self.base_dir.join(p).display().to_string()
        }
    }
}
