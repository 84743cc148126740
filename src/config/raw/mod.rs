//! The raw layer: serde structs that mirror `proxy.toml` key for key, and the
//! `default_*` function behind every defaulted key, each with its reason.
//!
//! Every struct is `deny_unknown_fields`, so a misspelt key is a syntax error with
//! a line and column, never a silently ignored setting. Nothing here checks a
//! value: durations, addresses and secrets are still strings, turned into the
//! typed [`Config`](super::Config) by [`validate`](super::validate).

mod auth;
mod import;

use std::collections::BTreeMap;

use serde::Deserialize;

pub(super) use self::auth::{RawAuth, RawJwt, RawLdap, RawOidc, RawSecondFactor};
pub(super) use self::import::RawImport;

// ---------------------------------------------------------------- raw layer

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) session: RawSession,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) upstream: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub(super) routes: RawRoutes,
    #[serde(default)]
    pub(super) route: Vec<RawRoute>,
    #[serde(default)]
    pub(super) identity: RawIdentity,
    pub(super) assertion: Option<RawAssertion>,
    pub(super) import: Option<RawImport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    #[serde(default)]
    pub(super) keys: Vec<RawSecret>,
    #[serde(default = "default_assertion_issuer")]
    pub(super) issuer: String,
    #[serde(default = "default_assertion_ttl")]
    pub(super) ttl: String,
}

fn default_assertion_issuer() -> String {
    "sessiongate".to_owned()
}

/// Short-lived: a revoked session's assertions outlive it by at most this.
fn default_assertion_ttl() -> String {
    "60s".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    #[serde(default = "default_user_header")]
    pub(super) user_header: String,
    #[serde(default = "default_roles_header")]
    pub(super) roles_header: String,
    /// The `email` claim's header; "" for none.
    #[serde(default = "default_email_header")]
    pub(super) email_header: String,
    /// The `name` claim's (the display name) header; "" for none.
    #[serde(default = "default_name_header")]
    pub(super) name_header: String,
    /// More claims: header to claim (an ID token claim, a directory attribute).
    #[serde(default)]
    pub(super) claim_headers: std::collections::BTreeMap<String, String>,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            user_header: default_user_header(),
            roles_header: default_roles_header(),
            email_header: default_email_header(),
            name_header: default_name_header(),
            claim_headers: std::collections::BTreeMap::new(),
        }
    }
}

/// Under `X-User-`, which clients can never send.
fn default_email_header() -> String {
    "X-User-Email".to_owned()
}

fn default_name_header() -> String {
    "X-User-Name".to_owned()
}

/// What backends behind sessiongate have always read.
fn default_user_header() -> String {
    "X-User".to_owned()
}

fn default_roles_header() -> String {
    "X-User-Roles".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default)]
    pub(super) listen: Vec<String>,
    #[serde(default = "default_threads")]
    pub(super) threads: usize,
    #[serde(default = "default_grace_period")]
    pub(super) grace_period: String,
    #[serde(default = "default_shutdown_timeout")]
    pub(super) shutdown_timeout: String,
    #[serde(default = "default_client_idle_timeout")]
    pub(super) client_idle_timeout: String,
    #[serde(default = "default_request_head_timeout")]
    pub(super) request_head_timeout: String,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: u64,
    #[serde(default = "default_read_buffer")]
    pub(super) read_buffer: usize,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    #[serde(default)]
    pub(super) tls: Vec<RawTls>,
    pub(super) upgrade_socket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) listen: Vec<String>,
    pub(super) cert_file: String,
    pub(super) key_file: String,
    /// More pairs on the same addresses, chosen by SNI.
    #[serde(default)]
    pub(super) certificates: Vec<RawCertificate>,
}

