//! The use cases both front ends share: the JSON API (`crate::api`) and the
//! dashboard (`crate::ui`) are thin adapters over this layer. A front end
//! parses and authorises a request, calls one function here with domain
//! values (or plainly parsed inputs), and maps the answer, or the
//! [`Error`] (`service::Error`), to JSON or to a page. The same use case is
//! the same function whichever front end asks, so the checks a send, a
//! template save or a webhook endpoint makes cannot drift apart.
//!
//! Below it sit the workers, `render`, `provider`, `store` and `domain`; a
//! service never knows about HTTP (no status codes, no headers, no pages).

pub mod automations;
pub mod campaigns;
pub mod consent;
pub mod contacts;
pub mod customers;
pub mod dashboard_sessions;
pub mod dead_letters;
pub mod erasure;
mod error;
pub mod events;
pub mod forms;
pub mod imports;
pub mod preferences;
pub mod reputation;
pub mod segments;
pub mod sending;
pub mod sending_domains;
pub mod signups;
pub mod stats;
pub mod suppressions;
pub mod templates;
pub mod tenant_webhooks;
pub mod topics;
pub mod unsubscribe;

pub use error::{Error, Result};

/// Parses an id from a path or a form; anything that is not one of our ids names nothing.
pub fn parse_id(raw: &str, what: &'static str) -> Result<String> {
    crate::domain::parse_id(raw).ok_or(Error::NotFound(what))
}

/// Trims a required one-line text field (a name, a subject: values that may
/// land in a mail header) and checks its length and characters.
pub fn required_text(value: &str, field: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::validation(format!("`{field}` must not be empty")));
    }
    crate::domain::check_single_line(v, field).map_err(Error::validation)?;
    if v.chars().count() > max {
        return Err(Error::validation(format!("`{field}` is longer than {max} characters")));
    }
    Ok(v.to_owned())
}

/// Trims an optional one-line text field; empty becomes absent.
pub fn optional_text(value: Option<&str>, field: &str, max: usize) -> Result<Option<String>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => required_text(v, field, max).map(Some),
    }
}

/// A page size from `?limit=`: 1 to 1000, 100 when absent.
pub fn page_limit(raw: Option<&str>) -> Result<i64> {
    match raw {
        None => Ok(100),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(Error::validation("`limit` must be a whole number from 1 to 1000")),
        },
    }
}
