//! The ingest stages: inputs → partitioned Parquet in the store, rejects beside, a manifest that
//! makes re-runs add nothing.
//!
//! Idempotency: a file source is identified by the BLAKE3 of its bytes together with the dataset
//! and the options that change its rows (service, format). Its outputs have names derived from
//! that id, and `_manifest/<dataset>/<id>.json` is written last: a second run of the same input
//! finds the manifest and skips it; a run that crashed half-way rewrote nothing under another
//! name, so re-running it overwrites the same files. A log file that grew since its last ingest
//! (same path and service, its earlier bytes unchanged: `_manifest/requests/by-path/`) is read
//! from where that ingest stopped, with line numbers that continue. Commits are deduplicated by
//! `sha` and deployments by `deployment_id` against what the store already holds.
//!
//! Logs are read in 64 MB blocks that end at line ends, each cut into 4 MB chunks parsed in
//! parallel (rayon) and written as one Parquet file per partition, so memory does not grow with
//! the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use omen_features::ingest::commits::{CommitOptions, read_commits};
use omen_features::ingest::deployments::{DeploymentsFormat, parse_deployments};
use omen_features::ingest::logs::{LogFormat, LogParser};
use omen_features::ingest::metrics::{MetricsFormat, MetricsOptions, parse_metrics};
use omen_features::ingest::{LineBlocks, Reject, hash_file_with_prefix, read_input, rejects_frame, split_partitions};
use omen_features::schema::{COMMIT_FILES, COMMITS, DEPLOYMENTS, DatasetSchema, METRICS, REQUESTS};
use omen_features::store::encode_parquet;
use omen_features::{Masker, Store};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

/// What an ingest did, printed as the human summary or as `--json`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestSummary {
    pub dataset: String,
    pub store: String,
    pub files: Vec<FileSummary>,
    pub files_ingested: usize,
    pub files_skipped: usize,
    pub rows_written: u64,
    pub rows_rejected: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    /// Store paths written, relative to the root.
    pub outputs: Vec<String>,
    pub warnings: Vec<String>,
}

/// One input of an ingest.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FileSummary {
    pub source: String,
    /// `ingested`, `skipped` (already in the store) or `empty`.
    pub status: String,
    pub format: String,
    pub rows: u64,
    pub rejected: u64,
    pub bytes: u64,
}

impl IngestSummary {
    fn new(dataset: &str, store: &Store) -> Self {
        IngestSummary { dataset: dataset.into(), store: store.url().into(), ..Default::default() }
    }

    fn add(&mut self, f: FileSummary) {
        match f.status.as_str() {
            "skipped" => self.files_skipped += 1,
            _ => self.files_ingested += 1,
        }
        self.rows_written += f.rows;
        self.rows_rejected += f.rejected;
        self.bytes_read += f.bytes;
        self.files.push(f);
    }

    /// Adds another summary of the same run (the `quickstart` total).
    pub fn merge(&mut self, o: IngestSummary) {
        self.files_ingested += o.files_ingested;
        self.files_skipped += o.files_skipped;
        self.rows_written += o.rows_written;
        self.rows_rejected += o.rows_rejected;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.files.extend(o.files);
        self.outputs.extend(o.outputs);
        self.warnings.extend(o.warnings);
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{}: {} file(s) ingested, {} skipped (already in the store); {} rows written, {} rejected; {:.1} MB read, {:.1} MB written in {:.2}s\n",
            self.dataset,
            self.files_ingested,
            self.files_skipped,
            self.rows_written,
            self.rows_rejected,
            self.bytes_read as f64 / 1e6,
            self.bytes_written as f64 / 1e6,
            self.seconds
        );
        for f in &self.files {
            s.push_str(&format!(
                "  {:<8} {} [{}] {} rows, {} rejected\n",
                f.status, f.source, f.format, f.rows, f.rejected
            ));
        }
        if self.rows_rejected > 0 {
            let sub = if self.dataset == "all" { String::new() } else { format!("{}/", self.dataset) };
            s.push_str(&format!("  rejects: {}/_rejects/{sub}\n", self.store));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

/// Expands command-line inputs: files as they are, folders to the files in them (not hidden,
/// not recursive), glob patterns to their matches. Each input that names nothing is an error.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for i in inputs {
        let p = Path::new(i);
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::input(i, e.to_string()))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::input(i, "folder has no files to ingest"));
            }
            out.extend(files);
        } else if p.exists() {
            out.push(p.to_path_buf());
        } else if i.contains(['*', '?', '[']) {
            let mut files: Vec<PathBuf> = glob::glob(i)
                .map_err(|e| Error::input(i, format!("bad pattern: {e}")))?
                .filter_map(|r| r.ok())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::input(i, "pattern matched no files"));
            }
            out.extend(files);
        } else {
            return Err(Error::input(i, "no such file or folder"));
        }
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

