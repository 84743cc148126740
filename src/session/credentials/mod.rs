//! The credential store: what proves a client other than its session and must
//! outlive a restart, kept where the operator's sessions are kept: the API
//! keys ([`ApiKeyRecord`]) and each user's second factors ([`FactorRecord`]),
//! with the two counters the second factor needs on every instance (failed
//! codes per account, and codes already used).
//!
//! Two homes, one interface ([`Home`]):
//! - with the Redis store, in Redis beside the sessions
//!   (`session::redis::credentials`), so every instance sees the same keys;
//! - with the memory store, in the file `store.credentials_file` ([`file`]),
//!   written atomically (a temporary file, fsync, rename, fsync of the
//!   directory), so a crash leaves the old file or the new, never half.
//!
//! A record holds no secret: an API key's secret is stored as its SHA-256
//! only (the secret is 256 random bits, so a fast hash is enough: there is
//! nothing to guess that a slow hash would protect).

pub(crate) mod file;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::session::StoreError;

/// A key for [`Home::first_use`]: a hash of the parts, so a user name or
/// another's secret (a provider's, an app's session id) never shapes a Redis
/// key, and one part cannot run into the next.
pub(crate) fn once_token(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// One API key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    /// The public part of the key (`sgk_<id>_...`): 16 lower-case hex digits.
    pub id: String,
    /// The user it acts as; must be in the users file, enabled, at each use.
    pub owner: String,
    /// The roles it carries: at most its owner's (checked at each use too).
    pub roles: Vec<String>,
    /// What the key is for, as its creator put it.
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None`: until revoked.
    pub expires_at: Option<u64>,
    /// "admin" (the admin API or page) or "self" (the owner's sessions page).
    pub created_by: String,
    /// Unix seconds of the last use, to a minute or so; `None`: never used.
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

/// A user's second factors. Holds no usable secret in the clear: the TOTP
/// secret is sealed with `[auth.second_factor] keys` (`auth::sealing`),
/// recovery codes are kept as their SHA-256, and a passkey is a public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FactorRecord {
    /// The user, as the users file spells it (canonical).
    pub user: String,
    /// The authenticator app, if enrolled.
    #[serde(default)]
    pub totp: Option<TotpFactor>,
    /// SHA-256 (hex) of each recovery code not yet used.
    #[serde(default)]
    pub recovery: Vec<String>,
    /// Passkeys (WebAuthn credentials), in the order they were added.
    #[serde(default)]
    pub passkeys: Vec<PasskeyFactor>,
    /// The WebAuthn user handle of this user (a random UUID, made with the
    /// first passkey): what a passkey alone says it is for.
    #[serde(default)]
    pub handle: Option<String>,
    /// Unix seconds of the last enrolment or reset of codes.
    pub updated_at: u64,
}

impl FactorRecord {
    /// Whether the record holds a factor that can be asked for (recovery
    /// codes alone are a way back in, not a factor).
    pub(crate) fn has_factor(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }
}

/// One passkey of a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PasskeyFactor {
    /// What the user called it ("laptop", "phone").
    pub name: String,
    /// The credential id, base64url: how the user names it to remove it.
    pub id: String,
    /// The public key and its signature counter (`webauthn-rs`).
    pub key: webauthn_rs::prelude::Passkey,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

/// An enrolled authenticator app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TotpFactor {
    /// The shared secret, sealed (AEAD) and bound to the user.
    pub sealed: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// Where credential records live.
#[async_trait]
pub(crate) trait Home: Send + Sync + 'static {
    /// The key `id`, if it exists (an expired one may be returned).
    async fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Store a new key.
    async fn put(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Remove the key `id`; the record it was, if any.
    async fn remove(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, or those of `owner`.
    async fn list(&self, owner: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Note that `id` was used at `at` (unix seconds).
    async fn used(&self, id: &str, at: u64) -> Result<(), StoreError>;

    /// The second factors of `user`, if any were enrolled.
    async fn factors(&self, user: &str) -> Result<Option<FactorRecord>, StoreError>;
    /// Store `record`, replacing the user's previous one.
    async fn put_factors(&self, record: &FactorRecord) -> Result<(), StoreError>;
    /// Forget every factor of `user`; whether there was a record.
    async fn remove_factors(&self, user: &str) -> Result<bool, StoreError>;
    /// Every user's factors.
    async fn list_factors(&self) -> Result<Vec<FactorRecord>, StoreError>;
    /// True the first time `token` is presented within `ttl`, false after, on
    /// every instance sharing the home: a TOTP code, a recovery code, a
    /// pending sign-in, each accepted once.
    async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Count an attempt at `user`'s factor before it is checked; the
    /// attempts within `window` of the first one, this one included. Counted
    /// first, atomically, so parallel guesses cannot all read a count below
    /// the limit; a passed attempt is given back ([`Home::factor_refund`]).
    async fn factor_attempt(&self, user: &str, window: Duration) -> Result<u32, StoreError>;
    /// Give back one attempt of `user`'s (it passed).
    async fn factor_refund(&self, user: &str) -> Result<(), StoreError>;
    /// The user whose record has the WebAuthn user handle `handle`.
    async fn user_of_handle(&self, handle: &str) -> Result<Option<String>, StoreError>;
    /// Remember for `ttl` that `link` (a provider's subject or session id,
    /// as `auth::oidc::backchannel` spells it) names `user`: how its
    /// back-channel logout finds sessions without a scan.
    async fn link(&self, link: &str, user: &str, ttl: Duration) -> Result<(), StoreError>;
    /// The user `link` names, if remembered.
    async fn linked(&self, link: &str) -> Result<Option<String>, StoreError>;
}
