//! A session's life across one request, the express-session way: find it from
//! the cookie, create it only when something is stored (`save_uninitialized`),
//! write it back only when changed (`resave`), re-send the cookie when asked
//! (`rolling`), regenerate the id at every login and destroy it at logout.
//!
//! [`SessionManager`] owns the signer, the store and the session settings; the proxy
//! and the login endpoints both go through it, so there is one place that
//! decides when a `Set-Cookie` goes out. [`RequestSession`] is the per-request state.
//!
//! This module does not parse requests beyond the `Cookie` header, and it does
//! not decide access.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use crate::session::cookie::{self, CookieAttrs};
use crate::session::signing::{Secret, SessionId, Signer};
use crate::session::{
    now_ms, Freshness, ProviderSession, Session, SessionKey, SessionStore, StoreError,
};

/// Session and cookie settings.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The first signs; all verify (rotation).
    pub secrets: Vec<Secret>,
    /// Store (and send a cookie for) a session nobody wrote to.
    pub save_uninitialized: bool,
    /// Write an unchanged session back on every request.
    pub resave: bool,
    /// Re-send the cookie on every response to a request with a live session.
    pub rolling: bool,
    /// Server-side idle lifetime (equals the cookie's `max_age` when that is set).
    pub idle_timeout: Duration,
    /// Hard cap from creation, however busy the session (OWASP).
    pub absolute_timeout: Duration,
    /// Most logged-in sessions the memory store keeps.
    pub capacity: u64,
    /// Most anonymous sessions the memory store keeps, in a cache of their own.
    pub anonymous_capacity: u64,
    /// Most sessions one user holds (both stores); a login past it ends the oldest.
    pub max_per_user: usize,
    /// Name and attributes of the session cookie.
    pub cookie: CookieAttrs,
}

/// Most bytes of session data (as JSON) a session may hold.
pub(crate) const MAX_DATA_BYTES: usize = 8 * 1024;

/// Cookies of our name tried per request; the rest are ignored.
const MAX_CANDIDATES: usize = 3;

/// The session state of one request.
#[derive(Debug, Default)]
pub struct RequestSession {
    /// The live session, if any.
    pub session: Option<Arc<Session>>,
    /// Its raw id (needed to re-sign the cookie); never logged.
    id: Option<SessionId>,
    /// The cookie verified with an older secret.
    resign: bool,
    /// Created or changed during this request: the cookie must be sent.
    dirty: bool,
    /// Destroyed during this request: a clearing cookie must be sent.
    clear: bool,
    /// Written back during this request (so `resave` does not write it twice).
    written: bool,
}

impl RequestSession {
    /// The user of an authenticated session.
    pub fn user(&self) -> Option<&str> {
        self.session.as_deref().and_then(|s| s.user())
    }
}

/// What a new session records about the client that made it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// The request came over HTTPS (for cookies set outside the session's).
    pub https: bool,
    /// The peer is a trusted proxy, so its `X-Forwarded-Host` names the host
    /// the browser used (the same-origin check of the forms).
    pub via_trusted_proxy: bool,
}

/// The express-session life cycle over one store.
pub struct SessionManager<S> {
    store: Arc<S>,
    signer: Signer,
    config: SessionOptions,
    /// Shared by every config generation's manager over the same store.
    writes: Arc<AtomicU64>,
}

