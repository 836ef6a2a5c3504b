//! `docs/schemas.md` is generated from `omen_features::schema`; this keeps it true.
//! Regenerate with `OMEN_UPDATE_DOCS=1 cargo test --workspace --test it schema_docs`.

use omen_features::schema::DatasetSchema;

#[test]
fn schema_docs_are_current() {
    let mut text = String::from(
        "# Dataset schemas\n\nGenerated from `features/src/schema.rs` by \
         `OMEN_UPDATE_DOCS=1 cargo test --workspace --test it schema_docs`; do not edit by hand.\n\
         Types are as pyarrow reads them (`str(field.type)`); partition keys are hive folders, read as strings.\n\n",
    );
    for d in DatasetSchema::all() {
        text.push_str(&d.to_markdown());
        text.push('\n');
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = std::path::Path::new(&manifest).join("../docs/schemas.md");
    if std::env::var_os("OMEN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(current == text, "docs/schemas.md is stale: run OMEN_UPDATE_DOCS=1 cargo test --workspace --test it schema_docs");
}

#[test]
fn every_dataset_has_documented_columns_and_unique_names() {
    for d in DatasetSchema::all() {
        let mut names: Vec<&str> = d.columns.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), d.columns.len(), "{} has a duplicate column", d.name);
        for c in d.columns {
            assert!(!c.doc.is_empty(), "{}.{} has no doc", d.name, c.name);
        }
        for k in d.partition_by {
            assert!(d.column(k).is_none(), "{}: partition key {k} must not also be a file column", d.name);
        }
    }
}

const FEATURES_INTRO: &str = "# Feature table (`features/`)

Generated from `omen_features::feature` by `OMEN_UPDATE_DOCS=1 cargo test --workspace --test it \
schema_docs`; do not edit by hand. One row per deployment × checkpoint, partitioned as
`service=…/`, keyed by `deployment_id` and `checkpoint_at` (timestamp, UTC); the columns and
their hash are also written to `features/_schema.json` beside the data. `<metric>` stands for
every metric that becomes a feature (`[features] metrics`, or every metric with canary or
baseline samples except counters), `<name>` for every `[[features.error_rates]]` pair, `<load>`
for every metric of `[features] load_tests` (samples of role `loadtest`: the new version under
synthetic load at the full-traffic rate, compared with the baseline's live samples).

Every column may be null, and null is the NODATA state, never a NaN. A row sees nothing after
its checkpoint: samples up to it, the traffic step in force at it, and only the deployments that
ended before the canary started. Labels (`label…`) are outcomes, known only afterwards.

Bad input ends in a defined state: commits never ingested → `change_state = commits_missing` and
every change feature null; a metric of one side only → `m__<metric>__state = baseline_missing`
(or `canary_missing`) with the counts filled and every comparison null; an empty window →
`no_data`; duplicate samples (same series and time) → one sample, their mean, counted in
`duplicates`; clock skew between canary and baseline → each side cut by its own clock, the trend
pairing samples at most `max_pair_gap` apart (`trend_pairs` says how many), null under 3 pairs;
±Inf samples → ranked by the Mann-Whitney test, left out of the averaging statistics, counted in
`infinite`; no load test in the window → `l__<load>__state = no_data`, only `n` (0) filled.

";

#[test]
fn feature_docs_are_current() {
    use omen_features::feature::{ErrorRateSpec, FeatureParams, FeatureSet};
    let mut params = FeatureParams::default();
    params.error_rates = vec![ErrorRateSpec { name: "<name>".into(), errors: "errors".into(), total: Some("requests".into()) }];
    let mut valid = FeatureParams::default().check().unwrap();
    valid.error_rates = params.error_rates;
    valid.load_tests = vec!["<load>".into()];
    let set = FeatureSet::new(valid, ["<metric>".to_string()]);
    let mut text = String::from(FEATURES_INTRO);
    text.push_str("| column | kind | role | meaning |\n|---|---|---|---|\n");
    for c in &set.schema().columns {
        let role = if c.label { "label" } else { "input" };
        text.push_str(&format!("| `{}` | {} | {role} | {} |\n", c.name, c.kind.as_str(), c.doc.replace('|', "\\|")));
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = std::path::Path::new(&manifest).join("../docs/features.md");
    if std::env::var_os("OMEN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(current == text, "docs/features.md is stale: run OMEN_UPDATE_DOCS=1 cargo test --workspace --test it schema_docs");
}
