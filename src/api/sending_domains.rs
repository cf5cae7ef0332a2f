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
use crate::domain::{DomainName, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::provider::ErrorClass;
use crate::sending_domains::{self, dns, DomainError};
use crate::state::AppState;
use crate::store::TenantRow;

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

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NoDomain => {
                ApiError::precondition("no_domain", "no domain registered: call POST /customers/{id}/domains first")
            }
            DomainError::Provider(p) if p.class == ErrorClass::KeyRejected => ApiError::ProviderKey(format!(
                "the provider refused mailroom's RESEND_API_KEY for domain management ({}): a key with sending \
                 access only cannot add or verify domains; use a full-access key",
                p.name
            )),
            DomainError::Provider(p) if p.class == ErrorClass::Permanent && p.status.is_some_and(|s| s < 500) => {
                ApiError::Invalid { code: "provider_rejected", message: format!("the provider refused: {}", p.message) }
            }
            DomainError::Provider(p) => ApiError::Provider(p.to_string()),
            DomainError::Taken => ApiError::conflict("domain_taken", "this domain belongs to another customer"),
            DomainError::Store(e) => e.into(),
            DomainError::Db(e) => e.into(),
        }
    }
}

pub(crate) fn records(t: &TenantRow) -> Vec<serde_json::Value> {
    t.domain_records.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default()
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
    Ok((StatusCode::CREATED, Json(register(&state, &t.tenant_id, &body.domain_name).await?)))
}

/// Registers a customer's sending domain (the API and the dashboard).
pub(crate) async fn register(state: &AppState, tenant_id: &TenantId, raw: &str) -> ApiResult<DomainCreated> {
    let domain = DomainName::parse(raw).map_err(ApiError::validation)?;
    let row = sending_domains::register(&state.store, state.provider.as_ref(), tenant_id, &domain).await?;
    tracing::info!(tenant = %tenant_id, "domain registered");
    Ok(DomainCreated {
        dns_records: records(&row).into_iter().chain([dns::dmarc_record(domain.as_str())]).collect(),
        domain: domain.to_string(),
        resend_domain_id: row.resend_domain_id,
        status: row.domain_status,
        next_step: format!(
            "Publish dns_records at your DNS host, then call POST /customers/{}/domains/verify",
            tenant_id
        ),
    })
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
    Ok(Json(verify(&state, &t.tenant_id).await?))
}

/// Asks the provider to verify the domain (the API and the dashboard).
pub(crate) async fn verify(state: &AppState, tenant_id: &TenantId) -> ApiResult<DomainVerification> {
    let tenant = state.store.tenant(tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let row = sending_domains::verify(&state.store, state.provider.as_ref(), &tenant).await?;
    let verified = row.domain_verified();
    let message = if verified {
        "Domain verified. Emails can now be sent.".to_owned()
    } else {
        "Verification started; DNS changes can take a while to be seen. mailroom re-checks every minute: see GET /domains/status.".to_owned()
    };
    Ok(DomainVerification { domain: row.domain_name.unwrap_or_default(), verified, status: row.domain_status, message })
}

/// The domain's current state and DNS records.
#[utoipa::path(get, path = "/customers/{id}/domains/status", tag = "domains", params(("id" = String, Path)),
    responses((status = 200, body = DomainStatus), (status = 400, body = crate::error::ErrorBody)))]
async fn domain_status(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<DomainStatus>> {
    Ok(Json(status(&state, &t.tenant_id).await?))
}

/// The domain's state, records and DNS checks (the API and the dashboard).
pub(crate) async fn status(state: &AppState, tenant_id: &TenantId) -> ApiResult<DomainStatus> {
    let t_id = tenant_id;
    let mut row = state.store.tenant(t_id).await?.ok_or(ApiError::NotFound("customer"))?;
    if row.resend_domain_id.is_none() {
        return Err(DomainError::NoDomain.into());
    }
    if !row.domain_verified() {
        // Fresh from the provider when it answers; the stored state otherwise.
        match sending_domains::refresh(&state.store, state.provider.as_ref(), &row).await {
            Ok(fresh) => row = fresh,
            Err(e) => {
                tracing::warn!(tenant = %t_id, error = %e, "domain status from store; provider did not answer")
            }
        }
    }
    let domain = row.domain_name.clone().unwrap_or_default();
    let mut dns_records = records(&row);
    let checks = state.dns.check(&domain, &dns_records).await;
    // Remembered for sends, which warn without looking DNS up themselves.
    match (checks.dmarc.status, checks.dmarc.policy.as_deref()) {
        ("ok", policy) => state.store.set_dmarc_policy(t_id, policy.unwrap_or("none")).await?,
        ("missing", _) => {
            state.store.set_dmarc_policy(t_id, "missing").await?;
        }
        _ => {}
    }
    if checks.dmarc.status != "ok" {
        dns_records.push(dns::dmarc_record(&domain));
    }
    Ok(DomainStatus { verified: row.domain_verified(), dns_records, domain, status: row.domain_status, checks })
}
