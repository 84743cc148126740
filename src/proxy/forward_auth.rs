//! Forward-auth: a front proxy (nginx, Caddy, Traefik) asks sessiongate
//! whether the request *it* received may pass, and sessiongate decides with
//! the same normalisation and the same rules as for its own requests.
//!
//! | endpoint                | for                                  | the original request from          |
//! |-------------------------|--------------------------------------|------------------------------------|
//! | `<prefix>/auth/nginx`   | nginx `auth_request`                 | `X-Original-Method`, `X-Original-URI` |
//! | `<prefix>/auth/forward` | Caddy `forward_auth`, Traefik `ForwardAuth` | `X-Forwarded-Method`, `X-Forwarded-Uri` |
//!
//! The answers follow each convention. nginx treats anything but 2xx, 401 and
//! 403 as an error, so its endpoint answers a browser that must log in with a
//! 401 that carries the login page in `Location` (the snippet in the README
//! turns it into a redirect); Caddy and Traefik pass the answer through, so
//! that endpoint answers with the 302 itself. Allowed: 200 with `X-User` and
//! `X-User-Roles` for the front proxy to copy (none when anonymous, so the
//! front proxy's copy overwrites a client's spoofed one with nothing).
//!
//! **Only a trusted peer (`server.trusted_proxies`) may say what the original
//! request was.** From anyone else, or without those headers, or with a target
//! that does not normalise, the answer is a deny (403): never a decision on an
//! attacker-chosen URI, and never a fallback to the auth request's own path.

use std::borrow::Cow;

use http::{HeaderName, Method, StatusCode};
use pingora::http::RequestHeader;

use super::routes::{Decision, Identity, Rules};
use crate::http::headers::IdentityNames;
use crate::http::redirect;

/// Which front proxy's convention an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Convention {
    /// nginx `auth_request`.
    Nginx,
    /// Caddy `forward_auth`, Traefik `ForwardAuth`.
    Forward,
}

impl Convention {
    fn headers(self) -> (&'static str, &'static str) {
        match self {
            Convention::Nginx => ("x-original-method", "x-original-uri"),
            Convention::Forward => ("x-forwarded-method", "x-forwarded-uri"),
        }
    }
}

/// The request the front proxy received, as far as the rules care.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Original<'a> {
    pub method: Method,
    /// Normalised, as the rules see every path.
    pub path: Cow<'a, str>,
    pub query: Option<&'a str>,
    /// Canonical, as the rules see every host: the front proxy's
    /// `X-Forwarded-Host`, else this request's own host.
    pub host: Option<Cow<'a, str>>,
    /// The client's address through the trusted proxies (their
    /// `X-Forwarded-For`), for rules by network; set by the caller.
    pub client: Option<std::net::IpAddr>,
}

/// Why the original request could not be taken from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer is not in `server.trusted_proxies`.
    Untrusted,
    /// A header is missing or is not a method / an origin-form target.
    Malformed,
}

/// The original request, from a trusted peer's headers.
///
/// # Errors
/// [`Refusal::Untrusted`] from anyone else, whatever the headers say;
/// [`Refusal::Malformed`] for a missing header, a bad method, or a target
/// that is not an absolute path that normalises.
pub(crate) fn original(
    convention: Convention,
    req: &RequestHeader,
    trusted_peer: bool,
    https: bool,
) -> Result<Original<'_>, Refusal> {
    if !trusted_peer {
        return Err(Refusal::Untrusted);
    }
    let (method_header, uri_header) = convention.headers();
    let one = |name: &str| {
        let mut values = req.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok(),
            _ => None, // absent, or sent twice: which one would be meant?
        }
    };
    let method = one(method_header)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(Refusal::Malformed)?;
    let target = one(uri_header).ok_or(Refusal::Malformed)?;
    // Origin form only: "/path?query". No fragment is ever sent.
    if !target.starts_with('/') || target.contains('#') {
        return Err(Refusal::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path = super::path::normalize(path).map_err(|_| Refusal::Malformed)?;
    // The host the front proxy was asked for (the last of a chain: the
    // nearest proxy's), canonical like any request's; else this one's.
    if req.headers.get_all("x-forwarded-host").iter().count() > 1 {
        return Err(Refusal::Malformed);
    }
    let host = match one("x-forwarded-host") {
        Some(v) => {
            let nearest = v.rsplit(',').next().unwrap_or(v).trim();
            Some(super::host::canonical(nearest, https).map_err(|_| Refusal::Malformed)?)
        }
        None => super::host::of_request(req, https).map_err(|_| Refusal::Malformed)?,
    };
    Ok(Original {
        method,
        path,
        query,
        host: host.map(|h| h.name),
        client: None,
    })
}

/// The answer to a forward-auth request: its status and headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    /// Why, for the access log.
    pub decision: &'static str,
}

