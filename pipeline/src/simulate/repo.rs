//! One git repository per service: a file tree of code, tests, docs, configuration, dependency
//! manifests, migrations and binary assets; authors who join over time; commits of varied kind
//! and size. The history is generated in memory and written by one `git fast-import` with fixed
//! author and committer dates, so the same seed gives the same commit ids.
//!
//! Every line of every text file is unique in the repository (it carries a counter), so a change
//! that deletes a block of `ld` lines and inserts a block of `la` new ones is exactly what
//! `git show --numstat` reports: the longest common subsequence is the untouched lines.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use regex::Regex;

use super::rng::Rng;
use super::traffic::{US_PER_DAY, US_PER_HOUR, US_PER_S, weekday};
use crate::error::{Error, Result};

static FIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(omen_features::ingest::commits::FIX_PATTERN).expect("static regex"));

/// Programming language of a service: file extensions and manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Go,
    Python,
    TypeScript,
}

impl Language {
    const ALL: [Language; 4] = [Language::Rust, Language::Go, Language::Python, Language::TypeScript];

    fn ext(self) -> &'static str {
        match self {
            Language::Rust => "rs",
            Language::Go => "go",
            Language::Python => "py",
            Language::TypeScript => "ts",
        }
    }

    fn manifests(self) -> (&'static str, &'static str) {
        match self {
            Language::Rust => ("Cargo.toml", "Cargo.lock"),
            Language::Go => ("go.mod", "go.sum"),
            Language::Python => ("pyproject.toml", "poetry.lock"),
            Language::TypeScript => ("package.json", "package-lock.json"),
        }
    }

    fn test_path(self, sub: &str, module: &str) -> String {
        match self {
            Language::Rust => format!("tests/{sub}_{module}.rs"),
            Language::Go => format!("{sub}/{module}_test.go"),
            Language::Python => format!("tests/test_{sub}_{module}.py"),
            Language::TypeScript => format!("{sub}/{module}.test.ts"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Go => "go",
            Language::Python => "python",
            Language::TypeScript => "typescript",
        }
    }
}

/// What a text line looks like, by the kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Code(Language),
    Lock,
    Sql,
    Docs,
    Yaml,
    Toml,
}

fn render_line(flavor: Flavor, id: u64, out: &mut Vec<u8>) {
    let r = match flavor {
        Flavor::Code(Language::Rust) => writeln!(out, "    let v{id:x} = step(v);"),
        Flavor::Code(Language::Go) => writeln!(out, "\tv{id:x} := step(v)"),
        Flavor::Code(Language::Python) => writeln!(out, "    v{id:x} = step(v)"),
        Flavor::Code(Language::TypeScript) => writeln!(out, "  const v{id:x} = step(v);"),
        Flavor::Lock => writeln!(out, "dep-{id:x} = \"1.{}.{}\"", id % 37, id % 11),
        Flavor::Sql => writeln!(out, "ALTER TABLE t{} ADD COLUMN c_{id:x} INTEGER;", id % 13),
        Flavor::Docs => writeln!(out, "Paragraph {id:x}: how the service behaves here."),
        Flavor::Yaml => writeln!(out, "key_{id:x}: {}", id % 1000),
        Flavor::Toml => writeln!(out, "key_{id:x} = {}", id % 1000),
    };
    r.expect("writing to a Vec");
}

/// The content of a file.
#[derive(Debug, Clone)]
enum Content {
    Text { flavor: Flavor, lines: Vec<u64> },
    Binary(Vec<u8>),
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Text { flavor, lines } => {
                let mut out = Vec::with_capacity(lines.len() * 32);
                for &l in lines {
                    render_line(*flavor, l, &mut out);
                }
                out
            }
            Content::Binary(b) => b.clone(),
        }
    }
}

/// A developer of the service.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
    /// From when the author commits, µs.
    pub joined: i64,
    /// Relative activity.
    pub weight: f64,
}

/// What a commit is about; decides its files, size and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Import,
    Feature,
    Fix,
    Refactor,
    Deps,
    Migration,
    Config,
    Docs,
    Test,
    Asset,
    Cleanup,
    Rename,
}

