//! A tenant's templates: list, create, edit with a live preview, delete.
//! Saving and rendering go through the same use cases as the API's
//! (`service::templates::{create, update, delete, preview}`), so a template the
//! dashboard accepts is one the API accepts, and the preview is what a send
//! would render.
//!
//! The rendered html is shown in `<iframe sandbox srcdoc>`: no script runs,
//! and it is a document apart from the dashboard's. It inherits the editor
//! page's CSP ([`EDITOR_CSP`]): nothing in it loads from another host, and
//! its inline styles (mail is styled inline) apply.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::operator::Done;
use super::session::CsrfOnly;
use super::tenant_scope::header_token;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, scope, see_other, Frame, UiResult, UiUser};
use crate::domain::{EmailAddress, TenantId};
use crate::error::ApiError;
use crate::render::Rendered;
use crate::service::templates::{self, Changes, Draft, Template};
use crate::state::AppState;
use crate::store::TenantRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/templates", get(list).post(create))
        .route("/ui/t/{tid}/templates/new", get(new_page))
        .route("/ui/t/{tid}/templates/preview", post(live_preview))
        .route("/ui/t/{tid}/templates/{id}", get(edit_page).post(save))
        .route("/ui/t/{tid}/templates/{id}/delete", get(delete_page).post(delete))
}

/// The editor's fields. `action` is the button pressed: `save`, or `preview`
/// (the no-script way to see the rendering).
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct EditorForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
    /// Preview for this contact's address; empty: a sample contact.
    #[serde(default)]
    contact: String,
    /// Preview with these variables (a JSON object); empty: none.
    #[serde(default)]
    variables: String,
    #[serde(default, skip_serializing)]
    action: String,
}

/// Refuses a NUL in any field: PostgreSQL cannot store one and no field has a
/// use for it (the API's JSON edge refuses it the same way).
pub(crate) fn refuse_nul(fields: &[(&str, &str)]) -> Result<(), ApiError> {
    match fields.iter().find(|(_, v)| v.contains('\0')) {
        Some((name, _)) => Err(ApiError::validation(format!("{name} must not contain a NUL character"))),
        None => Ok(()),
    }
}

/// A variables field: empty is none; else a JSON object, checked as the API checks it.
pub(crate) fn parse_variables(raw: &str) -> Result<Option<Value>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::validation(format!("the variables are not valid JSON: {e}")))?;
    if crate::domain::nul_path(&v).is_some() {
        return Err(ApiError::validation("the variables must not contain a NUL character"));
    }
    templates::variables(Some(v)).map(Some).map_err(ApiError::from)
}

impl EditorForm {
    fn check(&self) -> Result<(), ApiError> {
        refuse_nul(&[
            ("The name", &self.name),
            ("The subject", &self.subject),
            ("The html", &self.html),
            ("The text", &self.text),
            ("The contact", &self.contact),
            ("The variables", &self.variables),
        ])
    }

    fn text(&self) -> Option<&str> {
        Some(self.text.as_str()).filter(|t| !t.trim().is_empty())
    }

    /// Renders the form's content as a send would, or says why it cannot.
    async fn render(&self, state: &AppState, tenant_id: &TenantId) -> Result<Rendered, ApiError> {
        self.check()?;
        let variables = parse_variables(&self.variables)?;
        let contact = match self.contact.trim() {
            "" => None,
            raw => {
                let email = EmailAddress::parse(raw).map_err(ApiError::validation)?;
                let found = state.store.contact_by_email(tenant_id, &email.normalized()).await?;
                Some(found.ok_or_else(|| ApiError::validation(format!("no contact has the address {raw}")))?)
            }
        };
        let draft = Draft { subject: &self.subject, html: &self.html, text: self.text() };
        templates::preview(state, tenant_id, draft, contact.as_ref(), variables).await.map_err(ApiError::from)
    }
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let list: Vec<Template> = state.store.templates(&id).await?.into_iter().map(Template::from).collect();
    let frame = Frame::new(&user, Some(&row), "templates").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "mail_templates.html", &frame, minijinja::context! { templates => list }))
}

/// What the editor page shows besides the form.
#[derive(Serialize, Default)]
struct EditorView {
    /// The template being edited (absent for a new one).
    template: Option<Template>,
    preview: Option<Rendered>,
    /// Why the preview could not be rendered.
    preview_error: Option<String>,
    /// Why the save was refused.
    error: Option<String>,
}

/// The dashboard's policy with inline styles allowed, for the preview frame
/// (which inherits it): scripts stay refused, and nothing loads from elsewhere.
pub(super) const EDITOR_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn editor_page(status: StatusCode, frame: &Frame, form: &EditorForm, view: &EditorView) -> Response {
    let ctx = minijinja::context! { form, ..minijinja::Value::from_serialize(view) };
    let mut res = page(status, "mail_template.html", frame, ctx);
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EDITOR_CSP));
    res
}

fn editor(status: StatusCode, user: &UiUser, row: &TenantRow, form: &EditorForm, view: EditorView) -> Response {
    editor_page(status, &Frame::new(user, Some(row), "templates"), form, &view)
}

