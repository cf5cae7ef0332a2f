//! Lists answer a JSON array, a page at a time; the next page, when there is
//! one, is in a `Link: <...>; rel="next"` header (RFC 8288), a path relative
//! to this server carrying the same filters.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The `after` cursor of a list paged by id (`what`'s id): none, or empty,
/// for the first page.
pub fn after_id(raw: Option<&str>, what: &str) -> Result<Option<String>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => crate::domain::parse_id(raw)
            .map(Some)
            .ok_or_else(|| ApiError::validation(format!("`after` must be a {what} id"))),
    }
}

/// A page read one row past `limit`: cut to `limit`, with the `Link` to the
/// next page (`path` with `limit`, `after` the last row's id from `id`, and
/// the list's other `filters`) when there was more.
pub fn page_of<T>(
    mut rows: Vec<T>,
    limit: i64,
    path: &str,
    filters: &[(&str, Option<&str>)],
    id: impl Fn(&T) -> &str,
) -> (HeaderMap, Vec<T>) {
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if let Some(last) = rows.last() {
            let limit = limit.to_string();
            let mut query = vec![("limit", Some(limit.as_str())), ("after", Some(id(last)))];
            query.extend_from_slice(filters);
            headers = next_page(path, &query);
        }
    }
    (headers, rows)
}

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
