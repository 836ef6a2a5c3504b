//! The one error type of `omen-models`.

/// An error of `omen-models`. Messages are lowercase and name the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter failed validation (`check()`): `field` is its path in the configuration, with
    /// Kayenta's field names (`metrics[0].effectSize.allowedIncrease`, `classifier.groupWeights`).
    #[error("invalid `{field}`: {reason}")]
    InvalidParam { field: String, reason: String },
    /// A model file that is not one, is truncated, or fails its checksum.
    #[error("model artifact: {message}")]
    Artifact { message: String },
    /// A model trained on another feature schema than the reader's.
    #[error("model artifact: trained on feature schema {found}, the reader expects {expected}")]
    SchemaMismatch { expected: String, found: String },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam { field: field.into(), reason: reason.into() }
    }

    /// The configuration field at fault.
    pub fn field(&self) -> &str {
        match self {
            Error::InvalidParam { field, .. } => field,
            Error::Artifact { .. } | Error::SchemaMismatch { .. } => "artifact",
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