/// One more certificate of a TLS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificate {
    pub(super) cert_file: String,
    pub(super) key_file: String,
    /// The names it serves; default: its own DNS names.
    pub(super) names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    #[serde(default)]
    pub(super) secrets: Vec<RawSecret>,
    #[serde(default = "default_idle_timeout")]
    pub(super) idle_timeout: String,
    #[serde(default = "default_absolute_timeout")]
    pub(super) absolute_timeout: String,
    #[serde(default = "default_capacity")]
    pub(super) capacity: u64,
    #[serde(default = "default_anonymous_capacity")]
    pub(super) anonymous_capacity: u64,
    #[serde(default = "default_max_per_user")]
    pub(super) max_per_user: u64,
    #[serde(default)]
    pub(super) save_uninitialized: bool,
    #[serde(default)]
    pub(super) resave: bool,
    #[serde(default)]
    pub(super) rolling: bool,
    #[serde(default)]
    pub(super) cookie: RawCookie,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) env: Option<String>,
    pub(super) file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCookie {
    #[serde(default = "default_cookie_name")]
    pub(super) name: String,
    #[serde(default = "default_cookie_path")]
    pub(super) path: String,
    pub(super) domain: Option<String>,
    #[serde(default = "default_true")]
    pub(super) http_only: bool,
    #[serde(default)]
    pub(super) secure: RawSecure,
    #[serde(default = "default_same_site")]
    pub(super) same_site: String,
    pub(super) max_age: Option<String>,
}

/// `secure = true | false | "auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSecure {
    Bool(bool),
    Word(String),
}

/// Secure by default: the session cookie must not travel over plain HTTP.
impl Default for RawSecure {
    fn default() -> Self {
        RawSecure::Bool(true)
    }
}

impl Default for RawCookie {
    fn default() -> Self {
        RawCookie {
            name: default_cookie_name(),
            path: default_cookie_path(),
            domain: None,
            http_only: true,
            secure: RawSecure::default(),
            same_site: default_same_site(),
            max_age: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default = "default_store_kind")]
    pub(super) kind: String,
    pub(super) url: Option<String>,
    pub(super) password: Option<RawSecret>,
    #[serde(default = "default_redis_prefix")]
    pub(super) prefix: String,
    #[serde(default = "default_redis_timeout")]
    pub(super) timeout: String,
    #[serde(default = "default_local_ttl")]
    pub(super) local_ttl: String,
    #[serde(default = "default_local_capacity")]
    pub(super) local_capacity: u64,
    pub(super) sentinel: Option<RawSentinel>,
    pub(super) cluster: Option<RawCluster>,
    pub(super) credentials_file: Option<String>,
}

/// `[store.cluster]`: a Redis Cluster, through its seed nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) nodes: Vec<String>,
}

/// `[store.sentinel]`: find the Redis primary through Redis Sentinel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSentinel {
    pub(super) addrs: Vec<String>,
    pub(super) master_name: String,
    pub(super) password: Option<RawSecret>,
    #[serde(default)]
    pub(super) database: i64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            kind: default_store_kind(),
            url: None,
            password: None,
            prefix: default_redis_prefix(),
            timeout: default_redis_timeout(),
            local_ttl: default_local_ttl(),
            local_capacity: default_local_capacity(),
            sentinel: None,
            cluster: None,
            credentials_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    pub(super) listen: String,
    pub(super) token: Option<RawSecret>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "default_log_format")]
    pub(super) format: String,
    #[serde(default = "default_log_level")]
    pub(super) level: String,
    #[serde(default = "default_true")]
    pub(super) access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_log_format(),
            level: default_log_level(),
            access_log: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    #[serde(default)]
    pub(super) addrs: Vec<String>,
    #[serde(default)]
    pub(super) session_commands: bool,
    #[serde(default)]
    pub(super) pass_authorization: bool,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout: String,
    #[serde(default = "default_read_timeout")]
    pub(super) read_timeout: String,
    #[serde(default = "default_write_timeout")]
    pub(super) write_timeout: String,
    #[serde(default = "default_upstream_idle_timeout")]
    pub(super) idle_timeout: String,
    #[serde(default = "default_health_check_interval")]
    pub(super) health_check_interval: String,
    pub(super) assertion_audience: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutes {
    pub(super) default_access: Option<String>,
    pub(super) default_upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: String,
    #[serde(default = "default_match", rename = "match")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) methods: Vec<String>,
    pub(super) access: Option<String>,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) users: Vec<String>,
    pub(super) upstream: Option<String>,
    pub(super) credentials: Option<Vec<String>>,
    /// The hosts it applies to (exact, or `*.example.com`); empty: every host.
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    /// The client networks it applies to (CIDR ranges); empty: every client.
    #[serde(default)]
    pub(super) networks: Vec<String>,
    /// Step-up: only a session that passed a second factor.
    #[serde(default)]
    pub(super) second_factor: bool,
    /// Step-up: ... within this long (implies `second_factor`).
    pub(super) second_factor_within: Option<String>,
}

