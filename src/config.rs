//! Configuration: `proxy.toml` → raw serde structs → a validated [`Config`].
//!
//! The raw layer mirrors the file exactly and rejects unknown keys
//! (`deny_unknown_fields`), so a typo is an error rather than a silently ignored
//! security setting. The typed layer holds parsed durations, resolved socket
//! addresses, loaded secrets and the compiled rule table. Validation reports every
//! problem at once, each naming its key: `route[2].path: must start with '/' (got "admin")`.
//!
//! Every default lives in one `default_*` function below, with its reason. Unsafe
//! settings are refused rather than corrected. Secrets are never written in the
//! config: it names an environment variable or a file that holds them.
//!
//! This module does not start anything; `main` and `proxy` consume a [`Config`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use serde::Deserialize;

use crate::cookie::{CookieAttrs, SameSite, Secret, Secure, MIN_SECRET_LEN};
use crate::identity::Cidr;
use crate::routes::{self, Access, PathMatch, Rule, Rules};

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax or shape; toml's message carries line and column.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// Semantic problems, one line each, every one naming its key.
    #[error("{path}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

// ---------------------------------------------------------------- raw layer

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    session: RawSession,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    upstream: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    routes: RawRoutes,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Vec<String>,
    #[serde(default = "default_threads")]
    threads: usize,
    #[serde(default = "default_grace_period")]
    grace_period: String,
    #[serde(default = "default_shutdown_timeout")]
    shutdown_timeout: String,
    #[serde(default = "default_client_idle_timeout")]
    client_idle_timeout: String,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    #[serde(default)]
    secrets: Vec<RawSecret>,
    #[serde(default = "default_idle_timeout")]
    idle_timeout: String,
    #[serde(default = "default_absolute_timeout")]
    absolute_timeout: String,
    #[serde(default = "default_capacity")]
    capacity: u64,
    #[serde(default)]
    save_uninitialized: bool,
    #[serde(default)]
    resave: bool,
    #[serde(default)]
    rolling: bool,
    #[serde(default)]
    cookie: RawCookie,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCookie {
    #[serde(default = "default_cookie_name")]
    name: String,
    #[serde(default = "default_cookie_path")]
    path: String,
    domain: Option<String>,
    #[serde(default = "default_true")]
    http_only: bool,
    #[serde(default)]
    secure: RawSecure,
    #[serde(default = "default_same_site")]
    same_site: String,
    max_age: Option<String>,
}

