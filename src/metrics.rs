//! Process-wide counters, rendered in the Prometheus text format by the admin
//! service.
//!
//! The request path only does relaxed atomic increments on fixed arrays: no
//! registry lookup, no label hashing, no allocation and no lock per request.
//! Gauges that describe the store (live sessions, evictions) are read from the
//! store when `/metrics` is scraped.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a request was decided, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Outcome {
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
pub(crate) enum UpstreamError {
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

/// How a config reload ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Reload {
    /// Validated and swapped in.
    Applied,
    /// The file failed validation (or a file it names could not be used).
    Invalid,
    /// Valid, but it changes something only a restart can (listen addresses, …).
    Refused,
}

const RELOADS: [&str; 3] = ["applied", "invalid", "refused"];

/// How a provider's re-check of a session ended (`auth::oidc::fresh`), as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Recheck {
    /// The provider confirmed the user; roles and claims as it now says.
    Confirmed,
    /// The provider refused (`invalid_grant`: disabled, signed out), or
    /// its claims no longer make this user: the session ended.
    Refused,
    /// The provider could not be reached; the session stays until the next check.
    UnreachableKept,
    /// The provider could not be reached; the session ended (`if_unreachable = "end"`).
    UnreachableEnded,
}

/// How an express-session import ended (`auth::import`); `NeedsFactor`: it signs in itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Import {
    Imported,
    WindowClosed,
    BadSignature,
    BadId,
    NotFound,
    Expired,
    BadRecord,
    BadIdentity,
    Disabled,
    NeedsFactor,
    Unavailable,
}

const IMPORTS: [&str; 11] = [
    "imported",
    "window_closed",
    "bad_signature",
    "bad_id",
    "not_found",
    "expired",
    "bad_record",
    "bad_identity",
    "disabled",
    "needs_factor",
    "unavailable",
];

const RECHECKS: [&str; 4] = [
    "confirmed",
    "refused",
    "unreachable_kept",
    "unreachable_ended",
];

/// Latency bucket upper bounds in seconds (Prometheus' defaults, finer at the low end).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// All counters of the process.
pub(crate) struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; OUTCOMES.len()],
    upstream_errors: [AtomicU64; UPSTREAM_ERRORS.len()],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    /// The same two in the last hour, for the admin page.
    pub recent_logins: Recent,
    pub recent_failures: Recent,
    pub cookie_failures: AtomicU64,
    /// Shared-store loads answered from the local cache, and those that went to the store.
    pub store_local_hits: AtomicU64,
    pub store_local_misses: AtomicU64,
    /// Client connections open now (the `server.max_connections` count).
    pub connections_open: AtomicU64,
    /// Client connections closed at accept because the cap was reached.
    pub connections_refused: AtomicU64,
    /// Client connections closed because a request head was overdue.
    pub head_timeouts: AtomicU64,
    reloads: [AtomicU64; RELOADS.len()],
    rechecks: [AtomicU64; RECHECKS.len()],
    imports: [AtomicU64; IMPORTS.len()],
    /// The config generation serving now: 1 at start, +1 per applied reload.
    pub config_generation: AtomicU64,
    /// When that generation was loaded, in Unix seconds.
    pub config_loaded_at: AtomicU64,
}

