//! A posted form read as its name–value pairs, in order: what the management
//! forms need for repeated fields (checkboxes, multiple selects) and numbered
//! rows (`a0_type`, `a1_type`, …), which a struct cannot express. A form that
//! cannot be read (bad encoding, too large) is a page with the reason, never
//! the framework's plain-text rejection.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;

use super::UiError;
use crate::error::ApiError;

pub struct Fields(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(Form(pairs)) => Ok(Fields(pairs)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(UiError::Api(ApiError::PayloadTooLarge).into_response())
            }
            Err(e) => Err(UiError::Api(ApiError::BadRequest(format!("the form could not be read: {}", e.body_text())))
                .into_response()),
        }
    }
}

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// Whether the form has a field `name` at all (blank or not).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The first value of `name`, trimmed, if it is not blank.
    pub fn filled(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order (checked boxes, selected options).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Every name–value pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Whether a checkbox named `name` was checked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

/// A value typed into a form where JSON keeps its type (a contact's
/// attribute, an attribute a segment compares): `true`/`false` are booleans,
/// a plain number is a number, anything else is text; text in double quotes
/// is the text inside them (`"42"` is the text 42). [`shown_value`] writes
/// values back in the same convention, so an untouched field keeps its type.
pub fn typed_value(raw: &str) -> serde_json::Value {
    use serde_json::Value;
    let s = raw.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Value::String(s[1..s.len() - 1].to_owned());
    }
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let numeric = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if numeric {
        if let Ok(n) = s.parse::<i64>() {
            return Value::from(n);
        }
        if let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_owned())
}

/// A stored scalar as [`typed_value`] reads it back; `None` for null, arrays and objects.
pub fn shown_value(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if typed_value(s) != Value::String(s.clone()) => Some(format!("\"{s}\"")),
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{shown_value, typed_value};
    use serde_json::json;

    #[test]
    fn typed_values_keep_numbers_and_booleans_and_quotes_keep_text() {
        assert_eq!(typed_value(" 42 "), json!(42));
        assert_eq!(typed_value("3.5"), json!(3.5));
        assert_eq!(typed_value("false"), json!(false));
        assert_eq!(typed_value("pro"), json!("pro"));
        assert_eq!(typed_value("\"42\""), json!("42"));
        assert_eq!(typed_value("inf"), json!("inf"));
        assert_eq!(typed_value("1-2"), json!("1-2"));
    }

    #[test]
    fn every_scalar_is_shown_so_that_it_reads_back_the_same() {
        for v in [json!(42), json!(3.5), json!(true), json!("pro"), json!("42"), json!("\"q\""), json!(" x"), json!("")]
        {
            let shown = shown_value(&v).unwrap();
            assert_eq!(typed_value(&shown), v, "{shown}");
        }
    }
}
