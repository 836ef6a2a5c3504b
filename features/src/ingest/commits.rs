//! `omen ingest commits`: a repository's history, read with one `git log`, as the `commits/` and
//! `commit_files/` datasets, with the change metrics of Kamei et al., "A Large-Scale Empirical
//! Study of Just-in-Time Quality Assurance", TSE 39(6), 2013.
//!
//! # How the history is read
//!
//! One `git log` walks every commit reachable from `HEAD` (or from the commits of a range), oldest
//! first: `--reverse --date-order`, so parents always come before their children and commits of
//! different branches interleave by committer date. Every metric of a commit is computed from the
//! commits before it in that order only ("earlier" below), so no metric sees the future. With a
//! range (`A..B`, anything `git rev-list` takes) the metrics are still computed over the whole
//! history behind the range, and only the commits `git rev-list RANGE` lists are output.
//!
//! Each commit is diffed against its first parent (`--diff-merges=first-parent`; a root commit
//! against the empty tree) with rename detection (`-M`, git's default 50% similarity) and the
//! Myers algorithm, textconv and external diff drivers off. So `la`, `ld` and `nf` are exactly
//! what this prints for the commit:
//!
//! ```text
//! git show --numstat --format= -M --diff-merges=first-parent --diff-algorithm=myers --no-textconv <sha>
//! ```
//!
//! A binary file (`-` in numstat) is one file with 0 lines added and deleted. A renamed file keeps
//! its history (authors, changes, last change) under its new path, and a path is the same file on
//! every branch; a file deleted and later added again starts a new history.
//!
//! # The metrics
//!
//! The *touched files* of a commit are its `commit_files/` rows. Times are committer times (the
//! order the history is read in); an author is identified by the lower-cased author e-mail
//! (`%ae`, no mailmap). Empty commits and merges count as commits of their author.
//!
//! | column | Kamei | definition |
//! |---|---|---|
//! | `ns` | NS | distinct subsystems of the touched paths (after the change): the first path component, `""` for a file at the root |
//! | `nd` | ND | distinct directories of the touched paths (after the change), `""` for the root |
//! | `nf` | NF | touched files |
//! | `entropy` | Entropy | Shannon entropy (base 2) of the distribution of modified lines (added + deleted) over the touched files, divided by log2(`nf`); 0 when `nf` ≤ 1 or no line changed |
//! | `la` | LA | lines added, summed over the touched files |
//! | `ld` | LD | lines deleted, summed over the touched files |
//! | `lt` | LT | mean over the touched files of their line count in the first parent (0 for a new file, 0 for a binary one). Counted from numstat by blob (`--raw --no-abbrev` ids): a blob has the lines of the blob its diff started from, plus added, minus deleted, so it is exact on every branch and across renames |
//! | `fix` | FIX | the message (subject and body) matches [`FIX_PATTERN`] |
//! | `ndev` | NDEV | distinct authors of the earlier commits that touched any touched file |
//! | `age` | AGE | mean over the touched files of the days from the file's last earlier change to this commit (0 for a new file; never negative) |
//! | `nuc` | NUC | distinct earlier commits that touched any touched file |
//! | `exp` | EXP | the author's earlier commits |
//! | `rexp` | REXP | the author's earlier commits, each weighted 1/(1 + n) where n is how many whole years (365.25 days) before this commit it was made |
//! | `sexp` | SEXP | the author's earlier commits that touched any of this commit's subsystems |

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;

use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, TimeUnit, TimeZone};
use regex::Regex;

use crate::ingest::conform;
use crate::mask::Masker;
use crate::schema::{COMMIT_FILES, COMMITS};
use crate::{Error, Result};

/// What to read from a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// A revision range such as `A..B` (anything `git rev-list` takes): only its commits are
    /// output, with metrics computed over all the history behind them. `None`: every commit
    /// reachable from `HEAD`.
    pub range: Option<String>,
}

/// The rows read from a repository: `commits/` and `commit_files/` frames with the columns of
/// [`COMMITS`] and [`COMMIT_FILES`] (no `service` column; the caller adds the partition key).
#[derive(Debug, Clone)]
pub struct CommitTables {
    pub commits: DataFrame,
    pub commit_files: DataFrame,
}

/// The bug-fix pattern of `fix`: case-insensitive (ASCII), whole words, over the full message.
pub const FIX_PATTERN: &str = r"(?i-u)\b(fix(e[ds]|ing)?|bugs?|defects?|patch(e[ds])?|faults?|errors?|crash(e[ds])?|issue\s*#?\d+|resolve[ds]?|close[ds]?)\b";

static FIX: LazyLock<Regex> = LazyLock::new(|| Regex::new(FIX_PATTERN).expect("static regex"));

