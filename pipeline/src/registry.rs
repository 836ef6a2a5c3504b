//! `omen registry list | show | promote | rollback | delete`, and registering what `omen train`
//! trains (DESIGN §3, §4). The registry itself lives in `omen_models::registry`.

use std::collections::BTreeMap;

use bytes::Bytes;
use omen_features::feature::{FeatureColumn, FeatureSchema, Kind};
use omen_models::registry::{
    AliasEntry, AnyRegistry, CHAMPION, Expect, Lineage, ModelRef, ModelSummary, ModelVersion, NewVersion, Progress, Registry,
    VersionRef,
};
use serde::Serialize;

use crate::error::Result;
use crate::train::{TrainArgs, TrainSummary};

/// The omen build: `omen <version> (<git commit>)`.
pub fn code_version() -> String {
    let sha = env!("OMEN_GIT_SHA");
    if sha.is_empty() {
        format!("omen {}", env!("CARGO_PKG_VERSION"))
    } else {
        format!("omen {} ({sha})", env!("CARGO_PKG_VERSION"))
    }
}

/// The schema of a model's inputs as trained: every input is a float; indicator features of a
/// string column (`state=no_data`) say so; the docs of an omen feature folder are carried over.
pub fn model_schema(features: &[String], folder_schema: Option<&FeatureSchema>) -> FeatureSchema {
    let doc_of = |name: &str| {
        folder_schema.and_then(|s| s.columns.iter().find(|c| c.name == name)).map(|c| c.doc.clone())
    };
    FeatureSchema::new(
        features
            .iter()
            .map(|f| FeatureColumn {
                name: f.clone(),
                kind: Kind::Float,
                label: false,
                doc: doc_of(f).unwrap_or_else(|| match f.split_once('=') {
                    Some((c, v)) => format!("1 when `{c}` is `{v}`, 0 otherwise, missing when it is null"),
                    None => String::new(),
                }),
            })
            .collect(),
    )
}

/// What `omen train` registered.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub registry: String,
    pub name: String,
    pub version: u64,
    /// Whether it became the champion (the first version of a model does).
    pub champion: bool,
}

