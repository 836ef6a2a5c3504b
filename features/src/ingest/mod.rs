//! Parsers from real-world inputs to dataset rows.
//!
//! Every parser is pure and synchronous: bytes in, a [`DataFrame`] of rows and a list of
//! [`Reject`]s out. A parser never panics on any input and never drops a line silently: each line
//! becomes a row or a reject. Frames carry the dataset's columns (see [`crate::schema`]) plus its
//! partition keys as string columns; [`split_partitions`] turns them into per-partition frames.

pub mod commits;
pub mod deployments;
pub mod logs;
pub mod metrics;

use std::io::Read;
use std::path::Path;

use polars::prelude::*;

use crate::mask::Masker;
use crate::schema::{DatasetSchema, REJECTS};

/// One input line or record that did not become a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub source_file: String,
    /// 1-based line or record number; 0 when the whole source is at fault.
    pub source_line: u64,
    pub reason: String,
    /// The offending bytes as read (masked when written).
    pub raw: Vec<u8>,
}

impl Reject {
    pub fn new(source_file: &str, source_line: u64, reason: impl Into<String>, raw: &[u8]) -> Self {
        Reject { source_file: source_file.to_string(), source_line, reason: reason.into(), raw: raw.to_vec() }
    }
}

/// The `_rejects/<dataset>/` frame for `rejects`, with PII masked in `raw`. At most 1 MiB of each
/// raw line is kept (its full length is in `raw_len`).
pub fn rejects_frame(rejects: &[Reject], masker: &Masker) -> PolarsResult<DataFrame> {
    const KEEP: usize = 1 << 20;
    let raw: Vec<String> = rejects
        .iter()
        .map(|r| masker.mask_text(&String::from_utf8_lossy(&r.raw[..r.raw.len().min(KEEP)])))
        .collect();
    let df = DataFrame::new_infer_height(vec![
        Column::new("source_file".into(), rejects.iter().map(|r| r.source_file.as_str()).collect::<Vec<_>>()),
        Column::new("source_line".into(), rejects.iter().map(|r| r.source_line as i64).collect::<Vec<_>>()),
        Column::new("reason".into(), rejects.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>()),
        Column::new("raw".into(), raw),
        Column::new("raw_len".into(), rejects.iter().map(|r| r.raw.len() as i64).collect::<Vec<_>>()),
    ])?;
    conform(df, &REJECTS)
}

/// Casts and orders `df`'s columns to `schema` (plus any partition keys it has, kept last).
/// Fails naming the column if one is missing.
pub fn conform(df: DataFrame, schema: &DatasetSchema) -> PolarsResult<DataFrame> {
    let mut cols = Vec::with_capacity(schema.columns.len() + schema.partition_by.len());
    for c in schema.columns {
        let s = df.column(c.name)?;
        cols.push(if s.dtype() == &c.ty.dtype() { s.clone() } else { s.cast(&c.ty.dtype())? });
    }
    for k in schema.partition_by {
        if let Ok(s) = df.column(k) {
            cols.push(s.clone());
        }
    }
    DataFrame::new_infer_height(cols)
}

