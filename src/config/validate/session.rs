//! `[session]` and `[session.cookie]`: the signing secrets, the timeouts, the
//! store capacities, and the cookie's attributes, refusing the combinations
//! browsers drop (`__Host-` without `Secure`, `SameSite=None` without `Secure`).
//!
//! Loading one secret is shared with other areas and lives in the parent
//! module; this file owns the `session.secrets` list.

use std::path::Path;
use std::time::Duration;

use super::Validator;
use crate::config::raw::{RawCookie, RawSecret, RawSecure, RawSession};
use crate::session::cookie::{CookieAttrs, SameSite, Secure};
use crate::session::manager::SessionOptions;
use crate::session::signing::Secret;

impl Validator {
    pub(super) fn session(&mut self, raw: RawSession, base: &Path) -> Option<SessionOptions> {
        let secrets = self.secrets(&raw.secrets, base);
        let absolute_timeout = self.duration("session.absolute_timeout", &raw.absolute_timeout);
        let c = raw.cookie;
        let max_age = c
            .max_age
            .as_deref()
            .and_then(|m| self.duration("session.cookie.max_age", m));
        // With max_age the cookie and the server expire together; without it the
        // cookie lives for the browser session and the server enforces idle_timeout.
        let idle_timeout = match max_age {
            Some(m) => Some(m),
            None => self.duration("session.idle_timeout", &raw.idle_timeout),
        };
        for (key, n) in [
            ("session.capacity", raw.capacity),
            ("session.anonymous_capacity", raw.anonymous_capacity),
            ("session.max_per_user", raw.max_per_user),
        ] {
            if n == 0 {
                self.problem(key, "must be at least 1 (got 0)");
            }
        }
        let cookie = self.cookie(c, max_age);
        let (idle_timeout, absolute_timeout) = (idle_timeout?, absolute_timeout?);
        if idle_timeout > absolute_timeout {
            self.problem(
                "session.absolute_timeout",
                format!(
                    "must not be shorter than the idle timeout ({} < {})",
                    humantime::format_duration(absolute_timeout),
                    humantime::format_duration(idle_timeout)
                ),
            );
        }
        Some(SessionOptions {
            secrets: secrets?,
            save_uninitialized: raw.save_uninitialized,
            resave: raw.resave,
            rolling: raw.rolling,
            idle_timeout,
            absolute_timeout,
            capacity: raw.capacity,
            anonymous_capacity: raw.anonymous_capacity,
            max_per_user: usize::try_from(raw.max_per_user).unwrap_or(usize::MAX),
            cookie: cookie?,
        })
    }

    /// `[session.cookie]`: the attributes, and the combinations browsers refuse.
    fn cookie(&mut self, c: RawCookie, max_age: Option<Duration>) -> Option<CookieAttrs> {
        let same_site = match c.same_site.to_ascii_lowercase().as_str() {
            "strict" => Some(SameSite::Strict),
            "lax" => Some(SameSite::Lax),
            "none" => Some(SameSite::None),
            other => {
                self.problem(
                    "session.cookie.same_site",
                    format!("must be strict, lax or none (got {other:?})"),
                );
                None
            }
        };
        let secure = match &c.secure {
            RawSecure::Bool(true) => Some(Secure::Always),
            RawSecure::Bool(false) => Some(Secure::Never),
            RawSecure::Word(w) if w == "auto" => Some(Secure::Auto),
            RawSecure::Word(w) => {
                self.problem(
                    "session.cookie.secure",
                    format!("must be true, false or \"auto\" (got {w:?})"),
                );
                None
            }
        };
        let always_secure = secure == Some(Secure::Always);
        // "auto" sets Secure on every name with a __Host-/__Secure- prefix
        // (see `Secure::Auto`), so those names accept it.
        let prefix_secure = always_secure || secure == Some(Secure::Auto);
        if !is_cookie_token(&c.name) {
            self.problem(
                "session.cookie.name",
                format!("must be a non-empty cookie token (got {:?})", c.name),
            );
        }
        if !c.path.starts_with('/') || c.path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            self.problem(
                "session.cookie.path",
                format!("must start with '/' and contain no ';' (got {:?})", c.path),
            );
        }
        if let Some(d) = &c.domain {
            if d.is_empty()
                || d.bytes()
                    .any(|b| b == b';' || b.is_ascii_whitespace() || b.is_ascii_control())
            {
                self.problem("session.cookie.domain", format!("not a domain (got {d:?})"));
            }
        }
        if same_site == Some(SameSite::None) && !always_secure {
            // Browsers drop SameSite=None cookies that are not Secure.
            self.problem(
                "session.cookie.same_site",
                "none requires session.cookie.secure = true",
            );
        }
        if c.name.starts_with("__Host-") && (!prefix_secure || c.path != "/" || c.domain.is_some())
        {
            // RFC 6265bis §4.1.3.2: browsers reject such a cookie outright.
            self.problem(
                "session.cookie.name",
                "a __Host- cookie requires secure = true or \"auto\", path = \"/\" and no domain",
            );
        }
        if c.name.starts_with("__Secure-") && !prefix_secure {
            self.problem(
                "session.cookie.name",
                "a __Secure- cookie requires secure = true or \"auto\"",
            );
        }
        Some(CookieAttrs {
            name: c.name,
            path: c.path,
            domain: c.domain,
            http_only: c.http_only,
            secure: secure?,
            same_site: same_site?,
            max_age,
        })
    }

    fn secrets(&mut self, raw: &[RawSecret], base: &Path) -> Option<Vec<Secret>> {
        if raw.is_empty() {
            self.problem(
                "session.secrets",
                "at least one secret is required, e.g. secrets = [{ env = \"SESSIONGATE_SECRET\" }]",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            if let Some(secret) = self.secret(&format!("session.secrets[{i}]"), s, base) {
                out.push(secret);
            }
        }
        (out.len() == raw.len()).then_some(out)
    }
}

