//! End-to-end tests: the `omen` binary driven as users drive it, servers on 127.0.0.1.

mod architecture;
mod features;
mod ingest_logs;
mod ingest_other;
mod load;
mod notebooks;
mod profiles;
mod prometheus;
mod quickstart;
mod registry;
mod registry_mlflow;
mod retrain;
mod s3;
mod detect;
mod sequence;
mod serve;
mod serve_python;
mod simulate;
mod train;
