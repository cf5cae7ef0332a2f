//! The one error type at the HTTP boundary. Every variant has a stable,
//! machine-readable code; internal details are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than the limit")]
    PayloadTooLarge,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Precondition { code: &'static str, message: String },
    #[error("too many failed attempts with this key or from this address; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A use case's rate (e.g. test events per endpoint) is spent.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("the delivery provider failed: {0}")]
    Provider(String),
    #[error("{0}")]
    ProviderKey(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// `{"error": {"code": ..., "message": ...}}`
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code clients can match on, e.g. `not_found`, `validation_error`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Invalid { code: "validation_error", message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    /// The JSON error envelope of this error: `{"error": {"code", "message"}}`.
    pub fn envelope(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code().into(), message: self.to_string() } }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge | Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Precondition { .. } => StatusCode::BAD_REQUEST,
            Self::TooManyRequests { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Provider(_) | Self::ProviderKey(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Invalid { code, .. } | Self::Conflict { code, .. } | Self::Precondition { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge | Self::TooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } | Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Provider(_) => "provider_error",
            Self::ProviderKey(_) => "provider_key_restricted",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// The database's errors mean at the API what they mean to the services (a
/// pool timeout is 503, a duplicate 409): one mapping, the service layer's.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::service::Error::from(e).into()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::service::Error::from(e).into()
    }
}

impl From<crate::service::Error> for ApiError {
    fn from(e: crate::service::Error) -> Self {
        use crate::service::Error as E;
        match e {
            E::BadRequest(m) => Self::BadRequest(m),
            E::Invalid { code, message } => Self::Invalid { code, message },
            E::NotFound(what) => Self::NotFound(what),
            E::Conflict { code, message } => Self::Conflict { code, message },
            E::TooLarge(m) => Self::TooLarge(m),
            E::Precondition { code, message } => Self::Precondition { code, message },
            E::RateLimited { message, retry_after_secs } => Self::RateLimited { message, retry_after_secs },
            E::Unavailable(m) => Self::Unavailable(m),
            E::Provider(m) => Self::Provider(m),
            E::ProviderKey(m) => Self::ProviderKey(m),
            E::Internal(e) => Self::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs } | Self::RateLimited { retry_after_secs, .. } => {
                Some(retry_after_secs.to_string())
            }
            Self::Unavailable(_) => Some("5".to_owned()),
            _ => None,
        };
        if let Self::Internal(e) = &self {
            // Logged once here with the full chain; the client sees only the code.
            tracing::error!(error = ?e, "request failed");
        }
        let mut res = (status, axum::Json(self.envelope())).into_response();
        if let Some(v) = retry_after.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Answers that axum or tower produce on their own (405 Method Not Allowed, 413
/// from the body limit, 408 from a timeout, ...) arrive as plain text: give
/// them the same JSON envelope as every other error.
pub async fn json_error_envelope(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // (Pages for people, such as the unsubscribe pages, carry their own html.)
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&ErrorBody { error: ErrorDetail { code: code.into(), message } }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::ApiError;
    use crate::service::Error;

    /// A use case's refusal answers as it did when the handler refused itself:
    /// the same status, code and message for every kind.
    #[test]
    fn every_service_error_keeps_its_status_code_and_message_at_the_api_edge() {
        let cases: Vec<(Error, u16, &str, &str)> = vec![
            (Error::BadRequest("unreadable".into()), 400, "bad_request", "unreadable"),
            (Error::validation("`name` must not be empty"), 422, "validation_error", "`name` must not be empty"),
            (Error::Invalid { code: "invalid_email", message: "no @".into() }, 422, "invalid_email", "no @"),
            (Error::NotFound("segment"), 404, "not_found", "segment not found"),
            (Error::conflict("contact_exists", "taken"), 409, "contact_exists", "taken"),
            (Error::TooLarge("too big".into()), 413, "payload_too_large", "too big"),
            (Error::precondition("domain_not_verified", "verify"), 400, "domain_not_verified", "verify"),
            (Error::Unavailable("retry".into()), 503, "unavailable", "retry"),
            (Error::RateLimited { message: "slow down".into(), retry_after_secs: 6 }, 429, "rate_limited", "slow down"),
            (Error::Provider("boom".into()), 502, "provider_error", "the delivery provider failed: boom"),
            (Error::ProviderKey("restricted".into()), 502, "provider_key_restricted", "restricted"),
            (Error::Internal(anyhow::anyhow!("secret detail")), 500, "internal_error", "internal error"),
        ];
        for (e, status, code, message) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status().as_u16(), api.code(), api.to_string().as_str()), (status, code, message));
        }
    }

    #[test]
    fn a_duplicate_in_the_store_is_the_same_conflict_from_either_side() {
        let from_service = ApiError::from(Error::from(crate::store::StoreError::Duplicate("email".into())));
        let direct = ApiError::from(crate::store::StoreError::Duplicate("email".into()));
        assert_eq!(
            (from_service.status(), from_service.code(), from_service.to_string()),
            (direct.status(), direct.code(), direct.to_string())
        );
    }
}
