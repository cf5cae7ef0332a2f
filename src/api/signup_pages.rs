//! Public signup (issue 23, section 2), for people rather than API clients:
//!
//! - `POST /f/{form_id}` takes a plain HTML form post (answered with a 303
//!   to the form's thank-you URL, or a small page) or JSON from a page of
//!   one of the form's allowed origins (CORS; answered 202). The answer is
//!   the same whether the address is new, pending or known.
//! - `GET /c/{token}` (the confirmation email's link) shows a page with a
//!   Confirm button and changes nothing: link scanners follow links. Only
//!   `POST /c/{token}` confirms.
//!
//! A token or form that is not genuine gets a 404 that says nothing about why.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::public_texts::{self, fill, Texts};
use super::unsubscribe::{not_found, page};
use crate::auth::ClientAddress;
use crate::domain::signup::HONEYPOT_FIELD;
use crate::domain::Locale;
use crate::error::{ApiError, ApiResult};
use crate::render::escape_html;
use crate::service::signups::{self, FormPost, NOT_READY};
use crate::service::Error;
use crate::state::AppState;
use crate::store::{stored_list, FormRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_form, preflight)).routes(routes!(confirm_page, confirm))
}

/// A signup as JSON. (A plain form post sends the same fields, form-encoded.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupIn {
    email: String,
    first_name: Option<String>,
    /// The honeypot: hidden from people, must stay empty. When it is filled
    /// the answer is the same, and nothing is done.
    website: Option<String>,
}

/// A signup as a plain HTML form sends it (`application/x-www-form-urlencoded`):
/// the fields of [`SignupIn`]; any other field (a submit button's name, a
/// site's own hidden fields) is ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form read by `parse_form`
struct SignupFormPost {
    email: String,
    first_name: Option<String>,
    /// The honeypot: must stay empty.
    website: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SignupAccepted {
    /// Always `accepted`, whether the address was new, pending or known.
    #[schema(example = "accepted")]
    status: &'static str,
}

/// The request's `Origin`, if it is one the form allows.
fn allowed_origin(form: &FormRow, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    stored_list(&form.allowed_origins).iter().any(|o| o == text).then(|| origin.clone())
}

fn with_cors(mut res: Response, origin: Option<HeaderValue>) -> Response {
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    res
}

/// A page for a person (in the customer's language, when known): refusals
/// in words, never a 5xx for their doing.
fn refusal_page(e: Error, t: &Texts) -> ApiResult<Response> {
    let (status, text) = match &e {
        Error::NotFound(_) => return Ok(not_found()),
        Error::Invalid { .. } | Error::BadRequest(_) | Error::TooLarge(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, t.check_address.to_owned())
        }
        Error::RateLimited { retry_after_secs, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, fill(t.too_many, "", &retry_after_secs.div_ceil(60).to_string()))
        }
        Error::Conflict { code: NOT_READY, .. } => (StatusCode::CONFLICT, t.not_ready.to_owned()),
        _ => return Err(e.into()),
    };
    let mut res = page(t, status, t.not_signed_up_title, &format!("<p>{text}</p>"));
    if let Error::RateLimited { retry_after_secs, .. } = e {
        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    Ok(res)
}

/// The form's customer's name (escaped) and words.
async fn customer_of(state: &AppState, form: &FormRow) -> (String, &'static Texts) {
    let tenant = crate::domain::TenantId::from_stored(form.tenant_id.clone());
    match state.store.tenant(&tenant).await {
        Ok(Some(t)) => (escape_html(&t.name), public_texts::of(t.locale.as_str())),
        _ => (String::new(), public_texts::texts(Locale::En)),
    }
}