/// Splits a frame holding `schema`'s partition keys into `(partition path, frame without the
/// keys)` pairs, in sorted order. The path is `service=a/date=2026-01-02` style.
pub fn split_partitions(df: &DataFrame, schema: &DatasetSchema) -> PolarsResult<Vec<(String, DataFrame)>> {
    let keys: Vec<&str> = schema.partition_by.to_vec();
    if keys.is_empty() || df.height() == 0 {
        return Ok(if df.height() == 0 { vec![] } else { vec![(String::new(), df.clone())] });
    }
    // The usual case, a block of one service's log within one day, is one partition: its rows
    // are kept as they are instead of being gathered into a copy.
    if let Some(segs) = single_partition(df, &keys)? {
        return Ok(vec![(segs, df.drop_many(keys.iter().copied()))]);
    }
    let mut out = Vec::new();
    for part in df.partition_by_stable(keys.iter().copied(), true)? {
        let mut segs = Vec::new();
        for k in &keys {
            let v = part.column(k)?.str()?.get(0).unwrap_or("__null__").to_string();
            segs.push(crate::store::partition_segment(k, &v));
        }
        out.push((segs.join("/"), part.drop_many(keys.iter().copied())));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The partition path of `df` when every row has the same values of `keys`.
fn single_partition(df: &DataFrame, keys: &[&str]) -> PolarsResult<Option<String>> {
    let mut segs = Vec::with_capacity(keys.len());
    for k in keys {
        let col = df.column(k)?;
        if col.dtype() != &DataType::String {
            return Ok(None);
        }
        let first = match col {
            Column::Scalar(s) => s.scalar().value().extract_str().map(str::to_string),
            _ => {
                let ca = col.str()?;
                let first = ca.get(0);
                if ca.iter().any(|v| v != first) {
                    return Ok(None);
                }
                first.map(str::to_string)
            }
        };
        segs.push(crate::store::partition_segment(k, first.as_deref().unwrap_or("__null__")));
    }
    Ok(Some(segs.join("/")))
}

/// One CSV record with where it came from.
pub(crate) struct CsvRecord<'a> {
    /// Line the record starts on (1-based).
    pub line: u64,
    /// The record's bytes as read, for rejects.
    pub raw: &'a [u8],
    pub fields: csv::ByteRecord,
}

/// Every record of `bytes` read as CSV (the header is the first record). A syntax error ends the
/// reading with a reject at its line: what follows it cannot be framed reliably.
pub(crate) fn csv_records<'a>(source: &str, bytes: &'a [u8], rejects: &mut Vec<Reject>) -> Vec<CsvRecord<'a>> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut out = Vec::new();
    loop {
        let mut rec = csv::ByteRecord::new();
        let start = rdr.position().byte() as usize;
        let read = rdr.read_byte_record(&mut rec);
        let end = rdr.position().byte() as usize;
        let raw = bytes.get(start..end).unwrap_or_default().trim_ascii();
        let line = rec.position().map_or(0, |p| p.line());
        match read {
            Ok(true) => out.push(CsvRecord { line, raw, fields: rec }),
            Ok(false) => break,
            Err(e) => {
                rejects.push(Reject::new(source, line, format!("csv: {e}"), raw));
                break;
            }
        }
    }
    out
}

/// The content of an input file, gunzipped when it starts with the gzip magic bytes.
#[derive(Debug)]
pub struct InputBytes {
    /// Decompressed content (what could be read of it).
    pub bytes: Vec<u8>,
    /// Why reading stopped early (a truncated or corrupt gzip stream), if it did.
    pub error: Option<String>,
    /// Size of the file as stored.
    pub raw_len: u64,
    /// BLAKE3 of the file as stored: the source's identity for idempotent ingest.
    pub content_hash: String,
}

/// Reads `path`, decompressing gzip. A gzip stream that breaks off keeps what was decoded
/// and says why in `error`. Fails only when the file cannot be opened or read at all.
pub fn read_input(path: &Path) -> crate::Result<InputBytes> {
    let (content_hash, raw_len) = hash_file(path)?;
    let mut blocks = LineBlocks::open(path)?;
    blocks.fill(usize::MAX);
    Ok(InputBytes { bytes: std::mem::take(&mut blocks.buf), error: blocks.error, raw_len, content_hash })
}

/// BLAKE3 of a file's stored bytes and its size, read in a streaming pass.
pub fn hash_file(path: &Path) -> crate::Result<(String, u64)> {
    hash_file_with_prefix(path, None).map(|(h, n, _)| (h, n))
}

