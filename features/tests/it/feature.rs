//! The feature functions over typed windows: commit ranges against git, file kinds, the
//! normalisation of samples, the bad-input states, and point-in-time history.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use omen_features::Masker;
use omen_features::feature::*;
use omen_features::ingest::commits::{CommitOptions, read_commits};
use polars::prelude::*;
use proptest::prelude::*;

const MIN: i64 = 60_000_000;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sample_repo() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let bundle = Path::new(&manifest).join("../data/samples/repos/checkout.bundle");
    let dir = tmp.path().join("checkout");
    let out = Command::new("git")
        .args(["clone", "-q", "--mirror"])
        .arg(&bundle)
        .arg(&dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (tmp, dir)
}

fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name).unwrap().str().unwrap().iter().map(|s| s.unwrap_or("").to_string()).collect()
}

/// The repository's history as `omen ingest commits` writes it, read back into a RepoHistory.
fn history_of(dir: &Path) -> (RepoHistory, Vec<String>) {
    let t = read_commits(dir, &CommitOptions::default(), &Masker::new([1; 32])).unwrap();
    let c = &t.commits;
    let shas = strs(c, "sha");
    let parents = strs(c, "parent_shas");
    let authors = strs(c, "author");
    let commits = shas
        .iter()
        .zip(&parents)
        .zip(&authors)
        .map(|((sha, p), a)| Commit {
            sha: sha.clone(),
            parents: p.split_whitespace().map(str::to_owned).collect(),
            ts: 0,
            author: a.clone(),
            fix: false,
            kamei: [1.0; 13],
        })
        .collect();
    let f = &t.commit_files;
    let files = strs(f, "sha")
        .into_iter()
        .zip(strs(f, "path"))
        .map(|(sha, path)| FileChange { sha, path, lines_added: 1, lines_deleted: 0 })
        .collect();
    (RepoHistory::new(commits, files), shas)
}

#[test]
fn commit_ranges_are_what_git_rev_list_prints() {
    let (_tmp, dir) = sample_repo();
    let (repo, shas) = history_of(&dir);
    // Every commit of every branch (the sample has a merged feature branch).
    let all: Vec<String> = git(&dir, &["rev-list", "--all", "--topo-order"]).lines().map(str::to_owned).collect();
    assert!(all.len() >= 40 && repo.len() == all.len(), "{} commits, {} ingested", all.len(), repo.len());
    let merges = git(&dir, &["rev-list", "--all", "--merges"]);
    assert!(!merges.trim().is_empty(), "the sample needs a merge");
    let merge_list: Vec<String> = merges.lines().map(str::to_owned).collect();
    let mut picks: Vec<&String> = all.iter().step_by(3).chain(&merge_list).collect();
    picks.sort();
    picks.dedup();
    let mut checked = 0;
    for from in &picks {
        for to in &picks {
            let expected: BTreeSet<String> =
                git(&dir, &["rev-list", to, &format!("^{from}")]).lines().map(str::to_owned).collect();
            let range = repo.range(Some(from), to);
            assert_eq!(range.state, RangeState::Ok);
            let got: BTreeSet<String> = range.commits.iter().map(|&i| shas[i].clone()).collect();
            assert_eq!(got, expected, "{from}..{to}");
            checked += 1;
        }
    }
    assert!(checked > 100);
    // Ranges across the merge: the feature branch's commit is inside.
    let merge = merges.lines().next().unwrap();
    let before = git(&dir, &["rev-parse", &format!("{merge}^1")]);
    let range = repo.range(Some(before.trim()), merge);
    assert_eq!(range.commits.len(), 2, "the merge and the feature commit");
}

#[test]
fn unknown_and_missing_ends_have_states() {
    let (_tmp, dir) = sample_repo();
    let (repo, _) = history_of(&dir);
    let head = git(&dir, &["rev-parse", "main"]);
    let head = head.trim();
    assert_eq!(repo.range(Some("0".repeat(40).as_str()), head).state, RangeState::FromShaMissing);
    assert_eq!(repo.range(None, head).state, RangeState::NoFromSha);
    let missing = repo.range(Some(head), &"f".repeat(40));
    assert_eq!(missing.state, RangeState::CommitsMissing);
    assert!(repo.range(Some(head), head).commits.is_empty(), "a redeploy ships nothing");
    // Change features of a range whose commits were never ingested: the state, then nulls.
    let f = change_features(&repo, &missing, &ServiceHistory::default());
    let cols = change_columns();
    assert_eq!(f.values.len(), cols.len());
    assert_eq!(f.values[0], Value::Str(Some("commits_missing".into())));
    assert!(f.values[1..].iter().all(Value::is_null));
}