/// Reads a plain form post: `email`, `first_name` and the honeypot; other
/// fields (a submit button's name, a site's own hidden fields) are ignored.
/// Two different addresses in one post are refused (which one was meant?);
/// an empty one beside another, or the same in another case, is not a
/// second. A field that is not UTF-8 once decoded is refused, not mended.
fn parse_form(body: &[u8]) -> Result<FormPost, Error> {
    let invalid = |message: &str| Error::Invalid { code: "invalid_email", message: message.into() };
    let mut post = FormPost { email: String::new(), first_name: None, honeypot: None };
    for (k, v) in url::form_urlencoded::parse(body) {
        // The parser replaces bytes that are not UTF-8 with U+FFFD.
        if v.contains('\u{FFFD}') && matches!(&*k, "email" | "first_name") {
            return Err(invalid("the form's fields must be UTF-8 text"));
        }
        match &*k {
            "email" if v.trim().is_empty() => {}
            "email" if post.email.is_empty() => post.email = v.into_owned(),
            "email" if !v.trim().eq_ignore_ascii_case(post.email.trim()) => {
                return Err(invalid("the post gives two different email addresses"))
            }
            "first_name" => post.first_name = Some(v.into_owned()),
            // Filled once is filled: a bot repeating the field empty stays a bot.
            k if k == HONEYPOT_FIELD && post.honeypot.as_deref().map_or(true, str::is_empty) => {
                post.honeypot = Some(v.into_owned());
            }
            _ => {}
        }
    }
    Ok(post)
}

/// Sign up through a form (public; no key). A plain HTML form post
/// (`application/x-www-form-urlencoded`) is answered with a 303 to the
/// form's thank-you URL, or a small page; JSON (from a page of one of the
/// form's `allowed_origins`, or a server) with 202. The answer is the same
/// whether the address is new, pending or already known.
#[utoipa::path(post, path = "/f/{form_id}", tag = "forms", security(()), params(("form_id" = String, Path)),
    request_body(content(
        (SignupIn = "application/json"),
        (SignupFormPost = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Form post taken: a thank-you page", content_type = "text/html", body = String),
        (status = 202, description = "JSON taken", body = SignupAccepted),
        (status = 303, description = "Form post taken: to the form's thank-you URL",
            headers(("location" = String, description = "the form's `thank_you_url`"))),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 403, description = "JSON from an origin the form does not allow", body = crate::error::ErrorBody),
        (status = 404, description = "No such form (a page for a form post)",
            content((crate::error::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 415, description = "Neither a form post nor JSON", body = crate::error::ErrorBody),
        (status = 409, description = "A double opt-in form whose customer's sending domain is not verified (the \
            confirmation could not be sent): nothing is written; a page for a form post",
            content((crate::error::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 422, description = "Not an email address, two different addresses, a field not UTF-8, or an unknown field (JSON); a \
            page for a form post",
            content((crate::error::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 429, description = "Too many signups for this address or from this client (see `Retry-After`)",
            content((crate::error::ErrorBody = "application/json"), (String = "text/html")),
            headers(("retry-after" = String, description = "seconds until a signup is taken again")))))]
async fn post_form(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Path(form_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let media = super::extract::media_type(&headers);
    let json = match media.as_str() {
        "application/json" => true,
        "application/x-www-form-urlencoded" => false,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the form as application/x-www-form-urlencoded or application/json".into(),
            ))
        }
    };
    let client = super::unsubscribe::client(address, &headers);
    if !json {
        let form = match signups::public_form(&state, &form_id).await {
            Ok(f) => f,
            Err(e) => return refusal_page(e, public_texts::texts(Locale::En)),
        };
        let (name, texts) = customer_of(&state, &form).await;
        let taken = match parse_form(&body) {
            Ok(post) => signups::post(&state, &form, post, client).await,
            Err(e) => Err(e),
        };
        if let Err(e) = taken {
            return refusal_page(e, texts);
        }
        let tenant_id = crate::domain::TenantId::from_stored(form.tenant_id.clone());
        let redirect = signups::own_redirect(&state, &tenant_id, form.thank_you_url.as_deref()).await?;
        return Ok(thanks(&form, redirect, &name, texts));
    }
    let form = match signups::public_form(&state, &form_id).await {
        Ok(f) => f,
        Err(Error::NotFound(_)) => return Err(ApiError::NotFound("form")),
        Err(e) => return Err(e.into()),
    };
    let origin = allowed_origin(&form, &headers);
    if headers.contains_key(header::ORIGIN) && origin.is_none() {
        let res =
            ApiError::Forbidden("this origin may not post to the form (see its `allowed_origins`)").into_response();
        return Ok(with_cors(res, None));
    }
    let input: SignupIn = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) if e.is_data() => return Ok(with_cors(ApiError::validation(e.to_string()).into_response(), origin)),
        Err(e) => {
            let res = ApiError::BadRequest(format!("the body is not JSON: {e}")).into_response();
            return Ok(with_cors(res, origin));
        }
    };
    let post = FormPost { email: input.email, first_name: input.first_name, honeypot: input.website };
    let res = match signups::post(&state, &form, post, client).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(SignupAccepted { status: "accepted" })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    Ok(with_cors(res, origin))
}

/// The answer to a plain form post: the form's thank-you URL (`redirect`,
/// while it is the customer's own), or a page.
fn thanks(form: &FormRow, redirect: Option<String>, name: &str, t: &Texts) -> Response {
    if let Some(url) = redirect.as_deref().and_then(|u| HeaderValue::from_str(u).ok()) {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response();
    }
    let text = if form.double_opt_in != 0 { t.thanks_confirm } else { t.thanks_signed_up };
    page(t, StatusCode::OK, t.thanks_title, &format!("<p>{}</p>", fill(text, name, "")))
}

/// CORS preflight for JSON posts to a form (public): the form's allowed
/// origins may post `Content-Type: application/json`.
#[utoipa::path(options, path = "/f/{form_id}", tag = "forms", security(()), params(("form_id" = String, Path)),
    responses((status = 204, description = "Allowed when `Access-Control-Allow-Origin` is present",
        headers(("access-control-allow-origin" = String), ("access-control-allow-methods" = String),
            ("access-control-allow-headers" = String))),
        (status = 404, description = "No such form", body = crate::error::ErrorBody)))]
