//! omen's own registry on a local store: versions, aliases as compare-and-swap logs, races,
//! rollback, deletion and integrity. (The MLflow backend and the kill test are end-to-end tests
//! in `tests/`.)

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use omen_features::feature::{FeatureColumn, FeatureSchema, Kind};
use omen_models::Error;
use omen_models::gbdt::{GbdtParams, Matrix};
use omen_models::registry::{
    AnyRegistry, CHAMPION, Expect, Lineage, ModelRef, NewVersion, Progress, Registry, StoreRegistry, VersionRef, open,
};

fn schema(names: &[&str]) -> FeatureSchema {
    FeatureSchema::new(
        names.iter().map(|n| FeatureColumn { name: n.to_string(), kind: Kind::Float, label: false, doc: String::new() }).collect(),
    )
}

fn new_version(name: &str, bytes: Vec<u8>, schema: FeatureSchema) -> NewVersion {
    NewVersion {
        name: name.into(),
        artifact: Bytes::from(bytes),
        artifact_file: "model.bin".into(),
        format: "test/1".into(),
        description: "a test".into(),
        metrics: BTreeMap::from([("auc".to_string(), 0.9)]),
        params: BTreeMap::from([("num_leaves".to_string(), "31".to_string())]),
        schema,
        feature_set: None,
        lineage: Lineage { source: "t.csv".into(), rows: 10, ..Default::default() },
        code_version: "omen test".into(),
        tags: BTreeMap::new(),
    }
}

fn registry(dir: &std::path::Path) -> AnyRegistry {
    open(dir.to_str().unwrap(), std::iter::empty::<(String, String)>(), Default::default()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

#[test]
fn versions_are_numbered_immutable_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    rt().block_on(async {
        let mut events = Vec::new();
        let v1 = r.register(new_version("omen-failure", vec![1; 100], schema(&["a"])), &mut |p| events.push(p)).await.unwrap();
        assert_eq!(v1.version, 1);
        assert_eq!(events.last(), Some(&Progress::Committed { version: 1 }));
        assert!(events.contains(&Progress::ArtifactStored));
        let v2 = r.register(new_version("omen-failure", vec![2; 100], schema(&["a"])), &mut |_| {}).await.unwrap();
        assert_eq!(v2.version, 2);
        let models = r.models().await.unwrap();
        assert_eq!(models.len(), 1);
        assert_eq!((models[0].versions, models[0].latest), (2, Some(2)));
        // Read back: everything recorded is there.
        let got = r.version("omen-failure", &VersionRef::Number(1)).await.unwrap();
        assert_eq!(got.metrics["auc"], 0.9);
        assert_eq!(got.params["num_leaves"], "31");
        assert_eq!(got.schema.hash, schema(&["a"]).hash);
        assert_eq!(got.lineage.rows, 10);
        assert_eq!(got.artifact.blake3, blake3::hash(&[1; 100]).to_hex().to_string());
        let art = r.fetch("omen-failure", &VersionRef::Latest).await.unwrap();
        assert_eq!(art.bytes(), &[2; 100]);
        art.check_schema(&schema(&["a"]).hash).unwrap();
        let e = art.check_schema(&schema(&["b"]).hash).unwrap_err();
        assert!(matches!(e, Error::SchemaMismatch { .. }), "{e}");
        // Not found, by model and by version.
        let e = r.version("omen-nope", &VersionRef::Latest).await.unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }) && e.to_string().contains("model `omen-nope` not found"), "{e}");
        let e = r.fetch("omen-failure", &VersionRef::Number(7)).await.unwrap_err();
        assert!(e.to_string().contains("version 7 of `omen-failure` not found"), "{e}");
    });
}

#[test]
fn a_tampered_artifact_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    rt().block_on(async {
        let v = r.register(new_version("omen-failure", vec![7; 1000], schema(&["a"])), &mut |_| {}).await.unwrap();
        let path = dir.path().join("models/omen-failure/artifacts").join(&v.artifact.blake3);
        let mut b = std::fs::read(&path).unwrap();
        b[500] ^= 1;
        std::fs::write(&path, b).unwrap();
        let e = r.fetch("omen-failure", &VersionRef::Number(1)).await.unwrap_err();
        assert!(matches!(e, Error::Checksum { version: 1, .. }), "{e}");
        assert!(e.to_string().contains("fails its checksum") && e.to_string().contains("refusing"), "{e}");
        // Truncated is refused too.
        std::fs::write(&path, [7; 10]).unwrap();
        assert!(matches!(r.fetch("omen-failure", &VersionRef::Number(1)).await.unwrap_err(), Error::Checksum { .. }));
    });
}

