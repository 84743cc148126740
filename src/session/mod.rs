//! Sessions and where they live.
//!
//! A [`Session`] is keyed by its [`SessionKey`], the SHA-256 of the raw id: the
//! store, logs and admin views only ever see the key, so a leaked listing cannot
//! be replayed as a cookie. Every session has an idle expiry that
//! slides on use and an absolute expiry fixed at creation (OWASP Session
//! Management: idle and absolute timeouts).
//!
//! [`SessionStore`] is the store contract: the manager only talks to the
//! trait. The embedded default, [`MemoryStore`], is in [`memory`]; the shared
//! store in [`redis`].
//!
//! Submodules: [`signing`] (ids, secrets, the signed value: the only crypto),
//! [`cookie`] (our cookie in headers), [`manager`] (a session's life across one
//! request), [`memory`] and [`redis`] (the stores). Nothing here decides access.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub(crate) mod cookie;
pub(crate) mod credentials;
pub(crate) mod manager;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod signing;

use self::signing::SessionId;

pub use self::memory::{MemoryOptions, MemoryStore};

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

    /// The raw digest (the memory store's hash and shard come from it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
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

/// One session, laid out to be small: a million of them must fit in a few
/// hundred MiB (bench/README.md: at most 500 bytes each, store included). The strings
/// (user, roles as sent upstream, user agent, data as sent upstream) share one
/// allocation; roles and data are kept in their header form, the only form the
/// request path needs, and parsed back only for the rare views that want them.
pub struct Session {
    /// Its store key (SHA-256 of the id).
    pub key: SessionKey,
    /// `user | roles_header | user_agent | data_header`, split by the lengths below.
    text: Box<str>,
    user_len: u32,
    roles_len: u32,
    agent_len: u32,
    has_user: bool,
    has_agent: bool,
    /// The client address it was created from.
    pub client_ip: Option<IpAddr>,
    /// When it was created (unix ms).
    pub created_at: u64,
    /// When it dies however busy it is (unix ms).
    pub absolute_expires_at: u64,
    /// When its user last passed a second factor (unix ms); 0: never in this
    /// session. Set only by sessiongate's own sign-in (`auth::factor`), never
    /// from session data, which a backend can write.
    pub factor_at: u64,
    /// The sign-in this session belongs to (random; 0: none). A sign-in that
    /// hops to other domains (`auth::hop`) gives each domain's session the
    /// same value, so that ending one ends them all
    /// ([`manager::SessionManager::end_login`]). A label, not a secret.
    pub login: u64,
    /// The provider's session this one came from (an OpenID Connect
    /// sign-in), for its back-channel logout; `None` for every other sign-in.
    pub(crate) provider_session: Option<Box<ProviderSession>>,
    /// The user's claims its sign-in recorded for the backend (`email`,
    /// `name`, named claims), each in the identity alphabet: (claim, value).
    pub(crate) claims: Option<Claims>,
    /// A provider that re-checks its users (`recheck_every`): the sealed
    /// refresh token and when the user was last confirmed; `None` for every
    /// other sign-in ([`Freshness`]).
    pub(crate) fresh: Option<Box<Freshness>>,
    idle_ms: u64,
    last_seen: AtomicU64,
}

/// A session's recorded claims: (claim, value), in one allocation.
pub(crate) type Claims = Box<[(Box<str>, Box<str>)]>;

/// Recorded claims as a session keeps them; none: `None`.
pub(crate) fn claims_of(claims: Vec<(String, String)>) -> Option<Claims> {
    (!claims.is_empty()).then(|| {
        claims
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
            .collect()
    })
}

/// How a session signed in through a provider that re-checks its users stays
/// fresh (`auth::oidc::fresh`): the provider asks again, with this refresh
/// token, once `checked_at` is older than its `recheck_every`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Freshness {
    /// The provider's id (`[[auth.oidc]] id`).
    pub provider: String,
    /// The user's `sub` there: a re-check's answer must name it.
    pub sub: String,
    /// The refresh token, sealed (`auth::sealing::REFRESH_TOKEN`): never
    /// plain at rest, in a log or upstream.
    pub sealed: String,
    /// When the provider last confirmed the user (unix ms).
    pub checked_at: u64,
}