#[test]
fn file_kinds_follow_the_documented_rules() {
    let cases = [
        ("Cargo.toml", FileKind::Dependency),
        ("web/package-lock.json", FileKind::Dependency),
        ("go.sum", FileKind::Dependency),
        ("requirements-dev.txt", FileKind::Dependency),
        ("poetry.lock", FileKind::Dependency),
        ("db/migrate/20240101_add_users.rb", FileKind::Migration),
        ("migrations/001_init.sql", FileKind::Migration),
        ("app/alembic/versions/3f2a_add.py", FileKind::Migration),
        ("src/cart_test.go", FileKind::Test),
        ("tests/test_cart.py", FileKind::Test),
        ("web/src/cart.test.tsx", FileKind::Test),
        ("src/test/java/com/x/CartTest.java", FileKind::Test),
        ("README.md", FileKind::Docs),
        ("docs/architecture.svg", FileKind::Docs),
        ("LICENSE", FileKind::Docs),
        ("deploy/values.yaml", FileKind::Config),
        ("Dockerfile", FileKind::Config),
        (".github/workflows/ci.yml", FileKind::Config),
        ("infra/main.tf", FileKind::Config),
        ("src/checkout.rs", FileKind::Code),
        ("src/test_utils.rs", FileKind::Code),
        ("assets.bin", FileKind::Code),
    ];
    for (path, kind) in cases {
        assert_eq!(FileKind::of(path), kind, "{path}");
    }
}

fn s(ts_min: i64, series: u64, value: f64) -> Sample {
    Sample { ts: ts_min * MIN, series, value }
}

proptest! {
    #[test]
    fn series_do_not_depend_on_sample_order(
        raw in proptest::collection::vec((0i64..20, 0u64..3, prop_oneof![Just(f64::NAN), -5.0f64..5.0]), 0..60),
        seed in any::<u64>(),
    ) {
        let samples: Vec<Sample> = raw.iter().map(|&(t, k, v)| s(t, k, v)).collect();
        let mut shuffled = samples.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = TimeSeries::from_samples(samples.clone());
        let b = TimeSeries::from_samples(shuffled);
        let (wa, wb) = (a.all(), b.all());
        prop_assert_eq!(wa.ts, wb.ts);
        prop_assert_eq!(wa.series, wb.series);
        prop_assert_eq!(wa.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), wb.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // One sample per (time, series); duplicates counted.
        let distinct: BTreeSet<(i64, u64)> = samples.iter().map(|x| (x.ts, x.series)).collect();
        prop_assert_eq!(a.len(), distinct.len());
        prop_assert_eq!(wa.duplicates, samples.len() - distinct.len());
    }
}

#[test]
fn duplicates_collapse_to_the_mean_of_their_values() {
    let series = TimeSeries::from_samples(vec![s(1, 7, 2.0), s(1, 7, f64::NAN), s(1, 7, 4.0), s(1, 8, 10.0), s(2, 7, f64::NAN)]);
    let w = series.all();
    assert_eq!(w.values[0], 3.0);
    assert_eq!(w.values[1], 10.0);
    assert!(w.values[2].is_nan());
    assert_eq!(w.duplicates, 2);
    // Windows include both ends.
    assert_eq!(series.between(MIN, MIN).values.len(), 2);
    assert_eq!(series.between(2 * MIN, 3 * MIN).values.len(), 1);
    assert_eq!(series.between(3 * MIN, 2 * MIN).values.len(), 0);
}

#[test]
fn counter_increases_handle_resets_and_several_series() {
    let series = TimeSeries::from_samples(vec![
        s(0, 1, 100.0),
        s(1, 1, 110.0),
        s(2, 1, 5.0), // reset: counts 5
        s(3, 1, 8.0),
        s(0, 2, 50.0),
        s(3, 2, 60.0),
        s(2, 2, f64::NAN),
    ]);
    assert_eq!(series.all().counter_increase(), Some(10.0 + 5.0 + 3.0 + 10.0));
    assert_eq!(TimeSeries::from_samples(vec![s(0, 1, 3.0)]).all().counter_increase(), None);
}

fn params() -> ValidFeatureParams {
    FeatureParams::default().check().unwrap()
}

fn noisy(n: i64, offset_min: f64, base: f64, seed: u64, slope: f64) -> Vec<Sample> {
    let mut x = seed | 1;
    (0..n)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 1000) as f64 / 1000.0 - 0.5;
            Sample { ts: k * MIN + (offset_min * MIN as f64) as i64, series: 1, value: base + noise + slope * k as f64 }
        })
        .collect()
}