/// Seconds in a year of 365.25 days, for `rexp`.
const YEAR_SECS: i64 = 31_557_600;

/// Reads the commits of the git repository at `repo` (a work tree, any directory in it, or a
/// bare repository) as `commits/` and `commit_files/` rows. Author e-mails are masked with
/// `masker.mask`, messages with `masker.mask_text`.
///
/// Fails naming the path when it is not a git repository, naming the range when `git rev-list`
/// rejects it. A repository without commits gives empty tables.
pub fn read_commits(repo: &Path, opts: &CommitOptions, masker: &Masker) -> Result<CommitTables> {
    let git = Git::open(repo)?;
    let (revs, wanted) = match &opts.range {
        Some(range) => {
            let shas = git.rev_list(range)?;
            if shas.is_empty() {
                return Rows::default().finish();
            }
            let mut stdin = Vec::with_capacity(shas.len() * 41);
            for s in &shas {
                stdin.extend_from_slice(s);
                stdin.push(b'\n');
            }
            (Revs::Stdin(stdin), Some(shas.into_iter().collect::<HashSet<_>>()))
        }
        None => {
            if !git.has_head()? {
                return Rows::default().finish();
            }
            (Revs::Head, None)
        }
    };
    let log = git.log(revs)?;
    let mut history = History::default();
    let mut rows = Rows::default();
    for commit in LogParser::new(&log) {
        let commit = commit.map_err(|m| Error::input(git.label(), m))?;
        let metrics = history.apply(&commit);
        if wanted.as_ref().is_none_or(|w| w.contains(commit.sha)) {
            rows.push(&commit, &metrics, masker);
        }
    }
    tracing::debug!(repo = %git.label(), commits = rows.sha.len(), "read commits");
    rows.finish()
}

// ---------------------------------------------------------------------------------------------
// Running git

/// Which commits `git log` walks.
enum Revs {
    Head,
    /// Commit ids, one a line, for `--stdin`.
    Stdin(Vec<u8>),
}

/// The git CLI pointed at one repository, independent of the caller's environment and of system
/// or user settings that would change what it prints.
struct Git<'a> {
    repo: &'a Path,
}

impl<'a> Git<'a> {
    /// Checks that `repo` is a directory inside a git repository.
    fn open(repo: &'a Path) -> Result<Self> {
        let git = Git { repo };
        if !repo.is_dir() {
            return Err(Error::input(git.label(), "not a git repository: no such directory"));
        }
        let out = git.run(&["rev-parse", "--git-dir"], None)?;
        if !out.status.success() {
            return Err(Error::input(git.label(), format!("not a git repository ({})", first_line(&out.stderr))));
        }
        Ok(git)
    }

    fn label(&self) -> String {
        self.repo.display().to_string()
    }

    fn command(&self) -> Command {
        let mut c = Command::new("git");
        c.arg("--no-pager");
        for kv in ["core.quotepath=off", "log.showSignature=false", "color.ui=false"] {
            c.arg("-c").arg(kv);
        }
        c.arg("-C").arg(self.repo);
        c.env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_COMMON_DIR")
            .env_remove("GIT_INDEX_FILE");
        c
    }

    /// Runs `git <args>`, feeding `stdin` if given, and collects its output.
    fn run(&self, args: &[&str], stdin: Option<Vec<u8>>) -> Result<Output> {
        let command = format!("git {}", args.join(" "));
        let spawn_err = |e: std::io::Error| Error::Command {
            command: command.clone(),
            message: format!("cannot run git in {}: {e}", self.label()),
        };
        let mut c = self.command();
        c.args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(spawn_err)?;
        let writer = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
                // A write error means git exited early; its status says why.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let out = child.wait_with_output().map_err(spawn_err)?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(out)
    }

    /// Whether `HEAD` names a commit (false in a repository without commits).
    fn has_head(&self) -> Result<bool> {
        Ok(self.run(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], None)?.status.success())
    }

    /// The commit ids `git rev-list RANGE` lists.
    fn rev_list(&self, range: &str) -> Result<Vec<Vec<u8>>> {
        let bad = |why: &str| Error::input(self.label(), format!("invalid revision range `{range}`: {why}"));
        if range.trim().is_empty() || range.starts_with('-') {
            return Err(bad("must be a revision range such as `A..B`"));
        }
        let out = self.run(&["rev-list", "--end-of-options", range, "--"], None)?;
        if !out.status.success() {
            return Err(bad(&first_line(&out.stderr)));
        }
        Ok(out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
    }

    /// The raw `git log` output that [`LogParser`] reads.
    fn log(&self, revs: Revs) -> Result<Vec<u8>> {
        let mut args = vec![
            "log",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--no-show-signature",
            "--no-relative",
            "--no-notes",
            "--encoding=UTF-8",
            "--reverse",
            "--date-order",
            "--root",
            "--diff-merges=first-parent",
            "-M",
            "--diff-algorithm=myers",
            "--raw",
            "--no-abbrev",
            "--numstat",
            "-z",
            "--format=%x01%H%x00%P%x00%at%x00%ct%x00%ae%x00%B%x00",
        ];
        let stdin = match revs {
            Revs::Head => {
                args.push("HEAD");
                None
            }
            Revs::Stdin(bytes) => {
                args.push("--stdin");
                Some(bytes)
            }
        };
        args.push("--");
        let out = self.run(&args, stdin)?;
        if !out.status.success() {
            return Err(Error::input(self.label(), format!("git log failed: {}", first_line(&out.stderr))));
        }
        Ok(out.stdout)
    }
}

