use std::fmt;

use super::DomainName;

/// A syntactically valid email address. `normalized()` is the lower-cased form
/// used for uniqueness and suppression, so `Ada@X.org` and `ada@x.org` are one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("email is empty".into());
        }
        // RFC 5321 caps a path at 256 octets including the angle brackets.
        if s.len() > 254 {
            return Err("email is longer than 254 characters".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;\\\"".contains(c)) {
            return Err(format!("`{s}` contains characters not allowed in an email address"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| format!("`{s}` is not an email address (no @)"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(format!("`{s}` has an invalid local part"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(format!("`{s}` has an invalid local part"));
        }
        // A fully qualified domain's trailing dot is no part of an address
        // (RFC 5321): `a@x.org.` would be a second contact of one mailbox,
        // past its suppression and its erasure.
        if domain.ends_with('.') {
            return Err(format!("`{s}` has an invalid domain: it ends with a dot"));
        }
        DomainName::parse(domain).map_err(|e| format!("`{s}` has an invalid domain: {e}"))?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part after the `@`, lower-cased.
    pub fn domain(&self) -> String {
        self.0.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_parse() {
        for ok in ["ada@example.org", "a.b+tag@sub.example.co.uk", "x@y.io", " Ada@Example.org "] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@@x.org",
            "a da@x.org",
            "ada@x",
            "<a@x.org>",
            "a..b@x.org",
            ".a@x.org",
            "a@-x.org",
            "a@x.org.",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalisation_is_case_insensitive() {
        let e = EmailAddress::parse("Ada@Example.ORG").unwrap();
        assert_eq!(e.normalized(), "ada@example.org");
        assert_eq!(e.as_str(), "Ada@Example.ORG");
        assert_eq!(e.domain(), "example.org");
    }
}
