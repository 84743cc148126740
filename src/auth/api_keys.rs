//! API keys: long-lived credentials an operator (admin API and page) or a
//! user (their sessions page) makes for a script or service, sent as
//! `Authorization: Bearer sgk_<id>_<secret>` to the routes that take
//! `api_key`.
//!
//! - The format: `sgk_`, 16 hex digits of id (public: it names the key in
//!   lists and logs), `_`, 64 hex digits of secret (256 random bits). The
//!   prefix lets secret scanners find a leaked key, as GitHub's `ghp_` does.
//!   Only the SHA-256 of the secret is stored ([`crate::session::credentials`]), and
//!   it is compared in constant time.
//! - A key acts as its owner, with the roles it was given that the owner
//!   still has: the owner is looked up in the users file as this config
//!   generation read it, so a disabled or removed owner's keys stop at once,
//!   and a role taken from the owner is taken from their keys. (Re-enabling
//!   the owner brings the keys back; revoke them to end them for good.)
//! - A verified record is remembered per instance for [`KNOWN_FOR`]: a
//!   revocation made on another instance (with Redis) takes effect within it,
//!   the store's usual bound. One made here takes effect at once.
//! - A wrong secret, an unknown id, or a key that is not one counts as a
//!   failed login for the client address ([`super::throttle`], shared with
//!   the password login): past the limit, 429 until the window ends.
//! - Last use is written at most once per [`USED_EVERY`] per key and instance.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::{names, Auth, Caller};
use crate::session::credentials::{ApiKeyRecord, Home};
use crate::session::StoreError;

/// What every key starts with.
pub(crate) const PREFIX: &str = "sgk_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
/// A verified record is used this long before the store is asked again.
pub(crate) const KNOWN_FOR: Duration = Duration::from_secs(1);
/// Last use is written at most this often per key and instance.
const USED_EVERY: u64 = 60;
/// Records remembered at most.
const CAPACITY: u64 = 100_000;
/// Longest key name.
pub(crate) const MAX_NAME: usize = 64;

/// Why a key proves no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRefusal {
    /// Not a live key of an enabled owner: 401.
    Invalid,
    /// Too many failures from this address: 429 with `Retry-After`.
    Throttled(Duration),
    /// The store cannot answer: 503.
    Unavailable,
}

/// Why a key cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CreateError {
    #[error("no such user, or disabled")]
    Owner,
    #[error("the owner does not have the role {0:?}")]
    Role(String),
    #[error("the name must be 1-{MAX_NAME} characters of text")]
    Name,
    #[error("{0}")]
    Store(String),
}

/// A record as checked at each use.
struct Known {
    id: String,
    hash: [u8; 32],
    expires_at: Option<u64>,
    /// `None`: the owner is gone or disabled.
    caller: Option<Arc<Caller>>,
    /// When this instance last wrote the key's use.
    noted: AtomicU64,
}

/// This config generation's view of the keys in the credential store.
pub(crate) struct ApiKeys {
    home: Arc<dyn Home>,
    known: moka::sync::Cache<String, Arc<Known>>,
}

impl ApiKeys {
    pub(crate) fn new(home: Arc<dyn Home>) -> ApiKeys {
        ApiKeys {
            home,
            known: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(KNOWN_FOR)
                .build(),
        }
    }

    pub(crate) fn home(&self) -> &Arc<dyn Home> {
        &self.home
    }
}

/// Whether `s` is `n` lower-case hex digits.
fn hex_of(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `id` is a key's id (16 lower-case hex digits).
pub(crate) fn is_id(id: &str) -> bool {
    hex_of(id, ID_HEX)
}

/// The id and secret of a well-formed key, or `None`.
pub(crate) fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (is_id(id) && hex_of(secret, SECRET_HEX)).then_some((id, secret))
}