#[test]
fn a_gbdt_is_loaded_only_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let x: Vec<f64> = (0..400).map(|i| f64::from(i % 20)).collect();
    let y: Vec<f64> = (0..200).map(|i| f64::from(u8::from(x[2 * i] > 9.0))).collect();
    let s = schema(&["a", "b"]);
    let params = GbdtParams { num_iterations: 5, min_data_in_leaf: 5, ..Default::default() };
    let (model, _) = params.check().unwrap().fit(Matrix::new(&x, 2), &y, None, vec!["a".into(), "b".into()]).unwrap();
    let model = model.with_schema_hash(s.hash.clone());
    let mut nv = new_version("omen-failure", model.to_bytes(), s.clone());
    nv.format = "omen-gbdt/1".into();
    rt().block_on(async {
        r.register(nv, &mut |_| {}).await.unwrap();
        let art = r.fetch("omen-failure", &VersionRef::Latest).await.unwrap();
        let loaded = art.gbdt(Some(&s.hash)).unwrap();
        assert_eq!(loaded.trees.len(), model.trees.len());
        let e = art.gbdt(Some(&schema(&["a", "c"]).hash)).unwrap_err();
        assert!(matches!(e, Error::SchemaMismatch { .. }), "{e}");
        // Another format is not handed to the GBDT loader.
        r.register(new_version("omen-failure", vec![0; 10], s.clone()), &mut |_| {}).await.unwrap();
        let e = r.fetch("omen-failure", &VersionRef::Latest).await.unwrap().gbdt(None).unwrap_err();
        assert!(e.to_string().contains("not a GBDT"), "{e}");
    });
}

#[test]
fn aliases_move_by_compare_and_swap_and_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    rt().block_on(async {
        for i in 0..4u8 {
            r.register(new_version("omen-failure", vec![i; 10], schema(&["a"])), &mut |_| {}).await.unwrap();
        }
        r.set_alias("omen-failure", CHAMPION, 1, Expect::Absent, "register").await.unwrap();
        let e = r.set_alias("omen-failure", CHAMPION, 2, Expect::Absent, "x").await.unwrap_err();
        assert!(matches!(e, Error::Conflict { .. }) && e.to_string().contains("expected it unset, it points at version 1"), "{e}");
        let e = r.promote("omen-failure", CHAMPION, 2, Expect::Version(3)).await.unwrap_err();
        assert!(e.to_string().contains("expected it at version 3, it points at version 1"), "{e}");
        r.promote("omen-failure", CHAMPION, 2, Expect::Version(1)).await.unwrap();
        r.promote("omen-failure", CHAMPION, 3, Expect::Current).await.unwrap();
        assert_eq!(r.version("omen-failure", &VersionRef::Alias(CHAMPION.into())).await.unwrap().version, 3);
        // Rollback undoes promotions, newest first, and never returns to a version rolled back from.
        let e = r.rollback("omen-failure", CHAMPION).await.unwrap();
        assert_eq!((e.previous, e.version), (Some(3), 2));
        let e = r.rollback("omen-failure", CHAMPION).await.unwrap();
        assert_eq!((e.previous, e.version), (Some(2), 1));
        let e = r.rollback("omen-failure", CHAMPION).await.unwrap_err();
        assert!(e.to_string().contains("no earlier version to roll back to"), "{e}");
        let history = r.alias_history("omen-failure", CHAMPION).await.unwrap();
        assert_eq!(history.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 2, 1]);
        // Aliases must name versions that exist.
        let e = r.promote("omen-failure", CHAMPION, 9, Expect::Current).await.unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = r.promote("omen-failure", "latest", 1, Expect::Current).await.unwrap_err();
        assert!(e.to_string().contains("not an alias"), "{e}");
    });
}