impl<S: SessionStore> SessionManager<S> {
    /// The lifecycle for `config` over `store`.
    pub fn new(config: SessionOptions, store: Arc<S>) -> Self {
        let signer = Signer::new(&config.cookie.name, &config.secrets);
        SessionManager {
            store,
            signer,
            config,
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The manager of a reloaded config: new options and secrets over the
    /// same store, so every session lives on.
    pub fn next(&self, config: SessionOptions) -> Self {
        SessionManager {
            signer: Signer::new(&config.cookie.name, &config.secrets),
            store: self.store.clone(),
            config,
            writes: self.writes.clone(),
        }
    }

    /// The store behind this lifecycle.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The session settings.
    pub fn config(&self) -> &SessionOptions {
        &self.config
    }

    /// Full session writes (create or replace) so far: how `resave` is observed.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Find the session the request's cookie names. A cookie that does not
    /// verify, or names no live session, means anonymous; it is logged with a
    /// fixed message that says neither the value nor which check failed.
    ///
    /// # Errors
    /// Only when the store itself fails.
    pub async fn resolve(&self, headers: &HeaderMap) -> Result<RequestSession, StoreError> {
        let name = self.config.cookie.name.as_str();
        let (mut forged, mut stale) = (false, false);
        // A request may carry a few cookies of our name (one planted by a sibling
        // domain, say), never thousands: each costs a MAC and a store lookup.
        let mut tried = 0;
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            // Every cookie of our name is tried, so a duplicate planted by a
            // sibling domain cannot shadow the real one.
            for candidate in cookie::find(value, name) {
                tried += 1;
                if tried > MAX_CANDIDATES {
                    forged = true;
                    break;
                }
                let Some(verified) = self.signer.verify(candidate) else {
                    forged = true;
                    continue;
                };
                stale = true;
                if let Some(session) = self.store.load(&SessionKey::of(&verified.id)).await? {
                    return Ok(RequestSession {
                        session: Some(session),
                        id: Some(verified.id),
                        resign: verified.resign,
                        ..RequestSession::default()
                    });
                }
            }
        }
        // Fixed messages: never the value, and the client is never told which.
        if forged {
            crate::metrics::METRICS
                .cookie_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("possibly suspicious activity: session cookie did not verify");
        } else if stale {
            // Expired, logged out or revoked: routine, not suspicious.
            tracing::debug!("session cookie names no live session");
        }
        Ok(RequestSession::default())
    }

    /// `save_uninitialized = true`: give a visitor without a session a stored,
    /// anonymous one (and its cookie).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn ensure_uninitialized(
        &self,
        cur: &mut RequestSession,
        client: &Client,
    ) -> Result<(), StoreError> {
        if self.config.save_uninitialized && cur.session.is_none() {
            self.create(cur, None, Vec::new(), Map::new(), client)
                .await?;
        }
        Ok(())
    }

