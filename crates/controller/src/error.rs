//! Controller failures. Each variant's doc comment is its message (OpenWhisk's text where
//! OpenWhisk has one), written here once; the gateway maps each variant to one status.

use gust_store::StoreError;

/// Every way a request can fail. Caused by the caller: everything but `NoInvoker`,
/// `Unreachable` and `Internal`, which the host causes.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum ControllerError {
    /// The supplied authentication is invalid.
    Unauthenticated,
    /// The supplied authentication is not authorized to access '{0}'.
    Forbidden(String),
    /// The supplied token has expired.
    TokenExpired,
    /// The supplied token was issued before the namespace's key was changed.
    TokenRevoked,
    /// The token's scope ({scope}) does not allow {verb} on '{entity}'.
    OutOfScope {
        verb: &'static str,
        entity: String,
        scope: String,
    },
    /// The token may only call web action '{0}'.
    WebOnly(String),
    /// A token cannot mint tokens: authenticate with the namespace's key.
    TokenCannotMint,
    /// The requested resource does not exist.
    NotFound,
    /// Concurrent modification to resource detected.
    Conflict,
    /// Package not empty (contains {count} {entities}). Set force param or delete package contents.
    PackageNotEmpty { count: u64, entities: &'static str },
    /// {0}
    BadRequest(String),
    /// The request content was malformed:{0}
    Malformed(NextLine),
    /// The resource requires authentication, which was not supplied with the request
    AuthenticationMissing,
    /// Request defines parameters that are not allowed (e.g., reserved properties).
    ReservedParameters,
    /// The name in the body ('{body}') does not match the path ('{path}').
    NameMismatch { body: String, path: String },
    /// Parameters larger than allowed: {size} > {max} bytes.
    ParametersTooLarge { size: u64, max: u64 },
    /// {0}
    Incomplete(String),
    /// The Idempotency-Key '{0}' was used for another action within 24 hours.
    IdempotencyKeyReused(String),
    /// The Idempotency-Key '{0}' was used with other parameters within 24 hours.
    IdempotencyKeyParameters(String),
    /// Request larger than allowed: {size} > {max} bytes.
    RequestTooLarge { size: u64, max: u64 },
    /// Request larger than allowed: more than {max} bytes.
    BodyTooLarge { max: u64 },
    /// {0}
    TooLarge(String),
    /// Too many requests in the last minute (count: {count}, allowed: {allowed}).
    PerMinute { count: u64, allowed: u64 },
    /// Too many concurrent requests in flight (count: {count}, allowed: {allowed}).
    InFlight { count: u64, allowed: u64 },
    /// Too many actions in the sequence.
    TooManySteps,
    /// Too many live activation streams open for this namespace (allowed: {allowed}).
    TooManyStreams { allowed: usize },
    /// No invoker is available.
    NoInvoker,
    /// Cannot reach an invoker: {0}
    Unreachable(String),
    /// {0}
    Internal(String),
}

/// Text shown on a line of its own after a message's first line (a doc-comment message has
/// no way to write a line break).
#[derive(Debug)]
pub struct NextLine(pub String);

impl std::fmt::Display for NextLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\n{}", self.0)
    }
}

impl ControllerError {
    /// OpenWhisk's 400 for a body or parameters it cannot read, saying why.
    pub fn malformed(why: impl std::fmt::Display) -> Self {
        ControllerError::Malformed(NextLine(why.to_string()))
    }

    /// A package deleted without `force` still holds `count` actions.
    pub fn package_not_empty(count: u64) -> Self {
        ControllerError::PackageNotEmpty {
            count,
            entities: if count == 1 { "entity" } else { "entities" },
        }
    }

    /// Whether the caller is throttled (a namespace limit, or a composition's step cap): a
    /// 429, the caller's to retry later.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            ControllerError::PerMinute { .. }
                | ControllerError::InFlight { .. }
                | ControllerError::TooManySteps
                | ControllerError::TooManyStreams { .. }
        )
    }

    /// Whether the host caused it (a 500 or 503).
    pub fn is_host_failure(&self) -> bool {
        matches!(
            self,
            ControllerError::NoInvoker
                | ControllerError::Unreachable(_)
                | ControllerError::Internal(_)
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_openwhisks() {
        assert_eq!(
            ControllerError::malformed("x").to_string(),
            "The request content was malformed:\nx"
        );
        assert_eq!(
            ControllerError::package_not_empty(1).to_string(),
            "Package not empty (contains 1 entity). Set force param or delete package contents."
        );
        assert_eq!(
            ControllerError::package_not_empty(2).to_string(),
            "Package not empty (contains 2 entities). Set force param or delete package contents."
        );
        assert_eq!(
            ControllerError::RequestTooLarge { size: 3, max: 2 }.to_string(),
            "Request larger than allowed: 3 > 2 bytes."
        );
        assert_eq!(
            ControllerError::Forbidden("x".into()).to_string(),
            "The supplied authentication is not authorized to access 'x'."
        );
    }
}