fn source_id(dataset: &str, content_hash: &str, options: &str) -> String {
    let h = blake3::hash(format!("{dataset}\0{content_hash}\0{options}").as_bytes());
    h.to_hex()[..32].to_string()
}

fn manifest_path(dataset: &str, id: &str) -> String {
    format!("_manifest/{dataset}/{id}.json")
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct Manifest {
    dataset: String,
    source: String,
    content_hash: String,
    options: String,
    rows: u64,
    rejected: u64,
    bytes: u64,
    outputs: Vec<String>,
}

impl Manifest {
    fn new(dataset: &str, fs: &FileSummary, content_hash: &str, options: String, outputs: &[String]) -> Self {
        Manifest {
            dataset: dataset.into(),
            source: fs.source.clone(),
            content_hash: content_hash.into(),
            options,
            rows: fs.rows,
            rejected: fs.rejected,
            bytes: fs.bytes,
            outputs: outputs.to_vec(),
        }
    }

    /// Written last: its presence says the source is wholly in the store.
    async fn save(&self, store: &Store, id: &str) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::input(&self.source, e.to_string()))?;
        store.put(&manifest_path(&self.dataset, id), json.into()).await?;
        Ok(())
    }
}

/// The frames one under the other (their chunks kept, not copied); `None` for none.
fn vstack_all(frames: Vec<DataFrame>) -> PolarsResult<Option<DataFrame>> {
    let mut it = frames.into_iter();
    let Some(mut acc) = it.next() else { return Ok(None) };
    for f in it {
        acc.vstack_mut_owned(f)?;
    }
    Ok(Some(acc))
}

/// Writes `rows` under the dataset's partitions and `rejects` under `_rejects/`; returns paths and
/// bytes written.
async fn write_rows(
    store: &Store,
    schema: &DatasetSchema,
    df: &DataFrame,
    file_stem: &str,
    service: Option<&str>,
) -> Result<(Vec<String>, u64)> {
    let mut df = df.clone();
    if let Some(s) = service {
        df.with_column(Column::new_scalar("service".into(), Scalar::from(PlSmallStr::from(s)), df.height()))?;
    }
    let mut outputs = Vec::new();
    let mut bytes = 0;
    for (part, mut frame) in split_partitions(&df, schema)? {
        let rel = if part.is_empty() {
            format!("{}/{file_stem}.parquet", schema.name)
        } else {
            format!("{}/{part}/{file_stem}.parquet", schema.name)
        };
        bytes += store.write_parquet(&rel, &mut frame).await?;
        outputs.push(rel);
    }
    Ok((outputs, bytes))
}

async fn write_rejects(store: &Store, dataset: &str, id: &str, rejects: &[Reject], masker: &Masker) -> Result<(Option<String>, u64)> {
    if rejects.is_empty() {
        return Ok((None, 0));
    }
    let mut df = rejects_frame(rejects, masker)?;
    let rel = format!("_rejects/{dataset}/part-{id}.parquet");
    let n = store.write_parquet(&rel, &mut df).await?;
    Ok((Some(rel), n))
}

