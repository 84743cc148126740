//! Validation: the raw structs in, a typed [`Config`] out, or every problem found.
//!
//! The [`Validator`] walks the whole raw config and collects one line per problem,
//! each naming its key and the offending value (never a secret's value), so a bad
//! file is fixed in one pass. It parses durations, resolves addresses, loads
//! secrets and the users file, and compiles the rule table. Unsafe settings are
//! refused rather than corrected. It does not read `proxy.toml` itself; that is
//! [`Config::load`](super::Config::load).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;

use super::raw::{
    RawAdmin, RawAuth, RawCluster, RawConfig, RawCookie, RawLog, RawRoute, RawRoutes, RawSecret,
    RawSecure, RawSentinel, RawSession, RawStore, RawTls, RawUpstream,
};
use super::{
    AdminConfig, AuthOptions, Config, LogConfig, LogFormat, RedisOptions, SessionOptions,
    StoreConfig, UpstreamOptions,
};
use crate::auth::names;
use crate::http::connections::Limits;
use crate::http::headers::IdentityNames;
use crate::http::tls::{self, TlsListener};
use crate::proxy::assertion::{AssertionKey, AssertionOptions};
use crate::proxy::forwarded::{self, TrustedProxies};
use crate::proxy::routes::{Access, PathMatch, Rule, Rules};
use crate::session::cookie::{CookieAttrs, SameSite, Secure};
use crate::session::redis::{ClusterOptions, SentinelOptions, Servers};
use crate::session::signing::{Secret, MIN_SECRET_LEN};

pub(super) struct Validator {
    pub(super) problems: Vec<String>,
    /// Every file the config names (secrets, users, certificates): a reload
    /// follows their changes.
    pub(super) files: Vec<PathBuf>,
}

impl Validator {
    pub(super) fn problem(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{key}: {msg}"));
    }

    /// A duration pingora takes in whole seconds: at least one, or `500ms`
    /// would silently become 0, which pingora reads as "forever".
    fn whole_seconds(&mut self, key: &str, value: &str) -> Option<Duration> {
        let d = self.duration(key, value)?;
        if d < Duration::from_secs(1) {
            self.problem(key, format!("must be at least 1s (got {value:?})"));
            return None;
        }
        Some(d)
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

    pub(super) fn config(&mut self, raw: RawConfig, base: &Path) -> Option<Config> {
        let listen = self.addresses("server.listen", &raw.server.listen);
        let tls = self.tls(&raw.server.tls, base);
        if raw.server.listen.is_empty() && raw.server.tls.is_empty() {
            self.problem(
                "server.listen",
                "needs at least one address (e.g. \"127.0.0.1:8080\"), or a [[server.tls]]",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for addr in listen.iter().chain(tls.iter().flat_map(|t| &t.listen)) {
            if !seen.insert(*addr) {
                self.problem(
                    "server",
                    format!("{addr} is listed twice (server.listen and server.tls[].listen)"),
                );
            }
        }
        let upgrade_socket = raw
            .server
            .upgrade_socket
            .as_deref()
            .and_then(|p| self.upgrade_socket(p));
        if raw.server.threads == 0 {
            self.problem("server.threads", "must be at least 1 (got 0)");
        }
        let grace_period = self.whole_seconds("server.grace_period", &raw.server.grace_period);
        let shutdown_timeout =
            self.whole_seconds("server.shutdown_timeout", &raw.server.shutdown_timeout);
        let client_idle_timeout = self.whole_seconds(
            "server.client_idle_timeout",
            &raw.server.client_idle_timeout,
        );
        let head_timeout = self.whole_seconds(
            "server.request_head_timeout",
            &raw.server.request_head_timeout,
        );
        if raw.server.max_connections == 0 {
            self.problem("server.max_connections", "must be at least 1 (got 0)");
        }
        if !(1024..=1024 * 1024).contains(&raw.server.read_buffer) {
            self.problem(
                "server.read_buffer",
                format!(
                    "must be 1024-1048576 bytes (got {})",
                    raw.server.read_buffer
                ),
            );
        }
        let mut trusted_proxies = Vec::new();
        for (i, c) in raw.server.trusted_proxies.iter().enumerate() {
            match forwarded::parse_range(c) {
                Some(c) => trusted_proxies.push(c),
                None => self.problem(
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
        let identity = self.identity(&raw.identity);
        let assertion = raw.assertion.as_ref().and_then(|a| self.assertion(a, base));
        for u in &upstreams {
            match &u.assertion_audience {
                Some(aud) if assertion.is_none() => self.problem(
                    &format!("upstream.{}.assertion_audience", u.name),
                    format!("{aud:?} needs [assertion] keys to sign with"),
                ),
                Some(aud) if aud.is_empty() || !aud.bytes().all(|b| b.is_ascii_graphic()) => self
                    .problem(
                        &format!("upstream.{}.assertion_audience", u.name),
                        format!("must be printable ASCII without spaces (got {aud:?})"),
                    ),
                _ => {}
            }
        }
        let mut auth = auth;
        if let (Some(a), Some(names)) = (auth.as_mut(), identity.as_ref()) {
            a.identity = names.clone();
        }
        Some(Config {
            identity: identity?,
            assertion,
            listen,
            tls,
            upgrade_socket,
            files: self.files.clone(),
            trusted_proxies: TrustedProxies::new(trusted_proxies),
            threads: raw.server.threads,
            grace_period: grace_period?,
            shutdown_timeout: shutdown_timeout?,
            client_idle_timeout: client_idle_timeout?,
            read_buffer: raw.server.read_buffer,
            connections: Limits {
                max_connections: raw.server.max_connections,
                head_timeout: head_timeout?,
            },
            session: session?,
            auth: auth?,
            admin: admin?,
            store: store?,
            log: log?,
            upstreams,
            rules: rules?,
        })
    }

    fn addresses(&mut self, key: &str, raw: &[String]) -> Vec<SocketAddr> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, a)| match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        &format!("{key}[{i}]"),
                        format!("not an ip:port (got {a:?})"),
                    );
                    None
                }
            })
            .collect()
    }

