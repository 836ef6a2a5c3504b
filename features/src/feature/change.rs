//! Change-impact features: what a deployment ships (its commit range `from_sha..to_sha`), who
//! wrote it, which kinds of files it touches, and how those files fared in earlier deployments.

use std::collections::{BinaryHeap, HashMap, HashSet};

use super::value::{Kind, Value};

/// The Kamei et al. metrics of a commit that the change features sum and maximise, in
/// `commits/` column order.
pub const KAMEI: [&str; 13] = ["ns", "nd", "nf", "entropy", "la", "ld", "lt", "ndev", "age", "nuc", "exp", "rexp", "sexp"];
/// The experience metrics, whose minimum (the least experienced author) is kept too.
const EXPERIENCE: [usize; 3] = [10, 11, 12];

/// One commit, as `commits/` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub sha: String,
    /// Parent ids, first parent first.
    pub parents: Vec<String>,
    /// Author time, µs UTC.
    pub ts: i64,
    /// Masked author id.
    pub author: String,
    pub fix: bool,
    /// The [`KAMEI`] metrics, in that order.
    pub kamei: [f64; 13],
}

/// One file touched by a commit, as `commit_files/` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    pub sha: String,
    pub path: String,
    pub lines_added: i64,
    pub lines_deleted: i64,
}

/// The ingested history of one service's repository: commits, their parents and the files each
/// touched. Built the same way offline (from the store) and online.
#[derive(Debug, Clone, Default)]
pub struct RepoHistory {
    commits: Vec<Commit>,
    index: HashMap<String, usize>,
    /// Parent indices (parents that were not ingested are left out).
    parents: Vec<Vec<usize>>,
    /// Generation numbers: 1 + the largest generation of the parents (1 for a root).
    generation: Vec<u32>,
    /// (path, lines added + deleted) per commit.
    files: Vec<Vec<(String, i64)>>,
}

/// How a deployment's commit range was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeState {
    /// `from_sha..to_sha`: the commits reachable from `to_sha` and not from `from_sha` (git's
    /// `A..B`), the empty set for a redeploy or a rollback to an ancestor.
    Ok,
    /// No `from_sha` (a first deployment): the range is `to_sha` alone.
    NoFromSha,
    /// `from_sha` was never ingested: the range is `to_sha` alone.
    FromShaMissing,
    /// `to_sha` was never ingested: the change features are NODATA.
    CommitsMissing,
}

impl RangeState {
    pub fn as_str(self) -> &'static str {
        match self {
            RangeState::Ok => "ok",
            RangeState::NoFromSha => "no_from_sha",
            RangeState::FromShaMissing => "from_sha_missing",
            RangeState::CommitsMissing => "commits_missing",
        }
    }
}

/// A resolved commit range: indices into the [`RepoHistory`], newest generation first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRange {
    pub state: RangeState,
    pub commits: Vec<usize>,
}

impl RepoHistory {
    /// Builds the history from commits and their files (any order; duplicate commits — the same
    /// sha twice — are kept once, the first given).
    pub fn new(commits: Vec<Commit>, files: Vec<FileChange>) -> RepoHistory {
        let mut index = HashMap::with_capacity(commits.len());
        let mut kept = Vec::with_capacity(commits.len());
        for c in commits {
            if !index.contains_key(&c.sha) {
                index.insert(c.sha.clone(), kept.len());
                kept.push(c);
            }
        }
        let parents: Vec<Vec<usize>> =
            kept.iter().map(|c| c.parents.iter().filter_map(|p| index.get(p).copied()).collect()).collect();
        let generation = generations(&parents);
        let mut per_commit: Vec<Vec<(String, i64)>> = vec![Vec::new(); kept.len()];
        let mut seen: HashSet<(usize, String)> = HashSet::new();
        for f in files {
            if let Some(&i) = index.get(&f.sha)
                && seen.insert((i, f.path.clone()))
            {
                per_commit[i].push((f.path, f.lines_added.saturating_add(f.lines_deleted)));
            }
        }
        for files in &mut per_commit {
            files.sort();
        }
        RepoHistory { commits: kept, index, parents, generation, files: per_commit }
    }

