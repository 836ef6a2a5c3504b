//! Compiles `proto/omen/v1/omen.proto` with protox (pure Rust: no system `protoc`), generates the
//! tonic server and client, and keeps the file descriptor set for server reflection and the
//! HTTP adapter's proto3 JSON mapping.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/omen/v1/omen.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("omen_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // omen's services decode requests from one contiguous slice (`crate::codec`).
    tonic_prost_build::configure().build_client(true).build_server(true).codec_path("crate::codec::SliceCodec").compile_fds(fds.clone())?;
    // The same services with tonic-prost's own codec, for the benchmark's bare tonic echo
    // service (the ceiling `bench/serve.sh` compares with).
    let plain = out.join("plain");
    std::fs::create_dir_all(&plain)?;
    tonic_prost_build::configure().build_client(false).build_server(true).out_dir(&plain).compile_fds(fds)?;
    Ok(())
}
