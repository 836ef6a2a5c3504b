//! The error type of the batch stages.

/// Every failure of a pipeline stage; messages name the input at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Features(#[from] omen_features::Error),
    #[error(transparent)]
    Model(#[from] omen_models::Error),
    #[error("dataframe: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("prometheus {url}: {message}")]
    Prometheus { url: String, message: String },
    #[error("{count} of the inputs failed:\n{list}")]
    Several { count: usize, list: String },
    #[error("task: {0}")]
    Join(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn input(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input { path: path.into(), message: message.into() }
    }
}
