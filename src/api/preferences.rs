//! The preference centre (`/p/{token}`), for recipients rather than API
//! clients: a small HTML page, no login, no cookies, no script. The token is
//! the one in the email's unsubscribe link (see `service::preferences`).
//!
//! - `GET /p/{token}` shows every topic with a checkbox (ticked: the
//!   recipient gets it), "unsubscribe from all" and one Save button; it
//!   changes nothing (link scanners follow links);
//! - `POST /p/{token}` saves all of it at once and shows the page again
//!   with "Saved". The token is the credential, so there is no CSRF token;
//!   only a plain form post (`application/x-www-form-urlencoded`) from the
//!   page itself is taken: a browser's `Sec-Fetch-Site: cross-site` is refused.
//!
//! A token that is not genuine gets the same 404 page as `/u/{token}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::public_texts::{self, fill, Texts};
use super::unsubscribe::{not_found, page};
use crate::auth::ClientAddress;
use crate::error::ApiResult;
use crate::render::escape_html;
use crate::service::preferences::{self, Choices, Preferences};
use crate::service::Error;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, save))
}

/// The preference centre's form (`application/x-www-form-urlencoded`); no other field is taken.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form read by `parse_form`
struct PreferencesForm {
    /// Each topic the page showed (repeated).
    shown: Vec<String>,
    /// Each ticked topic (repeated); one the page did not show is refused.
    topic: Vec<String>,
    /// `1`: unsubscribe from everything.
    all: Option<String>,
}

fn render(p: &Preferences, token: &str, saved: bool) -> Response {
    let t = public_texts::of(&p.locale);
    let name = escape_html(&p.tenant_name);
    let token = escape_html(token);
    let mut body = String::new();
    if saved {
        body.push_str(&format!("<p class=\"saved\" role=\"status\">{}</p>", t.saved));
    }
    body.push_str(&format!("<p>{}</p>", fill(t.preferences_intro, &name, "")));
    if !p.receives_mail {
        body.push_str(&format!("<p class=\"note\">{}</p>", fill(t.globally_off, &name, "")));
    }
    body.push_str(&format!("<form method=\"post\" action=\"/p/{token}\"><fieldset>"));
    if p.topics.is_empty() {
        body.push_str(&format!("<p>{}</p>", fill(t.no_topics, &name, "")));
    }
    for topic in &p.topics {
        let id = escape_html(topic.id());
        let checked = if topic.subscribed() { " checked" } else { "" };
        let description = match topic.description() {
            "" => String::new(),
            d => format!("<span class=\"hint\">{}</span>", escape_html(d)),
        };
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"shown\" value=\"{id}\">\
             <label><input type=\"checkbox\" name=\"topic\" value=\"{id}\"{checked}>\
             <span><strong>{}</strong>{description}</span></label>",
            escape_html(topic.name())
        ));
    }
    if p.receives_mail {
        body.push_str(&format!(
            "<label class=\"all\"><input type=\"checkbox\" name=\"all\" value=\"1\">\
             <span><strong>{}</strong><span class=\"hint\">{}</span></span></label>",
            t.all_label,
            fill(t.all_hint, &name, "")
        ));
    }
    body.push_str(&format!("</fieldset><button type=\"submit\">{}</button></form>", t.save_button));
    page(t, StatusCode::OK, t.preferences_title, &body)
}

fn refused(status: StatusCode) -> Response {
    let t: &Texts = public_texts::texts(crate::domain::Locale::En);
    page(t, status, t.refused_title, &format!("<p>{}</p>", t.refused_body))
}

/// A service refusal as a page: the recipient's doing is a 4xx, never a 5xx.
fn refusal(e: Error) -> ApiResult<Response> {
    match e {
        Error::NotFound(_) => Ok(not_found()),
        Error::BadRequest(_) | Error::Invalid { .. } | Error::TooLarge(_) | Error::Conflict { .. } => {
            Ok(refused(StatusCode::UNPROCESSABLE_ENTITY))
        }
        e => Err(e.into()),
    }
}

/// The preference centre of the email a token comes from (HTML, for recipients; no key). Changes nothing.
#[utoipa::path(get, path = "/p/{token}", tag = "unsubscribe", security(()), params(("token" = String, Path)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine link", content_type = "text/html", body = String)))]
async fn show(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    match preferences::show(&state, &token).await {
        Ok(Some(p)) => Ok(render(&p, &token, false)),
        Ok(None) => Ok(not_found()),
        Err(e) => refusal(e),
    }
}

/// Reads the page's form: `shown` (each topic on the page), `topic` (the
/// ticked ones) and `all`; any other field, or a ticked topic the page did
/// not show, is refused.
fn parse_form(body: &[u8]) -> Option<Choices> {
    let mut c = Choices { shown: Vec::new(), ticked: Vec::new(), everything: false };
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "shown" => c.shown.push(v.into_owned()),
            "topic" => c.ticked.push(v.into_owned()),
            "all" if v == "1" => c.everything = true,
            _ => return None,
        }
    }
    c.ticked.iter().all(|id| c.shown.contains(id)).then_some(c)
}

/// Saves the preference centre's form and shows the page again with "Saved" (HTML, for recipients; no key).
#[utoipa::path(post, path = "/p/{token}", tag = "unsubscribe", security(()), params(("token" = String, Path)),
    request_body(content = PreferencesForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Saved: the page again", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site post", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine link", content_type = "text/html", body = String),
        (status = 415, description = "Not a form post", content_type = "text/html", body = String),
        (status = 422, description = "A field the page does not send", content_type = "text/html", body = String)))]
async fn save(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if super::extract::media_type(&headers) != "application/x-www-form-urlencoded" {
        return Ok(refused(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if header(header::HeaderName::from_static("sec-fetch-site")) == "cross-site" {
        return Ok(refused(StatusCode::FORBIDDEN));
    }
    let Some(choices) = parse_form(&body) else { return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY)) };
    let client = super::unsubscribe::client(address, &headers);
    match preferences::save(&state, &token, choices, client).await {
        Ok(Some(p)) => Ok(render(&p, &token, true)),
        Ok(None) => Ok(not_found()),
        Err(e) => refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_takes_only_its_own_fields_and_ticks_only_shown_topics() {
        let c = parse_form(b"shown=a&shown=b&topic=b&all=1").unwrap();
        assert_eq!((c.shown, c.ticked, c.everything), (vec!["a".into(), "b".into()], vec!["b".into()], true));
        assert!(parse_form(b"shown=a&topic=b").is_none(), "a ticked topic the page did not show");
        assert!(parse_form(b"shown=a&extra=1").is_none(), "an unknown field");
        assert!(parse_form(b"").is_some_and(|c| !c.everything && c.shown.is_empty()));
    }
}
