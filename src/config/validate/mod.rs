//! Validation: the raw structs in, a typed [`Config`] out, or every problem found.
//!
//! The [`Validator`] walks the whole raw config and collects one line per problem,
//! each naming its key and the offending value (never a secret's value), so a bad
//! file is fixed in one pass. It parses durations, resolves addresses, loads
//! secrets and the users file, and compiles the rule table. Unsafe settings are
//! refused rather than corrected. It does not read `proxy.toml` itself; that is
//! [`Config::load`](super::Config::load).
//!
//! This file owns the [`Validator`], the helpers every area uses (durations,
//! secrets) and [`Validator::config`], which calls each area in a fixed order,
//! so problems are reported in the order of the file's sections. Each area is an
//! `impl Validator` block of its own, as oauth2-proxy's `pkg/validation` is
//! split: `server`, `session`, `auth` and `oidc`, `admin`, `store`, `log`,
//! `upstream`, `routes`, `identity`, `assertion`.

mod admin;
mod assertion;
mod auth;
mod identity;
mod log;
mod oidc;
mod routes;
mod server;
mod session;
mod store;
mod upstream;

/// Test support shared by the area tests and `config`'s own.
#[cfg(test)]
pub(super) mod testing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawConfig, RawSecret};
use super::Config;
use crate::session::signing::{Secret, MIN_SECRET_LEN};

pub(super) struct Validator {
    pub(super) problems: Vec<String>,
    /// Every file the config names (secrets, users, certificates): a reload
    /// follows their changes.
    pub(super) files: Vec<PathBuf>,
}

impl Validator {
    fn problem(&mut self, key: &str, msg: impl std::fmt::Display) {
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
        let server = self.server(raw.server, base);
        let session = self.session(raw.session, base);
        let auth = self.auth(raw.auth, base);
        let admin = self.admin(raw.admin, base);
        let store = self.store(raw.store, base);
        let log = self.log(raw.log);
        let upstreams = self.upstreams(raw.upstream);
        let rules = self.rules(raw.routes, raw.route, &upstreams);
        let identity = self.identity(&raw.identity);
        let assertion = raw.assertion.as_ref().and_then(|a| self.assertion(a, base));
        self.assertion_audiences(&upstreams, assertion.as_ref());
        let mut auth = auth;
        if let (Some(a), Some(names)) = (auth.as_mut(), identity.as_ref()) {
            a.identity = names.clone();
        }
        let server = server?;
        Some(Config {
            identity: identity?,
            assertion,
            listen: server.listen,
            tls: server.tls,
            upgrade_socket: server.upgrade_socket,
            files: self.files.clone(),
            trusted_proxies: server.trusted_proxies,
            threads: server.threads,
            grace_period: server.grace_period,
            shutdown_timeout: server.shutdown_timeout,
            client_idle_timeout: server.client_idle_timeout,
            read_buffer: server.read_buffer,
            connections: server.connections,
            session: session?,
            auth: auth?,
            admin: admin?,
            store: store?,
            log: log?,
            upstreams,
            rules: rules?,
        })
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
    fn secret_text(&mut self, key: &str, s: &RawSecret, base: &Path) -> Option<String> {
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
}

#[cfg(test)]
mod tests {
    use super::testing::{minimal, problems, SECRET_VAR, UNSET_VAR};

    #[test]
    fn a_missing_secret_names_its_variable() {
        let p = problems(&minimal("").replace(SECRET_VAR, UNSET_VAR));
        assert!(
            p.iter()
                .any(|x| x.starts_with("session.secrets[0]: environment variable")),
            "{p:#?}"
        );
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
}