/// Decide `original` for `who` and answer in `convention`'s terms.
/// `navigation`: the client is a browser loading a page (it gets the login
/// page rather than a bare 401); `login_prefix`: `<login_url>?next=`.
pub(crate) fn answer(
    convention: Convention,
    rules: &Rules,
    names: &IdentityNames,
    original: &Original<'_>,
    who: Option<Identity<'_>>,
    navigation: bool,
    redirects: &super::Redirects,
) -> Answer {
    let bare = |status, decision| Answer {
        status,
        headers: Vec::new(),
        decision,
    };
    // `who` is the credential the original request proved that its route
    // takes (`proxy::credentials`), or none.
    let matched = rules.matched(
        &original.method,
        original.host.as_deref(),
        &original.path,
        original.client,
    );
    match matched.decide(who) {
        Decision::Allow { .. } => {
            let (user, roles) = who.map_or(("", ""), |w| (w.user, w.roles));
            let headers = if who.is_some() || convention == Convention::Forward {
                // Anonymous, Caddy and Traefik still get the headers, empty:
                // Caddy 2.6's copy_headers sets a header the answer lacks to
                // its own placeholder text ("{http.reverse_proxy.header.X-User}"),
                // which an app would take for a user name.
                let mut h = vec![
                    (names.user.clone(), user.to_owned()),
                    (names.roles.clone(), roles.to_owned()),
                ];
                // The user's claims, each header present (empty when the
                // sign-in recorded none), for the same reason.
                let claims = who.map_or(&[][..], |w| w.claims);
                for (header, claim) in &names.claims {
                    let v = claims.iter().find(|(k, _)| **k == **claim).map(|(_, v)| v);
                    h.push((header.clone(), v.map_or(String::new(), |v| v.to_string())));
                }
                h
            } else {
                Vec::new()
            };
            Answer {
                status: StatusCode::OK,
                headers,
                decision: "allow",
            }
        }
        d @ (Decision::Unauthenticated | Decision::StepUp) if navigation => {
            let to = if d == Decision::StepUp {
                &redirects.factor
            } else {
                &redirects.login
            };
            let mut location = String::with_capacity(to.len() + original.path.len() + 16);
            location.push_str(to);
            redirect::encode_next(&mut location, &original.path, original.query);
            let status = match convention {
                Convention::Nginx => StatusCode::UNAUTHORIZED,
                Convention::Forward => StatusCode::FOUND,
            };
            Answer {
                status,
                headers: vec![(http::header::LOCATION, location)],
                decision: if d == Decision::StepUp {
                    "step_up"
                } else {
                    "login"
                },
            }
        }
        Decision::StepUp => bare(StatusCode::UNAUTHORIZED, "step_up"),
        Decision::Unauthenticated => bare(StatusCode::UNAUTHORIZED, "unauthenticated"),
        Decision::Forbidden => bare(StatusCode::FORBIDDEN, "forbidden"),
        // nginx knows only 401 and 403; the others can say 404.
        Decision::NotFound if convention == Convention::Nginx => {
            bare(StatusCode::FORBIDDEN, "not_found")
        }
        Decision::NotFound => bare(StatusCode::NOT_FOUND, "not_found"),
        Decision::Misdirected if convention == Convention::Nginx => {
            bare(StatusCode::FORBIDDEN, "misdirected")
        }
        Decision::Misdirected => bare(StatusCode::MISDIRECTED_REQUEST, "misdirected"),
    }
}