/// Splits `bytes` into pieces of about `target` bytes ending at line ends, each with the number
/// of its first line; also returns the number of the line after `bytes`.
fn line_chunks(bytes: &[u8], target: usize, first_line: u64) -> (Vec<(u64, &[u8])>, u64) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = first_line;
    while start < bytes.len() {
        let mut end = (start + target).min(bytes.len());
        if end < bytes.len() {
            end = memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |k| end + k + 1);
        }
        let chunk = &bytes[start..end];
        out.push((line, chunk));
        line += memchr::memchr_iter(b'\n', chunk).count() as u64;
        start = end;
    }
    (out, line)
}

/// Bytes parsed by one task.
const CHUNK: usize = 4 << 20;
/// Bytes read, parsed in parallel and written as one file per partition.
const BLOCK: usize = 64 << 20;

/// `omen ingest logs`.
pub async fn ingest_logs(
    store: &Store,
    inputs: &[String],
    service: &str,
    format: &LogFormat,
    progress: &ProgressBar,
) -> Result<IngestSummary> {
    validate_service(service)?;
    let t0 = Instant::now();
    let files = expand_inputs(inputs)?;
    let masker = Masker::new(store.mask_key().await?);
    let mut sum = IngestSummary::new("requests", store);
    let total: u64 = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    progress.set_length(total);
    let mut failures = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        match ingest_log_file(store, path, service, format, &masker, progress).await {
            Ok((f, outs, written, warning)) => {
                sum.outputs.extend(outs);
                sum.bytes_written += written;
                sum.warnings.extend(warning);
                sum.add(f);
            }
            Err(e) => failures.push(format!("  {name}: {e}")),
        }
    }
    sum.seconds = t0.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Err(Error::Several { count: failures.len(), list: failures.join("\n") });
    }
    Ok(sum)
}