/// The preview of `form`, or why there is none.
async fn preview_of(state: &AppState, id: &TenantId, form: &EditorForm) -> (Option<Rendered>, Option<String>) {
    match form.render(state, id).await {
        Ok(r) => (Some(r), None),
        Err(e) if e.status().is_client_error() => (None, Some(e.to_string())),
        Err(e) => {
            tracing::error!(error = ?e, "template preview failed");
            (None, Some("mailroom could not render this; the details are in its log.".into()))
        }
    }
}

const STARTER_HTML: &str = "<h1>Hello {{ first_name }}</h1>\n<p>News from {{ tenant.name }}.</p>\n\
     <p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>";

async fn new_page(State(state): State<AppState>, Scoped { user, id, tenant: row, .. }: Scoped) -> UiResult<Response> {
    let form =
        EditorForm { subject: "Hello {{ first_name }}".into(), html: STARTER_HTML.into(), ..EditorForm::default() };
    let (preview, preview_error) = preview_of(&state, &id, &form).await;
    Ok(editor(StatusCode::OK, &user, &row, &form, EditorView { preview, preview_error, ..EditorView::default() }))
}

async fn edit_page(
    State(state): State<AppState>,
    Path((_, tpl)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let current = templates::find(&state, &id, &tpl).await?;
    let form = EditorForm {
        name: current.name.clone(),
        subject: current.subject.clone(),
        html: current.html.clone(),
        text: current.text_body.clone().unwrap_or_default(),
        ..EditorForm::default()
    };
    let (preview, preview_error) = preview_of(&state, &id, &form).await;
    let frame = Frame::new(&user, Some(&row), "templates").notice(q.done.as_deref());
    let view = EditorView { template: Some(current.into()), preview, preview_error, error: None };
    Ok(editor_page(StatusCode::OK, &frame, &form, &view))
}

async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<EditorForm>>,
) -> UiResult<Response> {
    if f.action == "preview" {
        let (preview, preview_error) = preview_of(&state, &id, &f).await;
        return Ok(editor(
            StatusCode::OK,
            &user,
            &row,
            &f,
            EditorView { preview, preview_error, ..Default::default() },
        ));
    }
    let saved = match f.check() {
        Ok(()) => {
            templates::create(&state, &id, &f.name, &f.subject, &f.html, f.text(), None).await.map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(t) => Ok(see_other(&format!("/ui/t/{id}/templates/{}", t.id), "template_created")),
        Err(e) => {
            let (status, error) = form_error(e)?;
            let (preview, preview_error) = preview_of(&state, &id, &f).await;
            let view = EditorView { preview, preview_error, error: Some(error), ..Default::default() };
            Ok(editor(status, &user, &row, &f, view))
        }
    }
}

async fn save(
    State(state): State<AppState>,
    Path((_, tpl)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<EditorForm>>,
) -> UiResult<Response> {
    let current = templates::find(&state, &id, &tpl).await?;
    if f.action == "preview" {
        let (preview, preview_error) = preview_of(&state, &id, &f).await;
        let view = EditorView { template: Some(current.into()), preview, preview_error, error: None };
        return Ok(editor(StatusCode::OK, &user, &row, &f, view));
    }
    let changes = Changes {
        name: Some(f.name.clone()),
        subject: Some(f.subject.clone()),
        html: Some(f.html.clone()),
        text: Some(f.text().map(str::to_owned)),
        sample_variables: None,
    };
    let saved = match f.check() {
        Ok(()) => templates::update(&state, &id, &current.id, changes).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match saved {
        Ok(t) => Ok(see_other(&format!("/ui/t/{id}/templates/{}", t.id), "template_saved")),
        Err(e) => {
            let (status, error) = form_error(e)?;
            let (preview, preview_error) = preview_of(&state, &id, &f).await;
            let view = EditorView { template: Some(current.into()), preview, preview_error, error: Some(error) };
            Ok(editor(status, &user, &row, &f, view))
        }
    }
}

/// The editor's live preview: the form's fields in, the rendering (or the
/// error) out as JSON. The token comes in the CSRF header, as for the segment count.
async fn live_preview(
    State(state): State<AppState>,
    user: UiUser,
    Path(tid): Path<String>,
    headers: HeaderMap,
    Form(f): Form<EditorForm>,
) -> Response {
    let token = header_token(&headers).unwrap_or(&f.csrf).to_owned();
    let scoped = async {
        user.check_csrf(&token)?;
        scope(&state, &user, &tid).await
    }
    .await;
    let id = match scoped {
        Ok((id, _)) => id,
        Err(e) => return e.into_response(),
    };
    match f.render(&state, &id).await {
        Ok(r) => Json(json!({ "subject": r.subject, "html": r.html, "text": r.text })).into_response(),
        // The API's error envelope, as the API would answer.
        Err(e) => e.into_response(),
    }
}

async fn delete_page(
    State(state): State<AppState>,
    Path((_, tpl)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let template = Template::from(templates::find(&state, &id, &tpl).await?);
    let frame = Frame::new(&user, Some(&row), "templates");
    Ok(page(StatusCode::OK, "mail_template_delete.html", &frame, minijinja::context! { template }))
}

async fn delete(
    State(state): State<AppState>,
    Path((_, tpl)): Path<(String, String)>,
    Posted { id, .. }: Posted<Form<CsrfOnly>>,
) -> UiResult<Response> {
    templates::delete(&state, &id, &tpl).await?;
    Ok(see_other(&format!("/ui/t/{id}/templates"), "template_deleted"))
}

super::tenant_scope::csrf_field!(EditorForm);