/// Whether a bearer token is an API key (by its prefix) rather than a JWT.
pub(crate) fn is_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// An `expires_in`: empty or absent for none, else a positive duration.
pub(crate) fn lifetime(text: Option<&str>) -> Result<Option<Duration>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(format!(
                "expires_in: not a duration such as \"30d\" (got {t:?})"
            )),
        },
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn unix_now() -> u64 {
    crate::session::now_ms() / 1000
}

impl Auth {
    /// The caller an API key proves.
    pub(crate) async fn check_api_key(
        &self,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<Arc<Caller>, KeyRefusal> {
        let Some(keys) = &self.api_keys else {
            return Err(KeyRefusal::Invalid);
        };
        let Some((id, secret)) = split(token) else {
            return Err(self.key_failed(ip));
        };
        let known = match keys.known.get(id) {
            Some(k) => k,
            None => {
                // Before asking the store: a throttled address asks nothing.
                if let Some(retry) = ip.and_then(|ip| self.by_ip.locked(&ip)) {
                    return Err(KeyRefusal::Throttled(retry));
                }
                match keys.home.get(id).await {
                    Ok(Some(record)) => {
                        let k = Arc::new(self.known(record));
                        keys.known.insert(id.to_owned(), k.clone());
                        k
                    }
                    Ok(None) => return Err(self.key_failed(ip)),
                    Err(e) => {
                        tracing::warn!(target: "auth", reason = %e, "an API key could not be checked: the credential store is unavailable");
                        return Err(KeyRefusal::Unavailable);
                    }
                }
            }
        };
        if !bool::from(digest(secret).ct_eq(&known.hash)) {
            return Err(self.key_failed(ip));
        }
        let now = unix_now();
        let live = known.expires_at.is_none_or(|e| e > now);
        let Some(caller) = known.caller.clone().filter(|_| live) else {
            // The right secret of an expired key or a disabled owner: no
            // guess, so not counted as one.
            return Err(KeyRefusal::Invalid);
        };
        let noted = known.noted.load(Ordering::Relaxed);
        if now >= noted + USED_EVERY
            && known
                .noted
                .compare_exchange(noted, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let (home, id) = (keys.home.clone(), known.id.clone());
            tokio::spawn(async move {
                if let Err(e) = home.used(&id, now).await {
                    tracing::debug!(target: "auth", reason = %e, "an API key's last use was not recorded");
                }
            });
        }
        Ok(caller)
    }

    /// A failed key: counted against the address, refused.
    fn key_failed(&self, ip: Option<IpAddr>) -> KeyRefusal {
        let Some(ip) = ip else {
            return KeyRefusal::Invalid;
        };
        match self.by_ip.begin(ip) {
            Ok(attempt) => {
                attempt.failed();
                KeyRefusal::Invalid
            }
            Err(retry) => KeyRefusal::Throttled(retry),
        }
    }

    /// A stored record as this generation checks it: its owner's current
    /// state and roles.
    fn known(&self, r: ApiKeyRecord) -> Known {
        let mut hash = [0u8; 32];
        let hash_ok = hex::decode_to_slice(&r.hash, &mut hash).is_ok();
        let caller = self
            .users
            .get(&r.owner)
            .filter(|u| !u.disabled && u.name == r.owner && hash_ok)
            .map(|u| {
                let roles: Vec<&str> = r
                    .roles
                    .iter()
                    .filter(|role| u.roles.contains(role))
                    .map(String::as_str)
                    .collect();
                Arc::new(Caller {
                    user: u.name.clone(),
                    roles: roles.join(","),
                })
            });
        Known {
            noted: AtomicU64::new(r.last_used_at.unwrap_or(0)),
            id: r.id,
            hash,
            expires_at: r.expires_at,
            caller,
        }
    }

    /// Make a key for `owner` (a user of the users file, enabled): the key,
    /// shown once, and its record. `roles` `None`: the owner's roles.
    ///
    /// # Errors
    /// No store; an owner who cannot log in; a role the owner lacks; a bad
    /// name; the store failing.
    pub(crate) async fn create_api_key(
        &self,
        owner: &str,
        roles: Option<Vec<String>>,
        name: &str,
        lifetime: Option<Duration>,
        created_by: &str,
    ) -> Result<(String, ApiKeyRecord), CreateError> {
        let Some(keys) = &self.api_keys else {
            return Err(CreateError::Store(
                "API keys need a credential store".to_owned(),
            ));
        };
        let user = self
            .users
            .get(owner)
            .filter(|u| !u.disabled)
            .ok_or(CreateError::Owner)?;
        let roles = roles.unwrap_or_else(|| user.roles.clone());
        if let Some(r) = roles.iter().find(|r| !user.roles.contains(r)) {
            return Err(CreateError::Role(r.clone()));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(CreateError::Name);
        }
        debug_assert!(roles.iter().all(|r| names::check_role(r).is_ok()));
        let mut id = [0u8; ID_HEX / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        getrandom::getrandom(&mut id).expect("the OS CSPRNG must be available");
        getrandom::getrandom(&mut secret).expect("the OS CSPRNG must be available");
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let now = unix_now();
        let record = ApiKeyRecord {
            id: id.clone(),
            owner: user.name.clone(),
            roles,
            name: name.to_owned(),
            hash: hex::encode(digest(&secret)),
            created_at: now,
            expires_at: lifetime.map(|l| now + l.as_secs().max(1)),
            created_by: created_by.to_owned(),
            last_used_at: None,
        };
        keys.home
            .put(&record)
            .await
            .map_err(|StoreError::Unavailable(e)| CreateError::Store(e))?;
        tracing::info!(target: "auth", key = %id, owner = %record.owner, by = created_by, "API key created");
        Ok((format!("{PREFIX}{id}_{secret}"), record))
    }

    /// Revoke the key `id` (of `owner` only, when given). Whether it existed.
    ///
    /// # Errors
    /// The store failing.
    pub(crate) async fn revoke_api_key(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(keys) = &self.api_keys else {
            return Ok(false);
        };
        // Only an id of the key format names a key: nothing else reaches the store.
        if !is_id(id) {
            return Ok(false);
        }
        if let Some(owner) = owner {
            match keys.home.get(id).await? {
                Some(r) if r.owner == owner => {}
                _ => return Ok(false),
            }
        }
        let removed = keys.home.remove(id).await?.is_some();
        keys.known.invalidate(id);
        if removed {
            tracing::info!(target: "auth", key = %id, "API key revoked");
        }
        Ok(removed)
    }

    /// Revoke every key of `owner`; how many there were.
    ///
    /// # Errors
    /// The store failing.
    pub(crate) async fn revoke_api_keys_of(&self, owner: &str) -> Result<usize, StoreError> {
        let Some(keys) = &self.api_keys else {
            return Ok(0);
        };
        let mut n = 0;
        for r in keys.home.list(Some(owner)).await? {
            if keys.home.remove(&r.id).await?.is_some() {
                n += 1;
            }
            keys.known.invalidate(&r.id);
        }
        Ok(n)
    }

    /// Every key, or `owner`'s; expired ones included (marked by their expiry).
    ///
    /// # Errors
    /// The store failing.
    pub(crate) async fn list_api_keys(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        match &self.api_keys {
            Some(keys) => keys.home.list(owner).await,
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_key_splits() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(32);
        let key = format!("sgk_{id}_{secret}");
        assert_eq!(split(&key), Some((id, secret.as_str())));
        for bad in [
            format!("sgk_{id}_{secret}0"),
            format!("sgk_{id}0_{secret}"),
            format!("sgk_{}_{secret}", id.to_uppercase()),
            format!("sgx_{id}_{secret}"),
            format!("sgk_{id}{secret}"),
            "sgk_".to_owned(),
            String::new(),
        ] {
            assert_eq!(split(&bad), None, "{bad}");
        }
    }
}
