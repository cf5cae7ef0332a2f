//! Who mail comes from when a send names nobody: the tenant's default sender
//! (a From name, an address on its verified domain, or both), else
//! `hello@{domain}` — the seed article's sender, kept as the fallback.

use super::is_header_unsafe;

/// Longest From name accepted (a display name is one header line with the address).
pub const FROM_NAME_MAX: usize = 100;

/// A From name as given: trimmed, at most [`FROM_NAME_MAX`] characters, and
/// nothing that could end or split a header line (control characters, NUL,
/// DEL, U+2028/9); empty means none.
pub fn parse_from_name(raw: &str) -> Result<Option<String>, String> {
    if raw.chars().any(is_header_unsafe) {
        return Err("`from_name` must not contain control characters".into());
    }
    let name = raw.trim();
    if name.chars().count() > FROM_NAME_MAX {
        return Err(format!("`from_name` is longer than {FROM_NAME_MAX} characters"));
    }
    Ok(Some(name.to_owned()).filter(|n| !n.is_empty()))
}

/// The From header of a send that names no sender: the default address when
/// it is on `domain` (else `hello@{domain}`), with the default name, quoted
/// as RFC 5322 §3.4 wants a display name with specials in it.
pub fn default_from(name: Option<&str>, address: Option<&str>, domain: &str) -> String {
    let on_domain = |a: &&str| a.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain));
    let address = address.filter(on_domain).map_or_else(|| format!("hello@{domain}"), str::to_owned);
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => address,
        Some(name) => {
            let escaped: String = name
                .chars()
                .filter(|c| !is_header_unsafe(*c))
                .flat_map(|c| if matches!(c, '"' | '\\') { vec!['\\', c] } else { vec![c] })
                .collect();
            format!("\"{escaped}\" <{address}>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_default_sender_mail_comes_from_hello_at_the_domain() {
        assert_eq!(default_from(None, None, "acme.com"), "hello@acme.com");
        assert_eq!(default_from(Some("  "), None, "acme.com"), "hello@acme.com");
    }

    #[test]
    fn the_default_address_is_used_only_on_the_domain() {
        assert_eq!(default_from(None, Some("news@acme.com"), "acme.com"), "news@acme.com");
        assert_eq!(default_from(None, Some("news@other.com"), "acme.com"), "hello@acme.com");
    }

    #[test]
    fn a_from_name_is_quoted_and_escaped() {
        assert_eq!(default_from(Some("Acme"), Some("news@acme.com"), "acme.com"), "\"Acme\" <news@acme.com>");
        assert_eq!(default_from(Some("A \"B\", C\\"), None, "x.org"), "\"A \\\"B\\\", C\\\\\" <hello@x.org>");
    }

    #[test]
    fn a_from_name_with_a_line_break_or_nul_is_refused() {
        for bad in ["Acme\r\nBcc: x@y.z", "Acme\0", "A\u{2028}B", "A\u{7f}"] {
            assert!(parse_from_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_from_name(" Acme News ").unwrap(), Some("Acme News".into()));
        assert_eq!(parse_from_name("").unwrap(), None);
        assert!(parse_from_name(&"x".repeat(FROM_NAME_MAX + 1)).is_err());
    }
}