async fn ingest_log_file(
    store: &Store,
    path: &Path,
    service: &str,
    format: &LogFormat,
    masker: &Masker,
    progress: &ProgressBar,
) -> Result<(FileSummary, Vec<String>, u64, Option<String>)> {
    let name = path.display().to_string();
    // A log that grew since it was last ingested (same path, same service, its old bytes
    // unchanged) is read from where that ingest stopped, so its old lines are not added twice.
    let tail_key = tail_key(path, service);
    let earlier: Option<TailEntry> = store.get(&tail_key).await?.and_then(|b| serde_json::from_slice(&b).ok());
    let (content_hash, raw_len, prefix_hash) = hash_file_with_prefix(path, earlier.as_ref().map(|e| e.bytes))?;
    let mut resume = earlier.filter(|e| {
        !e.gz && e.bytes > 0 && e.bytes < raw_len && prefix_hash.as_deref() == Some(e.content_hash.as_str())
    });
    let mut fs = FileSummary { source: name.clone(), bytes: raw_len, ..Default::default() };
    let (mut blocks, resolved, options) = loop {
        let mut blocks = LineBlocks::open_at(path, resume.as_ref().map_or(0, |e| e.bytes))?;
        let more = blocks.advance(BLOCK);
        if !more && let Some(e) = &blocks.error {
            return Err(Error::input(&name, format!("unreadable: {e}")));
        }
        let resolved = match format {
            LogFormat::Auto => match resume.as_ref().and_then(|e| e.format.clone()) {
                Some(earlier_format) => earlier_format,
                None => detect_format(&name, blocks.current(), masker)?,
            },
            f => f.clone(),
        };
        let options = format!("service={service};format={}", format_key(&resolved));
        match &resume {
            Some(e) if e.options != options => resume = None, // another format: read it all again
            _ => break (blocks, resolved, options),
        }
    };
    fs.format = resolved.name().to_string();
    let gz = blocks.is_gzip();
    let id = source_id("requests", &content_hash, &options);
    if store.get(&manifest_path("requests", &id)).await?.is_some() {
        fs.status = "skipped".into();
        progress.inc(raw_len);
        return Ok((fs, vec![], 0, None));
    }
    let mut more = !blocks.current().is_empty();
    let mut outputs = Vec::new();
    let mut written = 0;
    let mut rejects = Vec::new();
    let mut next_line = resume.as_ref().map_or(1, |e| e.lines + 1);
    let mut group = 0usize;
    let mut reported = 0u64;
    while more {
        let bytes = blocks.current();
        let (chunks, after) = line_chunks(bytes, CHUNK, next_line);
        let parsed: Vec<std::result::Result<(DataFrame, Vec<Reject>), omen_features::Error>> = chunks
            .par_iter()
            .map(|(first, chunk)| LogParser::new(&resolved, masker.clone())?.parse(&name, chunk, *first))
            .collect();
        next_line = after;
        let mut frames = Vec::with_capacity(parsed.len());
        for r in parsed {
            let (df, rej) = r?;
            rejects.extend(rej);
            frames.push(df);
        }
        // Chunks stay separate in memory; the Parquet writer turns them into row groups.
        let df = vstack_all(frames)?.unwrap_or_default();
        fs.rows += df.height() as u64;
        let (outs, w) = write_rows(store, &REQUESTS, &df, &format!("part-{}-{group:05}", &id[..16]), Some(service)).await?;
        outputs.extend(outs);
        written += w;
        group += 1;
        let now = blocks.bytes_read.min(raw_len);
        progress.inc(now - reported);
        reported = now;
        more = blocks.advance(BLOCK);
    }
    progress.inc(raw_len - reported);
    if let Some(err) = &blocks.error {
        rejects.push(Reject::new(&name, next_line, err.clone(), b""));
    }
    fs.rejected = rejects.len() as u64;
    let empty = raw_len == 0 || (fs.rows == 0 && rejects.is_empty());
    fs.status = if empty { "empty".into() } else { "ingested".into() };
    let (rej_path, rej_bytes) = write_rejects(store, "requests", &id[..16], &rejects, masker).await?;
    outputs.extend(rej_path);
    let tail = TailEntry {
        bytes: raw_len,
        lines: next_line - 1,
        content_hash: content_hash.clone(),
        options: options.clone(),
        format: Some(resolved.clone()),
        gz,
    };
    Manifest::new("requests", &fs, &content_hash, options, &outputs).save(store, &id).await?;
    store.put(&tail_key, serde_json::to_vec_pretty(&tail).unwrap_or_default().into()).await?;
    if resume.is_some() {
        fs.status = "appended".into();
    }
    let warn = empty.then(|| format!("{name}: empty file, nothing to ingest"));
    Ok((fs, outputs, written + rej_bytes, warn))
}

/// Where an ingested log file stopped, by path and service.
#[derive(Debug, Serialize, serde::Deserialize)]
struct TailEntry {
    /// Bytes of the file ingested.
    bytes: u64,
    /// Lines in those bytes.
    lines: u64,
    /// BLAKE3 of those bytes.
    content_hash: String,
    options: String,
    #[serde(with = "format_serde")]
    format: Option<LogFormat>,
    gz: bool,
}

mod format_serde {
    use omen_features::ingest::logs::LogFormat;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &Option<LogFormat>, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(LogFormat::Custom(t)) => s.serialize_some(t.as_str()),
            Some(f) => s.serialize_some(f.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LogFormat>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        Ok(v.and_then(|t| LogFormat::parse(&t).ok()))
    }
}

fn tail_key(path: &Path, service: &str) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let h = blake3::hash(format!("{service}\0{}", abs.display()).as_bytes());
    format!("_manifest/requests/by-path/{}.json", &h.to_hex()[..32])
}

fn detect_format(name: &str, first: &[u8], masker: &Masker) -> Result<LogFormat> {
    match LogFormat::detect(first) {
        Some(f) => Ok(f),
        // Empty or blank: nothing to detect; blank lines become rejects.
        None if first.iter().all(u8::is_ascii_whitespace) => Ok(LogFormat::Combined),
        None => {
            let line = omen_features::ingest::lines(first).next().map(|(_, l)| l).unwrap_or_default();
            let line = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
            Err(Error::input(
                name,
                format!(
                    "unknown log format: no line of the first 50 parses as combined, common or nginx-json (line 1: `{}`); pass --format",
                    masker.mask_text(&line)
                ),
            ))
        }
    }
}