/// Registers a trained GBDT: the artifact, its held-out metrics, hyperparameters, input schema
/// and lineage. The first version of a model also becomes its `champion`.
pub async fn register_trained(
    registry: &AnyRegistry,
    args: &TrainArgs,
    summary: &TrainSummary,
    model: &omen_models::gbdt::Gbdt,
    bands: &[omen_models::gbdt::Band],
    schema: FeatureSchema,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Registered> {
    let (v, _) = register_version(registry, args, summary, model, bands, schema, progress).await?;
    let champion = crown_first(registry, &v).await?;
    Ok(Registered { registry: registry.url().to_string(), name: v.name, version: v.version, champion })
}

/// The first version of a model becomes its champion; later ones wait for a promotion. Whether
/// `v` is the champion now (a re-registered artifact may already be).
pub async fn crown_first(registry: &AnyRegistry, v: &ModelVersion) -> Result<bool> {
    match registry.set_alias(&v.name, CHAMPION, v.version, Expect::Absent, "register").await {
        Ok(_) => Ok(true),
        // Another version is the champion, or this one already was (the same artifact again).
        Err(omen_models::Error::Conflict { .. }) => Ok(v.aliases.iter().any(|a| a == CHAMPION)),
        Err(e) => Err(e.into()),
    }
}

/// Registers a trained GBDT as a new version ([`register_or_find`]: the same artifact again is
/// the version that holds it), moving no alias (`omen retrain` decides).
pub async fn register_version(
    registry: &AnyRegistry,
    args: &TrainArgs,
    summary: &TrainSummary,
    model: &omen_models::gbdt::Gbdt,
    bands: &[omen_models::gbdt::Band],
    schema: FeatureSchema,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(ModelVersion, bool)> {
    let mut metrics = BTreeMap::new();
    let m = serde_json::to_value(&summary.metrics).unwrap_or_default();
    if let Some(obj) = m.as_object() {
        for (k, v) in obj {
            if let Some(x) = v.as_f64() {
                metrics.insert(k.clone(), x);
            }
        }
    }
    metrics.insert("train_seconds".into(), summary.train_seconds);
    for (name, b) in &summary.baselines {
        for (k, v) in serde_json::to_value(&b.metrics).unwrap_or_default().as_object().into_iter().flatten() {
            if let Some(x) = v.as_f64() {
                metrics.insert(format!("baseline.{name}.{k}"), x);
            }
        }
    }
    let mut params = BTreeMap::new();
    if let Some(obj) = serde_json::to_value(&model.params).unwrap_or_default().as_object() {
        for (k, v) in obj {
            params.insert(k.clone(), match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            });
        }
    }
    params.insert("trees".into(), summary.trees.to_string());
    let mut tags = BTreeMap::new();
    tags.insert("label".into(), summary.label.clone());
    let new = NewVersion {
        name: summary.model.clone(),
        artifact: Bytes::from(if bands.is_empty() {
            model.to_bytes()
        } else {
            omen_models::gbdt::IntervalModel { point: model.clone(), bands: bands.to_vec() }.to_bytes()
        }),
        artifact_file: if bands.is_empty() { "model.omengbdt" } else { "model.omengbiv" }.into(),
        format: if bands.is_empty() {
            format!("omen-gbdt/{}", omen_models::gbdt::FORMAT_VERSION)
        } else {
            format!("omen-gbdt-interval/{}", omen_models::gbdt::INTERVAL_FORMAT_VERSION)
        },
        description: format!("{} of `{}` trained on {}", summary.model, summary.label, summary.features_file),
        metrics,
        params,
        schema,
        feature_set: crate::train::folder_feature_set(&args.features),
        lineage: Lineage {
            source: std::fs::canonicalize(&args.features)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| summary.features_file.clone()),
            time_column: args.time_column.clone(),
            time_from: summary.time_from.clone(),
            time_to: summary.time_to.clone(),
            rows: (summary.rows_train + summary.rows_valid) as u64,
            rows_holdout: summary.rows_test as u64,
        },
        code_version: code_version(),
        tags,
    };
    register_or_find(registry, new, progress).await
}

