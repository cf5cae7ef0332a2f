//! A tenant's signup forms (Audience → Forms): the list and a form for a new
//! one, each form's page to edit it with the HTML snippet to embed (a plain
//! form that works without JavaScript, its honeypot hidden), and deletion
//! after a confirmation. Every change goes through `service::forms`, the use
//! cases the API's form routes call; a refusal (a redirect off the tenant's
//! own hosts) is shown on the form with what was typed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::form::Fields;
use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::signup::HONEYPOT_FIELD;
use crate::domain::{parse_id, TenantId};
use crate::render::escape_html;
use crate::service::forms::{self, Form, FormInput};
use crate::service::topics;
use crate::state::AppState;
use crate::store::{TenantRow, TOPICS_MAX};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/forms", get(list).post(create))
        .route("/ui/t/{tid}/forms/{id}", get(show).post(save))
        .route("/ui/t/{tid}/forms/{id}/delete", get(confirm_delete).post(delete))
}

/// The form's fields as typed (kept when the page comes back with a refusal).
#[derive(Serialize, Default)]
struct FormView {
    name: String,
    double_opt_in: bool,
    consent_text: String,
    thank_you_url: String,
    confirmed_url: String,
    redirect_hosts: String,
    allowed_origins: String,
    tags: String,
    topic_ids: Vec<String>,
}

impl FormView {
    fn of(f: &Form) -> Self {
        Self {
            name: f.name.clone(),
            double_opt_in: f.double_opt_in,
            consent_text: f.consent_text.clone(),
            thank_you_url: f.thank_you_url.clone().unwrap_or_default(),
            confirmed_url: f.confirmed_url.clone().unwrap_or_default(),
            redirect_hosts: f.redirect_hosts.join(" "),
            allowed_origins: f.allowed_origins.join(" "),
            tags: f.tags.join(" "),
            topic_ids: f.topic_ids.clone(),
        }
    }

    fn posted(f: &Fields) -> Self {
        Self {
            name: f.get("name").to_owned(),
            double_opt_in: f.checked("double_opt_in"),
            consent_text: f.get("consent_text").to_owned(),
            thank_you_url: f.get("thank_you_url").to_owned(),
            confirmed_url: f.get("confirmed_url").to_owned(),
            redirect_hosts: f.get("redirect_hosts").to_owned(),
            allowed_origins: f.get("allowed_origins").to_owned(),
            tags: f.get("tags").to_owned(),
            topic_ids: f.all("topic"),
        }
    }

    /// What the service is asked for: every field, as the page shows them all.
    fn input(&self) -> FormInput {
        let words = |s: &str| -> Vec<String> {
            s.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).map(str::to_owned).collect()
        };
        let optional = |s: &str| Some(Some(s.trim().to_owned()).filter(|s| !s.is_empty()));
        FormInput {
            name: Some(self.name.clone()),
            topic_ids: Some(self.topic_ids.clone()),
            tags: Some(words(&self.tags)),
            template_id: None,
            thank_you_url: optional(&self.thank_you_url),
            confirmed_url: optional(&self.confirmed_url),
            redirect_hosts: Some(words(&self.redirect_hosts)),
            allowed_origins: Some(words(&self.allowed_origins)),
            double_opt_in: Some(self.double_opt_in),
            consent_text: Some(self.consent_text.clone()),
        }
    }
}

/// The HTML to paste into a page: a plain form posting to the form's public
/// endpoint, the honeypot field hidden from people (and from screen readers).
fn snippet(f: &Form) -> String {
    let action = escape_html(&f.action_url);
    let consent = match f.consent_text.trim() {
        "" => String::new(),
        text => format!("\n  <p>{}</p>", escape_html(text)),
    };
    format!(
        "<form method=\"post\" action=\"{action}\">\n  \
         <label for=\"signup-email\">Email</label>\n  \
         <input id=\"signup-email\" type=\"email\" name=\"email\" required autocomplete=\"email\">\n  \
         <label for=\"signup-first-name\">First name (optional)</label>\n  \
         <input id=\"signup-first-name\" type=\"text\" name=\"first_name\" autocomplete=\"given-name\">\n  \
         <div style=\"position:absolute;left:-10000px\" aria-hidden=\"true\">\n    \
         <label for=\"signup-{HONEYPOT_FIELD}\">Leave this empty</label>\n    \
         <input id=\"signup-{HONEYPOT_FIELD}\" type=\"text\" name=\"{HONEYPOT_FIELD}\" tabindex=\"-1\" autocomplete=\"off\">\n  \
         </div>{consent}\n  \
         <button type=\"submit\">Subscribe</button>\n\
         </form>"
    )
}

