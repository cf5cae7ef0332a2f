//! JSON bodies, read one way everywhere: `Content-Type: application/json`
//! required, rejections in the app's error format, unknown fields refused (each
//! input type says `deny_unknown_fields`), and no NUL character in any string
//! (PostgreSQL cannot store one, and no field has a use for it).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A request's media type: its `Content-Type` without parameters, lower-cased
/// (media types are case-insensitive); empty when there is none.
pub fn media_type(headers: &HeaderMap) -> String {
    let raw = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_json_content_type(req.headers())?;
        let bytes = read_body(req, state).await?;
        required_json(&bytes).map(Self)
    }
}

/// The body of an action route (pause, retry, verify...): none, or `{}` sent as
/// JSON. Anything else is refused like any other body would be: a field (there
/// are none) with 422, another content type with 415, broken JSON with 400.
pub struct EmptyBody;

/// What an action route's body may hold: nothing (its OpenAPI schema too).
#[derive(serde::Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

impl<S: Send + Sync> FromRequest<S> for EmptyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        OptionalJson::<NoBody>::from_request(req, state).await.map(|_| Self)
    }
}

/// An action route's optional body: none (`T::default()`), or `T` as JSON,
/// refused as [`EmptyBody`] refuses anything else.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared_json = require_json_content_type(req.headers());
        let bytes = read_body(req, state).await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            declared_json?;
        }
        optional_json::<T>(&bytes).map(Self)
    }
}

/// The raw body, within the router's size limit (413 beyond it).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

/// Refuses a body that does not say it is JSON (`application/json` or
/// `...+json`), or says it is JSON in a charset other than UTF-8 (the only
/// one JSON has, and the one the body is read in).
pub fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !(media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))) {
        return Err(ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into()));
    }
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"'));
    match charset {
        Some(c) if !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8") => {
            Err(ApiError::UnsupportedMediaType(format!("JSON is read as UTF-8, not `{c}`")))
        }
        _ => Ok(()),
    }
}

/// Parses an optional JSON object body: empty means `T::default()`.
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // serde reads a struct from a JSON array too (its fields in order), so
    // `[]` would pass as "no fields": these bodies are objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    required_json(bytes)
}

/// Parses a required JSON body from raw bytes (for handlers that also need the
/// bytes themselves, e.g. to fingerprint an idempotent request).
pub fn required_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(e.to_string()),
        _ => ApiError::BadRequest(format!("body is not valid JSON: {e}")),
    })?;
    if let Some(path) = crate::domain::nul_path(&value) {
        return Err(ApiError::validation(format!("`{path}` must not contain a NUL character")));
    }
    serde_path_to_error::deserialize(value).map_err(|e| ApiError::validation(field_error(&e)))
}

/// A body that does not fit its type, said with the field it is about:
/// `tags: invalid type: string "vip", expected a list`. An unknown field's
/// error already names it, so at the top level the message stands alone.
fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let message = e
        .inner()
        .to_string()
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected an object");
    let path = e.path().to_string();
    if path.is_empty() || path == "." || path == "?" {
        message
    } else {
        format!("{path}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        name: String,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn a_nul_anywhere_is_refused_with_its_path() {
        let e = required_json::<In>(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert!(e.to_string().contains("`name`"), "{e}");
        let e = required_json::<In>(br#"{"name": "a", "tags": ["x", "\u0000"]}"#).unwrap_err();
        assert!(e.to_string().contains("`tags[1]`"), "{e}");
    }

    #[test]
    fn a_type_error_names_its_field() {
        let e = required_json::<In>(br#"{"name": "a", "tags": "vip"}"#).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.to_string().contains("tags: invalid type: string \"vip\", expected a list"), "{e}");
        let e = required_json::<In>(br#"{"name": "a", "tags": ["x", 3]}"#).unwrap_err();
        assert!(e.to_string().starts_with("tags[1]: invalid type: integer `3`"), "{e}");
        let e = required_json::<In>(br#"{"tags": []}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `name`"), "{e}");
        // A list where an object belongs: serde reads a struct from a list too, field by field.
        let e = required_json::<In>(br#"[1]"#).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.to_string().contains("invalid type: integer `1`"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let e = required_json::<In>(br#"{"name": "a", "tag": "x"}"#).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.to_string().contains("unknown field `tag`"), "{e}");
    }
}
