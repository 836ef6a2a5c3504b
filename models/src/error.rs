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
    /// A registry URL that names no backend, or a backend that failed (I/O, a bad answer).
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    /// A model, version or alias the registry does not have.
    #[error("registry {registry}: {what} not found")]
    NotFound { registry: String, what: String },
    /// An alias moved by someone else between our read and our write (or not where `--expect`
    /// said it would be): nothing was changed.
    #[error("registry {registry}: conflict on alias `{alias}` of `{model}`: {message}")]
    Conflict { registry: String, model: String, alias: String, message: String },
    /// A version that was deleted, reached directly or through an alias.
    #[error("registry {registry}: {what} was deleted")]
    Deleted { registry: String, what: String },
    /// An artifact whose bytes do not hash to the checksum its version recorded.
    #[error("registry {registry}: artifact of `{model}` version {version} fails its checksum (recorded blake3 {expected}, found {found}); refusing to load it")]
    Checksum { registry: String, model: String, version: u64, expected: String, found: String },
    /// A server that did not answer, after a bounded number of tries.
    #[error("registry {registry}: unreachable after {attempts} attempts over {seconds:.1}s: {message}")]
    Unreachable { registry: String, attempts: u32, seconds: f64, message: String },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam { field: field.into(), reason: reason.into() }
    }

    /// The configuration field at fault.
    pub fn field(&self) -> &str {
        match self {
            Error::InvalidParam { field, .. } => field,
            Error::Artifact { .. } | Error::SchemaMismatch { .. } | Error::Checksum { .. } => "artifact",
            Error::Registry { .. }
            | Error::NotFound { .. }
            | Error::Conflict { .. }
            | Error::Deleted { .. }
            | Error::Unreachable { .. } => "registry",
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
