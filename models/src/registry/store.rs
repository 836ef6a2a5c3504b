//! omen's own registry on a store (a local folder or any object store).
//!
//! ```text
//! <root>/models/<name>/artifacts/<blake3>            artifact bytes, content-addressed
//! <root>/models/<name>/versions/<000042>.json         a version's record: its commit point
//! <root>/models/<name>/deleted/<000042>.json          tombstone of a deleted version
//! <root>/models/<name>/aliases/<alias>/<000007>.json  the 7th move of an alias
//! ```
//!
//! Every write that decides something is a *create* that fails if the object exists
//! (`PutMode::Create`: `If-None-Match: *` on S3, GCS and Azure, a no-clobber link on local disk),
//! so the store itself arbitrates races, without locks:
//!
//! - **Versions**: the artifact is written first under its checksum (writing the same bytes
//!   twice is harmless); then the record `versions/<n>.json` is created with the next number. It
//!   is the commit point: a writer killed before it leaves an unreferenced artifact (or, killed
//!   mid-upload, an incomplete multipart upload that is not an object at all), never a visible
//!   partial version. Two writers choosing the same number: one create fails and that writer
//!   takes the next number.
//! - **Aliases** are logs: moving an alias creates entry `n + 1` after reading entry `n`. Two
//!   processes moving one alias at once both try to create `n + 1`; exactly one succeeds and the
//!   other gets [`Error::Conflict`]. The newest entry is where the alias points; the older ones
//!   are the history `rollback` walks.

use std::collections::BTreeMap;

use bytes::Bytes;
use omen_features::Store;

use super::{
    AliasEntry, ArtifactInfo, Expect, ModelSummary, ModelVersion, NewVersion, Progress, Registry, VerifiedArtifact, VersionRef,
    check_alias, check_name, now_rfc3339,
};
use crate::{Error, Result};

/// Part size of artifact uploads (object stores need at least 5 MiB).
const PART: usize = 8 << 20;

/// omen's own registry on a store. See the module docs for the layout and the guarantees.
#[derive(Debug, Clone)]
pub struct StoreRegistry {
    store: Store,
    url: String,
}

fn seq(n: u64) -> String {
    format!("{n:06}.json")
}

