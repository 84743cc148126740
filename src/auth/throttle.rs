//! Login throttling: at most N failed attempts per key (a canonical user name,
//! or a client IP) in a fixed window, then refusal with `Retry-After` until the
//! window ends (OWASP Authentication Cheat Sheet: account lockout / throttling).
//!
//! An attempt takes a slot *before* the password is checked and gives it back
//! only on success, so concurrent attempts are counted exactly: N parallel
//! guesses cannot all slip through on a stale count. During a lockout even the
//! right password is refused the same way, so a lockout leaks nothing.
//!
//! Keys live in a bounded moka cache that forgets them after the window, so a
//! flood of distinct names cannot grow memory without bound.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failure counting for one kind of key.
pub struct Throttle<K: Hash + Eq + Send + Sync + 'static> {
    limit: u32,
    window: Duration,
    slots: moka::sync::Cache<K, Arc<Mutex<Window>>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// A taken slot; give it back with [`Throttle::succeeded`] or keep it as a failure.
#[must_use]
pub struct Attempt<K> {
    key: K,
    started: Instant,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Throttle<K> {
    /// `limit` failures per `window`, remembering at most `capacity` keys.
    pub fn new(limit: u32, window: Duration, capacity: u64) -> Self {
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
    pub fn begin(&self, key: K) -> Result<Attempt<K>, Duration> {
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
            key,
            started: w.started,
        })
    }

    /// The attempt succeeded: its slot is given back.
    pub fn succeeded(&self, attempt: Attempt<K>) {
        if let Some(cell) = self.slots.get(&attempt.key) {
            let mut w = cell.lock().unwrap_or_else(|e| e.into_inner());
            if w.started == attempt.started {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// Failures counted for `key` in its current window.
    #[cfg(test)]
    pub fn failures(&self, key: &K) -> u32 {
        self.slots
            .get(key)
            .map_or(0, |c| c.lock().unwrap_or_else(|e| e.into_inner()).failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_reopens_after_window() {
        let t = Throttle::new(3, Duration::from_millis(300), 100);
        for _ in 0..3 {
            let _failed = t.begin("a").unwrap();
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
    fn success_gives_the_slot_back() {
        let t = Throttle::new(2, Duration::from_secs(60), 100);
        for _ in 0..10 {
            let a = t.begin("a").unwrap();
            t.succeeded(a);
        }
        assert_eq!(t.failures(&"a"), 0);
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
                        if t.begin("k").is_ok() {
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
