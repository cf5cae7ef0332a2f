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
use crate::store::{ContactRow, TemplateContent, TemplatePatch, TemplateRow};

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
async fn check_content(state: &AppState, tenant_id: &TenantId, c: &TemplateContent) -> ApiResult<()> {
    check_limits(state, &c.subject, &c.html, c.text.as_deref())?;
    if c.subject.trim().is_empty() {
        return Err(ApiError::validation("`subject` must not be empty"));
    }
    if c.html.trim().is_empty() {
        return Err(ApiError::validation("`html` must not be empty"));
    }
    let sample = Recipient {
        email: "preview@example.com".into(),
        first_name: None,
        last_name: None,
        attributes: "{}".into(),
        variables: "{}".into(),
        unsubscribe_url: Some("https://example.com/u/preview".into()),
        tenant_name: "Preview".into(),
    };
    let checked = state.renderer.check(tenant_id.as_str(), &c.subject, &c.html, c.text.as_deref(), sample).await;
    checked.map_err(unavailable)?.map_err(invalid_template)
}

/// Sizes, a one-line subject, and no NUL anywhere (PostgreSQL cannot store one).
fn check_limits(state: &AppState, subject: &str, html: &str, text: Option<&str>) -> ApiResult<()> {
    let max = state.config.max_html_bytes;
    for (field, len) in [("html", html.len()), ("text", text.map_or(0, str::len))] {
        if len > max {
            return Err(ApiError::TooLarge(format!(
                "`{field}` is {len} bytes; at most {max} are accepted (MAILROOM_MAX_HTML_BYTES)"
            )));
        }
    }
    if subject.chars().count() > SUBJECT_MAX {
        return Err(ApiError::validation(format!("`subject` is longer than {SUBJECT_MAX} characters")));
    }
    crate::domain::check_single_line(subject, "subject").map_err(ApiError::validation)?;
    for (field, value) in [("html", html), ("text", text.unwrap_or_default())] {
        if value.contains('\0') {
            return Err(ApiError::validation(format!("`{field}` must not contain a NUL character")));
        }
    }
    Ok(())
}

pub fn invalid_template(e: crate::render::template::TemplateError) -> ApiError {
    ApiError::Invalid { code: "invalid_template", message: e.to_string() }
}

/// No render worker could be started: the server's trouble, not the template's.
fn unavailable(e: crate::render::isolation::RenderProcessError) -> ApiError {
    tracing::error!(error = %e, "no template renderer");
    ApiError::Unavailable(e.to_string())
}

fn content(name: &str, subject: &str, html: &str, text: Option<&str>) -> ApiResult<TemplateContent> {
    Ok(TemplateContent {
        name: required_text(name, "name", NAME_MAX)?,
        subject: subject.trim().to_owned(),
        html: html.to_owned(),
        text: text.filter(|t| !t.trim().is_empty()).map(str::to_owned),
    })
}

pub(crate) async fn find(state: &AppState, tenant_id: &TenantId, raw: &str) -> ApiResult<TemplateRow> {
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
    let row = create(&state, &t.tenant_id, &input.name, &input.subject, &input.html, input.text.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Creates a template (version 1) after the checks a save makes; the API and the dashboard both call this.
pub(crate) async fn create(
    state: &AppState,
    tenant_id: &TenantId,
    name: &str,
    subject: &str,
    html: &str,
    text: Option<&str>,
) -> ApiResult<TemplateRow> {
    let c = content(name, subject, html, text)?;
    check_content(state, tenant_id, &c).await?;
    Ok(state.store.create_template(tenant_id, &c).await?)
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
    let text = match input.text {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => return Err(ApiError::validation("`text` must be a string or null")),
    };
    let changes = Changes { name: input.name, subject: input.subject, html: input.html, text };
    Ok(Json(update(&state, &t.tenant_id, &ids.1, changes).await?.into()))
}

/// A change to a template: absent fields stay; `text: Some(None)` removes the text part.
pub(crate) struct Changes {
    pub(crate) name: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) text: Option<Option<String>>,
}

/// Saves a change as a new version, after the checks a save makes.
pub(crate) async fn update(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    input: Changes,
) -> ApiResult<TemplateRow> {
    let current = find(state, tenant_id, raw_id).await?;
    let text = input.text;
    let merged = content(
        input.name.as_deref().unwrap_or(&current.name),
        input.subject.as_deref().unwrap_or(&current.subject),
        input.html.as_deref().unwrap_or(&current.html),
        match &text {
            Some(t) => t.as_deref(),
            None => current.text_body.as_deref(),
        },
    )?;
    check_content(state, tenant_id, &merged).await?;
    let patch = TemplatePatch {
        name: input.name.map(|_| merged.name.clone()),
        subject: input.subject.map(|_| merged.subject.clone()),
        html: input.html.map(|_| merged.html.clone()),
        text: text.map(|_| merged.text.clone()),
    };
    let row = state.store.update_template(tenant_id, &current.id, patch).await?;
    row.ok_or(ApiError::NotFound("template"))
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
    delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a template and its versions.
pub(crate) async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<()> {
    let id = path_id(raw_id, "template")?;
    match state.store.delete_template(tenant_id, &id).await? {
        true => Ok(()),
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
    let template = find(&state, &t.tenant_id, &ids.1).await?;
    let contact = match input.contact_id.as_deref() {
        None => None,
        Some(raw) => {
            let id = path_id(raw, "contact")?;
            Some(state.store.contact(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("contact"))?)
        }
    };
    let draft = Draft { subject: &template.subject, html: &template.html, text: template.text_body.as_deref() };
    Ok(Json(preview(&state, &t.tenant_id, draft, contact.as_ref(), input.variables).await?))
}

/// Content to render: a stored template's, or a draft being edited.
pub(crate) struct Draft<'a> {
    pub(crate) subject: &'a str,
    pub(crate) html: &'a str,
    pub(crate) text: Option<&'a str>,
}

/// Renders content as a send would, for `contact` (else a sample contact)
/// with `variables`, without sending: the API's preview and the dashboard's.
pub(crate) async fn preview(
    state: &AppState,
    tenant_id: &TenantId,
    draft: Draft<'_>,
    contact: Option<&ContactRow>,
    variables: Option<Value>,
) -> ApiResult<Rendered> {
    let variables = self::variables(variables)?;
    check_limits(state, draft.subject, draft.html, draft.text)?;
    let tenant = state.store.tenant(tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let link = format!("{}/u/preview", state.config.public_url);
    let to = Recipient {
        email: contact.map_or("preview@example.com", |c| c.email.as_str()).to_owned(),
        first_name: contact.and_then(|c| c.first_name.clone()),
        last_name: contact.and_then(|c| c.last_name.clone()),
        attributes: contact.map_or_else(|| "{}".to_owned(), |c| c.attributes.clone()),
        variables: variables.to_string(),
        unsubscribe_url: Some(link),
        tenant_name: tenant.name,
    };
    let rendered = state.renderer.render_template(tenant_id.as_str(), draft.subject, draft.html, draft.text, to).await;
    rendered.map_err(unavailable)?.map_err(invalid_template)
}
