//! "Password correct, second factor pending": a state of its own, kept in a
//! short-lived cookie signed with the session secrets and never in a session.
//! Nothing but the factor endpoints reads this cookie, so no route, `/check`,
//! forward-auth, `/me`, sessions page, backend command or key creation can
//! take it for a login (tinyauth GHSA-3q28-qjrv-qr39 is the bug this rules
//! out by construction: there is no session to mistake).
//!
//! It is tied to the browser that typed the password (an `HttpOnly`,
//! `SameSite=Strict` cookie of that browser), lives [`super::FactorOptions::pending_timeout`]
//! (5 minutes by default), and works once: its nonce is spent in the
//! credential store when the factor passes, on every instance.

use serde::{Deserialize, Serialize};

use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::signing::{self, Secret};

/// Keeps the MAC of this record apart from every other use of the secrets.
const LABEL: &[u8] = b"sessiongate second factor pending v1\0";
/// A longer cookie is not ours.
const MAX_VALUE_LEN: usize = 2048;

/// What the pending sign-in waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Waiting {
    /// A code from the user's factor.
    Code,
    /// An enrolment: a factor is required and the user has none yet.
    Enrolment,
}

/// One sign-in waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The user the password proved (as the users file spells it).
    pub user: String,
    pub waiting: Waiting,
    /// Where to go once signed in: already checked by `safe_next`.
    pub next: String,
    /// Unix seconds after which the record is refused.
    pub expires: u64,
    /// 128 random bits, spent when the sign-in completes.
    pub nonce: String,
    /// The password it was proved with (`User::password_stamp`).
    pub stamp: String,
}

impl Pending {
    pub(crate) fn new(
        user: String,
        stamp: String,
        waiting: Waiting,
        next: String,
        expires: u64,
    ) -> Pending {
        let mut n = [0u8; 16];
        getrandom::getrandom(&mut n).expect("the OS CSPRNG must be available");
        Pending {
            user,
            waiting,
            next,
            expires,
            nonce: hex::encode(n),
            stamp,
        }
    }

    /// The cookie value, signed with the first secret.
    pub(crate) fn seal(&self, secrets: &[Secret]) -> String {
        signing::seal_record(LABEL, &secrets[0], self)
    }

    /// The record in a cookie value, if one of `secrets` signed it and it has
    /// not expired at `now` (unix seconds).
    pub(crate) fn open(value: &str, secrets: &[Secret], now: u64) -> Option<Pending> {
        let record: Pending = signing::open_record(LABEL, secrets, value, MAX_VALUE_LEN)?;
        (now < record.expires).then_some(record)
    }
}

/// The cookie's name and attributes beside the session cookie.
pub(crate) fn cookie_attrs(session: &CookieAttrs, lifetime: std::time::Duration) -> CookieAttrs {
    session.beside(cookie_name(session), SameSite::Strict, lifetime)
}

/// The cookie's name beside a session cookie with `session`'s attributes.
pub(crate) fn cookie_name(session: &CookieAttrs) -> &'static str {
    if session.name.starts_with("__Host-") {
        "__Host-sg_factor"
    } else {
        "sg_factor"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_sign_in_opens_until_it_expires_and_not_as_anything_else() {
        let s = Secret::new(vec![1; 32]);
        let p = Pending::new(
            "alice".into(),
            "00".into(),
            Waiting::Code,
            "/app".into(),
            100,
        );
        let sealed = p.seal(std::slice::from_ref(&s));
        assert_eq!(
            Pending::open(&sealed, std::slice::from_ref(&s), 99),
            Some(p)
        );
        assert_eq!(Pending::open(&sealed, std::slice::from_ref(&s), 100), None);
        assert_eq!(Pending::open(&sealed, &[Secret::new(vec![2; 32])], 1), None);
        // A pre-login record signed with the same secret is not a pending sign-in.
        let other = signing::seal_record(b"sessiongate oidc pre-login v1\0", &s, &p_json());
        assert_eq!(Pending::open(&other, std::slice::from_ref(&s), 1), None);
    }

    fn p_json() -> serde_json::Value {
        serde_json::json!({"user": "alice", "waiting": "code", "next": "/", "expires": 100, "nonce": "00", "stamp": "00"})
    }
}
