//! The memory store's per-user index ("this user's sessions": revoke all, a
//! user's own page, the admin filter), kept in step by moka's eviction
//! listener (`eviction.rs`). Nothing scans the cache to find a user's
//! sessions. The index lock is never held while calling into a cache, since a
//! cache call may run the listener, which takes it. A login past
//! `max_per_user` leaves the index with that user's oldest sessions named,
//! for the store to end.
//!
//! It does not hold the sessions (the caches in `mod.rs` do) or end any.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::session::{Session, SessionKey};

/// Logged-in sessions by user. Most users have one session: that costs one
/// pointer in `one` (the name is read from the session itself, not stored
/// again). A user with several (a shared account, many devices) moves to
/// `many`, where each change stays O(1).
#[derive(Default)]
pub(super) struct UserIndex {
    pub(super) one: HashTable<Arc<Session>>,
    pub(super) many: HashMap<Box<str>, HashMap<SessionKey, Arc<Session>>>,
    hasher: RandomState,
}

fn user_of(s: &Session) -> &str {
    s.user().unwrap_or("")
}

impl UserIndex {
    /// Index `s`; past `max` sessions for its user, the oldest others leave
    /// the index and are returned, for the caller to end.
    pub(super) fn insert(&mut self, s: &Arc<Session>, max: usize) -> Vec<SessionKey> {
        let Some(user) = s.user() else {
            return Vec::new();
        };
        let hash = self.hasher.hash_one(user);
        if let Some(map) = self.many.get_mut(user) {
            map.insert(s.key, s.clone());
            return Self::trim(map, &s.key, max);
        }
        let hasher = &self.hasher;
        let Ok(entry) = self.one.find_entry(hash, |o| user_of(o) == user) else {
            self.one
                .insert_unique(hash, s.clone(), |o| hasher.hash_one(user_of(o)));
            return Vec::new();
        };
        if entry.get().key == s.key {
            *entry.into_mut() = s.clone();
            return Vec::new();
        }
        let (old, _) = entry.remove();
        let mut map = HashMap::with_capacity(2);
        map.insert(old.key, old);
        map.insert(s.key, s.clone());
        let displaced = Self::trim(&mut map, &s.key, max);
        self.settle(user.into(), map);
        displaced
    }

    /// End the oldest of `map` past `max`, never `newest`.
    fn trim(
        map: &mut HashMap<SessionKey, Arc<Session>>,
        newest: &SessionKey,
        max: usize,
    ) -> Vec<SessionKey> {
        let mut displaced = Vec::new();
        while map.len() > max.max(1) {
            let oldest = map
                .values()
                .filter(|o| o.key != *newest)
                .min_by_key(|o| (o.created_at, o.key))
                .map(|o| o.key);
            match oldest {
                Some(key) => {
                    map.remove(&key);
                    displaced.push(key);
                }
                None => break,
            }
        }
        displaced
    }

    /// Keep a user's sessions where they belong: one in `one`, more in `many`.
    fn settle(&mut self, user: Box<str>, map: HashMap<SessionKey, Arc<Session>>) {
        match map.len() {
            0 => {}
            1 => {
                let last = map.into_values().next().expect("one left");
                let hasher = &self.hasher;
                self.one
                    .insert_unique(hasher.hash_one(user_of(&last)), last, |o| {
                        hasher.hash_one(user_of(o))
                    });
            }
            _ => {
                self.many.insert(user, map);
            }
        }
    }

    /// Point the index at the newer record of a session it holds; a session
    /// that left meanwhile (evicted, destroyed) is not brought back.
    pub(super) fn refresh(&mut self, s: &Arc<Session>) {
        let Some(user) = s.user() else { return };
        if let Some(map) = self.many.get_mut(user) {
            if let Some(old) = map.get_mut(&s.key) {
                *old = s.clone();
            }
            return;
        }
        let hash = self.hasher.hash_one(user);
        if let Some(old) = self.one.find_mut(hash, |o| o.key == s.key) {
            *old = s.clone();
        }
    }

    pub(super) fn remove(&mut self, s: &Session) {
        let Some(user) = s.user() else { return };
        if let Some(map) = self.many.get_mut(user) {
            map.remove(&s.key);
            if map.len() < 2 {
                let map = self.many.remove(user).unwrap_or_default();
                self.settle(user.into(), map);
            }
            return;
        }
        let hash = self.hasher.hash_one(user);
        if let Ok(entry) = self.one.find_entry(hash, |o| o.key == s.key) {
            entry.remove();
        }
    }

    pub(super) fn sessions(&self, user: &str) -> Vec<Arc<Session>> {
        if let Some(map) = self.many.get(user) {
            return map.values().cloned().collect();
        }
        let hash = self.hasher.hash_one(user);
        self.one
            .find(hash, |o| user_of(o) == user)
            .into_iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::session::memory::tests::{block, create, live, options, session};
    use crate::session::memory::{MemoryOptions, MemoryStore};
    use crate::session::SessionStore;

    #[test]
    fn one_account_past_its_cap_ends_only_its_own_oldest_sessions() {
        let store = MemoryStore::new(MemoryOptions {
            max_per_user: 3,
            ..options(100)
        });
        let others: Vec<_> = (0..10)
            .map(|i| {
                let (key, s) = session(&format!("u{i}"));
                create(&store, s);
                key
            })
            .collect();
        let mut mine = Vec::new();
        for i in 0..2000u64 {
            let (key, mut s) = session("shared");
            // Distinct creation times, so "oldest" is well defined.
            s.created_at += i;
            create(&store, s);
            mine.push(key);
        }
        store.sync();
        assert!(others.iter().all(|k| live(&store, k)), "others untouched");
        let left: Vec<_> = mine.iter().filter(|k| live(&store, k)).collect();
        assert_eq!(
            left,
            mine[1997..].iter().collect::<Vec<_>>(),
            "the newest three"
        );
        assert_eq!(block(store.list_user("shared")).unwrap().len(), 3);
        let stats = block(store.stats()).unwrap();
        assert_eq!((stats.displaced, stats.evictions), (1997, 0), "{stats:?}");
    }

    #[test]
    fn removals_keep_every_other_session_reachable() {
        let store = MemoryStore::new(options(200_000));
        let mut keys = Vec::new();
        for i in 0..3000 {
            let (key, s) = session(&format!("u{}", i % 7));
            keys.push(key);
            create(&store, s);
        }
        for k in keys.iter().step_by(3) {
            assert!(block(store.destroy(k)).unwrap());
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(live(&store, k), i % 3 != 0, "{i}");
        }
        assert_eq!(store.len(), 2000);
        let per_user: usize = (0..7)
            .map(|u| block(store.list_user(&format!("u{u}"))).unwrap().len())
            .sum();
        assert_eq!(per_user, 2000);
    }
}