/// Who an OpenID provider said signed in, and in which of its sessions: what
/// its back-channel logout token names (`auth::oidc::backchannel`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProviderSession {
    /// The provider's id (`[[auth.oidc]] id`).
    pub provider: String,
    /// The ID token's `sub`.
    pub sub: String,
    /// The ID token's `sid`, when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The longest user agent kept with a session; the rest is cut off so a client
/// cannot make its session record arbitrarily large.
pub(crate) const MAX_USER_AGENT: usize = 256;

impl Clone for Session {
    fn clone(&self) -> Self {
        Session {
            key: self.key,
            text: self.text.clone(),
            user_len: self.user_len,
            roles_len: self.roles_len,
            agent_len: self.agent_len,
            has_user: self.has_user,
            has_agent: self.has_agent,
            client_ip: self.client_ip,
            created_at: self.created_at,
            absolute_expires_at: self.absolute_expires_at,
            factor_at: self.factor_at,
            login: self.login,
            provider_session: self.provider_session.clone(),
            claims: self.claims.clone(),
            fresh: self.fresh.clone(),
            idle_ms: self.idle_ms,
            last_seen: AtomicU64::new(self.last_seen_at()),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("user", &self.user())
            .field("roles", &self.roles_header())
            .field("created_at", &self.created_at)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .field("last_seen", &self.last_seen_at())
            .finish_non_exhaustive()
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A session's strings laid out in one allocation, with the lengths that split them.
struct Packed {
    text: Box<str>,
    user_len: u32,
    roles_len: u32,
    agent_len: u32,
    has_agent: bool,
}

impl Packed {
    /// Lengths fit in `u32`: user names, roles, agents and data are all bounded
    /// far below that before they get here.
    fn new(user: &str, roles: &str, agent: Option<&str>, data: Option<&str>) -> Packed {
        let agent = agent.map(|a| truncated(a, MAX_USER_AGENT));
        let (agent_s, data) = (agent.unwrap_or(""), data.unwrap_or(""));
        let mut text = String::with_capacity(user.len() + roles.len() + agent_s.len() + data.len());
        for part in [user, roles, agent_s, data] {
            text.push_str(part);
        }
        Packed {
            text: text.into_boxed_str(),
            user_len: user.len() as u32,
            roles_len: roles.len() as u32,
            agent_len: agent_s.len() as u32,
            has_agent: agent.is_some(),
        }
    }
}

impl Session {
    /// A session created at `created_at` (unix ms), alive until `absolute_expires_at`.
    /// Roles must not contain `,` (the users file and `X-Session-Roles` ensure it).
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
        let data_header = data_json(&data);
        let mut s = Session {
            key,
            text: Box::default(),
            user_len: 0,
            roles_len: 0,
            agent_len: 0,
            has_user: user.is_some(),
            has_agent: false,
            client_ip: None,
            created_at,
            absolute_expires_at,
            factor_at: 0,
            login: 0,
            provider_session: None,
            claims: None,
            fresh: None,
            idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            last_seen: AtomicU64::new(created_at),
        };
        s.set_text(Packed::new(
            user.as_deref().unwrap_or(""),
            &roles_header,
            None,
            data_header.as_deref(),
        ));
        s
    }

    fn set_text(&mut self, p: Packed) {
        self.text = p.text;
        self.user_len = p.user_len;
        self.roles_len = p.roles_len;
        self.agent_len = p.agent_len;
        self.has_agent = p.has_agent;
    }

    fn parts(&self) -> (&str, &str, &str, &str) {
        let (user, rest) = self.text.split_at(self.user_len as usize);
        let (roles, rest) = rest.split_at(self.roles_len as usize);
        let (agent, data) = rest.split_at(self.agent_len as usize);
        (user, roles, agent, data)
    }

    /// Record where the session was created from (kept for the session views).
    pub fn with_client(mut self, ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        self.client_ip = ip;
        let (user, roles, _, _) = self.parts();
        let packed = Packed::new(user, roles, user_agent, self.data_header());
        self.set_text(packed);
        self
    }

    /// Replace the data.
    pub fn set_data(&mut self, data: Map<String, Value>) {
        let json = data_json(&data);
        let (user, roles, _, _) = self.parts();
        let packed = Packed::new(user, roles, self.user_agent(), json.as_deref());
        self.set_text(packed);
    }

    /// Replace the roles (a provider's re-check). Roles must not contain `,`.
    pub(crate) fn set_roles(&mut self, roles: &[String]) {
        let roles = roles.join(",");
        let (user, _, _, _) = self.parts();
        let packed = Packed::new(user, &roles, self.user_agent(), self.data_header());
        self.set_text(packed);
    }

    /// The value of the recorded claim `name`, if any.
    pub(crate) fn claim(&self, name: &str) -> Option<&str> {
        self.claims
            .as_deref()?
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    /// The user, or `None` for an anonymous session (one that only carries data).
    pub fn user(&self) -> Option<&str> {
        self.has_user.then(|| self.parts().0)
    }

    /// The roles, in order.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles_header().split(',').filter(|r| !r.is_empty())
    }

    /// The user agent the session was created from (at most `MAX_USER_AGENT`, 256, bytes).
    pub fn user_agent(&self) -> Option<&str> {
        self.has_agent.then(|| self.parts().2)
    }

    /// The session's data (parsed from its stored JSON form).
    pub fn data(&self) -> Map<String, Value> {
        match self.data_header().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        }
    }

    /// Idle lifetime; the session dies `idle` after its last use.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
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
        self.last_seen_at()
            .saturating_add(self.idle_ms)
            .min(self.absolute_expires_at)
    }

