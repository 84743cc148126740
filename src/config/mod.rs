//! Configuration: `proxy.toml` → raw serde structs → a validated [`Config`].
//!
//! The raw layer mirrors the file exactly and rejects unknown keys
//! (`deny_unknown_fields`), so a typo is an error rather than a silently ignored
//! security setting. The typed layer holds parsed durations, resolved socket
//! addresses, loaded secrets and the compiled rule table. Validation reports every
//! problem at once, each naming its key: `route[2].path: must start with '/' (got "admin")`.
//!
//! Every default lives in one `default_*` function in `raw`, with its reason. Unsafe
//! settings are refused rather than corrected. Secrets are never written in the
//! config: it names an environment variable or a file that holds them.
//!
//! This module does not start anything; `main` and `proxy` consume a [`Config`].
//!
//! Submodules: `raw` (the serde structs mirroring the file, with their defaults)
//! and `validate` (raw → typed, collecting every problem; one file per config
//! area). This file holds the typed [`Config`], its parts, and the errors.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::endpoints::AuthOptions;
use crate::http::connections::Limits;
use crate::http::headers::IdentityNames;
use crate::http::tls::TlsListener;
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::routes::Rules;
use crate::proxy::UpstreamOptions;
use crate::session::manager::SessionOptions;
use crate::session::redis::RedisOptions;
use crate::session::signing::Secret;

use self::raw::RawConfig;
use self::validate::Validator;

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
        /// The files the refused config names, readable or not: a reload
        /// watches them, so a secret that appears later is picked up.
        files: Vec<PathBuf>,
    },
}

