//! Text that may end up in a mail header. A CR or LF in a subject or a name
//! would let a value add headers of its own (`Bcc:`); other control characters,
//! DEL and the Unicode line and paragraph separators have no place there either.

use std::borrow::Cow;

/// Whether `c` must never reach a header value: C0 and C1 controls (tab
/// included), DEL, U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR.
pub fn is_header_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A single line of text fit for a header: an error naming `field` otherwise.
pub fn check_single_line(value: &str, field: &str) -> Result<(), String> {
    match value.chars().find(|c| is_header_unsafe(*c)) {
        None => Ok(()),
        Some('\0') => Err(format!("`{field}` must not contain a NUL character")),
        Some(c) => Err(format!("`{field}` must be one line without control characters (found U+{:04X})", c as u32)),
    }
}

/// `value` without the characters [`is_header_unsafe`] refuses: the last line
/// of defence when rendering a header from stored values.
pub fn strip_header_unsafe(value: &str) -> Cow<'_, str> {
    if value.chars().any(is_header_unsafe) {
        Cow::Owned(value.chars().filter(|c| !is_header_unsafe(*c)).collect())
    } else {
        Cow::Borrowed(value)
    }
}

/// Where a JSON document holds a NUL character (in a string or a key): its
/// path, e.g. `tags[1]` or `data.email_id`. A NUL has no use in any field, and
/// PostgreSQL cannot store one.
pub fn nul_path(v: &serde_json::Value) -> Option<String> {
    nul_at(v, "")
}

fn nul_at(v: &serde_json::Value, path: &str) -> Option<String> {
    let here = || if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_at(item, &format!("{}[{i}]", here())))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if k.contains('\0') {
                Some(at)
            } else {
                nul_at(item, &at)
            }
        }),
        _ => None,
    }
}

/// `text` with anything that looks like an email address replaced by
/// `[address]`: provider messages name recipients, and logs above DEBUG must not.
pub fn redact_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let at = word.find('@');
            match at {
                Some(i) if i > 0 && word[i + 1..].contains('.') => "[address]",
                _ => word,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A clicked link as an outsider (the agent's model) may see it: scheme, host
/// and path only — no query, fragment, user info or port — with each path
/// segment that holds an address or looks like a token replaced by
/// `redacted`. Links carry personal data and secrets in their queries
/// (`?email=…&token=…`) and in their paths (`/u/jane@x.com/4f9c…/reset`).
/// `None` when the text is no http(s) link with a host.
pub fn link_without_secrets(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    let path: Vec<&str> = url
        .path_segments()
        .map(|segments| segments.map(|s| if looks_secret(s) { "redacted" } else { s }).collect())
        .unwrap_or_default();
    Some(format!("{}://{}/{}", url.scheme(), host, path.join("/")))
}

/// A path segment holding an address (`@`, or `%40` encoded), a UUID, long
/// hex, or 16+ characters mixing letters and digits (a token).
fn looks_secret(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    if lower.contains('@') || lower.contains("%40") || uuid::Uuid::parse_str(segment).is_ok() {
        return true;
    }
    let long = segment.chars().count() >= 16;
    let hex = segment.chars().all(|c| c.is_ascii_hexdigit());
    let letters = segment.chars().any(|c| c.is_alphabetic());
    let digits = segment.chars().any(|c| c.is_ascii_digit());
    long && (hex || (letters && digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_controls_and_unicode_separators_are_refused_in_a_header() {
        for bad in ["a\r\nBcc: x@evil.com", "a\nb", "a\tb", "a\0b", "a\u{7f}b", "a\u{85}b", "a\u{2028}b", "a\u{2029}b"]
        {
            assert!(check_single_line(bad, "subject").is_err(), "{bad:?}");
            assert!(!strip_header_unsafe(bad).chars().any(is_header_unsafe), "{bad:?}");
        }
        assert!(check_single_line("Hello, Zoë — ça va? 👋", "subject").is_ok());
        assert_eq!(strip_header_unsafe("Ada\r\nBcc: x"), "AdaBcc: x");
        assert!(matches!(strip_header_unsafe("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn addresses_are_redacted_from_log_text() {
        assert_eq!(redact_addresses("Invalid `to` field: bad@example.org."), "Invalid `to` field: [address]");
        assert_eq!(redact_addresses("no address @ here"), "no address @ here");
    }

    #[test]
    fn a_nul_is_named_as_such() {
        assert!(check_single_line("a\0", "name").unwrap_err().contains("NUL"));
    }

    #[test]
    fn a_link_keeps_scheme_host_and_path_without_queries_addresses_or_tokens() {
        let cases = [
            ("https://a-corp.com/reset?email=jane%40x.com&token=4f9c2b7e1a8d3f60", Some("https://a-corp.com/reset")),
            (
                "https://a-corp.com/u/jane@x.com/4f9c2b7e1a8d3f60c2e9/reset",
                Some("https://a-corp.com/u/redacted/redacted/reset"),
            ),
            ("https://user:pw@a-corp.com:8443/pricing#plans", Some("https://a-corp.com/pricing")),
            ("https://a-corp.com/o/0192f0c4-0000-7000-8000-000000000001", Some("https://a-corp.com/o/redacted")),
            ("https://a-corp.com/c/1234567890123456/x", Some("https://a-corp.com/c/redacted/x")),
            ("https://a-corp.com/u/jane%40x.com", Some("https://a-corp.com/u/redacted")),
            (
                "https://a-corp.com/blog/introducing-automations",
                Some("https://a-corp.com/blog/introducing-automations"),
            ),
            ("https://a-corp.com", Some("https://a-corp.com/")),
            ("mailto:jane@x.com", None),
            ("not a link", None),
        ];
        for (raw, want) in cases {
            assert_eq!(link_without_secrets(raw).as_deref(), want, "{raw}");
        }
    }
}
