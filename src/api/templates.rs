//! Templates: a tenant's reusable content, rendered with minijinja, versioned
//! on every change. A send names a template; its campaign keeps the version it
//! started with.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, required_text, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::{rfc3339, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::render::{Recipient, Rendered};
use crate::state::AppState;
use crate::store::{TemplateContent, TemplatePatch, TemplateRow};

const NAME_MAX: usize = 200;
/// RFC 5322's line length: a subject template is no longer than a subject.
const SUBJECT_MAX: usize = 998;
/// Largest `variables` object a send or preview may carry, serialised.
pub const VARIABLES_MAX_BYTES: usize = 64 * 1024;

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
}

#[derive(Serialize, ToSchema)]
pub struct Template {
    id: String,
    customer_id: String,
    name: String,
    /// 1 when created; every change adds one.
    version: i64,
    subject: String,
    html: String,
    text: Option<String>,
    created_at: String,
    /// When this version was made.
    updated_at: String,
}

impl From<TemplateRow> for Template {
    fn from(t: TemplateRow) -> Self {
        Self {
            id: t.id,
            customer_id: t.tenant_id,
            name: t.name,
            version: t.version,
            subject: t.subject,
            html: t.html,
            text: t.text_body,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
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

/// A send's `variables`: a JSON object of bounded size.
pub fn variables(raw: Option<Value>) -> ApiResult<Value> {
    match raw {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => {
            let size = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > VARIABLES_MAX_BYTES {
                return Err(ApiError::validation(format!(
                    "`variables` is {size} bytes; at most {VARIABLES_MAX_BYTES} are accepted"
                )));
            }
            Ok(v)
        }
        Some(_) => Err(ApiError::validation("`variables` must be a JSON object")),
    }
}

/// Checks a template's parts: sizes, one-line subject, syntax, and one render
/// for a sample recipient, so that a template that runs away (out of fuel,
/// or too large) even for that one is refused when saved, not when sent.
/// Other render errors may depend on the data a real send brings: a send
/// reports those per recipient.
fn check_content(state: &AppState, c: &TemplateContent) -> ApiResult<()> {
    let max = state.config.max_html_bytes;
    for (field, len) in [("html", c.html.len()), ("text", c.text.as_deref().map_or(0, str::len))] {
        if len > max {
            return Err(ApiError::TooLarge(format!(
                "`{field}` is {len} bytes; at most {max} are accepted (MAILROOM_MAX_HTML_BYTES)"
            )));
        }
    }
    if c.subject.chars().count() > SUBJECT_MAX {
        return Err(ApiError::validation(format!("`subject` is longer than {SUBJECT_MAX} characters")));
    }
    crate::domain::check_single_line(&c.subject, "subject").map_err(ApiError::validation)?;
    if c.subject.trim().is_empty() {
        return Err(ApiError::validation("`subject` must not be empty"));
    }
    if c.html.trim().is_empty() {
        return Err(ApiError::validation("`html` must not be empty"));
    }
    let sample = Recipient {
        email: "preview@example.com",
        first_name: None,
        last_name: None,
        attributes: Value::Object(Default::default()),
        variables: Value::Object(Default::default()),
        unsubscribe_url: Some("https://example.com/u/preview"),
        tenant_name: "Preview",
    };
    state.renderer.compile(&c.subject, &c.html, c.text.as_deref()).map_err(invalid_template)?;
    match state.renderer.render_template(&c.subject, &c.html, c.text.as_deref(), &sample) {
        Err(e) if e.runaway => Err(invalid_template(e)),
        _ => Ok(()),
    }
}

pub fn invalid_template(e: crate::render::template::TemplateError) -> ApiError {
    ApiError::Invalid { code: "invalid_template", message: e.to_string() }
}

fn content(name: &str, subject: &str, html: &str, text: Option<&str>) -> ApiResult<TemplateContent> {
    Ok(TemplateContent {
        name: required_text(name, "name", NAME_MAX)?,
        subject: subject.trim().to_owned(),
        html: html.to_owned(),
        text: text.filter(|t| !t.trim().is_empty()).map(str::to_owned),
    })
}

async fn find(state: &AppState, tenant_id: &TenantId, raw: &str) -> ApiResult<TemplateRow> {
    let id = path_id(raw, "template")?;
    state.store.template(tenant_id, &id, None).await?.ok_or(ApiError::NotFound("template"))
}

/// Create a template (version 1).
#[utoipa::path(post, path = "/customers/{id}/templates", tag = "templates", params(("id" = String, Path)),
    request_body = TemplateIn,
    responses((status = 201, body = Template), (status = 422, body = crate::error::ErrorBody, description = "invalid template: the message names the part, line and column")))]
async fn create_template(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<TemplateIn>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let c = content(&input.name, &input.subject, &input.html, input.text.as_deref())?;
    check_content(&state, &c)?;
    let row = state.store.create_template(&t.tenant_id, &c).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The customer's templates at their current versions (five starters come with every customer).
#[utoipa::path(get, path = "/customers/{id}/templates", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = [Template])))]
async fn list_templates(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(state.store.templates(&t.tenant_id).await?.into_iter().map(Template::from).collect()))
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
    let tid = ids.1;
    Ok(Json(find(&state, &t.tenant_id, &tid).await?.into()))
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
    let tid = ids.1;
    let current = find(&state, &t.tenant_id, &tid).await?;
    let text = match input.text {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => return Err(ApiError::validation("`text` must be a string or null")),
    };
    let merged = content(
        input.name.as_deref().unwrap_or(&current.name),
        input.subject.as_deref().unwrap_or(&current.subject),
        input.html.as_deref().unwrap_or(&current.html),
        match &text {
            Some(t) => t.as_deref(),
            None => current.text_body.as_deref(),
        },
    )?;
    check_content(&state, &merged)?;
    let patch = TemplatePatch {
        name: input.name.map(|_| merged.name.clone()),
        subject: input.subject.map(|_| merged.subject.clone()),
        html: input.html.map(|_| merged.html.clone()),
        text: text.map(|_| merged.text.clone()),
    };
    let row = state.store.update_template(&t.tenant_id, &current.id, patch).await?;
    Ok(Json(row.ok_or(ApiError::NotFound("template"))?.into()))
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
    let tid = ids.1;
    let id = path_id(&tid, "template")?;
    match state.store.delete_template(&t.tenant_id, &id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("template")),
    }
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
    let tid = ids.1;
    let id = path_id(&tid, "template")?;
    let rows = state.store.template_versions(&t.tenant_id, &id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("template"));
    }
    Ok(Json(rows.into_iter().map(Template::from).collect()))
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
    let tid = ids.1;
    let template = find(&state, &t.tenant_id, &tid).await?;
    let variables = variables(input.variables)?;
    let contact = match input.contact_id.as_deref() {
        None => None,
        Some(raw) => {
            let id = path_id(raw, "contact")?;
            Some(state.store.contact(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("contact"))?)
        }
    };
    let tenant = state.store.tenant(&t.tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let link = format!("{}/u/preview", state.config.public_url);
    let to = Recipient {
        email: contact.as_ref().map_or("preview@example.com", |c| c.email.as_str()),
        first_name: contact.as_ref().and_then(|c| c.first_name.as_deref()),
        last_name: contact.as_ref().and_then(|c| c.last_name.as_deref()),
        attributes: contact
            .as_ref()
            .and_then(|c| serde_json::from_str(&c.attributes).ok())
            .unwrap_or(Value::Object(Default::default())),
        variables,
        unsubscribe_url: Some(&link),
        tenant_name: &tenant.name,
    };
    let rendered = state
        .renderer
        .render_template(&template.subject, &template.html, template.text_body.as_deref(), &to)
        .map_err(invalid_template)?;
    Ok(Json(rendered))
}
