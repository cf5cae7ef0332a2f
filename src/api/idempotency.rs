//! Request idempotency: an `Idempotency-Key` header makes a send safe to retry.
//! Same key and body: the first answer again, nothing sent twice. Same key,
//! other body: 409. Same key while the first request runs: 409.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::IdempotencyClaim;

fn key_from(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().map_err(|_| ApiError::validation("Idempotency-Key must be printable ASCII"))?.trim();
    // The same bounds as Resend's own Idempotency-Key.
    if key.is_empty() || key.len() > 256 {
        return Err(ApiError::validation("Idempotency-Key must be 1 to 256 characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Runs `work` at most once per (tenant, key). `work` gets the key so it can
/// store its answer in the same transaction as its effects.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    work: F,
) -> ApiResult<Response>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    let Some(key) = key_from(headers)? else { return work(None).await };
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let hash = hex::encode(hasher.finalize());
    match state.store.claim_idempotency_key(tenant_id, &key, &hash).await? {
        IdempotencyClaim::New => {}
        IdempotencyClaim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(res);
        }
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body",
            ))
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed",
            ))
        }
    }
    let result = work(Some(key.clone())).await;
    if result.is_err() {
        // Nothing was committed under the key: free it so a corrected request may use it.
        if let Err(e) = state.store.release_idempotency_key(tenant_id, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
    result
}
