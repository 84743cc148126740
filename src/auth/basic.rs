//! HTTP Basic (RFC 7617) on the routes that take it (`credentials =
//! ["basic"]`), for clients that can do nothing else: the users file's
//! password check, with the login form's throttle, hashing slots and failure
//! shape ([`Auth::check_password`]).
//!
//! A client sends Basic on every request, and argon2id costs tens of
//! milliseconds on purpose, so a verified password is remembered for
//! [`REMEMBERED_FOR`]: keyed by [`User::proof`] (an HMAC, under a random key of
//! this process, of the name, the stored hash and the password). So a new
//! password in the users file misses at once (a new stored hash), and a
//! disabled or removed user is refused at once (the user is looked up before
//! the cache, on every request). Only successes are remembered, so a wrong
//! password always costs a hash and counts as a failure; and a lockout
//! refuses a remembered password too, so guesses stay bounded while it lasts.
//!
//! Basic carries a password and nothing else, so it is refused, with the
//! answer a wrong password gets, for a user who has a second factor or must
//! have one (`[auth.second_factor]`): every credential path asks for the same
//! factors (tinyauth #123 let Basic past them). That is decided with the
//! password and remembered with it, so a factor enrolled later stops Basic
//! within [`REMEMBERED_FOR`].
//!
//! [`User::proof`]: super::users::User::proof

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::password::PasswordRefusal;
use super::users::MAX_PASSWORD_LEN;
use super::{Auth, Caller};

/// How long a verified Basic password is remembered.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(60);

/// How many verified passwords are remembered at most.
const CAPACITY: u64 = 10_000;

/// The verified Basic passwords of one config generation (a reload starts
/// afresh).
pub(crate) struct Remembered {
    key: [u8; 32],
    /// One cell per proof, set once its password has been verified. The
    /// requests that bring the same proof while it is being verified wait
    /// for that one check: else, when an entry expires under a client with
    /// 64 connections, 64 hashes start at once, and all but the hashing
    /// slots' worth are refused 503 (measured: 19,505 of 148,000 requests in
    /// one 10 s run of bench/run.sh --credentials).
    /// The cell holds whether the user may use Basic at all (no second factor).
    proofs: moka::sync::Cache<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>,
}

impl Remembered {
    pub(crate) fn new() -> Remembered {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS CSPRNG must be available");
        Remembered {
            key,
            proofs: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(REMEMBERED_FOR)
                .build(),
        }
    }
}

impl Auth {
    /// The user `user`:`password` proves, from memory or by the password check.
    pub(crate) async fn check_basic(
        &self,
        user: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> Result<Caller, PasswordRefusal> {
        if !self.takes_passwords() || password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordRefusal::Invalid);
        }
        let proof = self
            .users
            .get(user)
            .filter(|u| !u.disabled)
            .map(|u| (u, u.proof(&self.basic.key, &password)));
        let Some((u, proof)) = proof else {
            // Unknown or disabled: the check fails, at a hash's cost; or a
            // directory account ([auth.ldap]), which asks the same factors.
            let super::password::Proved { user, roles, .. } =
                self.check_password(user, password, ip).await?;
            if !self.password_is_enough(&user, &roles).await? {
                tracing::info!(target: "auth", user = %user, "Basic refused: the user has a second factor");
                return Err(PasswordRefusal::Invalid);
            }
            return Ok(Caller {
                user,
                roles: roles.join(","),
            });
        };
        let cell = self
            .basic
            .proofs
            .get_with(proof, || Arc::new(tokio::sync::OnceCell::new()));
        // A wrong password leaves the cell empty: the next request with it
        // checks (and counts) again.
        let allowed = *cell
            .get_or_try_init(|| async {
                self.check_password(user, password, ip).await?;
                self.password_is_enough(&u.name, &u.roles).await
            })
            .await?;
        // A lockout holds for remembered passwords too: else a locked
        // account would answer guesses for free.
        self.locked_out_now(user, ip)?;
        if !allowed {
            tracing::info!(target: "auth", user = %u.name, "Basic refused: the user has a second factor");
            return Err(PasswordRefusal::Invalid);
        }
        Ok(Caller {
            user: u.name.clone(),
            roles: u.roles.join(","),
        })
    }
}

impl Auth {
    /// Whether a password alone signs `user` in: no second factor enrolled
    /// and none required of `roles`.
    async fn password_is_enough(
        &self,
        user: &str,
        roles: &[String],
    ) -> Result<bool, PasswordRefusal> {
        let Some(factors) = &self.factors else {
            return Ok(true);
        };
        if factors.required_for(roles) {
            return Ok(false);
        }
        match factors.has_factor(user).await {
            Ok(has) => Ok(!has),
            Err(e) => {
                tracing::error!(error = %e, "credential store unavailable");
                Err(PasswordRefusal::Busy)
            }
        }
    }
}