    /// Log `user` in: the previous session (if any) is destroyed and a new one
    /// with a new id is created, so an id planted before login is worthless
    /// (session fixation, OWASP).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn login(
        &self,
        cur: &mut RequestSession,
        user: String,
        roles: Vec<String>,
        client: &Client,
    ) -> Result<(), StoreError> {
        self.login_with(cur, user, roles, Map::new(), 0, client)
            .await
    }

    /// [`Self::login`] with session data from the start (the OIDC provider),
    /// and when the user passed a second factor (unix ms; 0: not in this
    /// sign-in).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn login_with(
        &self,
        cur: &mut RequestSession,
        user: String,
        roles: Vec<String>,
        data: Map<String, Value>,
        factor_at: u64,
        client: &Client,
    ) -> Result<(), StoreError> {
        let sign_in = SignIn {
            factor_at,
            ..SignIn::default()
        };
        self.login_from(cur, user, roles, data, sign_in, client)
            .await
    }

    /// [`Self::login_with`] with what the sign-in proved besides the user:
    /// its second factor, the provider's session, the user's claims.
    ///
    /// # Errors
    /// When the store fails.
    pub(crate) async fn login_from(
        &self,
        cur: &mut RequestSession,
        user: String,
        roles: Vec<String>,
        data: Map<String, Value>,
        sign_in: SignIn,
        client: &Client,
    ) -> Result<(), StoreError> {
        let SignIn {
            factor_at,
            provider_session,
            claims,
            fresh,
        } = sign_in;
        // The same user signing in again in this browser (a second factor
        // passed, a factor set up) stays the same sign-in: the sessions it
        // opened on other domains stay tied to it.
        let mut login = 0;
        if let Some(old) = cur.session.take() {
            if old.user() == Some(user.as_str()) {
                login = old.login;
            }
            self.store.destroy(&old.key).await?;
        }
        if login == 0 {
            login = new_login();
        }
        let joined = Joined {
            factor_at,
            login,
            provider_session: provider_session.map(Box::new),
            claims: crate::session::claims_of(claims),
            fresh: fresh.map(Box::new),
        };
        self.create_with(cur, Some(user), roles, data, joined, client)
            .await
    }

    /// Open a session here for the sign-in `login` belongs to (a browser
    /// back from the login site, `auth::hop`): the same user, roles and
    /// second factor, a new id, and none of its data (each site's data is its
    /// own).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn join(
        &self,
        cur: &mut RequestSession,
        login: &Session,
        client: &Client,
    ) -> Result<(), StoreError> {
        // Only the session this browser had here ends: ending its sign-in
        // would end the very one being joined, everywhere.
        if let Some(old) = cur.session.take() {
            self.store.destroy(&old.key).await?;
        }
        let user = login.user().map(str::to_owned);
        let roles = login.roles().map(str::to_owned).collect();
        let joined = Joined {
            factor_at: login.factor_at,
            login: login.login,
            provider_session: login.provider_session.clone(),
            claims: login.claims.clone(),
            // One refresh token, one session that uses it: two would race
            // each other's rotations. The sign-in's own session re-checks,
            // and its end ends this one ([`Self::end_login`]).
            fresh: None,
        };
        self.create_with(cur, user, roles, Map::new(), joined, client)
            .await
    }

    /// Destroy the session server-side and clear the cookie; every session
    /// of the same sign-in on other domains ends with it.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn logout(&self, cur: &mut RequestSession) -> Result<(), StoreError> {
        if let Some(old) = cur.session.take() {
            self.end_login(&old).await?;
        }
        *cur = RequestSession {
            clear: true,
            ..RequestSession::default()
        };
        Ok(())
    }

    /// End `s` and every other session of its sign-in (the same user and
    /// `login` label: the sessions a cross-domain sign-in opened). Returns
    /// how many ended.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn end_login(&self, s: &Session) -> Result<usize, StoreError> {
        let mut n = usize::from(self.store.destroy(&s.key).await?);
        let (Some(user), login) = (s.user(), s.login) else {
            return Ok(n);
        };
        if login == 0 {
            return Ok(n);
        }
        for other in self.store.list_user(user).await? {
            if other.login == login && other.key != s.key && self.store.destroy(&other.key).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Write back what a provider's re-check found (`auth::oidc::fresh`):
    /// the same session under the same id, with its roles, claims and
    /// refresh token replaced in `changed`. `Ok(false)` when it ended
    /// meanwhile (a logout, a revoke on another instance).
    ///
    /// # Errors
    /// When the store fails.
    pub(crate) async fn refreshed(
        &self,
        cur: &mut RequestSession,
        changed: Session,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        cur.session = self.store.update(changed).await?;
        cur.written = true;
        Ok(cur.session.is_some())
    }

    /// Merge `data` into the session, creating an anonymous one if there is none.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn merge_data(
        &self,
        cur: &mut RequestSession,
        data: Map<String, Value>,
        client: &Client,
    ) -> Result<(), StoreError> {
        let Some(s) = cur.session.as_deref() else {
            return self.create(cur, None, Vec::new(), data, client).await;
        };
        let mut changed = s.clone();
        self.carry_fresh(&mut changed).await?;
        let mut merged = changed.data();
        merged.extend(data);
        changed.set_data(merged);
        // The whole of it goes upstream with every request: bound the total,
        // not only each command.
        if changed.data_header().map_or(0, str::len) > MAX_DATA_BYTES {
            tracing::warn!(
                "session data past {MAX_DATA_BYTES} bytes refused; the session keeps its data"
            );
            return Ok(());
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        cur.session = self.store.update(changed).await?;
        cur.dirty = cur.session.is_some();
        cur.written = true;
        Ok(())
    }

    async fn create(
        &self,
        cur: &mut RequestSession,
        user: Option<String>,
        roles: Vec<String>,
        data: Map<String, Value>,
        client: &Client,
    ) -> Result<(), StoreError> {
        self.create_with(cur, user, roles, data, Joined::NONE, client)
            .await
    }

    async fn create_with(
        &self,
        cur: &mut RequestSession,
        user: Option<String>,
        roles: Vec<String>,
        data: Map<String, Value>,
        joined: Joined,
        client: &Client,
    ) -> Result<(), StoreError> {
        let id = SessionId::generate();
        let now = now_ms();
        let mut s = Session::new(
            SessionKey::of(&id),
            user,
            roles,
            data,
            now,
            now + self.config.absolute_timeout.as_millis() as u64,
            self.config.idle_timeout,
        )
        .with_client(client.ip, client.user_agent.as_deref());
        s.factor_at = joined.factor_at;
        s.login = joined.login;
        s.provider_session = joined.provider_session;
        s.claims = joined.claims;
        s.fresh = joined.fresh;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let stored = self.store.create(s).await?;
        *cur = RequestSession {
            session: Some(stored),
            id: Some(id),
            dirty: true,
            written: true,
            ..RequestSession::default()
        };
        Ok(())
    }

    /// The one `Set-Cookie` this response needs, if any: a clearing cookie after
    /// logout; the session cookie when the session was created or changed, was
    /// signed with an older secret (rotation), or `rolling` is on.
    pub fn set_cookie(&self, cur: &RequestSession, https: bool) -> Option<String> {
        if cur.clear {
            return Some(self.config.cookie.clear_cookie(https));
        }
        let id = cur.id.as_ref()?;
        cur.session.as_ref()?;
        (cur.dirty || cur.resign || self.config.rolling)
            .then(|| self.config.cookie.set_cookie(&self.signer.sign(id), https))
    }

    /// End of request: with `resave`, write an unchanged session back in full
    /// (express-session's `resave: true`); otherwise loading it already moved
    /// its idle expiry.
    pub async fn finish(&self, cur: &RequestSession) {
        if !self.config.resave || cur.written {
            return;
        }
        if let Some(s) = cur.session.as_deref() {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let mut again = s.clone();
            if let Err(e) = self.carry_fresh(&mut again).await {
                tracing::warn!(error = %e, "resave failed");
                return;
            }
            if let Err(e) = self.store.update(again).await {
                tracing::warn!(error = %e, "resave failed");
            }
        }
    }

    /// A session a provider re-checks (`auth::oidc::fresh`), written back
    /// whole by a request that loaded it earlier (a backend's data, a
    /// resave): it keeps what the store holds now of the re-check (its
    /// roles, claims and refresh token), which another request may have
    /// changed meanwhile. A store read, for such sessions only; a re-check
    /// that lands between the read and the write can still be undone (it
    /// is then asked again after the first-use turn, `TURN`).
    async fn carry_fresh(&self, changed: &mut Session) -> Result<(), StoreError> {
        if changed.fresh.is_none() {
            return Ok(());
        }
        if let Some(now) = self.store.peek(&changed.key).await? {
            if now.fresh != changed.fresh {
                let roles: Vec<String> = now.roles().map(str::to_owned).collect();
                changed.set_roles(&roles);
                changed.claims = now.claims.clone();
                changed.fresh = now.fresh.clone();
            }
        }
        Ok(())
    }

    /// [`Self::end_login`] for the session under `key`: how many ended (0:
    /// no such session).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn end_login_of(&self, key: &SessionKey) -> Result<usize, StoreError> {
        match self.store.peek(key).await? {
            Some(s) => self.end_login(&s).await,
            None => Ok(usize::from(self.store.destroy(key).await?)),
        }
    }

    /// Destroy every session of `user` (the user was removed or disabled).
    /// Returns how many were destroyed.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn destroy_user(&self, user: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for s in self.store.list_user(user).await? {
            if self.store.destroy(&s.key).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;