/// The numbers of `…/<000042>.json` objects among `paths`.
fn numbers(paths: &[String]) -> Vec<u64> {
    let mut v: Vec<u64> = paths
        .iter()
        .filter_map(|p| p.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

impl StoreRegistry {
    /// Opens (and for a local path, creates) the registry rooted at `url`.
    pub fn open<I, K, V>(url: &str, options: I) -> Result<StoreRegistry>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let store = Store::open_with_options(url, options)
            .map_err(|e| Error::Registry { registry: url.to_string(), message: e.to_string() })?;
        Ok(StoreRegistry { url: store.url().to_string(), store })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Registry { registry: self.url.clone(), message: e.to_string() }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound { registry: self.url.clone(), what }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        let Some(b) = self.store.get(rel).await.map_err(|e| self.err(e))? else { return Ok(None) };
        serde_json::from_slice(&b).map(Some).map_err(|e| self.err(format!("{rel}: {e}")))
    }

    async fn list(&self, rel: &str) -> Result<Vec<String>> {
        self.store.list(rel).await.map_err(|e| self.err(e))
    }

    async fn ensure_model(&self, name: &str) -> Result<Vec<u64>> {
        check_name(name)?;
        let v = numbers(&self.list(&format!("models/{name}/versions/")).await?);
        if v.is_empty() {
            return Err(self.not_found(format!("model `{name}`")));
        }
        Ok(v)
    }

    async fn deleted(&self, name: &str) -> Result<BTreeMap<u64, String>> {
        let mut out = BTreeMap::new();
        for n in numbers(&self.list(&format!("models/{name}/deleted/")).await?) {
            let t: Tombstone = self.get_json(&format!("models/{name}/deleted/{}", seq(n))).await?.unwrap_or_default();
            out.insert(n, t.at);
        }
        Ok(out)
    }

    /// Where every alias of `name` points now.
    async fn aliases(&self, name: &str) -> Result<BTreeMap<String, u64>> {
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        let prefix = format!("models/{name}/aliases/");
        for p in self.list(&prefix).await? {
            let rest = p.strip_prefix(&prefix).unwrap_or(&p);
            let Some((alias, file)) = rest.split_once('/') else { continue };
            let Some(n) = file.strip_suffix(".json").and_then(|f| f.parse::<u64>().ok()) else { continue };
            let e = latest.entry(alias.to_string()).or_insert(0);
            *e = (*e).max(n);
        }
        let mut out = BTreeMap::new();
        for (alias, n) in latest {
            if let Some(e) = self.get_json::<AliasEntry>(&format!("{prefix}{alias}/{}", seq(n))).await? {
                out.insert(alias, e.version);
            }
        }
        Ok(out)
    }

    async fn record(&self, name: &str, n: u64) -> Result<Option<ModelVersion>> {
        self.get_json(&format!("models/{name}/versions/{}", seq(n))).await
    }

    /// Resolves `which` to a version number, refusing a deleted version reached through an
    /// alias or `latest` … `latest` skips deleted versions instead.
    async fn resolve(&self, name: &str, which: &VersionRef) -> Result<u64> {
        let all = self.ensure_model(name).await?;
        let deleted = self.deleted(name).await?;
        match which {
            VersionRef::Number(n) => {
                if all.contains(n) {
                    Ok(*n)
                } else {
                    Err(self.not_found(format!("version {n} of `{name}`")))
                }
            }
            VersionRef::Latest => all
                .iter()
                .rev()
                .copied()
                .find(|n| !deleted.contains_key(n))
                .ok_or_else(|| self.not_found(format!("a version of `{name}` that is not deleted"))),
            VersionRef::Alias(a) => {
                check_alias(a)?;
                let history = self.alias_history(name, a).await?;
                let v = history.last().map(|e| e.version).ok_or_else(|| self.not_found(format!("alias `{a}` of `{name}`")))?;
                if deleted.contains_key(&v) {
                    return Err(Error::Deleted {
                        registry: self.url.clone(),
                        what: format!("version {v} of `{name}`, where alias `{a}` points,"),
                    });
                }
                Ok(v)
            }
        }
    }

    fn decorate(&self, mut m: ModelVersion, aliases: &BTreeMap<String, u64>, deleted: &BTreeMap<u64, String>) -> ModelVersion {
        m.aliases = aliases.iter().filter(|(_, v)| **v == m.version).map(|(a, _)| a.clone()).collect();
        m.deleted_at = deleted.get(&m.version).cloned();
        m
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Tombstone {
    at: String,
}

impl Registry for StoreRegistry {
    fn url(&self) -> &str {
        &self.url
    }

    async fn register(&self, new: NewVersion, progress: &mut (dyn FnMut(Progress) + Send)) -> Result<ModelVersion> {
        check_name(&new.name)?;
        if !new.schema.verify() {
            return Err(Error::invalid("schema", "the feature schema's hash does not match its columns"));
        }
        let name = new.name.clone();
        let hash = blake3::hash(&new.artifact).to_hex().to_string();
        let size = new.artifact.len() as u64;
        let artifact_rel = format!("models/{name}/artifacts/{hash}");
        // Content-addressed, so a rewrite of the same bytes is harmless; skipped if present.
        if self.store.get(&artifact_rel).await.map_err(|e| self.err(e))?.is_none() {
            self.store
                .put_parts(&artifact_rel, new.artifact.clone(), PART, |written, total| progress(Progress::Artifact { written, total }))
                .await
                .map_err(|e| self.err(e))?;
        }
        progress(Progress::ArtifactStored);
        let mut record = ModelVersion {
            name: name.clone(),
            version: 0,
            created_at: now_rfc3339(),
            description: new.description,
            artifact: ArtifactInfo { file: new.artifact_file, format: new.format, size, blake3: hash },
            metrics: new.metrics,
            params: new.params,
            schema: new.schema,
            feature_set: new.feature_set,
            lineage: new.lineage,
            code_version: new.code_version,
            tags: new.tags,
            aliases: Vec::new(),
            deleted_at: None,
        };
        // Taking the next number: a create that fails means another writer took it.
        let mut next = numbers(&self.list(&format!("models/{name}/versions/")).await?).last().copied().unwrap_or(0) + 1;
        for _ in 0..64 {
            record.version = next;
            let body = serde_json::to_vec_pretty(&record).map_err(|e| self.err(e))?;
            if self.store.create(&format!("models/{name}/versions/{}", seq(next)), Bytes::from(body)).await.map_err(|e| self.err(e))? {
                progress(Progress::Committed { version: next });
                return Ok(record);
            }
            next += 1;
        }
        Err(self.err(format!("could not take a version number for `{name}` after 64 tries")))
    }

    async fn models(&self) -> Result<Vec<ModelSummary>> {
        let mut names: Vec<String> = self
            .list("models/")
            .await?
            .iter()
            .filter_map(|p| {
                let mut it = p.strip_prefix("models/")?.split('/');
                let name = it.next()?;
                (it.next()? == "versions").then(|| name.to_string())
            })
            .collect();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let all = numbers(&self.list(&format!("models/{name}/versions/")).await?);
            let deleted = self.deleted(&name).await?;
            let live: Vec<u64> = all.into_iter().filter(|n| !deleted.contains_key(n)).collect();
            out.push(ModelSummary {
                aliases: self.aliases(&name).await?,
                versions: live.len() as u64,
                latest: live.last().copied(),
                name,
            });
        }
        Ok(out)
    }

    async fn versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        let all = self.ensure_model(name).await?;
        let (aliases, deleted) = (self.aliases(name).await?, self.deleted(name).await?);
        let mut out = Vec::new();
        for n in all {
            if let Some(m) = self.record(name, n).await? {
                out.push(self.decorate(m, &aliases, &deleted));
            }
        }
        Ok(out)
    }

    async fn version(&self, name: &str, which: &VersionRef) -> Result<ModelVersion> {
        let n = self.resolve(name, which).await?;
        let m = self.record(name, n).await?.ok_or_else(|| self.not_found(format!("version {n} of `{name}`")))?;
        let (aliases, deleted) = (self.aliases(name).await?, self.deleted(name).await?);
        Ok(self.decorate(m, &aliases, &deleted))
    }

    async fn fetch(&self, name: &str, which: &VersionRef) -> Result<VerifiedArtifact> {
        let m = self.version(name, which).await?;
        if m.deleted_at.is_some() {
            return Err(Error::Deleted { registry: self.url.clone(), what: format!("version {} of `{name}`", m.version) });
        }
        let rel = format!("models/{name}/artifacts/{}", m.artifact.blake3);
        let bytes = self
            .store
            .get(&rel)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("the artifact of `{name}` version {} is missing ({rel})", m.version)))?;
        VerifiedArtifact::verify(&self.url, m, bytes)
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u64, expect: Expect, reason: &str) -> Result<AliasEntry> {
        check_alias(alias)?;
        let all = self.ensure_model(name).await?;
        if !all.contains(&version) {
            return Err(self.not_found(format!("version {version} of `{name}`")));
        }
        if self.deleted(name).await?.contains_key(&version) {
            return Err(Error::Deleted { registry: self.url.clone(), what: format!("version {version} of `{name}`") });
        }
        let prefix = format!("models/{name}/aliases/{alias}/");
        let head = numbers(&self.list(&prefix).await?).last().copied().unwrap_or(0);
        let current = if head == 0 {
            None
        } else {
            self.get_json::<AliasEntry>(&format!("{prefix}{}", seq(head))).await?.map(|e| e.version)
        };
        let conflict = |message: String| Error::Conflict {
            registry: self.url.clone(),
            model: name.to_string(),
            alias: alias.to_string(),
            message,
        };
        let shown = |v: Option<u64>| v.map_or("nowhere (unset)".to_string(), |v| format!("version {v}"));
        match expect {
            Expect::Current => {}
            Expect::Absent if current.is_some() => {
                return Err(conflict(format!("expected it unset, it points at {}", shown(current))));
            }
            Expect::Version(v) if current != Some(v) => {
                return Err(conflict(format!("expected it at version {v}, it points at {}", shown(current))));
            }
            _ => {}
        }
        let entry = AliasEntry { alias: alias.to_string(), version, previous: current, at: now_rfc3339(), reason: reason.to_string() };
        let body = serde_json::to_vec_pretty(&entry).map_err(|e| self.err(e))?;
        if self.store.create(&format!("{prefix}{}", seq(head + 1)), Bytes::from(body)).await.map_err(|e| self.err(e))? {
            Ok(entry)
        } else {
            let now = self
                .get_json::<AliasEntry>(&format!("{prefix}{}", seq(head + 1)))
                .await?
                .map(|e| e.version);
            Err(conflict(format!(
                "another process moved it to {} while this one was moving it from {} to version {version}; nothing changed",
                shown(now),
                shown(current)
            )))
        }
    }

    async fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEntry>> {
        check_alias(alias)?;
        self.ensure_model(name).await?;
        let prefix = format!("models/{name}/aliases/{alias}/");
        let mut out = Vec::new();
        for n in numbers(&self.list(&prefix).await?) {
            if let Some(e) = self.get_json(&format!("{prefix}{}", seq(n))).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn delete_version(&self, name: &str, version: u64) -> Result<()> {
        let all = self.ensure_model(name).await?;
        if !all.contains(&version) {
            return Err(self.not_found(format!("version {version} of `{name}`")));
        }
        let body = serde_json::to_vec(&Tombstone { at: now_rfc3339() }).map_err(|e| self.err(e))?;
        self.store.create(&format!("models/{name}/deleted/{}", seq(version)), Bytes::from(body)).await.map_err(|e| self.err(e))?;
        // The artifact goes too unless a live version shares its bytes.
        let deleted = self.deleted(name).await?;
        let Some(m) = self.record(name, version).await? else { return Ok(()) };
        let mut shared = false;
        for n in all.iter().filter(|n| !deleted.contains_key(n)) {
            if self.record(name, *n).await?.is_some_and(|o| o.artifact.blake3 == m.artifact.blake3) {
                shared = true;
            }
        }
        if !shared {
            self.store.delete(&format!("models/{name}/artifacts/{}", m.artifact.blake3)).await.map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
