//! Server-side request forgery guard for tenants' webhook URLs. A tenant
//! chooses the URL, so without this mailroom could be made to call the
//! operator's own network: loopback, private ranges, link-local, CGNAT, or a
//! cloud metadata service. The check runs when a URL is saved and again at
//! every delivery (DNS can change in between): the delivery client resolves
//! through [`GuardedResolver`], which refuses a name with any forbidden
//! address, so the connection goes only to addresses that were checked.
//!
//! What is forbidden follows IANA's special-purpose address registries
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/> and
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>): every
//! block whose "Globally Reachable" column is not `True` is refused, the most
//! specific entry deciding (so 192.0.0.9 and 2001:1::1, globally reachable
//! inside not globally reachable blocks, are allowed). Beyond the registries:
//! multicast (its own registries), the deprecated site-local `fec0::/10` and
//! IPv4-compatible `::/96`. Three IPv6 blocks carry an IPv4 address and are
//! judged by it: IPv4-mapped `::ffff:0:0/96`, the global NAT64 prefix
//! `64:ff9b::/96` and 6to4 `2002::/16` (the local-use NAT64 `64:ff9b:1::/48`
//! and Teredo `2001::/32` are refused outright).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// How long saving a URL waits for its host to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of a special-purpose table: a block, and why it may not be called
/// (`None`: it is globally reachable, an exception inside a wider refused block).
struct Row<T> {
    first: T,
    len: u8,
    refused: Option<&'static str>,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, refused: Option<&'static str>) -> Row<u32> {
    Row { first: u32::from_be_bytes([a, b, c, d]), len, refused }
}

const fn v6(segments: [u16; 8], len: u8, refused: Option<&'static str>) -> Row<u128> {
    let mut first = 0u128;
    let mut i = 0;
    while i < 8 {
        first = (first << 16) | segments[i] as u128;
        i += 1;
    }
    Row { first, len, refused }
}

const PRIVATE: Option<&str> = Some("a private (RFC 1918) address");
const DOCUMENTATION: Option<&str> = Some("a documentation address");
const REACHABLE: Option<&str> = None;

/// IANA IPv4 Special-Purpose Address Registry (rows not globally reachable,
/// and the reachable exceptions inside them), plus multicast.
const V4_SPECIAL: &[Row<u32>] = &[
    v4(0, 0, 0, 0, 8, Some("an unspecified (\"this network\", 0.0.0.0/8) address")),
    v4(10, 0, 0, 0, 8, PRIVATE),
    v4(100, 64, 0, 0, 10, Some("a carrier-grade NAT (100.64.0.0/10) address")),
    v4(127, 0, 0, 0, 8, Some("a loopback address")),
    v4(169, 254, 0, 0, 16, Some("a link-local address")),
    v4(172, 16, 0, 0, 12, PRIVATE),
    v4(192, 0, 0, 0, 24, Some("a special-purpose (IETF protocol assignments, 192.0.0.0/24) address")),
    v4(192, 0, 0, 9, 32, REACHABLE),
    v4(192, 0, 0, 10, 32, REACHABLE),
    v4(192, 0, 2, 0, 24, DOCUMENTATION),
    v4(192, 88, 99, 0, 24, Some("a deprecated 6to4 relay anycast (192.88.99.0/24) address")),
    v4(192, 168, 0, 0, 16, PRIVATE),
    v4(198, 18, 0, 0, 15, Some("a benchmarking (198.18.0.0/15) address")),
    v4(198, 51, 100, 0, 24, DOCUMENTATION),
    v4(203, 0, 113, 0, 24, DOCUMENTATION),
    v4(224, 0, 0, 0, 4, Some("a multicast address")),
    v4(240, 0, 0, 0, 4, Some("a reserved (240.0.0.0/4) address")),
    v4(255, 255, 255, 255, 32, Some("the broadcast address")),
];