impl Error {
    /// The files the config names besides itself, as far as they are known
    /// (none when the file could not be read or parsed).
    pub fn files(&self) -> &[PathBuf] {
        match self {
            Error::Invalid { files, .. } => files,
            Error::Read { .. } | Error::Syntax { .. } => &[],
        }
    }
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

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Memory,
    Redis(RedisOptions),
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token; `None` leaves only `/healthz` and `/readyz` open.
    pub token: Option<Secret>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The proxy's plain-HTTP listening addresses.
    pub listen: Vec<SocketAddr>,
    /// `[[server.tls]]`: TLS listening addresses and their certificates.
    pub tls: Vec<TlsListener>,
    /// `server.upgrade_socket`: where `--upgrade` receives the listening sockets.
    pub upgrade_socket: Option<PathBuf>,
    /// Every file the config names (secrets, users file, certificates),
    /// which a reload watches besides the config file itself.
    pub files: Vec<PathBuf>,
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed.
    pub trusted_proxies: TrustedProxies,
    /// Proxy workers, one single-threaded service each.
    pub threads: usize,
    /// How long after SIGTERM new connections are still accepted.
    pub grace_period: Duration,
    /// How long in-flight requests get after the grace period.
    pub shutdown_timeout: Duration,
    /// How long an idle client connection is kept open.
    pub client_idle_timeout: Duration,
    /// `server.read_buffer`: each client connection's read buffer, in bytes.
    pub read_buffer: usize,
    /// `server.max_connections` and `server.request_head_timeout`.
    pub connections: Limits,
    /// `[session]`.
    pub session: SessionOptions,
    /// `[auth]`.
    pub auth: AuthOptions,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[upstream.<name>]`, in name order.
    pub upstreams: Vec<UpstreamOptions>,
    /// `[routes]` and `[[route]]`, compiled.
    pub rules: Rules,
    /// `[identity]`: the header names of the identity handed over.
    pub identity: IdentityNames,
    /// `[assertion]`: the signed identity's keys, when configured.
    pub assertion: Option<crate::proxy::assertion::AssertionOptions>,
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
            ParseError::Invalid { problems, files } => Error::Invalid {
                path: path.to_owned(),
                problems,
                files,
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
            files: Vec::new(),
        };
        let config = v.config(raw, base);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ParseError::Invalid {
                problems: v.problems,
                files: v.files,
            }),
        }
    }
}

/// [`Config::parse`]'s failure, before a file name is attached.
#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Invalid {
        problems: Vec<String>,
        /// Every file the config names (see [`Error::files`]).
        files: Vec<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::routes;
    use crate::session::cookie::{SameSite, Secure};
    use crate::session::redis::Servers;
    use http::Method;

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
            Err(ParseError::Invalid { problems, .. }) => problems,
            Err(ParseError::Syntax(s)) => vec![format!("syntax: {s}")],
            Ok(_) => vec![],
        }
    }

    #[test]
    fn sentinel_settings_are_checked() {
        let ok = minimal(
            "[store]\nkind = \"redis\"\n[store.sentinel]\naddrs = [\"127.0.0.1:26379\", \"s2:26380\"]\nmaster_name = \"mymaster\"\n",
        );
        let c = parse(&ok).expect("a sentinel store");
        let StoreConfig::Redis(r) = c.store else {
            panic!("a Redis store")
        };
        let Servers::Sentinel(s) = r.servers else {
            panic!("sentinel options")
        };
        assert_eq!(s.addrs.len(), 2);
        assert_eq!(s.master_name, "mymaster");
        let bad = minimal(
            "[store]\nkind = \"redis\"\nurl = \"redis://x:6379/0\"\n[store.sentinel]\naddrs = [\"nope\", \"h:0\"]\nmaster_name = \"\"\ndatabase = 99\n",
        );
        let p = problems(&bad).join("\n");
        for want in [
            "store.sentinel: use one of store.url",
            "\"nope\" is not host:port",
            "\"h:0\" is not host:port",
            "store.sentinel.master_name",
            "store.sentinel.database",
        ] {
            assert!(p.contains(want), "{want} in {p}");
        }
    }

    #[test]
    fn cluster_settings_are_checked() {
        let ok = minimal(
            "[store]\nkind = \"redis\"\npassword = { env = \"SG_TEST_CLUSTER_PASSWORD\" }\n[store.cluster]\nnodes = [\"127.0.0.1:7000\", \"redis-1.internal:7001\"]\n",
        );
        std::env::set_var("SG_TEST_CLUSTER_PASSWORD", "cluster-password");
        let c = parse(&ok).expect("a cluster store");
        let StoreConfig::Redis(r) = c.store else {
            panic!("a Redis store")
        };
        let Servers::Cluster(cl) = r.servers else {
            panic!("cluster options")
        };
        assert_eq!(cl.nodes, ["127.0.0.1:7000", "redis-1.internal:7001"]);
        assert_eq!(cl.password.as_deref(), Some("cluster-password"));
        let bad = minimal(
            "[store]\nkind = \"redis\"\nurl = \"redis://x:6379/0\"\n[store.cluster]\nnodes = [\"redis://h:1\", \"h\", \"u@h:2\"]\n",
        );
        let p = problems(&bad).join("\n");
        for want in [
            "store.cluster: use one of store.url",
            "\"redis://h:1\" is not host:port",
            "\"h\" is not host:port",
            "\"u@h:2\" is not host:port",
        ] {
            assert!(p.contains(want), "{want} in {p}");
        }
        let empty = minimal("[store]\nkind = \"redis\"\n[store.cluster]\nnodes = []\n");
        assert!(problems(&empty)
            .join("\n")
            .contains("store.cluster.nodes: name at least one"));
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
[[route]]
path = "/z"
roles = ["", "a,b"]
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
            "route[4].roles[0]: must be 1-256 bytes without `,`, control characters or surrounding spaces (got \"\")",
            "route[4].roles[1]: must be 1-256 bytes without `,`, control characters or surrounding spaces (got \"a,b\")",
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
            (
                minimal("").replace("[session]", "client_idle_timeout = \"500ms\"\n[session]"),
                "server.client_idle_timeout: must be at least 1s",
            ),
            (
                minimal("").replace("[session]", "request_head_timeout = \"0s\"\n[session]"),
                "server.request_head_timeout: must be greater than zero",
            ),
            (
                minimal("").replace("[session]", "max_connections = 0\n[session]"),
                "server.max_connections: must be at least 1 (got 0)",
            ),
            (
                // tracing-subscriber's filter parser panicked on this (fuzz/config).
                minimal(&format!("[log]\nlevel = \"{}\"\n", "ii^^^^^^^^^^^^^^^^^^^^^^^^^^^h^^^^^^^^^^^^,,,,8,,,,,,,,,,\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\u{7c2}\u{644}\t/.sessmongates \u{244} e= 4{ n?e = [= [{ e= [{ ecrets =GGGGGGGGGGGGGG\t\t,,,,,,,,,,,,,,R|||||x||fo")),
                "log.level: not a level or filter directive",
            ),
            (
                minimal("[auth]\nlogout_redirect = \"/\\\\evil\"\n"),
                "auth.logout_redirect: must be a same-origin path",
            ),
            (
                minimal("[identity]\nuser_header = \"Cookie\"\n"),
                "identity.user_header: \"Cookie\" is a header sessiongate or HTTP uses",
            ),
            (
                minimal("[identity]\nuser_header = \"X-Session-User\"\n"),
                "identity.user_header: \"X-Session-User\" is a header",
            ),
            (
                minimal("[identity]\nuser_header = \"bad name\"\n"),
                "identity.user_header: not a header name",
            ),
            (
                minimal("[identity]\nuser_header = \"Remote-User\"\nroles_header = \"remote-user\"\n"),
                "identity.roles_header: must differ from identity.user_header",
            ),
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

    /// `proxy.toml` is the reference: every key of the raw layer appears in
    /// it, set or commented out (`key =`, `# key =`, `[key`, `[[... .key]]`,
    /// `{ key = ... }`).
    #[test]
    fn the_reference_config_documents_every_key() {
        let reference = include_str!("../../proxy.toml");
        let raw = include_str!("raw.rs");
        let keys = raw
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub(super) "))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k))
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        let mut missing = Vec::new();
        for key in keys {
            let documented = reference.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l.starts_with(&format!("[{key}"))
                    || l.contains(&format!(".{key}]"))
                    || l.contains(&format!("{{ {key} ="))
            });
            if !documented {
                missing.push(key);
            }
        }
        assert!(missing.is_empty(), "not in proxy.toml: {missing:?}");
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