/// The first non-empty line of git's stderr, without git's `fatal: ` prefix.
fn first_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let line = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("git gave no reason");
    line.strip_prefix("fatal: ").or_else(|| line.strip_prefix("error: ")).unwrap_or(line).to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsing `git log -z --raw --numstat --format=…`
//
// Per commit: `\x01 sha \0 parents \0 author-time \0 commit-time \0 email \0 message \0`, the `\0`
// that ends a commit's header in `-z` mode, then, when the diff is not empty, `\n`, one raw entry
// per file (`:modes ids STATUS\0path\0`, or `…R086\0old\0new\0`), and one numstat entry per file
// in the same order (`added\tdeleted\tpath\0`, or `added\tdeleted\t\0old\0new\0`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Copied,
}

impl ChangeKind {
    fn from_status(status: u8) -> Self {
        match status {
            b'A' => ChangeKind::Added,
            b'D' => ChangeKind::Deleted,
            b'R' => ChangeKind::Renamed,
            b'C' => ChangeKind::Copied,
            _ => ChangeKind::Modified,
        }
    }

    /// The `change_kind` column. A copy (only reported with `-C`, which omen does not ask for)
    /// is an added file whose `old_path` names the source.
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added | ChangeKind::Copied => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
        }
    }
}

#[derive(Debug)]
struct RawFile<'a> {
    path: &'a [u8],
    old_path: Option<&'a [u8]>,
    kind: ChangeKind,
    /// Blob ids before and after (see [`blob_id`]); `None` when absent or unknown.
    old_blob: Option<BlobId>,
    new_blob: Option<BlobId>,
    added: u64,
    deleted: u64,
    binary: bool,
}

#[derive(Debug)]
struct RawCommit<'a> {
    sha: &'a [u8],
    parents: usize,
    /// The parent ids as git printed them, space-separated (first parent first).
    parent_list: &'a [u8],
    author_time: i64,
    commit_time: i64,
    email: &'a [u8],
    message: &'a [u8],
    files: Vec<RawFile<'a>>,
}

struct RawEntry<'a> {
    status: u8,
    path: &'a [u8],
    old_blob: Option<BlobId>,
    new_blob: Option<BlobId>,
}

/// A blob id (SHA-1 or SHA-256), zero-padded.
type BlobId = [u8; 32];

/// The id of a full-length hex object name; `None` for the null id (no file on that side) and
/// for anything that is not one.
fn blob_id(hex: &[u8]) -> Option<BlobId> {
    if !matches!(hex.len(), 40 | 64) || hex.iter().all(|&b| b == b'0') {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        id[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(id)
}

struct Numstat<'a> {
    path: &'a [u8],
    old_path: Option<&'a [u8]>,
    /// `None` for a binary file (`-`).
    lines: Option<(u64, u64)>,
}

/// Reads commits out of the log output; stops at the first malformed one.
struct LogParser<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for LogParser<'a> {
    type Item = std::result::Result<RawCommit<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while matches!(self.peek(), Some(b'\0' | b'\n')) {
            self.pos += 1;
        }
        self.peek()?;
        let c = self.commit();
        self.failed = c.is_err();
        Some(c)
    }
}

