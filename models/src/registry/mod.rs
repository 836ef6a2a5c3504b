//! The model registry (DESIGN §4): where `omen train` and `omen retrain` put models and
//! `omen-serve` takes them from.
//!
//! One trait, [`Registry`], two backends chosen by the URL ([`open`]):
//!
//! - a path or object-store URL (`./omen-data/registry`, `s3://bucket/registry`, …): omen's own
//!   registry, [`StoreRegistry`], on any store `object_store` reaches;
//! - `mlflow+http://host:port` or `mlflow+https://…`: an MLflow tracking server over its REST
//!   API, [`MlflowRegistry`], artifacts through the server's `mlflow-artifacts` proxy.
//!
//! A version is immutable once registered and carries everything needed to trust and reproduce
//! it ([`ModelVersion`]): metrics, hyperparameters, the feature schema and its hash, the data it
//! was trained on, the code version and the BLAKE3 checksum of its artifact. Aliases
//! (`champion`: what `omen-serve` loads; `challenger`: what retraining proposes) are moved with
//! a compare-and-swap ([`Expect`]), and every move is kept, so `rollback` knows where to go.
//!
//! **Integrity**: the only way to get an artifact's bytes out of a registry is
//! [`Registry::fetch`], which returns a [`VerifiedArtifact`] only after the bytes hashed to the
//! recorded checksum; model loaders take a `VerifiedArtifact` (and check the feature schema
//! hash against the reader's with [`VerifiedArtifact::check_schema`]).

mod mlflow;
mod store;

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use omen_features::feature::{FeatureSchema, FeatureSetSpec};
use serde::{Deserialize, Serialize};

pub use mlflow::{MlflowOptions, MlflowRegistry};
pub use store::StoreRegistry;

use crate::{Error, Result};

/// The model names omen writes.
pub const MODEL_NAMES: [&str; 4] = ["omen-failure", "omen-performance", "omen-sequence", "omen-profiles"];
/// The alias `omen-serve` loads.
pub const CHAMPION: &str = "champion";
/// The alias retraining proposes.
pub const CHALLENGER: &str = "challenger";

/// One registered version of a model, as recorded when it was registered (plus, when read back,
/// the aliases that point at it and whether it was deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    #[serde(default)]
    pub description: String,
    pub artifact: ArtifactInfo,
    /// Held-out metrics (`auc`, `brier`, `rmse`, …).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Hyperparameters, as text.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The model's inputs: names, kinds and their hash.
    pub schema: FeatureSchema,
    /// How to compute those inputs from raw samples (a model trained on an omen feature table);
    /// `None` for a model of an analyst's own table, which `omen-serve` cannot feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_set: Option<FeatureSetSpec>,
    pub lineage: Lineage,
    /// The omen build that trained it (`omen 0.1.0 (abc123def456)`).
    pub code_version: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Aliases pointing at this version now (filled in when read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When it was deleted (filled in when read; a deleted version is never loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl ModelVersion {
    /// For a performance model (trained on `label__<metric>__at_full`, its `label` tag): the
    /// metric it predicts at full traffic.
    pub fn target_metric(&self) -> Option<&str> {
        self.tags.get("label")?.strip_prefix("label__")?.strip_suffix("__at_full")
    }
}

/// The artifact of a version: what file it is and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    /// The file name under which it is stored and downloaded (`model.omengbdt`).
    pub file: String,
    /// What reads it (`omen-gbdt/1`).
    pub format: String,
    pub size: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
}

/// The data a version was trained on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The store or file the training table came from.
    pub source: String,
    /// The time column that ordered the split, if any.
    #[serde(default)]
    pub time_column: Option<String>,
    /// First and last time of the rows it was fitted on (training and validation), RFC 3339 or
    /// as the column printed them.
    #[serde(default)]
    pub time_from: Option<String>,
    #[serde(default)]
    pub time_to: Option<String>,
    /// Rows it was fitted on, and held-out rows its metrics come from.
    pub rows: u64,
    #[serde(default)]
    pub rows_holdout: u64,
}

/// What [`Registry::register`] is given.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub name: String,
    pub artifact: Bytes,
    pub artifact_file: String,
    pub format: String,
    pub description: String,
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    pub schema: FeatureSchema,
    pub feature_set: Option<FeatureSetSpec>,
    pub lineage: Lineage,
    pub code_version: String,
    pub tags: BTreeMap<String, String>,
}

