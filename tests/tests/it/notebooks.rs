//! The analysts' notebooks (`notebooks/*.ipynb`): executed with nbclient (`notebooks/run.py`) in
//! the tests' Python environment against a store produced with the CLI as a user produces it;
//! a store without a dataset a notebook needs makes the run fail with that cell's error; and the
//! notebooks are committed without outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use omen_tests::{Moto, json_ok, omen, python, run_python, workspace_root};

use crate::serve::train;

/// The store the notebooks are run against, as a user has it after `omen quickstart` on the
/// samples — ingest, features, a profile set, `omen-failure` and `omen-performance` registered,
/// and `omen-serve`'s score log of the held-out canaries it scored over gRPC — then a second
/// profile set (`omen profiles fit` with other parameters) and a second version of
/// `omen-failure` (`omen train failure`). Returns how many answers the score log holds.
pub(crate) fn analyst_store(dir: &Path, store: &Path) -> usize {
    let s = store.to_str().unwrap();
    let config = workspace_root().join("data/samples/quickstart.toml");
    let q = json_ok(&omen(dir, &["quickstart", "--config", config.to_str().unwrap(), "--store", s, "--json"]));

    let b = json_ok(&omen(dir, &["profiles", "fit", "--k", "3", "--half-life", "1d", "--store", s, "--json"]));
    assert_ne!(q["profiles"]["version"], b["version"], "two different profile sets: {} {b}", q["profiles"]);

    let v2 = train(dir, store, &["--param", "num_leaves=4", "--param", "learning_rate=0.2"]);
    assert_eq!(v2["registered"]["version"].as_u64(), Some(2), "{v2}");
    let scored = q["scored"].as_array().unwrap().len();
    assert!(scored >= 3, "{q}");
    assert!(store.join("scores").is_dir(), "no score log after quickstart");
    scored
}

/// `python notebooks/run.py --out OUT NOTEBOOK…` with `OMEN_STORE`, from `notebooks/`.
fn run_notebooks(store: &Path, notebooks: &[&str], out: &Path) -> Output {
    run_notebooks_env(store.to_str().unwrap(), notebooks, out, &[])
}

fn run_notebooks_env(store: &str, notebooks: &[&str], out: &Path, env: &[(&str, &str)]) -> Output {
    let dir = workspace_root().join("notebooks");
    Command::new(python().unwrap())
        .arg("run.py")
        .arg("--out")
        .arg(out)
        .args(notebooks)
        .current_dir(&dir)
        .env("OMEN_STORE", store)
        .env_remove("OMEN_REGISTRY")
        .envs(env.iter().copied())
        .output()
        .expect("running notebooks/run.py")
}

fn notebook_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("notebooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ipynb"))
        .collect();
    names.sort();
    names
}

/// The text every code cell of an executed notebook printed.
fn printed(executed: &Path) -> String {
    let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(executed).unwrap()).unwrap();
    let mut text = String::new();
    for cell in nb["cells"].as_array().unwrap() {
        for o in cell["outputs"].as_array().into_iter().flatten() {
            // What the notebook prints (stdout); warnings on stderr carry the kernel's pid.
            if o["output_type"] == "stream" && o["name"] == "stdout" {
                match &o["text"] {
                    serde_json::Value::Array(lines) => lines.iter().for_each(|l| text.push_str(l.as_str().unwrap_or(""))),
                    t => text.push_str(t.as_str().unwrap_or("")),
                }
            }
        }
    }
    text
}

#[test]
fn every_notebook_runs_against_a_store_made_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // OMEN_NOTEBOOKS_OUT keeps the store, the executed notebooks and their figures for a look.
    let keep = std::env::var_os("OMEN_NOTEBOOKS_OUT").map(PathBuf::from);
    let root = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let store = root.join("store");
    let out = root.join("executed");
    let _ = std::fs::remove_dir_all(&store);
    let scores = analyst_store(dir.path(), &store);

    let names = notebook_names();
    assert!(names.len() >= 3, "{names:?}");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let run = run_notebooks(&store, &refs, &out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", run.status.code());
    for name in &names {
        assert!(stdout.contains(&format!("{name}: ok")), "{name} not reported ok:\n{stdout}");
        let stem = name.trim_end_matches(".ipynb");
        let text = printed(&out.join(name));
        // The store has every dataset, so no section may have been skipped for want of one.
        assert!(!text.contains("is not in the store"), "{name} missed a dataset:\n{text}");
        let figures = std::fs::read_dir(&out).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&format!("{stem}-"))).count();
        assert!(figures >= 3, "{name} drew {figures} figures:\n{text}");
    }
    // The models notebook saw both registered versions and every logged score.
    let models = printed(&out.join("models_and_scores.ipynb"));
    assert!(models.contains("omen-failure: 2 version(s)"), "{models}");
    assert!(models.contains(&format!("{scores} served score(s)")), "{models}");

    // The same store on S3 (a moto server on loopback, credentials and endpoint from the AWS_*
    // variables omen itself reads) prints the same, the store's name aside.
    let moto = Moto::start(&["omen"]);
    let endpoint = moto.endpoint.clone();
    let upload = r#"
import sys, pathlib, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
root = pathlib.Path(sys.argv[2])
for p in sorted(root.rglob("*")):
    if p.is_file():
        s3.upload_file(str(p), "omen", "analysts/" + p.relative_to(root).as_posix())
"#;
    run_python(upload, &[&endpoint, store.to_str().unwrap()]).unwrap();
    let creds = moto.env();
    let out_s3 = root.join("executed-s3");
    let run = run_notebooks_env("s3://omen/analysts", &refs, &out_s3, &creds);
    assert!(run.status.success(), "on S3: {}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    for name in &names {
        let local = printed(&out.join(name)).replace(store.to_str().unwrap(), "STORE");
        let remote = printed(&out_s3.join(name)).replace("s3://omen/analysts", "STORE");
        assert_eq!(local, remote, "{name} printed otherwise on S3");
    }
}

#[test]
fn a_store_without_a_required_dataset_fails_the_run_with_the_cells_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A real store, holding deployments only: no requests/, no commits/, no registry.
    let deployments = workspace_root().join("data/samples/deployments/deployments.jsonl");
    json_ok(&omen(dir.path(), &["ingest", "deployments", deployments.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"]));
    let out = dir.path().join("executed");
    for (notebook, missing) in [
        ("traffic_and_profiles.ipynb", "requests/ is not in the store"),
        ("change_impact.ipynb", "commits/ is not in the store"),
        ("models_and_scores.ipynb", "registry/ is not in the store"),
    ] {
        let run = run_notebooks(&store, &[notebook], &out);
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{notebook}: stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(!stdout.contains(&format!("{notebook}: ok")), "{stdout}");
        assert!(stderr.contains(&format!("{notebook}: cell ")) && stderr.contains("failed"), "{notebook}: {stderr}");
        assert!(stderr.contains("MissingDataset") && stderr.contains(missing), "{notebook}: the error does not name what is missing:\n{stderr}");
    }
}

#[test]
fn notebooks_are_committed_without_outputs() {
    let names = notebook_names();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        let path = workspace_root().join("notebooks").join(&name);
        let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let cells = nb["cells"].as_array().unwrap();
        assert!(cells.iter().any(|c| c["cell_type"] == "markdown"), "{name} has no text");
        for (i, c) in cells.iter().enumerate().filter(|(_, c)| c["cell_type"] == "code") {
            assert_eq!(c["outputs"], serde_json::json!([]), "{name}: cell {i} has outputs");
            assert!(c["execution_count"].is_null(), "{name}: cell {i} has an execution count");
        }
    }
}
