//! Cross-site request forgery: whether a state-changing request comes from a
//! page of our own origin.

use pingora::http::RequestHeader;

/// Whether a POST comes from our own origin: `Origin` (or, failing that,
/// `Referer`) must name the host the request was sent to. `Sec-Fetch-Site:
/// cross-site` is refused outright. A request with neither header is not from a
/// browser form and is allowed (OWASP CSRF Prevention Cheat Sheet).
pub fn same_origin(req: &RequestHeader) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site") {
        return false;
    }
    let Some(host) = header("host") else {
        return false;
    };
    let source = header("origin").or_else(|| header("referer"));
    let Some(source) = source else { return true };
    let Some(rest) = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
    else {
        return false; // includes `Origin: null`
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(same_origin(&req(&[])));
        assert!(same_origin(&req(&[("Origin", "http://app.test:8080")])));
        assert!(same_origin(&req(&[("Origin", "https://APP.test:8080")])));
        assert!(same_origin(&req(&[(
            "Referer",
            "http://app.test:8080/.sessiongate/login?next=/"
        )])));
        assert!(!same_origin(&req(&[("Origin", "http://evil.test")])));
        assert!(!same_origin(&req(&[(
            "Origin",
            "http://app.test:8080.evil.test"
        )])));
        assert!(!same_origin(&req(&[("Origin", "null")])));
        assert!(!same_origin(&req(&[(
            "Referer",
            "http://evil.test/app.test:8080"
        )])));
        assert!(!same_origin(&req(&[
            ("Origin", "http://evil.test"),
            ("Referer", "http://app.test:8080/")
        ])));
        assert!(!same_origin(&req(&[("Sec-Fetch-Site", "cross-site")])));
    }
}
