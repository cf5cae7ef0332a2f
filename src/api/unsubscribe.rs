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

use crate::auth::ClientAddress;
use crate::domain::ConsentClient;
use crate::error::ApiResult;
use crate::render::escape_html;
use crate::service::unsubscribe::{self, Unsubscribed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/u/{token}", get(confirm_page).post(one_click))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#111827}}\
         button{{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:0;background:#111827;color:#fff;cursor:pointer}}\
         @media (prefers-color-scheme: dark){{body{{background:#111827;color:#f9fafb}}button{{background:#f9fafb;color:#111827}}}}</style>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], Html(html))
        .into_response()
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Link not valid", "<p>This unsubscribe link is not valid.</p>")
}

async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let Some((_, t)) = unsubscribe::target(&state, &token).await? else { return Ok(not_found()) };
    let name = escape_html(&t.tenant_name);
    let token = escape_html(&token);
    let question = match &t.topic_name {
        Some(topic) => {
            format!("Stop receiving <strong>{}</strong> email from <strong>{name}</strong>?", escape_html(topic))
        }
        None => format!("Stop receiving marketing email from <strong>{name}</strong>?"),
    };
    Ok(page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>{question}</p>\
             <form method=\"post\" action=\"/u/{token}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>"
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
fn client(address: Option<std::net::IpAddr>, headers: &HeaderMap) -> ConsentClient {
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
    let name = escape_html(&t.tenant_name);
    Ok(match done {
        Unsubscribed::Topic(topic) => {
            let topic = escape_html(&topic);
            let token = escape_html(&token);
            page(
                StatusCode::OK,
                "You are unsubscribed",
                &format!(
                    "<p>You will not get <strong>{topic}</strong> email from {name} again.</p>\
                     <p>Other email from {name} still comes. To stop all of it:</p>\
                     <form method=\"post\" action=\"/u/{token}\">\
                     <input type=\"hidden\" name=\"scope\" value=\"all\">\
                     <button type=\"submit\">Unsubscribe from everything</button></form>"
                ),
            )
        }
        Unsubscribed::Everything => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!("<p>{name} will not send you marketing email again.</p>"),
        ),
    })
}
