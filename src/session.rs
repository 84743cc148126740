//! Sessions and where they live.
//!
//! A [`Session`] is keyed by its [`SessionKey`], the SHA-256 of the raw id: the
//! store, logs and admin views only ever see the key, so a leaked listing cannot
//! be replayed as a cookie (DESIGN.md §2). Every session has an idle expiry that
//! slides on use and an absolute expiry fixed at creation (OWASP Session
//! Management: idle and absolute timeouts).
//!
//! [`SessionStore`] is the seam for other stores (`redis_store`): the proxy only
//! talks to the trait. The embedded default, [`MemoryStore`], lives in
//! [`crate::memory_store`] and is re-exported here; the shared store is
//! [`crate::redis_store`].
//!
//! This module does not parse cookies or decide access.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cookie::SessionId;

pub use crate::memory_store::MemoryStore;

/// Milliseconds since the Unix epoch: the one clock sessions are stamped with.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The store's handle for a session: SHA-256 of the raw id. Safe to show.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key of a raw session id.
    pub fn of(id: &SessionId) -> Self {
        SessionKey(Sha256::digest(id.as_bytes()).into())
    }

    /// Lower-case hex, as shown in logs and the admin API.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse the hex form; `None` unless it is exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(SessionKey(out))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", &self.to_hex()[..12])
    }
}

/// One session. Fields derived for the request path (`roles_header`,
/// `data_header`) are computed once when the session is written, not per request.
#[derive(Debug)]
pub struct Session {
    pub key: SessionKey,
    /// `None` for an anonymous session (one that only carries data).
    pub user: Option<String>,
    pub roles: Vec<String>,
    pub data: Map<String, Value>,
    pub created_at: u64,
    pub absolute_expires_at: u64,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// Idle lifetime; the session dies `idle` after its last use.
    pub idle: Duration,
    last_seen: AtomicU64,
    roles_header: String,
    data_header: Option<String>,
}

impl Clone for Session {
    fn clone(&self) -> Self {
        let mut s = Session::new(
            self.key,
            self.user.clone(),
            self.roles.clone(),
            self.data.clone(),
            self.created_at,
            self.absolute_expires_at,
            self.idle,
        );
        s.client_ip = self.client_ip;
        s.user_agent = self.user_agent.clone();
        s.last_seen = AtomicU64::new(self.last_seen_at());
        s
    }
}

impl Session {
    /// A session created at `created_at` (unix ms), alive until `absolute_expires_at`.
    pub fn new(
        key: SessionKey,
        user: Option<String>,
        roles: Vec<String>,
        data: Map<String, Value>,
        created_at: u64,
        absolute_expires_at: u64,
        idle: Duration,
    ) -> Self {
        let roles_header = roles.join(",");
        let data_header = (!data.is_empty()).then(|| Value::Object(data.clone()).to_string());
        Session {
            key,
            user,
            roles,
            data,
            created_at,
            absolute_expires_at,
            client_ip: None,
            user_agent: None,
            idle,
            last_seen: AtomicU64::new(created_at),
            roles_header,
            data_header,
        }
    }

    /// Replace the data (recomputing what the request path sends upstream).
    pub fn set_data(&mut self, data: Map<String, Value>) {
        self.data_header = (!data.is_empty()).then(|| Value::Object(data.clone()).to_string());
        self.data = data;
    }

    /// When the session was last used (unix ms).
    pub fn last_seen_at(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Record a use at `now` (unix ms).
    pub fn mark_seen(&self, now: u64) {
        self.last_seen.fetch_max(now, Ordering::Relaxed);
    }

    /// When the session dies if it is not used again: the earlier of idle and absolute.
    pub fn expires_at(&self) -> u64 {
        (self.last_seen_at() + self.idle.as_millis() as u64).min(self.absolute_expires_at)
    }

    /// Whether the session is alive at `now` (unix ms).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// `X-User-Roles` as sent upstream: roles joined with `,`.
    pub fn roles_header(&self) -> &str {
        &self.roles_header
    }

    /// `X-Session-Data` as sent upstream: the data as compact JSON, if any.
    pub fn data_header(&self) -> Option<&str> {
        self.data_header.as_deref()
    }

    /// Time left until the absolute expiry, from `now` (unix ms).
    pub(crate) fn absolute_left(&self, now: u64) -> Duration {
        Duration::from_millis(self.absolute_expires_at.saturating_sub(now))
    }
}

/// A store failure. The memory store cannot fail; a networked store can, and
/// the proxy answers 503 rather than treating the visitor as anonymous.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions live. Implementations must honour both expiries: a session
/// past either is never returned, whatever their internal clean-up schedule.
///
/// The methods return `impl Future + Send` rather than being `async fn` so the
/// proxy can stay generic over the store without boxing a future per request.
pub trait SessionStore: Send + Sync + 'static {
    /// Store a new session.
    fn create(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Arc<Session>, StoreError>> + Send;
    /// The live session for `key`, if any. Loading is using: the idle expiry slides.
    fn load(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send;
    /// Slide the idle expiry without reading the session back.
    fn touch(&self, key: &SessionKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replace a session that already exists (e.g. new data); a no-op if it died meanwhile.
    fn update(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send;
    /// Remove a session; true when one was there.
    fn destroy(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every live session, in no particular order. Does not slide any expiry.
    fn list(&self) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send;
    /// The live sessions of one user, without scanning the others. Does not slide any expiry.
    fn list_user(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send;
    /// Counts for `/stats` and `/metrics`.
    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;
    /// Whether the store can serve requests now (for `/readyz`).
    fn healthy(&self) -> bool {
        true
    }
}

/// Figures about a store, for `/stats` and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Sessions held (may briefly include expired ones awaiting clean-up).
    pub entries: u64,
    /// Sessions evicted because the store was full.
    pub evictions: u64,
    pub capacity: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_of_id_and_round_trips_hex() {
        let id = SessionId::generate();
        let key = SessionKey::of(&id);
        assert_eq!(key.to_hex(), hex::encode(Sha256::digest(id.as_bytes())));
        assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(SessionKey::from_hex("zz"), None);
    }
}
