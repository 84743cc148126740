//! Our cookie in HTTP headers: finding it in `Cookie`, removing it before a
//! request goes upstream, and the `Set-Cookie` strings that set and clear it.
//!
//! The value itself (`<id>.<sig>`) is [`super::signing`]'s; this module only
//! moves it in and out of headers.

use std::time::Duration;

use cookie::time;

/// Find the value of cookie `name` in a `Cookie` header value (RFC 6265 §5.4:
/// `name=value` pairs separated by `; `). Returns every match, in order, so the
/// caller can skip a tossed duplicate that does not verify.
///
/// Hand-written on purpose: it runs on every request, and on a five-cookie
/// header it takes 79 ns against 410 ns for the cookie crate's `split_parse`
/// (criterion `cookie/find_in_header`, one run). Rendering uses the crate.
pub fn find<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Remove every `name=…` pair from a `Cookie` header value; `None` when nothing
/// else is left. Other cookies pass through byte for byte.
pub(crate) fn strip(header: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(header.len());
    for pair in header.split(';') {
        let trimmed = pair.trim();
        let is_ours = trimmed.split_once('=').is_some_and(|(k, _)| k == name);
        if is_ours || trimmed.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(trimmed);
    }
    (!out.is_empty()).then_some(out)
}

/// The `SameSite` attribute (RFC 6265bis §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`: sent only on same-site requests.
    Strict,
    /// `SameSite=Lax`: also sent on top-level navigations from other sites.
    Lax,
    /// `SameSite=None`: sent on cross-site requests too (needs `Secure`).
    None,
}

impl SameSite {
    fn attribute(self) -> cookie::SameSite {
        match self {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        }
    }
}

/// When the cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    /// Always `Secure`.
    Always,
    /// Never `Secure` (plain-HTTP deployments; config refuses it for prefixed names).
    Never,
    /// When the request came over HTTPS: on a TLS listener, or through a
    /// trusted proxy that says so. A `__Host-`/`__Secure-` name is always
    /// Secure, since browsers refuse such a cookie without it.
    Auto,
}

/// Everything that goes into `Set-Cookie` besides the value.
#[derive(Debug, Clone)]
pub struct CookieAttrs {
    /// The cookie's name.
    pub name: String,
    /// `Path`.
    pub path: String,
    /// `Domain`; `None` for a host-only cookie.
    pub domain: Option<String>,
    /// `HttpOnly`: hidden from scripts.
    pub http_only: bool,
    /// When the cookie carries `Secure`.
    pub secure: Secure,
    /// `SameSite`.
    pub same_site: SameSite,
    /// `Max-Age` for a persistent cookie; `None` for a browser-session cookie.
    pub max_age: Option<Duration>,
}

impl CookieAttrs {
    /// A short-lived cookie of sessiongate's own beside this session cookie
    /// (the OIDC pre-login, a sign-in waiting for its second factor): the same
    /// `Secure` policy, `HttpOnly`, host-only, `Path=/` so that a `__Host-`
    /// name is allowed, and `Max-Age` of `lifetime`.
    pub(crate) fn beside(
        &self,
        name: &str,
        same_site: SameSite,
        lifetime: Duration,
    ) -> CookieAttrs {
        CookieAttrs {
            name: name.to_owned(),
            path: "/".to_owned(),
            domain: None,
            http_only: true,
            secure: match self.secure {
                Secure::Never if self.name.starts_with("__Host-") => Secure::Always,
                s => s,
            },
            same_site,
            max_age: Some(lifetime),
        }
    }

    /// `Set-Cookie` for a new or refreshed session cookie; `https` says whether
    /// the request came over HTTPS (it matters for [`Secure::Auto`]).
    pub fn set_cookie(&self, value: &str, https: bool) -> String {
        let mut c = self.build(value.to_owned(), https);
        if let Some(age) = self.max_age {
            let age = time::Duration::seconds(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
            c = c
                .max_age(age)
                .expires(time::OffsetDateTime::now_utc().saturating_add(age));
        }
        c.to_string()
    }

    /// `Set-Cookie` that makes the browser forget the cookie: same name, path,
    /// domain, secure and samesite as when it was set, or the browser keeps it.
    pub fn clear_cookie(&self, https: bool) -> String {
        self.build(String::new(), https)
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .to_string()
    }

    /// The attributes both cookies share. The value is ours (`<id>.<sig>`,
    /// [`super::signing`]): the `cookie` crate only renders it.
    fn build(&self, value: String, https: bool) -> cookie::CookieBuilder<'static> {
        let secure = match self.secure {
            Secure::Always => true,
            Secure::Never => false,
            Secure::Auto => {
                https || self.name.starts_with("__Host-") || self.name.starts_with("__Secure-")
            }
        };
        let mut c = cookie::Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .http_only(self.http_only)
            .secure(secure)
            .same_site(self.same_site.attribute());
        if let Some(domain) = &self.domain {
            c = c.domain(domain.clone());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_strip_cookie_pairs() {
        let h = "a=1; sid=xyz;b=2 ; sid=second";
        assert_eq!(find(h, "sid").collect::<Vec<_>>(), vec!["xyz", "second"]);
        assert_eq!(find(h, "si").count(), 0);
        assert_eq!(strip(h, "sid").as_deref(), Some("a=1; b=2"));
        assert_eq!(strip("sid=1", "sid"), None);
        assert_eq!(
            strip("xsid=1; sidx=2", "sid").as_deref(),
            Some("xsid=1; sidx=2")
        );
    }

    #[test]
    fn set_and_clear_cookie_carry_the_same_scope() {
        let attrs = CookieAttrs {
            name: "sid".into(),
            path: "/app".into(),
            domain: Some("example.com".into()),
            http_only: true,
            secure: Secure::Always,
            same_site: SameSite::Strict,
            max_age: Some(Duration::from_secs(60)),
        };
        let set = attrs.set_cookie("v", false);
        let scope = "; HttpOnly; SameSite=Strict; Secure; Path=/app; Domain=example.com";
        assert!(
            set.starts_with(&format!("sid=v{scope}; Max-Age=60; Expires=")),
            "{set}"
        );
        assert!(set.ends_with(" GMT"), "{set}");
        let clear = attrs.clear_cookie(false);
        assert_eq!(
            clear,
            format!("sid={scope}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        );
        let session_cookie = CookieAttrs {
            max_age: None,
            ..attrs.clone()
        }
        .set_cookie("v", false);
        assert!(!session_cookie.contains("Max-Age") && !session_cookie.contains("Expires"));
        let auto = CookieAttrs {
            secure: Secure::Auto,
            ..attrs
        };
        assert!(auto.set_cookie("v", true).contains("; Secure"));
        assert!(!auto.set_cookie("v", false).contains("; Secure"));
        assert!(!auto.clear_cookie(false).contains("; Secure"));
        let host = CookieAttrs {
            name: "__Host-sid".to_owned(),
            domain: None,
            ..auto
        };
        assert!(host.set_cookie("v", false).contains("; Secure"));
        assert!(host.clear_cookie(false).contains("; Secure"));
    }
}
