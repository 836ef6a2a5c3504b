//! `omen features build`: the `features/` dataset, one row per deployment × checkpoint.
//!
//! Polars scans the store (only the columns needed, only canary, baseline and load-test samples), joins
//! labelled samples to their deployment, and the samples of each deployment, metric and role
//! become a typed [`TimeSeries`]; the feature functions of `omen_features::feature` — the ones
//! `omen-serve` calls online — compute every value. Samples without a `deployment` label go to
//! the latest deployment of their service that started at or before them.
//!
//! Output: `features/service=<s>/part-0.parquet` (sorted by start, deployment and checkpoint)
//! and `features/_schema.json` (columns, kinds, the schema hash, the parameters, the data range).
//! A re-run over the same store writes the same bytes; partitions of services that no longer
//! have deployments are removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use indicatif::ProgressBar;
use omen_features::Store;
use omen_features::feature::{
    ChangeContext, DeploymentRef, FeatureParams, FeatureSchema, FeatureSet, Kind, Role, Sample, Value, WindowsBuilder,
    series_id, service_change_contexts,
};
use omen_features::history::{Deployment, read_deployments, read_repos};
use omen_features::schema::METRICS;
use omen_features::store::{encode_parquet, partition_segment, partition_values};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::rfc3339;
use crate::error::{Error, Result};

/// What `omen features build` did.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesSummary {
    pub store: String,
    pub deployments: usize,
    pub rows: usize,
    pub columns: usize,
    pub inputs: usize,
    pub metrics: Vec<String>,
    pub samples: usize,
    /// Canary/baseline samples that matched no deployment (no deployment of their service had
    /// started by then, or their `deployment` label names none).
    pub samples_unmatched: usize,
    /// Deployments by how their commit range resolved.
    pub change_states: BTreeMap<String, usize>,
    pub schema_hash: String,
    pub outputs: Vec<String>,
    pub removed: Vec<String>,
    pub seconds: f64,
}

impl FeaturesSummary {
    pub fn human(&self) -> String {
        let mut out = format!(
            "features: {} rows ({} deployments × checkpoints), {} columns ({} inputs), {} metrics, {} samples in {:.2}s\n",
            self.rows,
            self.deployments,
            self.columns,
            self.inputs,
            self.metrics.len(),
            self.samples,
            self.seconds
        );
        if self.samples_unmatched > 0 {
            out.push_str(&format!("  {} samples matched no deployment\n", self.samples_unmatched));
        }
        for (state, n) in &self.change_states {
            out.push_str(&format!("  change range {state}: {n} deployments\n"));
        }
        out.push_str(&format!("  schema {}\n", &self.schema_hash[..16.min(self.schema_hash.len())]));
        for o in &self.outputs {
            out.push_str(&format!("  wrote {}/{o}\n", self.store));
        }
        for o in &self.removed {
            out.push_str(&format!("  removed {}/{o}\n", self.store));
        }
        out
    }
}

/// The file written beside the data.
#[derive(Debug, Serialize)]
struct SchemaFile<'a> {
    #[serde(flatten)]
    schema: &'a FeatureSchema,
    keys: [(&'static str, &'static str); 3],
    params: &'a FeatureParams,
    /// The metrics that became columns (the configured ones, or those found).
    metrics: &'a [String],
    deployments: usize,
    rows: usize,
    /// Earliest and latest canary start, RFC 3339.
    started_from: Option<String>,
    started_to: Option<String>,
}


