//! The request's host, canonicalised once, like its path: the rule table
//! decides on it and the upstream's `Host` carries it, so the two can never
//! see different names (tinyauth GHSA-328g-jx67-v94g and Authelia
//! GHSA-j748-h363-wqj8 compared hosts without canonicalising them).
//!
//! Canonical: the name in lower case, internationalised names in their ASCII
//! (punycode) form (UTS #46, through the `url` crate's IDNA), no trailing
//! dot, IPv6 in brackets; the port kept only when it is not the scheme's
//! default. A request is refused (400) when its `Host` is malformed or sent
//! twice, or when it disagrees with the request target's authority (an
//! absolute-form target, or HTTP/2's `:authority`).
//!
//! Pure functions; [`super::routes`] matches rules on the name.

use std::borrow::Cow;

use pingora::http::RequestHeader;

/// Longest host accepted (a DNS name is at most 253 bytes, plus a port).
const MAX_LEN: usize = 300;

/// A request's host, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host<'a> {
    /// The name: what rules match.
    pub name: Cow<'a, str>,
    /// The port, when not the scheme's default.
    pub port: Option<u16>,
}

impl Host<'_> {
    /// `name[:port]`: what the upstream's `Host` header carries.
    pub(crate) fn authority(&self) -> Cow<'_, str> {
        match self.port {
            None => Cow::Borrowed(&self.name),
            Some(p) => Cow::Owned(format!("{}:{p}", self.name)),
        }
    }

    pub(crate) fn into_owned(self) -> Host<'static> {
        Host {
            name: Cow::Owned(self.name.into_owned()),
            port: self.port,
        }
    }
}

/// Why a host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Not a host name, an IPv4 or a bracketed IPv6 address with an optional port.
    Syntax,
    /// `Host` was sent more than once.
    Repeated,
    /// `Host` and the target's authority name different hosts.
    Disagrees,
}

/// The canonical form of `authority` (`name[:port]`, as in `Host`), for a
/// request that came over HTTPS or not (the default port).
///
/// # Errors
/// [`Malformed::Syntax`] for anything that is not a host with an optional port.
pub(crate) fn canonical(authority: &str, https: bool) -> Result<Host<'_>, Malformed> {
    if authority.is_empty() || authority.len() > MAX_LEN || authority.contains(['@', '/', '\\']) {
        return Err(Malformed::Syntax);
    }
    let (name, port) = split_port(authority)?;
    let default = if https { 443 } else { 80 };
    let port = port.filter(|&p| p != default);
    // The common case needs no work and no allocation: already canonical
    // (std's IPv4 parser takes only the dotted-quad form, no leading zeros).
    if is_plain_canonical(name) || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(Host {
            name: Cow::Borrowed(name),
            port,
        });
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.ends_with('.') {
        return Err(Malformed::Syntax);
    }
    let name = match url::Host::parse(trimmed).map_err(|_| Malformed::Syntax)? {
        url::Host::Domain(d) => d,
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => format!("[{a}]"),
    };
    if name.is_empty() || name.ends_with('.') || name.contains("..") {
        return Err(Malformed::Syntax);
    }
    Ok(Host {
        name: Cow::Owned(name),
        port,
    })
}

/// Whether `sent` (a `Host` value) already is `h`'s authority, byte for
/// byte: then nothing needs rewriting and nothing is copied.
pub(crate) fn is_as_sent(sent: &str, h: &Host<'_>) -> bool {
    let Cow::Borrowed(name) = &h.name else {
        return false;
    };
    let Some(rest) = sent.strip_prefix(*name) else {
        return false;
    };
    match (rest, h.port) {
        ("", None) => true,
        (r, Some(p)) => r
            .strip_prefix(':')
            .is_some_and(|d| !d.starts_with('0') && d.parse() == Ok(p)),
        _ => false,
    }
}

/// A name that canonicalisation would leave as it is: lower-case ASCII
/// letters, digits, `-` and `.`, labels neither empty nor starting with `-`,
/// no trailing dot, and not an address form `url` would rewrite (a last
/// label that starts with a digit, as in `0x7f.1` or `127.1`, goes the long way).
fn is_plain_canonical(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit()))
        && name
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.starts_with("xn--"))
}