/// `secure = true | false | "auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSecure {
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
struct RawAuth {
    #[serde(default = "default_auth_prefix")]
    prefix: String,
    login_url: Option<String>,
    users_file: Option<String>,
    #[serde(default = "default_logout_redirect")]
    logout_redirect: String,
    #[serde(default = "default_max_failures")]
    max_failures: u32,
    #[serde(default = "default_ip_max_failures")]
    ip_max_failures: u32,
    #[serde(default = "default_failure_window")]
    failure_window: String,
    #[serde(default = "default_max_concurrent_hashes")]
    max_concurrent_hashes: usize,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            prefix: default_auth_prefix(),
            login_url: None,
            users_file: None,
            logout_redirect: default_logout_redirect(),
            max_failures: default_max_failures(),
            ip_max_failures: default_ip_max_failures(),
            failure_window: default_failure_window(),
            max_concurrent_hashes: default_max_concurrent_hashes(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_store_kind")]
    kind: String,
    url: Option<String>,
    password: Option<RawSecret>,
    #[serde(default = "default_redis_prefix")]
    prefix: String,
    #[serde(default = "default_redis_timeout")]
    timeout: String,
    #[serde(default = "default_local_ttl")]
    local_ttl: String,
    #[serde(default = "default_local_capacity")]
    local_capacity: u64,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    listen: String,
    token: Option<RawSecret>,
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
struct RawLog {
    #[serde(default = "default_log_format")]
    format: String,
    #[serde(default = "default_log_level")]
    level: String,
    #[serde(default = "default_true")]
    access_log: bool,
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
struct RawUpstream {
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    session_commands: bool,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: String,
    #[serde(default = "default_read_timeout")]
    read_timeout: String,
    #[serde(default = "default_write_timeout")]
    write_timeout: String,
    #[serde(default = "default_upstream_idle_timeout")]
    idle_timeout: String,
    #[serde(default = "default_health_check_interval")]
    health_check_interval: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    default_access: Option<String>,
    default_upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default = "default_match", rename = "match")]
    kind: String,
    #[serde(default)]
    methods: Vec<String>,
    access: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    upstream: Option<String>,
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
/// A prefix unlikely to collide with the application's own paths.
fn default_auth_prefix() -> String {
    "/.sessiongate".into()
}
/// After logout, the public home page.
fn default_logout_redirect() -> String {
    "/".into()
}
/// OWASP Authentication Cheat Sheet: lock out after a small number of failures.
fn default_max_failures() -> u32 {
    5
}
/// Per client IP, higher than per user: many people can share one NAT address.
fn default_ip_max_failures() -> u32 {
    50
}
fn default_failure_window() -> String {
    "15m".into()
}
/// Each argon2id verification holds 19 MiB; a few at once bound memory and
/// keep hashing from starving proxied traffic.
fn default_max_concurrent_hashes() -> usize {
    4
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

// ---------------------------------------------------------------- typed layer

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info`.
    pub level: String,
    /// One event per request on the `access` target.
    pub access_log: bool,
}

/// Session and cookie settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub secrets: Vec<Secret>,
    /// Store (and send a cookie for) a session nobody wrote to.
    pub save_uninitialized: bool,
    /// Write an unchanged session back on every request.
    pub resave: bool,
    /// Re-send the cookie on every response to a request with a live session.
    pub rolling: bool,
    /// Server-side idle lifetime (equals the cookie's `max_age` when that is set).
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub capacity: u64,
    pub cookie: CookieAttrs,
}

/// The built-in endpoints' location and where anonymous browsers are sent.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub prefix: String,
    /// Relative URL of the login page; `?next=` is appended.
    pub login_url: String,
    /// The users file of the built-in login; `None` = built-in login off.
    pub users_file: Option<PathBuf>,
    /// Where `POST <prefix>/logout` sends the browser.
    pub logout_redirect: String,
    /// Failed logins per user name within `failure_window` before lockout.
    pub max_failures: u32,
    /// Failed logins per client IP within `failure_window` before lockout.
    pub ip_max_failures: u32,
    pub failure_window: Duration,
    /// Password verifications running at once.
    pub max_concurrent_hashes: usize,
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Memory,
    Redis(RedisConfig),
}

/// The shared store.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`, with the password (if any) filled in from `store.password`.
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
    pub local_ttl: Duration,
    pub local_capacity: u64,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token; `None` leaves only `/healthz` and `/readyz` open.
    pub token: Option<Secret>,
}

/// One named upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// Whether this upstream may issue session commands (`X-Session-Login`, …).
    pub session_commands: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_check_interval: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed.
    pub trusted_proxies: Vec<Cidr>,
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub client_idle_timeout: Duration,
    pub session: SessionConfig,
    pub auth: AuthConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub rules: Rules,
}

impl Config {
    /// Read, parse and validate a config file. Relative secret files are resolved
    /// against the config file's directory.
    ///
    /// # Errors
    /// An unreadable file, a TOML error (with line and column), or every semantic
    /// problem found, each naming its key.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ParseError::Syntax(message) => Error::Syntax {
                path: path.to_owned(),
                message,
            },
            ParseError::Invalid(problems) => Error::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Parse and validate config text; `base` anchors relative secret files.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn parse(text: &str, base: &Path) -> Result<Config, ParseError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let mut v = Validator {
            problems: Vec::new(),
        };
        let config = v.config(raw, base);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ParseError::Invalid(v.problems)),
        }
    }
}

/// [`Config::parse`]'s failure, before a file name is attached.
#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Invalid(Vec<String>),
}

struct Validator {
    problems: Vec<String>,
}

impl Validator {
    fn problem(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }

