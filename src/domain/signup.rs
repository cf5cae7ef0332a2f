//! Signup forms and double opt-in (issue 23, section 2): the pure rules —
//! which redirects a form may make (no open redirect), which origins may post
//! JSON to it (CORS), and the rate limits of its public endpoint.

/// Posts accepted per address per tenant in a [`LIMIT_WINDOW_MS`].
pub const PER_ADDRESS_PER_HOUR: i64 = 3;
/// Posts accepted per client address per tenant in a [`LIMIT_WINDOW_MS`].
pub const PER_CLIENT_PER_HOUR: i64 = 20;
/// The window of the rate limits: one hour.
pub const LIMIT_WINDOW_MS: i64 = 3_600_000;

/// The name of the form field that must stay empty (hidden from people; bots fill it).
pub const HONEYPOT_FIELD: &str = "website";

/// Hosts a form may name: at most this many.
pub const MAX_HOSTS: usize = 20;

/// A host a form may redirect to: the tenant's own sending domain or one of
/// its subdomains (an open redirect on mailroom's host is a phishing tool).
pub fn redirect_host(raw: &str, tenant_domain: Option<&str>) -> Result<String, String> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let shown = crate::domain::redact_addresses(raw);
    let Some(domain) = tenant_domain.map(str::to_ascii_lowercase) else {
        return Err("redirect hosts must be on the customer's own domain: register a domain first".into());
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(format!("`{}` is not a host name", shown.escape_debug()));
    }
    if host == domain || host.ends_with(&format!(".{domain}")) {
        Ok(host)
    } else {
        Err(format!("`{host}` is not on the customer's own domain ({domain})"))
    }
}

/// A redirect URL: http or https, no credentials, its host one of `hosts`.
pub fn redirect_url(raw: &str, hosts: &[String]) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 2000 || raw.chars().any(char::is_control) {
        return Err("a redirect URL must be at most 2000 characters, without control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("a redirect URL must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URL may not carry credentials".into());
    }
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    if !hosts.contains(&host) {
        return Err(format!("the host `{host}` is not in the form's `redirect_hosts`"));
    }
    Ok(url.to_string())
}

/// Whether a form's stored redirect `url` still lands on the customer's own
/// verified `domain` (or a subdomain): checked again at each redirect, for
/// a customer who changed or lost its domain since the form was saved.
pub fn still_own(url: &str, domain: Option<&str>) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| redirect_host(&h, domain).is_ok())
}

/// An origin allowed to post JSON to a form (CORS): `scheme://host[:port]`, nothing more.
pub fn origin(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 300 || raw.chars().any(char::is_control) {
        return Err("an origin must be at most 300 characters, without control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not an origin: {e}"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !bare || raw.ends_with('/') {
        return Err(format!("`{}` is not an origin such as https://www.example.com", raw.escape_debug()));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_customers_own_hosts_may_be_redirected_to() {
        assert_eq!(redirect_host("WWW.Acme.com", Some("acme.com")).unwrap(), "www.acme.com");
        assert_eq!(redirect_host("acme.com", Some("acme.com")).unwrap(), "acme.com");
        assert!(redirect_host("evil.com", Some("acme.com")).is_err());
        assert!(redirect_host("notacme.com", Some("acme.com")).is_err());
        assert!(redirect_host("acme.com", None).is_err());
        let hosts = vec!["www.acme.com".to_owned()];
        assert!(redirect_url("https://www.acme.com/thanks?x=1", &hosts).is_ok());
        assert!(redirect_url("https://evil.com/", &hosts).is_err());
        assert!(redirect_url("javascript:alert(1)", &hosts).is_err());
        assert!(redirect_url("https://user@www.acme.com/", &hosts).is_err());
        assert!(redirect_url("//evil.com", &hosts).is_err());
    }

    #[test]
    fn an_origin_is_scheme_host_and_port_only() {
        assert_eq!(origin("https://www.acme.com").unwrap(), "https://www.acme.com");
        assert_eq!(origin("http://localhost:3000").unwrap(), "http://localhost:3000");
        assert!(origin("https://www.acme.com/path").is_err());
        assert!(origin("*").is_err());
        assert!(origin("ftp://x.com").is_err());
    }
}
