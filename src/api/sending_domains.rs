//! A customer's sending domain.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{EmptyBody, NoBody};
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::error::ApiResult;
use crate::service::sending_domains;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainIn {
    /// e.g. `mail.acme.com`
    domain_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct DomainCreated {
    domain: String,
    resend_domain_id: Option<String>,
    status: Option<String>,
    /// DNS records the customer publishes: SPF, DKIM and return path as the
    /// provider gives them, and a DMARC record to start with (keep your own if
    /// the domain has one: `GET .../domains/status` checks).
    dns_records: Vec<serde_json::Value>,
    next_step: String,
}

#[derive(Serialize, ToSchema)]
pub struct DomainVerification {
    domain: String,
    verified: bool,
    status: Option<String>,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct DomainStatus {
    domain: String,
    verified: bool,
    status: Option<String>,
    /// Records to publish: the provider's (SPF, DKIM, return path) and, unless
    /// the domain already has one, a DMARC record to start with.
    dns_records: Vec<serde_json::Value>,
    /// What mailroom itself found in DNS for each record.
    checks: crate::sending_domains::dns::DomainChecks,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_domain)).routes(routes!(verify_domain)).routes(routes!(domain_status))
}

/// Register the customer's sending domain with the provider; returns the DNS records to publish.
#[utoipa::path(post, path = "/customers/{id}/domains", tag = "domains", params(("id" = String, Path)), request_body = DomainIn,
    responses((status = 201, body = DomainCreated), (status = 409, body = crate::error::ErrorBody, description = "the domain belongs to another customer"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn add_domain(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DomainIn>,
) -> ApiResult<(StatusCode, Json<DomainCreated>)> {
    let r = sending_domains::register(&state, &t.tenant_id, &body.domain_name).await?;
    let created = DomainCreated {
        dns_records: r.dns_records,
        domain: r.domain.to_string(),
        resend_domain_id: r.tenant.resend_domain_id,
        status: r.tenant.domain_status,
        next_step: format!(
            "Publish dns_records at your DNS host, then call POST /customers/{}/domains/verify",
            t.tenant_id
        ),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Ask the provider to verify the domain's DNS records.
#[utoipa::path(post, path = "/customers/{id}/domains/verify", tag = "domains", params(("id" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = DomainVerification), (status = 400, body = crate::error::ErrorBody)))]
async fn verify_domain(
    t: TenantAccess,
    State(state): State<AppState>,
    _: EmptyBody,
) -> ApiResult<Json<DomainVerification>> {
    let row = sending_domains::verify(&state, &t.tenant_id).await?;
    let verified = row.domain_verified();
    let message = if verified {
        "Domain verified. Emails can now be sent.".to_owned()
    } else {
        "Verification started; DNS changes can take a while to be seen. mailroom re-checks every minute: see GET /domains/status.".to_owned()
    };
    Ok(Json(DomainVerification {
        domain: row.domain_name.unwrap_or_default(),
        verified,
        status: row.domain_status,
        message,
    }))
}

/// The domain's current state and DNS records.
#[utoipa::path(get, path = "/customers/{id}/domains/status", tag = "domains", params(("id" = String, Path)),
    responses((status = 200, body = DomainStatus), (status = 400, body = crate::error::ErrorBody)))]
async fn domain_status(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<DomainStatus>> {
    let s = sending_domains::status(&state, &t.tenant_id).await?;
    let verified = s.tenant.domain_verified();
    Ok(Json(DomainStatus {
        verified,
        dns_records: s.dns_records,
        domain: s.domain,
        status: s.tenant.domain_status,
        checks: s.checks,
    }))
}