const KINDS: [(ChangeKind, f64); 11] = [
    (ChangeKind::Feature, 0.38),
    (ChangeKind::Fix, 0.20),
    (ChangeKind::Refactor, 0.08),
    (ChangeKind::Deps, 0.07),
    (ChangeKind::Migration, 0.05),
    (ChangeKind::Config, 0.07),
    (ChangeKind::Docs, 0.06),
    (ChangeKind::Test, 0.05),
    (ChangeKind::Asset, 0.02),
    (ChangeKind::Cleanup, 0.01),
    (ChangeKind::Rename, 0.01),
];

/// One file of a commit, as `git show --numstat` will count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDelta {
    pub path: String,
    pub added: u64,
    pub deleted: u64,
    pub binary: bool,
}

/// One generated commit, with the change metrics it was built to have.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// Author and committer time, µs (whole seconds).
    pub time: i64,
    pub author: usize,
    pub message: String,
    pub kind: ChangeKind,
    pub files: Vec<FileDelta>,
    /// The message matches omen's FIX pattern.
    pub fix: bool,
    /// The author's earlier commits in this repository (Kamei's EXP).
    pub exp: u32,
    /// Filled after `git fast-import`.
    pub sha: String,
}

impl CommitInfo {
    pub fn la(&self) -> u64 {
        self.files.iter().map(|f| f.added).sum()
    }

    pub fn ld(&self) -> u64 {
        self.files.iter().map(|f| f.deleted).sum()
    }

    /// Distinct first path components (Kamei's NS; `""` for the root).
    pub fn subsystems(&self) -> BTreeSet<&str> {
        self.files.iter().map(|f| f.path.split_once('/').map_or("", |(a, _)| a)).collect()
    }

    /// Kamei's entropy: of the modified lines over the files, normalised by log2(nf).
    pub fn entropy(&self) -> f64 {
        let nf = self.files.len();
        let total: u64 = self.files.iter().map(|f| f.added + f.deleted).sum();
        if nf <= 1 || total == 0 {
            return 0.0;
        }
        let h: f64 = self
            .files
            .iter()
            .map(|f| (f.added + f.deleted) as f64 / total as f64)
            .filter(|p| *p > 0.0)
            .map(|p| -p * p.log2())
            .sum();
        h / (nf as f64).log2()
    }
}

/// A generated repository: its authors and its commits, oldest first, on one branch (`main`).
#[derive(Debug)]
pub struct Repo {
    pub language: Language,
    pub authors: Vec<Author>,
    pub commits: Vec<CommitInfo>,
    /// The `git fast-import` input that writes it.
    stream: Vec<u8>,
}

const SUBSYSTEMS: &[&str] = &[
    "api", "core", "db", "auth", "billing", "cache", "jobs", "search", "events", "web", "storage", "notify", "pricing",
    "admin",
];
const MODULES: &[&str] = &[
    "handlers", "models", "service", "client", "routes", "schema", "worker", "queue", "util", "validate", "metrics",
    "session", "limits", "export", "import", "sync", "retry", "config",
];
const FIRST: &[&str] = &[
    "Ana", "Bo", "Chen", "Dee", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jules", "Kai", "Lena", "Mateo", "Nia", "Omar",
    "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Vik", "Wen", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Silva", "Okafor", "Novak", "Tanaka", "Berg", "Haddad", "Kowalski", "Moreau", "Rossi", "Nguyen", "Schmidt", "Ali",
    "Costa", "Dubois", "Eriksen", "Fischer",
];
const NOUNS: &[&str] = &[
    "pagination", "rate limits", "retries", "bulk export", "webhooks", "caching", "timeouts", "audit log", "filters",
    "sorting", "idempotency keys", "batching", "health checks", "feature flag", "backpressure", "tracing spans",
];
const PROBLEMS: &[&str] = &[
    "a race in the session cache", "the null customer id case", "an off-by-one in pagination", "a crash on empty carts",
    "wrong rounding of totals", "a leak of pooled connections", "stale reads after failover", "timezone handling",
    "a deadlock in the worker", "double charging on retry", "an unbounded queue", "errors on unicode input",
];
const DEPS: &[&str] = &["serde", "tokio", "requests", "express", "grpc", "protobuf", "openssl", "lodash", "zap", "sqlx"];

/// Parameters of one repository's history.
#[derive(Debug, Clone)]
pub struct RepoPlan {
    /// First commit (the import), µs.
    pub history_start: i64,
    /// Last commit no later than this, µs.
    pub end: i64,
    /// Mean commits per working day.
    pub commits_per_day: f64,
    /// The organisation's mail domain.
    pub domain: String,
}

/// A file of the working tree.
#[derive(Debug, Clone)]
struct Entry {
    content: Content,
}

