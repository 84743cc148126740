//! The second factor on the built-in login (`[auth.second_factor]`):
//! authenticator apps (TOTP) and recovery codes, asked for after the password
//! of a user who has one, required of users by role, and asked again by
//! routes that want a recent one (step-up, `second_factor_within`).
//!
//! - [`pending`]: "password correct, factor pending", a signed cookie and
//!   never a session;
//! - [`totp`], [`recovery`]: the codes; `auth::sealing`: TOTP secrets at rest;
//! - [`passkeys`]: WebAuthn, its ceremonies and endpoints;
//! - [`pages`]: the prompt and passing it; [`enrol`]: setting a factor up,
//!   recovery codes, the sessions page's section.
//!
//! The records live in the credential store ([`Home`]) beside the API keys, so
//! every instance sees them and they survive a restart. Failed codes are
//! counted per account in the same place, across sign-ins, step-ups and
//! instances, and lock the account's factor like failed passwords lock its
//! password (`auth.max_failures` within `auth.failure_window`). A code is
//! accepted once: TOTP per time step, recovery codes for good.

pub(crate) mod enrol;
pub(crate) mod pages;
pub(crate) mod passkeys;
pub(crate) mod pending;
pub(crate) mod recovery;
pub(crate) mod totp;

use crate::session::credentials::once_token;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::sealing::{Sealer, SECOND_FACTOR};
use crate::metrics::METRICS;
use crate::session::credentials::{FactorRecord, Home, TotpFactor};
use crate::session::signing::Secret;
use crate::session::StoreError;

/// `[auth.second_factor]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct FactorOptions {
    pub required: Required,
    /// Seal TOTP secrets: the first seals, all open.
    pub keys: Vec<Secret>,
    /// The name authenticator apps show beside the user's.
    pub issuer: String,
    /// How long a sign-in may wait for its second factor.
    pub pending_timeout: Duration,
    /// Passkeys, when `passkey_origin` is set.
    pub passkeys: Option<passkeys::PasskeyOptions>,
}

/// Who must have a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Required {
    /// Nobody: users may enrol, and are asked once they have.
    Optional,
    /// Every user of the users file.
    Everyone,
    /// Users holding any of these roles.
    Roles(Vec<String>),
}

/// How long a step-up is good for when a page of the factor's own (new
/// recovery codes, replacing the app) asks for one.
pub(crate) const RECENT: Duration = Duration::from_secs(600);

/// How long a used TOTP code is remembered: past the last moment its step is
/// accepted (the step after it), with a step to spare for instances whose
/// clocks differ.
const CODE_REMEMBERED: Duration = Duration::from_secs(4 * totp::STEP);

/// What a code proved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The factor passed; `recovery_left` when a recovery code was spent.
    Passed { recovery_left: Option<usize> },
    /// Wrong, already used, or no factor to check it with: one answer.
    Refused,
    /// Too many failures for this account: try again later.
    Throttled,
}

/// The second factor of one config generation.
pub(crate) struct Factors {
    pub(crate) options: FactorOptions,
    sealer: Sealer,
    home: Arc<dyn Home>,
    /// The relying party, when passkeys are on.
    pub(crate) passkeys: Option<passkeys::Passkeys>,
}

impl Factors {
    /// # Errors
    /// When the passkey relying party cannot be built from the options.
    pub(crate) fn new(options: FactorOptions, home: Arc<dyn Home>) -> Result<Factors, String> {
        let passkeys = match &options.passkeys {
            Some(p) => Some(passkeys::Passkeys::new(p, &options.issuer)?),
            None => None,
        };
        Ok(Factors {
            sealer: Sealer::new(&options.keys, &SECOND_FACTOR),
            options,
            home,
            passkeys,
        })
    }

