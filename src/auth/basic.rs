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
    proofs: moka::sync::Cache<[u8; 32], ()>,
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
        if let Some((u, proof)) = &proof {
            if self.basic.proofs.contains_key(proof) {
                // A lockout holds for remembered passwords too: else a
                // locked account would answer guesses for free.
                self.locked_out_now(user, ip)?;
                return Ok(Caller {
                    user: u.name.clone(),
                    roles: u.roles.join(","),
                });
            }
        }
        let (user, roles) = self.check_password(user, password, ip).await?;
        if let Some((_, proof)) = proof {
            self.basic.proofs.insert(proof, ());
        }
        Ok(Caller {
            user,
            roles: roles.join(","),
        })
    }
}
