//! A registry writer for the kill test (`tests/it/registry.rs`): registers `SIZE_MIB` MiB of
//! seeded bytes as a new version of `NAME` in `REGISTRY`, printing each step of its progress on
//! stdout, and stalling for a minute at the step named by `STALL_AT` (`part`: after the first
//! uploaded part of the artifact; `stored`: after the artifact, before the version is
//! committed; `never`), so that the test can SIGKILL it there.
//!
//! Usage: omen-registry-writer REGISTRY NAME SIZE_MIB STALL_AT SEED

use std::io::Write;

use omen_models::registry::{Lineage, NewVersion, Progress, Registry};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, registry, name, size, stall, seed] = args.as_slice() else {
        anyhow::bail!("usage: omen-registry-writer REGISTRY NAME SIZE_MIB STALL_AT SEED");
    };
    let size: usize = size.parse::<usize>()? << 20;
    let mut state: u64 = seed.parse()?;
    let bytes: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .collect();
    let registry = omen_models::registry::open(registry, std::iter::empty::<(String, String)>(), Default::default())?;
    let schema = omen_features::feature::FeatureSchema::new(Vec::new());
    let new = NewVersion {
        name: name.clone(),
        artifact: bytes.into(),
        artifact_file: "blob.bin".into(),
        format: "test/1".into(),
        description: "written by the kill test".into(),
        metrics: Default::default(),
        params: Default::default(),
        schema,
        feature_set: None,
        lineage: Lineage::default(),
        code_version: "omen-registry-writer".into(),
        tags: Default::default(),
    };
    let stall = stall.clone();
    let mut first_part = true;
    let mut on_progress = move |p: Progress| {
        let mut out = std::io::stdout().lock();
        let line = match p {
            Progress::Artifact { written, total } => format!("part {written} {total}"),
            Progress::ArtifactStored => "stored".to_string(),
            Progress::Committed { version } => format!("committed {version}"),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        let here = match p {
            Progress::Artifact { written, total } => stall == "part" && first_part && written < total,
            Progress::ArtifactStored => stall == "stored",
            Progress::Committed { .. } => false,
        };
        if matches!(p, Progress::Artifact { .. }) {
            first_part = false;
        }
        if here {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let v = rt.block_on(registry.register(new, &mut on_progress))?;
    println!("done {}", v.version);
    Ok(())
}
