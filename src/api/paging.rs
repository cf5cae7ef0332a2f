//! Lists answer a JSON array, a page at a time; the next page, when there is
//! one, is in a `Link: <...>; rel="next"` header (RFC 8288), a path relative
//! to this server carrying the same filters.

use axum::http::{header, HeaderMap, HeaderValue};

/// The `Link` header of the next page: `path` with each `(name, value)` that
/// has a value, query-encoded.
pub fn next_page(path: &str, query: &[(&str, Option<&str>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in query {
        if let Some(value) = value {
            pairs.append_pair(name, value);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", pairs.finish())) {
        headers.insert(header::LINK, v);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_carries_the_filters_encoded() {
        let h = next_page("/customers/c/events", &[("limit", Some("2")), ("type", None), ("since", Some("a+b &c"))]);
        assert_eq!(h[header::LINK], "</customers/c/events?limit=2&since=a%2Bb+%26c>; rel=\"next\"");
    }
}
