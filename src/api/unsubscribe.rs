//! One-click unsubscribe (RFC 8058), for recipients rather than API clients:
//! small HTML pages, no authentication, no cookies, no redirects.
//!
//! - `POST /u/{token}` unsubscribes at once (mailbox providers send
//!   `List-Unsubscribe=One-Click` as a form, or an empty body) and answers 200:
//!   from the campaign's topic when it targets one, and the page then offers
//!   to unsubscribe from everything (the same POST with `scope=all`);
//! - `GET /u/{token}` only shows a page with a confirm button: link scanners
//!   follow links, and a GET must never unsubscribe anyone.
//!
//! Both are idempotent. A token that is not genuine gets a 404 page that says
//! nothing about why.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use super::public_texts::{self, Texts};
use crate::auth::ClientAddress;
use crate::domain::ConsentClient;
use crate::domain::Locale;
use crate::error::ApiResult;
use crate::render::escape_html;
use crate::service::unsubscribe::{self, Unsubscribed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/u/{token}", get(confirm_page).post(one_click))
}

/// The page every recipient-facing link shows (unsubscribe, preference
/// centre): one small stylesheet, no script, readable on a phone.
pub(super) fn page(t: &Texts, status: StatusCode, title: &str, body: &str) -> Response {
    let lang = t.lang;
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#111827;line-height:1.5;overflow-wrap:anywhere}}\
         button{{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:0;background:#111827;color:#fff;cursor:pointer}}\
         fieldset{{border:0;padding:0;margin:0 0 1.5rem}}\
         label{{display:flex;gap:.75rem;align-items:flex-start;padding:.75rem 0;border-bottom:1px solid #e5e7eb;cursor:pointer}}\
         input[type=checkbox]{{width:1.25rem;height:1.25rem;margin:.15rem 0 0;flex:none;accent-color:#111827}}\
         label.all{{margin-top:1rem}}\
         .hint{{display:block;color:#4b5563;font-size:.9rem}}\
         .note{{padding:.75rem 1rem;border-left:4px solid #b45309;background:#fffbeb}}\
         .saved{{padding:.75rem 1rem;border-left:4px solid #047857;background:#ecfdf5;font-weight:600}}\
         @media (prefers-color-scheme: dark){{body{{background:#111827;color:#f9fafb}}button{{background:#f9fafb;color:#111827}}\
         label{{border-color:#374151}}.hint{{color:#d1d5db}}.note{{background:#451a03}}.saved{{background:#022c22}}input[type=checkbox]{{accent-color:#f9fafb}}}}</style>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], Html(html))
        .into_response()
}

/// What a link that is not genuine shows (it says nothing about why).
pub(super) fn not_found() -> Response {
    let t = public_texts::texts(Locale::En);
    page(t, StatusCode::NOT_FOUND, t.not_found_title, &format!("<p>{}</p>", t.not_found_body))
}

async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let Some((_, target)) = unsubscribe::target(&state, &token).await? else { return Ok(not_found()) };
    let t = public_texts::of(&target.tenant_locale);
    let name = escape_html(&target.tenant_name);
    let token = escape_html(&token);
    let question = match &target.topic_name {
        Some(topic) => public_texts::fill(t.ask_topic, &name, &escape_html(topic)),
        None => public_texts::fill(t.ask_all, &name, ""),
    };
    Ok(page(
        t,
        StatusCode::OK,
        t.unsubscribe_title,
        &format!(
            "<p>{question}</p>\
             <form method=\"post\" action=\"/u/{token}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">{}</button></form>",
            t.unsubscribe_button
        ),
    ))
}

/// Whether a form body asks to leave everything (`scope=all`, sent by the
/// second step of a topic's page). A mailbox provider's one-click body never does.
fn asks_everything(body: &[u8]) -> bool {
    url::form_urlencoded::parse(body).any(|(k, v)| k == "scope" && v == "all")
}

/// The person's client, kept beside the consent record: its address (the
/// peer's, or a trusted proxy's forwarded one) and user agent (at most 512
/// characters, control characters dropped).
pub(super) fn client(address: Option<std::net::IpAddr>, headers: &HeaderMap) -> ConsentClient {
    let user_agent = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().filter(|c| !c.is_control()).take(512).collect());
    ConsentClient { ip: address.map(|a| a.to_string()), user_agent }
}

async fn one_click(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let everything = asks_everything(&body);
    let client = client(address, &headers);
    let Some((t, done)) = unsubscribe::one_click(&state, &token, everything, client).await? else {
        return Ok(not_found());
    };
    let texts = public_texts::of(&t.tenant_locale);
    let name = escape_html(&t.tenant_name);
    Ok(match done {
        Unsubscribed::Topic(topic) => {
            let topic = escape_html(&topic);
            let token = escape_html(&token);
            page(
                texts,
                StatusCode::OK,
                texts.unsubscribed_title,
                &format!(
                    "<p>{}</p><p>{}</p>\
                     <form method=\"post\" action=\"/u/{token}\">\
                     <input type=\"hidden\" name=\"scope\" value=\"all\">\
                     <button type=\"submit\">{}</button></form>",
                    public_texts::fill(texts.left_topic, &name, &topic),
                    public_texts::fill(texts.others_still_come, &name, ""),
                    texts.everything_button
                ),
            )
        }
        Unsubscribed::Everything => page(
            texts,
            StatusCode::OK,
            texts.unsubscribed_title,
            &format!("<p>{}</p>", public_texts::fill(texts.left_all, &name, "")),
        ),
    })
}
