//! Templates: a tenant's reusable content, rendered with minijinja, versioned
//! on every change. A send names a template; its campaign keeps the version it
//! started with.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ApiJson;
use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::render::Rendered;
use crate::service::templates::{self, Changes};
use crate::state::AppState;

pub use crate::service::templates::Template;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    name: String,
    /// A minijinja template; rendered as plain text.
    subject: String,
    /// A minijinja template; values are HTML-escaped.
    html: String,
    /// A minijinja template; when absent, text is derived from the html.
    text: Option<String>,
    /// Variables (a JSON object, like a send's `variables`) the template is
    /// checked with when saved: rendered for a sample recipient and up to
    /// three of the customer's contacts, it must not need more than half of
    /// the render fuel. Stored with the version.
    #[schema(value_type = Option<Object>)]
    sample_variables: Option<Value>,
}

/// Absent fields stay as they are; `"text": null` removes the text part.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatchIn {
    name: Option<String>,
    subject: Option<String>,
    html: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    text: Option<Value>,
    /// A JSON object; `null` removes them.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "super::contacts::present")]
    sample_variables: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// Render for this contact; else for a sample contact.
    contact_id: Option<String>,
    /// The send's `variables`.
    #[schema(value_type = Option<Object>)]
    variables: Option<Value>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(template_versions))
        .routes(routes!(preview_template))
}

/// Create a template (version 1).
#[utoipa::path(post, path = "/customers/{id}/templates", tag = "templates", params(("id" = String, Path)),
    request_body = TemplateIn,
    responses((status = 201, body = Template), (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody, description = "invalid template: the message names the part, line and column; one that uses `include`, `import`, `extends` or `from`, or needs more than half of the render fuel for a sample recipient")))]
async fn create_template(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<TemplateIn>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let row = templates::create(
        &state,
        &t.tenant_id,
        &input.name,
        &input.subject,
        &input.html,
        input.text.as_deref(),
        input.sample_variables,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The customer's templates at their current versions (five starters come with every customer).
#[utoipa::path(get, path = "/customers/{id}/templates", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = [Template])))]
async fn list_templates(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(templates::list(&state, &t.tenant_id).await?))
}

/// A template at its current version.
#[utoipa::path(get, path = "/customers/{id}/templates/{template_id}", tag = "templates",
    params(("id" = String, Path), ("template_id" = String, Path)),
    responses((status = 200, body = Template), (status = 404, body = crate::error::ErrorBody)))]
async fn get_template(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Template>> {
    Ok(Json(templates::find(&state, &t.tenant_id, &ids.1).await?.into()))
}

/// Change a template: a new version. Campaigns already queued keep theirs.
#[utoipa::path(patch, path = "/customers/{id}/templates/{template_id}", tag = "templates",
    params(("id" = String, Path), ("template_id" = String, Path)), request_body = TemplatePatchIn,
    responses((status = 200, body = Template), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn update_template(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(input): ApiJson<TemplatePatchIn>,
) -> ApiResult<Json<Template>> {
    let text = match input.text {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => return Err(ApiError::validation("`text` must be a string or null")),
    };
    // Present and null: remove them (`present` tells null from absent).
    let sample_variables = input.sample_variables.map(|v| Some(v).filter(|v| !v.is_null()));
    let changes = Changes { name: input.name, subject: input.subject, html: input.html, text, sample_variables };
    Ok(Json(templates::update(&state, &t.tenant_id, &ids.1, changes).await?.into()))
}

/// Delete a template and its versions; campaigns that used it keep their content.
#[utoipa::path(delete, path = "/customers/{id}/templates/{template_id}", tag = "templates",
    params(("id" = String, Path), ("template_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_template(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    templates::delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of a template, newest first.
#[utoipa::path(get, path = "/customers/{id}/templates/{template_id}/versions", tag = "templates",
    params(("id" = String, Path), ("template_id" = String, Path)),
    responses((status = 200, body = [Template]), (status = 404, body = crate::error::ErrorBody)))]
async fn template_versions(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(templates::versions(&state, &t.tenant_id, &ids.1).await?))
}

/// Render a template for a contact (or a sample one) without sending.
#[utoipa::path(post, path = "/customers/{id}/templates/{template_id}/preview", tag = "templates",
    params(("id" = String, Path), ("template_id" = String, Path)), request_body = PreviewIn,
    responses((status = 200, body = Rendered), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn preview_template(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(input): ApiJson<PreviewIn>,
) -> ApiResult<Json<Rendered>> {
    let rendered =
        templates::preview_stored(&state, &t.tenant_id, &ids.1, input.contact_id.as_deref(), input.variables).await?;
    Ok(Json(rendered))
}
