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
}