impl<'a> LogParser<'a> {
    fn new(buf: &'a [u8]) -> Self {
        LogParser { buf, pos: 0, failed: false }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The bytes up to the next NUL, which is consumed.
    fn field(&mut self, what: &str) -> std::result::Result<&'a [u8], String> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match memchr::memchr(0, rest) {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(format!("git log output ends inside a {what} at byte {}", self.pos)),
        }
    }

    fn commit(&mut self) -> std::result::Result<RawCommit<'a>, String> {
        let start = self.pos;
        if self.peek() != Some(0x01) {
            return Err(format!("unexpected git log output at byte {start}: no commit header"));
        }
        self.pos += 1;
        let sha = self.field("commit id")?;
        if sha.is_empty() || !sha.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("unexpected git log output at byte {start}: bad commit id"));
        }
        let sha_text = String::from_utf8_lossy(sha).into_owned();
        let parent_list = self.field("parent list")?;
        let parents = parent_list.split(|b| *b == b' ').filter(|p| !p.is_empty()).count();
        let author_time =
            parse_int(self.field("author time")?).ok_or_else(|| format!("commit {sha_text}: bad author time"))?;
        let commit_time =
            parse_int(self.field("commit time")?).ok_or_else(|| format!("commit {sha_text}: bad commit time"))?;
        let email = self.field("author e-mail")?;
        let message = self.field("message")?;
        if self.peek() == Some(b'\0') {
            self.pos += 1;
        }
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }

        let mut raw = Vec::new();
        while self.peek() == Some(b':') {
            // `:old-mode new-mode old-blob new-blob STATUS`
            let header = self.field("raw diff entry")?;
            let mut words = header.split(|b| *b == b' ').skip(2);
            let old_blob = words.next().and_then(blob_id);
            let new_blob = words.next().and_then(blob_id);
            let status = words.next().and_then(|s| s.first()).copied().unwrap_or(b'M');
            let first = self.field("path")?;
            let path = if matches!(status, b'R' | b'C') { self.field("path")? } else { first };
            raw.push(RawEntry { status, path, old_blob, new_blob });
        }
        let mut stats = Vec::with_capacity(raw.len());
        while matches!(self.peek(), Some(b'0'..=b'9' | b'-')) {
            let entry = self.field("numstat entry")?;
            let mut parts = entry.splitn(3, |b| *b == b'\t');
            let (Some(a), Some(d), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("commit {sha_text}: malformed numstat entry"));
            };
            let lines = if a == b"-" && d == b"-" {
                None
            } else {
                let count = |v: &[u8]| parse_int(v).and_then(|v| u64::try_from(v).ok());
                match (count(a), count(d)) {
                    (Some(a), Some(d)) => Some((a, d)),
                    _ => return Err(format!("commit {sha_text}: bad numstat line counts")),
                }
            };
            let (path, old_path) = if p.is_empty() {
                let old = self.field("path")?;
                (self.field("path")?, Some(old))
            } else {
                (p, None)
            };
            stats.push(Numstat { path, old_path, lines });
        }
        if !matches!(self.peek(), None | Some(0x01 | b'\0' | b'\n')) {
            return Err(format!("commit {sha_text}: unexpected git log output at byte {}", self.pos));
        }

        Ok(RawCommit { sha, parents, parent_list, author_time, commit_time, email, message, files: pair(raw, stats) })
    }
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// One file per numstat entry (numstat is what `la`, `ld` and `nf` must agree with), its kind
/// from the raw entry. Both lists come from the same diff in the same order; matching by path is
/// the fallback should they ever not line up.
fn pair<'a>(raw: Vec<RawEntry<'a>>, stats: Vec<Numstat<'a>>) -> Vec<RawFile<'a>> {
    let aligned = raw.len() == stats.len() && raw.iter().zip(&stats).all(|(r, s)| r.path == s.path);
    let by_path: HashMap<&[u8], &RawEntry<'a>> =
        if aligned { HashMap::new() } else { raw.iter().map(|r| (r.path, r)).collect() };
    stats
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let entry = if aligned { raw.get(i) } else { by_path.get(s.path).copied() };
            let (old_blob, new_blob) = entry.map_or((None, None), |r| (r.old_blob, r.new_blob));
            let kind = match entry.map(|r| r.status) {
                Some(st) => ChangeKind::from_status(st),
                None if s.old_path.is_some() => ChangeKind::Renamed,
                None => ChangeKind::Modified,
            };
            let old_path = if matches!(kind, ChangeKind::Renamed | ChangeKind::Copied) { s.old_path } else { None };
            let (added, deleted) = s.lines.unwrap_or((0, 0));
            RawFile { path: s.path, old_path, kind, old_blob, new_blob, added, deleted, binary: s.lines.is_none() }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The metrics

#[derive(Debug, Clone, Default, PartialEq)]
struct Metrics {
    ns: i64,
    nd: i64,
    nf: i64,
    entropy: f64,
    la: i64,
    ld: i64,
    lt: f64,
    ndev: i64,
    age: f64,
    nuc: i64,
    exp: f64,
    rexp: f64,
    sexp: f64,
}

/// What is known of one file (followed across renames) from the commits read so far. A path is
/// the same file on every branch: a merge that brings in a file a branch added or renamed
/// continues that file's history.
#[derive(Debug, Clone, Default)]
struct FileState {
    /// Committer time of the last commit that touched it.
    last_time: i64,
    /// Authors who touched it, sorted.
    authors: Vec<u32>,
    /// Indexes of the commits that touched it, ascending.
    commits: Vec<u32>,
}

#[derive(Debug, Default)]
struct AuthorState {
    /// Committer times of the author's commits, sorted.
    times: Vec<i64>,
    /// Indexes of the author's commits per subsystem, ascending.
    by_subsystem: HashMap<u32, Vec<u32>>,
}

/// The history read so far, indexed for the metrics of the next commit.
#[derive(Debug, Default)]
struct History {
    files: Vec<FileState>,
    /// Lines of every blob seen, by id (0 for a binary blob). Line counts follow blobs, not
    /// paths: the lines of a file before a change are those of the blob the diff starts from,
    /// which an earlier diff (along the first-parent chain) produced, so they are exact on every
    /// branch and across renames.
    blob_lines: HashMap<BlobId, u64>,
    /// Paths that exist now, to their file.
    live: HashMap<Box<[u8]>, u32>,
    author_ids: HashMap<String, u32>,
    authors: Vec<AuthorState>,
    subsystems: HashMap<Box<[u8]>, u32>,
    /// Scratch marks for counting unions without allocating (see [`union_len`]).
    commit_mark: Vec<u32>,
    subsystem_mark: Vec<u32>,
    author_mark: Vec<u32>,
}

impl History {
    /// The metrics of `c` from the commits before it, then `c` added to the history.
    fn apply(&mut self, c: &RawCommit<'_>) -> Metrics {
        let idx = u32::try_from(self.commit_mark.len()).unwrap_or(u32::MAX);
        let mark = idx.saturating_add(1);
        self.commit_mark.push(0);
        self.subsystem_mark.push(0);
        let t = c.commit_time;

        let email = String::from_utf8_lossy(c.email).to_lowercase();
        let next_author = u32::try_from(self.authors.len()).unwrap_or(u32::MAX);
        let author = *self.author_ids.entry(email).or_insert(next_author);
        if author == next_author {
            self.authors.push(AuthorState::default());
            self.author_mark.push(0);
        }

        // Each touched file's state before this commit.
        let prior: Vec<Option<u32>> = c
            .files
            .iter()
            .map(|f| match f.kind {
                // Known only when a branch merged here added it first.
                ChangeKind::Added => self.live.get(f.path).copied(),
                // The new path is known instead when a merged branch renamed it first.
                ChangeKind::Renamed | ChangeKind::Copied => {
                    f.old_path.and_then(|p| self.live.get(p)).or_else(|| self.live.get(f.path)).copied()
                }
                ChangeKind::Modified | ChangeKind::Deleted => self.live.get(f.path).copied(),
            })
            .collect();

        let mut subsystems: Vec<u32> = Vec::new();
        let mut dirs: HashSet<&[u8]> = HashSet::new();
        for f in &c.files {
            let sub = match memchr::memchr(b'/', f.path) {
                Some(i) => &f.path[..i],
                None => &b""[..],
            };
            let id = match self.subsystems.get(sub) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.subsystems.len()).unwrap_or(u32::MAX);
                    self.subsystems.insert(sub.into(), id);
                    id
                }
            };
            if !subsystems.contains(&id) {
                subsystems.push(id);
            }
            dirs.insert(match memchr::memrchr(b'/', f.path) {
                Some(i) => &f.path[..i],
                None => &b""[..],
            });
        }

        let nf = c.files.len();
        let la: u64 = c.files.iter().map(|f| f.added).sum();
        let ld: u64 = c.files.iter().map(|f| f.deleted).sum();
        let states = || prior.iter().flatten().map(|&i| &self.files[i as usize]);
        let per_file = |sum: f64| if nf == 0 { 0.0 } else { sum / nf as f64 };
        let lines_before: Vec<u64> =
            c.files.iter().map(|f| f.old_blob.and_then(|b| self.blob_lines.get(&b)).copied().unwrap_or(0)).collect();
        let lt = per_file(lines_before.iter().map(|&l| l as f64).sum());
        let age = per_file(states().map(|s| t.saturating_sub(s.last_time).max(0) as f64 / 86_400.0).sum());

        let mut lists: Vec<&[u32]> = states().map(|s| s.authors.as_slice()).collect();
        let ndev = union_len(&mut lists, &mut self.author_mark, mark);
        let mut lists: Vec<&[u32]> = states().map(|s| s.commits.as_slice()).collect();
        let nuc = union_len(&mut lists, &mut self.commit_mark, mark);

        let me = &self.authors[author as usize];
        let exp = me.times.len();
        let rexp = rexp(&me.times, t);
        let mut lists: Vec<&[u32]> =
            subsystems.iter().filter_map(|s| me.by_subsystem.get(s)).map(Vec::as_slice).collect();
        let sexp = union_len(&mut lists, &mut self.subsystem_mark, mark);

        let metrics = Metrics {
            ns: subsystems.len() as i64,
            nd: dirs.len() as i64,
            nf: nf as i64,
            entropy: entropy(c.files.iter().map(|f| f.added.saturating_add(f.deleted))),
            la: i64::try_from(la).unwrap_or(i64::MAX),
            ld: i64::try_from(ld).unwrap_or(i64::MAX),
            lt,
            ndev: ndev as i64,
            age,
            nuc: nuc as i64,
            exp: exp as f64,
            rexp,
            sexp: sexp as f64,
        };

        // Add the commit to the history.
        for ((f, p), before) in c.files.iter().zip(&prior).zip(lines_before) {
            if let Some(blob) = f.new_blob {
                let after = if f.binary { 0 } else { before.saturating_add(f.added).saturating_sub(f.deleted) };
                self.blob_lines.entry(blob).or_insert(after);
            }
            let id = match (*p, f.kind) {
                (Some(src), ChangeKind::Copied) => {
                    let copy = self.files[src as usize].clone();
                    self.files.push(copy);
                    (self.files.len() - 1) as u32
                }
                (Some(id), _) => id,
                (None, _) => {
                    self.files.push(FileState::default());
                    (self.files.len() - 1) as u32
                }
            };
            if f.kind == ChangeKind::Renamed
                && let Some(old) = f.old_path
            {
                self.live.remove(old);
            }
            let s = &mut self.files[id as usize];
            s.last_time = t;
            if let Err(at) = s.authors.binary_search(&author) {
                s.authors.insert(at, author);
            }
            if s.commits.last() != Some(&idx) {
                s.commits.push(idx);
            }
            if f.kind == ChangeKind::Deleted {
                self.live.remove(f.path);
            } else if self.live.get(f.path) != Some(&id) {
                self.live.insert(f.path.into(), id);
            }
        }
        let me = &mut self.authors[author as usize];
        let at = me.times.partition_point(|&x| x <= t);
        me.times.insert(at, t);
        for s in subsystems {
            me.by_subsystem.entry(s).or_default().push(idx);
        }
        metrics
    }
}

