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
    proofs: moka::sync::Cache<[u8; 32], Arc<tokio::sync::OnceCell<()>>>,
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
        if self.config.users_file.is_none() || password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordRefusal::Invalid);
        }
        let proof = self
            .users
            .get(user)
            .filter(|u| !u.disabled)
            .map(|u| (u, u.proof(&self.basic.key, &password)));
        let Some((u, proof)) = proof else {
            // Unknown or disabled: the check fails, at a hash's cost.
            let (user, roles) = self.check_password(user, password, ip).await?;
            return Ok(Caller {
                user,
                roles: roles.join(","),
            });
        };
        let cell = self
            .basic
            .proofs
            .get_with(proof, || Arc::new(tokio::sync::OnceCell::new()));
        if cell.initialized() {
            // A lockout holds for remembered passwords too: else a locked
            // account would answer guesses for free.
            self.locked_out_now(user, ip)?;
        } else {
            // A wrong password leaves the cell empty: the next request with
            // it checks (and counts) again.
            cell.get_or_try_init(|| async {
                self.check_password(user, password, ip).await.map(|_| ())
            })
            .await?;
            self.locked_out_now(user, ip)?;
        }
        Ok(Caller {
            user: u.name.clone(),
            roles: u.roles.join(","),
        })
    }
}