pub async fn build_features(store: &Store, params: &FeatureParams, progress: &ProgressBar) -> Result<FeaturesSummary> {
    let t0 = Instant::now();
    let valid = params.check()?;
    let deployments = read_deployments(store).await?;
    progress.set_message("reading metrics");
    // A configured metric list narrows the samples read, but the error-rate counters are read
    // whatever it says: they feed the `e__<name>__*` columns; so are the load-test metrics.
    let mut wanted = valid.metrics.clone();
    if !wanted.is_empty() {
        let counters = valid.error_rates.iter().flat_map(|e| std::iter::once(&e.errors).chain(e.total.as_ref()));
        for c in counters.chain(&valid.load_tests) {
            if !wanted.contains(c) {
                wanted.push(c.clone());
            }
        }
    }
    let (samples, metric_names) = read_samples(store, &deployments, &wanted).await?;
    tracing::info!(seconds = t0.elapsed().as_secs_f64(), samples = samples.total, "samples read");

    let metrics: Vec<String> = if valid.metrics.is_empty() {
        let counters: Vec<&str> =
            valid.error_rates.iter().flat_map(|e| std::iter::once(e.errors.as_str()).chain(e.total.as_deref())).collect();
        // A metric with load-test samples alone is not a canary-versus-baseline feature.
        let live: HashSet<&str> =
            samples.groups.keys().filter(|k| k.2 != Role::LoadTest).map(|k| metric_names[k.1 as usize].as_str()).collect();
        metric_names.iter().filter(|m| !is_counter(m) && !counters.contains(&m.as_str()) && live.contains(m.as_str())).cloned().collect()
    } else {
        valid.metrics.clone()
    };
    let set = FeatureSet::new(valid, metrics);

    // Change impact, per service in start order.
    progress.set_message("change impact");
    let (change, change_states) = change_impact(store, &deployments).await?;
    tracing::info!(seconds = t0.elapsed().as_secs_f64(), "change impact");

    // Windows, then rows, in parallel over deployments.
    progress.set_message("features");
    // Counted in deployments, not the bytes of the ingest bars.
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {pos}/{len} deployments eta {eta} {wide_bar}") {
        progress.set_style(style);
    }
    progress.set_length(deployments.len() as u64);
    let mut builders: Vec<WindowsBuilder> = deployments
        .iter()
        .map(|d| WindowsBuilder::new(d.started_at, d.ended_at, d.outcome.clone(), d.steps.clone()))
        .collect();
    let n_samples = samples.total;
    for ((dep, metric, role), list) in samples.groups {
        builders[dep].extend(&metric_names[metric as usize], role, list);
    }
    let rows: Vec<Vec<(i64, Vec<Value>)>> = builders
        .into_par_iter()
        .zip(change.par_iter())
        .map(|(builder, context)| {
            let windows = builder.finish();
            let labels = set.labels(&windows);
            let rows = set
                .checkpoints(windows.started_at)
                .map(|cp| {
                    let mut row = set.inputs(&windows, cp, &context.features, context.history);
                    row.extend(labels.iter().cloned());
                    (cp, row)
                })
                .collect();
            progress.inc(1);
            rows
        })
        .collect();

    tracing::info!(seconds = t0.elapsed().as_secs_f64(), "features computed");
    // One frame per service.
    progress.set_message("writing");
    let mut by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in deployments.iter().enumerate() {
        by_service.entry(d.service.as_str()).or_default().push(i);
    }
    let mut outputs = Vec::new();
    let mut total_rows = 0;
    for (service, idx) in &by_service {
        let deps = &deployments;
        let rows = &rows;
        let mut df = frame(set.schema(), idx.iter().flat_map(|&i| rows[i].iter().map(move |(cp, r)| (&deps[i].id, *cp, r))))?;
        total_rows += df.height();
        let rel = format!("features/{}/part-0.parquet", partition_segment("service", service));
        let bytes = encode_parquet(&mut df)?;
        if store.get(&rel).await?.as_deref() != Some(bytes.as_slice()) {
            store.put(&rel, bytes.into()).await?;
        }
        outputs.push(rel);
    }
    // Partitions no longer produced.
    let mut removed = Vec::new();
    for rel in store.list("features").await? {
        if rel.ends_with(".parquet") && !outputs.contains(&rel) {
            store.delete(&rel).await?;
            removed.push(rel);
        }
    }
    let starts = deployments.iter().map(|d| d.started_at);
    let file = SchemaFile {
        schema: set.schema(),
        keys: [("service", "partition key (string, in the path)"), ("deployment_id", "string"), ("checkpoint_at", "timestamp[us, tz=UTC]")],
        params,
        metrics: set.metrics(),
        deployments: deployments.len(),
        rows: total_rows,
        started_from: starts.clone().min().map(rfc3339),
        started_to: starts.max().map(rfc3339),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::input("features/_schema.json", e.to_string()))?;
    store.put("features/_schema.json", json.into()).await?;
    outputs.push("features/_schema.json".into());

    Ok(FeaturesSummary {
        store: store.url().to_string(),
        deployments: deployments.len(),
        rows: total_rows,
        columns: set.schema().columns.len() + 2,
        inputs: set.schema().inputs().count(),
        metrics: set.metrics().to_vec(),
        samples: n_samples,
        samples_unmatched: samples.unmatched,
        change_states,
        schema_hash: set.schema().hash.clone(),
        outputs,
        removed,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Prometheus counters and histogram parts by their conventional suffixes: compared as raw
/// values they measure uptime and traffic share, not behaviour, so the automatic metric list
/// leaves them out (name them in `[features] metrics` or `error_rates` to use them).
pub(crate) fn is_counter(metric: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket", "_created"].iter().any(|s| metric.ends_with(s))
}


fn column_err(dataset: &str, column: &str, e: PolarsError) -> Error {
    Error::input(format!("{dataset}/"), format!("column `{column}`: {e} (re-ingest with this version of omen)"))
}


/// Canary, baseline and load-test samples grouped by (deployment index, metric index, role).
pub(crate) struct Samples {
    pub(crate) groups: HashMap<(usize, u32, Role), Vec<Sample>>,
    pub(crate) total: usize,
    pub(crate) unmatched: usize,
}

/// Reads the canary, baseline and load-test samples (of `only` when it is not empty), attributes them to
/// deployments, and returns them with the sorted metric names they use.
pub(crate) async fn read_samples(store: &Store, deployments: &[Deployment], only: &[String]) -> Result<(Samples, Vec<String>)> {
    read_samples_with(store, deployments, only, |_, _| Ok(())).await
}

/// [`read_samples`], handing each file's rows (`ts`, `metric`, `labels`, `value`, `deployment`,
/// `role`) to `also` too, for a reader that needs them for something else (one read of
/// `metrics/` instead of two).
pub(crate) async fn read_samples_with(
    store: &Store,
    deployments: &[Deployment],
    only: &[String],
    mut also: impl FnMut(&str, &DataFrame) -> Result<()>,
) -> Result<(Samples, Vec<String>)> {
    // Labelled samples: joined to their deployment by Polars; the rest: by service and time.
    let index = DataFrame::new_infer_height(vec![
        Column::new("deployment".into(), deployments.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()),
        Column::new("dep_idx".into(), (0..deployments.len() as u32).collect::<Vec<_>>()),
    ])?;
    let mut starts: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
    for (i, d) in deployments.iter().enumerate() {
        starts.entry(d.service.as_str()).or_default().push((d.started_at, i));
    }
    for v in starts.values_mut() {
        v.sort_unstable();
    }
    let mut metric_ids: HashMap<String, u32> = HashMap::new();
    let mut metric_names: Vec<String> = Vec::new();
    let mut series_ids: HashMap<String, u64> = HashMap::new();
    let mut groups: HashMap<(usize, u32, Role), Vec<Sample>> = HashMap::new();
    let mut unmatched = 0usize;
    let mut total = 0usize;
    // One file at a time: memory holds one file's rows, and the service comes from the path.
    for rel in store.list(METRICS.name).await? {
        if !rel.ends_with(".parquet") {
            continue;
        }
        let service = partition_values(&rel).into_iter().find(|(k, _)| k == "service").map(|(_, v)| v);
        let Some(bytes) = store.get(&rel).await? else { continue };
        let columns = ["ts", "metric", "labels", "value", "deployment", "role"].map(String::from).to_vec();
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .with_columns(Some(columns))
            .finish()
            .map_err(|e| Error::input(&rel, e.to_string()))?;
        also(&rel, &df)?;
        let df = df
            .lazy()
            .filter(col("role").eq(lit("canary")).or(col("role").eq(lit("baseline"))).or(col("role").eq(lit("loadtest"))))
            .join(index.clone().lazy(), [col("deployment")], [col("deployment")], JoinArgs::new(JoinType::Left))
            .collect()?;
        let err = |c: &str, e: PolarsError| column_err(&rel, c, e);
        let metric = df.column("metric")?.str().map_err(|e| err("metric", e))?;
        let labels = df.column("labels")?.str().map_err(|e| err("labels", e))?;
        let role = df.column("role")?.str().map_err(|e| err("role", e))?;
        let value = df.column("value")?.f64().map_err(|e| err("value", e))?;
        let ts = df.column("ts")?.datetime().map_err(|e| err("ts", e))?.physical();
        let dep_idx = df.column("dep_idx")?.u32()?;
        let by_time = service.as_deref().and_then(|s| starts.get(s));
        // The last metric and label set seen: consecutive rows mostly repeat them.
        let mut last_metric: Option<(&str, u32)> = None;
        let mut last_labels: Option<(&str, u64)> = None;
        let rows = metric.iter().zip(labels.iter()).zip(role.iter()).zip(value.iter()).zip(ts.iter()).zip(dep_idx.iter());
        for (((((m, l), r), v), t), d) in rows {
            let (Some(m), Some(r), Some(t)) = (m, r.and_then(Role::parse), t) else { continue };
            if !only.is_empty() && !only.iter().any(|o| o == m) {
                continue;
            }
            let dep = match d {
                Some(d) => Some(d as usize),
                None => by_time.and_then(|v| {
                    let k = v.partition_point(|(start, _)| *start <= t);
                    k.checked_sub(1).map(|k| v[k].1)
                }),
            };
            let Some(dep) = dep else {
                unmatched += 1;
                continue;
            };
            total += 1;
            let mid = match last_metric {
                Some((name, id)) if name == m => id,
                _ => {
                    let id = match metric_ids.get(m) {
                        Some(&id) => id,
                        None => {
                            metric_names.push(m.to_owned());
                            let id = (metric_names.len() - 1) as u32;
                            metric_ids.insert(m.to_owned(), id);
                            id
                        }
                    };
                    last_metric = Some((m, id));
                    id
                }
            };
            let l = l.unwrap_or("");
            let sid = match last_labels {
                Some((name, id)) if name == l => id,
                _ => {
                    let id = *series_ids.entry(l.to_owned()).or_insert_with(|| series_id(l));
                    last_labels = Some((l, id));
                    id
                }
            };
            groups.entry((dep, mid, r)).or_default().push(Sample { ts: t, series: sid, value: v.unwrap_or(f64::NAN) });
        }
    }
    // Sorted names, with the group keys renumbered to match.
    let mut order: Vec<u32> = (0..metric_names.len() as u32).collect();
    order.sort_by(|a, b| metric_names[*a as usize].cmp(&metric_names[*b as usize]));
    let mut rank = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    let groups = groups.into_iter().map(|((d, m, r), v)| ((d, rank[m as usize], r), v)).collect();
    let sorted: Vec<String> = order.iter().map(|&o| metric_names[o as usize].clone()).collect();
    Ok((Samples { groups, total, unmatched }, sorted))
}

/// Change features and history context per deployment (same order as `deployments`).
async fn change_impact(
    store: &Store,
    deployments: &[Deployment],
) -> Result<(Vec<ChangeContext>, BTreeMap<String, usize>)> {
    let mut repos = read_repos(store).await?;
    let mut by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in deployments.iter().enumerate() {
        by_service.entry(d.service.as_str()).or_default().push(i);
    }
    let mut out = vec![ChangeContext::default(); deployments.len()];
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for (service, idx) in by_service {
        let repo = repos.remove(service).unwrap_or_default();
        let refs: Vec<DeploymentRef<'_>> = idx.iter().map(|&i| deployments[i].as_ref()).collect();
        for (&i, context) in idx.iter().zip(service_change_contexts(&repo, &refs)) {
            let state = context.range_state.map_or("unknown", |s| s.as_str());
            *states.entry(state.to_owned()).or_default() += 1;
            out[i] = context;
        }
    }
    Ok((out, states))
}

/// The feature frame: keys, then every schema column.
fn frame<'a>(schema: &FeatureSchema, rows: impl Iterator<Item = (&'a String, i64, &'a Vec<Value>)>) -> Result<DataFrame> {
    let rows: Vec<_> = rows.collect();
    let mut columns = Vec::with_capacity(schema.columns.len() + 2);
    columns.push(Column::new("deployment_id".into(), rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()));
    columns.push(
        Int64Chunked::from_vec("checkpoint_at".into(), rows.iter().map(|r| r.1).collect())
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column(),
    );
    for (j, c) in schema.columns.iter().enumerate() {
        let name: PlSmallStr = c.name.as_str().into();
        let column = match c.kind {
            Kind::Float => Column::new(name, rows.iter().map(|r| match &r.2[j] { Value::Float(v) => *v, _ => None }).collect::<Vec<_>>()),
            Kind::Int => Column::new(name, rows.iter().map(|r| match &r.2[j] { Value::Int(v) => *v, _ => None }).collect::<Vec<_>>()),
            Kind::Bool => Column::new(name, rows.iter().map(|r| match &r.2[j] { Value::Bool(v) => *v, _ => None }).collect::<Vec<_>>()),
            Kind::Str => Column::new(name, rows.iter().map(|r| match &r.2[j] { Value::Str(v) => v.as_deref(), _ => None }).collect::<Vec<_>>()),
        };
        columns.push(column);
    }
    Ok(DataFrame::new_infer_height(columns)?)
}
