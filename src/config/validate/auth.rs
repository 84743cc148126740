//! `[auth]`: the endpoints' prefix, the login and logout paths (same-origin
//! only), the users file (loaded now, so a bad one is a config problem) and
//! the login throttles.
//!
//! The `[[auth.oidc]]` providers are checked in [`oidc`](super::oidc); the
//! identity header names are copied in by `config` from `[identity]`.

use std::path::Path;

use super::Validator;
use crate::auth::endpoints::AuthOptions;
use crate::config::raw::RawAuth;
use crate::http::headers::IdentityNames;
use crate::proxy::routes;

impl Validator {
    pub(super) fn auth(&mut self, raw: RawAuth, base: &Path) -> Option<AuthOptions> {
        let prefix_ok = raw.prefix.len() > 1
            && !raw.prefix.ends_with('/')
            && routes::normalize(&raw.prefix).is_ok_and(|n| n == raw.prefix.as_str());
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
        let users_file = raw.users_file.map(|f| base.join(f));
        self.files.extend(users_file.clone());
        if let Some(path) = &users_file {
            if let Err(e) = crate::auth::users::Users::load(path) {
                self.problem("auth.users_file", e);
            }
        }
        (prefix_ok && paths_ok).then_some(AuthOptions {
            prefix: raw.prefix,
            login_url,
            users_file,
            logout_redirect: raw.logout_redirect,
            max_failures: raw.max_failures,
            ip_max_failures: raw.ip_max_failures,
            failure_window: failure_window?,
            max_concurrent_hashes: raw.max_concurrent_hashes,
            oidc: oidc?,
            // Set by `config` from `[identity]`.
            identity: IdentityNames::default(),
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
    use super::super::testing::{assert_refused, minimal};

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
}
