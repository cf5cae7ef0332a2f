//! A JSON extractor whose rejections use the app's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::BadRequest(format!("body is not valid JSON: {}", e.body_text()))
                }
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::BadRequest("expected `Content-Type: application/json`".into())
                }
                JsonRejection::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge
                }
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// Parses an optional JSON body: empty means `T::default()`.
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    required_json(bytes)
}

/// Parses a required JSON body from raw bytes (for handlers that also need the
/// bytes themselves, e.g. to fingerprint an idempotent request).
pub fn required_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(e.to_string()),
        _ => ApiError::BadRequest(format!("body is not valid JSON: {e}")),
    })
}
