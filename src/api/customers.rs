//! Customers (tenants) and their API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, required_text, ApiJson};
use crate::auth::{generate_key, hash_key, Admin, TenantAccess};
use crate::domain::TenantId;
use crate::domain::{new_id, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{ApiKeyRow, TenantRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    name: String,
}

/// Absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatchIn {
    name: Option<String>,
    /// Append an unsubscribe footer to campaign html that has no `{{unsubscribe_url}}` (default true).
    unsubscribe_footer: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct Customer {
    id: String,
    name: String,
    /// The sending domain, once registered.
    domain: Option<String>,
    domain_verified: bool,
    domain_status: Option<String>,
    resend_domain_id: Option<String>,
    /// Campaign html without `{{unsubscribe_url}}` gets an unsubscribe footer.
    unsubscribe_footer: bool,
    created_at: String,
}

impl From<TenantRow> for Customer {
    fn from(t: TenantRow) -> Self {
        Self {
            domain_verified: t.domain_verified(),
            id: t.id.to_string(),
            name: t.name,
            domain: t.domain_name,
            domain_status: t.domain_status,
            resend_domain_id: t.resend_domain_id,
            unsubscribe_footer: t.unsubscribe_footer == 1,
            created_at: rfc3339(t.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// A label to recognise the key by.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    id: String,
    customer_id: String,
    name: Option<String>,
    /// The first characters of the key, to recognise it by.
    prefix: String,
    created_at: String,
    revoked: bool,
    /// The key itself: present only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl ApiKey {
    pub(crate) fn from_row(k: ApiKeyRow, key: Option<String>) -> Self {
        Self {
            id: k.id,
            customer_id: k.tenant_id,
            name: k.name,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
            revoked: k.revoked_at.is_some(),
            key,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer, list_customers))
        .route("/customers/", post(create_customer))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// Create a customer (tenant).
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = CustomerIn,
    responses((status = 201, body = Customer), (status = 422, body = crate::error::ErrorBody)))]
async fn create_customer(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CustomerIn>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    Ok((StatusCode::CREATED, Json(create(&state, &body.name).await?)))
}

/// Creates a customer (the API and the dashboard).
pub(crate) async fn create(state: &AppState, name: &str) -> ApiResult<Customer> {
    let name = required_text(name, "name", 255)?;
    let row = state.store.create_tenant(&TenantId::from_stored(new_id()), &name).await?;
    tracing::info!(tenant = %row.id, "customer created");
    Ok(row.into())
}

/// List customers.
#[utoipa::path(get, path = "/customers", tag = "customers", responses((status = 200, body = [Customer])))]
async fn list_customers(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<Customer>>> {
    Ok(Json(state.store.tenants().await?.into_iter().map(Customer::from).collect()))
}

/// Get a customer.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 404, body = crate::error::ErrorBody)))]
async fn get_customer(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Customer>> {
    let row = state.store.tenant(&t.tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    Ok(Json(row.into()))
}

/// Rename a customer, or change its settings.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)), request_body = CustomerPatchIn,
    responses((status = 200, body = Customer), (status = 404, body = crate::error::ErrorBody)))]
async fn update_customer(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CustomerPatchIn>,
) -> ApiResult<Json<Customer>> {
    let name = body.name.as_deref().map(|n| required_text(n, "name", 255)).transpose()?;
    if let Some(on) = body.unsubscribe_footer {
        state.store.set_unsubscribe_footer(&t.tenant_id, on).await?;
    }
    let row = match name {
        Some(name) => state.store.rename_tenant(&t.tenant_id, &name).await?,
        None => state.store.tenant(&t.tenant_id).await?,
    };
    Ok(Json(row.ok_or(ApiError::NotFound("customer"))?.into()))
}

/// Delete a customer and everything it owns (admin only).
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_customer(t: TenantAccess, State(state): State<AppState>) -> ApiResult<StatusCode> {
    if !t.is_admin {
        return Err(ApiError::Forbidden("only the operator may delete a customer"));
    }
    if !state.store.delete_tenant(&t.tenant_id).await? {
        return Err(ApiError::NotFound("customer"));
    }
    tracing::info!(tenant = %t.tenant_id, "customer deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key for a customer. The key is shown once; only its hash is kept.
#[utoipa::path(post, path = "/customers/{id}/api-keys", tag = "customers", params(("id" = String, Path)), request_body(content = ApiKeyIn, description = "optional"),
    responses((status = 201, body = ApiKey), (status = 404, body = crate::error::ErrorBody)))]
async fn create_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ApiKey>)> {
    let tenant_id = TenantId::parse(&id).ok_or(ApiError::NotFound("customer"))?;
    state.store.tenant(&tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let body: ApiKeyIn = super::extract::optional_json(&body)?;
    Ok((StatusCode::CREATED, Json(issue_key(&state, &tenant_id, body.name.as_deref()).await?)))
}

/// Issues a key for an existing customer; the answer carries the key, once.
pub(crate) async fn issue_key(state: &AppState, tenant_id: &TenantId, name: Option<&str>) -> ApiResult<ApiKey> {
    let name = super::optional_text(name, "name", 100)?;
    let key = generate_key("mr_");
    let prefix: String = key.chars().take(10).collect();
    let row = state.store.create_api_key(&new_id(), tenant_id, name.as_deref(), &prefix, &hash_key(&key)).await?;
    Ok(ApiKey::from_row(row, Some(key)))
}

/// List a customer's API keys (without the keys themselves).
#[utoipa::path(get, path = "/customers/{id}/api-keys", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = [ApiKey])))]
async fn list_api_keys(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let tenant_id = TenantId::parse(&id).ok_or(ApiError::NotFound("customer"))?;
    state.store.tenant(&tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let keys = state.store.api_keys(&tenant_id).await?;
    Ok(Json(keys.into_iter().map(|k| ApiKey::from_row(k, None)).collect()))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/customers/{id}/api-keys/{key_id}", tag = "customers",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant_id = TenantId::parse(&id).ok_or(ApiError::NotFound("customer"))?;
    let key_id = path_id(&key_id, "api key")?;
    if !state.store.revoke_api_key(&tenant_id, &key_id).await? {
        return Err(ApiError::NotFound("api key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
