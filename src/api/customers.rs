//! Customers (tenants) and their API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ApiJson;
use crate::auth::{Admin, TenantAccess};
use crate::domain::TenantId;
use crate::error::{ApiError, ApiResult};
use crate::service::customers;
use crate::state::AppState;

pub use crate::service::customers::{ApiKey, Customer};

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
    /// Append a footer with the unsubscribe and preferences links campaign html does not place itself (default true).
    unsubscribe_footer: Option<bool>,
    /// The language of the pages recipients see (preference centre, unsubscribe): `en` or `de` (default `en`).
    #[schema(example = "de")]
    locale: Option<String>,
    /// The tenant's share of the provider's rate against other tenants' (1 to 1000; null: the default, 1). Operator only: a customer's own key gets 403.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    send_weight: Option<serde_json::Value>,
    /// Operator only (a customer's key gets 403): model calls the `agent`
    /// action may make a day (UTC), 0 to 10,000,000; null: `MAILROOM_AGENT_DAILY_CALLS`.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 10_000_000)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    agent_daily_calls: Option<serde_json::Value>,
    /// The default From name of mail that names no sender (at most 100
    /// characters, no control characters); null removes it.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    from_name: Option<serde_json::Value>,
    /// The default From address of mail that names no sender: an address on
    /// the customer's verified domain (422 otherwise); null removes it, and
    /// mail comes from `hello@{domain}` again.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    from_address: Option<serde_json::Value>,
}

/// A nullable text field of a PATCH: absent, null (remove), or a string.
fn nullable_text<'a>(v: Option<&'a serde_json::Value>, field: &str) -> ApiResult<Option<Option<&'a str>>> {
    match v {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(serde_json::Value::String(s)) => Ok(Some(Some(s.as_str()))),
        Some(_) => Err(ApiError::validation(format!("{field}: expected a string or null"))),
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// A label to recognise the key by.
    #[serde(default)]
    name: Option<String>,
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
    Ok((StatusCode::CREATED, Json(customers::create(&state, &body.name).await?)))
}

/// List customers.
#[utoipa::path(get, path = "/customers", tag = "customers", responses((status = 200, body = [Customer])))]
async fn list_customers(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<Customer>>> {
    Ok(Json(customers::list(&state).await?))
}

/// Get a customer.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 404, body = crate::error::ErrorBody)))]
async fn get_customer(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Customer>> {
    Ok(Json(customers::get(&state, &t.tenant_id).await?))
}

/// Rename a customer, or change its settings: the default sender (`from_name`,
/// `from_address`), the unsubscribe footer, and (the operator only) `send_weight`, `agent_daily_calls`.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)), request_body = CustomerPatchIn,
    responses((status = 200, body = Customer), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn update_customer(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CustomerPatchIn>,
) -> ApiResult<Json<Customer>> {
    // What only the operator may set is refused before anything is read or changed.
    if (body.send_weight.is_some() || body.agent_daily_calls.is_some()) && !t.is_admin {
        return Err(ApiError::Forbidden("only the operator may set a customer's send_weight or agent_daily_calls"));
    }
    let change = customers::CustomerChange {
        name: body.name.as_deref(),
        unsubscribe_footer: body.unsubscribe_footer,
        send_weight: body.send_weight.as_ref().map(customers::send_weight).transpose()?,
        agent_daily_calls: body.agent_daily_calls.as_ref().map(customers::agent_daily_calls).transpose()?,
        from_name: nullable_text(body.from_name.as_ref(), "from_name")?,
        from_address: nullable_text(body.from_address.as_ref(), "from_address")?,
        locale: body.locale.as_deref(),
    };
    Ok(Json(customers::update(&state, &t.tenant_id, change).await?))
}

/// Delete a customer and everything it owns (admin only).
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_customer(t: TenantAccess, State(state): State<AppState>) -> ApiResult<StatusCode> {
    if !t.is_admin {
        return Err(ApiError::Forbidden("only the operator may delete a customer"));
    }
    customers::delete(&state, &t.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key for a customer. The key is shown once; only its hash is kept.
#[utoipa::path(post, path = "/customers/{id}/api-keys", tag = "customers", params(("id" = String, Path)), request_body(content = Option<ApiKeyIn>, description = "optional"),
    responses((status = 201, body = ApiKey), (status = 404, body = crate::error::ErrorBody)))]
async fn create_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ApiKey>)> {
    let tenant_id = customers::existing(&state, &id).await?;
    let body: ApiKeyIn = super::extract::optional_json(&body)?;
    Ok((StatusCode::CREATED, Json(customers::issue_key(&state, &tenant_id, body.name.as_deref()).await?)))
}

/// List a customer's API keys (without the keys themselves).
#[utoipa::path(get, path = "/customers/{id}/api-keys", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = [ApiKey])))]
async fn list_api_keys(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let tenant_id = customers::existing(&state, &id).await?;
    Ok(Json(customers::keys(&state, &tenant_id).await?))
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
    customers::revoke_key(&state, &tenant_id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