/// The process's metrics.
pub(crate) static METRICS: Metrics = Metrics::new();

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
            recent_logins: Recent::new(),
            recent_failures: Recent::new(),
            cookie_failures: ZERO,
            store_local_hits: ZERO,
            store_local_misses: ZERO,
            connections_open: ZERO,
            connections_refused: ZERO,
            head_timeouts: ZERO,
            reloads: [ZERO; RELOADS.len()],
            rechecks: [ZERO; RECHECKS.len()],
            imports: [ZERO; IMPORTS.len()],
            config_generation: ZERO,
            config_loaded_at: ZERO,
        }
    }

    /// Count a successful login (any kind).
    pub(crate) fn login_succeeded(&self) {
        self.logins_succeeded.fetch_add(1, Ordering::Relaxed);
        self.recent_logins.add(now_minute());
    }

    /// Count a failed login (any kind; a lockout is `logins_throttled`).
    pub(crate) fn login_failed(&self) {
        self.logins_failed.fetch_add(1, Ordering::Relaxed);
        self.recent_failures.add(now_minute());
    }

    /// Count one config reload.
    pub(crate) fn reload(&self, how: Reload) {
        self.reloads[how as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Count one provider re-check of a session.
    pub(crate) fn recheck(&self, how: Recheck) {
        self.rechecks[how as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Count one attempt to import an express-session.
    pub(crate) fn import(&self, how: Import) {
        self.imports[how as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Config reloads so far, by result.
    pub(crate) fn reloads(&self) -> [(&'static str, u64); RELOADS.len()] {
        let mut out = [("", 0); RELOADS.len()];
        for (i, name) in RELOADS.iter().enumerate() {
            out[i] = (name, self.reloads[i].load(Ordering::Relaxed));
        }
        out
    }

    /// Count one finished request.
    pub(crate) fn request(&self, outcome: Outcome, status: u16, took: Duration) {
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
    pub(crate) fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted for an outcome, all status classes.
    #[cfg(test)]
    pub(crate) fn requests_for(&self, outcome: Outcome) -> u64 {
        self.requests[outcome as usize]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition (format 0.0.4, by `prometheus-client`),
    /// with the store's gauges.
    pub(crate) fn render(&self, live: StoreGauges) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot::of(self, live)));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// The counters as read at one scrape. The request path keeps plain relaxed
/// atomics (no registry, label hashing or lock per request: prometheus-client's
/// own `Family` and `Histogram` take a lock per update); `prometheus-client`
/// only encodes this copy.
#[derive(Debug)]
struct Snapshot {
    requests: [[u64; CLASSES.len()]; OUTCOMES.len()],
    upstream_errors: [u64; UPSTREAM_ERRORS.len()],
    latency_buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum_us: u64,
    counters: [(&'static str, &'static str, u64); 8],
    reloads: [(&'static str, u64); RELOADS.len()],
    rechecks: [(&'static str, u64); RECHECKS.len()],
    imports: [(&'static str, u64); IMPORTS.len()],
    generation: u64,
    removals: [(&'static str, u64); 3],
    gauges: [(&'static str, &'static str, u64); 3],
}

/// A counter by one label: (name, help, label, a value per label value).
type Family<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

impl Snapshot {
    fn of(m: &Metrics, live: StoreGauges) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            requests: m.requests.each_ref().map(|row| row.each_ref().map(get)),
            upstream_errors: m.upstream_errors.each_ref().map(get),
            latency_buckets: m.latency_buckets.each_ref().map(get),
            latency_count: get(&m.latency_count),
            latency_sum_us: get(&m.latency_sum_us),
            counters: [
                (
                    "sessiongate_logins_succeeded",
                    "Successful built-in logins.",
                    get(&m.logins_succeeded),
                ),
                (
                    "sessiongate_logins_failed",
                    "Failed built-in logins (wrong password, unknown or disabled user).",
                    get(&m.logins_failed),
                ),
                (
                    "sessiongate_logins_throttled",
                    "Logins refused by throttling.",
                    get(&m.logins_throttled),
                ),
                (
                    "sessiongate_cookie_verification_failures",
                    "Session cookies that did not verify (tampered, forged, or signed with an unknown secret); a valid cookie of a session that has ended is not counted.",
                    get(&m.cookie_failures),
                ),
                (
                    "sessiongate_store_local_hits",
                    "Shared-store session loads answered from the local cache.",
                    get(&m.store_local_hits),
                ),
                (
                    "sessiongate_store_local_misses",
                    "Shared-store session loads that went to the store.",
                    get(&m.store_local_misses),
                ),
                (
                    "sessiongate_connections_refused",
                    "Client connections closed at accept because server.max_connections were open.",
                    get(&m.connections_refused),
                ),
                (
                    "sessiongate_request_head_timeouts",
                    "Client connections closed because a request head took longer than server.request_head_timeout.",
                    get(&m.head_timeouts),
                ),
            ],
            reloads: m.reloads(),
            rechecks: std::array::from_fn(|i| (RECHECKS[i], get(&m.rechecks[i]))),
            imports: std::array::from_fn(|i| (IMPORTS[i], get(&m.imports[i]))),
            generation: get(&m.config_generation),
            removals: [
                ("evicted", live.evictions),
                ("expired", live.expirations),
                ("displaced", live.displaced),
            ],
            gauges: [
                ("sessiongate_sessions", "Live sessions.", live.sessions),
                (
                    "sessiongate_session_capacity",
                    "Most logged-in sessions the store keeps.",
                    live.capacity,
                ),
                (
                    "sessiongate_connections_open",
                    "Client connections open now (capped by server.max_connections).",
                    get(&m.connections_open),
                ),
            ],
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut m = enc.encode_descriptor(
            "sessiongate_requests",
            "Requests by decision and response status class.",
            None,
            MetricType::Counter,
        )?;
        for (o, row) in OUTCOMES.iter().zip(&self.requests) {
            for (c, n) in CLASSES.iter().zip(row) {
                if *n > 0 {
                    m.encode_family(&[("decision", *o), ("status", *c)])?
                        .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "sessiongate_upstream_errors",
            "Failed upstream requests by kind.",
            None,
            MetricType::Counter,
        )?;
        for (k, n) in UPSTREAM_ERRORS.iter().zip(&self.upstream_errors) {
            m.encode_family(&[("kind", *k)])?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .zip(self.latency_buckets.iter().copied())
            .collect();
        enc.encode_descriptor(
            "sessiongate_request_duration_seconds",
            "Time from request start to the access log.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            self.latency_sum_us as f64 / 1e6,
            self.latency_count,
            &buckets,
            None,
        )?;
        for (name, help, n) in &self.counters {
            enc.encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let families: [Family; 4] = [
            (
                "sessiongate_config_reloads",
                "Config reloads (SIGHUP or a changed file) by result: applied, invalid (the last good config keeps serving), refused (a change that needs a restart).",
                "result",
                &self.reloads,
            ),
            (
                "sessiongate_provider_rechecks",
                "Sessions re-checked at their OpenID provider (recheck_every), by result: confirmed, refused (the session ended), unreachable_kept, unreachable_ended.",
                "result",
                &self.rechecks,
            ),
            (
                "sessiongate_express_imports",
                "Requests with an Express app's express-session cookie and no session here ([import]), by result: imported, or why not (window_closed, bad_signature, bad_id, not_found, expired, bad_record, bad_identity, disabled, needs_factor, unavailable).",
                "result",
                &self.imports,
            ),
            (
                "sessiongate_session_removals",
                "Sessions the store ended by itself, by cause: evicted (the store was full), expired (idle or absolute timeout), displaced (their user logged in past session.max_per_user).",
                "cause",
                &self.removals,
            ),
        ];
        for (name, help, label, rows) in families {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (value, n) in rows {
                m.encode_family(&[(label, *value)])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        enc.encode_descriptor(
            "sessiongate_config_generation",
            "The config generation serving: 1 at start, one more per applied reload.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&self.generation)?;
        for (name, help, n) in &self.gauges {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(n)?;
        }
        Ok(())
    }
}

/// Store figures read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreGauges {
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

/// Minutes since the Unix epoch.
pub(crate) fn now_minute() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs / 60).unwrap_or(u32::MAX)
}

/// A count over the last hour: sixty one-minute buckets, each one atomic
/// word holding its minute (high half) and its count (low half), so a bucket
/// left from an earlier hour is recognised and restarted without a lock.
/// Hand-written: the metrics crate exports totals, not windows, and this is
/// forty lines (the admin page's "logins in the last hour").
pub(crate) struct Recent {
    buckets: [AtomicU64; 60],
}

impl Recent {
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: AtomicU64 = AtomicU64::new(0);

    pub(crate) const fn new() -> Self {
        Recent {
            buckets: [Self::EMPTY; 60],
        }
    }

    /// Count one event in `minute`.
    pub(crate) fn add(&self, minute: u32) {
        let bucket = &self.buckets[minute as usize % 60];
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let next = if (cur >> 32) as u32 == minute {
                cur.saturating_add(1)
            } else {
                (u64::from(minute) << 32) | 1
            };
            match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Events in the sixty minutes up to and including `minute`.
    pub(crate) fn last_hour(&self, minute: u32) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|v| minute.wrapping_sub((v >> 32) as u32) < 60)
            .map(|v| v & 0xffff_ffff)
            .sum()
    }
}

impl Default for Recent {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod recent_tests {
    use super::Recent;

    #[test]
    fn counts_only_the_last_sixty_minutes() {
        let r = Recent::new();
        r.add(1000);
        r.add(1000);
        r.add(1030);
        r.add(1059);
        assert_eq!(r.last_hour(1059), 4);
        assert_eq!(r.last_hour(1060), 2, "minute 1000 is over an hour old");
        // A bucket from an hour before is restarted, not added to.
        r.add(1090);
        assert_eq!(r.last_hour(1090), 2);
        assert_eq!(r.last_hour(2000), 0);
        assert_eq!(r.last_hour(999), 0, "nothing from the future");
    }
}