struct Builder<'a> {
    rng: &'a mut Rng,
    lang: Language,
    tree: BTreeMap<String, Entry>,
    subsystems: Vec<&'static str>,
    next_line: u64,
    next_migration: u32,
    stream: Vec<u8>,
    mark: u32,
}

impl Builder<'_> {
    fn lines(&mut self, n: u64) -> Vec<u64> {
        let start = self.next_line;
        self.next_line += n;
        (start..start + n).collect()
    }

    fn text(&mut self, flavor: Flavor, n: u64) -> Content {
        Content::Text { flavor, lines: self.lines(n.max(1)) }
    }

    fn binary(&mut self) -> Content {
        let n = self.rng.range(256, 4096) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
        b[0] = 0x89; // a PNG-like header with a NUL: git sees binary
        b[1] = 0;
        Content::Binary(b)
    }

    fn code_paths(&self, sub: &str) -> Vec<String> {
        let prefix = format!("{sub}/");
        let ext = format!(".{}", self.lang.ext());
        self.tree
            .keys()
            .filter(|p| p.starts_with(&prefix) && p.ends_with(&ext) && !is_test(p))
            .cloned()
            .collect()
    }

    fn paths_where(&self, f: impl Fn(&str) -> bool) -> Vec<String> {
        self.tree.keys().filter(|p| f(p)).cloned().collect()
    }

    /// Deletes a block of about `del` lines and inserts `add` new ones in a text file.
    fn modify(&mut self, path: &str, add: u64, del: u64) -> FileDelta {
        let new = self.lines(add);
        let (binary, deleted, added) = {
            let rng = &mut *self.rng;
            let entry = self.tree.get_mut(path).expect("modify an existing file");
            match &mut entry.content {
                Content::Text { lines, .. } => {
                    let del = del.min(lines.len().saturating_sub(1) as u64) as usize;
                    let at = rng.below((lines.len() - del + 1) as u64) as usize;
                    lines.drain(at..at + del);
                    let ins = rng.below(lines.len() as u64 + 1) as usize;
                    lines.splice(ins..ins, new);
                    (false, del as u64, add)
                }
                Content::Binary(_) => (true, 0, 0),
            }
        };
        if binary {
            let c = self.binary();
            self.tree.get_mut(path).expect("exists").content = c;
        }
        let bytes = self.tree[path].content.bytes();
        self.emit_modify(path, &bytes);
        FileDelta { path: path.to_string(), added, deleted, binary }
    }

    fn add(&mut self, path: String, content: Content) -> FileDelta {
        let (added, binary) = match &content {
            Content::Text { lines, .. } => (lines.len() as u64, false),
            Content::Binary(_) => (0, true),
        };
        let bytes = content.bytes();
        self.emit_modify(&path, &bytes);
        self.tree.insert(path.clone(), Entry { content });
        FileDelta { path, added, deleted: 0, binary }
    }

    fn delete(&mut self, path: &str) -> FileDelta {
        let e = self.tree.remove(path).expect("delete an existing file");
        writeln!(self.stream, "D {path}").expect("vec");
        let (deleted, binary) = match &e.content {
            Content::Text { lines, .. } => (lines.len() as u64, false),
            Content::Binary(_) => (0, true),
        };
        FileDelta { path: path.to_string(), added: 0, deleted, binary }
    }

    fn rename(&mut self, from: &str, to: String) -> FileDelta {
        let e = self.tree.remove(from).expect("rename an existing file");
        writeln!(self.stream, "R {from} {to}").expect("vec");
        let binary = matches!(e.content, Content::Binary(_));
        self.tree.insert(to.clone(), e);
        FileDelta { path: to, added: 0, deleted: 0, binary }
    }

    fn emit_modify(&mut self, path: &str, bytes: &[u8]) {
        writeln!(self.stream, "M 100644 inline {path}").expect("vec");
        writeln!(self.stream, "data {}", bytes.len()).expect("vec");
        self.stream.extend_from_slice(bytes);
        self.stream.push(b'\n');
    }

    fn size(&mut self, median: f64, sigma: f64, cap: f64) -> u64 {
        self.rng.lognormal(median.ln(), sigma).min(cap).round() as u64
    }

    /// Lines added to a code file by a change of `scale`.
    fn add_size(&mut self, scale: f64) -> u64 {
        (self.size(10.0 * scale, 1.0, 600.0)).max(1)
    }

    fn del_size(&mut self, scale: f64) -> u64 {
        self.size(4.0 * scale, 1.1, 400.0)
    }
}