    pub fn len(&self) -> usize {
        self.commits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.index.contains_key(sha)
    }

    /// The commits of `from..to`, with git's semantics (merges included, every parent walked),
    /// found by walking back from both ends in generation order and stopping as soon as every
    /// commit left to visit is reachable from `from` (git's painting walk): the cost is the size
    /// of the range plus the frontier, not of the history.
    pub fn range(&self, from: Option<&str>, to: &str) -> CommitRange {
        let Some(&to) = self.index.get(to) else {
            return CommitRange { state: RangeState::CommitsMissing, commits: Vec::new() };
        };
        let from = match from {
            None => return CommitRange { state: RangeState::NoFromSha, commits: vec![to] },
            Some(sha) => match self.index.get(sha) {
                None => return CommitRange { state: RangeState::FromShaMissing, commits: vec![to] },
                Some(&i) => i,
            },
        };
        const TO: u8 = 1;
        const FROM: u8 = 2;
        // Every commit is queued at most once and processed once, in decreasing generation: a
        // commit's children all have higher generations, so its flags are final when it is
        // popped. `interesting` counts queued commits not (yet) reachable from `from`.
        let mut walk = Walk::default();
        walk.add(to, TO, self.generation[to]);
        walk.add(from, FROM, self.generation[from]);
        let mut out = Vec::new();
        while walk.interesting > 0 {
            let Some((_, i)) = walk.heap.pop() else { break };
            walk.queued.remove(&i);
            let f = walk.flags[&i];
            if f & FROM == 0 {
                walk.interesting -= 1;
                out.push(i);
            }
            for &p in &self.parents[i] {
                walk.add(p, f, self.generation[p]);
            }
        }
        CommitRange { state: RangeState::Ok, commits: out }
    }

    /// The distinct paths a range touches.
    pub fn touched_paths(&self, range: &CommitRange) -> Vec<&str> {
        let mut paths: Vec<&str> =
            range.commits.iter().flat_map(|&i| self.files[i].iter().map(|(p, _)| p.as_str())).collect();
        paths.sort_unstable();
        paths.dedup();
        paths
    }
}

/// The state of [`RepoHistory::range`]'s walk.
#[derive(Default)]
struct Walk {
    flags: HashMap<usize, u8>,
    queued: HashSet<usize>,
    heap: BinaryHeap<(u32, usize)>,
    interesting: usize,
}

impl Walk {
    const FROM: u8 = 2;

    fn add(&mut self, i: usize, f: u8, generation: u32) {
        let entry = self.flags.entry(i).or_insert(0);
        let before = *entry;
        *entry |= f;
        let after = *entry;
        if self.queued.contains(&i) {
            if before & Self::FROM == 0 && after & Self::FROM != 0 {
                self.interesting -= 1;
            }
        } else if before == 0 {
            // First reached (a commit is never reached again after it was processed).
            self.queued.insert(i);
            self.heap.push((generation, i));
            if after & Self::FROM == 0 {
                self.interesting += 1;
            }
        }
    }
}

/// Generation numbers of a DAG given parent lists (iterative post-order, any input order). A
/// parent edge that closes a cycle (malformed input) is ignored.
fn generations(parents: &[Vec<usize>]) -> Vec<u32> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parents.len()];
    let mut generation = vec![1u32; parents.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new(); // (commit, next parent to look at)
    for start in 0..parents.len() {
        if state[start] != NEW {
            continue;
        }
        state[start] = OPEN;
        stack.push((start, 0));
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            if let Some(&p) = parents[i].get(*next) {
                *next += 1;
                if state[p] == NEW {
                    state[p] = OPEN;
                    stack.push((p, 0));
                }
            } else {
                stack.pop();
                state[i] = DONE;
                let g = parents[i].iter().filter(|&&p| state[p] == DONE).map(|&p| generation[p]).max().unwrap_or(0);
                generation[i] = g.saturating_add(1);
            }
        }
    }
    generation
}