/// Like [`hash_file`], and in the same pass the BLAKE3 of the first `prefix` bytes (`None` when the
/// file is shorter): how an appended-to log is recognised.
pub fn hash_file_with_prefix(path: &Path, prefix: Option<u64>) -> crate::Result<(String, u64, Option<String>)> {
    let err = |e| crate::Error::Read { path: path.to_path_buf(), source: e };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = blake3::Hasher::new();
    let mut ph = blake3::Hasher::new();
    let mut prefix_hash = None;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                if let Some(p) = prefix
                    && prefix_hash.is_none()
                {
                    let take = (p.saturating_sub(n)).min(k as u64) as usize;
                    ph.update(&buf[..take]);
                    if n + take as u64 == p {
                        prefix_hash = Some(ph.finalize().to_hex().to_string());
                    }
                }
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    if prefix == Some(0) {
        prefix_hash = Some(ph.finalize().to_hex().to_string());
    }
    Ok((h.finalize().to_hex().to_string(), n, prefix_hash))
}

/// A file's content in blocks that end at line ends, gunzipped when the file starts with the
/// gzip magic bytes. Memory stays bounded by the block size however large the file is.
pub struct LineBlocks {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    consumed: usize,
    done: bool,
    gz: bool,
    /// Why reading stopped early (a truncated or corrupt gzip stream), if it did.
    pub error: Option<String>,
    /// Decompressed bytes read so far.
    pub bytes_read: u64,
}

impl std::fmt::Debug for LineBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineBlocks").field("bytes_read", &self.bytes_read).finish_non_exhaustive()
    }
}

impl LineBlocks {
    /// Opens `path`; fails only when it cannot be opened.
    pub fn open(path: &Path) -> crate::Result<LineBlocks> {
        Self::open_at(path, 0)
    }

    /// Opens `path` at byte `offset` of a plain file (an appended-to log's new tail). Gzip files
    /// are always read from their start.
    pub fn open_at(path: &Path, offset: u64) -> crate::Result<LineBlocks> {
        let err = |e| crate::Error::Read { path: path.to_path_buf(), source: e };
        let mut f = std::fs::File::open(path).map_err(err)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).map_err(err)?;
        use std::io::Seek;
        let is_gz = n == 2 && magic == [0x1f, 0x8b];
        f.seek(std::io::SeekFrom::Start(if is_gz { 0 } else { offset })).map_err(err)?;
        let reader: Box<dyn Read + Send> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f)))
        } else {
            Box::new(f)
        };
        let gz = n == 2 && magic == [0x1f, 0x8b];
        Ok(LineBlocks { reader, buf: Vec::new(), consumed: 0, done: false, gz, error: None, bytes_read: 0 })
    }

    /// Whether the file is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gz
    }

    /// Moves to the next block (see [`LineBlocks::next_block`]); `false` at the end.
    pub fn advance(&mut self, target: usize) -> bool {
        self.next_block(target).is_some()
    }

    /// The block the last [`LineBlocks::advance`] moved to (empty before the first and after the last).
    pub fn current(&self) -> &[u8] {
        &self.buf[..self.consumed]
    }

    /// The next block of about `target` bytes or more, ending at a line end (or at the end of the
    /// input); `None` at the end.
    pub fn next_block(&mut self, target: usize) -> Option<&[u8]> {
        // Keep the unfinished line of the last block.
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.fill(target);
        if self.buf.is_empty() {
            return None;
        }
        let end = if self.done {
            self.buf.len()
        } else {
            match memchr::memrchr(b'\n', &self.buf) {
                Some(i) => i + 1,
                // One line longer than the block: hand it out whole once it is complete.
                None => return self.next_block(self.buf.len() * 2),
            }
        };
        self.consumed = end;
        Some(&self.buf[..end])
    }

    /// Reads until `buf` holds `target` bytes or the input ends (or breaks off: `error`).
    ///
    /// `read_to_end` on a `take` grows `buf` without zero-filling it again on every short read
    /// (a gzip decoder returns a few KB per call): resizing to the whole want and truncating
    /// after each read zeroed up to 64 MB per call, which made ingesting many small files slow.
    fn fill(&mut self, target: usize) {
        while !self.done && self.buf.len() < target {
            let len = self.buf.len();
            let want = (target - len).clamp(1 << 16, 64 << 20);
            let got = (&mut self.reader).take(want as u64).read_to_end(&mut self.buf);
            let k = self.buf.len() - len;
            self.bytes_read += k as u64;
            match got {
                // Fewer bytes than asked: the input ended.
                Ok(_) if k < want => self.done = true,
                Ok(_) => {}
                Err(e) => {
                    let what = if self.gz { "gzip stream" } else { "read" };
                    self.error = Some(format!("{what} broke off after {} decompressed bytes: {e}", self.bytes_read));
                    self.done = true;
                }
            }
        }
    }
}

