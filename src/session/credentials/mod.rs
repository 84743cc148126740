//! The credential store: what proves a client other than its session and must
//! outlive a restart, kept where the operator's sessions are kept. Today the
//! API keys ([`ApiKeyRecord`]); the second factor's enrolments are to live
//! here too, as more record kinds in the same two homes.
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

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::session::StoreError;

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
}
