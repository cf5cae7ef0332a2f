//! A tenant's webhook endpoints (Standard Webhooks): adding and changing one
//! (the SSRF guard included), its signing secret, test events and replays.

use super::{optional_text, parse_id, Error, Result};
use crate::domain::{is_tenant_event_type, now_ms, TenantId, TENANT_EVENT_TYPES, TEST_EVENT_TYPE};
use crate::state::AppState;
use crate::store::{DeliveryRow, EndpointPatch, EndpointRow, NewEndpoint};
use crate::tenant_webhooks::{guard, new_secret, ROTATION_OVERLAP_MS};

/// Most endpoints one tenant may have.
const MAX_ENDPOINTS: usize = 20;

/// A new endpoint, as given.
pub struct NewEndpointInput {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A change to an endpoint: absent fields stay as they are; an empty
/// `description` clears it.
#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Known, deduplicated event types; 422 naming the first unknown one.
fn event_types(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(Error::validation("`event_types` must name at least one event type"));
    }
    let mut types: Vec<String> = Vec::with_capacity(raw.len());
    for t in raw {
        let t = t.trim();
        if !is_tenant_event_type(t) {
            let shown: String = t.chars().take(100).filter(|c| !c.is_control()).collect();
            return Err(Error::validation(format!(
                "`event_types`: unknown event type `{shown}`; known types: {}",
                TENANT_EVENT_TYPES.join(", ")
            )));
        }
        if !types.iter().any(|k| k == t) {
            types.push(t.to_owned());
        }
    }
    Ok(types)
}

async fn checked_url(state: &AppState, raw: &str) -> Result<String> {
    guard::check_url(raw, state.config.allow_private_webhooks).await.map(|u| u.to_string()).map_err(Error::validation)
}

/// One of the tenant's endpoints (404 for any other id).
pub async fn own_endpoint(state: &AppState, tenant_id: &TenantId, wid: &str) -> Result<EndpointRow> {
    let wid = parse_id(wid, "webhook")?;
    state.store.endpoint(tenant_id, &wid).await?.ok_or(Error::NotFound("webhook"))
}

/// Checks and adds an endpoint with a new secret (the row holds it): what
/// `POST /customers/{id}/webhooks` does, and the dashboard's form.
pub async fn create(state: &AppState, tenant_id: &TenantId, body: NewEndpointInput) -> Result<EndpointRow> {
    let types = event_types(&body.event_types)?;
    let description = optional_text(body.description.as_deref(), "description", 500)?;
    let url = checked_url(state, &body.url).await?;
    let secret = new_secret();
    let row = state
        .store
        .create_endpoint(
            tenant_id,
            NewEndpoint {
                url: &url,
                description: description.as_deref(),
                event_types: &types,
                enabled: body.enabled.unwrap_or(true),
                secret: &secret,
            },
            MAX_ENDPOINTS,
        )
        .await?
        .ok_or_else(|| Error::validation(format!("a customer may have at most {MAX_ENDPOINTS} webhook endpoints")))?;
    tracing::info!(tenant = %tenant_id, endpoint = %row.id, "webhook endpoint created");
    Ok(row)
}

/// Applies a patch to one of the tenant's endpoints: what `PATCH
/// /customers/{id}/webhooks/{wid}` does, and the dashboard's forms.
pub async fn update(state: &AppState, tenant_id: &TenantId, wid: &str, body: EndpointChanges) -> Result<EndpointRow> {
    let wid = parse_id(wid, "webhook")?;
    let event_types = body.event_types.as_deref().map(event_types).transpose()?;
    let description = match body.description.as_deref() {
        None => None,
        Some(d) => Some(optional_text(Some(d), "description", 500)?),
    };
    let url = match body.url.as_deref() {
        None => None,
        Some(u) => Some(checked_url(state, u).await?),
    };
    let patch = EndpointPatch { url, description, event_types, enabled: body.enabled };
    state.store.update_endpoint(tenant_id, &wid, patch).await?.ok_or(Error::NotFound("webhook"))
}

/// Removes one of the tenant's endpoints (404 when it has no such endpoint).
pub async fn delete(state: &AppState, tenant_id: &TenantId, wid: &str) -> Result<()> {
    let wid = parse_id(wid, "webhook")?;
    if !state.store.delete_endpoint(tenant_id, &wid).await? {
        return Err(Error::NotFound("webhook"));
    }
    tracing::info!(tenant = %tenant_id, endpoint = %wid, "webhook endpoint deleted");
    Ok(())
}

