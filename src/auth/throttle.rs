//! Login throttling: at most N failed attempts per key (a canonical user name,
//! or a client IP) in a fixed window, then refusal with `Retry-After` until the
//! window ends (OWASP Authentication Cheat Sheet: account lockout / throttling).
//!
//! An attempt takes a slot *before* the password is checked and keeps it only
//! when it fails ([`Attempt::failed`]); dropped any other way (success, or
//! refused before the check) it gives the slot back. So concurrent attempts
//! are counted exactly: N parallel
//! guesses cannot all slip through on a stale count. During a lockout even the
//! right password is refused the same way, so a lockout leaks nothing.
//!
//! Keys live in a bounded moka cache that forgets them after the window, so a
//! flood of distinct names cannot grow memory without bound.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failure counting for one kind of key.
pub(crate) struct Throttle<K: Hash + Eq + Send + Sync + 'static> {
    limit: u32,
    window: Duration,
    slots: moka::sync::Cache<K, Arc<Mutex<Window>>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// A taken slot: kept as a failure by [`Attempt::failed`], given back when
/// dropped otherwise.
#[must_use]
pub(crate) struct Attempt<'a, K: Hash + Eq + Clone + Send + Sync + 'static> {
    throttle: &'a Throttle<K>,
    /// `None` once it counts as a failure.
    key: Option<K>,
    started: Instant,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Attempt<'_, K> {
    /// The attempt failed: its slot stays taken until the window ends.
    pub(crate) fn failed(mut self) {
        self.key = None;
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.give_back(&key, self.started);
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Throttle<K> {
    /// `limit` failures per `window`, remembering at most `capacity` keys.
    pub(crate) fn new(limit: u32, window: Duration, capacity: u64) -> Self {
        let slots = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(window)
            .build();
        Throttle {
            limit,
            window,
            slots,
        }
    }

    /// Take a slot for an attempt, or `Err(retry_after)` while locked out.
    pub(crate) fn begin(&self, key: K) -> Result<Attempt<'_, K>, Duration> {
        let now = Instant::now();
        let cell = self.slots.get_with(key.clone(), || {
            Arc::new(Mutex::new(Window {
                started: now,
                failures: 0,
            }))
        });
        let mut w = cell.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        if w.failures >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(w.started));
            return Err(left.max(Duration::from_secs(1)));
        }
        w.failures += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key),
            started: w.started,
        })
    }

    /// `Some(retry_after)` while `key` is locked out, taking no slot: for a
    /// credential proved without a password check (a remembered Basic
    /// password), which must still wait out a lockout, or a lockout would
    /// no longer bound the guesses.
    pub(crate) fn locked(&self, key: &K) -> Option<Duration> {
        let cell = self.slots.get(key)?;
        let w = cell.lock().unwrap_or_else(|e| e.into_inner());
        let age = Instant::now().duration_since(w.started);
        (age < self.window && w.failures >= self.limit)
            .then(|| self.window.saturating_sub(age).max(Duration::from_secs(1)))
    }

    /// An attempt that did not fail: its slot is free again (unless its
    /// window has ended and a new one started meanwhile).
    fn give_back(&self, key: &K, started: Instant) {
        if let Some(cell) = self.slots.get(key) {
            let mut w = cell.lock().unwrap_or_else(|e| e.into_inner());
            if w.started == started {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// Failures counted for `key` in its current window.
    #[cfg(test)]
    pub(crate) fn failures(&self, key: &K) -> u32 {
        self.slots
            .get(key)
            .map_or(0, |c| c.lock().unwrap_or_else(|e| e.into_inner()).failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_says_so_without_taking_a_slot() {
        let t = Throttle::new(2, Duration::from_secs(60), 100);
        assert_eq!(t.locked(&"a"), None, "unknown");
        t.begin("a").unwrap().failed();
        assert_eq!(t.locked(&"a"), None, "one failure of two");
        assert_eq!(t.failures(&"a"), 1, "asking took nothing");
        t.begin("a").unwrap().failed();
        assert!(t.locked(&"a").is_some_and(|r| r >= Duration::from_secs(1)));
        assert_eq!(t.locked(&"b"), None);
    }

    #[test]
    fn locks_after_limit_and_reopens_after_window() {
        let t = Throttle::new(3, Duration::from_millis(300), 100);
        for _ in 0..3 {
            t.begin("a").unwrap().failed();
        }
        let retry = t.begin("a").err().expect("locked");
        assert!(
            retry >= Duration::from_secs(1),
            "Retry-After is at least a second"
        );
        assert!(t.begin("b").is_ok(), "other keys are unaffected");
        std::thread::sleep(Duration::from_millis(350));
        assert!(t.begin("a").is_ok(), "window over");
    }

    #[test]
    fn an_attempt_that_did_not_fail_gives_the_slot_back() {
        let t = Throttle::new(2, Duration::from_secs(60), 100);
        for _ in 0..10 {
            let _succeeded = t.begin("a").unwrap();
        }
        assert_eq!(t.failures(&"a"), 0);
        t.begin("a").unwrap().failed();
        assert_eq!(t.failures(&"a"), 1);
    }

    #[test]
    fn concurrent_failures_are_counted_exactly() {
        let t = Arc::new(Throttle::new(50, Duration::from_secs(60), 100));
        let admitted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (t, admitted) = (t.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        if let Ok(attempt) = t.begin("k") {
                            attempt.failed();
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(admitted.load(std::sync::atomic::Ordering::Relaxed), 50);
        assert_eq!(t.failures(&"k"), 50);
    }
}
