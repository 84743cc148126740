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
//! secrets) and [`Validator::config`], which calls the areas in one fixed
//! order: `server`, `session`, `auth` (with `oidc`), `admin`, `store`, `log`,
//! `upstream`, `routes`, `identity`, `assertion`; problems come out in that
//! order. Each area is an `impl Validator` block in a file of its own, with
//! its tests, as oauth2-proxy's `pkg/validation` is split; `testing` holds
//! what those tests share.

mod admin;
mod assertion;
mod auth;
mod factor;
mod identity;
mod import;
mod jwt;
mod ldap;
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
use super::{Config, StoreConfig};
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

    /// `[auth.cross_domain]` against the rule table: its login site is a host
    /// the routes name, and its codes are spent in a credential store.
    fn cross_domain(&mut self, auth: &crate::auth::AuthOptions, sources: &routes::Sources) {
        let Some(c) = &auth.cross_domain else {
            return;
        };
        if !auth.sites.serves(&c.login_host) {
            self.problem(
                "auth.cross_domain.login_host",
                format!("{:?} is no host a route names (hosts = [...]): the other hosts could not send browsers there", c.login_host),
            );
        }
        if !sources.credential_store {
            self.problem(
                "auth.cross_domain",
                "needs a credential store to spend each sign-in code once on every instance: store.kind = \"redis\", or store.credentials_file",
            );
        }
    }

    pub(super) fn config(&mut self, raw: RawConfig, base: &Path) -> Option<Config> {
        let server = self.server(raw.server, base);
        let session = self.session(raw.session, base);
        let auth = self.auth(raw.auth, base);
        let admin = self.admin(raw.admin, base);
        let mut raw_store = raw.store;
        let credentials_file = self.credentials_file(&raw_store, base);
        raw_store.credentials_file = None;
        let store = self.store(raw_store, base);
        let log = self.log(raw.log);
        let upstreams = self.upstreams(raw.upstream);
        // An [auth] that failed is reported already: assume it has them.
        let sources = routes::Sources {
            users_file: auth.as_ref().is_none_or(|a| a.users_file.is_some()),
            jwt: auth.as_ref().is_none_or(|a| !a.jwt.is_empty()),
            credential_store: credentials_file.is_some()
                || matches!(store, Some(StoreConfig::Redis(_))),
            second_factor: auth.as_ref().is_none_or(|a| {
                a.second_factor.is_some()
                    || a.oidc
                        .iter()
                        .any(|o| !o.factor_claims.amr.is_empty() || !o.factor_claims.acr.is_empty())
            }),
        };
        if auth.as_ref().is_some_and(|a| a.second_factor.is_some()) && !sources.credential_store {
            self.problem(
                "auth.second_factor",
                "needs a credential store to keep the factors: store.kind = \"redis\", or store.credentials_file",
            );
        }
        for p in auth.iter().flat_map(|a| &a.oidc) {
            if p.backchannel_logout && !sources.credential_store {
                self.problem(
                    &format!("auth.oidc[{}].backchannel_logout", p.id),
                    "needs a credential store, where logout tokens are spent and provider sessions found: store.kind = \"redis\", or store.credentials_file",
                );
            }
        }
        let rules = self.rules(raw.routes, raw.route, &upstreams, sources);
        let identity = self.identity(&raw.identity);
        let assertion = raw.assertion.as_ref().and_then(|a| self.assertion(a, base));
        self.assertion_audiences(&upstreams, assertion.as_ref());
        if let Some(a) = &auth {
            self.jwt_apart_from_assertions(&a.jwt, assertion.as_ref(), &upstreams);
        }
        let import = raw.import.and_then(|i| {
            let ours = session.as_ref().map(|s| s.cookie.name.as_str());
            self.import(i, base, store.as_ref(), ours)
        });
        let dump_cleared = import.as_ref().is_some_and(|i| {
            i.clear
                && matches!(
                    i.source,
                    crate::auth::import::source::SourceOptions::Dump(_)
                )
        });
        if dump_cleared && !sources.credential_store {
            self.problem(
                "import.dump_file",
                "with old_cookie = \"clear\", needs a credential store to remember which sessions were taken over across reloads, restarts and instances: store.credentials_file, or store.kind = \"redis\" (or old_cookie = \"keep\")",
            );
        }
        let mut auth = auth;
        if let Some(a) = auth.as_mut() {
            a.import = import;
        }
        if let (Some(a), Some(names)) = (auth.as_mut(), identity.as_ref()) {
            a.identity = names.clone();
        }
        if let (Some(a), Some(rules)) = (auth.as_mut(), rules.as_ref()) {
            a.sites = rules.sites();
            self.cross_domain(a, &sources);
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
            credentials_file,
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
    use std::time::Duration;

    use super::testing::{
        assert_refused, assert_refused_in, minimal, minimal_with, parse_in, problems, problems_in,
        valid, valid_in, Scratch, SECRET, SECRET_VAR, UNSET_VAR,
    };
    use crate::config::ParseError;

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

    #[test]
    fn durations_name_their_key_and_value() {
        assert_refused(
            &minimal_with("[session]", "idle_timeout = \"0s\""),
            "session.idle_timeout: must be greater than zero (got \"0s\")",
        );
        // humantime's reason, then the value and what one looks like.
        let p = problems(&minimal_with("[session]", "idle_timeout = \"soon\""));
        assert!(
            p.iter().any(|x| x.starts_with("session.idle_timeout: ")
                && x.ends_with("(got \"soon\"; use e.g. \"30s\", \"15m\", \"12h\")")),
            "{p:#?}"
        );
        // Whole seconds for pingora: under 1s is refused, not rounded to 0 (forever).
        assert_refused(
            &minimal_with("[server]", "grace_period = \"999ms\""),
            "server.grace_period: must be at least 1s (got \"999ms\")",
        );
        let c = valid(&minimal_with("[server]", "grace_period = \"1s\""));
        assert_eq!(c.grace_period, Duration::from_secs(1));
    }

    #[test]
    fn secrets_come_from_one_env_or_file_and_are_never_printed() {
        let dir = Scratch::new();
        // A trailing newline (echo, an editor) is not part of the secret.
        let file = dir.write("secret", format!("{SECRET}\n"));
        dir.write("short", format!("{}\r\n", &SECRET[..31]));
        let with =
            |secret: &str| minimal("").replace(&format!("{{ env = \"{SECRET_VAR}\" }}"), secret);
        let c = valid_in(&with("{ file = \"secret\" }"), dir.path());
        assert_eq!(c.session.secrets[0].expose(), SECRET.as_bytes());
        assert_eq!(c.files, [file]);
        let absent = dir.path().join("absent");
        let cases = [
            (
                with("{ }"),
                "session.secrets[0]: give exactly one of env = \"VAR\" or file = \"path\""
                    .to_owned(),
            ),
            (
                with(&format!("{{ env = \"{SECRET_VAR}\", file = \"secret\" }}")),
                "session.secrets[0]: give exactly one of env = \"VAR\" or file = \"path\""
                    .to_owned(),
            ),
            (
                with(&format!("{{ env = \"{UNSET_VAR}\" }}")),
                format!("session.secrets[0]: environment variable {UNSET_VAR} is not set"),
            ),
            (
                with("{ file = \"absent\" }"),
                format!("session.secrets[0]: cannot read {}: ", absent.display()),
            ),
            (
                with("{ file = \"short\" }"),
                "session.secrets[0]: must be at least 32 bytes (got 31 bytes)".to_owned(),
            ),
        ];
        for (text, want) in cases {
            assert_refused_in(&text, dir.path(), &want);
        }
        let p = problems_in(&with("{ file = \"short\" }"), dir.path());
        assert!(!p.iter().any(|x| x.contains(&SECRET[..31])), "{p:#?}");
    }

    #[test]
    fn text_secrets_must_be_non_empty_utf8() {
        let dir = Scratch::new();
        dir.write("newline", "\n");
        dir.write("binary", [0xff, 0xfe, 0x00]);
        for file in ["newline", "binary"] {
            let text = minimal(&format!(
                "[store]\nkind = \"redis\"\npassword = {{ file = \"{file}\" }}\n[store.cluster]\nnodes = [\"h:7000\"]\n"
            ));
            assert_refused_in(
                &text,
                dir.path(),
                "store.password: must be non-empty UTF-8 text",
            );
        }
    }

    /// Guards the split into areas: problems come out area by area, in the
    /// order `config` calls them, as they did from one file.
    #[test]
    fn problems_come_in_the_order_of_the_areas() {
        let text = minimal(
            "[auth]\nmax_failures = 0\n[admin]\nlisten = \"nope\"\n[store]\nkind = \"disk\"\n\
             [log]\nformat = \"xml\"\n[routes]\ndefault_access = \"public\"\n\
             [identity]\nuser_header = \"bad name\"\n[assertion]\nissuer = \"\"\n",
        )
        .replace("[server]\n", "[server]\nthreads = 0\n")
        .replace("[session]\n", "[session]\ncapacity = 0\n")
        .replace(
            "[upstream.app]\n",
            "[upstream.app]\nconnect_timeout = \"0s\"\n",
        )
        .replace(
            "[auth]\n",
            "[upstream.b]\naddrs = [\"127.0.0.1:9\"]\nassertion_audience = \"api\"\n[auth]\n",
        );
        let keys: Vec<String> = problems(&text)
            .iter()
            .map(|p| p.split(':').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "server.threads",
                "session.capacity",
                "auth.max_failures",
                "admin.listen",
                "store.kind",
                "log.format",
                "upstream.app.connect_timeout",
                "routes.default_access",
                "identity.user_header",
                "assertion.keys",
                "assertion.issuer",
                "upstream.b.assertion_audience",
            ]
        );
    }

    /// A reload watches every file a refused config names, so one that
    /// appears later is picked up: listed in config order, readable or not.
    #[test]
    fn a_refused_config_still_lists_the_files_it_names() {
        let dir = Scratch::new();
        dir.write("secret", SECRET);
        let text = minimal(
            "[auth]\nusers_file = \"users.toml\"\n[admin]\ntoken = { file = \"token\" }\n\
             [assertion]\nkeys = [{ file = \"assertion.pem\" }]\n",
        )
        .replace(
            &format!("{{ env = \"{SECRET_VAR}\" }}"),
            "{ file = \"secret\" }",
        );
        let Err(ParseError::Invalid { files, .. }) = parse_in(&text, dir.path()) else {
            panic!("refused: the token and key files are absent")
        };
        let want: Vec<_> = ["secret", "users.toml", "token", "assertion.pem"]
            .iter()
            .map(|f| dir.path().join(f))
            .collect();
        assert_eq!(files, want);
    }
}