// ---------------------------------------------------------------- defaults, each with its reason

/// Two worker threads: one per core on the reference machine.
fn default_threads() -> usize {
    2
}
/// Time in-flight requests get after SIGTERM; pingora's own default is 300 s,
/// far longer than any orchestrator waits.
fn default_grace_period() -> String {
    "5s".into()
}
fn default_shutdown_timeout() -> String {
    "5s".into()
}
/// Idle keep-alive connections from clients are closed after this; pingora keeps
/// them forever by default (pingora#447).
fn default_client_idle_timeout() -> String {
    "60s".into()
}
/// nginx's `client_header_timeout` is 60 s per read; a deadline for the whole
/// head can be shorter: a browser sends its head in one packet.
fn default_request_head_timeout() -> String {
    "10s".into()
}
/// Below a typical `ulimit -n` of 65536 with room for upstream connections.
fn default_max_connections() -> u64 {
    10_000
}
/// Each client connection's read buffer, held for as long as the connection
/// is open, idle or not. pingora's default is 64 KiB; 4 KiB (pingora's own
/// header buffer's size) measured 49 KB per idle keep-alive connection against
/// 111 KB, with the same req/s on small requests (bench/results/conns.md and
/// conns-64k.md, one run each). Large bodies take more reads; not measured.
fn default_read_buffer() -> usize {
    4 * 1024
}
/// OWASP Session Management Cheat Sheet: 15–30 minutes idle for most applications.
fn default_idle_timeout() -> String {
    "30m".into()
}
/// OWASP: an absolute timeout bounds a stolen session; 12 h covers a working day.
fn default_absolute_timeout() -> String {
    "12h".into()
}
/// One million sessions; at a few hundred bytes each, well under a gigabyte.
fn default_capacity() -> u64 {
    1_000_000
}
/// Anonymous sessions cost an attacker nothing to make when
/// `save_uninitialized = true`: they get a cache of their own, a tenth of the
/// logged-in one's default (~50 MB at ~500 B each), so a flood evicts only
/// other anonymous sessions.
fn default_anonymous_capacity() -> u64 {
    100_000
}
/// Concurrent sessions per user (ASVS 5.0 7.1.2 asks that the cap be documented):
/// enough for a person's browsers and devices; a login past it ends that user's
/// oldest session, so one account cannot push every other user out of the store.
fn default_max_per_user() -> u64 {
    10
}
/// `__Host-` makes the browser refuse the cookie unless it is Secure, has
/// `Path=/` and no Domain, so a sibling subdomain cannot plant one (RFC 6265bis
/// §4.1.3.2); "sid" says nothing about the software behind it (OWASP: do not
/// fingerprint).
fn default_cookie_name() -> String {
    "__Host-sid".into()
}
fn default_cookie_path() -> String {
    "/".into()
}
/// Lax: sent on top-level navigations (so links into the app keep the session)
/// but not on cross-site subrequests or POSTs.
fn default_same_site() -> String {
    "lax".into()
}
fn default_true() -> bool {
    true
}
/// The embedded store: nothing to run beside sessiongate.
fn default_store_kind() -> String {
    "memory".into()
}
fn default_redis_prefix() -> String {
    "sessiongate:".into()
}
/// Every Redis call has a deadline; past it the request fails closed (503).
fn default_redis_timeout() -> String {
    "250ms".into()
}
/// The hard bound on how long another instance's revocation can go unseen.
fn default_local_ttl() -> String {
    "1s".into()
}
fn default_local_capacity() -> u64 {
    100_000
}
/// Loopback only: the admin API can revoke every session.
fn default_admin_listen() -> String {
    "127.0.0.1:9091".into()
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}
/// Fail fast on a dead backend; loopback and LAN connects take milliseconds.
fn default_connect_timeout() -> String {
    "2s".into()
}
/// pingora leaves the read timeout unset (wait forever); 30 s per read matches
/// common proxy defaults (nginx `proxy_read_timeout` is 60 s).
fn default_read_timeout() -> String {
    "30s".into()
}
fn default_write_timeout() -> String {
    "30s".into()
}
/// Pooled upstream connections are closed after this long unused, below the
/// usual 60–75 s keep-alive of application servers so we close first.
fn default_upstream_idle_timeout() -> String {
    "55s".into()
}
fn default_health_check_interval() -> String {
    "5s".into()
}
fn default_match() -> String {
    "prefix".into()
}
