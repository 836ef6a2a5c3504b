//! The store on S3: a real S3-compatible server (moto) on 127.0.0.1, read back by pyarrow.

use omen_tests::{Moto, json_ok, omen_env, run_python};

#[test]
fn ingest_into_s3_is_readable_and_idempotent() {
    let moto = Moto::start(&["omen"]);
    let creds = moto.env();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(
        &log,
        "10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET /x/1 HTTP/1.1\" 200 1 \"-\" \"curl/8\"\n\
         10.0.0.2 - - [21/Nov/2026:10:00:00 +0000] \"GET /x/2 HTTP/1.1\" 500 1 \"-\" \"curl/8\"\n\
         not a log line\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let store = "s3://omen/prod";
    let args = ["ingest", "logs", log, "--service", "web", "--store", store, "--json"];
    let j = json_ok(&omen_env(dir.path(), &args, &creds));
    assert_eq!(j["rows_written"], 2, "{j}");
    assert_eq!(j["rows_rejected"], 1, "{j}");
    let j = json_ok(&omen_env(dir.path(), &args, &creds));
    assert_eq!(j["rows_written"], 0, "second ingest must add nothing: {j}");
    assert_eq!(j["files_skipped"], 1);

    let script = r#"
import sys, json, pyarrow.dataset as ds, pyarrow.fs as fs
s3 = fs.S3FileSystem(endpoint_override=sys.argv[1], scheme="http", access_key="test", secret_key="test", region="us-east-1")
t = ds.dataset("omen/prod/requests", filesystem=s3, format="parquet", partitioning="hive").to_table()
keys = [i.path for i in s3.get_file_info(fs.FileSelector("omen/prod", recursive=True)) if i.type == fs.FileType.File]
print(json.dumps({"rows": t.num_rows, "dates": sorted(set(t.column("date").to_pylist())), "keys": keys}))
"#;
    let v: serde_json::Value = serde_json::from_str(&run_python(script, &[&moto.endpoint]).unwrap()).unwrap();
    assert_eq!(v["rows"], 2, "{v}");
    assert_eq!(v["dates"], serde_json::json!(["2026-11-20", "2026-11-21"]));
    let keys = v["keys"].to_string();
    assert!(keys.contains("_rejects/requests/"), "{keys}");
    assert!(keys.contains("_meta/mask.key"), "{keys}");
    assert!(keys.contains("_manifest/requests/"), "{keys}");
}
