//! The store: one root URL that holds every dataset, reject, manifest and key omen writes.
//!
//! A plain path or `file://…` (the default) uses the local disk; `s3://`, `gs://` and `az://`
//! go through `object_store`. Options (credentials, endpoints) are passed in by the binary, which
//! is the only place that reads the environment.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use polars::frame::chunk_df_for_writing;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::schema::DatasetSchema;

/// A handle on the store root.
#[derive(Clone)]
pub struct Store {
    url: String,
    inner: Arc<dyn ObjectStore>,
    prefix: ObjPath,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `url` with no extra options.
    pub fn open(url: &str) -> Result<Store> {
        Self::open_with_options(url, std::iter::empty::<(String, String)>())
    }

    /// Opens the store at `url`. `options` are `object_store` configuration keys
    /// (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, …), case-insensitive.
    /// A local root is created if it does not exist.
    pub fn open_with_options<I, K, V>(url: &str, options: I) -> Result<Store>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |message: String| Error::StoreUrl { url: url.to_string(), message };
        if url.trim().is_empty() {
            return Err(bad("empty".into()));
        }
        let is_remote = url.contains("://") && !url.starts_with("file://");
        if !is_remote {
            let path = url.strip_prefix("file://").unwrap_or(url);
            let path = std::path::Path::new(path);
            std::fs::create_dir_all(path).map_err(|e| bad(format!("cannot create {}: {e}", path.display())))?;
            let abs = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Store { url: abs.display().to_string(), inner: Arc::new(fs), prefix: ObjPath::default() });
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let opts: Vec<(String, String)> =
            options.into_iter().map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into())).collect();
        let (inner, prefix) = object_store::parse_url_opts(&parsed, opts).map_err(|e| bad(e.to_string()))?;
        Ok(Store { url: url.trim_end_matches('/').to_string(), inner: Arc::from(inner), prefix })
    }

    /// The root URL (a canonical absolute path for local stores).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store and the root prefix, for other crates' own files
    /// (the registry).
    pub fn object_store(&self) -> (Arc<dyn ObjectStore>, ObjPath) {
        (self.inner.clone(), self.prefix.clone())
    }

    fn path(&self, rel: &str) -> ObjPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn rel(&self, full: &ObjPath) -> String {
        let full = full.as_ref();
        let pre = self.prefix.as_ref();
        if pre.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(pre).unwrap_or(full).trim_start_matches('/').to_string()
        }
    }

    /// Writes `bytes` at `rel`, replacing what was there. Writes are atomic: readers see the old
    /// object or the new one, never a part.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&self.path(rel), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| Error::store(rel, e))?;
        Ok(())
    }

    /// Writes `bytes` at `rel` only if nothing is there. Returns `false` if something was.
    pub async fn put_if_absent(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(&self.path(rel), PutPayload::from_bytes(bytes.clone()), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => {
                // Stores without conditional writes: check, then write.
                if self.get(rel).await?.is_some() {
                    Ok(false)
                } else {
                    self.put(rel, bytes).await?;
                    Ok(true)
                }
            }
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// Writes `bytes` at `rel` only if nothing is there, atomically: of two writers racing for
    /// one path exactly one gets `true`. Unlike [`Store::put_if_absent`] there is no
    /// check-then-write fallback: a store without conditional writes is an error.
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// Writes `bytes` at `rel` in parts of `part_size` bytes (a multipart upload on object
    /// stores), calling `progress(written, total)` after each part. Readers see nothing at
    /// `rel` until the last part is in: a writer killed half-way leaves no object there.
    pub async fn put_parts(
        &self,
        rel: &str,
        bytes: Bytes,
        part_size: usize,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<()> {
        let total = bytes.len() as u64;
        let part_size = part_size.max(5 << 20);
        if bytes.len() <= part_size {
            self.put(rel, bytes).await?;
            progress(total, total);
            return Ok(());
        }
        let mut upload = self.inner.put_multipart(&self.path(rel)).await.map_err(|e| Error::store(rel, e))?;
        let mut written = 0u64;
        for chunk in bytes.chunks(part_size) {
            let part = bytes.slice_ref(chunk);
            if let Err(e) = upload.put_part(PutPayload::from_bytes(part)).await {
                let _ = upload.abort().await;
                return Err(Error::store(rel, e));
            }
            written += chunk.len() as u64;
            progress(written, total);
        }
        upload.complete().await.map_err(|e| Error::store(rel, e))?;
        Ok(())
    }

    /// The object at `rel`, or `None` if there is none.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::store(rel, e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// Deletes `rel`; deleting nothing is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// Every object below `rel_prefix` (recursively), as paths relative to the root, sorted.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<String>> {
        let prefix = self.path(rel_prefix);
        let mut out: Vec<String> = match self.inner.list(Some(&prefix)).try_collect::<Vec<_>>().await {
            Ok(v) => v.into_iter().map(|m| self.rel(&m.location)).collect(),
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(Error::store(rel_prefix, e)),
        };
        out.sort();
        Ok(out)
    }

    /// The store's masking key (32 bytes), created at random on first use and kept at
    /// `_meta/mask.key`. Two processes racing to create it agree on the one that was written first.
    pub async fn mask_key(&self) -> Result<[u8; 32]> {
        const KEY: &str = "_meta/mask.key";
        if let Some(b) = self.get(KEY).await? {
            return parse_key(&b).ok_or_else(|| Error::input(KEY, "not a 64-hex-digit key"));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::input(KEY, format!("no randomness: {e}")))?;
        self.put_if_absent(KEY, Bytes::from(hex::encode(key) + "\n")).await?;
        let b = self.get(KEY).await?.ok_or_else(|| Error::input(KEY, "vanished after write"))?;
        parse_key(&b).ok_or_else(|| Error::input(KEY, "not a 64-hex-digit key"))
    }

    /// Encodes `df` as Parquet (zstd) and writes it at `rel`. Returns the bytes written.
    pub async fn write_parquet(&self, rel: &str, df: &mut DataFrame) -> Result<u64> {
        let bytes = encode_parquet(df).map_err(|e| Error::Parquet { path: rel.into(), source: e })?;
        let n = bytes.len() as u64;
        self.put(rel, Bytes::from(bytes)).await?;
        Ok(n)
    }

    /// Reads one Parquet object.
    pub async fn read_parquet(&self, rel: &str) -> Result<Option<DataFrame>> {
        let Some(bytes) = self.get(rel).await? else { return Ok(None) };
        let df = ParquetReader::new(Cursor::new(bytes))
            .finish()
            .map_err(|e| Error::Parquet { path: rel.into(), source: e })?;
        Ok(Some(df))
    }

    /// Reads every Parquet file of a dataset whose partition values pass `keep`, adding the
    /// partition keys as string columns. Returns an empty frame with the schema when there are none.
    pub async fn read_dataset(
        &self,
        schema: &DatasetSchema,
        keep: impl Fn(&[(String, String)]) -> bool,
    ) -> Result<DataFrame> {
        self.read_dataset_columns(schema, None, keep).await
    }

    /// [`Store::read_dataset`] reading only `columns` of the files (every column when `None`);
    /// partition keys are added as ever. A file that lacks a column is an error naming it.
    pub async fn read_dataset_columns(
        &self,
        schema: &DatasetSchema,
        columns: Option<&[&str]>,
        keep: impl Fn(&[(String, String)]) -> bool,
    ) -> Result<DataFrame> {
        let frames = self.read_frames(schema.name, columns, keep).await?;
        if frames.is_empty() {
            let mut full = schema.polars_schema();
            if let Some(columns) = columns {
                full = full.iter().filter(|(n, _)| columns.contains(&n.as_str())).map(|(n, t)| Field::new(n.clone(), t.clone())).collect();
            }
            let mut df = DataFrame::empty_with_schema(&full);
            for k in schema.partition_by {
                df.with_column(Column::new((*k).into(), Vec::<String>::new()))?;
            }
            return Ok(df);
        }
        let args = UnionArgs { rechunk: true, ..Default::default() };
        Ok(concat(frames, args)?.collect()?)
    }

    /// Every Parquet file below `rel_prefix` ("" for the whole store), whatever its schema (a
    /// column some files lack is null in their rows), with the partition keys of its path added
    /// as string columns, in path order. `None` when there is no file.
    pub async fn read_parquet_tree(&self, rel_prefix: &str) -> Result<Option<DataFrame>> {
        let frames = self.read_frames(rel_prefix, None, |_| true).await?;
        if frames.is_empty() {
            return Ok(None);
        }
        let args = UnionArgs { rechunk: true, diagonal: true, ..Default::default() };
        Ok(Some(concat(frames, args)?.collect()?))
    }

    /// The Parquet files below `rel_prefix` whose partition values pass `keep`, each read (only
    /// `columns` when given) with its partition keys added, in path order.
    async fn read_frames(
        &self,
        rel_prefix: &str,
        columns: Option<&[&str]>,
        keep: impl Fn(&[(String, String)]) -> bool,
    ) -> Result<Vec<LazyFrame>> {
        let mut frames = Vec::new();
        for rel in self.list(rel_prefix).await? {
            if !rel.ends_with(".parquet") {
                continue;
            }
            let parts = partition_values(&rel);
            if !keep(&parts) {
                continue;
            }
            let Some(bytes) = self.get(&rel).await? else { continue };
            let mut reader = ParquetReader::new(Cursor::new(bytes));
            if let Some(columns) = columns {
                reader = reader.with_columns(Some(columns.iter().map(|c| c.to_string()).collect()));
            }
            let mut df = reader.finish().map_err(|e| Error::Parquet { path: rel.clone(), source: e })?;
            let h = df.height();
            for (k, v) in &parts {
                df.with_column(Column::new(k.as_str().into(), vec![v.as_str(); h]))?;
            }
            frames.push(df.lazy());
        }
        Ok(frames)
    }
}

fn parse_key(b: &[u8]) -> Option<[u8; 32]> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// Encodes a frame as Parquet (zstd level 1, min/max/null statistics).
pub fn encode_parquet(df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    use polars::io::parquet::write::get_encodings;
    use polars_parquet::write::{
        CompressedPage, CompressionOptions, Version, WriteOptions, ZstdLevel, array_to_columns, compress,
    };
    use rayon::prelude::*;

    // zstd level 1: most of level 3's ratio on log columns at about twice the speed. Min/max and
    // null-count statistics (readers prune on them); no distinct counts, which cost a HyperLogLog
    // pass over every column.
    let level = ZstdLevel::try_new(ZSTD_LEVEL).ok();
    let statistics = StatisticsOptions::default();
    let options = WriteOptions {
        statistics,
        version: Version::V1,
        compression: CompressionOptions::Zstd(level),
        data_page_size: None,
    };
    // The file is the one `ParquetWriter::finish` writes (same row groups, encodings, pages and
    // footer), but each row group's columns are encoded and compressed in parallel: Polars
    // compresses the pages on the writing thread, one column after another, and that was a
    // quarter of a log ingest's wall time on two cores.
    let df = chunk_df_for_writing(df, ROW_GROUP_ROWS)?;
    let mut buf = Vec::new();
    let mut writer = ParquetWriter::new(&mut buf)
        .with_compression(polars_compression())
        .with_statistics(statistics)
        .batched(df.schema())?;
    let fields = writer.parquet_schema().fields().to_vec();
    let encodings = get_encodings(&df.schema().to_arrow(CompatLevel::newest()));
    for batch in df.iter_chunks(CompatLevel::newest(), false) {
        if batch.is_empty() {
            continue;
        }
        let columns: Vec<Vec<Vec<CompressedPage>>> = batch
            .columns()
            .par_iter()
            .zip(&fields)
            .zip(encodings.as_slice())
            .map(|((array, field), encoding)| {
                array_to_columns(array, field.clone(), options, encoding)?
                    .into_iter()
                    .map(|pages| pages.map(|page| Ok(compress(page?, Vec::new(), options.compression)?)).collect())
                    .collect::<PolarsResult<Vec<Vec<CompressedPage>>>>()
            })
            .collect::<PolarsResult<_>>()?;
        let row_group: Vec<Vec<CompressedPage>> = columns.into_iter().flatten().collect();
        writer.write_row_group(batch.len() as u64, &row_group)?;
    }
    writer.finish()?;
    Ok(buf)
}

/// Rows per Parquet row group: Polars' `ParquetWriter` default.
const ROW_GROUP_ROWS: usize = 512 * 512;

const ZSTD_LEVEL: i32 = 1;

/// [`ZSTD_LEVEL`] as Polars' writer takes it.
fn polars_compression() -> ParquetCompression {
    ParquetCompression::Zstd(polars::polars_utils::compression::ZstdLevel::try_new(ZSTD_LEVEL).ok())
}

/// The `key=value` folders of a dataset path, outermost first.
pub fn partition_values(rel: &str) -> Vec<(String, String)> {
    rel.split('/')
        .filter_map(|seg| seg.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A partition folder name segment, escaped so any value makes a valid single path segment.
pub fn partition_segment(key: &str, value: &str) -> String {
    let mut v = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            v.push(b as char);
        } else {
            v.push_str(&format!("%{b:02X}"));
        }
    }
    if v.is_empty() || v == "." || v == ".." {
        v = format!("%{}", v.len());
    }
    format!("{key}={v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `encode_parquet` writes the bytes Polars' own `ParquetWriter` writes with the same
    /// options: strings, nulls, timestamps, a scalar column, several chunks, two row groups.
    #[test]
    fn parquet_is_polars_own_bytes() {
        let n = 350_000;
        let chunk = |from: usize, to: usize| {
            let ids: Vec<i64> = (from as i64..to as i64).collect();
            let names: Vec<Option<String>> =
                (from..to).map(|i| (i % 7 != 0).then(|| format!("/api/v{}/items/{}", i % 3, i % 1_000))).collect();
            let x: Vec<Option<f64>> = (from..to).map(|i| (i % 11 != 0).then_some(i as f64 / 3.0)).collect();
            let h = to - from;
            DataFrame::new(
                h,
                vec![
                    Int64Chunked::from_vec("ts".into(), ids.clone())
                        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                        .into_column(),
                    Column::new("path".into(), names),
                    Column::new("x".into(), x),
                    Column::new_scalar("service".into(), Scalar::from(PlSmallStr::from("web")), h),
                    Column::new("id".into(), ids),
                ],
            )
            .unwrap()
        };
        // Chunks of 200k and 100k rows make the first row group (≥ ROW_GROUP_ROWS), 50k the second.
        let mut df = chunk(0, 200_000);
        df.vstack_mut(&chunk(200_000, 300_000)).unwrap();
        df.vstack_mut(&chunk(300_000, n)).unwrap();
        let mut want = Vec::new();
        ParquetWriter::new(&mut want)
            .with_compression(polars_compression())
            .with_statistics(StatisticsOptions::default())
            .finish(&mut df.clone())
            .unwrap();
        let got = encode_parquet(&mut df).unwrap();
        assert!(got == want, "{} bytes, Polars wrote {}", got.len(), want.len());
        let mut reader = ParquetReader::new(std::io::Cursor::new(got));
        assert_eq!(reader.get_metadata().unwrap().row_groups.len(), 2);
        assert_eq!(reader.finish().unwrap().height(), n);
    }
}
