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

use crate::auth::AuthOptions;
use crate::http::connections::Limits;
use crate::http::headers::IdentityNames;
use crate::http::tls::TlsListener;
use crate::proxy::forwarded::Networks;
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
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// TOML syntax or shape; toml's message carries line and column.
    #[error("{path}: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// Semantic problems, one line each, every one naming its key.
    #[error("{path}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// One line per problem, each naming its key.
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
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub(crate) struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info`.
    pub level: String,
    /// One event per request on the `access` target.
    pub access_log: bool,
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub(crate) enum StoreConfig {
    Memory,
    Redis(RedisOptions),
}

/// The admin listener.
#[derive(Debug, Clone)]
pub(crate) struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token; `None` leaves only `/healthz` and `/readyz` open.
    pub token: Option<Secret>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The proxy's plain-HTTP listening addresses.
    pub(crate) listen: Vec<SocketAddr>,
    /// `[[server.tls]]`: TLS listening addresses and their certificates.
    pub(crate) tls: Vec<TlsListener>,
    /// `server.upgrade_socket`: where `--upgrade` receives the listening sockets.
    pub(crate) upgrade_socket: Option<PathBuf>,
    /// Every file the config names (secrets, users file, certificates),
    /// which a reload watches besides the config file itself.
    pub(crate) files: Vec<PathBuf>,
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed.
    pub(crate) trusted_proxies: Networks,
    /// Proxy workers, one single-threaded service each.
    pub(crate) threads: usize,
    /// How long after SIGTERM new connections are still accepted.
    pub(crate) grace_period: Duration,
    /// How long in-flight requests get after the grace period.
    pub(crate) shutdown_timeout: Duration,
    /// How long an idle client connection is kept open.
    pub(crate) client_idle_timeout: Duration,
    /// `server.read_buffer`: each client connection's read buffer, in bytes.
    pub(crate) read_buffer: usize,
    /// `server.max_connections` and `server.request_head_timeout`.
    pub(crate) connections: Limits,
    /// `[session]`.
    pub(crate) session: SessionOptions,
    /// `[auth]`.
    pub(crate) auth: AuthOptions,
    /// `[admin]`.
    pub(crate) admin: AdminConfig,
    /// `[store]`.
    pub(crate) store: StoreConfig,
    /// `store.credentials_file`: the credential store's home beside the memory
    /// store (with Redis, it lives in Redis).
    pub(crate) credentials_file: Option<std::path::PathBuf>,
    /// `[log]`.
    pub(crate) log: LogConfig,
    /// `[upstream.<name>]`, in name order.
    pub(crate) upstreams: Vec<UpstreamOptions>,
    /// `[routes]` and `[[route]]`, compiled.
    pub(crate) rules: Rules,
    /// `[identity]`: the header names of the identity handed over.
    pub(crate) identity: IdentityNames,
    /// `[assertion]`: the signed identity's keys, when configured.
    pub(crate) assertion: Option<crate::proxy::assertion::AssertionOptions>,
}

impl Config {
    /// The admin listener's address (what `sessiongate healthcheck` probes).
    pub fn admin_listen(&self) -> std::net::SocketAddr {
        self.admin.listen
    }

    /// The session options (the benchmarks drive the session layer alone).
    pub fn session(&self) -> &SessionOptions {
        &self.session
    }

    /// What the rule table decides for an anonymous request (`allow`,
    /// `unauthenticated`, `not_found`, `misdirected`, ...): the benchmarks
    /// drive the rule table alone. `host` is a canonical name, `path` a
    /// normalised path.
    pub fn route(&self, method: &http::Method, host: Option<&str>, path: &str) -> &'static str {
        self.rules
            .matched(method, host, path, None)
            .decide(None)
            .as_str()
    }

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
    /// TOML syntax or shape, with toml's message.
    Syntax(String),
    /// Semantic problems, one line each, every one naming its key.
    Invalid {
        /// One line per problem, each naming its key.
        problems: Vec<String>,
        /// Every file the config names (see [`Error::files`]).
        files: Vec<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::validate::testing::{minimal, parse, problems};
    use super::*;
    use crate::proxy::routes;
    use crate::session::cookie::{SameSite, Secure};
    use http::Method;

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

    /// `proxy.toml` is the reference: every key of the raw layer appears in
    /// it, set or commented out (`key =`, `# key =`, `[key`, `[[... .key]]`,
    /// `{ key = ... }`).
    #[test]
    fn the_reference_config_documents_every_key() {
        let reference = include_str!("../../proxy.toml");
        let raw = [
            include_str!("raw/mod.rs"),
            include_str!("raw/auth.rs"),
            include_str!("raw/import.rs"),
        ]
        .concat();
        let keys = raw
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix("pub(super) ")
                    .or_else(|| l.strip_prefix("pub(in crate::config) "))
            })
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
        // An unknown table inside a known one, too.
        let p = problems(&minimal("[upstream.app.x]\n"));
        assert!(p[0].starts_with("syntax: "), "{p:?}");
    }
}
