//! `[auth]`: the endpoints' prefix, the login and logout paths (same-origin
//! only), the users file (loaded now, so a bad one is a config problem) and
//! the login throttles.
//!
//! The `[[auth.oidc]]` providers are checked in [`oidc`](super::oidc), the
//! `[[auth.jwt]]` issuers in [`jwt`](super::jwt); the
//! identity header names are copied in by `config` from `[identity]`.

use std::path::Path;

use super::Validator;
use crate::auth::AuthOptions;
use crate::config::raw::RawAuth;
use crate::http::headers::IdentityNames;
use crate::proxy::path;

impl Validator {
    pub(super) fn auth(&mut self, raw: RawAuth, base: &Path) -> Option<AuthOptions> {
        let prefix_ok = raw.prefix.len() > 1
            && !raw.prefix.ends_with('/')
            && path::normalize(&raw.prefix).is_ok_and(|n| n == raw.prefix.as_str());
        if !prefix_ok {
            self.problem(
                "auth.prefix",
                format!("must be a normalised path like \"/.sessiongate\" without a trailing '/' (got {:?})", raw.prefix),
            );
        }
        let login_url = raw
            .login_url
            .unwrap_or_else(|| format!("{}/login", raw.prefix));
        // Only same-origin paths: never an absolute URL we could be tricked into.
        let mut paths_ok = true;
        for (key, url) in [
            ("auth.login_url", &login_url),
            ("auth.logout_redirect", &raw.logout_redirect),
        ] {
            if !is_plain_local_path(url) {
                self.problem(
                    key,
                    format!("must be a same-origin path without query (got {url:?})"),
                );
                paths_ok = false;
            }
        }
        if raw.max_failures == 0 {
            self.problem("auth.max_failures", "must be at least 1 (got 0)");
        }
        if raw.ip_max_failures == 0 {
            self.problem("auth.ip_max_failures", "must be at least 1 (got 0)");
        }
        if raw.max_concurrent_hashes == 0 {
            self.problem("auth.max_concurrent_hashes", "must be at least 1 (got 0)");
        }
        let failure_window = self.duration("auth.failure_window", &raw.failure_window);
        let oidc = self.oidc(raw.oidc, &raw.prefix, base);
        let jwt = self.jwt(raw.jwt);
        let second_factor = match raw.second_factor {
            Some(f) => {
                if raw.users_file.is_none() {
                    self.problem(
                        "auth.second_factor",
                        "needs auth.users_file (it is the built-in login's second factor; providers have their own: second_factor_amr)",
                    );
                }
                Some(self.second_factor(f, base))
            }
            None => None,
        };
        let cross_domain = raw.cross_domain.and_then(|c| {
            match crate::proxy::host::canonical(&c.login_host, true) {
                Ok(h) if h.port.is_none() && h.name == c.login_host.as_str() => {
                    Some(crate::auth::hop::CrossDomain {
                        login_host: c.login_host,
                    })
                }
                _ => {
                    self.problem(
                        "auth.cross_domain.login_host",
                        format!("must be a host name in canonical form, lower case without port, like \"login.example.com\" (got {:?})", c.login_host),
                    );
                    None
                }
            }
        });
        let ldap = raw.ldap.map(|l| self.ldap(l, base));
        let users_file = raw.users_file.map(|f| base.join(f));
        self.files.extend(users_file.clone());
        if let Some(path) = &users_file {
            if let Err(e) = crate::auth::users::Users::load(path) {
                self.problem("auth.users_file", e);
            }
        }
        (prefix_ok && paths_ok).then_some(AuthOptions {
            // `[import]` is its own table; `config` puts it here.
            import: None,
            prefix: raw.prefix,
            login_url,
            users_file,
            logout_redirect: raw.logout_redirect,
            max_failures: raw.max_failures,
            ip_max_failures: raw.ip_max_failures,
            failure_window: failure_window?,
            max_concurrent_hashes: raw.max_concurrent_hashes,
            oidc: oidc?,
            jwt: jwt?,
            second_factor: match second_factor {
                Some(f) => Some(f?),
                None => None,
            },
            // Set by `config` from `[identity]`.
            identity: IdentityNames::default(),
            // Set by `config` from the rule table.
            sites: crate::http::redirect::Sites::default(),
            cross_domain,
            ldap: match ldap {
                Some(l) => Some(l?),
                None => None,
            },
        })
    }
}

