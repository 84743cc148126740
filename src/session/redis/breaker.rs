//! The Redis store's circuit breaker: after [`BREAKER_THRESHOLD`] consecutive
//! failures of request-path calls, calls fail at once for [`BREAKER_OPEN`], so a
//! dead or frozen Redis costs a request a 503 now rather than a deadline each.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::session::now_ms;

/// Consecutive failures that open the circuit breaker.
pub(super) const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker refuses calls before trying again.
pub(super) const BREAKER_OPEN: Duration = Duration::from_millis(500);

/// Counts consecutive failures; while open, calls fail at once.
#[derive(Default)]
pub(super) struct Breaker {
    failures: AtomicU32,
    open_until: AtomicU64,
}

impl Breaker {
    pub(super) fn allow(&self) -> bool {
        now_ms() >= self.open_until.load(Ordering::Relaxed)
    }

    pub(super) fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    pub(super) fn failure(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= BREAKER_THRESHOLD {
            self.open_until.store(
                now_ms() + BREAKER_OPEN.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= BREAKER_THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breaker::default();
        for _ in 0..BREAKER_THRESHOLD {
            assert!(b.allow());
            b.failure();
        }
        assert!(!b.allow() && b.is_open());
        b.success();
        assert!(!b.is_open());
    }
}
