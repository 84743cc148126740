//! Cross-site request forgery: whether a state-changing request comes from a
//! page of our own origin.

use http::uri::Authority;
use pingora::http::RequestHeader;

/// Whether a POST comes from our own origin: `Origin` (or, failing that,
/// `Referer`) must name the host the browser sent the request to. `Sec-Fetch-Site:
/// cross-site` is refused outright. A request with neither header is not from a
/// browser form and is allowed (OWASP CSRF Prevention Cheat Sheet).
///
/// The browser's host is the `Host` header (`:authority` over HTTP/2), or,
/// when the peer is a trusted proxy (`via_trusted_proxy`), the right-most
/// `X-Forwarded-Host` it set: Caddy and Traefik send it, and nginx when told
/// to. Ports are compared with the scheme's default filled in, so `Host:
/// app` matches `Origin: http://app:80` but a front proxy that dropped the
/// port (nginx's `$host`) does not pass `Origin: http://app:8080`.
pub(crate) fn same_origin(req: &RequestHeader, via_trusted_proxy: bool) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site") {
        return false;
    }
    let forwarded = via_trusted_proxy
        .then(|| header("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim);
    let host = forwarded
        .or_else(|| header("host"))
        .or_else(|| req.uri.authority().map(Authority::as_str));
    let Some(host) = host else {
        return false;
    };
    let source = header("origin").or_else(|| header("referer"));
    let Some(source) = source else { return true };
    let (scheme, rest) = if let Some(rest) = source.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = source.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return false; // includes `Origin: null`
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match (authority.parse::<Authority>(), host.parse::<Authority>()) {
        (Ok(source), Ok(host)) => {
            // userinfo (`http://app@evil`) never names our origin.
            !source.as_str().contains('@')
                && !host.as_str().contains('@')
                && source.host().eq_ignore_ascii_case(host.host())
                && scheme.port(&source) == scheme.port(&host)
        }
        _ => false,
    }
}

#[derive(Clone, Copy)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `authority`'s port, or the scheme's default when it names none.
    fn port(self, authority: &Authority) -> u16 {
        authority.port_u16().unwrap_or(match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(headers: &[(&str, &str)]) -> bool {
        same_origin(&req(headers), false)
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/.sessiongate/login", None).unwrap();
        r.insert_header("Host", "app.test:8080").unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn same_origin_checks_origin_then_referer() {
        assert!(same(&[]));
        assert!(same(&[("Origin", "http://app.test:8080")]));
        assert!(same(&[("Origin", "https://APP.test:8080")]));
        assert!(same(&[(
            "Referer",
            "http://app.test:8080/.sessiongate/login?next=/"
        )]));
        assert!(!same(&[("Origin", "http://evil.test")]));
        assert!(!same(&[("Origin", "http://app.test:8080.evil.test")]));
        assert!(!same(&[("Origin", "null")]));
        assert!(!same(&[("Referer", "http://evil.test/app.test:8080")]));
        assert!(!same(&[
            ("Origin", "http://evil.test"),
            ("Referer", "http://app.test:8080/")
        ]));
        assert!(!same(&[("Sec-Fetch-Site", "cross-site")]));
        assert!(!same(&[("Origin", "http://user@app.test:8080")]));
        assert!(!same(&[("Origin", "http://app.test:8081")]));
        assert!(!same(&[("Origin", "http://app.test")]));
    }

    /// Regression: behind nginx with `proxy_set_header Host $host` on port
    /// 8080 every login was refused; the port must survive to the check.
    #[test]
    fn ports_are_compared_with_the_scheme_default() {
        let with_host = |host: &str, origin: &str| {
            let mut r = req(&[("Origin", origin)]);
            r.insert_header("Host", host.to_owned()).unwrap();
            same_origin(&r, false)
        };
        assert!(with_host("app.test", "http://app.test"));
        assert!(with_host("app.test:80", "http://app.test"));
        assert!(with_host("app.test", "http://app.test:80"));
        assert!(with_host("app.test", "https://app.test"));
        assert!(with_host("app.test:443", "https://app.test"));
        assert!(with_host("[::1]:8080", "http://[::1]:8080"));
        assert!(!with_host("app.test", "http://app.test:8080"));
        assert!(!with_host("app.test:80", "https://app.test"));
        assert!(!with_host("[::1]:8080", "http://[::1]:8081"));
    }

    #[test]
    fn x_forwarded_host_counts_only_from_a_trusted_proxy() {
        let r = req(&[
            ("X-Forwarded-Host", "front.test:8443"),
            ("Origin", "https://front.test:8443"),
        ]);
        assert!(same_origin(&r, true));
        assert!(
            !same_origin(&r, false),
            "a client's own X-Forwarded-Host proves nothing"
        );
        // The right-most entry is the one the trusted proxy wrote.
        let chain = req(&[
            ("X-Forwarded-Host", "evil.test, front.test:8443"),
            ("Origin", "https://front.test:8443"),
        ]);
        assert!(same_origin(&chain, true));
        let spoofed = req(&[
            ("X-Forwarded-Host", "front.test:8443, evil.test"),
            ("Origin", "https://front.test:8443"),
        ]);
        assert!(!same_origin(&spoofed, true));
        // No X-Forwarded-Host: the Host header, as from anyone.
        assert!(same_origin(
            &req(&[("Origin", "http://app.test:8080")]),
            true
        ));
    }

    #[test]
    fn http2_requests_use_the_authority() {
        let mut r = RequestHeader::build("POST", b"/.sessiongate/login", None).unwrap();
        r.set_uri("https://app.test:8443/.sessiongate/login".parse().unwrap());
        r.insert_header("Origin", "https://app.test:8443").unwrap();
        assert!(same_origin(&r, false));
        r.insert_header("Origin", "https://evil.test:8443").unwrap();
        assert!(!same_origin(&r, false));
    }
}
