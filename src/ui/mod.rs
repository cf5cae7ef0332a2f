//! The web dashboard at `/ui`: server-rendered pages over the same use cases
//! (`crate::service`) the API handlers call. Plain forms work without JavaScript; a small script
//! (served from here, like the stylesheet) adds progress and live counts.
//! Nothing is fetched from anywhere but mailroom itself.
//!
//! Signing in with a key opens a server-side session (`session`); every form
//! carries the session's CSRF token, and a tenant's session reaches only that
//! tenant's pages (any other tenant's answer 404): both are checked by the
//! extractors of `tenant_scope` (`Scoped` pages, `Posted` forms).

mod automation_edit;
mod automation_form;
mod automations;
mod campaign_figures;
mod campaigns;
mod chart;
mod compose_form;
mod consent_history;
mod contact_details;
mod contact_erasure;
mod contacts;
mod dead_letters;
mod events;
mod form;
mod format;
mod mail_templates;
mod messages;
mod operator;
mod overview;
mod reputation;
mod reputation_view;
mod segment_form;
mod segments;
mod session;
mod settings;
mod signup_forms;
mod suppressions;
mod tenant_scope;
mod tenant_webhooks;
mod topics;

use std::sync::LazyLock;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde::Serialize;

use crate::domain::TenantId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantRow;

pub use session::UiUser;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .merge(operator::router())
        .merge(overview::router())
        .merge(contacts::router())
        .merge(contact_erasure::router())
        .merge(consent_history::router())
        .merge(segments::router())
        .merge(topics::router())
        .merge(signup_forms::router())
        .merge(campaigns::router())
        .merge(dead_letters::router())
        .merge(suppressions::router())
        .merge(tenant_webhooks::router())
        .merge(automations::router())
        .merge(reputation::router())
        .merge(mail_templates::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(settings::router())
        // Unknown dashboard paths get a page, not the API's JSON 404.
        .route("/ui/{*rest}", get(not_found_page).post(not_found_page))
        .layer(axum::middleware::from_fn_with_state(state, keep_navigation))
        .layer(axum::middleware::map_response(security_headers))
}

/// Pages are private and change: never cached, never framed, scripts and
/// styles only from mailroom itself.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    // A page may bring its own (the template editor, whose preview frame inherits it).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// An error page drawn inside the navigation of whoever is signed in: a
/// mistyped link in the dashboard leaves the menu and Sign out in place. The
/// page is drawn first without it (an error knows no session); when the
/// request carries a good session, it is drawn again with that session's
/// navigation (the tenant of a `/ui/t/{tid}/` path, when this session may see it).
async fn keep_navigation(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (headers, uri) = (req.headers().clone(), req.uri().clone());
    let res = next.run(req).await;
    let Some(shown) = res.extensions().get::<ErrorCtx>().cloned() else { return res };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.headers = headers;
    let Ok(user) = UiUser::from_request_parts(&mut parts, &state).await else { return res };
    // The tenant the path names if this session may see it, else the session's own.
    let named = uri.path().strip_prefix("/ui/t/").and_then(|rest| rest.split('/').next()).map(str::to_owned);
    let mut tenant = None;
    for raw in [named, user.tenant.as_ref().map(ToString::to_string)].into_iter().flatten() {
        if let Ok((_, row)) = scope(&state, &user, &raw).await {
            tenant = Some(row);
            break;
        }
    }
    let frame = Frame::new(&user, tenant.as_ref(), "");
    let mut again = page(res.status(), "error.html", &frame, shown);
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            again.headers_mut().append(name.clone(), value.clone());
        }
    }
    again
}