/// A path on this origin: starts with one `/`, no backslash, query, fragment,
/// space or control character.
fn is_plain_local_path(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && !url.contains(['\\', '?', '#'])
        && !url.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{
        assert_refused, assert_refused_in, minimal, valid, valid_in, Scratch,
    };
    use super::*;

    #[test]
    fn unsafe_auth_settings_are_refused() {
        let cases = [
            (
                minimal("[auth]\nlogin_url = \"https://evil.example/login\"\n"),
                "auth.login_url: must be a same-origin path",
            ),
            (
                minimal("[auth]\nlogin_url = \"//evil.example/login\"\n"),
                "auth.login_url: must be a same-origin path",
            ),
            (
                minimal("[auth]\nlogout_redirect = \"/\\\\evil\"\n"),
                "auth.logout_redirect: must be a same-origin path",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }

    /// The minimal config with `lines` in `[auth]`.
    fn auth(lines: &str) -> String {
        minimal(&format!("[auth]\n{lines}\n"))
    }

    #[test]
    fn auth_defaults_apply_when_unset() {
        let a = valid(&minimal("")).auth;
        assert_eq!(a.prefix, "/.sessiongate");
        assert_eq!(a.login_url, "/.sessiongate/login");
        assert_eq!(a.users_file, None);
        assert_eq!(a.logout_redirect, "/");
        assert_eq!((a.max_failures, a.ip_max_failures), (5, 50));
        assert_eq!(a.failure_window, Duration::from_secs(15 * 60));
        assert_eq!(a.max_concurrent_hashes, 4);
        assert!(a.oidc.is_empty());
        // The login page follows the prefix unless it is set.
        assert_eq!(
            valid(&auth("prefix = \"/sso\"")).auth.login_url,
            "/sso/login"
        );
    }

    #[test]
    fn each_auth_refusal_names_its_key_and_value() {
        let prefix = |p: &str| {
            format!("auth.prefix: must be a normalised path like \"/.sessiongate\" without a trailing '/' (got {p:?})")
        };
        let local = |key: &str, url: &str| {
            format!("{key}: must be a same-origin path without query (got {url:?})")
        };
        let cases = [
            (auth("prefix = \"/\""), prefix("/")),
            (auth("prefix = \"/sso/\""), prefix("/sso/")),
            (auth("prefix = \"sso\""), prefix("sso")),
            (auth("prefix = \"/a//b\""), prefix("/a//b")),
            (auth("prefix = \"/a/../b\""), prefix("/a/../b")),
            (
                auth("login_url = \"/login?next=/\""),
                local("auth.login_url", "/login?next=/"),
            ),
            (
                auth("login_url = \"/login#top\""),
                local("auth.login_url", "/login#top"),
            ),
            (
                auth("login_url = \"/log in\""),
                local("auth.login_url", "/log in"),
            ),
            (
                auth("login_url = \"login\""),
                local("auth.login_url", "login"),
            ),
            (
                auth("logout_redirect = \"https://evil.example/\""),
                local("auth.logout_redirect", "https://evil.example/"),
            ),
            (
                auth("logout_redirect = \"//evil.example\""),
                local("auth.logout_redirect", "//evil.example"),
            ),
            (
                auth("max_failures = 0"),
                "auth.max_failures: must be at least 1 (got 0)".to_owned(),
            ),
            (
                auth("ip_max_failures = 0"),
                "auth.ip_max_failures: must be at least 1 (got 0)".to_owned(),
            ),
            (
                auth("max_concurrent_hashes = 0"),
                "auth.max_concurrent_hashes: must be at least 1 (got 0)".to_owned(),
            ),
            (
                auth("failure_window = \"0s\""),
                "auth.failure_window: must be greater than zero (got \"0s\")".to_owned(),
            ),
            (
                auth("users_file = \"absent-users.toml\""),
                "auth.users_file: cannot read ./absent-users.toml: ".to_owned(),
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, &want);
        }
    }

    #[test]
    fn the_users_file_is_loaded_and_watched() {
        let dir = Scratch::new();
        let hash = format!("$2b$12${}", "a".repeat(53));
        let users = dir.write(
            "users.toml",
            format!("[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"),
        );
        let c = valid_in(&auth("users_file = \"users.toml\""), dir.path());
        assert_eq!(c.auth.users_file.as_ref(), Some(&users));
        assert_eq!(c.files, [users]);
        dir.write(
            "bad.toml",
            "[[user]]\nname = \"alice\"\npassword_hash = \"plain\"\n",
        );
        assert_refused_in(
            &auth("users_file = \"bad.toml\""),
            dir.path(),
            &format!(
                "auth.users_file: {}: user[0].password_hash: ",
                dir.path().join("bad.toml").display()
            ),
        );
    }

    #[test]
    fn local_paths_have_one_slash_and_no_query() {
        for (url, ok) in [
            ("/", true),
            ("/login", true),
            ("/a/b.html", true),
            ("", false),
            ("login", false),
            ("//evil.example", false),
            ("/\\evil.example", false),
            ("/login?x", false),
            ("/login#x", false),
            ("/a b", false),
            ("/a\tb", false),
            ("https://evil.example/", false),
        ] {
            assert_eq!(is_plain_local_path(url), ok, "{url:?}");
        }
    }
}
