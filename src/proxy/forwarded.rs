//! Who the client is when proxies stand in between: which peers are trusted
//! to say (`server.trusted_proxies`), the client's address from
//! `X-Forwarded-For`, and whether the request came over HTTPS.
//!
//! Like express-session's `proxy` setting: from anyone but a trusted peer,
//! those headers prove nothing and are replaced.

use std::net::IpAddr;

use ipnet::IpNet;
use pingora::http::RequestHeader;

/// The peers whose `X-Forwarded-*` headers are believed: address ranges
/// (`10.0.0.0/8`, `::1/128`) or single addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The ranges, already parsed (see [`parse_range`]).
    pub fn new(ranges: Vec<IpNet>) -> Self {
        TrustedProxies(ranges)
    }

    /// Whether no peer is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of them (an IPv4-mapped IPv6 address counts as IPv4,
    /// as a dual-stack listener reports IPv4 peers so).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One `trusted_proxies` entry: a CIDR range, or a single address (a /32 or
/// /128). `None` for anything else.
pub fn parse_range(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The client's address: the peer's, unless the peer is a trusted proxy, then
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries further left were written by the client and prove nothing).
pub fn client_address<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.contains(ip);
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = xff.flat_map(|v| v.split(',')).map(str::trim).collect();
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            // Garbage where an address should be: stop believing the chain.
            Err(_) => return peer,
        }
    }
    peer
}

/// Whether a trusted proxy says the request reached it over HTTPS
/// (`X-Forwarded-Proto: https`); from anyone else the header means nothing.
/// (A request on our own TLS listener is HTTPS whatever its headers say.)
pub fn is_https(req: &RequestHeader, peer_trusted: bool) -> bool {
    peer_trusted
        && req
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_walks_x_forwarded_for_from_the_right() {
        let trusted = TrustedProxies::new(vec![parse_range("10.0.0.0/8").unwrap()]);
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            (lb, vec!["203.0.113.9"], "203.0.113.9"),
            (lb, vec!["1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),
            (lb, vec!["1.1.1.1", "203.0.113.9"], "203.0.113.9"),
            (lb, vec![], "10.0.0.2"),
            (lb, vec!["nonsense"], "10.0.0.2"),
            (ip("198.51.100.1"), vec!["203.0.113.9"], "198.51.100.1"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_address(peer, xff.iter().copied(), &trusted),
                ip(want),
                "{xff:?}"
            );
        }
    }

    #[test]
    fn trusted_ranges_contain_their_addresses() {
        let net = |s| TrustedProxies::new(vec![parse_range(s).unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("10.1.0.0/16").contains(ip("10.1.2.3")));
        assert!(net("10.1.0.0/16").contains(ip("::ffff:10.1.2.3")));
        assert!(!net("10.1.0.0/16").contains(ip("10.2.0.1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(!net("::1").contains(ip("::2")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(parse_range(bad).is_none(), "{bad}");
        }
    }
}