/// IANA IPv6 Special-Purpose Address Registry (rows not globally reachable,
/// and the reachable exceptions inside them), plus multicast, site-local and
/// IPv4-compatible addresses. The blocks judged by their IPv4 address are in
/// [`embedded_v4`], looked at first.
const V6_SPECIAL: &[Row<u128>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Some("an unspecified address")),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Some("a loopback address")),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, Some("an IPv4-compatible (deprecated, ::/96) address")),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Some("a local-use NAT64 (64:ff9b:1::/48) address")),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Some("a discard-only (100::/64) address")),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, Some("a dummy (100:0:0:1::/64) address")),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Some("a special-purpose (IETF protocol assignments, 2001::/23) address")),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Some("a Teredo (2001::/32) address")),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, REACHABLE),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, REACHABLE),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, REACHABLE),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Some("a benchmarking (2001:2::/48) address")),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, REACHABLE),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, REACHABLE),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, Some("a deprecated ORCHID (2001:10::/28) address")),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, REACHABLE),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, REACHABLE),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, DOCUMENTATION),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, DOCUMENTATION),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Some("a segment routing (SRv6 SID, 5f00::/16) address")),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Some("a private (unique local, fc00::/7) address")),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Some("a link-local address")),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Some("a site-local (deprecated, fec0::/10) address")),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Some("a multicast address")),
];

/// The verdict of the most specific row holding `ip` (`bits` wide), if any.
fn most_specific<T>(rows: &[Row<T>], ip: T, bits: u32) -> Option<&Row<T>>
where
    T: Copy + Eq + std::ops::Shr<u32, Output = T>,
{
    rows.iter()
        .filter(|r| {
            let shift = bits - u32::from(r.len);
            // A shift by the full width is refused by Rust: a /0 would hold everything.
            shift >= bits || (ip >> shift) == (r.first >> shift)
        })
        .max_by_key(|r| r.len)
}

/// Why an address may not be called, or `None` when it is public.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        return Some("a cloud metadata address");
    }
    most_specific(V4_SPECIAL, u32::from(ip), 32).and_then(|r| r.refused)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("a cloud metadata address");
    }
    if let Some(v4) = embedded_v4(ip) {
        // ::ffff:10.0.0.1 or 64:ff9b::a00:1 reach the IPv4 address inside.
        return forbidden_v4(v4);
    }
    most_specific(V6_SPECIAL, u128::from(ip), 128).and_then(|r| r.refused)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), global NAT64
