//! A customer's webhook endpoints (Standard Webhooks), their signing secrets,
//! and the log of what was delivered to them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::paging::next_page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{EmptyBody, NoBody};
use super::{path_id, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::{now_ms, rfc3339, TEST_EVENT_TYPE};
use crate::error::{ApiError, ApiResult};
use crate::service::tenant_webhooks::{self, EndpointChanges, NewEndpointInput};
use crate::state::AppState;
use crate::store::{DeliveryRow, EndpointRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// Where events are posted: http(s), and (unless the operator allows it)
    /// a public address.
    url: String,
    /// The types to receive: `email.sent`, `email.delivered`,
    /// `email.delivery_delayed`, `email.opened`, `email.clicked`,
    /// `email.bounced`, `email.complained`, `email.failed`, `email.scheduled`,
    /// `email.suppressed`, `contact.unsubscribed`, `contact.topic_unsubscribed`
    /// (a recipient left one topic; `data.topic` names it), `reputation.changed`,
    /// `automation.alert`, `campaign.sent`.
    event_types: Vec<String>,
    description: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}

/// Absent fields stay as they are; an empty `description` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    /// Enabling an endpoint (again) clears its failure record and `disabled_reason`.
    enabled: Option<bool>,
}

impl From<EndpointIn> for NewEndpointInput {
    fn from(e: EndpointIn) -> Self {
        Self { url: e.url, event_types: e.event_types, description: e.description, enabled: e.enabled }
    }
}

impl From<EndpointPatchIn> for EndpointChanges {
    fn from(e: EndpointPatchIn) -> Self {
        Self { url: e.url, event_types: e.event_types, description: e.description, enabled: e.enabled }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Endpoint {
    id: String,
    customer_id: String,
    url: String,
    description: Option<String>,
    event_types: Vec<String>,
    enabled: bool,
    /// Why mailroom disabled the endpoint (it kept failing), when it did.
    disabled_reason: Option<String>,
    /// After a rotation: until when the previous secret signs too.
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
    /// The signing secret (`whsec_...`): present only in the answer that
    /// created it (creation, rotation). Verify with any Standard Webhooks library.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl Endpoint {
    fn from_row(e: EndpointRow, show_secret: bool) -> Self {
        let now = now_ms();
        Self {
            event_types: e.event_types(),
            id: e.id,
            customer_id: e.tenant_id,
            url: e.url,
            description: e.description,
            enabled: e.enabled == 1,
            disabled_reason: e.disabled_reason,
            previous_secret_expires_at: e.previous_secret_expires_at.filter(|t| *t > now).map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            secret: show_secret.then_some(e.secret),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// Also the `webhook-id` header: the same on every attempt.
    id: String,
    endpoint_id: String,
    event_type: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempts: i64,
    /// The HTTP status of the last attempt, when it got an answer.
    last_status_code: Option<i64>,
    last_error: Option<String>,
    last_latency_ms: Option<i64>,
    /// When a pending delivery is tried next.
    next_attempt_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<DeliveryRow> for Delivery {
    fn from(d: DeliveryRow) -> Self {
        Self {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    /// The queued delivery (see `GET .../deliveries`).
    delivery_id: String,
    event_type: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The last delivery id of the previous page (pages go from newest to oldest).
    after: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
        .routes(routes!(test_endpoint))
}

/// Add a webhook endpoint. Its signing secret is in this answer only.
#[utoipa::path(post, path = "/customers/{id}/webhooks", tag = "webhooks to customers", params(("id" = String, Path)),
    request_body = EndpointIn,
    responses((status = 201, body = Endpoint), (status = 422, body = crate::error::ErrorBody)))]
async fn create_endpoint(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EndpointIn>,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    let row = tenant_webhooks::create(&state, &t.tenant_id, body.into()).await?;
    Ok((StatusCode::CREATED, Json(Endpoint::from_row(row, true))))
}

/// A customer's webhook endpoints (without their secrets).
#[utoipa::path(get, path = "/customers/{id}/webhooks", tag = "webhooks to customers", params(("id" = String, Path)),
    responses((status = 200, body = [Endpoint])))]
async fn list_endpoints(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Endpoint>>> {
    let rows = tenant_webhooks::list(&state, &t.tenant_id).await?;
    Ok(Json(rows.into_iter().map(|e| Endpoint::from_row(e, false)).collect()))
}

/// One webhook endpoint; `enabled` and `disabled_reason` say whether mailroom gave up on it.
#[utoipa::path(get, path = "/customers/{id}/webhooks/{wid}", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = crate::error::ErrorBody)))]
async fn get_endpoint(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(Endpoint::from_row(tenant_webhooks::own_endpoint(&state, &t.tenant_id, &wid).await?, false)))
}

/// Change an endpoint's URL, event types, description, or enable it again.
#[utoipa::path(patch, path = "/customers/{id}/webhooks/{wid}", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path)), request_body = EndpointPatchIn,
    responses((status = 200, body = Endpoint), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn update_endpoint(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointPatchIn>,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(Endpoint::from_row(tenant_webhooks::update(&state, &t.tenant_id, &wid, body.into()).await?, false)))
}

/// Remove an endpoint and its delivery log.
#[utoipa::path(delete, path = "/customers/{id}/webhooks/{wid}", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_endpoint(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    tenant_webhooks::delete(&state, &t.tenant_id, &wid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret. The new one is in this answer only; for 24 hours
/// the old one signs too (`webhook-signature` then carries two signatures), so
/// receivers can switch without missing an event.
#[utoipa::path(post, path = "/customers/{id}/webhooks/{wid}/rotate-secret", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path)), request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = Endpoint), (status = 404, body = crate::error::ErrorBody)))]
async fn rotate_secret(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<Json<Endpoint>> {
    path_id(&wid, "webhook")?;
    Ok(Json(Endpoint::from_row(tenant_webhooks::rotate(&state, &t.tenant_id, &wid).await?, true)))
}

/// What was delivered to an endpoint, newest first; `Link: <...>; rel="next"` points to older ones.
#[utoipa::path(get, path = "/customers/{id}/webhooks/{wid}/deliveries", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path), DeliveryParams),
    responses((status = 200, body = [Delivery]), (status = 404, body = crate::error::ErrorBody)))]
async fn list_deliveries(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
    params: Result<Query<DeliveryParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Delivery>>)> {
    let endpoint = tenant_webhooks::own_endpoint(&state, &t.tenant_id, &wid).await?;
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let mut rows = tenant_webhooks::deliveries(&state, &t.tenant_id, &endpoint, limit, params.after.as_deref()).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(100));
        if let Some(last) = rows.last() {
            let path = format!("/customers/{}/webhooks/{}/deliveries", t.tenant_id, endpoint.id);
            headers = next_page(&path, &[("limit", Some(&limit.to_string())), ("after", Some(&last.id))]);
        }
    }
    Ok((headers, Json(rows.into_iter().map(Delivery::from).collect())))
}