fn format_key(f: &LogFormat) -> String {
    match f {
        LogFormat::Custom(s) => format!("custom:{}", blake3::hash(s.as_bytes()).to_hex()),
        f => f.name().to_string(),
    }
}

/// Service names become partition folders: letters, digits, `.`, `_` and `-` only.
pub fn validate_service(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) || s.starts_with('.') {
        return Err(Error::input(
            "--service",
            format!("`{s}` is not a valid service name: use 1 to 128 letters, digits, `.`, `_` or `-`"),
        ));
    }
    Ok(())
}

/// `omen ingest commits`.
pub async fn ingest_commits(store: &Store, repo: &str, service: &str, range: Option<&str>) -> Result<IngestSummary> {
    validate_service(service)?;
    let t0 = Instant::now();
    let masker = Masker::new(store.mask_key().await?);
    let mut sum = IngestSummary::new("commits", store);
    let (repo_dir, _tmp) = open_repo(repo)?;
    let opts = CommitOptions { range: range.map(str::to_string) };
    let m2 = masker.clone();
    let tables = tokio::task::spawn_blocking(move || read_commits(&repo_dir, &opts, &m2))
        .await
        .map_err(|e| Error::Join(e.to_string()))??;
    let existing = store.read_dataset(&COMMITS, |p| p.iter().any(|(k, v)| k == "service" && v == service)).await?;
    let known: HashSet<String> = existing.column("sha")?.str()?.iter().flatten().map(str::to_string).collect();
    let total = tables.commits.height() as u64;
    let is_new = |df: &DataFrame| -> PolarsResult<BooleanChunked> {
        Ok(df.column("sha")?.str()?.iter().map(|s| s.is_some_and(|s| !known.contains(s))).collect())
    };
    let commits = tables.commits.filter(&is_new(&tables.commits)?)?;
    let files = tables.commit_files.filter(&is_new(&tables.commit_files)?)?;
    let mut fs = FileSummary { source: repo.to_string(), format: "git".into(), ..Default::default() };
    if commits.height() == 0 {
        fs.status = "skipped".into();
    } else {
        let mut shas: Vec<&str> = commits.column("sha")?.str()?.iter().flatten().collect();
        shas.sort_unstable();
        let id = blake3::hash(shas.join("\n").as_bytes()).to_hex()[..16].to_string();
        let (o1, b1) = write_rows(store, &COMMITS, &commits, &format!("part-{id}"), Some(service)).await?;
        let (o2, b2) = write_rows(store, &COMMIT_FILES, &files, &format!("part-{id}"), Some(service)).await?;
        sum.outputs.extend(o1.into_iter().chain(o2));
        sum.bytes_written += b1 + b2;
        fs.status = "ingested".into();
        fs.rows = commits.height() as u64;
    }
    if total > fs.rows {
        sum.warnings.push(format!("{} of {total} commits were already in the store", total - fs.rows));
    }
    sum.add(fs);
    sum.seconds = t0.elapsed().as_secs_f64();
    Ok(sum)
}