#[test]
fn a_metric_of_one_side_only_or_none_is_a_state_not_a_number() {
    let p = params();
    let canary = TimeSeries::from_samples(noisy(20, 0.0, 10.0, 3, 0.0));
    let empty = TimeSeries::default();
    let f = metric_features(canary.all(), empty.all(), 0, &p);
    assert_eq!(f.state, Some(WindowState::BaselineMissing));
    assert_eq!((f.n_canary, f.n_baseline), (20, 0));
    assert!(f.canary_mean.is_some());
    assert!(f.mwu_p.is_none() && f.hl_shift.is_none() && f.ratio_mean.is_none() && f.trend_slope.is_none());
    let g = metric_features(empty.all(), canary.all(), 0, &p);
    assert_eq!(g.state, Some(WindowState::CanaryMissing));
    let nan_only = TimeSeries::from_samples(vec![s(1, 1, f64::NAN), s(2, 1, f64::NAN)]);
    let h = metric_features(nan_only.all(), nan_only.all(), 0, &p);
    assert_eq!(h.state, Some(WindowState::NoData));
    assert_eq!(h.nan, 4);
    // Every float of every state is finite or null.
    for f in [f, g, h] {
        for v in f.values() {
            if let Value::Float(Some(x)) = v {
                assert!(x.is_finite());
            }
        }
    }
}

#[test]
fn infinite_samples_are_ranked_but_not_averaged() {
    let p = params();
    let mut c = noisy(20, 0.0, 10.0, 5, 0.0);
    c.push(Sample { ts: 30 * MIN, series: 1, value: f64::INFINITY });
    let b = noisy(20, 0.0, 10.0, 9, 0.0);
    let f = metric_features(TimeSeries::from_samples(c).all(), TimeSeries::from_samples(b).all(), 0, &p);
    assert_eq!(f.infinite, 1);
    assert_eq!(f.n_canary, 21);
    assert!(f.mwu_p.is_some() && f.hl_shift.is_some() && f.ratio_mean.is_some() && f.ewma_violations.is_some());
}

#[test]
fn clock_skew_within_the_pair_gap_keeps_the_trend_and_beyond_it_is_nodata() {
    let p = params(); // max_pair_gap 60 s
    let canary = TimeSeries::from_samples(noisy(30, 0.0, 10.0, 11, 0.3));
    let aligned = TimeSeries::from_samples(noisy(30, 0.0, 10.0, 13, 0.0));
    let skewed = TimeSeries::from_samples(noisy(30, 0.4, 10.0, 13, 0.0)); // baseline clock 24 s ahead
    let far = TimeSeries::from_samples(noisy(30, 40.0, 10.0, 13, 0.0)); // 40 minutes off
    let a = metric_features(canary.all(), aligned.all(), 0, &p);
    let b = metric_features(canary.all(), skewed.all(), 0, &p);
    let c = metric_features(canary.all(), far.between(0, 29 * MIN), 0, &p);
    assert_eq!((a.trend_pairs, b.trend_pairs), (30, 30));
    let (sa, sb) = (a.trend_slope.unwrap(), b.trend_slope.unwrap());
    assert!(sa > 0.25 && sb > 0.25, "a leak of 0.3 per minute: {sa} {sb}");
    // The baseline's window holds nothing: NODATA, no pairs.
    assert_eq!(c.state, Some(WindowState::BaselineMissing));
    assert_eq!(c.trend_pairs, 0);
    let d = metric_features(canary.all(), far.all(), 0, &p);
    assert_eq!(d.trend_pairs, 0);
    assert!(d.trend_slope.is_none(), "unpaired samples give no trend");
    assert!(d.mwu_p.is_some(), "the unpaired statistics still compare what each side reported");
}

#[test]
fn error_rates_come_from_counter_increases() {
    let counter = |rate: f64, n: i64, reset_at: Option<i64>| {
        let mut v = 0.0;
        TimeSeries::from_samples(
            (0..n)
                .map(|k| {
                    v += rate;
                    if Some(k) == reset_at {
                        v = rate;
                    }
                    Sample { ts: k * MIN, series: 1, value: v }
                })
                .collect(),
        )
    };
    let (ce, ct) = (counter(3.0, 21, None), counter(100.0, 21, None));
    let (be, bt) = (counter(0.5, 21, Some(10)), counter(100.0, 21, Some(10)));
    let w = CounterWindows {
        canary_errors: ce.all(),
        baseline_errors: be.all(),
        canary_total: Some(ct.all()),
        baseline_total: Some(bt.all()),
    };
    let f = error_rate_features(w, 0, 20 * MIN);
    assert_eq!(f.state, Some(CountState::Ok));
    assert_eq!(f.errors_canary, Some(60.0));
    assert_eq!(f.errors_baseline, Some(10.0));
    assert!((f.rate_canary.unwrap() - 0.03).abs() < 1e-12);
    assert!(f.p_value.unwrap() < 1e-6);
    // Sparse counts (0 against 2 errors) stay a valid, unremarkable test.
    let none = counter(0.0, 21, None);
    let two = TimeSeries::from_samples(vec![s(0, 1, 0.0), s(20, 1, 2.0)]);
    let sparse = CounterWindows {
        canary_errors: none.all(),
        baseline_errors: two.all(),
        canary_total: Some(ct.all()),
        baseline_total: Some(bt.all()),
    };
    let g = error_rate_features(sparse, 0, 20 * MIN);
    assert_eq!(g.p_value, Some(1.0));
    // No counter samples: NODATA.
    let empty = TimeSeries::default();
    let h = error_rate_features(CounterWindows { canary_errors: empty.all(), ..sparse }, 0, 20 * MIN);
    assert_eq!(h.state, Some(CountState::NoData));
}

