//! How the Redis store makes one call: to which primary (asked of the
//! sentinels when none is known yet, and again after a failing call), under
//! which deadline (the request's, or the longer admin one for listing and
//! stats), and whether through the circuit breaker (request-path calls only,
//! so a slow scan of a large store cannot make protected routes 503).
//!
//! It does not hold the connections (`conn.rs`), keep the breaker's count
//! (`breaker.rs`), ask the sentinels (`sentinel.rs`), or decide what is sent:
//! the callers in `mod.rs`, `user_index.rs` and `watch.rs` do.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::conn::{unavailable, Conn, Conns, Target};
use super::RedisStore;
use crate::session::StoreError;

/// The admin/bulk deadline is this many request deadlines…
const ADMIN_DEADLINE_FACTOR: u32 = 10;
/// …and at least this long.
const ADMIN_DEADLINE_MIN: Duration = Duration::from_secs(2);

/// The deadline of admin and bulk operations: [`ADMIN_DEADLINE_FACTOR`]
/// request deadlines, at least [`ADMIN_DEADLINE_MIN`].
pub(super) fn admin_deadline(timeout: Duration) -> Duration {
    (timeout * ADMIN_DEADLINE_FACTOR).max(ADMIN_DEADLINE_MIN)
}

impl RedisStore {
    /// Run one request-path Redis operation with the deadline and the breaker.
    pub(super) async fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            self.follow().await;
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        let result = conns.within(false, self.config.timeout, op).await;
        match &result {
            Ok(_) => self.breaker.success(),
            Err(_) => {
                self.breaker.failure();
                self.follow().await;
            }
        }
        result
    }

    /// Run one admin or bulk Redis operation (listing, stats) on the admin
    /// connection with the admin deadline. It fails fast while the breaker is
    /// open (Redis is known to be failing) but never counts towards it: a slow
    /// scan of a large store must not make the request path fail closed.
    pub(super) async fn call_admin<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        conns
            .within(true, admin_deadline(self.config.timeout), op)
            .await
    }

    /// The current primary's connections; with Sentinel, asked for first
    /// when no primary is known yet.
    pub(super) async fn conns(&self) -> Arc<Conns> {
        let conns = self.conns.load_full();
        if matches!(conns.target, Target::Unknown) {
            // No primary yet: wait for whoever is asking, rather than fail
            // because another call (the tracking task, at start) asks first.
            self.follow_with(true).await;
            return self.conns.load_full();
        }
        conns
    }

    pub(super) async fn follow(&self) {
        self.follow_with(false).await;
    }

    /// With Sentinel: ask which server is the primary (at most every
    /// [`sentinel::ASK_EVERY`](super::sentinel::ASK_EVERY)); when another one
    /// is, connect to it from now on, flush the local cache and move the
    /// tracking connection there.
    async fn follow_with(&self, wait: bool) {
        let Some(link) = &self.sentinel else {
            return;
        };
        // One asks and installs the answer at a time; with `wait`, the others
        // wait and use that answer, without them they go on (and fail).
        let _asking = if wait {
            let guard = self.following.lock().await;
            if !matches!(self.conns.load().target, Target::Unknown) {
                return;
            }
            guard
        } else {
            match self.following.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            }
        };
        let Some(found) = link
            .primary(self.config.timeout.max(Duration::from_millis(500)))
            .await
        else {
            return;
        };
        let client = match found {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the sentinels name no reachable primary");
                return;
            }
        };
        let same = match &self.conns.load().target {
            Target::Server(c) => {
                c.get_connection_info().addr() == client.get_connection_info().addr()
            }
            _ => false,
        };
        if same {
            return;
        }
        tracing::warn!(primary = %client.get_connection_info().addr(), "Redis primary changed (Sentinel); local cache flushed");
        self.conns
            .store(Arc::new(Conns::new(Target::Server(client))));
        self.flush_local();
        self.breaker.success();
        self.retrack.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::super::breaker::BREAKER_THRESHOLD;
    use super::super::{RedisOptions, Servers};
    use super::*;
    use crate::session::{SessionKey, SessionStore};

    fn store_with_timeout(url: String, timeout: Duration) -> RedisStore {
        RedisStore::new(
            RedisOptions {
                servers: Servers::One(url),
                prefix: "t:".into(),
                timeout,
                local_ttl: Duration::from_secs(1),
                local_capacity: 100,
            },
            10,
        )
        .unwrap()
    }

    #[test]
    fn the_admin_deadline_is_ten_request_deadlines_and_at_least_two_seconds() {
        let d = |ms| admin_deadline(Duration::from_millis(ms));
        assert_eq!(d(250), Duration::from_millis(2_500));
        assert_eq!(d(50), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn failing_admin_scans_do_not_open_the_breaker_request_path_failures_do() {
        // A port nobody listens on: every call fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = store_with_timeout(
            format!("redis://127.0.0.1:{port}/"),
            Duration::from_millis(250),
        );
        for _ in 0..BREAKER_THRESHOLD {
            assert!(store.list().await.is_err());
            assert!(store.count().await.is_err());
            assert!(store
                .peek(&SessionKey::of(
                    &crate::session::signing::SessionId::generate()
                ))
                .await
                .is_err());
            assert!(store.list_user("alice").await.is_err());
        }
        assert!(
            !store.breaker.is_open(),
            "admin failures opened the breaker"
        );
        let key = SessionKey::of(&crate::session::signing::SessionId::generate());
        for _ in 0..BREAKER_THRESHOLD {
            assert!(store.load(&key).await.is_err());
        }
        assert!(store.breaker.is_open());
        // While open, admin calls fail fast without waiting for Redis.
        match store.count().await {
            Err(StoreError::Unavailable(e)) => assert!(e.contains("breaker"), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
