use std::fmt;

/// A DNS domain name a tenant sends from: at least two labels, each 1–63
/// letters, digits or hyphens, not starting or ending with a hyphen (RFC 1035).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() {
            return Err("domain is empty".into());
        }
        if s.len() > 253 {
            return Err("domain is longer than 253 characters".into());
        }
        let labels: Vec<&str> = s.split('.').collect();
        if labels.len() < 2 {
            return Err(format!("`{s}` needs at least two labels, like example.com"));
        }
        for label in &labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid {
                return Err(format!("`{s}` has an invalid label `{label}`"));
            }
        }
        if labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
            return Err(format!("`{s}` is not a domain name"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact tag: 1–64 characters of letters, digits, `_`, `-`, `.` or `:`.
/// Kept to a safe alphabet so tags travel unchanged through URLs and query strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err("a tag must be 1 to 64 characters".into());
        }
        if !s.chars().all(|c| c.is_alphanumeric() || "_-.:".contains(c)) {
            return Err(format!("tag `{s}` may contain only letters, digits, `_`, `-`, `.` and `:`"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lower_cased_and_checked_label_by_label() {
        assert_eq!(DomainName::parse("Mail.Acme.COM.").unwrap().as_str(), "mail.acme.com");
        for bad in ["", "acme", "-acme.com", "acme-.com", "ac me.com", "a..com", "1.2.3.4", "acme.com/x"] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_keep_to_a_safe_alphabet() {
        assert!(Tag::parse("premium").is_ok());
        assert!(Tag::parse("plan:pro_2").is_ok());
        for bad in ["", "a b", "x/y", "<b>", &"t".repeat(65)] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }
}
