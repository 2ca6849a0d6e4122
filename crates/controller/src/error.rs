//! Controller failures. The gateway maps each variant to one status and message.

use gust_store::StoreError;

/// Every way a request can fail. User-caused: `Unauthenticated`, `Forbidden`, `NotFound`,
/// `Conflict`, `PackageNotEmpty`, `BadRequest`, `Incomplete`, `TooLarge`, `Throttled`. Host-caused: `Internal`, `Unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("The supplied authentication is invalid.")]
    Unauthenticated,
    /// The caller may not use this namespace (its name is the payload).
    #[error("The supplied authentication is not authorized to access '{0}'.")]
    Forbidden(String),
    #[error("The requested resource does not exist.")]
    NotFound,
    #[error("Concurrent modification to resource detected.")]
    Conflict,
    /// A package deleted without `force` still holds this many actions.
    #[error(
        "Package not empty (contains {n} {what}). Set force param or delete package contents.",
        n = .0,
        what = if *.0 == 1 { "entity" } else { "entities" }
    )]
    PackageNotEmpty(u64),
    #[error("{0}")]
    BadRequest(String),
    /// A write names something that is not there yet (a site's unuploaded content).
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ControllerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ControllerError::NotFound,
            StoreError::Conflict => ControllerError::Conflict,
            StoreError::Backend(msg) => ControllerError::Internal(msg),
        }
    }
}
