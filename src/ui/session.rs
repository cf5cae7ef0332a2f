//! Signing in and out, the session cookie, and CSRF tokens.
//!
//! The key is posted once, from the login form, and never put in a URL or a
//! page. The cookie holds a random session token (the database keeps only its
//! hash): `HttpOnly`, `SameSite=Strict`, `Secure` when `PUBLIC_URL` is https,
//! expiring after [`SESSION_SECS`]. Each session has its own CSRF token, sent
//! back by every form; the login form, which has no session yet, uses a
//! double-submit cookie instead.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::{page, Frame, UiError, UiResult};
use crate::auth::ClientAddress;
use crate::domain::TenantId;
use crate::domain::{generate_key, hash_key};
use crate::service::dashboard_sessions;
use crate::state::AppState;

const SESSION_COOKIE: &str = "mailroom_session";
const LOGIN_COOKIE: &str = "mailroom_login";
/// Twelve hours: a working day, then sign in again.
pub const SESSION_SECS: i64 = 12 * 3600;

/// A signed-in person: the operator (`tenant: None`) or one tenant.
#[derive(Debug, Clone)]
pub struct UiUser {
    session_hash: String,
    pub tenant: Option<TenantId>,
    pub csrf: String,
}

impl UiUser {
    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> UiResult<()> {
        use subtle::ConstantTimeEq;
        let ok: bool = presented.as_bytes().ct_eq(self.csrf.as_bytes()).into();
        if presented.is_empty() || !ok {
            return Err(UiError::Csrf);
        }
        Ok(())
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> String {
    let secure = if state.config.public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Not signed in: to the login page (a fetch from the page's script gets 401).
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(SignIn.into_response()) };
        let hash = hash_key(token);
        let row = match state.store.ui_session(&hash).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(SignIn.into_response()),
            Err(e) => return Err(UiError::from(e).into_response()),
        };
        // The key the session was opened with must still be good: revoking a
        // key (or changing the admin key) ends its sessions too.
        let still_valid = match &row.tenant_id {
            None => {
                use subtle::ConstantTimeEq;
                bool::from(row.key_hash.as_bytes().ct_eq(state.admin_key_hash.as_bytes()))
            }
            Some(tenant) => match state.store.tenant_for_key_hash(&row.key_hash).await {
                Ok(owner) => owner.as_deref() == Some(tenant.as_str()),
                Err(e) => return Err(UiError::from(e).into_response()),
            },
        };
        if !still_valid {
            return Err(SignIn.into_response());
        }
        Ok(UiUser { session_hash: hash, tenant: row.tenant_id.map(TenantId::from_stored), csrf: row.csrf_token })
    }
}

#[derive(Serialize)]
struct LoginCtx {
    login_token: String,
    error: Option<String>,
}

fn login_form(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let token = generate_key("");
    let frame = Frame { csrf: token.clone(), is_admin: false, tenant: None, section: "login", notice: None };
    let mut res = page(status, "login.html", &frame, LoginCtx { login_token: token.clone(), error });
    if let Ok(v) = set_cookie(state, LOGIN_COOKIE, &token, 3600).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn login_page(State(state): State<AppState>) -> Response {
    login_form(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginIn {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginIn>,
) -> Response {
    use subtle::ConstantTimeEq;
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if form.csrf.is_empty() || !bool::from(form.csrf.as_bytes().ct_eq(expected.as_bytes())) {
        return UiError::Csrf.into_response();
    }
    let key = form.key.trim();
    if key.is_empty() {
        return login_form(&state, StatusCode::UNPROCESSABLE_ENTITY, Some("Enter an API key.".into()));
    }
    let key_hash = hash_key(key);
    if let Err(e) = state.auth_throttle.check(&key_hash, client) {
        // The right key too, from a client refused for its wrong ones (see `AuthThrottle`).
        let wait = match e {
            crate::error::ApiError::TooManyRequests { retry_after_secs } => retry_after_secs,
            _ => 60,
        };
        let message =
            format!("Too many wrong keys were tried, with this key or from this address. Try again in {wait} s.");
        let mut res = login_form(&state, StatusCode::TOO_MANY_REQUESTS, Some(message));
        res.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return res;
    }
    let tenant = if bool::from(key_hash.as_bytes().ct_eq(state.admin_key_hash.as_bytes())) {
        None
    } else {
        match state.store.tenant_for_key_hash(&key_hash).await {
            Ok(Some(t)) => Some(TenantId::from_stored(t)),
            Ok(None) => {
                state.auth_throttle.failed(&key_hash, client);
                return login_form(
                    &state,
                    StatusCode::UNAUTHORIZED,
                    Some("That key is not valid (or was revoked).".into()),
                );
            }
            Err(e) => return UiError::from(e).into_response(),
        }
    };
    let expires = state.store.now_ms() + SESSION_SECS * 1000;
    let token = match dashboard_sessions::open(&state, &key_hash, tenant.as_ref(), expires).await {
        Ok(opened) => opened.token,
        Err(e) => return UiError::from(e).into_response(),
    };
    tracing::info!(tenant = tenant.as_ref().map_or("operator", TenantId::as_str), "dashboard sign-in");
    let mut res = Redirect::to("/ui").into_response();
    for c in [set_cookie(&state, SESSION_COOKIE, &token, SESSION_SECS), set_cookie(&state, LOGIN_COOKIE, "", 0)] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(State(state): State<AppState>, user: UiUser, Form(form): Form<CsrfOnly>) -> UiResult<Response> {
    user.check_csrf(&form.csrf)?;
    dashboard_sessions::close(&state, &user.session_hash).await?;
    let mut res = Redirect::to("/ui/login").into_response();
    if let Ok(v) = set_cookie(&state, SESSION_COOKIE, "", 0).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}