/// Which version of a model: `latest`, a number, or the one an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u64),
    Alias(String),
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "version {n}"),
            VersionRef::Alias(a) => write!(f, "alias `{a}`"),
        }
    }
}

/// `NAME`, `NAME@ALIAS`, `NAME/VERSION` or `NAME/latest` (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    /// `None` for a bare name (the model as a whole).
    pub version: Option<VersionRef>,
}

impl ModelRef {
    /// Parses `NAME[@ALIAS|/VERSION]`; errors name the part at fault.
    pub fn parse(s: &str) -> Result<ModelRef> {
        let bad = |reason: String| Error::invalid("model", reason);
        let (name, version) = if let Some((n, a)) = s.split_once('@') {
            check_alias(a)?;
            (n, Some(VersionRef::Alias(a.to_string())))
        } else if let Some((n, v)) = s.split_once('/') {
            let v = if v == "latest" {
                VersionRef::Latest
            } else {
                VersionRef::Number(
                    v.parse().ok().filter(|&n: &u64| n > 0).ok_or_else(|| bad(format!("`{v}` in `{s}` is not a version number or `latest`")))?,
                )
            };
            (n, Some(v))
        } else {
            (s, None)
        };
        check_name(name)?;
        Ok(ModelRef { name: name.to_string(), version })
    }
}

/// Model names: lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit, at
/// most 64 characters (a safe path segment and a valid MLflow name).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("model", format!("`{name}` is not a model name (lowercase letters, digits, `-`, `_`, `.`; at most 64)")))
    }
}

/// Aliases: a lowercase letter, then letters, digits, `-` or `_`; not `latest` and not
/// `v<digits>` (MLflow reserves both).
pub fn check_alias(alias: &str) -> Result<()> {
    let reserved = alias == "latest" || (alias.len() > 1 && alias.starts_with('v') && alias[1..].bytes().all(|b| b.is_ascii_digit()));
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias.as_bytes()[0].is_ascii_lowercase()
        && alias.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if ok && !reserved {
        Ok(())
    } else {
        Err(Error::invalid("alias", format!("`{alias}` is not an alias (a lowercase letter, then letters, digits, `-`, `_`; not `latest` or `v<N>`)")))
    }
}

/// What the caller believes an alias points at before moving it: the move happens only if it
/// still does (compare-and-swap), otherwise [`Error::Conflict`] and nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is at the moment of reading (still a conflict if it moves between our read
    /// and our write).
    Current,
    /// The alias must not exist yet.
    Absent,
    /// The alias must point at this version.
    Version(u64),
}

/// One move of an alias. The history of an alias is the list of its moves, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEntry {
    pub alias: String,
    /// The version it points at from this move on.
    pub version: u64,
    /// The version it pointed at before (none for the first move).
    pub previous: Option<u64>,
    /// RFC 3339, UTC.
    pub at: String,
    /// `promote`, `rollback`, `register` (the first version of a model), or the caller's words.
    pub reason: String,
}

/// A model and where its aliases point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    /// Versions not deleted.
    pub versions: u64,
    pub latest: Option<u64>,
    pub aliases: BTreeMap<String, u64>,
}

/// Progress of [`Registry::register`], for progress bars (and for tests that kill a writer at a
/// chosen point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes of the artifact uploaded so far.
    Artifact { written: u64, total: u64 },
    /// The artifact is stored; the version is not visible yet.
    ArtifactStored,
    /// The version is visible under this number.
    Committed { version: u64 },
}

/// An artifact whose bytes hashed to the checksum its version recorded. Only a registry makes
/// one ([`Registry::fetch`]); model loaders take this, never bare bytes from a registry.
#[derive(Debug, Clone)]
pub struct VerifiedArtifact {
    version: ModelVersion,
    bytes: Bytes,
}

impl VerifiedArtifact {
    /// Checks `bytes` against `version.artifact` (size, then BLAKE3).
    pub(crate) fn verify(registry: &str, version: ModelVersion, bytes: Bytes) -> Result<VerifiedArtifact> {
        let found = blake3::hash(&bytes).to_hex().to_string();
        if bytes.len() as u64 != version.artifact.size || found != version.artifact.blake3 {
            return Err(Error::Checksum {
                registry: registry.to_string(),
                model: version.name.clone(),
                version: version.version,
                expected: version.artifact.blake3.clone(),
                found: format!("{found} over {} bytes, {} recorded", bytes.len(), version.artifact.size),
            });
        }
        Ok(VerifiedArtifact { version, bytes })
    }