fn is_test(p: &str) -> bool {
    p.starts_with("tests/") || p.contains("_test.") || p.contains(".test.")
}

/// Generates the repository of one service.
pub fn generate(rng: &mut Rng, plan: &RepoPlan, service: &str) -> Repo {
    let lang = *rng.pick(&Language::ALL);
    // Authors: two or three veterans from the start, the others join over time.
    let n_authors = (3 + rng.poisson(3.0)).min(10) as usize;
    let veterans = rng.range(2, 3) as usize;
    let span = plan.end - plan.history_start;
    let mut authors = Vec::with_capacity(n_authors);
    let mut used = BTreeSet::new();
    for i in 0..n_authors {
        let (first, last) = loop {
            let f = *rng.pick(FIRST);
            let l = *rng.pick(LAST);
            if used.insert((f, l)) {
                break (f, l);
            }
        };
        let joined = if i < veterans { plan.history_start } else { plan.history_start + (rng.uniform(0.15, 1.0) * span as f64) as i64 };
        let email = format!("{}.{}@{}", ascii(first), ascii(last), plan.domain).to_lowercase();
        authors.push(Author { name: format!("{first} {last}"), email, joined, weight: rng.lognormal(0.0, 0.6) });
    }

    let n_subs = rng.range(3, 7) as usize;
    let mut subsystems: Vec<&'static str> = Vec::new();
    while subsystems.len() < n_subs {
        let s = *rng.pick(SUBSYSTEMS);
        if !subsystems.contains(&s) {
            subsystems.push(s);
        }
    }
    let mut b = Builder {
        rng,
        lang,
        tree: BTreeMap::new(),
        subsystems,
        next_line: 0,
        next_migration: 1,
        stream: Vec::with_capacity(1 << 20),
        mark: 0,
    };

    // Commit times first: working days, mostly office hours (UTC), some late at night.
    let mut times = Vec::new();
    let first_day = plan.history_start.div_euclid(US_PER_DAY);
    let last_day = (plan.end - 1).div_euclid(US_PER_DAY);
    for day in first_day..=last_day {
        let d0 = day * US_PER_DAY;
        let mean = if weekday(d0) >= 5 { 0.1 * plan.commits_per_day } else { plan.commits_per_day };
        for _ in 0..b.rng.poisson(mean) {
            let h = if b.rng.bernoulli(0.08) {
                b.rng.uniform(22.0, 29.0) % 24.0
            } else {
                (14.0 + 2.5 * b.rng.normal()).clamp(8.0, 21.0)
            };
            let t = d0 + (h * US_PER_HOUR as f64) as i64;
            times.push(t - t.rem_euclid(US_PER_S));
        }
    }
    times.retain(|t| *t > plan.history_start && *t < plan.end);
    times.sort_unstable();
    for i in 1..times.len() {
        if times[i] <= times[i - 1] {
            times[i] = times[i - 1] + US_PER_S;
        }
    }

    let mut commits = Vec::with_capacity(times.len() + 1);
    let mut exp = vec![0u32; authors.len()];
    // The import.
    commits.push(import(&mut b, &authors, plan.history_start, service));
    exp[0] += 1;
    for t in times {
        let weights: Vec<f64> = authors.iter().map(|a| if a.joined <= t { a.weight } else { 0.0 }).collect();
        let author = b.rng.weighted(&weights);
        let kind = KINDS[b.rng.weighted(&KINDS.map(|k| k.1))].0;
        // A kind with nothing to act on (no module to rename) becomes a feature.
        let c = change(&mut b, kind, t, &authors[author], author, exp[author])
            .or_else(|| change(&mut b, ChangeKind::Feature, t, &authors[author], author, exp[author]));
        let Some(c) = c else { continue };
        exp[author] += 1;
        commits.push(c);
    }
    Repo { language: lang, authors, commits, stream: b.stream }
}

fn ascii(s: &str) -> String {
    s.chars().map(|c| if c == 'á' { 'a' } else { c }).filter(char::is_ascii_alphabetic).collect()
}

