//! `omen quickstart`: ingest the sources of a config (the bundled samples by default) and say
//! what was written and what to run next.

use indicatif::ProgressBar;
use omen_features::Store;
use omen_features::ingest::logs::LogFormat;
use omen_features::schema::DatasetSchema;
use serde::Serialize;

use crate::config::{Config, Source};
use crate::error::Result;
use crate::features::FeaturesSummary;
use crate::ingest::{self, IngestSummary, MetricsIngest};

/// What quickstart did.
#[derive(Debug, Serialize)]
pub struct QuickstartReport {
    pub store: String,
    pub ingest: IngestSummary,
    pub features: FeaturesSummary,
    /// Rows now in each dataset of the store.
    pub datasets: Vec<DatasetCount>,
    pub next: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DatasetCount {
    pub dataset: String,
    pub rows: u64,
    pub files: u64,
    pub path: String,
}

/// Ingests every source of `config` into `store`.
pub async fn ingest_sources(store: &Store, config: &Config, metrics: &MetricsIngest, progress: &ProgressBar) -> Result<IngestSummary> {
    let mut total = IngestSummary { dataset: "all".into(), store: store.url().into(), ..Default::default() };
    let default_format = config.ingest.logs.format.clone().unwrap_or_else(|| "auto".into());
    for src in &config.sources {
        let s = match src {
            Source::Logs { service, paths, format } => {
                let f = LogFormat::parse(format.as_deref().unwrap_or(&default_format))?;
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_logs(store, &paths, service, &f, progress).await?
            }
            Source::Commits { service, repo, range } => {
                ingest::ingest_commits(store, &config.resolve(repo), service, range.as_deref()).await?
            }
            Source::Metrics { paths, service } => {
                let mut m = metrics.clone();
                if service.is_some() {
                    m.options.default_service = service.clone();
                }
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_metrics_files(store, &paths, &m, progress).await?
            }
            Source::Deployments { paths } => {
                let paths: Vec<String> = paths.iter().map(|p| config.resolve(p)).collect();
                ingest::ingest_deployments(store, &paths).await?
            }
        };
        total.seconds += s.seconds;
        total.merge(s);
    }
    Ok(total)
}

/// Row and file counts of every dataset in the store.
pub async fn dataset_counts(store: &Store) -> Result<Vec<DatasetCount>> {
    let mut out = Vec::new();
    for schema in DatasetSchema::all() {
        if schema.name == "_rejects" {
            continue;
        }
        let files = store.list(schema.name).await?.into_iter().filter(|f| f.ends_with(".parquet")).count() as u64;
        let df = store.read_dataset(schema, |_| true).await?;
        out.push(DatasetCount { dataset: schema.name.into(), rows: df.height() as u64, files, path: format!("{}/{}/", store.url(), schema.name) });
    }
    let mut rows = 0u64;
    let mut files = 0u64;
    for rel in store.list("features").await? {
        if rel.ends_with(".parquet") {
            files += 1;
            rows += store.read_parquet(&rel).await?.map_or(0, |df| df.height() as u64);
        }
    }
    out.push(DatasetCount { dataset: "features".into(), rows, files, path: format!("{}/features/", store.url()) });
    let rejects = store.list("_rejects").await?.len() as u64;
    out.push(DatasetCount { dataset: "_rejects".into(), rows: 0, files: rejects, path: format!("{}/_rejects/", store.url()) });
    Ok(out)
}

impl QuickstartReport {
    pub fn human(&self) -> String {
        let mut s = self.ingest.human();
        s.push('\n');
        s.push_str(&self.features.human());
        s.push_str(&format!("\nThe store at {} now holds:\n", self.store));
        for d in &self.datasets {
            if d.dataset == "_rejects" {
                s.push_str(&format!("  {:<13} {:>5} files        {}\n", d.dataset, d.files, d.path));
            } else {
                s.push_str(&format!("  {:<13} {:>5} files {:>9} rows  {}\n", d.dataset, d.files, d.rows, d.path));
            }
        }
        s.push_str("\nNext:\n");
        for n in &self.next {
            s.push_str(&format!("  {n}\n"));
        }
        s
    }
}
