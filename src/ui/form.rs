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

    /// The first value of `name`, trimmed, if it is not blank.
    pub fn filled(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order (checked boxes, selected options).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Whether a checkbox named `name` was checked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}