fn header(b: &mut Builder<'_>, author: &Author, t: i64, message: &str) {
    b.mark += 1;
    let secs = t / US_PER_S;
    let s = &mut b.stream;
    writeln!(s, "commit refs/heads/main").expect("vec");
    writeln!(s, "mark :{}", b.mark).expect("vec");
    writeln!(s, "author {} <{}> {secs} +0000", author.name, author.email).expect("vec");
    writeln!(s, "committer {} <{}> {secs} +0000", author.name, author.email).expect("vec");
    writeln!(s, "data {}", message.len()).expect("vec");
    s.extend_from_slice(message.as_bytes());
    s.push(b'\n');
    if b.mark > 1 {
        writeln!(s, "from :{}", b.mark - 1).expect("vec");
    }
}

fn import(b: &mut Builder<'_>, authors: &[Author], t: i64, service: &str) -> CommitInfo {
    let message = format!("Initial import of {service}");
    header(b, &authors[0], t, &message);
    let lang = b.lang;
    let mut files = Vec::new();
    let (manifest, lock) = lang.manifests();
    let n = b.rng.range(10, 30) as u64;
    let c = b.text(Flavor::Toml, n);
    files.push(b.add(manifest.to_string(), c));
    let n = b.rng.range(100, 400) as u64;
    let c = b.text(Flavor::Lock, n);
    files.push(b.add(lock.to_string(), c));
    let n = b.rng.range(10, 60) as u64;
    let c = b.text(Flavor::Docs, n);
    files.push(b.add("README.md".into(), c));
    for p in ["deploy/values.yaml", "deploy/canary.yaml", "config/app.yaml"] {
        let n = b.rng.range(10, 40) as u64;
        let c = b.text(Flavor::Yaml, n);
        files.push(b.add(p.into(), c));
    }
    for sub in b.subsystems.clone() {
        let n_mod = b.rng.range(3, 8) as usize;
        let mut mods: Vec<&str> = Vec::new();
        while mods.len() < n_mod {
            let m = *b.rng.pick(MODULES);
            if !mods.contains(&m) {
                mods.push(m);
            }
        }
        for m in mods {
            let n = b.rng.range(40, 250) as u64;
            let c = b.text(Flavor::Code(lang), n);
            files.push(b.add(format!("{sub}/{m}.{}", lang.ext()), c));
            if b.rng.bernoulli(0.6) {
                let n = b.rng.range(30, 150) as u64;
                let c = b.text(Flavor::Code(lang), n);
                files.push(b.add(lang.test_path(sub, m), c));
            }
        }
        let n = b.rng.range(10, 60) as u64;
        let c = b.text(Flavor::Docs, n);
        files.push(b.add(format!("docs/{sub}.md"), c));
    }
    for _ in 0..b.rng.range(1, 4) {
        let n = b.rng.range(10, 40) as u64;
        let name = format!("migrations/{:04}_init_{}.sql", b.next_migration, b.next_migration);
        b.next_migration += 1;
        let c = b.text(Flavor::Sql, n);
        files.push(b.add(name, c));
    }
    for name in ["assets/logo.png", "assets/fixtures/sample.bin"] {
        let c = b.binary();
        files.push(b.add(name.into(), c));
    }
    let fix = FIX.is_match(&message);
    CommitInfo { time: t, author: 0, message, kind: ChangeKind::Import, files, fix, exp: 0, sha: String::new() }
}

