//! mailroom's own look at a sending domain's DNS: the SPF and return-path
//! records and the DKIM key Resend asks for, and DMARC, which Resend does not
//! (Gmail and Yahoo require all three of bulk senders). A lookup that fails is
//! reported as `unknown` with its reason, never as an error of the request.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::TokioAsyncResolver;
use serde::Serialize;
use utoipa::ToSchema;

/// How long one lookup may take before its record is reported `unknown`.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What one record looks like in DNS, against what it should be.
#[derive(Clone, Debug, Serialize, ToSchema, PartialEq)]
pub struct RecordCheck {
    /// The name looked up, e.g. `_dmarc.acme.com`.
    pub name: String,
    /// `TXT` or `MX`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// What should be published there (for DMARC: a safe starting policy).
    pub expected: String,
    /// What DNS answered.
    pub found: Vec<String>,
    /// `ok`, `missing`, `mismatch`, or `unknown` (the lookup failed: see `reason`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// DMARC only: the published policy (`none`, `quarantine`, `reject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// The four records a sending domain needs.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DomainChecks {
    pub spf: RecordCheck,
    pub dkim: RecordCheck,
    pub dmarc: RecordCheck,
    pub return_path: RecordCheck,
}

/// The DMARC record to start with: monitor only, reports to the domain itself.
/// Once the reports show only your own mail passing, move to `p=quarantine`,
/// then `p=reject`.
pub fn suggested_dmarc(domain: &str) -> String {
    format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}")
}

/// The DMARC record to publish, as an entry of a domain's `dns_records`.
pub fn dmarc_record(domain: &str) -> serde_json::Value {
    serde_json::json!({
        "record": "DMARC",
        "name": format!("_dmarc.{domain}"),
        "type": "TXT",
        "ttl": "Auto",
        "value": suggested_dmarc(domain),
        "advice": "Start with p=none and read the aggregate reports; once only your own mail passes, \
                   move to p=quarantine, then p=reject.",
    })
}

#[derive(Clone)]
pub struct DnsChecker {
    resolver: TokioAsyncResolver,
}

impl DnsChecker {
    /// Looks up through `server` (e.g. `127.0.0.1:5353`), or the system's resolver.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = LOOKUP_TIMEOUT;
        opts.attempts = 1;
        let resolver = match server {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                TokioAsyncResolver::tokio(ResolverConfig::from_parts(None, vec![], group), opts)
            }
            None => match hickory_resolver::system_conf::read_system_conf() {
                Ok((config, _)) => TokioAsyncResolver::tokio(config, opts),
                // No resolv.conf (a bare container): lookups will report `unknown`.
                Err(_) => TokioAsyncResolver::tokio(ResolverConfig::default(), opts),
            },
        };
        Ok(Self { resolver })
    }

    /// Checks the domain's records against what the provider asked for
    /// (`provider_records`: Resend's `records`).
    pub async fn check(&self, domain: &str, provider_records: &[serde_json::Value]) -> DomainChecks {
        let expected = |record: &str, kind: &str, default_name: String| {
            provider_records
                .iter()
                .find(|r| r["record"] == record && r["type"] == kind)
                .map(|r| {
                    let name = r["name"].as_str().map(|n| qualified(n, domain)).unwrap_or(default_name.clone());
                    (name, r["value"].as_str().unwrap_or_default().to_owned())
                })
                .unwrap_or((default_name, String::new()))
        };
        let (spf_name, spf_value) = expected("SPF", "TXT", format!("send.{domain}"));
        let (mx_name, mx_value) = expected("SPF", "MX", format!("send.{domain}"));
        let (dkim_name, dkim_value) = expected("DKIM", "TXT", format!("resend._domainkey.{domain}"));
        let dmarc_name = format!("_dmarc.{domain}");
        let (spf, return_path, dkim, dmarc) =
            tokio::join!(self.txt(&spf_name), self.mx(&mx_name), self.txt(&dkim_name), self.txt(&dmarc_name));
        let spf = judge(spf_name, "TXT", spf_value, spf, |f| f.starts_with("v=spf1"));
        let return_path = judge(mx_name, "MX", mx_value, return_path, |_| true);
        let dkim = judge(dkim_name, "TXT", dkim_value, dkim, |f| f.starts_with("p=") || f.contains("k=rsa"));
        let mut dmarc = judge(dmarc_name, "TXT", suggested_dmarc(domain), dmarc, |f| f.starts_with("v=DMARC1"));
        if dmarc.status == "mismatch" {
            // Any DMARC record is the domain owner's choice, not a mismatch.
            dmarc.status = "ok";
        }
        dmarc.policy = dmarc.found.iter().find(|f| f.starts_with("v=DMARC1")).and_then(|f| dmarc_policy(f));
        DomainChecks { spf, dkim, dmarc, return_path }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match self.resolver.txt_lookup(format!("{name}.")).await {
            Ok(answer) => Ok(answer
                .iter()
                .map(|txt| txt.txt_data().iter().map(|part| String::from_utf8_lossy(part)).collect::<String>())
                .collect()),
            Err(e) => absent_or_unknown(e),
        }
    }

    async fn mx(&self, name: &str) -> Result<Vec<String>, String> {
        match self.resolver.mx_lookup(format!("{name}.")).await {
            Ok(answer) => {
                Ok(answer.iter().map(|mx| mx.exchange().to_utf8().trim_end_matches('.').to_owned()).collect())
            }
            Err(e) => absent_or_unknown(e),
        }
    }
}

