//! Who a request comes from: the peer of the connection, or, behind a reverse
//! proxy the operator trusts (`MAILROOM_TRUSTED_PROXIES`), the address that
//! proxy put in `X-Forwarded-For`. Anyone can send that header, so it counts
//! only when the peer is a trusted proxy, and then only the part the trusted
//! proxies appended: a client's own `X-Forwarded-For: 1.2.3.4` stays on the left.

use std::net::{IpAddr, Ipv6Addr};

/// An address range: an address and how many of its leading bits count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.1`, `::1`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

/// Whether `a` and `b` (numbers of `bits` bits) agree in their first `prefix` bits.
fn masked(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (a >> shift) == (b >> shift)
}

/// The reverse proxies whose `X-Forwarded-For` is believed. Empty: none, and
/// the client is always the connection's peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    /// Comma-separated addresses or CIDR ranges: `10.0.0.0/8, 192.0.2.7, ::1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split(',').filter(|p| !p.trim().is_empty()).map(IpRange::parse).collect::<Result<_, _>>().map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For`
    /// header values (in the order received). Unless the peer is a trusted
    /// proxy, the peer. Otherwise the right-most address that is not itself a
    /// trusted proxy: each trusted proxy appends the address it was reached
    /// from, so everything right of that address was written by proxies we
    /// trust, and everything left of it by the client. If an entry there
    /// cannot be read, the nearest trusted hop is the client (it is the last
    /// address known for sure).
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { return client };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

/// The bucket failures from `ip` are counted in: the address itself (IPv4), or
/// its /64 (IPv6), since one IPv6 host usually holds a whole /64.
pub fn throttle_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_as_cidrs_or_single_addresses_and_match_by_prefix() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.200.3.4")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.1.1.1")), "an IPv4-mapped peer is its IPv4 address");
        assert!(IpRange::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!IpRange::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert!(!IpRange::parse("0.0.0.0/0").unwrap().contains(ip("::1")), "families never mix");
        assert!(IpRange::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(IpRange::parse("::1").unwrap().contains(ip("::1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "proxy.internal", "10.0.0.0/x", ""] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TrustedProxies::parse(" 10.0.0.0/8 , ::1,").unwrap().0.len(), 2);
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.1, nope").is_err());
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer_and_only_right_of_the_first_untrusted_hop() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("198.51.100.1"), ["203.0.113.5"]), ip("198.51.100.1"), "no proxies: the peer");
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        assert_eq!(trusted.client(ip("198.51.100.1"), ["203.0.113.5"]), ip("198.51.100.1"), "untrusted peer");
        assert_eq!(trusted.client(ip("127.0.0.1"), ["203.0.113.5"]), ip("203.0.113.5"));
        // The client wrote `1.2.3.4` itself; the proxies appended 203.0.113.5 and 10.0.0.2.
        assert_eq!(trusted.client(ip("127.0.0.1"), ["1.2.3.4, 203.0.113.5, 10.0.0.2"]), ip("203.0.113.5"));
        assert_eq!(trusted.client(ip("127.0.0.1"), ["1.2.3.4", "203.0.113.5:4711"]), ip("203.0.113.5"), "two headers");
        assert_eq!(trusted.client(ip("127.0.0.1"), ["[2001:db8::7]:443"]), ip("2001:db8::7"));
        assert_eq!(trusted.client(ip("127.0.0.1"), Vec::<&str>::new()), ip("127.0.0.1"), "no header: the peer");
        assert_eq!(trusted.client(ip("127.0.0.1"), ["10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"), "all trusted");
        assert_eq!(trusted.client(ip("127.0.0.1"), ["203.0.113.5, garbage, 10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(trusted.client(ip("::ffff:127.0.0.1"), ["203.0.113.5"]), ip("203.0.113.5"));
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        assert_eq!(throttle_bucket(ip("2001:db8:1:2:aaaa::1")), throttle_bucket(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(throttle_bucket(ip("2001:db8:1:2::1")), throttle_bucket(ip("2001:db8:1:3::1")));
        assert_eq!(throttle_bucket(ip("192.0.2.1")), "192.0.2.1");
        assert_eq!(throttle_bucket(ip("::ffff:192.0.2.1")), "192.0.2.1");
    }
}
