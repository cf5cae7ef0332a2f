//! The use cases' one error: what went wrong in the mail domain's words. Each
//! front end maps it to its own answer (`crate::error::ApiError` for JSON, a
//! page for the dashboard); HTTP-only refusals (no key, a body too large to
//! read, a wrong content type, the failed-key throttle) never reach a service.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be read at all (a malformed request).
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// No such thing, or not this tenant's: the two are never told apart.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    TooLarge(String),
    /// Something must be done first (e.g. verify the sending domain).
    #[error("{message}")]
    Precondition { code: &'static str, message: String },
    /// Too many of these too fast: retry after `retry_after_secs`.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// Retry shortly: the database or a render worker is unavailable.
    #[error("{0}")]
    Unavailable(String),
    #[error("the delivery provider failed: {0}")]
    Provider(String),
    #[error("{0}")]
    ProviderKey(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Invalid { code: "validation_error", message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn precondition(code: &'static str, message: impl Into<String>) -> Self {
        Self::Precondition { code, message: message.into() }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // The database is down or overloaded: a client should retry, not report a bug.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            e => Self::Internal(anyhow::Error::new(e)),
        }
    }
}

/// A duplicate is a conflict, whoever asks.
impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Duplicate(what) => {
                Error::conflict("duplicate", format!("already exists ({what})"))
            }
            crate::store::StoreError::Db(e) => e.into(),
        }
    }
}

/// The checks every send shares (`outbox::compose`), in this layer's words:
/// a gone tenant is 404, an unverified domain a precondition, a bad `from` or
/// a suppressed recipient invalid input.
impl From<crate::outbox::compose::ComposeError> for Error {
    fn from(e: crate::outbox::compose::ComposeError) -> Self {
        use crate::outbox::compose::ComposeError;
        match e {
            ComposeError::CustomerGone => Error::NotFound("customer"),
            ComposeError::DomainNotRegistered | ComposeError::DomainNotVerified(_) => {
                Error::precondition("domain_not_verified", e.to_string())
            }
            ComposeError::InvalidFrom(message) => Error::Invalid { code: "invalid_from", message },
            ComposeError::Suppressed => Error::Invalid { code: "recipient_suppressed", message: e.to_string() },
            ComposeError::Db(e) => e.into(),
        }
    }
}