/// Queue a delivery again, now, under the same id (and `webhook-id`), with a fresh retry schedule
/// (not while an attempt of it is in flight: 409 `delivery_in_flight`).
/// Test events and replays to one endpoint are limited together
/// (`MAILROOM_WEBHOOK_MANUAL_PER_MINUTE`, default 10 a minute): past it, 429 with `Retry-After`.
#[utoipa::path(post, path = "/customers/{id}/webhooks/{wid}/deliveries/{did}/replay", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path), ("did" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 202, body = Delivery), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "the endpoint is disabled, or an attempt of the delivery is in flight"),
        (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, headers(("Retry-After" = u64, description = "seconds until the endpoint may be sent another test event or replay")))))]
async fn replay_delivery(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid, did)): Path<(String, String, String)>,
    _: EmptyBody,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let endpoint = tenant_webhooks::own_endpoint(&state, &t.tenant_id, &wid).await?;
    let did = path_id(&did, "delivery")?;
    Ok((StatusCode::ACCEPTED, Json(tenant_webhooks::replay(&state, &t.tenant_id, &endpoint, &did).await?.into())))
}

/// Queue a `webhook.test` event to this endpoint at once, whatever it subscribes to.
/// Test events and replays to one endpoint are limited together
/// (`MAILROOM_WEBHOOK_MANUAL_PER_MINUTE`, default 10 a minute): past it, 429 with `Retry-After`.
#[utoipa::path(post, path = "/customers/{id}/webhooks/{wid}/test", tag = "webhooks to customers",
    params(("id" = String, Path), ("wid" = String, Path)), request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 202, body = TestQueued), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, headers(("Retry-After" = u64, description = "seconds until the endpoint may be sent another test event or replay")))))]
async fn test_endpoint(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, wid)): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let endpoint = tenant_webhooks::own_endpoint(&state, &t.tenant_id, &wid).await?;
    let id = tenant_webhooks::send_test(&state, &t.tenant_id, &endpoint).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id: id, event_type: TEST_EVENT_TYPE.to_owned() })))
}