/// One commit of `kind`; `None` (and nothing written) when the kind has nothing to act on.
fn change(b: &mut Builder<'_>, kind: ChangeKind, t: i64, author: &Author, author_idx: usize, exp: u32) -> Option<CommitInfo> {
    let before = b.stream.len();
    let lang = b.lang;
    let sub = *b.rng.pick(&b.subsystems.clone());
    // A few changes are much larger than the rest.
    let scale = if b.rng.bernoulli(0.06) { 8.0 } else { 1.0 };
    let noun = *b.rng.pick(NOUNS);
    let message = match kind {
        ChangeKind::Import => unreachable!("the import is written by `import`"),
        ChangeKind::Feature => match b.rng.below(3) {
            0 => format!("feat({sub}): add {noun}"),
            1 => format!("Add {noun} to {sub}"),
            _ => format!("{sub}: support {noun}\n\nThe {sub} module now handles {noun}."),
        },
        ChangeKind::Fix => {
            let problem = *b.rng.pick(PROBLEMS);
            match b.rng.below(3) {
                0 => format!("fix({sub}): {problem}"),
                1 => format!("Fix {problem} in {sub}"),
                _ => format!("{sub}: guard against {problem}\n\nFixes #{}", b.rng.range(100, 4000)),
            }
        }
        ChangeKind::Refactor => format!("refactor({sub}): simplify {noun}"),
        ChangeKind::Deps => {
            let d = *b.rng.pick(DEPS);
            let (x, y) = (b.rng.range(0, 30), b.rng.range(0, 20));
            format!("chore(deps): bump {d} from 1.{x}.{y} to 1.{x}.{}", y + 1)
        }
        ChangeKind::Migration => format!("feat(db): add migration {:04} for {noun}", b.next_migration),
        ChangeKind::Config => format!("chore(deploy): tune {noun} settings"),
        ChangeKind::Docs => format!("docs: describe {noun} in {sub}"),
        ChangeKind::Test => format!("test({sub}): cover {noun}"),
        ChangeKind::Asset => "chore(assets): refresh images".to_string(),
        ChangeKind::Cleanup => format!("chore({sub}): remove unused module"),
        ChangeKind::Rename => format!("refactor({sub}): move module"),
    };
    header(b, author, t, &message);
    let mut files = Vec::new();
    let mut touched = BTreeSet::new();
    let mut modify = |b: &mut Builder<'_>, files: &mut Vec<FileDelta>, path: String, add: u64, del: u64| {
        if touched.insert(path.clone()) {
            files.push(b.modify(&path, add, del));
        }
    };
    match kind {
        ChangeKind::Import => {}
        ChangeKind::Feature | ChangeKind::Fix | ChangeKind::Refactor => {
            let (n_files, n_subs, s) = match kind {
                ChangeKind::Feature => (1 + b.rng.poisson(1.2), 1 + u64::from(b.rng.bernoulli(0.3)), scale),
                ChangeKind::Fix => (1 + b.rng.poisson(0.4), 1, 0.5 * scale),
                _ => (3 + b.rng.poisson(5.0), 2 + b.rng.poisson(1.0), 1.5 * scale),
            };
            let mut subs = vec![sub];
            for _ in 1..n_subs {
                subs.push(*b.rng.pick(&b.subsystems.clone()));
            }
            for i in 0..n_files {
                let s_i = subs[i as usize % subs.len()];
                let candidates = b.code_paths(s_i);
                if candidates.is_empty() {
                    continue;
                }
                let p = b.rng.pick(&candidates).clone();
                let (add, del) = (b.add_size(s), b.del_size(if kind == ChangeKind::Refactor { 3.0 * s } else { s }));
                modify(b, &mut files, p, add, del);
            }
            if kind == ChangeKind::Feature && b.rng.bernoulli(0.15) {
                let m = *b.rng.pick(MODULES);
                let p = format!("{sub}/{m}_{}.{}", b.next_line % 1000, lang.ext());
                if !b.tree.contains_key(&p) {
                    let n = b.add_size(3.0 * scale);
                    let c = b.text(Flavor::Code(lang), n);
                    files.push(b.add(p, c));
                }
            }
            if b.rng.bernoulli(if kind == ChangeKind::Fix { 0.6 } else { 0.45 }) {
                let tests = b.paths_where(is_test);
                if !tests.is_empty() {
                    let p = b.rng.pick(&tests).clone();
                    let (add, del) = (b.add_size(1.0), b.del_size(0.5));
                    modify(b, &mut files, p, add, del);
                }
            }
        }
        ChangeKind::Deps => {
            let (manifest, lock) = lang.manifests();
            let add = b.rng.range(1, 3) as u64;
            modify(b, &mut files, manifest.to_string(), add, add);
            let add = b.size(60.0, 1.0, 1500.0).max(1);
            let del = b.size(50.0, 1.0, 1500.0);
            modify(b, &mut files, lock.to_string(), add, del);
        }
        ChangeKind::Migration => {
            let n = b.size(15.0, 0.6, 200.0).max(2);
            let name = format!("migrations/{:04}_{}.sql", b.next_migration, noun.replace(' ', "_"));
            b.next_migration += 1;
            let c = b.text(Flavor::Sql, n);
            files.push(b.add(name, c));
            let db: Vec<String> = b.paths_where(|p| p.starts_with("db/") && !is_test(p));
            let candidates = if db.is_empty() { b.code_paths(sub) } else { db };
            if !candidates.is_empty() {
                let p = b.rng.pick(&candidates).clone();
                let (add, del) = (b.add_size(scale), b.del_size(scale));
                modify(b, &mut files, p, add, del);
            }
        }
        ChangeKind::Config => {
            let configs = b.paths_where(|p| p.ends_with(".yaml"));
            for _ in 0..b.rng.range(1, 2) {
                let p = b.rng.pick(&configs).clone();
                let n = b.rng.range(1, 8) as u64;
                modify(b, &mut files, p, n, n);
            }
        }
        ChangeKind::Docs => {
            let docs = b.paths_where(|p| p.ends_with(".md"));
            for _ in 0..b.rng.range(1, 2) {
                let p = b.rng.pick(&docs).clone();
                let (add, del) = (b.size(12.0, 1.0, 300.0).max(1), b.size(4.0, 1.0, 100.0));
                modify(b, &mut files, p, add, del);
            }
        }
        ChangeKind::Test => {
            let tests = b.paths_where(is_test);
            if tests.is_empty() {
                let m = *b.rng.pick(MODULES);
                let n = b.add_size(3.0);
                let c = b.text(Flavor::Code(lang), n);
                files.push(b.add(lang.test_path(sub, m), c));
            } else {
                for _ in 0..b.rng.range(1, 3) {
                    let p = b.rng.pick(&tests).clone();
                    let (add, del) = (b.add_size(1.5), b.del_size(1.0));
                    modify(b, &mut files, p, add, del);
                }
            }
        }
        ChangeKind::Asset => {
            let assets = b.paths_where(|p| p.starts_with("assets/"));
            let p = b.rng.pick(&assets).clone();
            modify(b, &mut files, p, 0, 0);
            if b.rng.bernoulli(0.5) {
                let c = b.binary();
                let p = format!("assets/img_{}.png", b.next_line % 10_000);
                if !b.tree.contains_key(&p) {
                    files.push(b.add(p, c));
                }
            }
        }
        ChangeKind::Cleanup => {
            let code = b.code_paths(sub);
            if code.len() > 2 {
                let p = b.rng.pick(&code).clone();
                files.push(b.delete(&p));
            }
        }
        ChangeKind::Rename => {
            let code = b.code_paths(sub);
            if let Some(p) = (!code.is_empty()).then(|| b.rng.pick(&code).clone()) {
                let stem = p.rsplit_once('.').map_or(p.as_str(), |(s, _)| s);
                let to = format!("{stem}_v{}.{}", b.next_line % 1000, lang.ext());
                if !b.tree.contains_key(&to) {
                    files.push(b.rename(&p, to));
                }
            }
        }
    }
    if files.is_empty() {
        b.mark -= 1;
        b.stream.truncate(before);
        return None;
    }
    let fix = FIX.is_match(&message);
    Some(CommitInfo { time: t, author: author_idx, message, kind, files, fix, exp, sha: String::new() })
}