    fn duration(&mut self, key: &str, value: &str) -> Option<Duration> {
        match humantime::parse_duration(value) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(key, format!("must be greater than zero (got {value:?})"));
                None
            }
            Err(e) => {
                self.problem(
                    key,
                    format!("{e} (got {value:?}; use e.g. \"30s\", \"15m\", \"12h\")"),
                );
                None
            }
        }
    }

    fn config(&mut self, raw: RawConfig, base: &Path) -> Option<Config> {
        let listen = self.listen(&raw.server.listen);
        if raw.server.threads == 0 {
            self.problem("server.threads", "must be at least 1 (got 0)");
        }
        let grace_period = self.duration("server.grace_period", &raw.server.grace_period);
        let shutdown_timeout =
            self.duration("server.shutdown_timeout", &raw.server.shutdown_timeout);
        let client_idle_timeout = self.duration(
            "server.client_idle_timeout",
            &raw.server.client_idle_timeout,
        );
        let mut trusted_proxies = Vec::new();
        for (i, c) in raw.server.trusted_proxies.iter().enumerate() {
            match c.parse::<Cidr>() {
                Ok(c) => trusted_proxies.push(c),
                Err(()) => self.problem(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("not an address or CIDR like \"10.0.0.0/8\" (got {c:?})"),
                ),
            }
        }
        let session = self.session(raw.session, base);
        let auth = self.auth(raw.auth, base);
        let admin = self.admin(raw.admin, base);
        let store = self.store(raw.store, base);
        let log = self.log(raw.log);
        let upstreams = self.upstreams(raw.upstream);
        let rules = self.rules(raw.routes, raw.route, &upstreams);
        Some(Config {
            listen,
            trusted_proxies,
            threads: raw.server.threads,
            grace_period: grace_period?,
            shutdown_timeout: shutdown_timeout?,
            client_idle_timeout: client_idle_timeout?,
            session: session?,
            auth: auth?,
            admin: admin?,
            store: store?,
            log: log?,
            upstreams,
            rules: rules?,
        })
    }

    fn listen(&mut self, raw: &[String]) -> Vec<SocketAddr> {
        if raw.is_empty() {
            self.problem(
                "server.listen",
                "needs at least one address (e.g. \"127.0.0.1:8080\")",
            );
        }
        raw.iter()
            .enumerate()
            .filter_map(|(i, a)| match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        &format!("server.listen[{i}]"),
                        format!("not an ip:port (got {a:?})"),
                    );
                    None
                }
            })
            .collect()
    }

    fn session(&mut self, raw: RawSession, base: &Path) -> Option<SessionConfig> {
        let secrets = self.secrets(&raw.secrets, base);
        let absolute_timeout = self.duration("session.absolute_timeout", &raw.absolute_timeout);
        let c = raw.cookie;
        let max_age = c
            .max_age
            .as_deref()
            .and_then(|m| self.duration("session.cookie.max_age", m));
        // With max_age the cookie and the server expire together; without it the
        // cookie lives for the browser session and the server enforces idle_timeout.
        let idle_timeout = match max_age {
            Some(m) => Some(m),
            None => self.duration("session.idle_timeout", &raw.idle_timeout),
        };
        if raw.capacity == 0 {
            self.problem("session.capacity", "must be at least 1 (got 0)");
        }
        let same_site = match c.same_site.to_ascii_lowercase().as_str() {
            "strict" => Some(SameSite::Strict),
            "lax" => Some(SameSite::Lax),
            "none" => Some(SameSite::None),
            other => {
                self.problem(
                    "session.cookie.same_site",
                    format!("must be strict, lax or none (got {other:?})"),
                );
                None
            }
        };
        let secure = match &c.secure {
            RawSecure::Bool(true) => Some(Secure::Always),
            RawSecure::Bool(false) => Some(Secure::Never),
            RawSecure::Word(w) if w == "auto" => Some(Secure::Auto),
            RawSecure::Word(w) => {
                self.problem(
                    "session.cookie.secure",
                    format!("must be true, false or \"auto\" (got {w:?})"),
                );
                None
            }
        };
        let always_secure = secure == Some(Secure::Always);
        if !is_cookie_token(&c.name) {
            self.problem(
                "session.cookie.name",
                format!("must be a non-empty cookie token (got {:?})", c.name),
            );
        }
        if !c.path.starts_with('/') || c.path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            self.problem(
                "session.cookie.path",
                format!("must start with '/' and contain no ';' (got {:?})", c.path),
            );
        }
        if let Some(d) = &c.domain {
            if d.is_empty()
                || d.bytes()
                    .any(|b| b == b';' || b.is_ascii_whitespace() || b.is_ascii_control())
            {
                self.problem("session.cookie.domain", format!("not a domain (got {d:?})"));
            }
        }
        if same_site == Some(SameSite::None) && !always_secure {
            // Browsers drop SameSite=None cookies that are not Secure.
            self.problem(
                "session.cookie.same_site",
                "none requires session.cookie.secure = true",
            );
        }
        if c.name.starts_with("__Host-") && (!always_secure || c.path != "/" || c.domain.is_some())
        {
            // RFC 6265bis §4.1.3.2: browsers reject such a cookie outright.
            self.problem(
                "session.cookie.name",
                "a __Host- cookie requires secure = true, path = \"/\" and no domain",
            );
        }
        if c.name.starts_with("__Secure-") && !always_secure {
            self.problem(
                "session.cookie.name",
                "a __Secure- cookie requires secure = true",
            );
        }
        let (idle_timeout, absolute_timeout) = (idle_timeout?, absolute_timeout?);
        if idle_timeout > absolute_timeout {
            self.problem(
                "session.absolute_timeout",
                format!(
                    "must not be shorter than the idle timeout ({} < {})",
                    humantime::format_duration(absolute_timeout),
                    humantime::format_duration(idle_timeout)
                ),
            );
        }
        Some(SessionConfig {
            secrets: secrets?,
            save_uninitialized: raw.save_uninitialized,
            resave: raw.resave,
            rolling: raw.rolling,
            idle_timeout,
            absolute_timeout,
            capacity: raw.capacity,
            cookie: CookieAttrs {
                name: c.name,
                path: c.path,
                domain: c.domain,
                http_only: c.http_only,
                secure: secure?,
                same_site: same_site?,
                max_age,
            },
        })
    }

    fn secrets(&mut self, raw: &[RawSecret], base: &Path) -> Option<Vec<Secret>> {
        if raw.is_empty() {
            self.problem(
                "session.secrets",
                "at least one secret is required, e.g. secrets = [{ env = \"SESSIONGATE_SECRET\" }]",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            if let Some(secret) = self.secret(&format!("session.secrets[{i}]"), s, base) {
                out.push(secret);
            }
        }
        (out.len() == raw.len()).then_some(out)
    }

    /// Load one `{ env = "VAR" }` / `{ file = "path" }` secret of at least
    /// MIN_SECRET_LEN bytes; problems are reported under `key`.
    fn secret(&mut self, key: &str, s: &RawSecret, base: &Path) -> Option<Secret> {
        let bytes = match (&s.env, &s.file) {
            (Some(var), None) => match std::env::var_os(var) {
                Some(v) => v.into_encoded_bytes(),
                None => {
                    self.problem(key, format!("environment variable {var} is not set"));
                    return None;
                }
            },
            (None, Some(file)) => {
                let path = base.join(file);
                match std::fs::read(&path) {
                    // A trailing newline from `echo` or an editor is not part of the secret.
                    Ok(mut b) => {
                        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                            b.pop();
                        }
                        b
                    }
                    Err(e) => {
                        self.problem(key, format!("cannot read {}: {e}", path.display()));
                        return None;
                    }
                }
            }
            _ => {
                self.problem(key, "give exactly one of env = \"VAR\" or file = \"path\"");
                return None;
            }
        };
        if bytes.len() < MIN_SECRET_LEN {
            // Never print the secret; its length is enough to act on.
            self.problem(
                key,
                format!(
                    "must be at least {MIN_SECRET_LEN} bytes (got {} bytes)",
                    bytes.len()
                ),
            );
            return None;
        }
        Some(Secret::new(bytes))
    }

    fn store(&mut self, raw: RawStore, base: &Path) -> Option<StoreConfig> {
        let timeout = self.duration("store.timeout", &raw.timeout);
        let local_ttl = self.duration("store.local_ttl", &raw.local_ttl);
        match raw.kind.as_str() {
            "memory" => return Some(StoreConfig::Memory),
            "redis" => {}
            other => {
                self.problem(
                    "store.kind",
                    format!("must be memory or redis (got {other:?})"),
                );
                return None;
            }
        }
        let Some(url) = raw.url else {
            self.problem(
                "store.url",
                "required with kind = \"redis\" (e.g. \"redis://127.0.0.1:6379/0\")",
            );
            return None;
        };
        let Some(rest) = url.strip_prefix("redis://") else {
            self.problem(
                "store.url",
                format!("must start with redis:// (got {url:?})"),
            );
            return None;
        };
        if rest.split('/').next().unwrap_or("").contains('@') {
            // A password in the URL would sit in the config file and in logs.
            self.problem(
                "store.url",
                "must not carry credentials; use store.password = { env = \"VAR\" }",
            );
            return None;
        }
        let url = match &raw.password {
            Some(p) => {
                let secret = self.secret("store.password", p, base)?;
                let pass: String = form_urlencoded::byte_serialize(secret.expose()).collect();
                format!("redis://:{pass}@{rest}")
            }
            None => url,
        };
        if raw.prefix.is_empty()
            || raw
                .prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            self.problem(
                "store.prefix",
                format!("must be non-empty without spaces (got {:?})", raw.prefix),
            );
        }
        if local_ttl.is_some_and(|t| t > Duration::from_secs(60)) {
            self.problem(
                "store.local_ttl",
                "at most 60s: it bounds how long a revocation can go unseen",
            );
        }
        Some(StoreConfig::Redis(RedisConfig {
            url,
            prefix: raw.prefix,
            timeout: timeout?,
            local_ttl: local_ttl?,
            local_capacity: raw.local_capacity.max(1),
        }))
    }

    fn admin(&mut self, raw: RawAdmin, base: &Path) -> Option<AdminConfig> {
        let listen = match raw.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "admin.listen",
                    format!("not an ip:port (got {:?})", raw.listen),
                );
                None
            }
        };
        let token = match &raw.token {
            Some(t) => Some(self.secret("admin.token", t, base)?),
            None => None,
        };
        let listen = listen?;
        if token.is_none() && !listen.ip().is_loopback() {
            self.problem(
                "admin.listen",
                format!("{listen} is not loopback: set admin.token, or the admin API would be open to the network"),
            );
            return None;
        }
        Some(AdminConfig { listen, token })
    }

    fn auth(&mut self, raw: RawAuth, base: &Path) -> Option<AuthConfig> {
        let prefix_ok = raw.prefix.len() > 1
            && !raw.prefix.ends_with('/')
            && routes::normalize(&raw.prefix).is_ok_and(|n| n == raw.prefix.as_str());
        if !prefix_ok {
            self.problem(
                "auth.prefix",
                format!("must be a normalised path like \"/.sessiongate\" without a trailing '/' (got {:?})", raw.prefix),
            );
        }
        let login_url = raw
            .login_url
            .unwrap_or_else(|| format!("{}/login", raw.prefix));
        // Only same-origin paths: never an absolute URL we could be tricked into.
        let mut paths_ok = true;
        for (key, url) in [
            ("auth.login_url", &login_url),
            ("auth.logout_redirect", &raw.logout_redirect),
        ] {
            if !is_plain_local_path(url) {
                self.problem(
                    key,
                    format!("must be a same-origin path without query (got {url:?})"),
                );
                paths_ok = false;
            }
        }
        if raw.max_failures == 0 {
            self.problem("auth.max_failures", "must be at least 1 (got 0)");
        }
        if raw.ip_max_failures == 0 {
            self.problem("auth.ip_max_failures", "must be at least 1 (got 0)");
        }
        if raw.max_concurrent_hashes == 0 {
            self.problem("auth.max_concurrent_hashes", "must be at least 1 (got 0)");
        }
        let failure_window = self.duration("auth.failure_window", &raw.failure_window);
        let users_file = raw.users_file.map(|f| base.join(f));
        if let Some(path) = &users_file {
            if let Err(e) = crate::users::Users::load(path) {
                self.problem("auth.users_file", e);
            }
        }
        (prefix_ok && paths_ok).then_some(AuthConfig {
            prefix: raw.prefix,
            login_url,
            users_file,
            logout_redirect: raw.logout_redirect,
            max_failures: raw.max_failures,
            ip_max_failures: raw.ip_max_failures,
            failure_window: failure_window?,
            max_concurrent_hashes: raw.max_concurrent_hashes,
        })
    }

    fn log(&mut self, raw: RawLog) -> Option<LogConfig> {
        let format = match raw.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.problem(
                    "log.format",
                    format!("must be text or json (got {other:?})"),
                );
                return None;
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
            self.problem(
                "log.level",
                format!("not a level or filter directive (got {:?})", raw.level),
            );
            return None;
        }
        Some(LogConfig {
            format,
            level: raw.level,
            access_log: raw.access_log,
        })
    }

    fn upstreams(&mut self, raw: BTreeMap<String, RawUpstream>) -> Vec<UpstreamConfig> {
        if raw.is_empty() {
            self.problem("upstream", "at least one [upstream.<name>] is required");
        }
        let mut out = Vec::new();
        for (name, u) in raw {
            let key = |field: &str| format!("upstream.{name}.{field}");
            if u.addrs.is_empty() {
                self.problem(
                    &key("addrs"),
                    "needs at least one address (e.g. \"127.0.0.1:3000\")",
                );
            }
            let mut addrs = Vec::new();
            for (i, a) in u.addrs.iter().enumerate() {
                // Resolved once, at start-up: pingora's HttpPeer would resolve with a
                // blocking call (and panic on failure) on the request path.
                match a.to_socket_addrs().map(|mut it| it.next()) {
                    Ok(Some(addr)) => addrs.push(addr),
                    _ => self.problem(
                        &format!("upstream.{name}.addrs[{i}]"),
                        format!("not a resolvable host:port (got {a:?})"),
                    ),
                }
            }
            let connect_timeout = self.duration(&key("connect_timeout"), &u.connect_timeout);
            let read_timeout = self.duration(&key("read_timeout"), &u.read_timeout);
            let write_timeout = self.duration(&key("write_timeout"), &u.write_timeout);
            let idle_timeout = self.duration(&key("idle_timeout"), &u.idle_timeout);
            let health = self.duration(&key("health_check_interval"), &u.health_check_interval);
            if let (Some(c), Some(r), Some(w), Some(i), Some(h)) = (
                connect_timeout,
                read_timeout,
                write_timeout,
                idle_timeout,
                health,
            ) {
                out.push(UpstreamConfig {
                    name,
                    addrs,
                    session_commands: u.session_commands,
                    connect_timeout: c,
                    read_timeout: r,
                    write_timeout: w,
                    idle_timeout: i,
                    health_check_interval: h,
                });
            }
        }
        out
    }

    fn rules(
        &mut self,
        defaults: RawRoutes,
        raw: Vec<RawRoute>,
        ups: &[UpstreamConfig],
    ) -> Option<Rules> {
        let find_upstream = |name: &str| ups.iter().position(|u| u.name == name);
        let default_upstream = match defaults.default_upstream.as_deref() {
            Some(name) => match find_upstream(name) {
                Some(i) => Some(i),
                None => {
                    self.problem(
                        "routes.default_upstream",
                        format!("no [upstream.{name}] (got {name:?})"),
                    );
                    None
                }
            },
            None if ups.len() == 1 => Some(0),
            None if ups.is_empty() => None,
            None => {
                self.problem(
                    "routes.default_upstream",
                    "required when there is more than one upstream",
                );
                None
            }
        };
        // Unmatched paths are never public by accident: only authenticated or deny.
        let default_access = match defaults
            .default_access
            .as_deref()
            .unwrap_or("authenticated")
        {
            "authenticated" => Some(Access::Authenticated),
            "deny" => Some(Access::Deny),
            other => {
                self.problem(
                    "routes.default_access",
                    format!("must be authenticated or deny (got {other:?}); make public paths explicit with [[route]]"),
                );
                None
            }
        };
        let mut rules = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let key = |field: &str| format!("route[{i}].{field}");
            if !r.path.starts_with('/') {
                self.problem(
                    &key("path"),
                    format!("must start with '/' (got {:?})", r.path),
                );
            } else {
                match routes::normalize(&r.path) {
                    Ok(n) if n == r.path.as_str() => {}
                    Ok(n) => self.problem(
                        &key("path"),
                        format!("not in normal form (got {:?}, normal form {n:?})", r.path),
                    ),
                    Err(e) => self.problem(&key("path"), format!("{e} (got {:?})", r.path)),
                }
            }
            let kind = match r.kind.as_str() {
                "prefix" => Some(PathMatch::Prefix),
                "exact" => Some(PathMatch::Exact),
                other => {
                    self.problem(
                        &key("match"),
                        format!("must be prefix or exact (got {other:?})"),
                    );
                    None
                }
            };
            let mut methods = Vec::new();
            for (j, m) in r.methods.iter().enumerate() {
                match Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => methods.push(method),
                    _ => self.problem(
                        &format!("route[{i}].methods[{j}]"),
                        format!("not an upper-case HTTP method (got {m:?})"),
                    ),
                }
            }
            let restricted = !r.roles.is_empty() || !r.users.is_empty();
            let access = match (r.access.as_deref().unwrap_or("authenticated"), restricted) {
                ("public", false) => Some(Access::Public),
                ("authenticated", false) => Some(Access::Authenticated),
                ("authenticated", true) => Some(Access::Restricted {
                    roles: r.roles,
                    users: r.users,
                }),
                ("public", true) => {
                    self.problem(
                        &key("access"),
                        "a public route cannot require roles or users",
                    );
                    None
                }
                (other, _) => {
                    self.problem(
                        &key("access"),
                        format!("must be public or authenticated (got {other:?})"),
                    );
                    None
                }
            };
            let upstream = match r.upstream.as_deref() {
                Some(name) => find_upstream(name).or_else(|| {
                    self.problem(
                        &key("upstream"),
                        format!("no [upstream.{name}] (got {name:?})"),
                    );
                    None
                }),
                None => default_upstream,
            };
            if let (Some(kind), Some(access), Some(upstream)) = (kind, access, upstream) {
                rules.push(Rule {
                    path: r.path,
                    kind,
                    methods,
                    access,
                    upstream,
                    index: i,
                });
            }
        }
        let (default_access, default_upstream) = (default_access?, default_upstream?);
        match Rules::new(rules, default_access, default_upstream) {
            Ok(r) => Some(r),
            Err(conflicts) => {
                for c in conflicts {
                    self.problem(
                        &format!("route[{}]", c.second),
                        format!(
                            "same path, match and methods as route[{}]: neither would win",
                            c.first
                        ),
                    );
                }
                None
            }
        }
    }
}