/// What kind of file a path is, by the conventions of common ecosystems. The first matching
/// rule wins, in the order of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A dependency manifest or lock file: `Cargo.toml`, `Cargo.lock`, `package.json`, any
    /// `*.lock`, `go.mod`, `go.sum`, `requirements*.txt`, `pyproject.toml`, `Pipfile`, `pom.xml`,
    /// `build.gradle(.kts)`, `Gemfile`, `composer.json`, `*.csproj`, `packages.config`, `mix.exs`…
    Dependency,
    /// A schema migration: under a `migrations/`, `migrate/`, `db/migrate/`, `alembic/versions/`,
    /// `flyway/` or `liquibase/` directory, or any `*.sql` file.
    Migration,
    /// A test: under `test/`, `tests/`, `__tests__/`, `spec/`, `testdata/`, `src/test/`, or named
    /// `*_test.*`, `test_*.py`, `*.test.*`, `*.spec.*`, `*Test.java`, `*Tests.cs`, `conftest.py`.
    Test,
    /// Documentation: `*.md`, `*.rst`, `*.adoc`, `*.txt`, anything under `docs/` or `doc/`,
    /// `LICENSE*`, `CHANGELOG*`, `AUTHORS`.
    Docs,
    /// Configuration: `*.yaml`, `*.yml`, `*.toml`, `*.ini`, `*.cfg`, `*.conf`, `*.properties`,
    /// `*.env`, `*.json` (other than manifests), `*.tf`, `*.hcl`, `Dockerfile`, `Makefile`,
    /// `.github/`, `helm/`, `k8s/`, `deploy/`, `config/` trees.
    Config,
    /// Anything else (source code).
    Code,
}

impl FileKind {
    pub fn of(path: &str) -> FileKind {
        let lower = path.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let dirs: Vec<&str> = lower.split('/').collect();
        let dirs = &dirs[..dirs.len().saturating_sub(1)];
        let in_dir = |names: &[&str]| dirs.iter().any(|d| names.contains(d));
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        const MANIFESTS: &[&str] = &[
            "cargo.toml", "package.json", "go.mod", "go.sum", "pyproject.toml", "pipfile", "setup.py", "setup.cfg",
            "pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle", "gradle.lockfile", "gemfile",
            "composer.json", "packages.config", "mix.exs", "package-lock.json", "npm-shrinkwrap.json",
            "pnpm-lock.yaml", "yarn.lock", "bun.lockb", "deno.json", "directory.packages.props", "vcpkg.json",
            "conanfile.txt", "environment.yml", "flake.nix",
        ];
        if MANIFESTS.contains(&name)
            || ext == "lock"
            || ext == "csproj"
            || (name.starts_with("requirements") && ext == "txt")
            || name.ends_with(".gemspec")
        {
            return FileKind::Dependency;
        }
        if ext == "sql"
            || in_dir(&["migrations", "migration", "migrate", "flyway", "liquibase", "changelog"])
            || lower.contains("alembic/versions/")
        {
            return FileKind::Migration;
        }
        let stem = name.split('.').next().unwrap_or(name);
        if in_dir(&["test", "tests", "__tests__", "spec", "specs", "testdata", "fixtures", "e2e"])
            || stem.ends_with("_test")
            || stem.ends_with("_spec")
            || (stem.starts_with("test_") && ext == "py")
            || name == "conftest.py"
            || name.contains(".test.")
            || name.contains(".spec.")
            || (ext == "java" && (stem.ends_with("test") || stem.ends_with("tests")) && path.contains("Test"))
            || (ext == "cs" && stem.ends_with("tests"))
        {
            return FileKind::Test;
        }
        if matches!(ext, "md" | "rst" | "adoc" | "txt" | "markdown")
            || in_dir(&["docs", "doc", "documentation"])
            || name.starts_with("license")
            || name.starts_with("changelog")
            || name == "authors"
        {
            return FileKind::Docs;
        }
        if matches!(
            ext,
            "yaml" | "yml" | "toml" | "ini" | "cfg" | "conf" | "properties" | "env" | "json" | "tf" | "tfvars" | "hcl"
                | "xml"
        ) || name == "dockerfile"
            || name.starts_with("dockerfile.")
            || name == "makefile"
            || name == ".env"
            || in_dir(&[".github", "helm", "charts", "k8s", "kubernetes", "deploy", "config", "configs", "terraform"])
        {
            return FileKind::Config;
        }
        FileKind::Code
    }
}

