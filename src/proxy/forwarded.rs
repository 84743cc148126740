//! Who the client is when proxies stand in between: which peers are trusted
//! to say (`server.trusted_proxies`), the client's address from
//! `X-Forwarded-For`, and whether the request came over HTTPS.
//!
//! Like express-session's `proxy` setting: from anyone but a trusted peer,
//! those headers prove nothing and are replaced.

use std::net::IpAddr;

use http::header::{self, HeaderValue};
use ipnet::IpNet;
use pingora::http::RequestHeader;

use crate::http::headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

/// A set of address ranges (`10.0.0.0/8`, `::1/128`) or single addresses:
/// the peers whose `X-Forwarded-*` headers are believed
/// (`server.trusted_proxies`), or the clients a route applies to (its `networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Networks(Vec<IpNet>);

impl Networks {
    /// The ranges, already parsed (see [`parse_range`]).
    pub(crate) fn new(ranges: Vec<IpNet>) -> Self {
        Networks(ranges)
    }

    /// Whether no peer is trusted (the default).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of them (an IPv4-mapped IPv6 address counts as IPv4,
    /// as a dual-stack listener reports IPv4 peers so).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One `trusted_proxies` entry: a CIDR range, or a single address (a /32 or
/// /128). `None` for anything else.
pub(crate) fn parse_range(s: &str) -> Option<IpNet> {
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?;
    // An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) is the IPv4 range it
    // maps: [`Networks::contains`] sees every such client as IPv4.
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(IpNet::V4),
            None => Some(net),
        },
        _ => Some(net),
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy, then
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries further left were written by the client and prove nothing).
pub(crate) fn client_address<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    trusted: &Networks,
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
pub(crate) fn is_https(req: &RequestHeader, peer_trusted: bool) -> bool {
    peer_trusted
        && req
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// What the upstream is told about the client (`X-Forwarded-*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded<'a> {
    /// The connection's peer (`None` on a Unix socket).
    pub peer: Option<IpAddr>,
    /// A trusted proxy's `X-Forwarded-For`, read before the client's
    /// `X-Forwarded-*` were stripped ([`prior_chain`]).
    pub prior: Option<&'a HeaderValue>,
    pub https: bool,
}

/// The `X-Forwarded-For` chain to extend: a trusted proxy's, nobody else's.
pub(crate) fn prior_chain(req: &RequestHeader, peer_trusted: bool) -> Option<HeaderValue> {
    peer_trusted
        .then(|| req.headers.get(X_FORWARDED_FOR).cloned())
        .flatten()
}

/// Set `X-Forwarded-For` (the prior chain extended by the peer, or the peer
/// alone), `X-Forwarded-Proto` and `X-Forwarded-Host` (the client's `Host`,
/// or HTTP/2's `:authority`) on a request whose client copies were stripped.
///
/// # Errors
/// Only if a value is not a valid header value, which cannot happen for
/// addresses and for headers that were valid.
pub(crate) fn set(req: &mut RequestHeader, f: &Forwarded<'_>) -> pingora::Result<()> {
    if let Some(ip) = f.peer {
        match f.prior.and_then(|v| v.to_str().ok()) {
            Some(prior) => req.insert_header(X_FORWARDED_FOR, format!("{prior}, {ip}"))?,
            None => req.insert_header(X_FORWARDED_FOR, ip.to_string())?,
        };
    }
    let proto = if f.https { "https" } else { "http" };
    req.insert_header(X_FORWARDED_PROTO, proto)?;
    let host = req.headers.get(header::HOST).cloned().or_else(|| {
        req.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    if let Some(host) = host {
        req.insert_header(X_FORWARDED_HOST, host)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_mapped_range_is_the_ipv4_range() {
        let n = Networks::new(vec![parse_range("::ffff:10.8.0.0/112").unwrap()]);
        assert_eq!(
            parse_range("::ffff:10.8.0.0/112"),
            parse_range("10.8.0.0/16")
        );
        assert!(n.contains("10.8.3.4".parse().unwrap()));
        assert!(n.contains("::ffff:10.8.3.4".parse().unwrap()));
        assert!(!n.contains("10.9.0.1".parse().unwrap()));
        assert_eq!(
            parse_range("fd00::/8").map(|n| n.to_string()).as_deref(),
            Some("fd00::/8")
        );
    }

    #[test]
    fn forwarded_headers_extend_only_a_trusted_chain() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // (peer trusted, client's XFF, peer, https, want XFF, want proto)
        let cases = [
            (
                false,
                Some("1.2.3.4"),
                ip("10.0.0.9"),
                false,
                Some("10.0.0.9"),
                "http",
            ),
            (
                true,
                Some("1.2.3.4"),
                ip("10.0.0.9"),
                true,
                Some("1.2.3.4, 10.0.0.9"),
                "https",
            ),
            (true, None, ip("10.0.0.9"), false, Some("10.0.0.9"), "http"),
            (true, Some("1.2.3.4"), None, false, None, "http"),
        ];
        for (trusted, xff, peer, https, want_xff, want_proto) in cases {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("Host", "app.test:8080").unwrap();
            if let Some(x) = xff {
                req.insert_header(X_FORWARDED_FOR, x).unwrap();
            }
            let prior = prior_chain(&req, trusted);
            req.remove_header(X_FORWARDED_FOR); // as identity::strip_client_identity does
            let f = Forwarded {
                peer,
                prior: prior.as_ref(),
                https,
            };
            set(&mut req, &f).unwrap();
            let get = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                get(X_FORWARDED_FOR).as_deref(),
                want_xff,
                "{trusted} {xff:?}"
            );
            assert_eq!(get(X_FORWARDED_PROTO).as_deref(), Some(want_proto));
            assert_eq!(get(X_FORWARDED_HOST).as_deref(), Some("app.test:8080"));
        }
    }

    #[test]
    fn forwarded_host_falls_back_to_the_authority() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.set_uri("https://app.test:8443/x".parse().unwrap());
        let f = Forwarded {
            peer: None,
            prior: None,
            https: true,
        };
        set(&mut req, &f).unwrap();
        assert_eq!(req.headers.get(X_FORWARDED_HOST).unwrap(), "app.test:8443");
        let mut bare = RequestHeader::build("GET", b"/", None).unwrap();
        set(&mut bare, &f).unwrap();
        assert!(bare.headers.get(X_FORWARDED_HOST).is_none());
    }

    #[test]
    fn client_address_walks_x_forwarded_for_from_the_right() {
        let trusted = Networks::new(vec![parse_range("10.0.0.0/8").unwrap()]);
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
        let net = |s| Networks::new(vec![parse_range(s).unwrap()]);
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
