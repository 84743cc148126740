//! The embedded session store: [`MemoryStore`], the default, on moka.
//!
//! It owns per-entry expiry (the earlier of idle-since-last-use and the absolute
//! deadline), the per-user index behind "this user's sessions", and a capacity
//! bound whose eviction is plain LRU: moka's default TinyLFU admission can refuse
//! a brand-new entry when the cache is full of frequently used ones, which here
//! would mean a fresh login that silently does not stick. LRU always admits the
//! newcomer and evicts the least recently used session instead.
//!
//! It does not define what a session is or the store contract; both are in
//! [`crate::session`], which re-exports this type as `session::MemoryStore`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::Expiry;

use crate::session::{now_ms, Session, SessionKey, SessionStore, StoreError, StoreStats};

/// The embedded store: a bounded moka cache with per-entry expiry.
pub struct MemoryStore {
    cache: moka::sync::Cache<SessionKey, Arc<Session>>,
    /// Authenticated sessions by user, for "this user's sessions" without a scan.
    /// Kept in step by writes here and by moka's removal listener.
    by_user: Arc<Mutex<UserIndex>>,
    evictions: Arc<AtomicU64>,
    capacity: u64,
}

/// Most users have one session, some have thousands (a shared account): one
/// `Arc` inline for the first, a map keyed by session for the second, so a
/// million single-session users cost little and a busy account stays O(1).
enum UserSessions {
    One(Arc<Session>),
    Many(HashMap<SessionKey, Arc<Session>>),
}

type UserIndex = HashMap<Box<str>, UserSessions>;

fn index_insert(index: &Mutex<UserIndex>, s: &Arc<Session>) {
    let Some(user) = &s.user else { return };
    let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
    match index.get_mut(user.as_str()) {
        None => {
            index.insert(user.as_str().into(), UserSessions::One(s.clone()));
        }
        Some(UserSessions::One(old)) if old.key == s.key => *old = s.clone(),
        Some(entry @ UserSessions::One(_)) => {
            let UserSessions::One(old) =
                std::mem::replace(entry, UserSessions::Many(HashMap::new()))
            else {
                unreachable!("matched One above")
            };
            if let UserSessions::Many(map) = entry {
                map.insert(old.key, old);
                map.insert(s.key, s.clone());
            }
        }
        Some(UserSessions::Many(map)) => {
            map.insert(s.key, s.clone());
        }
    }
}

fn index_remove(index: &Mutex<UserIndex>, s: &Session) {
    let Some(user) = &s.user else { return };
    let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
    let empty = match index.get_mut(user.as_str()) {
        Some(UserSessions::One(old)) => old.key == s.key,
        Some(UserSessions::Many(map)) => {
            map.remove(&s.key);
            map.is_empty()
        }
        None => false,
    };
    if empty {
        index.remove(user.as_str());
    }
}

/// Per-entry expiry: the earlier of "idle after the last read or write" and the
/// absolute deadline.
struct SessionExpiry;

