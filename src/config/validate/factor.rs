//! `[auth.second_factor]`: the mode, the roles it is required of, the keys
//! that seal TOTP secrets (from env or file, like every secret), the name
//! authenticator apps show, and how long a sign-in may wait for its factor.
//! Whether a credential store holds the records is checked with the store
//! (`Validator::config`).

use std::path::Path;
use std::time::Duration;

use super::Validator;
use url::Url;

use crate::auth::factor::passkeys::{PasskeyOptions, Passkeys};
use crate::auth::factor::{FactorOptions, Required};
use crate::auth::names;
use crate::config::raw::RawSecondFactor;

/// The longest a sign-in may wait for its factor: a pending cookie is a
/// half-finished login, and must not outlive a coffee break.
const MAX_PENDING: Duration = Duration::from_secs(15 * 60);

impl Validator {
    pub(super) fn second_factor(
        &mut self,
        raw: RawSecondFactor,
        base: &Path,
    ) -> Option<FactorOptions> {
        let key = "auth.second_factor";
        let required = match (raw.mode.as_str(), raw.required_roles.is_empty()) {
            ("optional", true) => Some(Required::Optional),
            ("optional", false) => {
                self.problem(
                    &format!("{key}.required_roles"),
                    "needs mode = \"required\" (with \"optional\" nobody is required)",
                );
                None
            }
            ("required", true) => Some(Required::Everyone),
            ("required", false) => Some(Required::Roles(raw.required_roles.clone())),
            (other, _) => {
                self.problem(
                    &format!("{key}.mode"),
                    format!("must be \"optional\" or \"required\" (got {other:?})"),
                );
                None
            }
        };
        for (j, role) in raw.required_roles.iter().enumerate() {
            if let Err(rule) = names::check_role(role) {
                self.problem(
                    &format!("{key}.required_roles[{j}]"),
                    format!("{rule} (got {role:?})"),
                );
            }
        }
        if raw.keys.is_empty() {
            self.problem(
                &format!("{key}.keys"),
                "at least one key is required to seal TOTP secrets, e.g. keys = [{ env = \"SESSIONGATE_FACTOR_KEY\" }]",
            );
        }
        let mut keys = Vec::new();
        for (i, s) in raw.keys.iter().enumerate() {
            keys.extend(self.secret(&format!("{key}.keys[{i}]"), s, base));
        }
        let issuer_ok = !raw.issuer.is_empty()
            && raw.issuer.len() <= 64
            && !raw.issuer.chars().any(|c| c.is_control() || c == ':');
        if !issuer_ok {
            self.problem(
                &format!("{key}.issuer"),
                format!(
                    "must be 1-64 bytes of text without ':' (got {:?})",
                    raw.issuer
                ),
            );
        }
        let pending = self
            .duration(&format!("{key}.pending_timeout"), &raw.pending_timeout)
            .filter(|p| {
                let ok = (Duration::from_secs(30)..=MAX_PENDING).contains(p);
                if !ok {
                    self.problem(
                        &format!("{key}.pending_timeout"),
                        format!(
                            "must be between 30s and 15m (got {:?})",
                            raw.pending_timeout
                        ),
                    );
                }
                ok
            });
        let passkeys = match &raw.passkey_origin {
            Some(origin) => {
                Some(self.passkey_origin(key, origin, raw.passkey_login, &raw.issuer)?)
            }
            None => {
                if raw.passkey_login {
                    self.problem(&format!("{key}.passkey_login"), "needs passkey_origin");
                }
                None
            }
        };
        if !issuer_ok || keys.len() != raw.keys.len() || keys.is_empty() {
            return None;
        }
        Some(FactorOptions {
            required: required?,
            keys,
            issuer: raw.issuer,
            pending_timeout: pending?,
            passkeys,
        })
    }

    /// `passkey_origin`: an origin (no path) with a host name, https or a
    /// loopback name over http; webauthn-rs must take it.
    fn passkey_origin(
        &mut self,
        key: &str,
        origin: &str,
        login: bool,
        issuer: &str,
    ) -> Option<PasskeyOptions> {
        let key = format!("{key}.passkey_origin");
        let url = match Url::parse(origin) {
            Ok(u) => u,
            Err(e) => {
                self.problem(&key, format!("{e} (got {origin:?})"));
                return None;
            }
        };
        let bare = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        let local = url
            .host_str()
            .is_some_and(|h| h == "localhost" || h.ends_with(".localhost"));
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && local);
        if !bare || !scheme_ok || url.domain().is_none() {
            self.problem(
                &key,
                format!("must be an origin like \"https://app.example.com\" (http only for localhost; a host name, not an address) (got {origin:?})"),
            );
            return None;
        }
        let options = PasskeyOptions { origin: url, login };
        if let Err(e) = Passkeys::new(&options, issuer) {
            self.problem(&key, e);
            return None;
        }
        Some(options)
    }
}
