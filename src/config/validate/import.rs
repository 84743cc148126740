//! `[import]`: an Express app's express-session sessions, taken over once
//! (`auth::import`). The app's secrets may be short (they are the app's,
//! used only to verify); exactly one source; and sessiongate's own Redis
//! keys must not be able to collide with the app's.

use std::path::Path;

use super::Validator;
use crate::auth::import::record::Paths;
use crate::auth::import::source::SourceOptions;
use crate::auth::import::ImportOptions;
use crate::config::raw::RawImport;
use crate::config::StoreConfig;
use crate::session::redis::Servers;

/// `a.b.c` as `["a", "b", "c"]`: each step a non-empty JSON key.
fn path_of(s: &str) -> Option<Vec<String>> {
    let steps: Vec<String> = s.split('.').map(str::to_owned).collect();
    (!s.is_empty() && steps.iter().all(|p| !p.is_empty() && p.len() <= 64)).then_some(steps)
}

/// `host:port/db` of a `redis://` URL (credentials, if any, left out), with
/// Redis's defaults filled in, to tell whether two URLs are one database.
fn database(url: &str) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    let db = if db.is_empty() { "0" } else { db };
    format!("{}/{db}", host.to_ascii_lowercase())
}

impl Validator {
    pub(super) fn import(
        &mut self,
        raw: RawImport,
        base: &Path,
        store: Option<&StoreConfig>,
        session_cookie: Option<&str>,
    ) -> Option<ImportOptions> {
        let before = self.problems.len();
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        if !token(&raw.cookie) {
            self.problem(
                "import.cookie",
                format!("{:?} is not a cookie name", raw.cookie),
            );
        }
        if session_cookie == Some(raw.cookie.as_str()) {
            self.problem(
                "import.cookie",
                "must not be sessiongate's own session cookie",
            );
        }
        if raw.secrets.is_empty() {
            self.problem(
                "import.secrets",
                "name the app's express-session secret(s), the one that signs first",
            );
        }
        let secrets: Vec<_> = raw
            .secrets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let key = format!("import.secrets[{i}]");
                let bytes = self.secret_bytes(&key, s, base)?;
                if bytes.is_empty() {
                    self.problem(&key, "is empty");
                    return None;
                }
                Some(crate::session::signing::Secret::new(bytes))
            })
            .collect();
        let until = match chrono::DateTime::parse_from_rfc3339(&raw.until) {
            Ok(t) => u64::try_from(t.timestamp_millis()).unwrap_or(0),
            Err(e) => {
                self.problem(
                    "import.until",
                    format!(
                        "{e} (got {:?}; use e.g. \"2027-03-31T00:00:00Z\")",
                        raw.until
                    ),
                );
                0
            }
        };
        let user = path_of(&raw.user_path);
        if user.is_none() {
            self.problem(
                "import.user_path",
                format!("{:?} is not a path like \"passport.user\"", raw.user_path),
            );
        }
        let roles = raw.roles_path.as_deref().map(|r| {
            let p = path_of(r);
            if p.is_none() {
                self.problem(
                    "import.roles_path",
                    format!("{r:?} is not a path like \"user.roles\""),
                );
            }
            p
        });
        for c in &raw.copy {
            if c.is_empty() || c == "cookie" || c.starts_with("sessiongate.") {
                self.problem(
                    "import.copy",
                    format!("{c:?} cannot be copied (not the record's cookie, nor sessiongate.*)"),
                );
            }
        }
        let clear = match raw.old_cookie.as_str() {
            "clear" => true,
            "keep" => false,
            other => {
                self.problem(
                    "import.old_cookie",
                    format!("must be \"clear\" or \"keep\" (got {other:?})"),
                );
                true
            }
        };
        if !raw.cookie_path.starts_with('/')
            || !raw
                .cookie_path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';')
        {
            self.problem(
                "import.cookie_path",
                format!("{:?} is not a cookie path", raw.cookie_path),
            );
        }
        if let Some(d) = &raw.cookie_domain {
            if !token(d) {
                self.problem("import.cookie_domain", format!("{d:?} is not a domain"));
            }
        }
        let source = match (raw.redis_url, raw.dump_file) {
            (Some(url), None) => {
                if raw.redis_prefix.contains(['*', '?', '[']) {
                    self.problem("import.redis_prefix", "must not hold a glob character");
                }
                self.collision(store, &url, &raw.redis_prefix);
                self.redis_url(
                    ("import.redis_url", "import.redis_password"),
                    url,
                    raw.redis_password.as_ref(),
                    base,
                )
                .map(|url| SourceOptions::Redis {
                    url,
                    prefix: raw.redis_prefix,
                })
            }
            (None, Some(file)) => {
                let path = base.join(file);
                self.files.push(path.clone());
                Some(SourceOptions::Dump(path))
            }
            _ => {
                self.problem(
                    "import",
                    "give exactly one source: redis_url (connect-redis) or dump_file",
                );
                None
            }
        };
        if self.problems.len() != before {
            return None;
        }
        Some(ImportOptions {
            cookie: raw.cookie,
            secrets,
            until,
            paths: Paths {
                user: user?,
                roles: roles.flatten(),
                numeric_users: raw.numeric_users,
                copy: raw.copy,
            },
            clear,
            cookie_path: raw.cookie_path,
            cookie_domain: raw.cookie_domain,
            forward_cookie: raw.forward_cookie,
            source: source?,
        })
    }

    /// The app's keys and sessiongate's in one Redis database, under
    /// prefixes one of which begins the other: a session id of the app's
    /// could name a key of ours (or the reverse). Refused; with Sentinel or
    /// a cluster, where the database cannot be told from here, any overlap is.
    fn collision(&mut self, store: Option<&StoreConfig>, url: &str, prefix: &str) {
        let Some(StoreConfig::Redis(ours)) = store else {
            return;
        };
        // By database number only: one host has many names (localhost,
        // 127.0.0.1, ::1), so two URLs that differ by host are assumed the
        // same server.
        let db = |u: &str| database(u).rsplit_once('/').map(|(_, d)| d.to_owned());
        let same_database = match &ours.servers {
            Servers::One(u) => db(u) == db(url),
            _ => true,
        };
        let overlap = ours.prefix.starts_with(prefix) || prefix.starts_with(&ours.prefix);
        if same_database && overlap {
            self.problem(
                "import.redis_prefix",
                format!(
                    "{prefix:?} and store.prefix {:?} could name the same keys in one Redis: give the app's sessions or sessiongate's a prefix the other does not begin with",
                    ours.prefix
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_compare_with_defaults_and_without_credentials() {
        assert_eq!(
            database("redis://127.0.0.1:6379/0"),
            database("redis://127.0.0.1")
        );
        assert_eq!(
            database("redis://:pw@Cache:6379"),
            database("redis://cache/0")
        );
        assert_ne!(database("redis://cache/1"), database("redis://cache/0"));
        assert_ne!(database("redis://cache:6380"), database("redis://cache"));
    }

    #[test]
    fn paths_are_dotted_keys() {
        assert_eq!(path_of("passport.user").unwrap(), vec!["passport", "user"]);
        for bad in ["", ".user", "passport.", "a..b"] {
            assert!(path_of(bad).is_none(), "{bad:?}");
        }
    }
}