/// A repository folder, or a `git bundle` file cloned into a temporary folder.
fn open_repo(repo: &str) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let p = Path::new(repo);
    if p.is_file() {
        let tmp = tempfile::tempdir().map_err(|e| Error::input(repo, e.to_string()))?;
        let dest = tmp.path().join("repo.git");
        let out = std::process::Command::new("git")
            .args(["clone", "--quiet", "--bare"])
            .arg(p)
            .arg(&dest)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| Error::input(repo, format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(Error::input(repo, format!("not a git repository or bundle: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        return Ok((dest, Some(tmp)));
    }
    if !p.exists() {
        return Err(Error::input(repo, "no such repository"));
    }
    Ok((p.to_path_buf(), None))
}

/// Options for metric ingests.
#[derive(Debug, Clone, Default)]
pub struct MetricsIngest {
    pub options: MetricsOptions,
}

/// `omen ingest metrics <PATH>...`.
pub async fn ingest_metrics_files(store: &Store, inputs: &[String], cfg: &MetricsIngest, progress: &ProgressBar) -> Result<IngestSummary> {
    let t0 = Instant::now();
    let files = expand_inputs(inputs)?;
    let masker = Masker::new(store.mask_key().await?);
    let mut sum = IngestSummary::new("metrics", store);
    progress.set_length(files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        let r: Result<()> = async {
            let input = read_input(path)?;
            let format = MetricsFormat::detect(&name, &input.bytes).ok_or_else(|| {
                Error::input(&name, "unknown metrics format: expected Prometheus query_range JSON, exposition text or CSV with ts,metric,value")
            })?;
            let mut extra = Vec::new();
            if let Some(e) = &input.error {
                extra.push(Reject::new(&name, 0, e.clone(), b""));
            }
            ingest_metric_bytes(store, &name, &input.bytes, &input.content_hash, format, cfg, &masker, extra, &mut sum).await
        }
        .await;
        if let Err(e) = r {
            failures.push(format!("  {name}: {e}"));
        }
        progress.inc(size);
    }
    sum.seconds = t0.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Err(Error::Several { count: failures.len(), list: failures.join("\n") });
    }
    Ok(sum)
}

#[allow(clippy::too_many_arguments)]
async fn ingest_metric_bytes(
    store: &Store,
    name: &str,
    bytes: &[u8],
    content_hash: &str,
    format: MetricsFormat,
    cfg: &MetricsIngest,
    masker: &Masker,
    extra_rejects: Vec<Reject>,
    sum: &mut IngestSummary,
) -> Result<()> {
    let o = &cfg.options;
    let options = format!("{format:?};{:?};{:?}", o.aliases, o.default_service);
    let id = source_id("metrics", content_hash, &options);
    let mut fs = FileSummary { source: name.to_string(), format: format!("{format:?}"), bytes: bytes.len() as u64, ..Default::default() };
    if store.get(&manifest_path("metrics", &id)).await?.is_some() {
        fs.status = "skipped".into();
        sum.add(fs);
        return Ok(());
    }
    let (df, mut rejects) = parse_metrics(name, bytes, format, o)?;
    rejects.extend(extra_rejects);
    let (mut outputs, written) = write_rows(store, &METRICS, &df, &format!("part-{}", &id[..16]), None).await?;
    let (rej, rb) = write_rejects(store, "metrics", &id[..16], &rejects, masker).await?;
    outputs.extend(rej);
    fs.rows = df.height() as u64;
    fs.rejected = rejects.len() as u64;
    fs.status = if bytes.is_empty() { "empty".into() } else { "ingested".into() };
    Manifest::new("metrics", &fs, content_hash, options, &outputs).save(store, &id).await?;
    sum.outputs.extend(outputs);
    sum.bytes_written += written + rb;
    sum.add(fs);
    Ok(())
}

/// A live pull from a Prometheus server's `query_range` API.
#[derive(Debug, Clone)]
pub struct PrometheusPull {
    pub url: String,
    pub query: String,
    pub start: String,
    pub end: String,
    pub step: String,
    pub timeout: std::time::Duration,
}

/// `omen ingest metrics --prometheus URL --query Q --start T --end T --step S`.
pub async fn ingest_metrics_prometheus(store: &Store, pull: &PrometheusPull, cfg: &MetricsIngest) -> Result<IngestSummary> {
    let t0 = Instant::now();
    let masker = Masker::new(store.mask_key().await?);
    let mut sum = IngestSummary::new("metrics", store);
    let base = pull.url.trim_end_matches('/');
    let err = |m: String| Error::Prometheus { url: base.to_string(), message: m };
    let client = reqwest::Client::builder().timeout(pull.timeout).build().map_err(|e| err(e.to_string()))?;
    let resp = client
        .get(format!("{base}/api/v1/query_range"))
        .query(&[("query", &pull.query), ("start", &pull.start), ("end", &pull.end), ("step", &pull.step)])
        .send()
        .await
        .map_err(|e| err(format!("request failed: {e}")))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| err(format!("reading the response: {e}")))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        return Err(err(format!("HTTP {status}: {text}")));
    }
    let name = format!("prometheus:{base}");
    let hash = blake3::hash(&body).to_hex().to_string();
    ingest_metric_bytes(store, &name, &body, &hash, MetricsFormat::PromQueryRange, cfg, &masker, vec![], &mut sum).await?;
    sum.seconds = t0.elapsed().as_secs_f64();
    Ok(sum)
}