/// The answer to an original request whose `Authorization` proved no one:
/// `status` and `headers` as sessiongate itself answers it (401 with the
/// challenge, 429, 503). nginx's `auth_request` knows only 401 and 403 (it
/// turns anything else into a 500): a throttled client gets 403 there.
pub(crate) fn credential_refused(
    convention: Convention,
    status: u16,
    headers: Vec<(HeaderName, String)>,
) -> Answer {
    let status = match (convention, status) {
        (Convention::Nginx, 429) => StatusCode::FORBIDDEN,
        (_, s) => StatusCode::from_u16(s).unwrap_or(StatusCode::FORBIDDEN),
    };
    Answer {
        status,
        headers,
        decision: "credential_refused",
    }
}

/// The deny for a request whose original could not be taken.
pub(crate) fn refused(why: Refusal) -> Answer {
    Answer {
        status: StatusCode::FORBIDDEN,
        headers: Vec::new(),
        decision: match why {
            Refusal::Untrusted => "untrusted_peer",
            Refusal::Malformed => "malformed_original",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/.sessiongate/auth/nginx", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_a_trusted_peer_names_the_original_request() {
        let r = req(&[("X-Original-Method", "GET"), ("X-Original-URI", "/public")]);
        assert_eq!(
            original(Convention::Nginx, &r, false, false),
            Err(Refusal::Untrusted)
        );
        let o = original(Convention::Nginx, &r, true, false).unwrap();
        assert_eq!((o.method, o.path.as_ref()), (Method::GET, "/public"));
        // The other convention's headers are not read.
        assert_eq!(
            original(Convention::Forward, &r, true, false),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn the_original_host_is_the_front_proxys_canonicalised() {
        let base = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/x")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut h = base.to_vec();
            h.extend_from_slice(extra);
            req(&h)
        };
        let host = |r: &RequestHeader| {
            original(Convention::Forward, r, true, true).map(|o| o.host.map(|h| h.into_owned()))
        };
        let r = with(&[("X-Forwarded-Host", "App.Example.COM.:443")]);
        assert_eq!(host(&r), Ok(Some("app.example.com".to_owned())));
        // The nearest proxy's, last in a chain.
        let r = with(&[("X-Forwarded-Host", "evil.test, app.example.com")]);
        assert_eq!(host(&r), Ok(Some("app.example.com".to_owned())));
        // Else the request's own Host.
        let r = with(&[("Host", "Grafana.example.com")]);
        assert_eq!(host(&r), Ok(Some("grafana.example.com".to_owned())));
        for bad in [
            with(&[("X-Forwarded-Host", "a b")]),
            with(&[
                ("X-Forwarded-Host", "a.test"),
                ("X-Forwarded-Host", "b.test"),
            ]),
        ] {
            assert_eq!(host(&bad), Err(Refusal::Malformed));
        }
    }

    #[test]
    fn the_original_path_is_normalised_like_our_own() {
        let r = req(&[
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/public/..//admin/./x?a=1"),
        ]);
        let o = original(Convention::Forward, &r, true, false).unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.path, "/admin/x");
        assert_eq!(o.query, Some("a=1"));
        // Above the root stays at the root, as for our own requests.
        let r = req(&[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/../../admin"),
        ]);
        assert_eq!(
            original(Convention::Forward, &r, true, false).unwrap().path,
            "/admin"
        );
    }

    #[test]
    fn malformed_originals_are_refused() {
        for (method, uri) in [
            ("GET", "public"),
            ("GET", "http://evil/admin"),
            ("GET", "/a#frag"),
            ("G ET", "/a"),
        ] {
            let r = req(&[("X-Original-Method", method), ("X-Original-URI", uri)]);
            assert_eq!(
                original(Convention::Nginx, &r, true, false),
                Err(Refusal::Malformed),
                "{method} {uri}"
            );
        }
        let twice = req(&[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/public"),
            ("X-Original-URI", "/admin"),
        ]);
        assert_eq!(
            original(Convention::Nginx, &twice, true, false),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            original(Convention::Nginx, &req(&[]), true, false),
            Err(Refusal::Malformed)
        );
    }
}