    /// `[[server.tls]]`: each block's addresses and its certificate pair,
    /// loaded and checked now, so `sessiongate check` and a reload catch a
    /// bad pair before it is served.
    fn tls(&mut self, raw: &[RawTls], base: &Path) -> Vec<TlsListener> {
        let mut out = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let key = format!("server.tls[{i}]");
            let listen = self.addresses(&format!("{key}.listen"), &t.listen);
            if t.listen.is_empty() {
                self.problem(&format!("{key}.listen"), "needs at least one address");
            }
            let (cert, key_file) = (base.join(&t.cert_file), base.join(&t.key_file));
            self.files.push(cert.clone());
            self.files.push(key_file.clone());
            match tls::Pair::load(&cert, &key_file) {
                Ok(pair) => out.push(TlsListener { listen, pair }),
                Err(e) => self.problem(&key, e),
            }
        }
        out
    }

    /// `server.upgrade_socket`: the new process listens there and the old one
    /// sends it the listening sockets, so whoever can create that path could
    /// receive them. It must be absolute and in a directory that exists and
    /// that other users cannot write (not /tmp).
    fn upgrade_socket(&mut self, raw: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let key = "server.upgrade_socket";
        let path = PathBuf::from(raw);
        let parent = path
            .parent()
            .filter(|p| path.is_absolute() && !p.as_os_str().is_empty());
        let Some(parent) = parent else {
            self.problem(key, format!("must be an absolute path (got {raw:?})"));
            return None;
        };
        match std::fs::metadata(parent) {
            Ok(m) if m.is_dir() && m.permissions().mode() & 0o002 == 0 => Some(path),
            Ok(m) if m.is_dir() => {
                self.problem(
                    key,
                    format!(
                        "{} is writable by every user: use a directory of sessiongate's own, e.g. /run/sessiongate",
                        parent.display()
                    ),
                );
                None
            }
            Ok(_) => {
                self.problem(key, format!("{} is not a directory", parent.display()));
                None
            }
            Err(e) => {
                self.problem(key, format!("cannot use {}: {e}", parent.display()));
                None
            }
        }
    }

    fn session(&mut self, raw: RawSession, base: &Path) -> Option<SessionOptions> {
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
        for (key, n) in [
            ("session.capacity", raw.capacity),
            ("session.anonymous_capacity", raw.anonymous_capacity),
            ("session.max_per_user", raw.max_per_user),
        ] {
            if n == 0 {
                self.problem(key, "must be at least 1 (got 0)");
            }
        }
        let cookie = self.cookie(c, max_age);
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
        Some(SessionOptions {
            secrets: secrets?,
            save_uninitialized: raw.save_uninitialized,
            resave: raw.resave,
            rolling: raw.rolling,
            idle_timeout,
            absolute_timeout,
            capacity: raw.capacity,
            anonymous_capacity: raw.anonymous_capacity,
            max_per_user: usize::try_from(raw.max_per_user).unwrap_or(usize::MAX),
            cookie: cookie?,
        })
    }

    /// `[session.cookie]`: the attributes, and the combinations browsers refuse.
    fn cookie(&mut self, c: RawCookie, max_age: Option<Duration>) -> Option<CookieAttrs> {
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
        // "auto" sets Secure on every name with a __Host-/__Secure- prefix
        // (see `Secure::Auto`), so those names accept it.
        let prefix_secure = always_secure || secure == Some(Secure::Auto);
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
        if c.name.starts_with("__Host-") && (!prefix_secure || c.path != "/" || c.domain.is_some())
        {
            // RFC 6265bis §4.1.3.2: browsers reject such a cookie outright.
            self.problem(
                "session.cookie.name",
                "a __Host- cookie requires secure = true or \"auto\", path = \"/\" and no domain",
            );
        }
        if c.name.starts_with("__Secure-") && !prefix_secure {
            self.problem(
                "session.cookie.name",
                "a __Secure- cookie requires secure = true or \"auto\"",
            );
        }
        Some(CookieAttrs {
            name: c.name,
            path: c.path,
            domain: c.domain,
            http_only: c.http_only,
            secure: secure?,
            same_site: same_site?,
            max_age,
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

    /// The bytes of a `{ env = "VAR" }` / `{ file = "path" }` secret, of any length.
    fn secret_bytes(&mut self, key: &str, s: &RawSecret, base: &Path) -> Option<Vec<u8>> {
        Some(match (&s.env, &s.file) {
            (Some(var), None) => match std::env::var_os(var) {
                Some(v) => v.into_encoded_bytes(),
                None => {
                    self.problem(key, format!("environment variable {var} is not set"));
                    return None;
                }
            },
            (None, Some(file)) => {
                let path = base.join(file);
                self.files.push(path.clone());
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
        })
    }

    /// A secret someone else issued (an OIDC client secret): text, any length.
    pub(super) fn secret_text(&mut self, key: &str, s: &RawSecret, base: &Path) -> Option<String> {
        let bytes = self.secret_bytes(key, s, base)?;
        match String::from_utf8(bytes) {
            Ok(t) if !t.is_empty() => Some(t),
            _ => {
                self.problem(key, "must be non-empty UTF-8 text");
                None
            }
        }
    }

    /// Load one `{ env = "VAR" }` / `{ file = "path" }` secret of at least
    /// MIN_SECRET_LEN bytes; problems are reported under `key`.
    fn secret(&mut self, key: &str, s: &RawSecret, base: &Path) -> Option<Secret> {
        let bytes = self.secret_bytes(key, s, base)?;
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
        let servers = match (raw.url, raw.sentinel, raw.cluster) {
            (url, Some(sn), cluster) => {
                if url.is_some() || cluster.is_some() {
                    self.problem(
                        "store.sentinel",
                        "use one of store.url, [store.sentinel] and [store.cluster]",
                    );
                }
                Servers::Sentinel(self.sentinel(sn, raw.password.as_ref(), base)?)
            }
            (url, None, Some(cl)) => {
                if url.is_some() {
                    self.problem(
                        "store.cluster",
                        "use one of store.url, [store.sentinel] and [store.cluster]",
                    );
                }
                Servers::Cluster(self.cluster(cl, raw.password.as_ref(), base)?)
            }
            (Some(url), None, None) => {
                Servers::One(self.redis_url(url, raw.password.as_ref(), base)?)
            }
            (None, None, None) => {
                self.problem(
                    "store.url",
                    "required with kind = \"redis\" (e.g. \"redis://127.0.0.1:6379/0\"), unless [store.sentinel] or [store.cluster] is set",
                );
                return None;
            }
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
        Some(StoreConfig::Redis(RedisOptions {
            servers,
            prefix: raw.prefix,
            timeout: timeout?,
            local_ttl: local_ttl?,
            local_capacity: raw.local_capacity.max(1),
        }))
    }

    /// `store.url`: `redis://host:port/db` without credentials; the password
    /// (if any) from `store.password` goes in here.
    fn redis_url(
        &mut self,
        url: String,
        password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<String> {
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
        match password {
            Some(p) => {
                let secret = self.secret("store.password", p, base)?;
                let pass: String = form_urlencoded::byte_serialize(secret.expose()).collect();
                Some(format!("redis://:{pass}@{rest}"))
            }
            None => Some(url),
        }
    }

    /// `store.password` as text, for Sentinel's and a cluster's nodes;
    /// `None` inside when there is none, `None` outside when it fails.
    fn node_password(&mut self, raw: Option<&RawSecret>, base: &Path) -> Option<Option<String>> {
        match raw {
            Some(p) => Some(Some(self.secret_text("store.password", p, base)?)),
            None => Some(None),
        }
    }

    /// `[store.cluster]`: the seed nodes, and `store.password` for them.
    fn cluster(
        &mut self,
        raw: RawCluster,
        password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<ClusterOptions> {
        if raw.nodes.is_empty() {
            self.problem(
                "store.cluster.nodes",
                "name at least one of the cluster's nodes (more, so a start survives one down)",
            );
        }
        for a in &raw.nodes {
            if !is_host_port(a) {
                self.problem("store.cluster.nodes", format!("{a:?} is not host:port"));
            }
        }
        Some(ClusterOptions {
            nodes: raw.nodes,
            password: self.node_password(password, base)?,
        })
    }

    /// `[store.sentinel]`: the sentinels' addresses, the primary's name, and
    /// the passwords (the sentinels' own, and `store.password` for the nodes).
    fn sentinel(
        &mut self,
        raw: RawSentinel,
        node_password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<SentinelOptions> {
        if raw.addrs.is_empty() {
            self.problem(
                "store.sentinel.addrs",
                "name at least one sentinel (three for a quorum)",
            );
        }
        for a in &raw.addrs {
            if !is_host_port(a) {
                self.problem("store.sentinel.addrs", format!("{a:?} is not host:port"));
            }
        }
        if raw.master_name.is_empty() || raw.master_name.contains(char::is_whitespace) {
            self.problem(
                "store.sentinel.master_name",
                "must be the name the sentinels monitor",
            );
        }
        if !(0..=15).contains(&raw.database) {
            self.problem("store.sentinel.database", "must be 0-15");
        }
        let password = match &raw.password {
            Some(p) => Some(self.secret_text("store.sentinel.password", p, base)?),
            None => None,
        };
        let node_password = self.node_password(node_password, base)?;
        Some(SentinelOptions {
            addrs: raw.addrs,
            master_name: raw.master_name,
            password,
            node_password,
            database: raw.database,
        })
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

    fn auth(&mut self, raw: RawAuth, base: &Path) -> Option<AuthOptions> {
        let prefix_ok = raw.prefix.len() > 1
            && !raw.prefix.ends_with('/')
            && crate::proxy::path::normalize(&raw.prefix).is_ok_and(|n| n == raw.prefix.as_str());
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
        let oidc = self.oidc(raw.oidc, &raw.prefix, base);
        let users_file = raw.users_file.map(|f| base.join(f));
        self.files.extend(users_file.clone());
        if let Some(path) = &users_file {
            if let Err(e) = crate::auth::users::Users::load(path) {
                self.problem("auth.users_file", e);
            }
        }
        (prefix_ok && paths_ok).then_some(AuthOptions {
            prefix: raw.prefix,
            login_url,
            users_file,
            logout_redirect: raw.logout_redirect,
            max_failures: raw.max_failures,
            ip_max_failures: raw.ip_max_failures,
            failure_window: failure_window?,
            max_concurrent_hashes: raw.max_concurrent_hashes,
            oidc: oidc?,
            // Set by `config` from `[identity]`.
            identity: IdentityNames::default(),
        })
    }

    /// `[identity]`: header names a backend reads. Not a header that frames
    /// or routes the request, carries credentials, or is another of ours.
    fn identity(&mut self, raw: &super::raw::RawIdentity) -> Option<IdentityNames> {
        const FORBIDDEN: [&str; 16] = [
            "host",
            "content-length",
            "content-type",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "upgrade",
            "te",
            "trailer",
            "cookie",
            "authorization",
            "proxy-authorization",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
        ];
        let mut name = |key: &str, value: &str| match http::HeaderName::from_bytes(value.as_bytes())
        {
            Ok(n) if FORBIDDEN.contains(&n.as_str()) || n.as_str().starts_with("x-session-") => {
                self.problem(
                    key,
                    format!("{value:?} is a header sessiongate or HTTP uses for something else"),
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(key, format!("not a header name (got {value:?})"));
                None
            }
        };
        let user = name("identity.user_header", &raw.user_header);
        let roles = name("identity.roles_header", &raw.roles_header);
        let (user, roles) = (user?, roles?);
        if user == roles {
            self.problem(
                "identity.roles_header",
                "must differ from identity.user_header",
            );
            return None;
        }
        Some(IdentityNames { user, roles })
    }

    /// `[assertion]`: the signing keys (files, Ed25519 PEM), issuer and lifetime.
    fn assertion(
        &mut self,
        raw: &super::raw::RawAssertion,
        base: &Path,
    ) -> Option<AssertionOptions> {
        let ttl = self.duration("assertion.ttl", &raw.ttl);
        if let Some(t) = ttl {
            if t < Duration::from_secs(2) || t > Duration::from_secs(60) {
                self.problem(
                    "assertion.ttl",
                    format!("must be 2s to 60s (got {:?})", raw.ttl),
                );
            }
        }
        if raw.keys.is_empty() {
            self.problem(
                "assertion.keys",
                "at least one key, e.g. keys = [{ file = \"assertion.pem\" }]",
            );
        }
        if raw.issuer.is_empty() {
            self.problem("assertion.issuer", "must not be empty");
        }
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let key = format!("assertion.keys[{i}]");
            let Some(file) = &k.file else {
                self.problem(&key, "give file = \"path\" (a PEM key file)");
                continue;
            };
            let path = base.join(file);
            self.files.push(path.clone());
            match std::fs::read(&path) {
                Ok(pem) => match AssertionKey::from_pem(&pem) {
                    Ok(k) => keys.push(k),
                    Err(e) => self.problem(&key, format!("{}: {e}", path.display())),
                },
                Err(e) => self.problem(&key, format!("cannot read {}: {e}", path.display())),
            }
        }
        let ttl = ttl.filter(|t| (2..=60).contains(&t.as_secs()))?;
        (keys.len() == raw.keys.len() && !keys.is_empty() && !raw.issuer.is_empty()).then(|| {
            AssertionOptions {
                issuer: raw.issuer.clone(),
                ttl,
                keys,
            }
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
        // Directives are ASCII (targets, levels, `=`, `,`, spans); and
        // tracing-subscriber 0.3.23's parser panics on some non-ASCII input
        // (it slices inside a character; found by fuzz/config), so it never
        // sees any.
        if !raw.level.is_ascii() || tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
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

    fn upstreams(&mut self, raw: BTreeMap<String, RawUpstream>) -> Vec<UpstreamOptions> {
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
                // blocking call (and panic on failure) on the request path
                // (pingora#570; PRs #577, #920 open).
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
                out.push(UpstreamOptions {
                    name,
                    addrs,
                    session_commands: u.session_commands,
                    connect_timeout: c,
                    read_timeout: r,
                    write_timeout: w,
                    idle_timeout: i,
                    health_check_interval: h,
                    assertion_audience: u.assertion_audience.clone(),
                });
            }
        }
        out
    }

    fn rules(
        &mut self,
        defaults: RawRoutes,
        raw: Vec<RawRoute>,
        ups: &[UpstreamOptions],
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
        let rules = raw
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, ups, default_upstream))
            .collect();
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

    /// One `[[route]]`; `None` if any part of it is wrong (each problem noted).
    fn route(
        &mut self,
        i: usize,
        r: RawRoute,
        ups: &[UpstreamOptions],
        default_upstream: Option<usize>,
    ) -> Option<Rule> {
        let key = |field: &str| format!("route[{i}].{field}");
        self.route_path(&key("path"), &r.path);
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
        // Rules name roles and users in the one identity alphabet: a rule for a
        // name no login can carry would never match.
        for (j, role) in r.roles.iter().enumerate() {
            if let Err(rule) = names::check_role(role) {
                self.problem(
                    &format!("route[{i}].roles[{j}]"),
                    format!("{rule} (got {role:?})"),
                );
            }
        }
        for (j, user) in r.users.iter().enumerate() {
            if let Err(rule) = names::check_user(user) {
                self.problem(
                    &format!("route[{i}].users[{j}]"),
                    format!("{rule} (got {user:?})"),
                );
            }
        }
        let access = self.route_access(&key("access"), r.access.as_deref(), r.roles, r.users);
        let upstream = match r.upstream.as_deref() {
            Some(name) => ups.iter().position(|u| u.name == name).or_else(|| {
                self.problem(
                    &key("upstream"),
                    format!("no [upstream.{name}] (got {name:?})"),
                );
                None
            }),
            None => default_upstream,
        };
        Some(Rule {
            path: r.path,
            kind: kind?,
            methods,
            access: access?,
            upstream: upstream?,
            index: i,
        })
    }

    /// A rule's path: absolute and already in the normal form requests are
    /// compared in, so what the rule says is what it matches.
    fn route_path(&mut self, key: &str, path: &str) {
        if !path.starts_with('/') {
            self.problem(key, format!("must start with '/' (got {path:?})"));
            return;
        }
        match crate::proxy::path::normalize(path) {
            Ok(n) if n == path => {}
            Ok(n) => self.problem(
                key,
                format!("not in normal form (got {path:?}, normal form {n:?})"),
            ),
            Err(e) => self.problem(key, format!("{e} (got {path:?})")),
        }
    }

    /// A rule's access: public, authenticated, or restricted to roles or users.
    fn route_access(
        &mut self,
        key: &str,
        access: Option<&str>,
        roles: Vec<String>,
        users: Vec<String>,
    ) -> Option<Access> {
        let restricted = !roles.is_empty() || !users.is_empty();
        match (access.unwrap_or("authenticated"), restricted) {
            ("public", false) => Some(Access::Public),
            ("authenticated", false) => Some(Access::Authenticated),
            ("authenticated", true) => Some(Access::Restricted { roles, users }),
            ("public", true) => {
                self.problem(key, "a public route cannot require roles or users");
                None
            }
            (other, _) => {
                self.problem(
                    key,
                    format!("must be public or authenticated (got {other:?})"),
                );
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

/// `host:port` with a port above 0 and nothing that would make it a URL.
fn is_host_port(a: &str) -> bool {
    a.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.contains(['/', '@']) && p.parse::<u16>().is_ok_and(|p| p > 0)
    })
}