    /// Store `record`, replacing the user's previous one.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn save(&self, record: &FactorRecord) -> Result<(), StoreError> {
        self.home.put_factors(record).await
    }

    /// Give back an attempt of `user`'s that passed (a passkey).
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn refund(&self, user: &str) -> Result<(), StoreError> {
        self.home.factor_refund(user).await
    }

    /// The user a passkey's user handle belongs to.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn user_of_handle(&self, handle: &str) -> Result<Option<String>, StoreError> {
        self.home.user_of_handle(handle).await
    }

    /// Whether a user with `roles` must have a second factor.
    pub(crate) fn required_for(&self, roles: &[String]) -> bool {
        match &self.options.required {
            Required::Optional => false,
            Required::Everyone => true,
            Required::Roles(want) => roles.iter().any(|r| want.contains(r)),
        }
    }

    /// The user's record.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn record(&self, user: &str) -> Result<Option<FactorRecord>, StoreError> {
        self.home.factors(user).await
    }

    /// Whether `user` has a factor to be asked for.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn has_factor(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.record(user).await?.is_some_and(|r| r.has_factor()))
    }

    /// Check `typed` (a TOTP code or a recovery code) for `user`, counting a
    /// failure against the account. `max_failures` within `window`: the
    /// password throttle's settings.
    ///
    /// # Errors
    /// When the credential store fails: never a pass.
    pub(crate) async fn verify(
        &self,
        user: &str,
        typed: &str,
        max_failures: u32,
        window: Duration,
        now: u64,
    ) -> Result<Verdict, StoreError> {
        let Some(n) = self.attempt(user, max_failures, window).await? else {
            return Ok(Verdict::Throttled);
        };
        let record = self.record(user).await?;
        let passed = match &record {
            Some(r) => self.check(r, typed.trim(), now).await?,
            None => None,
        };
        match passed {
            Some(v) => {
                self.home.factor_refund(user).await?;
                Ok(v)
            }
            None => {
                tracing::warn!(target: "auth", user = %user, failures = n, "second factor refused");
                Ok(Verdict::Refused)
            }
        }
    }

    /// Count an attempt at `user`'s factor before checking it: `None` past
    /// `max_failures` within `window` (throttled), else the attempts so far.
    pub(crate) async fn attempt(
        &self,
        user: &str,
        max_failures: u32,
        window: Duration,
    ) -> Result<Option<u32>, StoreError> {
        let n = self.home.factor_attempt(user, window).await?;
        if n > max_failures {
            METRICS.logins_throttled.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "auth", user = %user, "second factor throttled");
            return Ok(None);
        }
        Ok(Some(n))
    }

    async fn check(
        &self,
        r: &FactorRecord,
        typed: &str,
        now: u64,
    ) -> Result<Option<Verdict>, StoreError> {
        if totp::looks_like_code(typed) {
            let Some(t) = &r.totp else { return Ok(None) };
            let Some(opened) = self.sealer.open(&t.sealed, &totp_context(&r.user)) else {
                tracing::error!(target: "auth", user = %r.user, "a TOTP secret does not open with any of auth.second_factor.keys");
                return Ok(None);
            };
            let Some(step) = totp::matching_step(&opened.plain, typed, now) else {
                return Ok(None);
            };
            // Once per step, on every instance: kept past the last moment the
            // step's code is accepted (it and its successor's window).
            let token = once_token(&["totp", &r.user, &step.to_string()]);
            if !self.home.first_use(&token, CODE_REMEMBERED).await? {
                tracing::warn!(target: "auth", user = %r.user, "a TOTP code was used again");
                return Ok(None);
            }
            if opened.stale {
                let mut fresh = r.clone();
                fresh.totp = Some(TotpFactor {
                    sealed: self.sealer.seal(&opened.plain, &totp_context(&r.user)),
                    created_at: t.created_at,
                });
                self.home.put_factors(&fresh).await?;
            }
            return Ok(Some(Verdict::Passed {
                recovery_left: None,
            }));
        }
        let Some(code) = recovery::normalise(typed) else {
            return Ok(None);
        };
        let hash = recovery::hash(&code);
        if !r.recovery.iter().any(|h| h.as_bytes() == hash.as_bytes()) {
            return Ok(None);
        }
        // Two instances spending the same code at once: one wins here.
        let token = once_token(&["recovery", &r.user, &hash]);
        if !self
            .home
            .first_use(&token, Duration::from_secs(30 * 24 * 3600))
            .await?
        {
            return Ok(None);
        }
        let mut spent = r.clone();
        spent.recovery.retain(|h| *h != hash);
        self.home.put_factors(&spent).await?;
        tracing::warn!(target: "auth", user = %r.user, left = spent.recovery.len(), "a recovery code was used");
        Ok(Some(Verdict::Passed {
            recovery_left: Some(spent.recovery.len()),
        }))
    }

    /// A new secret for `user` to enrol, sealed for the enrolment form
    /// (bound to the user and its deadline, so it cannot be swapped).
    pub(crate) fn enrolment(&self, user: &str, expires: u64) -> (Vec<u8>, String) {
        let secret = totp::new_secret();
        let sealed = self.sealer.seal(&secret, &enrol_context(user, expires));
        (secret, sealed)
    }

    /// Finish an enrolment: the code typed must be the sealed secret's. Saves
    /// the factor with new recovery codes and returns them (shown once).
    /// `None`: the form is stale or the code wrong (counted as a failure).
    ///
    /// # Errors
    /// When the credential store fails.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn enrol(
        &self,
        user: &str,
        sealed: &str,
        expires: u64,
        typed: &str,
        max_failures: u32,
        window: Duration,
        now: u64,
    ) -> Result<Result<Vec<String>, Verdict>, StoreError> {
        if self.attempt(user, max_failures, window).await?.is_none() {
            return Ok(Err(Verdict::Throttled));
        }
        let secret = (now < expires)
            .then(|| self.sealer.open(sealed, &enrol_context(user, expires)))
            .flatten();
        let step = secret
            .as_ref()
            .and_then(|s| totp::matching_step(&s.plain, typed.trim(), now));
        let (Some(secret), Some(step)) = (secret, step) else {
            return Ok(Err(Verdict::Refused));
        };
        // A form enrols once (a second submit would replace the recovery
        // codes just shown), and the code that enrolled cannot sign in again
        // in its window.
        let form = once_token(&["enrol", user, sealed]);
        let code = once_token(&["totp", user, &step.to_string()]);
        let form_lives = Duration::from_secs(expires.saturating_sub(now) + 60);
        if !self.home.first_use(&form, form_lives).await?
            || !self.home.first_use(&code, CODE_REMEMBERED).await?
        {
            return Ok(Err(Verdict::Refused));
        }
        self.home.factor_refund(user).await?;
        let codes = recovery::new_codes();
        // Passkeys stay; a new app gets new recovery codes.
        let mut record = self
            .record(user)
            .await?
            .unwrap_or_else(|| empty_record(user));
        record.totp = Some(TotpFactor {
            sealed: self.sealer.seal(&secret.plain, &totp_context(user)),
            created_at: now,
        });
        record.recovery = hashed(&codes);
        record.updated_at = now;
        self.home.put_factors(&record).await?;
        tracing::info!(target: "auth", user = %user, "authenticator app enrolled");
        Ok(Ok(codes))
    }

    /// New recovery codes for `user`, replacing the old ones; `None` when the
    /// user has no factor.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn renew_recovery(
        &self,
        user: &str,
        now: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let Some(mut r) = self.record(user).await?.filter(|r| r.has_factor()) else {
            return Ok(None);
        };
        let codes = recovery::new_codes();
        r.recovery = hashed(&codes);
        r.updated_at = now;
        self.home.put_factors(&r).await?;
        tracing::info!(target: "auth", user = %user, "recovery codes renewed");
        Ok(Some(codes))
    }

    /// Spend a pending sign-in's nonce: true the first time, on any instance.
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn spend(&self, nonce: &str) -> Result<bool, StoreError> {
        // Past the longest a pending sign-in or a passkey ceremony lives.
        let lives = self
            .options
            .pending_timeout
            .max(passkeys::CEREMONY_LIFETIME);
        let token = once_token(&["pending", nonce]);
        self.home
            .first_use(&token, lives + Duration::from_secs(60))
            .await
    }

    /// Forget every factor of `user` (the admin's reset).
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn reset(&self, user: &str) -> Result<bool, StoreError> {
        self.home.remove_factors(user).await
    }

    /// Every user's record (the admin's list).
    ///
    /// # Errors
    /// When the credential store fails.
    pub(crate) async fn list(&self) -> Result<Vec<FactorRecord>, StoreError> {
        self.home.list_factors().await
    }
}

/// The pending sign-in's and the passkey ceremony's cookie names beside a
/// session cookie with `session`'s attributes.
pub(crate) fn cookie_names(session: &crate::session::cookie::CookieAttrs) -> [&'static str; 2] {
    [
        pending::cookie_name(session),
        passkeys::cookie_name(session),
    ]
}

/// A record with no factor yet.
pub(crate) fn empty_record(user: &str) -> FactorRecord {
    FactorRecord {
        user: user.to_owned(),
        totp: None,
        recovery: Vec::new(),
        passkeys: Vec::new(),
        handle: None,
        updated_at: 0,
    }
}

/// Recovery codes as stored.
pub(crate) fn hashed(codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .filter_map(|c| recovery::normalise(c))
        .map(|c| recovery::hash(&c))
        .collect()
}

/// What a user's TOTP secret is sealed for.
fn totp_context(user: &str) -> String {
    format!("totp\0{user}")
}

/// What an enrolment form's secret is sealed for.
fn enrol_context(user: &str, expires: u64) -> String {
    format!("enrol\0{user}\0{expires}")
}