    pub fn version(&self) -> &ModelVersion {
        &self.version
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Refuses an artifact trained on another feature schema than `expected_hash`.
    pub fn check_schema(&self, expected_hash: &str) -> Result<()> {
        if self.version.schema.hash == expected_hash {
            Ok(())
        } else {
            Err(Error::SchemaMismatch { expected: expected_hash.to_string(), found: self.version.schema.hash.clone() })
        }
    }

    /// The regressor with its intervals in an `omen-gbdt-interval/1` artifact (a plain
    /// `omen-gbdt/1` one gives the point model alone), after the same checks as [`Self::gbdt`].
    pub fn interval_model(&self, expected_schema: Option<&str>) -> Result<crate::gbdt::IntervalModel> {
        let f = &self.version.artifact.format;
        if !(f.starts_with("omen-gbdt-interval/") || f.starts_with("omen-gbdt/")) {
            return Err(Error::Artifact {
                message: format!("`{}` version {} is a `{f}` artifact, not a GBDT", self.version.name, self.version.version),
            });
        }
        if let Some(h) = expected_schema {
            self.check_schema(h)?;
        }
        crate::gbdt::IntervalModel::from_bytes(&self.bytes, expected_schema)
    }

    /// The GBDT in it, after checking the format and (when given) the schema hash, both in the
    /// registry's record and in the artifact's own header.
    pub fn gbdt(&self, expected_schema: Option<&str>) -> Result<crate::gbdt::Gbdt> {
        if !self.version.artifact.format.starts_with("omen-gbdt/") {
            return Err(Error::Artifact {
                message: format!("`{}` version {} is a `{}` artifact, not a GBDT", self.version.name, self.version.version, self.version.artifact.format),
            });
        }
        if let Some(h) = expected_schema {
            self.check_schema(h)?;
        }
        crate::gbdt::Gbdt::from_bytes(&self.bytes, expected_schema)
    }
}

/// What both backends do. Every method names the registry in its errors.
pub trait Registry {
    /// The URL it was opened with (credentials never included).
    fn url(&self) -> &str;

    /// Stores a new version and returns it with its number (one more than the highest ever
    /// given for the model). Nothing is visible until the version is complete.
    fn register(
        &self,
        new: NewVersion,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> impl Future<Output = Result<ModelVersion>> + Send;

    /// Every model, with its aliases.
    fn models(&self) -> impl Future<Output = Result<Vec<ModelSummary>>> + Send;

    /// Every version of `name`, oldest first, deleted ones flagged; [`Error::NotFound`] for a
    /// model that does not exist.
    fn versions(&self, name: &str) -> impl Future<Output = Result<Vec<ModelVersion>>> + Send;

    /// One version's record. A deleted version is returned with `deleted_at` set when asked by
    /// number; through an alias or `latest` it is [`Error::Deleted`] (an alias) or skipped.
    fn version(&self, name: &str, which: &VersionRef) -> impl Future<Output = Result<ModelVersion>> + Send;

    /// The artifact of a version, verified against its checksum. A deleted version is
    /// [`Error::Deleted`].
    fn fetch(&self, name: &str, which: &VersionRef) -> impl Future<Output = Result<VerifiedArtifact>> + Send;

    /// Points `alias` at `version` if it still is where `expect` says.
    fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u64,
        expect: Expect,
        reason: &str,
    ) -> impl Future<Output = Result<AliasEntry>> + Send;

    /// Every move of `alias`, oldest first (empty if it was never set).
    fn alias_history(&self, name: &str, alias: &str) -> impl Future<Output = Result<Vec<AliasEntry>>> + Send;