/// `name[:port]`, the IPv6 form `[addr]` kept whole.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), Malformed> {
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(Malformed::Syntax)?;
        match &authority[end + 1..] {
            "" => (&authority[..=end], None),
            rest => (
                &authority[..=end],
                Some(rest.strip_prefix(':').ok_or(Malformed::Syntax)?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| Malformed::Syntax)?)
        }
        Some(_) => return Err(Malformed::Syntax),
    };
    if name.is_empty() {
        return Err(Malformed::Syntax);
    }
    Ok((name, port))
}

/// The request's host: its one `Host`, or the target's authority (HTTP/2's
/// `:authority`, an absolute-form target); both must agree. `Ok(None)` when
/// the request names no host at all (HTTP/1.0).
///
/// # Errors
/// [`Malformed`]: a bad or repeated `Host`, or one the target disagrees with.
pub(crate) fn of_request(req: &RequestHeader, https: bool) -> Result<Option<Host<'_>>, Malformed> {
    let mut values = req.headers.get_all(http::header::HOST).iter();
    let header = match (values.next(), values.next()) {
        (_, Some(_)) => return Err(Malformed::Repeated),
        // UTF-8 is taken (an internationalised name sent as is), then
        // canonicalised to its ASCII form like any other spelling.
        (Some(v), None) => Some(std::str::from_utf8(v.as_bytes()).map_err(|_| Malformed::Syntax)?),
        (None, None) => None,
    };
    let from_header = header.map(|h| canonical(h, https)).transpose()?;
    let from_target = req
        .uri
        .authority()
        .map(|a| canonical(a.as_str(), https))
        .transpose()?;
    match (from_header, from_target) {
        (Some(h), Some(t)) if h != t => Err(Malformed::Disagrees),
        (Some(h), _) => Ok(Some(h)),
        (None, t) => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str, https: bool) -> Result<(String, Option<u16>), Malformed> {
        canonical(s, https).map(|h| (h.name.into_owned(), h.port))
    }

    #[test]
    fn every_spelling_of_a_host_is_one_name() {
        let same = [
            ("app.example.com", false),
            ("APP.Example.COM", false),
            ("app.example.com.", false),
            ("app.example.com:80", false),
            ("App.Example.Com.:80", false),
            ("app.example.com:443", true),
        ];
        for (s, https) in same {
            assert_eq!(name(s, https), Ok(("app.example.com".into(), None)), "{s}");
        }
        assert_eq!(
            name("app.example.com:8080", false),
            Ok(("app.example.com".into(), Some(8080)))
        );
        assert_eq!(
            name("app.example.com:443", false),
            Ok(("app.example.com".into(), Some(443)))
        );
        // Internationalised names in their ASCII form, whatever their case.
        assert_eq!(
            name("Bücher.Example", false),
            Ok(("xn--bcher-kva.example".into(), None))
        );
        assert_eq!(
            name("xn--bcher-kva.example", false),
            Ok(("xn--bcher-kva.example".into(), None))
        );
        // Addresses in one spelling each.
        assert_eq!(
            name("127.0.0.1:8080", false),
            Ok(("127.0.0.1".into(), Some(8080)))
        );
        assert_eq!(name("[::1]:8080", false), Ok(("[::1]".into(), Some(8080))));
        assert_eq!(name("[0:0::1]", false), Ok(("[::1]".into(), None)));
        assert_eq!(name("0x7f.1", false), Ok(("127.0.0.1".into(), None)));
        let borrowed = canonical("app.example.com", false).unwrap();
        assert!(matches!(borrowed.name, Cow::Borrowed(_)), "no allocation");
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in [
            "",
            ".",
            "a..b",
            "app.example.com..",
            "user@app.example.com",
            "app.example.com/x",
            "app example.com",
            "app.example.com:",
            "app.example.com:99999",
            "app.example.com:8o",
            "[::1",
            "[::1]x",
            "exa\u{0}mple.com",
            &"a".repeat(400),
        ] {
            assert!(name(bad, false).is_err(), "{bad:?}");
        }
    }
}
