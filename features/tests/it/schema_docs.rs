//! `docs/schemas.md` is generated from `omen_features::schema`; this keeps it true.
//! Regenerate with `OMEN_UPDATE_DOCS=1 cargo test -p omen-features --test it schema_docs`.

use omen_features::schema::DatasetSchema;

#[test]
fn schema_docs_are_current() {
    let mut text = String::from(
        "# Dataset schemas\n\nGenerated from `features/src/schema.rs` by \
         `OMEN_UPDATE_DOCS=1 cargo test -p omen-features --test it schema_docs`; do not edit by hand.\n\
         Types are as pyarrow reads them (`str(field.type)`); partition keys are hive folders, read as strings.\n\n",
    );
    for d in DatasetSchema::all() {
        text.push_str(&d.to_markdown());
        text.push('\n');
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas.md");
    if std::env::var_os("OMEN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(current == text, "docs/schemas.md is stale: run OMEN_UPDATE_DOCS=1 cargo test -p omen-features --test it schema_docs");
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
