//! The embedded session store: [`MemoryStore`], the default, on moka.
//!
//! Two bounded `moka::sync::Cache`s, both with the LRU policy and the global
//! time-to-idle (the idle timeout):
//!
//! - **`logged_in`**: sessions with a user, `session.capacity` of them;
//! - **`anonymous`**: sessions that only carry data (`save_uninitialized`, or
//!   data stored for a visitor), `session.anonymous_capacity` of them.
//!
//! A flood of anonymous sessions therefore only ever evicts anonymous
//! sessions. A login creates a new session (new id) in `logged_in` and
//! destroys the old one, wherever it lived.
//!
//! Why `moka::sync` and not `moka::future`: every operation here is a few
//! hundred nanoseconds of in-memory work with nothing to wait for, so the
//! store's futures are always ready; the sync cache has no per-call future to
//! allocate and its eviction listener is a plain closure.
//!
//! **A dead session is never returned**, whatever moka's maintenance schedule:
//! moka itself never returns an entry past its time-to-idle, and every read
//! here also checks the session's own deadlines (idle since its last use,
//! absolute since creation) against the clock, and removes a dead one.
//!
//! **No moka time-to-live.** The absolute cap is that check on read: an entry
//! read after its cap is removed by the read, and one nobody reads is freed by
//! the time-to-idle (never longer than the absolute timeout). A time-to-live
//! would free nothing sooner, and moka keeps a second (write-order) queue for
//! it: 30 B more per session, measured with 1M entries (487 vs 457 B in a
//! moka-only test), and an update re-inserting the record would restart it
//! anyway. A housekeeping thread runs moka's pending work every second so
//! memory is freed even when no request comes.
//!
//! **One account cannot flush the others.** A user holds at most
//! `session.max_per_user` sessions; a login past that ends that user's oldest
//! session(s). Without it, logging one account in `capacity` times would evict
//! every other user.
//!
//! Its parts: `eviction.rs` (the caches as built, why LRU, their eviction
//! listener, the housekeeping thread) and `user_index.rs` (a user's sessions
//! without a scan, and which of them are past `max_per_user`).
//!
//! It does not define what a session is or the store contract; both are in
//! [`crate::session`], which re-exports this type as `session::MemoryStore`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;

mod eviction;
mod user_index;

use self::eviction::cache;
use self::user_index::UserIndex;
use crate::session::{
    now_ms, Session, SessionCount, SessionKey, SessionStore, StoreError, StoreStats,
};

/// What the memory store is built from (`[session]` in `proxy.toml`).
#[derive(Debug, Clone, Copy)]
pub struct MemoryOptions {
    /// Most logged-in sessions kept.
    pub capacity: u64,
    /// Most anonymous sessions kept, in a cache of their own.
    pub anonymous_capacity: u64,
    /// A session unused this long is gone (moka's time-to-idle). The absolute
    /// timeout is each session's own `absolute_expires_at`, checked on read.
    pub idle_timeout: Duration,
    /// Most sessions one user holds; a login past it ends their oldest.
    pub max_per_user: usize,
}

/// The embedded store.
pub struct MemoryStore {
    logged_in: Cache<SessionKey, Arc<Session>>,
    anonymous: Cache<SessionKey, Arc<Session>>,
    shared: Arc<Shared>,
    options: MemoryOptions,
    housekeeper: Once,
}

/// What the caches' eviction listeners and the store share.
struct Shared {
    users: Mutex<UserIndex>,
    /// Live sessions removed because their cache was full.
    evictions: AtomicU64,
    /// Sessions removed by moka's expiry, or found dead on a read.
    expirations: AtomicU64,
    /// Sessions ended because their user passed `max_per_user`.
    displaced: AtomicU64,
    /// Added to the wall clock: lets tests move time on without sleeping.
    clock_offset_ms: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can panic while holding a lock with the data half-changed,
    // so a poisoned lock's data is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// A store with `options`' bounds and lifetimes.
    pub fn new(options: MemoryOptions) -> Self {
        let shared = Arc::new(Shared {
            users: Mutex::default(),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            displaced: AtomicU64::new(0),
            clock_offset_ms: AtomicU64::new(0),
        });
        MemoryStore {
            logged_in: cache(options.capacity, &options, &shared),
            anonymous: cache(options.anonymous_capacity, &options, &shared),
            shared,
            options,
            housekeeper: Once::new(),
        }
    }

    fn cache_for(&self, s: &Session) -> &Cache<SessionKey, Arc<Session>> {
        if s.user().is_some() {
            &self.logged_in
        } else {
            &self.anonymous
        }
    }

    /// Sessions currently held, logged in and anonymous (after moka's pending
    /// work, so it is exact but for sessions that died since).
    pub fn len(&self) -> u64 {
        self.sync();
        self.logged_in.entry_count() + self.anonymous.entry_count()
    }

    /// Whether the store holds no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run moka's pending work now: expiry, eviction, the listeners (the
    /// housekeeping thread does this every second).
    pub fn sync(&self) {
        self.logged_in.run_pending_tasks();
        self.anonymous.run_pending_tasks();
    }

