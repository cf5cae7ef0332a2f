//! Server-side request forgery guard for tenants' webhook URLs. A tenant
//! chooses the URL, so without this mailroom could be made to call the
//! operator's own network: loopback, private ranges, link-local, CGNAT, or a
//! cloud metadata service. The check runs when a URL is saved and again at
//! every delivery (DNS can change in between): the delivery client resolves
//! through [`GuardedResolver`], which refuses a name with any forbidden
//! address, so the connection goes only to addresses that were checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// How long saving a URL waits for its host to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address may not be called, or `None` when it is public.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private (RFC 1918) address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("a carrier-grade NAT (100.64.0.0/10) address")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("a benchmarking (198.18.0.0/15) address")
    } else if ip.octets()[..3] == [192, 0, 0] || ip.octets()[..3] == [192, 0, 2] {
        Some("a special-purpose (192.0.0.0/24, 192.0.2.0/24) address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("a broadcast, multicast or reserved address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("a private (unique local, fc00::/7) address")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first == 0x0100 && ip.segments()[1..4] == [0, 0, 0] {
        Some("a discard-only (100::/64) address")
    } else if let Some(v4) = embedded_v4(ip) {
        // ::ffff:10.0.0.1 or 64:ff9b::a00:1 reach the IPv4 address inside.
        forbidden_v4(v4)
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped, -compatible, NAT64 (64:ff9b::/96,
/// and the local-use 64:ff9b:1::/48) or 6to4 (2002::/16) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..2] == [0x64, 0xff9b] && s[2] == 1 {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip.to_ipv4()
}

/// Checks a webhook URL as a tenant gives it: http(s), a host, and (unless
/// `allow_private`) a host that is and resolves only to public addresses.
/// The message says what is wrong, for a 422.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("`url` must not be empty".into());
    }
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("`url` is longer than {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`url` must be an http or https URL, not `{}:`", url.scheme()));
    }
    let host = url.host().ok_or("`url` has no host")?;
    if allow_private {
        return Ok(url);
    }
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, 0))).await
        {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            Ok(Err(_)) | Err(_) => return Err(format!("`url`: the host `{name}` does not resolve")),
        },
    };
    if addrs.is_empty() {
        return Err(format!("`url`: the host `{host}` does not resolve"));
    }
    for ip in addrs {
        if let Some(reason) = forbidden_reason(ip) {
            return Err(format!(
                "`url`: the host `{host}` is or resolves to {ip}, {reason}; webhooks may only call public addresses"
            ));
        }
    }
    Ok(url)
}

/// A refusal of the delivery client to call an address (at delivery time).
pub fn check_literal_host(url: &url::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    match forbidden_reason(ip) {
        Some(reason) => Err(format!("refused to call {ip}: {reason}")),
        None => Ok(()),
    }
}

/// Resolves names for the delivery client and refuses any name with a
/// forbidden address, so what the client connects to is what was checked.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some((ip, reason)) =
                    found.iter().find_map(|a| forbidden_reason(a.ip()).map(|reason| (a.ip(), reason)))
                {
                    return Err(format!("refused to call {host}: it resolves to {ip}, {reason}").into());
                }
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        forbidden_reason(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_cgnat_and_metadata_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "100::1",
        ] {
            assert!(reason(ip).is_some(), "{ip}");
        }
        assert_eq!(reason("2002:a9fe:a9fe::1"), Some("a cloud metadata address"));
        assert_eq!(reason("169.254.169.254"), Some("a cloud metadata address"));
        assert_eq!(reason("fd00:ec2::254"), Some("a cloud metadata address"));
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "192.0.3.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "2002:808:808::1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_other_than_http_or_to_private_hosts_are_refused() {
        assert!(check_url("ftp://example.com/x", false).await.unwrap_err().contains("http or https"));
        assert!(check_url("http://127.1/", false).await.unwrap_err().contains("loopback"));
        assert!(check_url("http://[::1]:8080/", false).await.unwrap_err().contains("loopback"));
        assert!(check_url("http://0x7f000001/", false).await.unwrap_err().contains("loopback"));
        assert!(check_url("http://127.0.0.1/", true).await.is_ok());
        assert!(check_url("https://93.184.216.34/hook", false).await.is_ok());
    }

    #[tokio::test]
    async fn the_delivery_resolver_refuses_a_name_that_resolves_to_loopback() {
        use std::str::FromStr;
        let refused = GuardedResolver { allow_private: false }.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(refused.err().unwrap().to_string().contains("loopback"));
        let allowed = GuardedResolver { allow_private: true }.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(allowed.unwrap().next().is_some());
        let url = url::Url::parse("http://[::ffff:169.254.169.254]/").unwrap();
        assert!(check_literal_host(&url, false).is_err());
    }
}