/// No such record is an empty answer; anything else (timeout, refused) is unknown.
fn absent_or_unknown(e: hickory_resolver::error::ResolveError) -> Result<Vec<String>, String> {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { .. } => Ok(Vec::new()),
        _ => Err(e.to_string()),
    }
}

fn judge(
    name: String,
    record_type: &'static str,
    expected: String,
    found: Result<Vec<String>, String>,
    relevant: impl Fn(&str) -> bool,
) -> RecordCheck {
    let (found, status, reason) = match found {
        Err(reason) => (Vec::new(), "unknown", Some(reason)),
        Ok(found) => {
            let relevant: Vec<String> = found.into_iter().filter(|f| relevant(f)).collect();
            let status = if relevant.is_empty() {
                "missing"
            } else if expected.is_empty() || relevant.iter().any(|f| f.trim() == expected.trim()) {
                "ok"
            } else {
                "mismatch"
            };
            (relevant, status, None)
        }
    };
    RecordCheck { name, record_type, expected, found, status, reason, policy: None }
}

/// `p=` of a DMARC record.
pub fn dmarc_policy(record: &str) -> Option<String> {
    record.split(';').map(str::trim).find_map(|tag| tag.strip_prefix("p=")).map(|p| p.trim().to_ascii_lowercase())
}

/// Resend gives record names relative to the domain (`send`), or in full.
fn qualified(name: &str, domain: &str) -> String {
    let name = name.trim_end_matches('.');
    if name == domain || name.ends_with(&format!(".{domain}")) {
        name.to_owned()
    } else {
        format!("{name}.{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dmarc_policy_is_read_from_its_record() {
        assert_eq!(dmarc_policy("v=DMARC1; p=reject; rua=mailto:x@y.z").as_deref(), Some("reject"));
        assert_eq!(dmarc_policy("v=DMARC1;p=None").as_deref(), Some("none"));
        assert_eq!(dmarc_policy("v=DMARC1; rua=mailto:x@y.z"), None);
    }

    #[test]
    fn record_names_are_qualified_once() {
        assert_eq!(qualified("send", "acme.com"), "send.acme.com");
        assert_eq!(qualified("send.acme.com", "acme.com"), "send.acme.com");
        assert_eq!(qualified("resend._domainkey.acme.com.", "acme.com"), "resend._domainkey.acme.com");
    }

    #[test]
    fn a_failed_lookup_is_unknown_not_missing() {
        let c = judge("x".into(), "TXT", "v=spf1".into(), Err("timed out".into()), |_| true);
        assert_eq!((c.status, c.reason.as_deref()), ("unknown", Some("timed out")));
        let c = judge("x".into(), "TXT", "v=spf1 a".into(), Ok(vec!["other".into()]), |f| f.starts_with("v=spf1"));
        assert_eq!(c.status, "missing");
    }
}