    fn get_live(&self, key: &SessionKey) -> Option<Arc<Session>> {
        let (cache, s) = match self.logged_in.get(key) {
            Some(s) => (&self.logged_in, s),
            None => (&self.anonymous, self.anonymous.get(key)?),
        };
        let now = self.shared.now();
        if !s.is_live(now) {
            // Past its absolute cap (moka has no time-to-live), or past its
            // idle time by our clock before moka's.
            if cache.remove(key).is_some() {
                self.shared.expirations.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        s.mark_seen(now);
        Some(s)
    }

    /// Store a new session. moka's pending work runs right after the insert,
    /// so the bound is exact (the least recently used session is gone before
    /// the response) and the listener has updated the index. It costs a
    /// create, not a request: reads never wait for it.
    fn insert(&self, s: Arc<Session>) {
        if s.user().is_none() {
            self.anonymous.insert(s.key, s);
            self.anonymous.run_pending_tasks();
            return;
        }
        // Index first: the listener can only ever remove what is there, and a
        // session evicted the moment it is inserted must leave the index too.
        let displaced = lock(&self.shared.users).insert(&s, self.options.max_per_user);
        self.logged_in.insert(s.key, s);
        self.logged_in.run_pending_tasks();
        for key in displaced {
            if self.logged_in.remove(&key).is_some() {
                self.shared.displaced.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn replace(&self, session: Session) -> Option<Arc<Session>> {
        let now = self.shared.now();
        session.mark_seen(now);
        let s = Arc::new(session);
        let cache = self.cache_for(&s);
        // Atomic per key: a session that died or was destroyed meanwhile is
        // not brought back by a late update.
        let result = cache.entry(s.key).and_compute_with(|old| match old {
            Some(old) if old.value().is_live(now) => Op::Put(s.clone()),
            Some(_) => Op::Remove,
            None => Op::Nop,
        });
        match result {
            CompResult::ReplacedWith(_) => {
                if s.user().is_some() {
                    lock(&self.shared.users).refresh(&s);
                }
                Some(s)
            }
            CompResult::Removed(_) => {
                self.shared.expirations.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }

    fn remove(&self, key: &SessionKey) -> bool {
        let gone = self
            .logged_in
            .remove(key)
            .or_else(|| self.anonymous.remove(key));
        match gone {
            Some(s) => {
                // The listener does this too; doing it here means a listing
                // right after a revocation never shows the session.
                lock(&self.shared.users).remove(&s);
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn advance_clock(&self, by: Duration) {
        self.shared
            .clock_offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

impl SessionStore for MemoryStore {
    fn create(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Arc<Session>, StoreError>> + Send {
        self.start_housekeeper();
        let s = Arc::new(session);
        self.insert(s.clone());
        std::future::ready(Ok(s))
    }

    fn load(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send {
        std::future::ready(Ok(self.get_live(key)))
    }

    fn update(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send {
        std::future::ready(Ok(self.replace(session)))
    }

    fn destroy(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        std::future::ready(Ok(self.remove(key)))
    }

    fn list_user(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send {
        let now = self.shared.now();
        let mut found = lock(&self.shared.users).sessions(user);
        found.retain(|s| s.is_live(now));
        std::future::ready(Ok(found))
    }

    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send {
        self.sync();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        std::future::ready(Ok(StoreStats {
            evictions: get(&self.shared.evictions),
            expirations: get(&self.shared.expirations),
            displaced: get(&self.shared.displaced),
            capacity: self.options.capacity,
            anonymous_capacity: self.options.anonymous_capacity,
        }))
    }

    fn peek(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send {
        // moka counts this as a read (its idle timer restarts, which only
        // delays freeing the memory); the session's own last use is left as
        // it was, and that is what decides whether it is alive.
        let now = self.shared.now();
        let found = self
            .logged_in
            .get(key)
            .or_else(|| self.anonymous.get(key))
            .filter(|s| s.is_live(now));
        std::future::ready(Ok(found))
    }

    fn count(&self) -> impl Future<Output = Result<SessionCount, StoreError>> + Send {
        self.sync();
        let anonymous = self.anonymous.entry_count();
        let users = {
            let index = lock(&self.shared.users);
            (index.one.len() + index.many.len()) as u64
        };
        std::future::ready(Ok(SessionCount {
            live: self.logged_in.entry_count() + anonymous,
            anonymous,
            users,
        }))
    }

    fn list(&self) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send {
        // moka's iterators neither slide idle timers nor count as reads.
        self.sync();
        let now = self.shared.now();
        let all = self
            .logged_in
            .iter()
            .chain(self.anonymous.iter())
            .map(|(_, s)| s)
            .filter(|s| s.is_live(now))
            .collect();
        std::future::ready(Ok(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::session::signing::SessionId;
    use futures::FutureExt;
    use serde_json::{Map, Value};

    pub(super) fn block<F: Future>(f: F) -> F::Output {
        // The memory store's futures are always ready: never wait for one.
        f.now_or_never()
            .expect("the memory store's futures are always ready")
    }

    pub(super) const HOUR: Duration = Duration::from_secs(3600);

    pub(super) fn options(capacity: u64) -> MemoryOptions {
        MemoryOptions {
            capacity,
            anonymous_capacity: capacity,
            idle_timeout: HOUR,
            max_per_user: 1000,
        }
    }

    pub(super) fn new_session(
        user: Option<&str>,
        idle: Duration,
        absolute: Duration,
    ) -> (SessionKey, Session) {
        let id = SessionId::generate();
        let now = now_ms();
        let key = SessionKey::of(&id);
        let s = Session::new(
            key,
            user.map(str::to_owned),
            vec!["a".into(), "b".into()],
            Map::new(),
            now,
            now + absolute.as_millis() as u64,
            idle,
        );
        (key, s)
    }

    pub(super) fn session(user: &str) -> (SessionKey, Session) {
        new_session(Some(user), HOUR, 2 * HOUR)
    }

    pub(super) fn create(store: &MemoryStore, s: Session) {
        block(store.create(s)).unwrap();
    }

    pub(super) fn live(store: &MemoryStore, key: &SessionKey) -> bool {
        block(store.load(key)).unwrap().is_some()
    }

    #[test]
    fn create_load_update_destroy() {
        let store = MemoryStore::new(options(10));
        let (key, s) = session("alice");
        create(&store, s);
        let got = block(store.load(&key))
            .unwrap()
            .expect("created session loads");
        assert_eq!(got.user(), Some("alice"));
        assert_eq!(got.roles_header(), "a,b");
        assert_eq!(got.data_header(), None);

        let mut changed = (*got).clone();
        let mut data = Map::new();
        data.insert("cart".into(), Value::from(3));
        changed.set_data(data);
        block(store.update(changed))
            .unwrap()
            .expect("update of a live session");
        let got = block(store.load(&key)).unwrap().unwrap();
        assert_eq!(got.data_header(), Some(r#"{"cart":3}"#));
        assert_eq!(block(store.list()).unwrap().len(), 1);
        let listed = block(store.list_user("alice")).unwrap();
        assert_eq!(
            listed[0].data_header(),
            Some(r#"{"cart":3}"#),
            "index refreshed"
        );

        assert!(block(store.destroy(&key)).unwrap());
        assert!(!live(&store, &key));
        assert!(!block(store.destroy(&key)).unwrap());
        assert!(block(store.list_user("alice")).unwrap().is_empty());
        // Updating a destroyed session does not bring it back.
        assert!(block(store.update((*got).clone())).unwrap().is_none());
        assert!(!live(&store, &key));
    }

    #[test]
    fn a_session_past_its_idle_time_is_never_returned() {
        // moka's own lifetimes are an hour: only the store's check stands
        // between a dead session and the request.
        let store = MemoryStore::new(options(10));
        let (key, s) = new_session(Some("alice"), Duration::from_secs(60), 2 * HOUR);
        create(&store, s);
        store.advance_clock(Duration::from_secs(59));
        assert!(live(&store, &key), "used within its idle time");
        store.advance_clock(Duration::from_secs(59));
        assert!(live(&store, &key), "the idle time slid on use");
        store.advance_clock(Duration::from_secs(61));
        assert!(!live(&store, &key), "idle past its lifetime");
        assert!(block(store.list_user("alice")).unwrap().is_empty());
        assert_eq!(block(store.stats()).unwrap().expirations, 1);
    }

    #[test]
    fn the_absolute_cap_holds_across_updates() {
        let store = MemoryStore::new(options(10));
        let (key, s) = new_session(Some("alice"), HOUR, Duration::from_secs(100));
        create(&store, s);
        for _ in 0..9 {
            store.advance_clock(Duration::from_secs(10));
            let s = block(store.load(&key)).unwrap().expect("within the cap");
            // An update re-inserts the record, restarting moka's time-to-live.
            block(store.update((*s).clone())).unwrap().expect("updated");
        }
        store.advance_clock(Duration::from_secs(11));
        assert!(!live(&store, &key), "past the absolute cap");
        let (key2, s) = new_session(Some("bob"), HOUR, Duration::from_secs(100));
        create(&store, s);
        store.advance_clock(Duration::from_secs(101));
        let stale = Session::new(key2, Some("bob".into()), vec![], Map::new(), 0, 1, HOUR);
        assert!(
            block(store.update(stale)).unwrap().is_none(),
            "no update revives it"
        );
    }

    #[test]
    fn listing_does_not_slide_expiry() {
        let store = MemoryStore::new(options(10));
        let (key, s) = new_session(Some("alice"), Duration::from_secs(60), HOUR);
        create(&store, s);
        for listed in [1, 1, 0, 0] {
            store.advance_clock(Duration::from_secs(20));
            assert_eq!(block(store.list()).unwrap().len(), listed);
        }
        assert!(!live(&store, &key));
    }
}
