//! Identity headers: the ones sessiongate vouches for, and how client copies
//! of them are removed.
//!
//! The backend trusts `X-User` only because nothing but the proxy can set it. So
//! on every request, public routes included, every client header that a backend
//! framework might read as one of ours is removed: any letter case, and with `_`
//! for `-` (CGI-style servers map both to `HTTP_X_USER`). pingora 0.9 already drops
//! headers a client names in `Connection:` before our filter runs, and ours are
//! inserted after that, so `Connection: X-User` cannot remove them.
//!
//! The session cookie is removed from what goes upstream as well. The backend's
//! answers (`X-Session-*`) are [`super::commands`]'.

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use super::credentials::Credential;
use super::{Ctx, Proxy};
use crate::http::headers::IdentityNames;
use crate::session::cookie;
use crate::session::SessionStore;

/// Compare a header name to a lower-case, `-`-separated name, treating `_` as `-`.
pub(super) fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

pub(super) fn starts_with_name(name: &[u8], canonical_prefix: &[u8]) -> bool {
    name.len() >= canonical_prefix.len()
        && same_name(&name[..canonical_prefix.len()], canonical_prefix)
}

/// Whether a client may not send this header: one the proxy sets (or a
/// spelling a backend may read as one), any other `X-Forwarded-*` or
/// `Forwarded` (RFC 7239), which the proxy does not vouch for, or a header that
/// frameworks use to override the client address, the path or the method.
pub(crate) fn is_reserved(name: &[u8]) -> bool {
    const EXACT: [&[u8]; 12] = [
        b"x-user",
        b"x-user-roles",
        b"x-user-assertion",
        b"forwarded",
        // Client addresses some frameworks believe.
        b"x-real-ip",
        b"true-client-ip",
        b"x-client-ip",
        // Path overrides (IIS, older Symfony): they would bypass the rules.
        b"x-original-url",
        b"x-rewrite-url",
        // Method overrides (Express method-override and friends): they would
        // turn an allowed method into one the rules never saw.
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
    ];
    EXACT.iter().any(|c| same_name(name, c))
        || starts_with_name(name, b"x-session-")
        // Every X-User-* (Email, Name, and any claim header to come).
        || starts_with_name(name, b"x-user-")
        // Every X-Forwarded-* (User, Email, Prefix, Port, ...): only the proxy
        // sets the three it vouches for.
        || starts_with_name(name, b"x-forwarded-")
}

/// Remove every reserved header a client sent, and the configured identity
/// names in every spelling. Allocates only when there is one.
pub(crate) fn strip_client_identity(req: &mut RequestHeader, names: &IdentityNames) {
    let configured = |n: &[u8]| {
        same_name(n, names.user.as_str().as_bytes())
            || same_name(n, names.roles.as_str().as_bytes())
            || names
                .claims
                .iter()
                .any(|(h, _)| same_name(n, h.as_str().as_bytes()))
    };
    let spoofed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| is_reserved(n.as_str().as_bytes()) || configured(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

/// Remove a cookie of ours (the session cookie, the OIDC pre-login cookie) from
/// the `Cookie` header(s) sent upstream, leaving every other cookie as it was.
/// Several `Cookie` headers (HTTP/2) are joined into one, as RFC 6265 §5.4
/// requires for HTTP/1.1 (pingora does not join them: pingora#892, PR #901
/// open; without a cookie of ours they still go upstream as they came).
///
/// # Errors
/// Only if the rebuilt header is not a valid header value, which cannot happen
/// for input that was one.
pub(crate) fn strip_session_cookie(req: &mut RequestHeader, name: &str) -> pingora::Result<()> {
    let ours = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|v| cookie::find(v, name).next().is_some())
    };
    let cookies = req.headers.get_all(header::COOKIE);
    if !cookies.iter().any(ours) {
        return Ok(());
    }
    let mut kept = String::new();
    for v in cookies {
        let Ok(v) = v.to_str() else { continue };
        if let Some(rest) = cookie::strip(v, name) {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(&rest);
        }
    }
    req.remove_header(&header::COOKIE);
    if !kept.is_empty() {
        req.insert_header(header::COOKIE, kept)?;
    }
    Ok(())
}

/// Hand the upstream the session's identity under the configured names,
/// replacing whatever is there (the client's copies are already stripped).
///
/// # Errors
/// Only if a value is not a valid header value; user names and roles are
/// in the identity alphabet, which is.
pub(crate) fn set_identity(
    req: &mut RequestHeader,
    names: &IdentityNames,
    user: &str,
    roles: &str,
) -> pingora::Result<()> {
    req.insert_header(names.user.clone(), user)?;
    req.insert_header(names.roles.clone(), roles)?;
    Ok(())
}

