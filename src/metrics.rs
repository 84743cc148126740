//! Process-wide counters, rendered in the Prometheus text format by the admin
//! service.
//!
//! The request path only does relaxed atomic increments on fixed arrays: no
//! registry lookup, no label hashing, no allocation and no lock per request.
//! Gauges that describe the store (live sessions, evictions) are read from the
//! store when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a request was decided, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Outcome {
    Allowed,
    Redirected,
    Unauthenticated,
    Forbidden,
    NotFound,
    BadRequest,
    Builtin,
}

const OUTCOMES: [&str; 7] = [
    "allowed",
    "redirected",
    "unauthenticated",
    "forbidden",
    "not_found",
    "bad_request",
    "builtin",
];
const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a request to an upstream failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum UpstreamError {
    ConnectRefused,
    ConnectTimeout,
    ReadTimeout,
    WriteTimeout,
    NoHealthyUpstream,
    Other,
}

const UPSTREAM_ERRORS: [&str; 6] = [
    "connect_refused",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "no_healthy_upstream",
    "other",
];

/// Latency bucket upper bounds in seconds (Prometheus' defaults, finer at the low end).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// All counters of the process.
pub struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; OUTCOMES.len()],
    upstream_errors: [AtomicU64; UPSTREAM_ERRORS.len()],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub cookie_failures: AtomicU64,
    /// Shared-store loads answered from the local cache, and those that went to the store.
    pub store_local_hits: AtomicU64,
    pub store_local_misses: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise arrays
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_ROW: [AtomicU64; CLASSES.len()] = [ZERO; CLASSES.len()];

impl Metrics {
    const fn new() -> Self {
        Metrics {
            requests: [ZERO_ROW; OUTCOMES.len()],
            upstream_errors: [ZERO; UPSTREAM_ERRORS.len()],
            latency_buckets: [ZERO; BUCKETS.len()],
            latency_count: ZERO,
            latency_sum_us: ZERO,
            logins_succeeded: ZERO,
            logins_failed: ZERO,
            logins_throttled: ZERO,
            cookie_failures: ZERO,
            store_local_hits: ZERO,
            store_local_misses: ZERO,
        }
    }

    /// Count one finished request.
    pub fn request(&self, outcome: Outcome, status: u16, took: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100),
            _ => 0,
        };
        self.requests[outcome as usize][class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Count one upstream failure.
    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted for an outcome, all status classes.
    #[cfg(test)]
    pub fn requests_for(&self, outcome: Outcome) -> u64 {
        self.requests[outcome as usize]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition, with the store's gauges.
    pub fn render(&self, live: StoreGauges) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP sessiongate_requests_total Requests by decision and response status class.\n",
        );
        out.push_str("# TYPE sessiongate_requests_total counter\n");
        for (o, row) in OUTCOMES.iter().zip(&self.requests) {
            for (c, n) in CLASSES.iter().zip(row) {
                let n = get(n);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "sessiongate_requests_total{{decision=\"{o}\",status=\"{c}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP sessiongate_upstream_errors_total Failed upstream requests by kind.\n",
        );
        out.push_str("# TYPE sessiongate_upstream_errors_total counter\n");
        for (k, n) in UPSTREAM_ERRORS.iter().zip(&self.upstream_errors) {
            let _ = writeln!(
                out,
                "sessiongate_upstream_errors_total{{kind=\"{k}\"}} {}",
                get(n)
            );
        }
        out.push_str("# HELP sessiongate_request_duration_seconds Time from request start to the access log.\n");
        out.push_str("# TYPE sessiongate_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += get(n);
            let _ = writeln!(
                out,
                "sessiongate_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "sessiongate_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "sessiongate_request_duration_seconds_sum {}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "sessiongate_request_duration_seconds_count {count}");
        let counters: [(&str, &str, u64); 6] = [
            (
                "sessiongate_logins_succeeded_total",
                "Successful built-in logins.",
                get(&self.logins_succeeded),
            ),
            (
                "sessiongate_logins_failed_total",
                "Failed built-in logins (wrong password, unknown or disabled user).",
                get(&self.logins_failed),
            ),
            (
                "sessiongate_logins_throttled_total",
                "Logins refused by throttling.",
                get(&self.logins_throttled),
            ),
            (
                "sessiongate_cookie_verification_failures_total",
                "Session cookies that did not verify (tampered, forged, or signed with an unknown secret); a valid cookie of a session that has ended is not counted.",
                get(&self.cookie_failures),
            ),
            (
                "sessiongate_store_local_hits_total",
                "Shared-store session loads answered from the local cache.",
                get(&self.store_local_hits),
            ),
            (
                "sessiongate_store_local_misses_total",
                "Shared-store session loads that went to the store.",
                get(&self.store_local_misses),
            ),
        ];
        for (name, help, n) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}"
            );
        }
        out.push_str("# HELP sessiongate_session_removals_total Sessions the store ended by itself, by cause: evicted (the store was full), expired (idle or absolute timeout), displaced (their user logged in past session.max_per_user).\n# TYPE sessiongate_session_removals_total counter\n");
        for (cause, n) in [
            ("evicted", live.evictions),
            ("expired", live.expirations),
            ("displaced", live.displaced),
        ] {
            let _ = writeln!(
                out,
                "sessiongate_session_removals_total{{cause=\"{cause}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sessiongate_sessions Live sessions.\n# TYPE sessiongate_sessions gauge\nsessiongate_sessions {}",
            live.sessions
        );
        let _ = writeln!(
            out,
            "# HELP sessiongate_session_capacity Most sessions the store keeps.\n# TYPE sessiongate_session_capacity gauge\nsessiongate_session_capacity {}",
            live.capacity
        );
        out
    }
}

/// Store figures read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreGauges {
    pub sessions: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub displaced: u64,
    pub capacity: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.request(Outcome::Allowed, 200, Duration::from_micros(700));
        m.request(Outcome::Allowed, 204, Duration::from_millis(3));
        m.request(Outcome::Unauthenticated, 401, Duration::from_millis(30));
        m.upstream_error(UpstreamError::ReadTimeout);
        let text = m.render(StoreGauges {
            sessions: 7,
            evictions: 2,
            expirations: 3,
            displaced: 4,
            capacity: 10,
        });
        for want in [
            "sessiongate_requests_total{decision=\"allowed\",status=\"2xx\"} 2",
            "sessiongate_requests_total{decision=\"unauthenticated\",status=\"4xx\"} 1",
            "sessiongate_upstream_errors_total{kind=\"read_timeout\"} 1",
            "sessiongate_request_duration_seconds_bucket{le=\"0.001\"} 1",
            "sessiongate_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "sessiongate_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "sessiongate_request_duration_seconds_count 3",
            "sessiongate_sessions 7",
            "sessiongate_session_removals_total{cause=\"evicted\"} 2",
            "sessiongate_session_removals_total{cause=\"expired\"} 3",
            "sessiongate_session_removals_total{cause=\"displaced\"} 4",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert_eq!(m.requests_for(Outcome::Allowed), 2);
    }
}
