//! The pre-login record: what the callback must find again (which provider,
//! `state`, `nonce`, the PKCE verifier, where to go next), kept in the browser
//! in a short-lived cookie signed like the session cookie, and never bound to
//! a session id.
//!
//! A cookie rather than a server-side record, so that the callback may land on
//! any instance sharing the secrets (the Redis store's set-up) and an
//! unauthenticated visitor cannot fill a server-side table. It is not secret
//! from the browser that holds it: `state` and `nonce` are there to be sent,
//! and the PKCE verifier only protects the code against others. The authorization
//! code itself is single-use at the provider, and the cookie is cleared by the
//! callback whatever its outcome.
//!
//! Value: a record sealed by [`signing::seal_record`] under [`LABEL`].
//! The first secret signs; every secret verifies, in constant time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::signing::{self, Secret};

/// How long a sign-in at the provider may take.
pub(crate) const LIFETIME: Duration = Duration::from_secs(600);
/// Keeps the MAC of this record apart from every other use of the secrets.
const LABEL: &[u8] = b"sessiongate oidc pre-login v1\0";
/// A longer cookie is not ours (the fields are bounded; `next` is cut at start).
const MAX_VALUE_LEN: usize = 4096;

/// One sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PreLogin {
    /// The provider's id in the config.
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go after signing in: already checked by `safe_next`.
    pub next: String,
    /// Unix seconds after which the record is refused.
    pub expires: u64,
}

impl PreLogin {
    /// The cookie value, signed with the first secret.
    pub(crate) fn seal(&self, secrets: &[Secret]) -> String {
        signing::seal_record(LABEL, &secrets[0], self)
    }

    /// The record in a cookie value, if one of `secrets` signed it and it has
    /// not expired at `now` (unix seconds).
    pub(crate) fn open(value: &str, secrets: &[Secret], now: u64) -> Option<PreLogin> {
        let record: PreLogin = signing::open_record(LABEL, secrets, value, MAX_VALUE_LEN)?;
        (now < record.expires).then_some(record)
    }
}

/// The cookie's name and attributes, from the session cookie's: the same
/// `Secure` policy, a `__Host-` name when the session cookie has one.
/// `SameSite=Lax` whatever the session cookie says, because the callback is a
/// top-level navigation from the provider's site, which a `Strict` cookie
/// would miss; `Path=/` so that a `__Host-` name is allowed.
pub(crate) fn cookie_attrs(session: &CookieAttrs) -> CookieAttrs {
    session.beside(cookie_name(session), SameSite::Lax, LIFETIME)
}

/// The cookie's name beside a session cookie with `session`'s attributes.
pub(crate) fn cookie_name(session: &CookieAttrs) -> &'static str {
    if session.name.starts_with("__Host-") {
        "__Host-sg_oidc"
    } else {
        "sg_oidc"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PreLogin {
        PreLogin {
            provider: "idp".into(),
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/app".into(),
            expires: 1000,
        }
    }

    #[test]
    fn a_sealed_record_opens_with_any_secret_until_it_expires() {
        let old = Secret::new(vec![1; 32]);
        let new = Secret::new(vec![2; 32]);
        let sealed = record().seal(std::slice::from_ref(&old));
        assert_eq!(
            PreLogin::open(&sealed, &[new.clone(), old.clone()], 999),
            Some(record())
        );
        assert_eq!(
            PreLogin::open(&sealed, std::slice::from_ref(&old), 1000),
            None
        );
        assert_eq!(PreLogin::open(&sealed, &[new], 1), None);
    }

    #[test]
    fn a_changed_record_does_not_open() {
        let s = Secret::new(vec![1; 32]);
        let sealed = record().seal(std::slice::from_ref(&s));
        let (body, tag) = sealed.rsplit_once('.').unwrap();
        let mut forged = record();
        forged.next = "/admin".into();
        let forged_body = forged.seal(&[Secret::new(vec![9; 32])]);
        let forged_body = forged_body.rsplit_once('.').unwrap().0;
        for bad in [
            format!("{forged_body}.{tag}"),
            format!("{body}x.{tag}"),
            format!("{body}.{}", &tag[2..]),
            body.to_owned(),
            String::new(),
            "x".repeat(MAX_VALUE_LEN + 1),
        ] {
            assert_eq!(PreLogin::open(&bad, std::slice::from_ref(&s), 1), None);
        }
    }
}