/// Hermetic git: no user or system configuration, C locale.
pub fn git() -> Command {
    let mut c = Command::new("git");
    c.env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_CONFIG_NOSYSTEM", "1").env("LC_ALL", "C");
    c
}

fn run_git(mut c: Command, what: &str, path: &Path) -> Result<Vec<u8>> {
    let out = c.output().map_err(|e| Error::input(path.display().to_string(), format!("cannot run git {what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::input(
            path.display().to_string(),
            format!("git {what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(out.stdout)
}

impl Repo {
    /// Writes the history as a bare repository at `dir` (which must not exist) and fills in
    /// every commit's id.
    pub fn write_bare(&mut self, dir: &Path) -> Result<()> {
        let mut c = git();
        c.args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(dir);
        run_git(c, "init", dir)?;
        let marks = dir.join("omen-simulate.marks");
        let mut c = git();
        // Level 1: the objects of a large run are written fast (a bundle is repacked anyway).
        c.arg("--git-dir")
            .arg(dir)
            .args(["-c", "pack.compression=1", "fast-import", "--quiet", "--date-format=raw"])
            .arg(format!("--export-marks={}", marks.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| Error::input(dir.display().to_string(), format!("cannot run git fast-import: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // stderr is drained after stdin closes: fast-import writes little to it.
        let written = stdin.write_all(&self.stream).and_then(|_| stdin.write_all(b"done\n"));
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| Error::input(dir.display().to_string(), format!("git fast-import: {e}")))?;
        if !out.status.success() || written.is_err() {
            return Err(Error::input(
                dir.display().to_string(),
                format!("git fast-import failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            ));
        }
        let text = std::fs::read_to_string(&marks).map_err(|e| Error::input(marks.display().to_string(), e.to_string()))?;
        let _ = std::fs::remove_file(&marks);
        let mut by_mark = vec![String::new(); self.commits.len() + 1];
        for line in text.lines() {
            let Some((m, sha)) = line.strip_prefix(':').and_then(|l| l.split_once(' ')) else { continue };
            if let Ok(m) = m.parse::<usize>()
                && m < by_mark.len()
            {
                by_mark[m] = sha.to_string();
            }
        }
        for (i, c) in self.commits.iter_mut().enumerate() {
            c.sha = std::mem::take(&mut by_mark[i + 1]);
            if c.sha.len() != 40 {
                return Err(Error::input(dir.display().to_string(), format!("git fast-import gave no id for commit {}", i + 1)));
            }
        }
        // Nothing in a bare repository needs the sample hooks; drop them for smaller output.
        let _ = std::fs::remove_dir_all(dir.join("hooks"));
        Ok(())
    }

    /// Writes the history as a bundle file (via a temporary bare repository).
    pub fn write_bundle(&mut self, file: &Path, tmp: &Path) -> Result<()> {
        self.write_bare(tmp)?;
        // fast-import's pack is not delta-compressed well: repack first (one thread, so the
        // same objects give the same pack).
        let mut c = git();
        c.arg("--git-dir").arg(tmp).args(["-c", "pack.threads=1", "repack", "-a", "-d", "-f", "-q"]);
        run_git(c, "repack", tmp)?;
        let mut c = git();
        c.arg("--git-dir").arg(tmp).args(["-c", "pack.threads=1", "bundle", "create", "--quiet"]).arg(file).args(["HEAD", "refs/heads/main"]);
        run_git(c, "bundle create", file)?;
        let _ = std::fs::remove_dir_all(tmp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RepoPlan {
        RepoPlan { history_start: 0, end: 40 * US_PER_DAY, commits_per_day: 4.0, domain: "example.com".into() }
    }

    #[test]
    fn generation_is_deterministic_and_varied() {
        let a = generate(&mut Rng::new(5), &plan(), "svc");
        let b = generate(&mut Rng::new(5), &plan(), "svc");
        assert_eq!(a.stream, b.stream);
        assert!(a.commits.len() > 50, "{}", a.commits.len());
        assert!(a.commits.windows(2).all(|w| w[0].time < w[1].time), "commit times not increasing");
        assert!(a.commits.iter().all(|c| !c.files.is_empty()), "an empty commit");
        assert!(a.commits.iter().any(|c| c.fix) && a.commits.iter().any(|c| !c.fix));
        assert!(a.commits.iter().any(|c| c.files.iter().any(|f| f.binary)));
        assert!(a.commits.iter().any(|c| c.subsystems().len() > 2));
        let c = generate(&mut Rng::new(6), &plan(), "svc");
        assert_ne!(a.stream, c.stream);
    }

    #[test]
    fn every_commit_is_in_the_written_repository() {
        let mut repo = generate(&mut Rng::new(4), &RepoPlan { end: 10 * US_PER_DAY, ..plan() }, "svc");
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("svc.git");
        repo.write_bare(&bare).unwrap();
        let out = git().arg("--git-dir").arg(&bare).args(["rev-list", "--reverse", "main"]).output().unwrap();
        let listed: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
        let ours: Vec<String> = repo.commits.iter().map(|c| c.sha.clone()).collect();
        assert_eq!(listed, ours);
        // And each commit's numstat is what the generator meant.
        for c in repo.commits.iter().step_by(7) {
            let out = git()
                .arg("--git-dir")
                .arg(&bare)
                .args(["show", "--numstat", "--format=", "-M", &c.sha])
                .output()
                .unwrap();
            let (mut la, mut ld) = (0, 0);
            for l in String::from_utf8(out.stdout).unwrap().lines() {
                let mut f = l.split('\t');
                la += f.next().unwrap().parse::<u64>().unwrap_or(0);
                ld += f.next().unwrap().parse::<u64>().unwrap_or(0);
            }
            assert_eq!((la, ld), (c.la(), c.ld()), "{}: {}", c.sha, c.message);
        }
    }

    #[test]
    fn fix_flag_follows_the_message() {
        let a = generate(&mut Rng::new(9), &plan(), "svc");
        for c in &a.commits {
            assert_eq!(c.fix, c.kind == ChangeKind::Fix, "{:?}: {}", c.kind, c.message);
        }
    }
}