/// (`64:ff9b::/96`, RFC 6052) or 6to4 (`2002::/16`, RFC 3056) address: the
/// one such a packet reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
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

    /// How the guard treats a registry row.
    #[derive(Clone, Copy, Debug)]
    enum Verdict {
        /// "Globally Reachable" is not `True` (False, N/A, or a deprecated row): refused.
        Refused,
        /// "Globally Reachable" is `True`: allowed.
        Reachable,
        /// Carries an IPv4 address (mapped, NAT64, 6to4): judged by it.
        ByEmbeddedV4,
    }

    use Verdict::{ByEmbeddedV4, Reachable, Refused};

    /// IANA IPv4 Special-Purpose Address Registry, every row with its
    /// "Globally Reachable" column (registry as of 2025; the deprecated
    /// 192.88.99.0/24 has none), and multicast from its own registry.
    const IPV4_REGISTRY: &[(&str, Verdict)] = &[
        ("0.0.0.0/8", Refused),
        ("0.0.0.0/32", Refused),
        ("10.0.0.0/8", Refused),
        ("100.64.0.0/10", Refused),
        ("127.0.0.0/8", Refused),
        ("169.254.0.0/16", Refused),
        ("172.16.0.0/12", Refused),
        ("192.0.0.0/24", Refused),
        ("192.0.0.0/29", Refused),
        ("192.0.0.8/32", Refused),
        ("192.0.0.9/32", Reachable),
        ("192.0.0.10/32", Reachable),
        ("192.0.0.170/32", Refused),
        ("192.0.0.171/32", Refused),
        ("192.0.2.0/24", Refused),
        ("192.31.196.0/24", Reachable),
        ("192.52.193.0/24", Reachable),
        ("192.88.99.0/24", Refused),
        ("192.88.99.2/32", Refused),
        ("192.168.0.0/16", Refused),
        ("192.175.48.0/24", Reachable),
        ("198.18.0.0/15", Refused),
        ("198.51.100.0/24", Refused),
        ("203.0.113.0/24", Refused),
        ("224.0.0.0/4", Refused),
        ("240.0.0.0/4", Refused),
        ("255.255.255.255/32", Refused),
    ];

    /// IANA IPv6 Special-Purpose Address Registry, every row, plus multicast,
    /// the deprecated site-local block and IPv4-compatible addresses.
    const IPV6_REGISTRY: &[(&str, Verdict)] = &[
        ("::1/128", Refused),
        ("::/128", Refused),
        ("::/96", Refused),
        ("::ffff:0:0/96", ByEmbeddedV4),
        ("64:ff9b::/96", ByEmbeddedV4),
        ("64:ff9b:1::/48", Refused),
        ("100::/64", Refused),
        ("100:0:0:1::/64", Refused),
        ("2001::/23", Refused),
        ("2001::/32", Refused),
        ("2001:1::1/128", Reachable),
        ("2001:1::2/128", Reachable),
        ("2001:1::3/128", Reachable),
        ("2001:2::/48", Refused),
        ("2001:3::/32", Reachable),
        ("2001:4:112::/48", Reachable),
        ("2001:10::/28", Refused),
        ("2001:20::/28", Reachable),
        ("2001:30::/28", Reachable),
        ("2001:db8::/32", Refused),
        ("2002::/16", ByEmbeddedV4),
        ("2620:4f:8000::/48", Reachable),
        ("3fff::/20", Refused),
        ("5f00::/16", Refused),
        ("fc00::/7", Refused),
        ("fe80::/10", Refused),
        ("fec0::/10", Refused),
        ("ff00::/8", Refused),
    ];

    /// The first and last addresses of a block, and one in the middle.
    fn samples(block: &str) -> Vec<IpAddr> {
        let (net, len) = block.split_once('/').unwrap();
        let len: u32 = len.parse().unwrap();
        match net.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => {
                let first = u32::from(a);
                let span = u32::MAX.checked_shr(len).unwrap_or(0);
                [first, first | (span / 2), first | span].map(|n| IpAddr::V4(Ipv4Addr::from(n))).to_vec()
            }
            IpAddr::V6(a) => {
                let first = u128::from(a);
                let span = u128::MAX.checked_shr(len).unwrap_or(0);
                [first, first | (span / 2), first | span].map(|n| IpAddr::V6(Ipv6Addr::from(n))).to_vec()
            }
        }
    }

    /// An address of a block that carries `v4` where the block puts it.
    fn carrying(block: &str, v4: Ipv4Addr) -> IpAddr {
        let first: u128 = u128::from(block.split_once('/').unwrap().0.parse::<Ipv6Addr>().unwrap());
        let v4 = u128::from(u32::from(v4));
        IpAddr::V6(Ipv6Addr::from(if block.starts_with("2002:") { first | (v4 << 80) } else { first | v4 }))
    }

    #[test]
    fn every_block_the_iana_registries_mark_not_globally_reachable_is_refused() {
        for (block, verdict) in IPV4_REGISTRY.iter().chain(IPV6_REGISTRY) {
            match verdict {
                Refused => {
                    for ip in samples(block) {
                        assert!(forbidden_reason(ip).is_some(), "{ip} of {block} must be refused");
                    }
                }
                Reachable => {
                    for ip in samples(block) {
                        assert_eq!(forbidden_reason(ip), None, "{ip} of {block} is globally reachable");
                    }
                }
                ByEmbeddedV4 => {
                    let public = carrying(block, Ipv4Addr::new(8, 8, 8, 8));
                    assert_eq!(forbidden_reason(public), None, "{public} of {block} reaches 8.8.8.8");
                    for (v4, _) in IPV4_REGISTRY.iter().filter(|(_, v)| matches!(v, Refused)) {
                        for inner in samples(v4) {
                            let IpAddr::V4(inner) = inner else { unreachable!() };
                            let ip = carrying(block, inner);
                            assert!(forbidden_reason(ip).is_some(), "{ip} of {block} reaches {inner} of {v4}");
                        }
                    }
                }
            }
        }
        // Just outside some refused blocks: public.
        for ip in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2001:200::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "2003::1",
            "3fff:1000::1",
            "fbff::1",
            "fe7f::1",
            "2606:4700::1111",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
        assert_eq!(reason("2001:0:4136:e378:8000:63bf:3fff:fdd2"), Some("a Teredo (2001::/32) address"));
        assert_eq!(reason("fec0::1"), Some("a site-local (deprecated, fec0::/10) address"));
        assert_eq!(reason("192.0.0.8"), Some("a special-purpose (IETF protocol assignments, 192.0.0.0/24) address"));
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
