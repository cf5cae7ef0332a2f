//! `POST /webhooks/resend`: Svix-signed delivery events from Resend.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::delivery_events::{self, IngestError, VerifyError};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::EventOutcome;

#[derive(Serialize, ToSchema)]
pub struct Received {
    received: bool,
    #[serde(rename = "type")]
    event_type: String,
    /// True when this svix-id was seen before and nothing was done again.
    duplicate: bool,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(resend_webhook))
}

/// Receive a Resend webhook. Answers 2xx only once the event is durably stored;
/// a storage failure answers 5xx so that Resend retries.
///
/// Every `email.*` type is stored (and listed by `GET /customers/{id}/events`);
/// statuses only move forward. A permanent bounce or a complaint suppresses the
/// address; `MAILROOM_SOFT_BOUNCE_LIMIT` transient bounces of one contact within
/// `MAILROOM_SOFT_BOUNCE_DAYS` suppress it as `soft_bounced`. `domain.created`,
/// `domain.updated` and `domain.deleted` set the status of the customer's domain
/// whose `resend_domain_id` is `data.id` (a late, older event never undoes a
/// newer one); while it is not `verified` (e.g. `temporary_failure`, `failed`)
/// sends are refused with `domain_not_verified`, queued campaign mail is held
/// (re-checked every 30 s) and an alert is logged.
#[utoipa::path(post, path = "/webhooks/resend", tag = "webhooks", security(()),
    params(("svix-id" = String, Header), ("svix-timestamp" = String, Header), ("svix-signature" = String, Header)),
    request_body(content = Object, description = "Resend event: {type, created_at, data}"),
    responses((status = 200, body = Received), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody, description = "no WEBHOOK_SECRET configured in resend mode")))]
async fn resend_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Received>> {
    if state.verifier.is_configured() {
        state.verifier.verify(&headers, &body).map_err(|e| match e {
            VerifyError::MissingHeaders => ApiError::BadRequest(e.to_string()),
            VerifyError::Stale | VerifyError::BadSignature => ApiError::InvalidSignature(e.to_string()),
        })?;
    } else if !state.config.allow_unsigned_webhooks {
        // Fail closed: unsigned events could suppress anyone. (The sandbox
        // provider's own events never come through here.)
        return Err(ApiError::Unavailable(
            "WEBHOOK_SECRET is not configured; refusing unsigned events \
             (MAILROOM_ALLOW_UNSIGNED_WEBHOOKS=true accepts them, for local development only)"
                .into(),
        ));
    }
    let svix_id = headers
        .get("svix-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .ok_or_else(|| ApiError::BadRequest("missing svix-id header".into()))?;
    let (event_type, outcome) = delivery_events::ingest(&state.events, svix_id, &body).await.map_err(|e| match e {
        IngestError::Invalid(m) => ApiError::validation(m),
        IngestError::Store(e) => {
            tracing::error!(error = %e, "delivery event not stored");
            ApiError::Unavailable("event not stored, retry later".into())
        }
    })?;
    Ok(Json(Received { received: true, event_type, duplicate: outcome == EventOutcome::Duplicate }))
}
