//! Authentication as extractors: a handler's signature says who may call it.
//!
//! Keys arrive as `Authorization: Bearer <key>` or `X-API-Key: <key>` and are
//! looked up by their hash (`domain::hash_key`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use crate::domain::hash_key;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::KeyOwner;

pub mod throttle;

fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty());
    }
    parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty())
}

/// The client a request comes from: the connection's peer, or behind a
/// trusted proxy the address it forwarded (`domain::TrustedProxies::client`).
/// `None` when the peer is unknown (a router driven without the server).
pub fn client_address(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    Some(state.config.trusted_proxies.client(peer.ip(), forwarded))
}

/// The client a request comes from, for a handler (see [`client_address`]).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts, state)))
    }
}

async fn key_owner(parts: &Parts, state: &AppState) -> Result<KeyOwner, ApiError> {
    let key = presented_key(parts).ok_or(ApiError::Unauthorized)?;
    let hash = hash_key(key);
    let client = client_address(parts, state);
    state.auth_throttle.check(&hash, client)?;
    if constant_time_eq(hash.as_bytes(), state.admin_key_hash.as_bytes()) {
        return Ok(KeyOwner::Admin);
    }
    match state.store.tenant_for_key_hash(&hash).await? {
        Some(tenant) => Ok(KeyOwner::Tenant(tenant)),
        None => {
            state.auth_throttle.failed(&hash, client);
            Err(ApiError::Unauthorized)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The operator: may do everything.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match key_owner(parts, state).await? {
            KeyOwner::Admin => Ok(Admin),
            // A valid key, just not for this. The answer does not depend on which
            // customer a path names, so it tells a tenant nothing about others.
            KeyOwner::Tenant(_) => Err(ApiError::Forbidden("this route needs the admin key")),
        }
    }
}

/// Whoever may read `/metrics`: the admin key, or `MAILROOM_METRICS_TOKEN`
/// (a token for a Prometheus scraper that can do nothing else).
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let (Some(token), Some(presented)) = (state.config.metrics_token.as_deref(), presented_key(parts)) {
            if constant_time_eq(hash_key(presented).as_bytes(), hash_key(token).as_bytes()) {
                return Ok(MetricsReader);
            }
        }
        Admin::from_request_parts(parts, state).await.map(|_| MetricsReader)
    }
}

/// Access to the customer named by the `{id}` path segment: the admin, or that
/// customer's own key. Any other key gets 404, as if the customer did not exist.
pub struct TenantAccess {
    pub tenant_id: crate::domain::TenantId,
    pub is_admin: bool,
}

impl FromRequestParts<AppState> for TenantAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let owner = key_owner(parts, state).await?;
        let params =
            RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound("customer"))?;
        let raw = params
            .iter()
            .find(|(name, _)| *name == "id")
            .map(|(_, v)| v.to_owned())
            .ok_or(ApiError::NotFound("customer"))?;
        let tenant_id = crate::domain::TenantId::parse(&raw).ok_or(ApiError::NotFound("customer"))?;
        match owner {
            KeyOwner::Admin => {
                if state.store.tenant(&tenant_id).await?.is_none() {
                    return Err(ApiError::NotFound("customer"));
                }
                Ok(Self { tenant_id, is_admin: true })
            }
            KeyOwner::Tenant(own) if own == tenant_id.as_str() => Ok(Self { tenant_id, is_admin: false }),
            KeyOwner::Tenant(_) => Err(ApiError::NotFound("customer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
