//! The Redis store's local cache: the moka entries kept in front of Redis
//! ([`Local`]: a session and when it was last touched in Redis), how a read
//! from Redis fills it, and how it is flushed. A fill is undone when an
//! invalidation overtook the read (the generation moved), and nothing is
//! cached while the invalidation connection is down.
//!
//! It does not read Redis or decide when an entry can be served (`mod.rs`:
//! load), nor listen for invalidations (`watch.rs`, which calls
//! [`RedisStore::flush_local`] and moves the generation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::RedisStore;
use crate::session::{now_ms, Session};

/// A locally cached session and when it was last touched in Redis.
pub(super) struct Local {
    pub(super) session: Arc<Session>,
    pub(super) touched_at: AtomicU64,
}

impl RedisStore {
    pub(super) fn flush_local(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.local.invalidate_all();
    }

    pub(super) fn cache(&self, s: &Arc<Session>, generation: u64) {
        if !self.tracking.load(Ordering::Relaxed) {
            return;
        }
        let entry = Arc::new(Local {
            session: s.clone(),
            touched_at: AtomicU64::new(now_ms()),
        });
        self.local.insert(s.key, entry);
        // An invalidation may have overtaken this read: then the cached copy is
        // not to be trusted.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.local.invalidate(&s.key);
        }
    }
}