/// `omen ingest deployments`: rows replace earlier rows of the same `deployment_id`.
pub async fn ingest_deployments(store: &Store, inputs: &[String]) -> Result<IngestSummary> {
    let t0 = Instant::now();
    let files = expand_inputs(inputs)?;
    let masker = Masker::new(store.mask_key().await?);
    let mut sum = IngestSummary::new("deployments", store);
    let mut frames = Vec::new();
    let mut summaries = Vec::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        let r: Result<()> = async {
            let input = read_input(path)?;
            let format = DeploymentsFormat::detect(&name, &input.bytes)
                .ok_or_else(|| Error::input(&name, "unknown deployments format: expected JSON Lines or CSV"))?;
            let (df, rejects) = parse_deployments(&name, &input.bytes, format)?;
            let id = source_id("deployments", &input.content_hash, "");
            let (rej, rb) = write_rejects(store, "deployments", &id[..16], &rejects, &masker).await?;
            sum.outputs.extend(rej);
            sum.bytes_written += rb;
            summaries.push(FileSummary {
                source: name.clone(),
                status: if input.bytes.is_empty() { "empty".into() } else { "ingested".into() },
                format: format!("{format:?}"),
                rows: df.height() as u64,
                rejected: rejects.len() as u64,
                bytes: input.raw_len,
            });
            frames.push(df);
            Ok(())
        }
        .await;
        if let Err(e) = r {
            failures.push(format!("  {name}: {e}"));
        }
    }
    if !failures.is_empty() {
        return Err(Error::Several { count: failures.len(), list: failures.join("\n") });
    }
    let Some(new) = vstack_all(frames)? else {
        summaries.into_iter().for_each(|f| sum.add(f));
        return Ok(sum);
    };
    let services: HashSet<String> = new.column("service")?.str()?.iter().flatten().map(str::to_string).collect();
    let old = store.read_dataset(&DEPLOYMENTS, |p| p.iter().any(|(k, v)| k == "service" && services.contains(v))).await?;
    // New rows first so that `unique` keeps them; within the new rows the last file wins.
    let merged = concat(
        [new.lazy().reverse(), old.lazy()],
        UnionArgs { rechunk: true, diagonal: true, ..Default::default() },
    )?
    .unique_stable(Some(cols(["deployment_id"])), UniqueKeepStrategy::First)
    .sort(["service", "started_at", "deployment_id"], Default::default())
    .collect()?;
    // One file per service, rewritten only when its content changes: re-ingesting the same
    // records writes nothing and says so.
    let mut changed = false;
    for (part, mut frame) in split_partitions(&merged, &DEPLOYMENTS)? {
        let rel = format!("{}/{part}/part-0.parquet", DEPLOYMENTS.name);
        let bytes = encode_parquet(&mut frame)?;
        if store.get(&rel).await?.as_deref() != Some(bytes.as_slice()) {
            sum.bytes_written += bytes.len() as u64;
            store.put(&rel, bytes.into()).await?;
            sum.outputs.push(rel);
            changed = true;
        }
    }
    for mut f in summaries {
        if !changed && f.status == "ingested" {
            f.status = "skipped".into();
            f.rows = 0;
        }
        sum.add(f);
    }
    sum.seconds = t0.elapsed().as_secs_f64();
    Ok(sum)
}