/// Iterates over `(line number, line)` of `bytes`: `\n`-separated, a trailing `\r` removed,
/// the empty piece after a final newline not counted.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = bytes;
    let mut n = 0u64;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let (line, tail) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        Some((n, line.strip_suffix(b"\r").unwrap_or(line)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One partition (the fast path, with a scalar `service` as ingest adds it) and several (the
    /// gathering path) give the same frames as the gathering path alone.
    #[test]
    fn partitions_split_the_same_with_one_partition_or_several() {
        let frame = |dates: &[&str]| {
            let n = dates.len();
            DataFrame::new(
                n,
                vec![
                    Column::new("x".into(), (0..n as i64).collect::<Vec<_>>()),
                    Column::new_scalar("service".into(), Scalar::from(PlSmallStr::from("web")), n),
                    Column::new("date".into(), dates.to_vec()),
                ],
            )
            .unwrap()
        };
        let gathered = |df: &DataFrame| {
            let mut v: Vec<_> = df
                .partition_by_stable(["service", "date"], true)
                .unwrap()
                .into_iter()
                .map(|p| {
                    let date = p.column("date").unwrap().str().unwrap().get(0).unwrap().to_string();
                    (format!("service=web/date={date}"), p.drop_many(["service", "date"]))
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        for dates in [&["2026-11-01"; 3][..], &["2026-11-01", "2026-11-02", "2026-11-01"][..]] {
            let df = frame(dates);
            let got = split_partitions(&df, &crate::schema::REQUESTS).unwrap();
            let want = gathered(&df);
            assert_eq!(got.len(), want.len());
            for ((gp, gf), (wp, wf)) in got.iter().zip(&want) {
                assert_eq!(gp, wp);
                assert!(gf.equals(wf), "{gp}: {gf} != {wf}");
            }
        }
        let one = split_partitions(&frame(&["2026-11-01"; 2]), &crate::schema::REQUESTS).unwrap();
        assert_eq!(one[0].0, "service=web/date=2026-11-01");
    }

    #[test]
    fn lines_are_numbered_from_one_without_a_phantom_last_line() {
        let v: Vec<_> = lines(b"a\r\n\nb\nc").collect();
        assert_eq!(v, vec![(1, &b"a"[..]), (2, &b""[..]), (3, &b"b"[..]), (4, &b"c"[..])]);
        assert_eq!(lines(b"a\n").count(), 1);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn line_blocks_end_at_line_ends_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut text = Vec::new();
        for i in 0..500 {
            text.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 37)).as_bytes());
        }
        text.extend_from_slice(&[b'y'; 3000]); // longer than a block, no final newline
        std::fs::write(&path, &text).unwrap();
        let mut b = LineBlocks::open(&path).unwrap();
        let mut seen = Vec::new();
        while b.advance(256) {
            let block = b.current();
            assert!(block.ends_with(b"\n") || seen.len() + block.len() == text.len());
            seen.extend_from_slice(block);
        }
        assert_eq!(seen, text);
        assert!(b.error.is_none());
        assert_eq!(b.bytes_read, text.len() as u64);
    }

    #[test]
    fn a_truncated_gzip_keeps_what_it_read_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &b"a line\n".repeat(10_000)).unwrap();
        let mut gz = enc.finish().unwrap();
        gz.truncate(gz.len() / 2);
        std::fs::write(&path, &gz).unwrap();
        let mut b = LineBlocks::open(&path).unwrap();
        let mut n = 0;
        while b.advance(1 << 12) {
            n += b.current().len();
        }
        assert!(n > 0);
        assert!(b.error.as_deref().unwrap_or("").contains("gzip stream broke off"), "{:?}", b.error);
    }
}
