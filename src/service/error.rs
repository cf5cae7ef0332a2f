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
    #[error("{0}")]
    Forbidden(&'static str),
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

    /// For a caller with no front end (a worker): an internal error as it
    /// came, anything else as this error.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::Internal(e) => e,
            e => anyhow::Error::new(e),
        }
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