    /// Deletes a version: it is never loaded again and its number is never reused. Aliases
    /// pointing at it are left in place and refuse to load until moved.
    fn delete_version(&self, name: &str, version: u64) -> impl Future<Output = Result<()>> + Send;
}

/// Where `rollback` takes `alias`: walking its history back from the newest move, the first
/// version that differs from the current one, was not itself rolled back from, and is not
/// deleted.
pub(crate) fn rollback_target(history: &[AliasEntry], deleted: &dyn Fn(u64) -> bool) -> Option<(u64, u64)> {
    let current = history.last()?.version;
    let rolled_back_from: Vec<u64> =
        history.iter().filter(|e| e.reason.starts_with("rollback")).filter_map(|e| e.previous).collect();
    history
        .iter()
        .rev()
        .map(|e| e.version)
        .find(|&v| v != current && !rolled_back_from.contains(&v) && !deleted(v))
        .map(|v| (current, v))
}

/// Opens the registry a URL names: `mlflow+http(s)://…` is an MLflow server, anything else a
/// store (path or object-store URL). `store_options` are the store's `object_store` options;
/// `mlflow` the MLflow client's (credentials, timeouts).
pub fn open<I, K, V>(url: &str, store_options: I, mlflow: MlflowOptions) -> Result<AnyRegistry>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    if url.starts_with("mlflow+") {
        Ok(AnyRegistry::Mlflow(MlflowRegistry::open(url, mlflow)?))
    } else if url.starts_with("mlflow:") || url.starts_with("databricks") {
        Err(Error::Registry { registry: url.to_string(), message: "an MLflow registry is `mlflow+http://host:port` or `mlflow+https://…`".into() })
    } else {
        Ok(AnyRegistry::Store(StoreRegistry::open(url, store_options)?))
    }
}

/// Either backend, chosen by [`open`].
#[derive(Debug, Clone)]
pub enum AnyRegistry {
    Store(StoreRegistry),
    Mlflow(MlflowRegistry),
}

macro_rules! dispatch {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyRegistry::Store($r) => $e,
            AnyRegistry::Mlflow($r) => $e,
        }
    };
}

impl Registry for AnyRegistry {
    fn url(&self) -> &str {
        dispatch!(self, r => r.url())
    }
    async fn register(&self, new: NewVersion, progress: &mut (dyn FnMut(Progress) + Send)) -> Result<ModelVersion> {
        dispatch!(self, r => r.register(new, progress).await)
    }
    async fn models(&self) -> Result<Vec<ModelSummary>> {
        dispatch!(self, r => r.models().await)
    }
    async fn versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        dispatch!(self, r => r.versions(name).await)
    }
    async fn version(&self, name: &str, which: &VersionRef) -> Result<ModelVersion> {
        dispatch!(self, r => r.version(name, which).await)
    }
    async fn fetch(&self, name: &str, which: &VersionRef) -> Result<VerifiedArtifact> {
        dispatch!(self, r => r.fetch(name, which).await)
    }
    async fn set_alias(&self, name: &str, alias: &str, version: u64, expect: Expect, reason: &str) -> Result<AliasEntry> {
        dispatch!(self, r => r.set_alias(name, alias, version, expect, reason).await)
    }
    async fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEntry>> {
        dispatch!(self, r => r.alias_history(name, alias).await)
    }
    async fn delete_version(&self, name: &str, version: u64) -> Result<()> {
        dispatch!(self, r => r.delete_version(name, version).await)
    }
}

impl AnyRegistry {
    /// Points `champion` (or `alias`) at `version`; see [`Registry::set_alias`].
    pub async fn promote(&self, name: &str, alias: &str, version: u64, expect: Expect) -> Result<AliasEntry> {
        self.set_alias(name, alias, version, expect, "promote").await
    }

    /// Moves `alias` back to where it was before the current version (see the module docs):
    /// a compare-and-swap against the current version, so a promotion racing with it wins or
    /// loses cleanly.
    pub async fn rollback(&self, name: &str, alias: &str) -> Result<AliasEntry> {
        let history = self.alias_history(name, alias).await?;
        if history.is_empty() {
            return Err(Error::NotFound { registry: self.url().to_string(), what: format!("alias `{alias}` of `{name}`") });
        }
        let versions = self.versions(name).await?;
        // Deleted: tombstoned (own registry) or gone (MLflow).
        let deleted = |v: u64| !versions.iter().any(|m| m.version == v && m.deleted_at.is_none());
        let (current, target) = rollback_target(&history, &deleted).ok_or_else(|| Error::Registry {
            registry: self.url().to_string(),
            message: format!("alias `{alias}` of `{name}` has no earlier version to roll back to (it points at version {})", history.last().map_or(0, |e| e.version)),
        })?;
        self.set_alias(name, alias, target, Expect::Version(current), &format!("rollback from {current}")).await
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