/// Gives one of the tenant's endpoints a new secret (the row holds it); the
/// previous one keeps signing for [`ROTATION_OVERLAP_MS`].
pub async fn rotate(state: &AppState, tenant_id: &TenantId, wid: &str) -> Result<EndpointRow> {
    let wid = parse_id(wid, "webhook")?;
    let until = now_ms() + ROTATION_OVERLAP_MS;
    let row = state
        .store
        .rotate_endpoint_secret(tenant_id, &wid, &new_secret(), until)
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    tracing::info!(tenant = %tenant_id, endpoint = %row.id, "webhook secret rotated");
    Ok(row)
}

/// Queues one of an endpoint's deliveries again (the endpoint must be
/// enabled, the delivery not in flight, and within its allowance of manual sends).
pub async fn replay(state: &AppState, tenant_id: &TenantId, endpoint: &EndpointRow, did: &str) -> Result<DeliveryRow> {
    let did = parse_id(did, "delivery")?;
    require_enabled(endpoint)?;
    if state.store.delivery(tenant_id, &endpoint.id, &did).await?.is_none() {
        return Err(Error::NotFound("delivery"));
    }
    // Replaying an attempt in flight would start another request to the
    // endpoint beside it, past its cap: refused, before the allowance is spent.
    let in_flight = || {
        Error::conflict(
            "delivery_in_flight",
            "an attempt of this delivery is in flight; replay it once the attempt has ended",
        )
    };
    if state.store.delivery_in_flight(tenant_id, &endpoint.id, &did).await? {
        return Err(in_flight());
    }
    take_manual_send(state, tenant_id, endpoint).await?;
    // (It exists: no row now means an attempt was claimed meanwhile.)
    state.store.replay_delivery(tenant_id, &endpoint.id, &did).await?.ok_or_else(in_flight)
}

/// Queues a `webhook.test` event to an (enabled) endpoint, within its
/// allowance of manual sends: the delivery's id.
pub async fn send_test(state: &AppState, tenant_id: &TenantId, endpoint: &EndpointRow) -> Result<String> {
    require_enabled(endpoint)?;
    take_manual_send(state, tenant_id, endpoint).await?;
    let data = serde_json::json!({ "endpoint_id": endpoint.id, "customer_id": tenant_id, "message": "a test event from mailroom" });
    Ok(state.store.enqueue_to_endpoint(tenant_id, &endpoint.id, TEST_EVENT_TYPE, &data).await?)
}

/// Test events and replays share one allowance per endpoint
/// (`MAILROOM_WEBHOOK_MANUAL_PER_MINUTE`): each is a request to the tenant's
/// receiver that its key alone can make, so a loop of them must not become a
/// flood of requests from mailroom (nor crowd the endpoint's real events).
async fn take_manual_send(state: &AppState, tenant_id: &TenantId, endpoint: &EndpointRow) -> Result<()> {
    let per_minute = state.config.webhook_manual_per_minute;
    match state.store.take_manual_send(tenant_id, &endpoint.id, per_minute).await? {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound("webhook")),
        Err(wait_ms) => {
            let retry_after_secs = u64::try_from(wait_ms.max(1)).unwrap_or(1).div_ceil(1000);
            Err(Error::RateLimited {
                message: format!(
                    "at most {per_minute} test events and replays per minute to one endpoint; retry in {retry_after_secs} s"
                ),
                retry_after_secs,
            })
        }
    }
}

fn require_enabled(endpoint: &EndpointRow) -> Result<()> {
    if endpoint.enabled == 1 {
        return Ok(());
    }
    Err(Error::conflict(
        "webhook_disabled",
        "the endpoint is disabled; enable it (PATCH `enabled: true`) before sending to it",
    ))
}

/// The tenant's endpoints.
pub async fn list(state: &AppState, tenant_id: &TenantId) -> Result<Vec<EndpointRow>> {
    Ok(state.store.endpoints(tenant_id).await?)
}

/// A page of what was delivered to an endpoint, newest first, after the
/// delivery id `after`; one row more than `limit` when there is a next page.
pub async fn deliveries(
    state: &AppState,
    tenant_id: &TenantId,
    endpoint: &EndpointRow,
    limit: i64,
    after: Option<&str>,
) -> Result<Vec<DeliveryRow>> {
    let after = match after.filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(crate::domain::parse_id(a).ok_or_else(|| Error::validation("`after` is not a delivery id"))?),
    };
    Ok(state.store.deliveries(tenant_id, &endpoint.id, after.as_deref(), limit).await?)
}