async fn preflight(
    State(state): State<AppState>,
    Path(form_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let form = signups::public_form(&state, &form_id).await?;
    let origin = allowed_origin(&form, &headers);
    let mut res = StatusCode::NO_CONTENT.into_response();
    if origin.is_some() {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    Ok(with_cors(res, origin))
}

/// The confirmation page of a double opt-in (HTML, for people; no key): a
/// Confirm button. Changes nothing.
#[utoipa::path(get, path = "/c/{token}", tag = "forms", security(()), params(("token" = String, Path)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine link, or one nobody confirmed in time", content_type = "text/html", body = String)))]
async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let Some(target) = signups::target(&state, &token).await? else { return Ok(not_found()) };
    let t = public_texts::of(&target.tenant_locale);
    let name = escape_html(&target.tenant_name);
    if target.confirmed_at.is_some() {
        return Ok(page(
            t,
            StatusCode::OK,
            t.confirmed_title,
            &format!("<p>{}</p>", fill(t.confirmed_body, &name, "")),
        ));
    }
    let token = escape_html(&token);
    Ok(page(
        t,
        StatusCode::OK,
        t.confirm_title,
        &format!(
            "<p>{}</p><form method=\"post\" action=\"/c/{token}\"><button type=\"submit\">{}</button></form>",
            fill(t.confirm_ask, &name, ""),
            t.confirm_button
        ),
    ))
}

/// Confirms a double opt-in (HTML, for people; no key): a 303 to the form's
/// confirmed URL, or a page. Confirming twice changes nothing more.
#[utoipa::path(post, path = "/c/{token}", tag = "forms", security(()), params(("token" = String, Path)),
    responses((status = 200, description = "Confirmed: a page", content_type = "text/html", body = String),
        (status = 303, description = "Confirmed: to the form's confirmed URL",
            headers(("location" = String, description = "the form's `confirmed_url`"))),
        (status = 403, description = "A cross-site post", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine link, or one nobody confirmed in time", content_type = "text/html", body = String)))]
async fn confirm(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    if site == "cross-site" {
        let t = public_texts::texts(Locale::En);
        return Ok(page(t, StatusCode::FORBIDDEN, t.refused_title, &format!("<p>{}</p>", t.open_again)));
    }
    let client = super::unsubscribe::client(address, &headers);
    let Some((target, redirect)) = signups::confirm(&state, &token, client).await? else { return Ok(not_found()) };
    if let Some(url) = redirect.as_deref().and_then(|u| HeaderValue::from_str(u).ok()) {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response());
    }
    let t = public_texts::of(&target.tenant_locale);
    let name = escape_html(&target.tenant_name);
    Ok(page(t, StatusCode::OK, t.confirmed_title, &format!("<p>{}</p>", fill(t.confirmed_body, &name, ""))))
}
