//! `omen-models`: models of deployment failure and performance — histogram GBDT, LSTM (burn),
//! k-means request profiles, the statistical judges, calibration, and the model registry.
//!
//! Empty for now: the models arrive with their issues. This crate knows no protobuf and no CLI;
//! it depends on `omen-features` for schemas and the store, never the other way round.