/// The number of distinct values in the sorted `lists`. `marks[v]` is scratch space for every
/// value `v`; `mark` must differ from every mark used before with the same `marks`. Costs the
/// lengths of all lists but the longest, times log of the longest: a file touched by every
/// commit does not make the history quadratic.
fn union_len(lists: &mut [&[u32]], marks: &mut [u32], mark: u32) -> usize {
    lists.sort_unstable_by_key(|l| std::cmp::Reverse(l.len()));
    let Some((longest, rest)) = lists.split_first() else { return 0 };
    let mut n = longest.len();
    for list in rest {
        for &v in *list {
            if longest.binary_search(&v).is_ok() {
                continue;
            }
            if let Some(m) = marks.get_mut(v as usize)
                && *m != mark
            {
                *m = mark;
                n += 1;
            }
        }
    }
    n
}

/// Normalised Shannon entropy of the modified lines per file.
fn entropy(changed: impl Iterator<Item = u64>) -> f64 {
    let changed: Vec<u64> = changed.collect();
    let total: f64 = changed.iter().map(|&c| c as f64).sum();
    if changed.len() <= 1 || total <= 0.0 {
        return 0.0;
    }
    let h: f64 = changed
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum();
    h / (changed.len() as f64).log2()
}

/// Σ over `times` (sorted) of 1/(1 + whole years from that time to `t`); times after `t` count
/// as this year.
fn rexp(times: &[i64], t: i64) -> f64 {
    // Whole years back, bucket by bucket, jumping over empty years: each turn consumes the bucket
    // of the latest time left, so the loop ends after at most `times.len() + 1` turns.
    let (t, year) = (i128::from(t), i128::from(YEAR_SECS));
    let mut sum = 0.0;
    let mut hi = times.len();
    let mut k: i128 = 0;
    while hi > 0 {
        let lower = t - (k + 1) * year;
        let lo = times[..hi].partition_point(|&x| i128::from(x) <= lower);
        sum += (hi - lo) as f64 / (k + 1) as f64;
        hi = lo;
        if let Some(&prev) = times[..hi].last() {
            k = (t - i128::from(prev)) / year;
        }
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Rows

#[derive(Default)]
struct Rows {
    sha: Vec<String>,
    ts: Vec<i64>,
    committed_at: Vec<i64>,
    author: Vec<String>,
    message: Vec<String>,
    parents: Vec<i32>,
    parent_shas: Vec<String>,
    ns: Vec<i64>,
    nd: Vec<i64>,
    nf: Vec<i64>,
    entropy: Vec<f64>,
    la: Vec<i64>,
    ld: Vec<i64>,
    lt: Vec<f64>,
    fix: Vec<bool>,
    ndev: Vec<i64>,
    age: Vec<f64>,
    nuc: Vec<i64>,
    exp: Vec<f64>,
    rexp: Vec<f64>,
    sexp: Vec<f64>,
    file_sha: Vec<String>,
    path: Vec<String>,
    old_path: Vec<Option<String>>,
    lines_added: Vec<i64>,
    lines_deleted: Vec<i64>,
    change_kind: Vec<&'static str>,
    is_binary: Vec<bool>,
}

impl Rows {
    fn push(&mut self, c: &RawCommit<'_>, m: &Metrics, masker: &Masker) {
        let sha = String::from_utf8_lossy(c.sha).into_owned();
        let message = String::from_utf8_lossy(c.message);
        let message = message.trim_end_matches('\n');
        let email = String::from_utf8_lossy(c.email).to_lowercase();
        self.ts.push(c.author_time.saturating_mul(1_000_000));
        self.committed_at.push(c.commit_time.saturating_mul(1_000_000));
        self.author.push(masker.mask(&email));
        self.fix.push(FIX.is_match(message));
        self.message.push(masker.mask_text(message));
        self.parents.push(i32::try_from(c.parents).unwrap_or(i32::MAX));
        self.parent_shas.push(String::from_utf8_lossy(c.parent_list).trim().to_owned());
        self.ns.push(m.ns);
        self.nd.push(m.nd);
        self.nf.push(m.nf);
        self.entropy.push(m.entropy);
        self.la.push(m.la);
        self.ld.push(m.ld);
        self.lt.push(m.lt);
        self.ndev.push(m.ndev);
        self.age.push(m.age);
        self.nuc.push(m.nuc);
        self.exp.push(m.exp);
        self.rexp.push(m.rexp);
        self.sexp.push(m.sexp);
        for f in &c.files {
            self.file_sha.push(sha.clone());
            self.path.push(String::from_utf8_lossy(f.path).into_owned());
            self.old_path.push(f.old_path.map(|p| String::from_utf8_lossy(p).into_owned()));
            self.lines_added.push(i64::try_from(f.added).unwrap_or(i64::MAX));
            self.lines_deleted.push(i64::try_from(f.deleted).unwrap_or(i64::MAX));
            self.change_kind.push(f.kind.as_str());
            self.is_binary.push(f.binary);
        }
        self.sha.push(sha);
    }

    fn finish(self) -> Result<CommitTables> {
        let commits = DataFrame::new_infer_height(vec![
            Column::new("sha".into(), self.sha),
            timestamps("ts", self.ts),
            timestamps("committed_at", self.committed_at),
            Column::new("author".into(), self.author),
            Column::new("message".into(), self.message),
            Column::new("parents".into(), self.parents),
            Column::new("parent_shas".into(), self.parent_shas),
            Column::new("ns".into(), self.ns),
            Column::new("nd".into(), self.nd),
            Column::new("nf".into(), self.nf),
            Column::new("entropy".into(), self.entropy),
            Column::new("la".into(), self.la),
            Column::new("ld".into(), self.ld),
            Column::new("lt".into(), self.lt),
            Column::new("fix".into(), self.fix),
            Column::new("ndev".into(), self.ndev),
            Column::new("age".into(), self.age),
            Column::new("nuc".into(), self.nuc),
            Column::new("exp".into(), self.exp),
            Column::new("rexp".into(), self.rexp),
            Column::new("sexp".into(), self.sexp),
        ])?;
        let commit_files = DataFrame::new_infer_height(vec![
            Column::new("sha".into(), self.file_sha),
            Column::new("path".into(), self.path),
            Column::new("old_path".into(), self.old_path),
            Column::new("lines_added".into(), self.lines_added),
            Column::new("lines_deleted".into(), self.lines_deleted),
            Column::new("change_kind".into(), self.change_kind),
            Column::new("is_binary".into(), self.is_binary),
        ])?;
        Ok(CommitTables { commits: conform(commits, &COMMITS)?, commit_files: conform(commit_files, &COMMIT_FILES)? })
    }
}

/// A UTC microsecond timestamp column from microseconds since the epoch.
fn timestamps(name: &str, us: Vec<i64>) -> Column {
    Int64Chunked::from_vec(name.into(), us).into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_column()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Three commits as `git log` prints them: two added files (one binary), an empty commit, a
    /// rename.
    fn log() -> Vec<u8> {
        let (none, x, y) = ("0".repeat(40), "1".repeat(40), "2".repeat(40));
        format!(
            "\x01aa\0\x001\x001\0A@x\0init\n\0\0\n\
             :000000 100644 {none} {x} A\0d/x\0:000000 100644 {none} {y} A\0f one\0\
             2\t0\td/x\0-\t-\tf one\0\
             \x01bb\0aa\x002\x002\0b@x\0empty\n\0\0\
             \x01cc\0bb\x003\x003\0b@x\0mv\n\0\0\n\
             :100644 100644 {x} {x} R100\0d/x\0e/y\0\
             0\t0\t\0d/x\0e/y\0"
        )
        .into_bytes()
    }

    #[test]
    fn parses_files_renames_binaries_and_empty_commits() {
        let log = log();
        let commits: Vec<_> = LogParser::new(&log).collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].sha, b"aa");
        assert_eq!(commits[0].parents, 0);
        assert_eq!(commits[0].files.len(), 2);
        assert!(commits[0].files[1].binary);
        assert_eq!(commits[0].files[1].path, b"f one");
        assert_eq!(commits[1].parents, 1);
        assert!(commits[1].files.is_empty());
        let mv = &commits[2].files[0];
        assert_eq!((mv.kind, mv.old_path, mv.path), (ChangeKind::Renamed, Some(&b"d/x"[..]), &b"e/y"[..]));
    }

    #[test]
    fn a_rename_keeps_the_history_of_its_file() {
        let mut h = History::default();
        let log = log();
        let commits: Vec<_> = LogParser::new(&log).collect::<std::result::Result<_, _>>().unwrap();
        let m: Vec<Metrics> = commits.iter().map(|c| h.apply(c)).collect();
        assert_eq!(m[2].lt, 2.0);
        assert_eq!((m[2].nuc, m[2].ndev), (1, 1));
        assert_eq!(m[2].exp, 1.0);
    }

    #[test]
    fn unions_count_each_value_once() {
        let mut marks = vec![0; 10];
        let (a, b, c) = ([1, 2, 3, 4], [2, 5], [5, 6]);
        assert_eq!(union_len(&mut [&a[..], &b[..], &c[..]], &mut marks, 1), 6);
        assert_eq!(union_len(&mut [&b[..], &c[..]], &mut marks, 2), 3);
        assert_eq!(union_len(&mut [], &mut marks, 3), 0);
    }

    #[test]
    fn entropy_is_normalised() {
        assert_eq!(entropy([5].into_iter()), 0.0);
        assert_eq!(entropy([0, 0].into_iter()), 0.0);
        assert!((entropy([1, 1].into_iter()) - 1.0).abs() < 1e-12);
        assert!((entropy([3, 1].into_iter()) - 0.811_278_124_459_132_8).abs() < 1e-12);
    }

    #[test]
    fn rexp_weights_by_whole_years() {
        let day = 86_400;
        let t = 1000 * day;
        assert_eq!(rexp(&[], t), 0.0);
        assert_eq!(rexp(&[t - day, t], t), 2.0);
        assert!(
            (rexp(&[t - 800 * day, t - 400 * day, t - 10 * day, t + day], t) - (1.0 / 3.0 + 0.5 + 2.0)).abs() < 1e-12
        );
        let far = 1.0 / (1.0 + ((i128::from(t) - i128::from(i64::MIN)) / i128::from(YEAR_SECS)) as f64);
        assert!((rexp(&[i64::MIN, t], t) - (1.0 + far)).abs() < 1e-12);
        assert_eq!(
            rexp(&[i64::MIN, i64::MAX], i64::MAX),
            1.0 + 1.0 / (1.0 + ((i128::from(i64::MAX) - i128::from(i64::MIN)) / i128::from(YEAR_SECS)) as f64)
        );
    }

    #[test]
    fn the_fix_pattern_matches_words() {
        for m in ["Fix crash", "fixes #12", "bug in parser", "Closes issue #7", "resolved a FAULT"] {
            assert!(FIX.is_match(m), "{m}");
        }
        for m in ["prefix the suffix", "debugger support", "add feature"] {
            assert!(!FIX.is_match(m), "{m}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut h = History::default();
            for c in LogParser::new(&bytes).flatten() {
                h.apply(&c);
            }
        }

        #[test]
        fn mutated_logs_parse_without_panicking(at in 0..log().len(), b in any::<u8>()) {
            let mut log = log();
            log[at] = b;
            let mut h = History::default();
            for c in LogParser::new(&log).flatten() {
                h.apply(&c);
            }
        }
    }
}
