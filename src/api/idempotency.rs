//! Request idempotency: an `Idempotency-Key` header makes a send safe to retry.
//! Same key and body: the first answer again, nothing sent twice. Same key,
//! other body: 409. The key is reserved in the very transaction that queues the
//! mail (see `store::campaigns`), so concurrent requests with one key act once.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::store::{KeyRepeat, RequestKey};

/// The key a request carries, with the fingerprint of its route and body.
pub struct KeyedRequest {
    key: String,
    request_hash: String,
}

impl KeyedRequest {
    /// Reads the optional `Idempotency-Key` header (1 to 256 printable ASCII
    /// characters, Resend's own bounds).
    pub fn from_headers(headers: &HeaderMap, route: &str, body: &[u8]) -> ApiResult<Option<Self>> {
        let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
        let key = v.to_str().map_err(|_| ApiError::validation("Idempotency-Key must be printable ASCII"))?.trim();
        if key.is_empty() || key.len() > 256 {
            return Err(ApiError::validation("Idempotency-Key must be 1 to 256 characters"));
        }
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        Ok(Some(Self { key: key.to_owned(), request_hash: hex::encode(hasher.finalize()) }))
    }

    pub fn as_key(&self) -> RequestKey<'_> {
        RequestKey { key: &self.key, request_hash: &self.request_hash }
    }
}

/// The answer to a request whose key was used before.
pub fn repeat_response(repeat: KeyRepeat) -> ApiResult<Response> {
    match repeat {
        KeyRepeat::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(res)
        }
        KeyRepeat::Mismatch => Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )),
    }
}