async fn home(user: UiUser) -> Redirect {
    match &user.tenant {
        None => Redirect::to("/ui/tenants"),
        Some(t) => Redirect::to(&format!("/ui/t/{t}")),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.css" => (include_str!("assets/app.css"), "text/css; charset=utf-8"),
        "app.js" => (include_str!("assets/app.js"), "text/javascript; charset=utf-8"),
        "logo.svg" => (include_str!("assets/logo.svg"), "image/svg+xml"),
        _ => return not_found_page().await,
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

async fn not_found_page() -> Response {
    UiError::NotFound.into_response()
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    format::register(&mut env);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("macros.html", include_str!("templates/macros.html")),
        ("error.html", include_str!("templates/error.html")),
        ("login.html", include_str!("templates/login.html")),
        ("tenants.html", include_str!("templates/tenants.html")),
        ("tenant_admin.html", include_str!("templates/tenant_admin.html")),
        ("key_issued.html", include_str!("templates/key_issued.html")),
        ("tenant_delete.html", include_str!("templates/tenant_delete.html")),
        ("dead_letters.html", include_str!("templates/dead_letters.html")),
        ("status.html", include_str!("templates/status.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("contacts.html", include_str!("templates/contacts.html")),
        ("contact.html", include_str!("templates/contact.html")),
        ("contact_erase.html", include_str!("templates/contact_erase.html")),
        ("contact_consent.html", include_str!("templates/contact_consent.html")),
        ("consent_macros.html", include_str!("templates/consent_macros.html")),
        ("import.html", include_str!("templates/import.html")),
        ("segments.html", include_str!("templates/segments.html")),
        ("segment.html", include_str!("templates/segment.html")),
        ("segment_delete.html", include_str!("templates/segment_delete.html")),
        ("topics.html", include_str!("templates/topics.html")),
        ("topic.html", include_str!("templates/topic.html")),
        ("topic_delete.html", include_str!("templates/topic_delete.html")),
        ("signup_forms.html", include_str!("templates/signup_forms.html")),
        ("signup_form.html", include_str!("templates/signup_form.html")),
        ("signup_form_delete.html", include_str!("templates/signup_form_delete.html")),
        ("segment_builder.html", include_str!("templates/segment_builder.html")),
        ("campaigns.html", include_str!("templates/campaigns.html")),
        ("compose.html", include_str!("templates/compose.html")),
        ("confirm_send.html", include_str!("templates/confirm_send.html")),
        ("campaign.html", include_str!("templates/campaign.html")),
        ("messages.html", include_str!("templates/messages.html")),
        ("message.html", include_str!("templates/message.html")),
        ("suppressions.html", include_str!("templates/suppressions.html")),
        ("suppression_remove.html", include_str!("templates/suppression_remove.html")),
        ("webhooks.html", include_str!("templates/webhooks.html")),
        ("webhook_form.html", include_str!("templates/webhook_form.html")),
        ("webhook.html", include_str!("templates/webhook.html")),
        ("webhook_delete.html", include_str!("templates/webhook_delete.html")),
        ("automations.html", include_str!("templates/automations.html")),
        ("automation.html", include_str!("templates/automation.html")),
        ("automation_form.html", include_str!("templates/automation_form.html")),
        ("automation_delete.html", include_str!("templates/automation_delete.html")),
        ("reputation_macros.html", include_str!("templates/reputation_macros.html")),
        ("reputation.html", include_str!("templates/reputation.html")),
        ("reputations.html", include_str!("templates/reputations.html")),
        ("mail_templates.html", include_str!("templates/mail_templates.html")),
        ("mail_template.html", include_str!("templates/mail_template.html")),
        ("mail_template_delete.html", include_str!("templates/mail_template_delete.html")),
        ("events.html", include_str!("templates/events.html")),
        ("settings.html", include_str!("templates/settings.html")),
    ] {
        // Checked by a unit test; a broken template answers 500, never a panic.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "dashboard template does not parse");
        }
    }
    env
});

/// Dead letters listed on a page, newest first (the operator's and a tenant's).
pub const DEAD_LETTERS_SHOWN: i64 = 500;

/// What every page knows: who is signed in, where, and the form token.
#[derive(Serialize)]
pub struct Frame {
    pub csrf: String,
    pub is_admin: bool,
    /// The tenant whose pages these are (for a tenant: always its own).
    pub tenant: Option<TenantNav>,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// A short notice after an action (`?done=...`).
    pub notice: Option<&'static str>,
}

#[derive(Serialize, Clone)]
pub struct TenantNav {
    pub id: String,
    pub name: String,
}

impl Frame {
    pub fn new(user: &UiUser, tenant: Option<&TenantRow>, section: &'static str) -> Self {
        Self {
            csrf: user.csrf.clone(),
            is_admin: user.tenant.is_none(),
            tenant: tenant.map(|t| TenantNav { id: t.id.to_string(), name: t.name.clone() }),
            section,
            notice: None,
        }
    }

    pub fn notice(mut self, done: Option<&str>) -> Self {
        self.notice = done.and_then(notice_text);
        self
    }
}

/// Notices are chosen from a fixed list, so a link cannot make a page say anything.
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "tenant_created" => "Tenant created.",
        "key_revoked" => "Key revoked.",
        "tenant_deleted" => "Tenant deleted.",
        "domain_added" => "Domain registered: publish the DNS records below, then verify.",
        "domain_verified" => "Domain verified. You can send now.",
        "domain_pending" => "Verification started; DNS changes can take a while to be seen.",
        "contact_added" => "Contact added.",
        "contact_saved" => "Contact saved.",
        "contact_unsubscribed" => "Contact unsubscribed.",
        "contact_erased" => "Contact erased: only a keyed hash of the address is kept, so it is never mailed again.",
        "segment_created" => "Segment created.",
        "segment_saved" => "Segment saved.",
        "segment_deleted" => "Segment deleted.",
        "segment_joined" => "Added to the segment.",
        "segment_left" => "Removed from the segment.",
        "topic_created" => "Topic created.",
        "topic_saved" => "Topic saved.",
        "topic_deleted" => "Topic deleted.",
        "contact_topics_saved" => "Topic choices saved.",
        "form_created" => "Signup form created: paste its HTML into your website.",
        "form_saved" => "Signup form saved.",
        "form_deleted" => "Signup form deleted.",
        "campaign_queued" => "Campaign queued.",
        "campaign_paused" => "Campaign paused.",
        "campaign_resumed" => "Campaign resumed.",
        "campaign_cancelled" => "Campaign cancelled.",
        "requeued" => "Dead letter queued again.",
        "automation_enabled" => "Automation switched on.",
        "automation_disabled" => "Automation switched off.",
        "webhook_saved" => "Endpoint saved.",
        "webhook_enabled" => "Endpoint enabled.",
        "webhook_disabled" => "Endpoint disabled: no events are sent to it.",
        "webhook_deleted" => "Endpoint deleted.",
        "webhook_test_queued" => "Test event queued: it appears in the deliveries below.",
        "webhook_replayed" => "Delivery queued again.",
        "suppressions_added" => "Addresses suppressed.",
        "suppression_removed" => "Address removed from the list.",
        "automation_created" => "Automation created.",
        "automation_saved" => "Automation saved.",
        "automation_deleted" => "Automation deleted.",
        "reputation_resumed" => "Campaign mail resumed.",
        "template_created" => "Template created.",
        "template_saved" => "Template saved as a new version.",
        "template_deleted" => "Template deleted.",
        "sender_saved" => "Default sender saved.",
        "language_saved" => "Language saved.",
        _ => return None,
    })
}