/// RFC 6265 §4.1.1 cookie-name: an RFC 9110 token.
fn is_cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{assert_refused, minimal, minimal_with, valid, SECRET_VAR};
    use super::*;

    #[test]
    fn unsafe_session_settings_are_refused() {
        let cases = [
            (
                minimal("").replace(&format!("secrets = [{{ env = \"{SECRET_VAR}\" }}]"), ""),
                "session.secrets: at least one secret",
            ),
            (
                minimal("[session.cookie]\nsecure = false\n"),
                "session.cookie.name: a __Host- cookie requires",
            ),
            (
                minimal("[session.cookie]\nname = \"sid\"\nsecure = false\nsame_site = \"none\"\n"),
                "session.cookie.same_site: none requires",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }

    /// The minimal config with `lines` in `[session.cookie]`.
    fn cookie(lines: &str) -> String {
        minimal(&format!("[session.cookie]\n{lines}\n"))
    }

    #[test]
    fn session_defaults_apply_when_unset() {
        let s = valid(&minimal("")).session;
        assert_eq!(s.secrets.len(), 1);
        assert_eq!(s.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(s.absolute_timeout, Duration::from_secs(12 * 3600));
        assert_eq!(s.capacity, 1_000_000);
        assert_eq!(s.anonymous_capacity, 100_000);
        assert_eq!(s.max_per_user, 10);
        assert!(!s.save_uninitialized && !s.resave && !s.rolling);
        let c = s.cookie;
        assert_eq!((c.name.as_str(), c.path.as_str()), ("__Host-sid", "/"));
        assert_eq!(c.domain, None);
        assert!(c.http_only);
        assert_eq!(c.secure, Secure::Always);
        assert_eq!(c.same_site, SameSite::Lax);
        assert_eq!(c.max_age, None);
    }

    #[test]
    fn each_session_refusal_names_its_key_and_value() {
        let cases = [
            (
                minimal_with("[session]", "idle_timeout = \"2h\"\nabsolute_timeout = \"1h\""),
                "session.absolute_timeout: must not be shorter than the idle timeout (1h < 2h)",
            ),
            (
                // With max_age, the cookie's lifetime is the idle timeout.
                cookie("max_age = \"13h\""),
                "session.absolute_timeout: must not be shorter than the idle timeout (12h < 13h)",
            ),
            (
                minimal_with("[session]", "absolute_timeout = \"0s\""),
                "session.absolute_timeout: must be greater than zero (got \"0s\")",
            ),
            (
                cookie("max_age = \"0s\""),
                "session.cookie.max_age: must be greater than zero (got \"0s\")",
            ),
            (
                minimal_with("[session]", "capacity = 0"),
                "session.capacity: must be at least 1 (got 0)",
            ),
            (
                minimal_with("[session]", "anonymous_capacity = 0"),
                "session.anonymous_capacity: must be at least 1 (got 0)",
            ),
            (
                minimal_with("[session]", "max_per_user = 0"),
                "session.max_per_user: must be at least 1 (got 0)",
            ),
            (
                // The value is quoted as compared: lower case.
                cookie("same_site = \"Sometimes\""),
                "session.cookie.same_site: must be strict, lax or none (got \"sometimes\")",
            ),
            (
                cookie("secure = \"maybe\""),
                "session.cookie.secure: must be true, false or \"auto\" (got \"maybe\")",
            ),
            (
                cookie("name = \"\""),
                "session.cookie.name: must be a non-empty cookie token (got \"\")",
            ),
            (
                cookie("name = \"s id\""),
                "session.cookie.name: must be a non-empty cookie token (got \"s id\")",
            ),
            (
                cookie("name = \"sid\"\npath = \"app\""),
                "session.cookie.path: must start with '/' and contain no ';' (got \"app\")",
            ),
            (
                cookie("name = \"sid\"\npath = \"/a;b\""),
                "session.cookie.path: must start with '/' and contain no ';' (got \"/a;b\")",
            ),
            (
                cookie("name = \"sid\"\ndomain = \"\""),
                "session.cookie.domain: not a domain (got \"\")",
            ),
            (
                cookie("name = \"sid\"\ndomain = \"a.example; b\""),
                "session.cookie.domain: not a domain (got \"a.example; b\")",
            ),
            (
                // "auto" may leave Secure off; browsers drop SameSite=None without it.
                cookie("name = \"sid\"\nsecure = \"auto\"\nsame_site = \"none\""),
                "session.cookie.same_site: none requires session.cookie.secure = true",
            ),
            (
                cookie("path = \"/app\""),
                "session.cookie.name: a __Host- cookie requires secure = true or \"auto\", path = \"/\" and no domain",
            ),
            (
                cookie("domain = \"example.com\""),
                "session.cookie.name: a __Host- cookie requires secure = true or \"auto\", path = \"/\" and no domain",
            ),
            (
                cookie("name = \"__Secure-sid\"\nsecure = false"),
                "session.cookie.name: a __Secure- cookie requires secure = true or \"auto\"",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }

    #[test]
    fn safe_cookie_settings_are_taken_as_written() {
        let c = valid(&cookie("secure = \"auto\"")).session.cookie;
        assert_eq!(c.secure, Secure::Auto);
        let c = valid(&cookie(
            "name = \"sid\"\nsecure = false\nsame_site = \"Strict\"\nhttp_only = false",
        ))
        .session
        .cookie;
        assert_eq!(
            (c.secure, c.same_site, c.http_only),
            (Secure::Never, SameSite::Strict, false)
        );
        let c = valid(&cookie("same_site = \"none\"")).session.cookie;
        assert_eq!(c.same_site, SameSite::None);
        let c = valid(&cookie(
            "name = \"__Secure-sid\"\npath = \"/app\"\ndomain = \"example.com\"",
        ))
        .session
        .cookie;
        assert_eq!(
            (c.path.as_str(), c.domain.as_deref()),
            ("/app", Some("example.com"))
        );
        let s = valid(&cookie("max_age = \"1h\"")).session;
        assert_eq!(s.cookie.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(s.idle_timeout, Duration::from_secs(3600));
        let s = valid(&minimal_with(
            "[session]",
            "max_per_user = 3\nsave_uninitialized = true\nresave = true\nrolling = true",
        ))
        .session;
        assert_eq!(s.max_per_user, 3);
        assert!(s.save_uninitialized && s.resave && s.rolling);
    }

    #[test]
    fn cookie_names_are_rfc_9110_tokens() {
        for (name, ok) in [
            ("sid", true),
            ("__Host-sid", true),
            ("a!#$%&'*+-.^_`|~9", true),
            ("", false),
            ("s id", false),
            ("s;id", false),
            ("s=id", false),
            ("s,id", false),
            ("s\"id", false),
            ("sïd", false),
        ] {
            assert_eq!(is_cookie_token(name), ok, "{name:?}");
        }
    }
}