impl Expiry<SessionKey, Arc<Session>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _: &SessionKey,
        s: &Arc<Session>,
        _: Instant,
    ) -> Option<Duration> {
        Some(s.idle.min(s.absolute_left(now_ms())))
    }

    fn expire_after_read(
        &self,
        _: &SessionKey,
        s: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(s.idle.min(s.absolute_left(now_ms())))
    }

    fn expire_after_update(
        &self,
        _: &SessionKey,
        s: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(s.idle.min(s.absolute_left(now_ms())))
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions.
    pub fn new(capacity: u64) -> Self {
        let by_user: Arc<Mutex<UserIndex>> = Arc::default();
        let evictions = Arc::new(AtomicU64::new(0));
        let (index, evicted) = (by_user.clone(), evictions.clone());
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(SessionExpiry)
            .eviction_listener(move |_key, s: Arc<Session>, cause| {
                match cause {
                    // An update: the index already holds the new value.
                    RemovalCause::Replaced => return,
                    RemovalCause::Size => {
                        evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    RemovalCause::Expired | RemovalCause::Explicit => {}
                }
                index_remove(&index, &s);
            })
            .build();
        MemoryStore {
            cache,
            by_user,
            evictions,
            capacity,
        }
    }

    /// Sessions currently held (approximate until pending maintenance runs).
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether the store holds no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run moka's pending maintenance (evictions, expiries) now; tests use it.
    pub fn sync(&self) {
        self.cache.run_pending_tasks();
    }

    fn get_live(&self, key: &SessionKey) -> Option<Arc<Session>> {
        let s = self.cache.get(key)?;
        let now = now_ms();
        // Moka expires lazily on its own clock; check ours too so a dead session
        // is never served, whatever the maintenance schedule.
        if !s.is_live(now) {
            self.cache.invalidate(key);
            return None;
        }
        s.mark_seen(now);
        Some(s)
    }
}

impl SessionStore for MemoryStore {
    fn create(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Arc<Session>, StoreError>> + Send {
        let s = Arc::new(session);
        index_insert(&self.by_user, &s);
        self.cache.insert(s.key, s.clone());
        std::future::ready(Ok(s))
    }

    fn load(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send {
        std::future::ready(Ok(self.get_live(key)))
    }

    fn touch(&self, key: &SessionKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.get_live(key);
        std::future::ready(Ok(()))
    }

    fn update(
        &self,
        session: Session,
    ) -> impl Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send {
        let out = self.get_live(&session.key).map(|_| {
            let s = Arc::new(session);
            s.mark_seen(now_ms());
            index_insert(&self.by_user, &s);
            self.cache.insert(s.key, s.clone());
            s
        });
        std::future::ready(Ok(out))
    }

    fn destroy(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let removed = self.cache.remove(key);
        if let Some(s) = &removed {
            // The listener does this too, later; revocation must be visible now.
            index_remove(&self.by_user, s);
        }
        std::future::ready(Ok(removed.is_some()))
    }

    fn list_user(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send {
        let now = now_ms();
        let index = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        let found = index
            .get(user)
            .map(|entry| {
                let all: Vec<&Arc<Session>> = match entry {
                    UserSessions::One(s) => vec![s],
                    UserSessions::Many(map) => map.values().collect(),
                };
                all.into_iter()
                    .filter(|s| s.is_live(now) && self.cache.contains_key(&s.key))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        std::future::ready(Ok(found))
    }

    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send {
        std::future::ready(Ok(StoreStats {
            entries: self.cache.entry_count(),
            evictions: self.evictions.load(Ordering::Relaxed),
            capacity: self.capacity,
        }))
    }

    fn list(&self) -> impl Future<Output = Result<Vec<Arc<Session>>, StoreError>> + Send {
        let now = now_ms();
        let all = self
            .cache
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.is_live(now))
            .collect();
        std::future::ready(Ok(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cookie::SessionId;
    use serde_json::{Map, Value};

    fn block<F: Future>(f: F) -> F::Output {
        // The memory store's futures are always ready.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory store future was pending"),
        }
    }

    fn session(user: &str, idle: Duration, absolute: Duration) -> (SessionId, Session) {
        let id = SessionId::generate();
        let now = now_ms();
        let s = Session::new(
            SessionKey::of(&id),
            Some(user.into()),
            vec!["a".into(), "b".into()],
            Map::new(),
            now,
            now + absolute.as_millis() as u64,
            idle,
        );
        (id, s)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn create_load_update_destroy() {
        let store = MemoryStore::new(10);
        let (id, s) = session("alice", HOUR, HOUR);
        let key = SessionKey::of(&id);
        block(store.create(s)).unwrap();
        let got = block(store.load(&key))
            .unwrap()
            .expect("created session loads");
        assert_eq!(got.user.as_deref(), Some("alice"));
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

        assert!(block(store.destroy(&key)).unwrap());
        assert!(block(store.load(&key)).unwrap().is_none());
        assert!(!block(store.destroy(&key)).unwrap());
        // Updating a destroyed session does not bring it back.
        let (_, s2) = session("x", HOUR, HOUR);
        assert!(block(store.update(s2)).unwrap().is_none());
    }

    #[test]
    fn idle_expiry_slides_on_use() {
        let store = MemoryStore::new(10);
        let (id, s) = session("alice", Duration::from_millis(300), HOUR);
        let key = SessionKey::of(&id);
        block(store.create(s)).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(150));
            assert!(
                block(store.load(&key)).unwrap().is_some(),
                "used within idle time"
            );
        }
        std::thread::sleep(Duration::from_millis(400));
        assert!(block(store.load(&key)).unwrap().is_none(), "idle past max");
    }

    #[test]
    fn absolute_expiry_holds_even_when_used() {
        let store = MemoryStore::new(10);
        let (id, s) = session("alice", HOUR, Duration::from_millis(400));
        let key = SessionKey::of(&id);
        block(store.create(s)).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            assert!(block(store.load(&key)).unwrap().is_some());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(150));
        assert!(block(store.load(&key)).unwrap().is_none(), "past absolute");
    }

    #[test]
    fn fresh_sessions_are_admitted_at_capacity() {
        // TinyLFU would reject newcomers against these frequently read entries.
        let cap = 50;
        let store = MemoryStore::new(cap);
        let mut old = Vec::new();
        for _ in 0..cap {
            let (id, s) = session("old", HOUR, HOUR);
            old.push(SessionKey::of(&id));
            block(store.create(s)).unwrap();
        }
        for _ in 0..5 {
            for k in &old {
                block(store.load(k)).unwrap();
            }
        }
        store.sync();
        let mut fresh = Vec::new();
        for _ in 0..cap {
            let (id, s) = session("new", HOUR, HOUR);
            fresh.push(SessionKey::of(&id));
            block(store.create(s)).unwrap();
            store.sync();
        }
        store.sync();
        assert!(store.len() <= cap, "bounded: {}", store.len());
        for k in &fresh {
            assert!(
                block(store.load(k)).unwrap().is_some(),
                "fresh session admitted"
            );
        }
    }

    #[test]
    fn sessions_are_listed_by_user_until_destroyed_or_evicted() {
        let store = MemoryStore::new(3);
        let mut alice = Vec::new();
        for _ in 0..2 {
            let (id, s) = session("alice", HOUR, HOUR);
            alice.push(SessionKey::of(&id));
            block(store.create(s)).unwrap();
        }
        let (_, bob) = session("bob", HOUR, HOUR);
        block(store.create(bob)).unwrap();
        assert_eq!(block(store.list_user("alice")).unwrap().len(), 2);
        assert!(block(store.destroy(&alice[0])).unwrap());
        assert_eq!(block(store.list_user("alice")).unwrap().len(), 1);
        // Two more sessions into a store of three: the least recently used go.
        for _ in 0..2 {
            let (_, s) = session("carol", HOUR, HOUR);
            block(store.create(s)).unwrap();
            store.sync();
        }
        store.sync();
        let stats = block(store.stats()).unwrap();
        assert_eq!(stats.evictions, 1, "{stats:?}");
        assert_eq!(stats.entries, 3);
        let left = block(store.list_user("alice")).unwrap().len()
            + block(store.list_user("bob")).unwrap().len();
        assert_eq!(left, 1, "the evicted session left the index");
        assert_eq!(block(store.list_user("nobody")).unwrap().len(), 0);
    }

    #[test]
    fn listing_does_not_slide_expiry() {
        let store = MemoryStore::new(10);
        let (id, s) = session("alice", Duration::from_millis(300), HOUR);
        block(store.create(s)).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(100));
            let _ = block(store.list()).unwrap();
        }
        assert!(block(store.load(&SessionKey::of(&id))).unwrap().is_none());
    }
}