/// A use case's refusal in the page's words, or the 404 page.
fn refused(e: crate::service::Error) -> UiResult<(StatusCode, String)> {
    form_error(e).map(|(status, m)| (status, m.replace('`', "")))
}

async fn topic_choices(state: &AppState, id: &TenantId) -> UiResult<Vec<topics::Topic>> {
    Ok(topics::list(state, id, None, TOPICS_MAX as i64).await?)
}

async fn list_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    form: FormView,
    rejected: Option<(StatusCode, String)>,
    done: Option<&str>,
) -> UiResult<Response> {
    let all = forms::list_forms(state, id, None, 1000).await?;
    let topics = topic_choices(state, id).await?;
    let (status, error) = rejected.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    let frame = Frame::new(user, Some(row), "forms").notice(done);
    Ok(page(status, "signup_forms.html", &frame, minijinja::context! { forms => all, form, topics, error }))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let form = FormView { double_opt_in: true, ..FormView::default() };
    list_page(&state, &user, (&id, &row), form, None, q.done.as_deref()).await
}

async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let view = FormView::posted(&f);
    match forms::create(&state, &id, view.input()).await {
        Ok(created) => Ok(see_other(&format!("/ui/t/{id}/forms/{}", created.id), "form_created")),
        Err(e) => {
            let rejected = refused(e)?;
            list_page(&state, &user, (&id, &row), view, Some(rejected), None).await
        }
    }
}

async fn own_form(state: &AppState, id: &TenantId, raw: &str) -> UiResult<Form> {
    let form = parse_id(raw).ok_or(UiError::NotFound)?;
    Ok(forms::get(state, id, &form).await?)
}

async fn form_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    saved: Form,
    posted: Option<(FormView, (StatusCode, String))>,
    done: Option<&str>,
) -> UiResult<Response> {
    let topics = topic_choices(state, id).await?;
    let (form, status, error) = match posted {
        Some((view, (status, m))) => (view, status, Some(m)),
        None => (FormView::of(&saved), StatusCode::OK, None),
    };
    let frame = Frame::new(user, Some(row), "forms").notice(done);
    let snippet = snippet(&saved);
    Ok(page(status, "signup_form.html", &frame, minijinja::context! { saved, form, topics, error, snippet }))
}

async fn show(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let saved = own_form(&state, &id, &raw).await?;
    form_page(&state, &user, (&id, &row), saved, None, q.done.as_deref()).await
}

async fn save(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let saved = own_form(&state, &id, &raw).await?;
    let view = FormView::posted(&f);
    match forms::update(&state, &id, &saved.id, view.input()).await {
        Ok(_) => Ok(see_other(&format!("/ui/t/{id}/forms/{}", saved.id), "form_saved")),
        Err(e) => {
            let rejected = refused(e)?;
            form_page(&state, &user, (&id, &row), saved, Some((view, rejected)), None).await
        }
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let saved = own_form(&state, &id, &raw).await?;
    let frame = Frame::new(&user, Some(&row), "forms");
    Ok(page(StatusCode::OK, "signup_form_delete.html", &frame, minijinja::context! { saved }))
}

async fn delete(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let form = parse_id(&raw).ok_or(UiError::NotFound)?;
    forms::delete(&state, &id, &form).await?;
    Ok(see_other(&format!("/ui/t/{id}/forms"), "form_deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_posts_plainly_and_hides_the_honeypot() {
        let f = Form {
            id: "x".into(),
            customer_id: "t".into(),
            name: "N".into(),
            topic_ids: vec![],
            tags: vec![],
            template_id: None,
            thank_you_url: None,
            confirmed_url: None,
            redirect_hosts: vec![],
            allowed_origins: vec![],
            double_opt_in: true,
            consent_text: "I agree <b>".into(),
            consent_text_version: 1,
            action_url: "https://mail.example/f/x".into(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let s = snippet(&f);
        assert!(s.starts_with("<form method=\"post\" action=\"https://mail.example/f/x\">"), "{s}");
        assert!(s.contains("name=\"website\" tabindex=\"-1\""), "{s}");
        assert!(s.contains("aria-hidden=\"true\""), "{s}");
        assert!(s.contains("I agree &lt;b&gt;"), "{s}");
        assert!(!s.contains("<script"), "{s}");
    }
}