impl<S: SessionStore> Proxy<S> {
    /// Remove what is ours from a request bound upstream: the client's
    /// identity headers in every spelling, the session cookie, and the
    /// cookies of our own flows (the OIDC pre-login, a pending second
    /// factor, a passkey ceremony): a pending sign-in in a backend's log is
    /// half a login.
    pub(super) fn strip_ours(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        strip_client_identity(req, &self.config.identity);
        let cookie = &self.sessions.config().cookie;
        strip_session_cookie(req, &cookie.name)?;
        for name in &self.own_cookies {
            strip_session_cookie(req, name)?;
        }
        // The Express app's cookie, unless it still reads its sessions.
        if let Some(import) = self.auth.import.as_deref() {
            if !import.options.forward_cookie {
                strip_session_cookie(req, &import.options.cookie)?;
            }
        }
        Ok(())
    }

    /// Hand the upstream the identity of the request's credential: for a
    /// session, its identity, its signed assertion (when the upstream has an
    /// audience) and its data (when it opted in); for Basic, the identity
    /// headers. The client's `Authorization` goes only to an upstream that
    /// asked for it (`pass_authorization`): it is a credential for us.
    pub(super) fn hand_over_identity(
        &self,
        req: &mut RequestHeader,
        ctx: &Ctx,
    ) -> pingora::Result<()> {
        let Some(upstream) = ctx.upstream() else {
            return Ok(());
        };
        let up = &self.upstreams[upstream].config;
        if !up.pass_authorization {
            req.remove_header(&header::AUTHORIZATION);
        }
        match &ctx.credential {
            Credential::Basic(u) => {
                return set_identity(req, &self.config.identity, &u.user, &u.roles);
            }
            Credential::Bearer(u) | Credential::ApiKey(u) => {
                return set_identity(req, &self.config.identity, &u.user, &u.roles);
            }
            // A session on a route that does not take sessions hands nothing over.
            Credential::None | Credential::Session if !ctx.accepts.session => return Ok(()),
            Credential::None | Credential::Session => {}
        }
        let Some(s) = ctx.cur.session.as_deref() else {
            return Ok(());
        };
        if let Some(user) = s.user() {
            set_identity(req, &self.config.identity, user, s.roles_header())?;
            // The user's claims the sign-in recorded (identity alphabet: valid values).
            for (header, claim) in &self.config.identity.claims {
                if let Some(v) = s.claim(claim) {
                    req.insert_header(header.clone(), v)?;
                }
            }
        }
        let signer = self.config.assertions.as_deref();
        if let (Some(signer), Some(audience)) = (signer, up.assertion_audience.as_deref()) {
            if let Some(token) = signer.of(s, upstream, audience) {
                req.insert_header(super::assertion::X_USER_ASSERTION, token)?;
            }
        }
        // Session data is the opted-in application's, not every upstream's.
        if let Some(data) = s.data_header().filter(|_| up.session_commands) {
            req.insert_header(crate::http::headers::X_SESSION_DATA, data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_replaces_every_client_copy() {
        let names = IdentityNames::default();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-User", "mallory").unwrap();
        req.append_header("x_user", "mallory").unwrap();
        req.append_header("X-User-Roles", "admin").unwrap();
        strip_client_identity(&mut req, &names);
        set_identity(&mut req, &names, "alice", "user,staff").unwrap();
        let all = |n: &str| -> Vec<&str> {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("x-user"), ["alice"]);
        assert_eq!(all("x-user-roles"), ["user,staff"]);
        assert!(req.headers.get("x_user").is_none());
    }

    #[test]
    fn reserved_names_in_every_spelling() {
        for name in [
            "x-user",
            "X-User",
            "X_USER",
            "x_user",
            "X-USER-ROLES",
            "x_user_roles",
            "x-session-data",
            "X_Session_Login",
            "x-session-anything",
            "x-forwarded-for",
            "X_Forwarded_Host",
            "forwarded",
            "X-Forwarded-User",
            "x-forwarded-prefix",
            "X-Real-IP",
            "x_original_url",
            "X-HTTP-Method-Override",
            "x-user-role",
            "X-User-Email",
            "x_user_name",
            "x-user-anything",
        ] {
            assert!(is_reserved(name.as_bytes()), "{name}");
        }
        for name in ["x-users", "x-sessions", "user", "x-forwarded", "accept"] {
            assert!(!is_reserved(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn client_identity_headers_are_stripped() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("X-User", "root"),
            ("x_user", "root"),
            ("X-Session-Data", "{}"),
            ("Accept", "*/*"),
        ] {
            req.append_header(k.to_string(), v).unwrap();
        }
        strip_client_identity(&mut req, &IdentityNames::default());
        let names: Vec<_> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn session_cookie_is_removed_other_cookies_kept() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Cookie", "a=1; sid=x").unwrap();
        req.append_header("Cookie", "b=2").unwrap();
        strip_session_cookie(&mut req, "sid").unwrap();
        let got: Vec<_> = req
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, vec!["a=1; b=2"]);

        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Cookie", "sid=x").unwrap();
        strip_session_cookie(&mut req, "sid").unwrap();
        assert!(req.headers.get("cookie").is_none());
    }
}
