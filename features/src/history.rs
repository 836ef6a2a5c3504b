//! Deployment history and repositories as the store holds them, read into the typed values the
//! feature functions take ([`Deployment`], [`RepoHistory`]). `omen features build` and
//! `omen-serve` both read them here, so both see the same history.

use std::collections::HashMap;

use polars::prelude::*;

use crate::Store;
use crate::error::{Error, Result};
use crate::feature::{Commit, DeploymentRef, FileChange, KAMEI, RepoHistory};
use crate::schema::{COMMIT_FILES, COMMITS, DEPLOYMENTS};

/// One deployment of `deployments/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub service: String,
    /// µs UTC.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub from_sha: Option<String>,
    pub to_sha: String,
    /// `(at µs, weight %)`.
    pub steps: Vec<(i64, f64)>,
}

impl Deployment {
    /// As the change features take it.
    pub fn as_ref(&self) -> DeploymentRef<'_> {
        DeploymentRef {
            deployment_id: &self.id,
            started_at: self.started_at,
            ended_at: self.ended_at,
            outcome: self.outcome.as_deref(),
            from_sha: self.from_sha.as_deref(),
            to_sha: &self.to_sha,
        }
    }
}

fn column_err(dataset: &str, column: &str, e: PolarsError) -> Error {
    Error::input(format!("{dataset}/"), format!("column `{column}`: {e} (re-ingest with this version of omen)"))
}

fn strs(df: &DataFrame, dataset: &str, name: &str) -> Result<Vec<Option<String>>> {
    let c = df.column(name).map_err(|e| column_err(dataset, name, e))?;
    let ca = c.str().map_err(|e| column_err(dataset, name, e))?;
    Ok(ca.iter().map(|s| s.map(str::to_owned)).collect())
}

fn times(df: &DataFrame, dataset: &str, name: &str) -> Result<Vec<Option<i64>>> {
    let c = df.column(name).map_err(|e| column_err(dataset, name, e))?;
    let ca = c.datetime().map_err(|e| column_err(dataset, name, e))?;
    Ok(ca.physical().iter().collect())
}

/// Every deployment of the store, sorted by start (then id).
pub async fn read_deployments(store: &Store) -> Result<Vec<Deployment>> {
    let df = store.read_dataset(&DEPLOYMENTS, |_| true).await?;
    let ds = "deployments";
    let ids = strs(&df, ds, "deployment_id")?;
    let services = strs(&df, ds, "service")?;
    let from = strs(&df, ds, "from_sha")?;
    let to = strs(&df, ds, "to_sha")?;
    let outcome = strs(&df, ds, "outcome")?;
    let started = times(&df, ds, "started_at")?;
    let ended = times(&df, ds, "ended_at")?;
    let steps_col = df.column("steps").map_err(|e| column_err(ds, "steps", e))?;
    let steps_list = steps_col.list().map_err(|e| column_err(ds, "steps", e))?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let steps = steps_list.get_as_series(i);
        let mut parsed = Vec::new();
        if let Some(s) = steps {
            let st = s.struct_().map_err(|e| column_err(ds, "steps", e))?;
            let at = st.field_by_name("at").map_err(|e| column_err(ds, "steps.at", e))?;
            let weight = st.field_by_name("weight").map_err(|e| column_err(ds, "steps.weight", e))?;
            // Struct fields may come back as their physical type.
            let at = at.to_physical_repr().cast(&DataType::Int64).map_err(|e| column_err(ds, "steps.at", e))?;
            let at = at.i64().map_err(|e| column_err(ds, "steps.at", e))?;
            let weight = weight.f64().map_err(|e| column_err(ds, "steps.weight", e))?;
            for (a, w) in at.iter().zip(weight.iter()) {
                if let (Some(a), Some(w)) = (a, w) {
                    parsed.push((a, w));
                }
            }
        }
        let (Some(id), Some(service), Some(to_sha), Some(started_at)) =
            (ids[i].clone(), services[i].clone(), to[i].clone(), started[i])
        else {
            return Err(Error::input("deployments/", format!("row {i}: a required column is null")));
        };
        out.push(Deployment {
            id,
            service,
            started_at,
            ended_at: ended[i],
            outcome: outcome[i].clone(),
            from_sha: from[i].clone(),
            to_sha,
            steps: parsed,
        });
    }
    out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(out)
}

/// The repository history of every service with commits in the store.
pub async fn read_repos(store: &Store) -> Result<HashMap<String, RepoHistory>> {
    let mut columns = vec!["sha", "parent_shas", "author", "ts", "fix"];
    columns.extend(KAMEI);
    let commits = store.read_dataset_columns(&COMMITS, Some(&columns), |_| true).await?;
    let files = store
        .read_dataset_columns(&COMMIT_FILES, Some(&["sha", "path", "lines_added", "lines_deleted"]), |_| true)
        .await?;
    let mut repos: HashMap<String, (Vec<Commit>, Vec<FileChange>)> = HashMap::new();
    if commits.height() > 0 {
        let ds = "commits";
        let sha = strs(&commits, ds, "sha")?;
        let service = strs(&commits, ds, "service")?;
        let parents = strs(&commits, ds, "parent_shas")?;
        let author = strs(&commits, ds, "author")?;
        let ts = times(&commits, ds, "ts")?;
        let fix: Vec<Option<bool>> =
            commits.column("fix")?.bool().map_err(|e| column_err(ds, "fix", e))?.iter().collect();
        let mut kamei: Vec<Vec<f64>> = Vec::new();
        for k in KAMEI {
            let c = commits.column(k).map_err(|e| column_err(ds, k, e))?.cast(&DataType::Float64)?;
            kamei.push(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
        }
        for i in 0..commits.height() {
            let (Some(sha), Some(service)) = (sha[i].clone(), service[i].clone()) else { continue };
            let mut k = [0.0; 13];
            for (j, col) in kamei.iter().enumerate() {
                k[j] = col[i];
            }
            repos.entry(service).or_default().0.push(Commit {
                sha,
                parents: parents[i].as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect(),
                ts: ts[i].unwrap_or(0),
                author: author[i].clone().unwrap_or_default(),
                fix: fix[i].unwrap_or(false),
                kamei: k,
            });
        }
    }
    if files.height() > 0 {
        let ds = "commit_files";
        let sha = strs(&files, ds, "sha")?;
        let service = strs(&files, ds, "service")?;
        let path = strs(&files, ds, "path")?;
        let added: Vec<Option<i64>> = files.column("lines_added")?.i64()?.iter().collect();
        let deleted: Vec<Option<i64>> = files.column("lines_deleted")?.i64()?.iter().collect();
        for i in 0..files.height() {
            let (Some(sha), Some(service), Some(path)) = (sha[i].clone(), service[i].clone(), path[i].clone()) else {
                continue;
            };
            repos.entry(service).or_default().1.push(FileChange {
                sha,
                path,
                lines_added: added[i].unwrap_or(0),
                lines_deleted: deleted[i].unwrap_or(0),
            });
        }
    }
    Ok(repos.into_iter().map(|(s, (c, f))| (s, RepoHistory::new(c, f))).collect())
}
