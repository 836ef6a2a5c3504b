//! The error type of `omen-serve`'s library, and its gRPC status.

/// Every failure of a scoring call or of the server's set-up. Messages are lowercase and name the
/// field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `omen.toml` or a flag.
    #[error("config {field}: {message}")]
    Config { field: String, message: String },
    /// A request field (`metrics[2].canary[7].time`); `INVALID_ARGUMENT`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No model to answer with; `UNAVAILABLE`.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Model(#[from] omen_models::Error),
    #[error(transparent)]
    Features(#[from] omen_features::Error),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid { .. } => tonic::Status::invalid_argument(e.to_string()),
            Error::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}
