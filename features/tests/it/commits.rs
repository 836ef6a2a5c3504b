//! `omen ingest commits` against real repositories built in temporary directories with the git
//! CLI: fixed authors and dates, no global or system git config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use omen_features::Masker;
use omen_features::ingest::commits::*;
use omen_features::schema::{COMMIT_FILES, COMMITS};
use polars::prelude::*;

/// 2020-09-13T12:26:40Z.
const T0: i64 = 1_600_000_000;
const DAY: i64 = 86_400;

/// The flags the module documents: `la`, `ld` and `nf` must equal what this prints.
const SHOW: &[&str] =
    &["show", "--numstat", "--format=", "-M", "--diff-merges=first-parent", "--diff-algorithm=myers", "--no-textconv"];

fn masker() -> Masker {
    Masker::new([42; 32])
}

/// A repository in a temporary directory, driven by hermetic git commands.
struct Repo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Repo {
    fn new(name: &str) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo { _tmp: tmp, dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn command(&self, who: &str, day: i64) -> Command {
        let date = format!("@{} +0000", T0 + day * DAY);
        let email = format!("{who}@example.com");
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(&self.dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", who)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", who)
            .env("GIT_COMMITTER_EMAIL", &email)
            .env("GIT_COMMITTER_DATE", &date)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        c
    }

    fn git_bytes_as(&self, who: &str, day: i64, args: &[&str]) -> Vec<u8> {
        let out = self.command(who, day).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn git_as(&self, who: &str, day: i64, args: &[&str]) -> String {
        String::from_utf8(self.git_bytes_as(who, day, args)).unwrap().trim().to_string()
    }

    fn git(&self, args: &[&str]) -> String {
        self.git_as("nobody", 0, args)
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Stages everything and commits as `who` on day `day`; returns the commit id.
    fn commit(&self, who: &str, day: i64, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git_as(who, day, &["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn lines(n: usize, tag: &str) -> String {
    (0..n).map(|i| format!("{tag} line {i}\n")).collect()
}

/// One commit row, by column name.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    sha: String,
    ts: i64,
    author: String,
    message: String,
    parents: i32,
    ns: i64,
    nd: i64,
    nf: i64,
    entropy: f64,
    la: i64,
    ld: i64,
    lt: f64,
    fix: bool,
    ndev: i64,
    age: f64,
    nuc: i64,
    exp: f64,
    rexp: f64,
    sexp: f64,
}

fn series<'a>(df: &'a DataFrame, name: &str) -> &'a Series {
    df.column(name).unwrap().as_materialized_series()
}

fn rows(t: &CommitTables) -> Vec<Row> {
    let df = &t.commits;
    let i64s = |n: &str| series(df, n).i64().unwrap().clone();
    let f64s = |n: &str| series(df, n).f64().unwrap().clone();
    let ts = series(df, "ts").cast(&DataType::Int64).unwrap();
    let ts = ts.i64().unwrap();
    (0..df.height())
        .map(|i| Row {
            sha: series(df, "sha").str().unwrap().get(i).unwrap().to_string(),
            ts: ts.get(i).unwrap(),
            author: series(df, "author").str().unwrap().get(i).unwrap().to_string(),
            message: series(df, "message").str().unwrap().get(i).unwrap().to_string(),
            parents: series(df, "parents").i32().unwrap().get(i).unwrap(),
            ns: i64s("ns").get(i).unwrap(),
            nd: i64s("nd").get(i).unwrap(),
            nf: i64s("nf").get(i).unwrap(),
            entropy: f64s("entropy").get(i).unwrap(),
            la: i64s("la").get(i).unwrap(),
            ld: i64s("ld").get(i).unwrap(),
            lt: f64s("lt").get(i).unwrap(),
            fix: series(df, "fix").bool().unwrap().get(i).unwrap(),
            ndev: i64s("ndev").get(i).unwrap(),
            age: f64s("age").get(i).unwrap(),
            nuc: i64s("nuc").get(i).unwrap(),
            exp: f64s("exp").get(i).unwrap(),
            rexp: f64s("rexp").get(i).unwrap(),
            sexp: f64s("sexp").get(i).unwrap(),
        })
        .collect()
}

/// One `commit_files/` row: (path, old_path, added, deleted, kind, binary).
type FileRow = (String, Option<String>, i64, i64, String, bool);

fn file_rows(t: &CommitTables, sha: &str) -> Vec<FileRow> {
    let df = &t.commit_files;
    let s = |n: &str| series(df, n).str().unwrap().clone();
    let (shas, paths, olds, kinds) = (s("sha"), s("path"), s("old_path"), s("change_kind"));
    let added = series(df, "lines_added").i64().unwrap().clone();
    let deleted = series(df, "lines_deleted").i64().unwrap().clone();
    let binary = series(df, "is_binary").bool().unwrap().clone();
    (0..df.height())
        .filter(|&i| shas.get(i) == Some(sha))
        .map(|i| {
            (
                paths.get(i).unwrap().to_string(),
                olds.get(i).map(str::to_string),
                added.get(i).unwrap(),
                deleted.get(i).unwrap(),
                kinds.get(i).unwrap().to_string(),
                binary.get(i).unwrap(),
            )
        })
        .collect()
}

fn by_sha<'a>(rows: &'a [Row], sha: &str) -> &'a Row {
    rows.iter().find(|r| r.sha == sha).unwrap_or_else(|| panic!("no row for {sha}"))
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
}

fn read(repo: &Repo, range: Option<&str>) -> CommitTables {
    read_commits(repo.path(), &CommitOptions { range: range.map(str::to_string) }, &masker()).unwrap()
}

/// A repository with most of what real histories hold: several authors, renames with and without
/// changes, a binary file, a deletion, a merged branch, an empty commit and odd file names.
fn varied_repo() -> (Repo, Vec<(&'static str, String)>) {
    let r = Repo::new("varied repo ü");
    let mut c = Vec::new();
    r.write("README.md", lines(3, "readme"));
    r.write("src/lib.rs", lines(10, "lib"));
    r.write("src/util/mod.rs", lines(20, "util"));
    r.write("old.txt", lines(2, "old"));
    c.push(("init", r.commit("alice", 0, "Initial import")));

    let mut lib = lines(10, "lib").replace("lib line 3\n", "lib line three\n");
    lib.push_str("more\nmore\n");
    r.write("src/lib.rs", &lib);
    r.write("docs/my file ü.md", lines(4, "doc"));
    r.write("assets/logo.bin", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\x01\x02\x03");
    c.push(("binary", r.commit("bob", 1, "Add docs and logo, ping bob@example.com")));

    r.git(&["mv", "README.md", "docs/README.md"]);
    c.push(("pure rename", r.commit("carol", 2, "Move the readme")));

    r.git(&["mv", "src/util/mod.rs", "src/helpers.rs"]);
    r.write("src/helpers.rs", lines(20, "util").replace("util line 7\n", "util line seven\n"));
    c.push(("rename with change", r.commit("alice", 3, "Rename util to helpers")));

    r.git(&["rm", "-q", "old.txt"]);
    r.write("assets/logo.bin", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\x04\x05");
    c.push(("delete", r.commit("bob", 4, "Drop old.txt")));

    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("src/lib.rs", format!("{lib}feature\n"));
    r.write("feature.txt", lines(5, "feature"));
    r.write("we\"ird 'name'\twith tab.txt", "odd\n");
    c.push(("branch", r.commit("carol", 5, "Feature work")));

    r.git(&["checkout", "-q", "main"]);
    r.write("docs/README.md", lines(4, "readme"));
    c.push(("main", r.commit("alice", 6, "Expand the readme")));

    r.git_as("bob", 7, &["merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature"]);
    c.push(("merge", r.git(&["rev-parse", "HEAD"])));

    c.push(("empty", r.commit("alice", 8, "An empty commit")));

    r.write("new\nline.txt", "a\nb\n");
    r.write("docs/my file ü.md", lines(4, "doc").replace("doc line 0\n", ""));
    r.git(&["add", "-A"]);
    let status = r
        .command("Dave", 9)
        .env("GIT_AUTHOR_EMAIL", "Dave@Example.COM")
        .args(["commit", "-q", "-m", "fix: newline in a name"])
        .status()
        .unwrap();
    assert!(status.success());
    c.push(("odd names", r.git(&["rev-parse", "HEAD"])));
    (r, c)
}

/// (la, ld, nf) from plain `git show --numstat` output, binary `-` as 0 lines.
fn show_totals(repo: &Repo, sha: &str) -> (i64, i64, i64) {
    let mut args = SHOW.to_vec();
    args.push(sha);
    let out = repo.git_bytes_as("nobody", 0, &args);
    let (mut la, mut ld, mut nf) = (0, 0, 0);
    for line in String::from_utf8_lossy(&out).lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (a, d) = (parts.next().unwrap(), parts.next().unwrap());
        la += a.parse::<i64>().unwrap_or_else(|_| {
            assert_eq!(a, "-");
            0
        });
        ld += d.parse::<i64>().unwrap_or_else(|_| {
            assert_eq!(d, "-");
            0
        });
        nf += 1;
    }
    (la, ld, nf)
}

/// (path, added, deleted, binary) per file from `git show --numstat -z`.
fn show_files(repo: &Repo, sha: &str) -> BTreeSet<(String, i64, i64, bool)> {
    let mut args = SHOW.to_vec();
    args.extend(["-z", sha]);
    let out = repo.git_bytes_as("nobody", 0, &args);
    let mut fields = out.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    let mut files = BTreeSet::new();
    while let Some(f) = fields.next() {
        let f = f.trim_start_matches('\n');
        if f.is_empty() {
            continue;
        }
        let mut parts = f.splitn(3, '\t');
        let (a, d, p) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let path = if p.is_empty() {
            fields.next().unwrap();
            fields.next().unwrap()
        } else {
            p.to_string()
        };
        let binary = a == "-";
        files.insert((path, a.parse().unwrap_or(0), d.parse().unwrap_or(0), binary));
    }
    files
}

#[test]
fn line_counts_equal_git_show_numstat_for_every_commit() {
    let (repo, commits) = varied_repo();
    let t = read(&repo, None);
    let rows = rows(&t);
    let all = repo.git(&["rev-list", "--all"]);
    assert_eq!(rows.len(), all.lines().count());
    assert_eq!(rows.len(), commits.len());
    for sha in all.lines() {
        let row = by_sha(&rows, sha);
        assert_eq!((row.la, row.ld, row.nf), show_totals(&repo, sha), "commit {sha}");
        let ours: BTreeSet<_> = file_rows(&t, sha).into_iter().map(|(p, _, a, d, _, b)| (p, a, d, b)).collect();
        assert_eq!(ours, show_files(&repo, sha), "commit {sha}");
    }
}

/// Lines of `path` in commit `rev` as `git cat-file` gives the blob; 0 for a binary blob.
fn lines_in(repo: &Repo, rev: &str, path: &str) -> f64 {
    let blob = repo.git_bytes_as("nobody", 0, &["cat-file", "blob", &format!("{rev}:{path}")]);
    if blob.contains(&0) {
        return 0.0;
    }
    let newlines = blob.iter().filter(|&&b| b == b'\n').count();
    (newlines + usize::from(blob.last().is_some_and(|&b| b != b'\n'))) as f64
}

#[test]
fn lt_is_the_mean_size_of_the_touched_files_in_the_first_parent() {
    let (repo, commits) = varied_repo();
    let t = read(&repo, None);
    let rows = rows(&t);
    for (name, sha) in &commits {
        let files = file_rows(&t, sha);
        let parent = repo.git(&["log", "-1", "--format=%P", sha]);
        let before: f64 = files
            .iter()
            .filter(|f| f.4 != "added")
            .map(|f| lines_in(&repo, parent.split(' ').next().unwrap(), f.1.as_deref().unwrap_or(&f.0)))
            .sum();
        let want = if files.is_empty() { 0.0 } else { before / files.len() as f64 };
        assert_close(by_sha(&rows, sha).lt, want, &format!("lt of {name}"));
    }
    // The merge starts from main's src/lib.rs (12 lines), not the branch's (13).
    let merge = &commits.iter().find(|(n, _)| *n == "merge").unwrap().1;
    assert_close(by_sha(&rows, merge).lt, 12.0 / 3.0, "lt of the merge");
}

#[test]
fn change_kinds_renames_binaries_merges_and_empty_commits() {
    let (repo, commits) = varied_repo();
    let t = read(&repo, None);
    let rows = rows(&t);
    let sha = |name: &str| commits.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let f = |p: &str, old: Option<&str>, a: i64, d: i64, k: &str, b: bool| -> FileRow {
        (p.to_string(), old.map(str::to_string), a, d, k.to_string(), b)
    };

    // Oldest first, parents before children.
    let order: Vec<&str> = rows.iter().map(|r| r.sha.as_str()).collect();
    let expected: Vec<String> = commits.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(order, expected);

    let mut binary = file_rows(&t, &sha("binary"));
    binary.sort();
    assert_eq!(
        binary,
        vec![
            f("assets/logo.bin", None, 0, 0, "added", true),
            f("docs/my file ü.md", None, 4, 0, "added", false),
            f("src/lib.rs", None, 3, 1, "modified", false),
        ]
    );
    assert_eq!(
        file_rows(&t, &sha("pure rename")),
        vec![f("docs/README.md", Some("README.md"), 0, 0, "renamed", false)]
    );
    assert_eq!(
        file_rows(&t, &sha("rename with change")),
        vec![f("src/helpers.rs", Some("src/util/mod.rs"), 1, 1, "renamed", false)]
    );
    let mut delete = file_rows(&t, &sha("delete"));
    delete.sort();
    assert_eq!(
        delete,
        vec![f("assets/logo.bin", None, 0, 0, "modified", true), f("old.txt", None, 0, 2, "deleted", false)]
    );

    // The merge is diffed against its first parent: it brings in the branch's changes.
    let merge = by_sha(&rows, &sha("merge"));
    assert_eq!((merge.parents, merge.nf, merge.la, merge.ld), (2, 3, 7, 0));
    let mut paths: Vec<String> = file_rows(&t, &sha("merge")).into_iter().map(|r| r.0).collect();
    paths.sort();
    assert_eq!(paths, ["feature.txt", "src/lib.rs", "we\"ird 'name'\twith tab.txt"]);

    let empty = by_sha(&rows, &sha("empty"));
    assert_eq!((empty.parents, empty.nf, empty.la, empty.ld, empty.ns, empty.nd), (1, 0, 0, 0, 0, 0));
    assert_eq!((empty.entropy, empty.lt, empty.age, empty.ndev, empty.nuc), (0.0, 0.0, 0.0, 0, 0));
    assert!(file_rows(&t, &sha("empty")).is_empty());
    assert_eq!(by_sha(&rows, &sha("init")).parents, 0);

    // The renamed file keeps its history: its 20 lines, its author and its age.
    let moved = by_sha(&rows, &sha("rename with change"));
    assert_eq!((moved.lt, moved.ndev, moved.nuc), (20.0, 1, 1));
    assert_close(moved.age, 3.0, "age across a rename");

    // Odd names come through as they are; author identity is the lower-cased e-mail.
    let odd = by_sha(&rows, &sha("odd names"));
    assert_eq!(odd.author, masker().mask("dave@example.com"));
    assert!(odd.fix);
    let mut odd_files = file_rows(&t, &sha("odd names"));
    odd_files.sort();
    assert_eq!(
        odd_files,
        vec![f("docs/my file ü.md", None, 0, 1, "modified", false), f("new\nline.txt", None, 2, 0, "added", false)]
    );

    // E-mails are masked, in the author column and in messages.
    let binary_row = by_sha(&rows, &sha("binary"));
    assert_eq!(binary_row.author, masker().mask("bob@example.com"));
    assert!(!binary_row.message.contains("bob@example.com"), "{}", binary_row.message);
    assert!(binary_row.message.starts_with("Add docs and logo, ping email:"), "{}", binary_row.message);
    assert_eq!(binary_row.ts, (T0 + DAY) * 1_000_000);
}

#[test]
fn frames_have_the_dataset_columns_and_types() {
    let (repo, _) = varied_repo();
    let t = read(&repo, None);
    for (df, schema) in [(&t.commits, &COMMITS), (&t.commit_files, &COMMIT_FILES)] {
        let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
        let want: Vec<&str> = schema.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, want);
        for c in schema.columns {
            assert_eq!(df.column(c.name).unwrap().dtype(), &c.ty.dtype(), "{}", c.name);
            if !c.nullable {
                assert_eq!(df.column(c.name).unwrap().null_count(), 0, "{}", c.name);
            }
        }
    }
}

/// c1 alice day 0: a.txt (4 lines), dir/b.txt (2 lines).
/// c2 bob day 10: a.txt +3 −1, dir/c.txt +1.
/// c3 alice day 30: a.txt +1, dir/b.txt −1.
/// c4 alice day 800: dir/b.txt +1, "Fixes crash in parser".
fn tiny_repo() -> (Repo, [String; 4]) {
    let r = Repo::new("tiny repo ü 'q'");
    r.write("a.txt", "1\n2\n3\n4\n");
    r.write("dir/b.txt", "x\ny\n");
    let c1 = r.commit("alice", 0, "Initial import");
    r.write("a.txt", "1b\n2\n3\n4\n5\n6\n");
    r.write("dir/c.txt", "c\n");
    let c2 = r.commit("bob", 10, "Add more numbers");
    r.write("a.txt", "1b\n2\n3\n4\n5\n6\n7\n");
    r.write("dir/b.txt", "x\n");
    let c3 = r.commit("alice", 30, "Tidy b");
    r.write("dir/b.txt", "x\nz\n");
    let c4 = r.commit("alice", 800, "Fixes crash in parser");
    (r, [c1, c2, c3, c4])
}

fn h(ps: &[f64]) -> f64 {
    -ps.iter().map(|p| p * p.log2()).sum::<f64>()
}

#[test]
fn kamei_metrics_by_hand() {
    let (repo, [c1, c2, c3, c4]) = tiny_repo();
    let rows = rows(&read(&repo, None));
    assert_eq!(rows.len(), 4);

    let r1 = by_sha(&rows, &c1);
    assert_eq!((r1.ns, r1.nd, r1.nf, r1.la, r1.ld), (2, 2, 2, 6, 0));
    assert_close(r1.entropy, h(&[4.0 / 6.0, 2.0 / 6.0]), "c1 entropy");
    assert_eq!((r1.lt, r1.age, r1.ndev, r1.nuc, r1.exp, r1.rexp, r1.sexp), (0.0, 0.0, 0, 0, 0.0, 0.0, 0.0));
    assert!(!r1.fix);

    let r2 = by_sha(&rows, &c2);
    assert_eq!((r2.ns, r2.nd, r2.nf, r2.la, r2.ld), (2, 2, 2, 4, 1));
    assert_close(r2.entropy, h(&[0.8, 0.2]), "c2 entropy");
    assert_close(r2.lt, (4.0 + 0.0) / 2.0, "c2 lt");
    assert_close(r2.age, (10.0 + 0.0) / 2.0, "c2 age");
    assert_eq!((r2.ndev, r2.nuc, r2.exp, r2.rexp, r2.sexp), (1, 1, 0.0, 0.0, 0.0));

    let r3 = by_sha(&rows, &c3);
    assert_eq!((r3.ns, r3.nd, r3.nf, r3.la, r3.ld), (2, 2, 2, 1, 1));
    assert_close(r3.entropy, 1.0, "c3 entropy");
    assert_close(r3.lt, (6.0 + 2.0) / 2.0, "c3 lt");
    assert_close(r3.age, (20.0 + 30.0) / 2.0, "c3 age");
    assert_eq!((r3.ndev, r3.nuc), (2, 2));
    assert_eq!((r3.exp, r3.rexp, r3.sexp), (1.0, 1.0, 1.0));

    let r4 = by_sha(&rows, &c4);
    assert_eq!((r4.ns, r4.nd, r4.nf, r4.la, r4.ld), (1, 1, 1, 1, 0));
    assert_eq!((r4.entropy, r4.lt, r4.ndev, r4.nuc), (0.0, 1.0, 1, 2));
    assert_close(r4.age, 770.0, "c4 age");
    assert_eq!((r4.exp, r4.sexp), (2.0, 2.0));
    // c1 and c3 were 800 and 770 days before: two whole years, 1/3 each.
    assert_close(r4.rexp, 2.0 / 3.0, "c4 rexp");
    assert!(r4.fix);
}

#[test]
fn a_range_outputs_its_commits_with_metrics_from_all_history() {
    let (repo, [c1, c2, c3, c4]) = tiny_repo();
    let all = rows(&read(&repo, None));
    let t = read(&repo, Some(&format!("{c2}..{c4}")));
    let ranged = rows(&t);
    assert_eq!(ranged.iter().map(|r| r.sha.as_str()).collect::<Vec<_>>(), [c3.as_str(), c4.as_str()]);
    assert_eq!(&ranged[0], by_sha(&all, &c3));
    assert_eq!(&ranged[1], by_sha(&all, &c4));
    let files: BTreeSet<String> =
        series(&t.commit_files, "sha").str().unwrap().iter().flatten().map(String::from).collect();
    assert_eq!(files, BTreeSet::from([c3.clone(), c4.clone()]));

    let upto = rows(&read(&repo, Some(&c2)));
    assert_eq!(upto.iter().map(|r| r.sha.as_str()).collect::<Vec<_>>(), [c1.as_str(), c2.as_str()]);
    assert!(rows(&read(&repo, Some(&format!("{c4}..{c4}")))).is_empty());
}

#[test]
fn bad_ranges_are_errors_naming_the_range() {
    let (repo, _) = tiny_repo();
    for range in ["nope..also-nope", "--all", "", "HEAD..no such ref"] {
        let err = read_commits(repo.path(), &CommitOptions { range: Some(range.to_string()) }, &masker())
            .expect_err(range)
            .to_string();
        assert!(err.contains(&format!("`{range}`")), "{err}");
    }
}

#[test]
fn a_directory_that_is_not_a_repository_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("not a repo ü");
    std::fs::create_dir(&dir).unwrap();
    for path in [dir.clone(), tmp.path().join("missing")] {
        let err = read_commits(&path, &CommitOptions::default(), &masker()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a git repository"), "{err}");
    }
}

#[test]
fn a_repository_without_commits_gives_empty_tables() {
    let repo = Repo::new("empty");
    let t = read(&repo, None);
    assert_eq!((t.commits.height(), t.commit_files.height()), (0, 0));
    assert_eq!(t.commits.width(), COMMITS.columns.len());
    assert_eq!(t.commit_files.width(), COMMIT_FILES.columns.len());
}
