//! Waiting for something a test cannot be told about directly: [`wait_for`]
//! polls a condition until a deadline, and [`SteadyLoad`] keeps protected
//! requests going on a thread of its own while a store fails over, then
//! checks every answer. What is waited on is the caller's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::Req;

/// Wait for `what`, checking every 50 ms, at most `within`.
pub fn wait_for(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A steady load of protected requests (`GET /private` as an API client,
/// cycling through `cookies`) on a thread of its own, for a store failover to
/// happen under. Every answer is recorded.
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<(Instant, u16, bool)>>,
}

impl SteadyLoad {
    /// Start, and return once 50 requests were answered.
    pub fn start(addr: SocketAddr, cookies: Vec<String>) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for c in cookies.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let resp = Req::new(addr, "GET", "/private").cookie(c).api().send();
                    let cleared = resp
                        .all("set-cookie")
                        .iter()
                        .any(|c| c.contains("Max-Age=0"));
                    seen.push((Instant::now(), resp.status, cleared));
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        };
        let load = SteadyLoad { stop, sent, thread };
        load.more(50);
        load
    }

    /// Wait until `n` more requests were answered.
    pub fn more(&self, n: usize) {
        let before = self.sent.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(10), "more requests answered", || {
            self.sent.load(Ordering::Relaxed) >= before + n
        });
    }

    /// Stop, and check what a store failover may do to protected requests:
    /// answer 200 or 503, never anything else (anonymous would be a 401),
    /// never clear the cookie. Prints how many answered 503 and over how long,
    /// with `what` and `back` (the time from the failure until service).
    pub fn stop_and_check(self, what: &str, back: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        let other: Vec<_> = seen
            .iter()
            .filter(|(_, s, _)| *s != 200 && *s != 503)
            .collect();
        assert!(
            other.is_empty(),
            "only 200 or 503 during a failover: {other:?}"
        );
        assert!(
            seen.iter().all(|(_, _, cleared)| !cleared),
            "no cookie is cleared because of a failover"
        );
        let unavailable: Vec<Instant> = seen
            .iter()
            .filter(|(_, s, _)| *s == 503)
            .map(|(t, _, _)| *t)
            .collect();
        let window = match (unavailable.first(), unavailable.last()) {
            (Some(a), Some(b)) => b.duration_since(*a),
            _ => Duration::ZERO,
        };
        eprintln!(
            "{what}: {} requests, {} answered 503 over {window:?}; back {back:?} after the failure",
            seen.len(),
            unavailable.len(),
        );
    }
}