/// A path on this origin: starts with one `/`, no backslash, query, fragment,
/// space or control character.
fn is_plain_local_path(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && !url.contains(['\\', '?', '#'])
        && !url.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

/// RFC 6265 §4.1.1 cookie-name: an RFC 9110 token.
fn is_cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_VAR: &str = "SESSIONGATE_TEST_SECRET_CONFIG";

    fn minimal(extra: &str) -> String {
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
[session]
secrets = [{{ env = "{SECRET_VAR}" }}]
[upstream.app]
addrs = ["127.0.0.1:9"]
{extra}
"#
        )
    }

    fn parse(text: &str) -> Result<Config, ParseError> {
        // SAFETY of set_var: every test in this module sets the same value.
        std::env::set_var(SECRET_VAR, "0123456789abcdef0123456789abcdef");
        Config::parse(text, Path::new("."))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ParseError::Invalid(p)) => p,
            Err(ParseError::Syntax(s)) => vec![format!("syntax: {s}")],
            Ok(_) => vec![],
        }
    }

    #[test]
    fn minimal_config_has_safe_defaults() {
        let c = parse(&minimal("")).expect("minimal config is valid");
        assert_eq!(c.session.cookie.name, "__Host-sid");
        assert!(c.session.cookie.secure == Secure::Always && c.session.cookie.http_only);
        assert_eq!(c.session.cookie.same_site, SameSite::Lax);
        assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.auth.login_url, "/.sessiongate/login");
        assert_eq!(
            c.rules.decide(&Method::GET, "/x", None),
            routes::Decision::Unauthenticated
        );
    }

    #[test]
    fn every_problem_names_its_key() {
        let text = minimal(
            r#"
[[route]]
path = "admin"
access = "public"
[[route]]
path = "/a//b"
[[route]]
path = "/x"
access = "everyone"
upstream = "nope"
[[route]]
path = "/y"
methods = ["get"]
match = "glob"
"#,
        );
        let p = problems(&text);
        let want = [
            "route[0].path: must start with '/' (got \"admin\")",
            "route[1].path: not in normal form",
            "route[2].access: must be public or authenticated",
            "route[2].upstream: no [upstream.nope]",
            "route[3].match: must be prefix or exact",
            "route[3].methods[0]: not an upper-case HTTP method",
        ];
        for w in want {
            assert!(
                p.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {p:#?}"
            );
        }
    }

    #[test]
    fn unsafe_configs_are_refused() {
        let cases = [
            (
                minimal("").replace(&format!("secrets = [{{ env = \"{SECRET_VAR}\" }}]"), ""),
                "session.secrets: at least one secret",
            ),
            (
                minimal("").replace(SECRET_VAR, "SESSIONGATE_TEST_UNSET_VAR"),
                "session.secrets[0]: environment variable",
            ),
            (
                minimal("").replace("addrs = [\"127.0.0.1:9\"]", "addrs = []"),
                "upstream.app.addrs: needs at least one",
            ),
            (
                minimal("[[route]]\npath = \"/a\"\n[[route]]\npath = \"/a\"\n"),
                "route[1]: same path",
            ),
            (
                minimal("[routes]\ndefault_access = \"public\"\n"),
                "routes.default_access: must be authenticated or deny",
            ),
            (
                minimal("[session.cookie]\nsecure = false\n"),
                "session.cookie.name: a __Host- cookie requires",
            ),
            (
                minimal("[session.cookie]\nname = \"sid\"\nsecure = false\nsame_site = \"none\"\n"),
                "session.cookie.same_site: none requires",
            ),
            (
                minimal("[auth]\nlogin_url = \"https://evil.example/login\"\n"),
                "auth.login_url: must be a same-origin path",
            ),
            (
                minimal("[auth]\nlogin_url = \"//evil.example/login\"\n"),
                "auth.login_url: must be a same-origin path",
            ),
            (minimal("[upstream.app.x]\n"), "syntax: "),
        ];
        for (text, want) in cases {
            let p = problems(&text);
            assert!(
                p.iter().any(|x| x.starts_with(want)),
                "missing {want:?} in {p:#?}"
            );
        }
    }

    #[test]
    fn short_secret_is_refused_without_printing_it() {
        std::env::set_var("SESSIONGATE_TEST_SHORT_SECRET", "tooshort-secret-value");
        let p = problems(&minimal("").replace(SECRET_VAR, "SESSIONGATE_TEST_SHORT_SECRET"));
        assert!(
            p.iter()
                .any(|x| x == "session.secrets[0]: must be at least 32 bytes (got 21 bytes)"),
            "{p:#?}"
        );
        assert!(!p.iter().any(|x| x.contains("tooshort")));
    }

    #[test]
    fn unknown_keys_are_syntax_errors_with_position() {
        let p = problems(&minimal("[server.extra]\n").replace("listen =", "lisen ="));
        assert!(p[0].starts_with("syntax: "), "{p:?}");
        let p = problems(&minimal("").replace("[session]", "[session]\nsecure = true"));
        assert!(
            p[0].contains("unknown field `secure`") && p[0].contains("line"),
            "{p:?}"
        );
    }
}
