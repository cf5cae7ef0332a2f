//! Signup forms: a customer's forms, which its website embeds (a plain form
//! posting to `PUBLIC_URL/f/{form_id}`, or JSON from an allowed origin).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::{after_id, page_of};
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::forms::{self, FormInput};
use crate::state::AppState;

pub use crate::service::forms::Form;

/// Tells a field sent as `null` (`Some(None)`) from one not sent at all (`None`).
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A form. On a change, absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormIn {
    /// 1 to 100 characters on one line (required when creating).
    name: Option<String>,
    /// Topics a signup subscribes to (on confirmation, with double opt-in); at most 100.
    topic_ids: Option<Vec<String>>,
    /// Tags a signup adds; at most 100.
    tags: Option<Vec<String>>,
    /// The confirmation email's template; absent or `null`: the "Confirm
    /// your subscription" starter. It sees `confirm_url`.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "nullable")]
    template_id: Option<Option<String>>,
    /// Where a plain form post is sent (303) after the signup; its host must
    /// be in `redirect_hosts`. `null`: a built-in thank-you page.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "nullable")]
    thank_you_url: Option<Option<String>>,
    /// Where the confirmation page sends the person once confirmed; its host
    /// must be in `redirect_hosts`. `null`: a built-in page.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "nullable")]
    confirmed_url: Option<Option<String>>,
    /// Hosts the redirects may name: the customer's own domain or its
    /// subdomains only (at most 20; default: the customer's domain).
    redirect_hosts: Option<Vec<String>>,
    /// Origins (`https://www.example.com`) whose pages may post JSON to the
    /// form (CORS); at most 20. A plain form post works from any page.
    allowed_origins: Option<Vec<String>>,
    /// Default true.
    double_opt_in: Option<bool>,
    /// The consent statement shown with the form (at most 2000 characters);
    /// each change is a new version, kept with each signup's consent record.
    consent_text: Option<String>,
}

impl From<FormIn> for FormInput {
    fn from(f: FormIn) -> Self {
        Self {
            name: f.name,
            topic_ids: f.topic_ids,
            tags: f.tags,
            template_id: f.template_id,
            thank_you_url: f.thank_you_url,
            confirmed_url: f.confirmed_url,
            redirect_hosts: f.redirect_hosts,
            allowed_origins: f.allowed_origins,
            double_opt_in: f.double_opt_in,
            consent_text: f.consent_text,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Cursor: the last form id of the previous page (see the `Link` header).
    after: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_form, list_forms)).routes(routes!(get_form, update_form, delete_form))
}

/// Create a signup form.
#[utoipa::path(post, path = "/customers/{id}/forms", tag = "forms", params(("id" = String, Path)), request_body = FormIn,
    responses((status = 201, body = Form),
        (status = 404, body = crate::error::ErrorBody, description = "no such topic or template"),
        (status = 422, body = crate::error::ErrorBody, description = "invalid input; a redirect off the customer's own hosts (`open_redirect`)")))]
async fn create_form(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FormIn>,
) -> ApiResult<(StatusCode, Json<Form>)> {
    Ok((StatusCode::CREATED, Json(forms::create(&state, &t.tenant_id, body.into()).await?)))
}

/// List signup forms in creation order, a page at a time: a JSON array, and
/// the next page in `Link: <...>; rel="next"`.
#[utoipa::path(get, path = "/customers/{id}/forms", tag = "forms", params(("id" = String, Path), ListParams),
    responses((status = 200, body = [Form], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page; absent on the last page"))),
        (status = 422, body = crate::error::ErrorBody)))]
async fn list_forms(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Form>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let after = after_id(params.after.as_deref(), "form")?;
    let rows = forms::list_forms(&state, &t.tenant_id, after.as_deref(), limit).await?;
    let (headers, rows) = page_of(rows, limit, &format!("/customers/{}/forms", t.tenant_id), &[], |f| &f.id);
    Ok((headers, Json(rows)))
}

/// Get a signup form.
#[utoipa::path(get, path = "/customers/{id}/forms/{form_id}", tag = "forms",
    params(("id" = String, Path), ("form_id" = String, Path)),
    responses((status = 200, body = Form), (status = 404, body = crate::error::ErrorBody)))]
async fn get_form(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Form>> {
    Ok(Json(forms::get(&state, &t.tenant_id, &ids.1).await?))
}

/// Change a signup form; a new `consent_text` is a new version of the statement.
#[utoipa::path(patch, path = "/customers/{id}/forms/{form_id}", tag = "forms",
    params(("id" = String, Path), ("form_id" = String, Path)), request_body = FormIn,
    responses((status = 200, body = Form),
        (status = 404, body = crate::error::ErrorBody, description = "no such form, topic or template"),
        (status = 422, body = crate::error::ErrorBody, description = "invalid input; a redirect off the customer's own hosts (`open_redirect`)")))]
async fn update_form(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<FormIn>,
) -> ApiResult<Json<Form>> {
    Ok(Json(forms::update(&state, &t.tenant_id, &ids.1, body.into()).await?))
}

/// Delete a signup form: its public endpoint answers 404 from then on.
#[utoipa::path(delete, path = "/customers/{id}/forms/{form_id}", tag = "forms",
    params(("id" = String, Path), ("form_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_form(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    forms::delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}