/// A deployment as the history of its service sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastDeployment {
    pub deployment_id: String,
    pub started_at: i64,
    /// `None` while running: such a deployment never counts as ended.
    pub ended_at: Option<i64>,
    /// `success`, `rolled_back`, `failed`, `aborted`, or `None` while running.
    pub outcome: Option<String>,
    /// The paths its commit range touched.
    pub paths: Vec<String>,
}

impl PastDeployment {
    fn failed(&self) -> bool {
        matches!(self.outcome.as_deref(), Some("failed" | "rolled_back"))
    }
}

/// The deployment history of one service, consulted as of a time: only what had *ended* (for
/// outcomes) or *started* (for times) strictly before it is visible. Used in time order offline
/// (one [`ServiceHistory::advance_to`] per deployment, each absorbing what ended since) and once
/// online; both paths count the same way.
#[derive(Debug, Clone, Default)]
pub struct ServiceHistory {
    /// Start times, ascending.
    starts: Vec<i64>,
    /// Ended deployments ordered by end time, with their failure flag and paths.
    ended: Vec<(i64, bool, Vec<String>)>,
    /// How many of `ended` are absorbed into `per_file`.
    absorbed: usize,
    /// path → (deployments that touched it, of which failed).
    per_file: HashMap<String, (i64, i64)>,
    now: i64,
}

/// What [`ServiceHistory`] knows at a time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HistoryContext {
    /// Start of the latest deployment that started before, µs.
    pub previous_start: Option<i64>,
    /// Deployments started in the 7 days before.
    pub deploys_prior_7d: i64,
}

const WEEK_US: i64 = 7 * 86_400 * 1_000_000;

impl ServiceHistory {
    pub fn new(deployments: Vec<PastDeployment>) -> ServiceHistory {
        let mut starts: Vec<i64> = deployments.iter().map(|d| d.started_at).collect();
        starts.sort_unstable();
        let mut ended: Vec<(i64, bool, Vec<String>)> = deployments
            .into_iter()
            .filter(|d| d.outcome.is_some())
            .filter_map(|d| d.ended_at.map(|e| (e, d.failed(), d.paths)))
            .collect();
        ended.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2)));
        ServiceHistory { starts, ended, absorbed: 0, per_file: HashMap::new(), now: i64::MIN }
    }

    /// Moves the history to time `t` (not backwards: an earlier `t` is refused with `false`).
    pub fn advance_to(&mut self, t: i64) -> bool {
        if t < self.now {
            return false;
        }
        self.now = t;
        while self.absorbed < self.ended.len() && self.ended[self.absorbed].0 < t {
            let (_, failed, paths) = &self.ended[self.absorbed];
            for p in paths {
                let e = self.per_file.entry(p.clone()).or_default();
                e.0 += 1;
                e.1 += i64::from(*failed);
            }
            self.absorbed += 1;
        }
        true
    }

    /// Times before the current time.
    pub fn context(&self) -> HistoryContext {
        let before = self.starts.partition_point(|&s| s < self.now);
        let week = self.starts.partition_point(|&s| s < self.now.saturating_sub(WEEK_US));
        HistoryContext {
            previous_start: before.checked_sub(1).map(|i| self.starts[i]),
            deploys_prior_7d: (before - week) as i64,
        }
    }

    /// (earlier deployments that touched `path`, of which failed), as of the current time.
    pub fn file_record(&self, path: &str) -> (i64, i64) {
        self.per_file.get(path).copied().unwrap_or((0, 0))
    }
}

/// The change-impact features of one deployment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeFeatures {
    pub values: Vec<Value>,
}