fn deployment<'a>(id: &'a str, start_h: i64, end_h: i64, outcome: &'a str, to: &'a str) -> DeploymentRef<'a> {
    DeploymentRef {
        deployment_id: id,
        started_at: start_h * 60 * MIN,
        ended_at: Some(end_h * 60 * MIN),
        outcome: Some(outcome),
        from_sha: None,
        to_sha: to,
    }
}

#[test]
fn history_counts_only_deployments_that_ended_before_the_start() {
    let commit = |sha: &str| Commit { sha: sha.into(), parents: vec![], ts: 0, author: "a".into(), fix: false, kamei: [0.0; 13] };
    let file = |sha: &str, path: &str| FileChange { sha: sha.into(), path: path.into(), lines_added: 1, lines_deleted: 1 };
    let repo = RepoHistory::new(
        vec![commit("a"), commit("b"), commit("c"), commit("d")],
        vec![file("a", "src/x.rs"), file("b", "src/x.rs"), file("c", "src/x.rs"), file("d", "src/x.rs")],
    );
    // d1 failed and ended before d3 started; d2 failed but ends after d3 starts.
    let deps = [
        deployment("d1", 0, 1, "failed", "a"),
        deployment("d2", 2, 10, "rolled_back", "b"),
        deployment("d3", 3, 4, "success", "c"),
        deployment("d4", 11, 12, "success", "d"),
    ];
    let offline = service_change_contexts(&repo, &deps);
    let col = |name: &str| change_columns().iter().position(|c| c.0 == name).unwrap();
    let failures = |c: &ChangeContext| c.features.values[col("file_prior_failures_sum")].clone();
    assert_eq!(failures(&offline[2]), Value::Int(Some(1)), "only d1's failure is known when d3 starts");
    assert_eq!(failures(&offline[3]), Value::Int(Some(2)));
    assert_eq!(offline[2].history.previous_start, Some(2 * 60 * MIN));
    assert_eq!(offline[2].history.deploys_prior_7d, 2);
    // The online path, one deployment at a time, agrees with the offline walk.
    for (i, d) in deps.iter().enumerate() {
        let online = change_context_at(&repo, &deps, d.from_sha, d.to_sha, d.started_at);
        assert_eq!(online, offline[i], "{}", d.deployment_id);
    }
}

#[test]
fn parameters_are_checked_once_with_the_field_named() {
    let mut p = FeatureParams::default();
    p.checkpoints = vec!["5m".into(), "0s".into()];
    assert!(p.check().unwrap_err().to_string().contains("features.checkpoints"));
    let mut p = FeatureParams::default();
    p.confidence = 1.5;
    assert!(p.check().unwrap_err().to_string().contains("features.confidence"));
    let mut p = FeatureParams::default();
    p.error_rates = vec![ErrorRateSpec { name: "bad name".into(), errors: "e".into(), total: None }];
    assert!(p.check().unwrap_err().to_string().contains("features.error_rates.name"));
    assert_eq!(parse_duration("1h30m"), Ok(90 * MIN));
    assert_eq!(parse_duration("90"), Ok(90_000_000));
    assert!(parse_duration("5 parsecs").is_err());
    let v = FeatureParams::default().check().unwrap();
    assert_eq!(v.checkpoints_us, vec![5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN]);
}

#[test]
fn the_schema_hash_covers_names_kinds_and_roles_but_not_docs() {
    let set = FeatureSet::new(params(), ["latency".to_string(), "cpu".to_string()]);
    let schema = set.schema();
    assert!(schema.verify());
    assert!(schema.position("m__cpu__hl_shift").unwrap() < schema.position("m__latency__hl_shift").unwrap());
    let mut other = schema.clone();
    other.columns[0].doc = "changed".into();
    assert_eq!(FeatureSchema::compute_hash(&other.columns), schema.hash);
    other.columns[0].kind = Kind::Int;
    assert_ne!(FeatureSchema::compute_hash(&other.columns), schema.hash);
    assert!(!other.verify());
    assert!(schema.labels().all(|c| c.name.starts_with("label")));
}
