//! What frees the memory store's sessions without being asked: the two moka
//! caches as built (LRU, time-to-idle, a bound each), their eviction listener,
//! which counts removals by cause for `/stats` and `/metrics` and keeps the
//! per-user index in step, and the housekeeping thread that runs moka's
//! pending work when requests do not.
//!
//! **LRU, not TinyLFU.** moka's default admission policy can refuse a new key
//! when the cache is full and the key is not yet "popular", which would turn a
//! fresh login into "logged in, then 401". With LRU every insert is admitted
//! and the least recently used session goes.
//!
//! It does not read or write sessions, or end them for `max_per_user`:
//! `mod.rs` does.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{lock, MemoryOptions, MemoryStore, Shared};
use crate::session::{Session, SessionKey};

/// How often the housekeeping thread runs moka's pending work (expiry,
/// eviction, listener calls) when requests do not.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

impl Shared {
    /// The eviction listener of both caches: count by cause, keep the index
    /// in step. `Replaced` is an update of the same session: the updater
    /// refreshes the index itself.
    fn removed(&self, s: &Session, cause: RemovalCause) {
        match cause {
            RemovalCause::Replaced => return,
            RemovalCause::Size => {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            RemovalCause::Expired => {
                self.expirations.fetch_add(1, Ordering::Relaxed);
            }
            RemovalCause::Explicit => {}
        }
        if s.user().is_some() {
            lock(&self.users).remove(s);
        }
    }
}

pub(super) fn cache(
    capacity: u64,
    options: &MemoryOptions,
    shared: &Arc<Shared>,
) -> Cache<SessionKey, Arc<Session>> {
    let listener = Arc::downgrade(shared);
    Cache::builder()
        .max_capacity(capacity)
        .eviction_policy(EvictionPolicy::lru())
        .time_to_idle(options.idle_timeout)
        .eviction_listener(move |_key, s: Arc<Session>, cause| {
            if let Some(shared) = listener.upgrade() {
                shared.removed(&s, cause);
            }
        })
        .build()
}

impl MemoryStore {
    /// Start housekeeping on first write, not in `new`: the process may still
    /// daemonize (fork) between building the store and serving.
    pub(super) fn start_housekeeper(&self) {
        self.housekeeper.call_once(|| {
            let caches = Arc::downgrade(&self.shared);
            let (a, b) = (self.logged_in.clone(), self.anonymous.clone());
            let spawned = std::thread::Builder::new()
                .name("sessiongate-store".into())
                .spawn(move || housekeeping(caches, a, b));
            if let Err(e) = spawned {
                // Dead sessions are still never served; moka frees them on
                // its next write instead.
                tracing::warn!(error = %e, "could not start the session store's housekeeping");
            }
        });
    }
}

fn housekeeping(
    alive: Weak<Shared>,
    logged_in: Cache<SessionKey, Arc<Session>>,
    anonymous: Cache<SessionKey, Arc<Session>>,
) {
    loop {
        std::thread::sleep(HOUSEKEEPING_EVERY);
        if alive.strong_count() == 0 {
            return;
        }
        logged_in.run_pending_tasks();
        anonymous.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{lock, MemoryOptions, MemoryStore};
    use crate::session::memory::tests::{block, create, live, new_session, options, session, HOUR};
    use crate::session::{SessionKey, SessionStore};

    #[test]
    fn moka_expiry_frees_dead_sessions_and_their_index_entries() {
        let mut o = options(1000);
        o.idle_timeout = Duration::from_millis(50);
        let store = MemoryStore::new(o);
        for _ in 0..200 {
            let (_, s) = new_session(Some("short"), o.idle_timeout, HOUR);
            create(&store, s);
        }
        for _ in 0..50 {
            let (_, s) = new_session(None, o.idle_timeout, HOUR);
            create(&store, s);
        }
        // Wait for the condition, not a fixed time: moka frees them once
        // their idle time has passed and its pending work has run.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !store.is_empty() {
            assert!(std::time::Instant::now() < deadline, "{} left", store.len());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(lock(&store.shared.users).sessions("short").is_empty());
        let stats = block(store.stats()).unwrap();
        assert_eq!(stats.expirations, 250, "{stats:?}");
        assert_eq!(stats.evictions, 0);
    }

    #[test]
    fn a_fresh_login_into_a_full_store_always_sticks() {
        // TinyLFU would refuse newcomers against these often-read entries.
        let cap = 50;
        let store = MemoryStore::new(options(cap));
        let mut old = Vec::new();
        for i in 0..cap {
            let (key, s) = session(&format!("old{i}"));
            old.push(key);
            create(&store, s);
        }
        for _ in 0..5 {
            for k in &old {
                assert!(live(&store, k));
            }
        }
        for i in 0..cap {
            let (key, s) = session(&format!("new{i}"));
            create(&store, s);
            store.sync();
            assert!(live(&store, &key), "fresh login {i} admitted");
            assert!(store.len() <= cap, "bounded: {}", store.len());
        }
        let stats = block(store.stats()).unwrap();
        assert_eq!(stats.evictions, cap);
        let indexed: usize = (0..cap)
            .map(|i| block(store.list_user(&format!("old{i}"))).unwrap().len())
            .sum();
        assert_eq!(indexed, 0, "evicted sessions left the index");
    }

    #[test]
    fn eviction_takes_the_least_recently_used() {
        let store = MemoryStore::new(options(100));
        let keys: Vec<_> = (0..100)
            .map(|i| {
                let (key, s) = session(&format!("u{i}"));
                create(&store, s);
                key
            })
            .collect();
        store.sync();
        for k in &keys[50..] {
            assert!(live(&store, k));
        }
        store.sync();
        for i in 0..50 {
            let (_, s) = session(&format!("new{i}"));
            create(&store, s);
        }
        store.sync();
        let kept = |ks: &[SessionKey]| ks.iter().filter(|k| live(&store, k)).count();
        assert_eq!(kept(&keys[..50]), 0, "the idle half went");
        assert_eq!(kept(&keys[50..]), 50, "the used half stayed");
    }

    #[test]
    fn an_anonymous_flood_evicts_no_logged_in_user() {
        let store = MemoryStore::new(MemoryOptions {
            anonymous_capacity: 200,
            ..options(1000)
        });
        let users: Vec<_> = (0..1000)
            .map(|i| {
                let (key, s) = session(&format!("u{i}"));
                create(&store, s);
                key
            })
            .collect();
        // Well past both capacities.
        for _ in 0..5000 {
            let (_, s) = new_session(None, HOUR, 2 * HOUR);
            create(&store, s);
        }
        store.sync();
        let kept = users.iter().filter(|k| live(&store, k)).count();
        assert_eq!(kept, 1000, "logged-in sessions kept");
        let count = block(store.count()).unwrap();
        assert_eq!((count.live, count.anonymous), (1200, 200), "{count:?}");
        assert_eq!(block(store.stats()).unwrap().evictions, 4800);
    }
}