/// What a new session takes over from its sign-in.
struct Joined {
    /// When the sign-in passed a second factor (unix ms; 0: not).
    factor_at: u64,
    /// Its label ([`Session::login`]; 0: none).
    login: u64,
    /// The provider's session it came from ([`Session::provider_session`]).
    provider_session: Option<Box<ProviderSession>>,
    /// The user's claims ([`Session::claims`]).
    claims: Option<crate::session::Claims>,
    /// Its provider's re-checks ([`Session::fresh`]).
    fresh: Option<Box<Freshness>>,
}

impl Joined {
    const NONE: Joined = Joined {
        factor_at: 0,
        login: 0,
        provider_session: None,
        claims: None,
        fresh: None,
    };
}

/// What a sign-in proved besides the user and roles.
#[derive(Debug, Default)]
pub(crate) struct SignIn {
    /// When a second factor passed (unix ms; 0: not in this sign-in).
    pub factor_at: u64,
    /// The provider's session it came from, for its back-channel logout.
    pub provider_session: Option<ProviderSession>,
    /// The user's claims for the backend: (claim, value), each checked.
    pub claims: Vec<(String, String)>,
    /// A provider's re-checks: its sealed refresh token.
    pub fresh: Option<Freshness>,
}

/// A new sign-in's label: random, never 0 (0 is "none").
fn new_login() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS CSPRNG must be available");
    u64::from_le_bytes(b).max(1)
}