/// Registers `new`, unless a live version holds the same artifact already (a re-run on the same
/// data with the same seed): that version is returned instead of a new one. The flag says which
/// (true: it was there).
pub async fn register_or_find(
    registry: &AnyRegistry,
    new: NewVersion,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(ModelVersion, bool)> {
    if let Some(v) = same_artifact(registry, &new.name, &new.artifact).await? {
        return Ok((v, true));
    }
    Ok((registry.register(new, progress).await?, false))
}

/// The live (not deleted) version of `name` whose artifact is exactly `bytes`, if any.
pub async fn same_artifact(registry: &AnyRegistry, name: &str, bytes: &[u8]) -> Result<Option<omen_models::registry::ModelVersion>> {
    let versions = match registry.versions(name).await {
        Ok(v) => v,
        Err(omen_models::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let hash = blake3::hash(bytes).to_hex().to_string();
    Ok(versions.into_iter().rev().find(|v| v.deleted_at.is_none() && v.artifact.blake3 == hash && v.artifact.size == bytes.len() as u64))
}

/// `omen registry list`.
#[derive(Debug, Serialize)]
pub struct ListReport {
    pub registry: String,
    pub models: Vec<ModelSummary>,
}

impl ListReport {
    pub fn human(&self) -> String {
        if self.models.is_empty() {
            return format!("{}: no models\n", self.registry);
        }
        let mut s = format!("{}\n", self.registry);
        s += &format!("  {:<20} {:>8} {:>7}  aliases\n", "model", "versions", "latest");
        for m in &self.models {
            let aliases = m.aliases.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(" ");
            s += &format!(
                "  {:<20} {:>8} {:>7}  {aliases}\n",
                m.name,
                m.versions,
                m.latest.map_or("-".into(), |v| v.to_string())
            );
        }
        s
    }
}

pub async fn list(registry: &AnyRegistry) -> Result<ListReport> {
    Ok(ListReport { registry: registry.url().to_string(), models: registry.models().await? })
}

/// `omen registry show NAME[@ALIAS|/VERSION]`: one version, or a model's versions and the
/// history of its aliases.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ShowReport {
    Version(Box<ModelVersion>),
    Model { name: String, registry: String, versions: Vec<ModelVersion>, alias_history: BTreeMap<String, Vec<AliasEntry>> },
}

impl ShowReport {
    pub fn human(&self) -> String {
        match self {
            ShowReport::Version(v) => version_human(v),
            ShowReport::Model { name, registry, versions, alias_history } => {
                let mut s = format!("{name} in {registry}\n");
                for v in versions {
                    let key = v.metrics.iter().take(4).map(|(k, x)| format!("{k}={x:.4}")).collect::<Vec<_>>().join(" ");
                    s += &format!(
                        "  v{:<4} {}  {}{}{}\n",
                        v.version,
                        v.created_at,
                        key,
                        if v.aliases.is_empty() { String::new() } else { format!("  [{}]", v.aliases.join(", ")) },
                        if v.deleted_at.is_some() { "  (deleted)" } else { "" },
                    );
                }
                for (alias, h) in alias_history {
                    let moves = h.iter().map(|e| format!("{} ({})", e.version, e.reason)).collect::<Vec<_>>().join(" → ");
                    s += &format!("  {alias}: {moves}\n");
                }
                s
            }
        }
    }
}

fn version_human(v: &ModelVersion) -> String {
    let mut s = format!("{} version {}{}\n", v.name, v.version, if v.aliases.is_empty() { String::new() } else { format!(" [{}]", v.aliases.join(", ")) });
    if let Some(d) = &v.deleted_at {
        s += &format!("  DELETED at {d}\n");
    }
    s += &format!("  created    {} by {}\n", v.created_at, v.code_version);
    s += &format!("  artifact   {} ({}, {} bytes, blake3 {})\n", v.artifact.file, v.artifact.format, v.artifact.size, v.artifact.blake3);
    s += &format!("  schema     {} inputs, hash {}\n", v.schema.columns.len(), v.schema.hash);
    let l = &v.lineage;
    s += &format!(
        "  data       {} ({} rows fitted, {} held out{})\n",
        l.source,
        l.rows,
        l.rows_holdout,
        match (&l.time_column, &l.time_from, &l.time_to) {
            (Some(c), Some(a), Some(b)) => format!("; {c} from {a} to {b}"),
            _ => String::new(),
        }
    );
    for (k, x) in &v.metrics {
        s += &format!("  metric     {k} = {x}\n");
    }
    s
}

pub async fn show(registry: &AnyRegistry, what: &str) -> Result<ShowReport> {
    let r = ModelRef::parse(what)?;
    Ok(match r.version {
        Some(which) => ShowReport::Version(Box::new(registry.version(&r.name, &which).await?)),
        None => {
            let versions = registry.versions(&r.name).await?;
            let mut alias_history = BTreeMap::new();
            for alias in [CHAMPION, omen_models::registry::CHALLENGER] {
                let h = registry.alias_history(&r.name, alias).await?;
                if !h.is_empty() {
                    alias_history.insert(alias.to_string(), h);
                }
            }
            ShowReport::Model { name: r.name, registry: registry.url().to_string(), versions, alias_history }
        }
    })
}

/// `omen registry promote` / `rollback` / `delete`: what moved.
#[derive(Debug, Serialize)]
pub struct MoveReport {
    pub registry: String,
    pub name: String,
    #[serde(flatten)]
    pub entry: AliasEntry,
}

impl MoveReport {
    pub fn human(&self) -> String {
        format!(
            "{}: `{}` → version {} (was {}; {})\n",
            self.name,
            self.entry.alias,
            self.entry.version,
            self.entry.previous.map_or("unset".into(), |v| v.to_string()),
            self.entry.reason,
        )
    }
}

/// Parses `--expect`: a version number, or `none` for an alias that must not exist yet.
pub fn parse_expect(s: Option<&str>) -> Result<Expect> {
    match s {
        None => Ok(Expect::Current),
        Some("none") => Ok(Expect::Absent),
        Some(v) => v
            .parse()
            .map(Expect::Version)
            .map_err(|_| crate::Error::input("--expect", format!("`{v}` is not a version number or `none`"))),
    }
}

pub async fn promote(registry: &AnyRegistry, name: &str, version: &str, alias: &str, expect: Expect) -> Result<MoveReport> {
    let r = ModelRef::parse(name)?;
    let n = match version {
        "latest" => registry.version(&r.name, &VersionRef::Latest).await?.version,
        v => v.parse().map_err(|_| crate::Error::input("VERSION", format!("`{v}` is not a version number or `latest`")))?,
    };
    let entry = registry.promote(&r.name, alias, n, expect).await?;
    Ok(MoveReport { registry: registry.url().to_string(), name: r.name, entry })
}

pub async fn rollback(registry: &AnyRegistry, name: &str, alias: &str) -> Result<MoveReport> {
    let r = ModelRef::parse(name)?;
    let entry = registry.rollback(&r.name, alias).await?;
    Ok(MoveReport { registry: registry.url().to_string(), name: r.name, entry })
}

/// `omen registry delete NAME/VERSION`.
#[derive(Debug, Serialize)]
pub struct DeleteReport {
    pub registry: String,
    pub name: String,
    pub version: u64,
    /// Aliases that pointed at it (they refuse to load until moved).
    pub dangling_aliases: Vec<String>,
}

pub async fn delete(registry: &AnyRegistry, what: &str) -> Result<DeleteReport> {
    let r = ModelRef::parse(what)?;
    let Some(VersionRef::Number(n)) = r.version else {
        return Err(crate::Error::input(what, "name one version: NAME/VERSION"));
    };
    let v = registry.version(&r.name, &VersionRef::Number(n)).await?;
    registry.delete_version(&r.name, n).await?;
    Ok(DeleteReport { registry: registry.url().to_string(), name: r.name, version: n, dangling_aliases: v.aliases })
}

/// `omen registry pull NAME[@ALIAS|/VERSION] --out FILE`: the artifact, verified against its
/// checksum (and, for a GBDT, loaded once to prove it reads), written to `FILE`.
#[derive(Debug, Serialize)]
pub struct PullReport {
    pub registry: String,
    pub name: String,
    pub version: u64,
    pub out: String,
    pub bytes: u64,
    pub blake3: String,
    pub schema_hash: String,
    /// Trees of a GBDT artifact (loaded to check it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trees: Option<usize>,
}

pub async fn pull(registry: &AnyRegistry, what: &str, out: &std::path::Path) -> Result<PullReport> {
    let r = ModelRef::parse(what)?;
    let which = r.version.unwrap_or(VersionRef::Alias(CHAMPION.into()));
    let art = registry.fetch(&r.name, &which).await?;
    let v = art.version();
    let trees = if v.artifact.format.starts_with("omen-gbdt/") {
        Some(art.gbdt(Some(&v.schema.hash))?.trees.len())
    } else if v.artifact.format.starts_with("omen-gbdt-interval/") {
        let m = art.interval_model(Some(&v.schema.hash))?;
        Some(m.point.trees.len() + m.bands.iter().map(|b| b.lo.trees.len() + b.hi.trees.len()).sum::<usize>())
    } else {
        None
    };
    std::fs::write(out, art.bytes()).map_err(|e| crate::Error::input(out.display().to_string(), e.to_string()))?;
    Ok(PullReport {
        registry: registry.url().to_string(),
        name: v.name.clone(),
        version: v.version,
        out: out.display().to_string(),
        bytes: v.artifact.size,
        blake3: v.artifact.blake3.clone(),
        schema_hash: v.schema.hash.clone(),
        trees,
    })
}
