//! The models `omen-serve` answers with: the champions of the registry, verified, with the
//! feature set that computes their inputs; swapped as a whole when a new champion appears.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use omen_features::feature::{FeatureSet, InputEncoder};
use omen_features::history::Deployment;
use omen_features::feature::RepoHistory;
use omen_models::gbdt::Gbdt;
use omen_models::registry::{AnyRegistry, CHAMPION, ModelVersion, Registry, VersionRef};

use crate::error::{Error, Result};

/// The failure classifier's name in the registry.
pub const FAILURE: &str = "omen-failure";
/// The performance regressor's name.
pub const PERFORMANCE: &str = "omen-performance";
/// The LSTM sequence models' name.
pub const SEQUENCE: &str = "omen-sequence";

/// The sequence champion (forecaster and classifier), ready to assess canary windows.
#[derive(Debug)]
pub struct LoadedSequence {
    pub version: ModelVersion,
    pub model: omen_models::sequence::SequenceModel,
}

/// A GBDT champion, ready to score.
#[derive(Debug)]
pub struct Loaded {
    pub version: ModelVersion,
    pub model: Gbdt,
    /// Computes the inputs from raw samples: the feature set the model was trained on.
    pub features: FeatureSet,
    /// Maps the feature set's row onto the model's inputs.
    pub encoder: InputEncoder,
    /// For a performance model: the metric its label predicts (`label__<metric>__at_full`).
    pub target_metric: Option<String>,
    /// For a performance model: its 80 % and 95 % intervals.
    pub bands: Vec<omen_models::gbdt::Band>,
}

/// Everything a call needs besides its request: the models and the history of the services.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub failure: Option<Arc<Loaded>>,
    pub performance: Option<Arc<Loaded>>,
    /// The LSTM forecaster and classifier (optional: answers carry no `sequence` without it).
    pub sequence: Option<Arc<LoadedSequence>>,
    pub history: Arc<History>,
    /// Unix seconds of the last successful load.
    pub loaded_at: f64,
}

/// The services' history from the store: what the change features need.
#[derive(Debug, Default)]
pub struct History {
    /// Repository histories by service (from `commits/`).
    pub repos: HashMap<String, RepoHistory>,
    /// Deployments by service, by start (from `deployments/`).
    pub deployments: HashMap<String, Vec<Deployment>>,
}

/// The current snapshot, replaced whole (readers keep the one they took).
#[derive(Debug, Default)]
pub struct Shared {
    inner: RwLock<Arc<Snapshot>>,
}

impl Shared {
    pub fn get(&self) -> Arc<Snapshot> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, s: Snapshot) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }
}

/// Loads the champion of `name`: fetched (checksum verified), checked against the schema it
/// records, with a feature set that gives every input. `Ok(None)` when the model or its
/// champion does not exist yet.
pub async fn load_champion(registry: &AnyRegistry, name: &str) -> Result<Option<Loaded>> {
    let art = match registry.fetch(name, &VersionRef::Alias(CHAMPION.into())).await {
        Ok(a) => a,
        Err(omen_models::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = art.version().clone();
    let spec = version.feature_set.clone().ok_or_else(|| {
        Error::Unavailable(format!(
            "`{name}` version {} was trained on a table without omen's feature set (not a `features/` folder): omen-serve cannot compute its inputs",
            version.version
        ))
    })?;
    let features = FeatureSet::from_spec(&spec)?;
    let (model, bands) = if version.artifact.format.starts_with("omen-gbdt-interval/") {
        let m = art.interval_model(Some(&version.schema.hash))?;
        (m.point, m.bands)
    } else {
        (art.gbdt(Some(&version.schema.hash))?, Vec::new())
    };
    let encoder = InputEncoder::new(features.schema(), &model.feature_names).map_err(|missing| {
        Error::Unavailable(format!("`{name}` version {}: its feature set does not give the inputs {}", version.version, missing.join(", ")))
    })?;
    let target_metric = version.target_metric().map(str::to_owned);
    Ok(Some(Loaded { version, model, features, encoder, target_metric, bands }))
}

/// Loads the champion of `omen-sequence`: fetched (checksum verified), its format and input
/// schema checked. `Ok(None)` when there is none.
pub async fn load_sequence_champion(registry: &AnyRegistry) -> Result<Option<LoadedSequence>> {
    let art = match registry.fetch(SEQUENCE, &VersionRef::Alias(CHAMPION.into())).await {
        Ok(a) => a,
        Err(omen_models::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let model = omen_models::sequence::SequenceModel::from_verified(&art)?;
    Ok(Some(LoadedSequence { version: art.version().clone(), model }))
}

/// Whether `old` is the same version (number and artifact) as the registry's current champion.
pub fn same(old: Option<&ModelVersion>, new: &ModelVersion) -> bool {
    old.is_some_and(|o| o.version == new.version && o.artifact.blake3 == new.artifact.blake3)
}