#[test]
fn an_alias_to_a_deleted_version_refuses_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    rt().block_on(async {
        for i in 0..2u8 {
            r.register(new_version("omen-failure", vec![i; 10], schema(&["a"])), &mut |_| {}).await.unwrap();
        }
        r.promote("omen-failure", CHAMPION, 1, Expect::Current).await.unwrap();
        r.promote("omen-failure", CHAMPION, 2, Expect::Current).await.unwrap();
        r.delete_version("omen-failure", 2).await.unwrap();
        let e = r.fetch("omen-failure", &VersionRef::Alias(CHAMPION.into())).await.unwrap_err();
        assert!(matches!(e, Error::Deleted { .. }), "{e}");
        assert!(e.to_string().contains("version 2 of `omen-failure`, where alias `champion` points, was deleted"), "{e}");
        let e = r.fetch("omen-failure", &VersionRef::Number(2)).await.unwrap_err();
        assert!(matches!(e, Error::Deleted { .. }), "{e}");
        // Deleted versions are listed as such, skipped by `latest`, and their number is not reused.
        let all = r.versions("omen-failure").await.unwrap();
        assert!(all[1].deleted_at.is_some() && all[0].deleted_at.is_none());
        assert_eq!(r.version("omen-failure", &VersionRef::Latest).await.unwrap().version, 1);
        let v3 = r.register(new_version("omen-failure", vec![3; 10], schema(&["a"])), &mut |_| {}).await.unwrap();
        assert_eq!(v3.version, 3);
        // Rolling back from the deleted version works; promoting a deleted one does not.
        assert_eq!(r.rollback("omen-failure", CHAMPION).await.unwrap().version, 1);
        assert!(matches!(r.promote("omen-failure", CHAMPION, 2, Expect::Current).await.unwrap_err(), Error::Deleted { .. }));
    });
}

#[test]
fn racing_writers_get_distinct_versions_and_exactly_one_promotion_wins() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(registry(dir.path()));
    rt().block_on(async {
        // Eight registrations at once: eight distinct numbers, 1 to 8.
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move { r.register(new_version("omen-failure", vec![i; 64], schema(&["a"])), &mut |_| {}).await })
            })
            .collect();
        let mut numbers: Vec<u64> = Vec::new();
        for t in tasks {
            numbers.push(t.await.unwrap().unwrap().version);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
        r.promote("omen-failure", CHAMPION, 1, Expect::Absent).await.unwrap();
        // Seven promoters who all saw version 1: exactly one wins, six get a conflict.
        let tasks: Vec<_> = (2..=8u64)
            .map(|v| {
                let r = r.clone();
                tokio::spawn(async move { r.promote("omen-failure", CHAMPION, v, Expect::Version(1)).await })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(e) => won.push(e.version),
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won.len(), 1, "{won:?}");
        assert_eq!(r.version("omen-failure", &VersionRef::Alias(CHAMPION.into())).await.unwrap().version, won[0]);
        assert_eq!(r.alias_history("omen-failure", CHAMPION).await.unwrap().len(), 2);
    });
}

#[test]
fn names_and_references_are_checked() {
    assert_eq!(
        ModelRef::parse("omen-failure@champion").unwrap(),
        ModelRef { name: "omen-failure".into(), version: Some(VersionRef::Alias("champion".into())) }
    );
    assert_eq!(ModelRef::parse("omen-failure/3").unwrap().version, Some(VersionRef::Number(3)));
    assert_eq!(ModelRef::parse("omen-failure/latest").unwrap().version, Some(VersionRef::Latest));
    assert_eq!(ModelRef::parse("omen-failure").unwrap().version, None);
    for bad in ["Omen", "omen/0", "omen/x", "../x", "a@", "a@v1", "a@Champion", ""] {
        assert!(ModelRef::parse(bad).is_err(), "{bad}");
    }
    // A registry URL that is neither a store nor `mlflow+http(s)`.
    let e = open("mlflow://x:5000", std::iter::empty::<(String, String)>(), Default::default()).unwrap_err();
    assert!(e.to_string().contains("mlflow+http://"), "{e}");
    let _: StoreRegistry = match registry(tempfile::tempdir().unwrap().path()) {
        AnyRegistry::Store(s) => s,
        AnyRegistry::Mlflow(_) => unreachable!(),
    };
}