/// Column names, kinds and meanings of the change-impact features, in order.
pub fn change_columns() -> Vec<(String, Kind, String)> {
    let mut cols: Vec<(String, Kind, String)> = vec![
        ("change_state".into(), Kind::Str, "how the commit range resolved: `ok`, `no_from_sha` or `from_sha_missing` (the range is `to_sha` alone), `commits_missing` (every change feature is null)".into()),
        ("commits".into(), Kind::Int, "commits in `from_sha..to_sha`".into()),
        ("authors".into(), Kind::Int, "distinct (masked) authors of those commits".into()),
        ("fix_commits".into(), Kind::Int, "commits whose message says they fix a defect".into()),
        ("merge_commits".into(), Kind::Int, "merge commits in the range".into()),
    ];
    for k in KAMEI {
        cols.push((format!("{k}_sum"), Kind::Float, format!("sum of the Kamei `{k}` of the range's commits (0 for an empty range)")));
        cols.push((format!("{k}_max"), Kind::Float, format!("largest Kamei `{k}` in the range (0 for an empty range)")));
    }
    for &i in &EXPERIENCE {
        let k = KAMEI[i];
        cols.push((format!("{k}_min"), Kind::Float, format!("smallest Kamei `{k}` (the least experienced author); null for an empty range")));
    }
    cols.extend([
        ("files".into(), Kind::Int, "distinct paths touched by the range".into()),
        ("files_dependency".into(), Kind::Int, "of which dependency manifests or lock files".into()),
        ("files_migration".into(), Kind::Int, "of which schema migrations".into()),
        ("files_test".into(), Kind::Int, "of which tests".into()),
        ("files_docs".into(), Kind::Int, "of which documentation".into()),
        ("files_config".into(), Kind::Int, "of which configuration".into()),
        ("files_code".into(), Kind::Int, "of which anything else (source code)".into()),
        ("test_only".into(), Kind::Bool, "every touched file is a test (false for an empty range)".into()),
        ("docs_only".into(), Kind::Bool, "every touched file is documentation (false for an empty range)".into()),
        ("file_prior_deploys_sum".into(), Kind::Int, "over the touched files, earlier deployments of the service that touched them (ended before this one started)".into()),
        ("file_prior_failures_sum".into(), Kind::Int, "over the touched files, earlier failed or rolled-back deployments that touched them".into()),
        ("file_prior_failures_max".into(), Kind::Int, "the most such failures of any one touched file".into()),
        ("file_failure_rate".into(), Kind::Float, "file_prior_failures_sum / file_prior_deploys_sum; null when no earlier deployment touched them".into()),
    ]);
    cols
}

/// The change-impact features of a resolved range, with the service's history as of the
/// deployment's start (see [`ServiceHistory`]).
pub fn change_features(repo: &RepoHistory, range: &CommitRange, history: &ServiceHistory) -> ChangeFeatures {
    let n_cols = change_columns().len();
    let mut v: Vec<Value> = Vec::with_capacity(n_cols);
    v.push(Value::Str(Some(range.state.as_str().to_owned())));
    if range.state == RangeState::CommitsMissing {
        for (_, kind, _) in change_columns().into_iter().skip(1) {
            v.push(match kind {
                Kind::Float => Value::Float(None),
                Kind::Int => Value::Int(None),
                Kind::Bool => Value::Bool(None),
                Kind::Str => Value::Str(None),
            });
        }
        return ChangeFeatures { values: v };
    }
    // Visit the range's commits in a fixed order so that float sums do not depend on the walk.
    let mut idx = range.commits.clone();
    idx.sort_unstable();
    let commits: Vec<&Commit> = idx.iter().map(|&i| &repo.commits[i]).collect();
    let authors: HashSet<&str> = commits.iter().map(|c| c.author.as_str()).collect();
    v.push(Value::Int(Some(commits.len() as i64)));
    v.push(Value::Int(Some(authors.len() as i64)));
    v.push(Value::Int(Some(commits.iter().filter(|c| c.fix).count() as i64)));
    v.push(Value::Int(Some(idx.iter().filter(|&&i| repo.commits[i].parents.len() > 1).count() as i64)));
    for k in 0..KAMEI.len() {
        let values = commits.iter().map(|c| c.kamei[k]).filter(|x| x.is_finite());
        let (sum, max) = values.fold((0.0f64, 0.0f64), |(s, m), x| (s + x, m.max(x)));
        v.push(Value::float(Some(sum)));
        v.push(Value::float(Some(max)));
    }
    for &k in &EXPERIENCE {
        let min = commits.iter().map(|c| c.kamei[k]).filter(|x| x.is_finite()).reduce(f64::min);
        v.push(Value::float(min));
    }
    let paths = repo.touched_paths(range);
    let mut kinds = [0i64; 6];
    for p in &paths {
        kinds[FileKind::of(p) as usize] += 1;
    }
    let n = paths.len() as i64;
    v.push(Value::Int(Some(n)));
    for count in kinds {
        v.push(Value::Int(Some(count)));
    }
    v.push(Value::Bool(Some(n > 0 && kinds[FileKind::Test as usize] == n)));
    v.push(Value::Bool(Some(n > 0 && kinds[FileKind::Docs as usize] == n)));
    let (mut deploys, mut failures, mut worst) = (0i64, 0i64, 0i64);
    for p in &paths {
        let (d, f) = history.file_record(p);
        deploys += d;
        failures += f;
        worst = worst.max(f);
    }
    v.push(Value::Int(Some(deploys)));
    v.push(Value::Int(Some(failures)));
    v.push(Value::Int(Some(worst)));
    v.push(Value::float((deploys > 0).then(|| failures as f64 / deploys as f64)));
    debug_assert_eq!(v.len(), n_cols);
    ChangeFeatures { values: v }
}