    /// Whether the session is alive at `now` (unix ms).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// `X-User-Roles` as sent upstream: roles joined with `,`.
    pub fn roles_header(&self) -> &str {
        self.parts().1
    }

    /// `X-Session-Data` as sent upstream: the data as compact JSON, if any.
    pub fn data_header(&self) -> Option<&str> {
        let data = self.parts().3;
        (!data.is_empty()).then_some(data)
    }
}

/// The data as sent upstream: compact JSON, or nothing when there is none.
fn data_json(data: &Map<String, Value>) -> Option<String> {
    if data.is_empty() {
        return None;
    }
    serde_json::to_string(data).ok()
}

/// A store failure. The memory store cannot fail; a networked store can, and
/// the proxy answers 503 rather than treating the visitor as anonymous.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer; the message says why.
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
    /// Replace a session that already exists (e.g. new data); a no-op if it died meanwhile.
    fn update(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send;
    /// Remove a session; true when one was there.
    fn destroy(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The live session for `key` without using it: its idle expiry does not
    /// slide (the admin API's view of one session).
    fn peek(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send;
    /// How many sessions there are, without reading them out.
    fn count(&self) -> impl Future<Output = Result<SessionCount, StoreError>> + Send;
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

/// How many sessions a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCount {
    /// Live sessions, logged in or not.
    pub live: u64,
    /// Of those, the ones without a user.
    pub anonymous: u64,
    /// The users with at least one live session.
    pub users: u64,
}

/// Figures about a store, for `/stats` and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Live sessions evicted because their cache was full (least recently used).
    pub evictions: u64,
    /// Sessions that died of idleness or age and were removed.
    pub expirations: u64,
    /// Sessions ended because their user logged in past `session.max_per_user`.
    pub displaced: u64,
    /// Most logged-in sessions kept (0: the store has no bound of its own).
    pub capacity: u64,
    /// Most anonymous sessions kept (0: the store has no bound of its own).
    pub anonymous_capacity: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_strings_survive_each_change_and_the_agent_is_capped() {
        let mut data = Map::new();
        data.insert("cart".into(), Value::from(2));
        let id = SessionId::generate();
        let s = Session::new(
            SessionKey::of(&id),
            Some("ålice".into()),
            vec!["a".into(), "b".into()],
            data,
            1,
            2,
            Duration::from_secs(1),
        );
        let agent = "é".repeat(200); // 400 bytes, two per character
        let mut s = s.with_client(None, Some(&agent));
        assert_eq!(s.user(), Some("ålice"));
        assert_eq!(s.roles().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.data_header(), Some(r#"{"cart":2}"#));
        assert_eq!(s.user_agent(), Some("é".repeat(128).as_str()));
        s.set_data(Map::new());
        assert_eq!(s.data_header(), None);
        assert_eq!(s.user_agent().map(str::len), Some(MAX_USER_AGENT));
        assert_eq!(s.roles_header(), "a,b");
    }

    #[test]
    fn key_is_sha256_of_id_and_round_trips_hex() {
        let id = SessionId::generate();
        let key = SessionKey::of(&id);
        assert_eq!(key.to_hex(), hex::encode(Sha256::digest(id.as_bytes())));
        assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(SessionKey::from_hex("zz"), None);
    }
}