/// Renders a page: `ctx` is serialized into the template's context beside `frame`.
pub fn page(status: StatusCode, name: &str, frame: &Frame, ctx: impl Serialize) -> Response {
    let rendered = TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(minijinja::context! { frame => frame, ..minijinja::Value::from_serialize(&ctx) }));
    match rendered {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = ?e, "dashboard page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><title>Error</title><p>This page failed to render.</p>",
            )
                .into_response()
        }
    }
}

/// A page's failure, shown as a page (never the API's JSON).
#[derive(Debug)]
pub enum UiError {
    NotFound,
    /// The form's CSRF token is missing or wrong.
    Csrf,
    Api(ApiError),
}

/// A refusal the person can fix (invalid input, a private address, an unknown
/// template...) is shown on the form's page with what they typed; a missing
/// object is the 404 page, anything else the error page.
pub(super) fn form_error(e: impl Into<ApiError>) -> UiResult<(StatusCode, String)> {
    match e.into() {
        ApiError::NotFound(_) => Err(UiError::NotFound),
        e if e.status().is_client_error() => Ok((e.status(), e.to_string())),
        e => Err(UiError::Api(e)),
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(_) => UiError::NotFound,
            e => UiError::Api(e),
        }
    }
}

/// A use case's refusal, shown as the API would word it.
impl From<crate::service::Error> for UiError {
    fn from(e: crate::service::Error) -> Self {
        UiError::from(ApiError::from(e))
    }
}

impl From<sqlx::Error> for UiError {
    fn from(e: sqlx::Error) -> Self {
        UiError::from(ApiError::from(e))
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        UiError::from(ApiError::from(e))
    }
}

/// What an error page says; kept on its response for [`keep_navigation`].
#[derive(Serialize, Clone)]
struct ErrorCtx {
    title: &'static str,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            UiError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here.".to_owned()),
            UiError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from a current page of this dashboard. Go back, reload and try again."
                    .to_owned(),
            ),
            UiError::Api(e) => {
                let status = e.status();
                if status.is_server_error() {
                    if let ApiError::Internal(inner) = &e {
                        tracing::error!(error = ?inner, "dashboard request failed");
                    }
                    (status, "Something went wrong", "mailroom could not do this; the details are in its log.".into())
                } else {
                    (status, "That did not work", e.to_string())
                }
            }
        };
        let frame = Frame { csrf: String::new(), is_admin: false, tenant: None, section: "", notice: None };
        let shown = ErrorCtx { title, message };
        let mut res = page(status, "error.html", &frame, &shown);
        res.extensions_mut().insert(shown);
        res
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// The tenant a page names, if this session may see it: the operator sees
/// every tenant, a tenant only itself; anything else is 404.
pub async fn scope(state: &AppState, user: &UiUser, raw: &str) -> UiResult<(TenantId, TenantRow)> {
    let id = TenantId::parse(raw).ok_or(UiError::NotFound)?;
    if let Some(own) = &user.tenant {
        if own != &id {
            return Err(UiError::NotFound);
        }
    }
    let row = state.store.tenant(&id).await?.ok_or(UiError::NotFound)?;
    Ok((id, row))
}

/// A link's query from a page's filters: the present, non-empty ones, encoded.
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// 303 to a page, with a notice code.
pub fn see_other(path: &str, done: &str) -> Response {
    Redirect::to(&format!("{path}?done={done}")).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let names = [
            "base.html",
            "login.html",
            "tenants.html",
            "overview.html",
            "campaign.html",
            "message.html",
            "automations.html",
            "automation.html",
            "mail_templates.html",
            "mail_template.html",
            "mail_template_delete.html",
            "events.html",
            "segments.html",
            "segment.html",
            "segment_delete.html",
            "contact_erase.html",
            "topics.html",
            "topic.html",
            "topic_delete.html",
            "signup_forms.html",
            "signup_form.html",
            "signup_form_delete.html",
            "settings.html",
            "contact_consent.html",
            "consent_macros.html",
        ];
        for name in names {
            assert!(super::TEMPLATES.get_template(name).is_ok(), "{name}");
        }
        assert_eq!(super::TEMPLATES.templates().count(), 51);
    }
}