/// A deployment as the change features need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeploymentRef<'a> {
    pub deployment_id: &'a str,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<&'a str>,
    pub from_sha: Option<&'a str>,
    pub to_sha: &'a str,
}

/// What the change features of one deployment are made of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeContext {
    /// `None` only for a default value.
    pub range_state: Option<RangeState>,
    pub features: ChangeFeatures,
    pub history: HistoryContext,
}

fn past(repo: &RepoHistory, d: &DeploymentRef<'_>, range: &CommitRange) -> PastDeployment {
    PastDeployment {
        deployment_id: d.deployment_id.to_owned(),
        started_at: d.started_at,
        ended_at: d.ended_at,
        outcome: d.outcome.map(str::to_owned),
        paths: repo.touched_paths(range).into_iter().map(str::to_owned).collect(),
    }
}

/// Offline: the change context of every deployment of one service (same order as given), each
/// as of its own start, walking the history forward once.
pub fn service_change_contexts(repo: &RepoHistory, deployments: &[DeploymentRef<'_>]) -> Vec<ChangeContext> {
    let ranges: Vec<CommitRange> = deployments.iter().map(|d| repo.range(d.from_sha, d.to_sha)).collect();
    let mut history = ServiceHistory::new(deployments.iter().zip(&ranges).map(|(d, r)| past(repo, d, r)).collect());
    let mut order: Vec<usize> = (0..deployments.len()).collect();
    order.sort_by_key(|&i| (deployments[i].started_at, i));
    let mut out = vec![ChangeContext::default(); deployments.len()];
    for i in order {
        history.advance_to(deployments[i].started_at);
        out[i] = ChangeContext {
            range_state: Some(ranges[i].state),
            features: change_features(repo, &ranges[i], &history),
            history: history.context(),
        };
    }
    out
}

/// Online: the change context of a deployment of `from_sha..to_sha` starting at `started_at`,
/// given the service's known deployments (it may be among them, or not yet).
pub fn change_context_at(
    repo: &RepoHistory,
    known: &[DeploymentRef<'_>],
    from_sha: Option<&str>,
    to_sha: &str,
    started_at: i64,
) -> ChangeContext {
    let mut history =
        ServiceHistory::new(known.iter().map(|d| past(repo, d, &repo.range(d.from_sha, d.to_sha))).collect());
    history.advance_to(started_at);
    let range = repo.range(from_sha, to_sha);
    ChangeContext { range_state: Some(range.state), features: change_features(repo, &range, &history), history: history.context() }
}
