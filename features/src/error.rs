//! The one error type of `omen-features`.

use std::path::PathBuf;

/// Every failure of this crate. Messages are lowercase and name the path, line or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Line { path: String, line: u64, message: String },
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("invalid store url `{url}`: {message}")]
    StoreUrl { url: String, message: String },
    #[error("store {path}: {source}")]
    Store { path: String, source: object_store::Error },
    #[error("store {path} already exists")]
    AlreadyExists { path: String },
    #[error("parquet {path}: {source}")]
    Parquet { path: String, source: polars::error::PolarsError },
    #[error("dataframe: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("command `{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("json {path}: {source}")]
    Json { path: String, source: serde_json::Error },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn input(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input { path: path.into(), message: message.into() }
    }
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field { field: field.into(), message: message.into() }
    }
    pub(crate) fn store(path: impl Into<String>, source: object_store::Error) -> Self {
        Error::Store { path: path.into(), source }
    }
}
