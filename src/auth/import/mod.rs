//! An Express app moving behind sessiongate without logging anyone out
//! (`[import]`). A browser that arrives with the app's valid express-session
//! cookie (`connect.sid`) and no session of ours is recognised as the user
//! the app's session names: it gets a new session here (a new id, as at
//! every login) and sessiongate's cookie; from then on only that counts.
//!
//! - [`cookie`]: the signed cookie value, checked against every app secret;
//! - [`source`]: the app's sessions, in connect-redis's Redis or a dump file;
//! - [`record`]: a session record to a user, roles and copied fields.
//!
//! Only requests that carry the app's cookie and no session of ours pay for
//! any of it; after the window (`until`) nothing is looked up. Every refusal
//! is anonymous (never a 500); an app Redis that cannot be reached is a 503
//! for protected routes, as sessiongate's own store is.

pub(crate) mod cookie;
pub(crate) mod record;
pub(crate) mod source;

use http::HeaderMap;

use self::cookie::Unsigned;
use self::record::{Paths, Unread};
use self::source::{Looked, Source, SourceOptions};
use crate::auth::Auth;
// What one import attempt came to: the metric's label is the outcome.
use crate::metrics::{Import as Outcome, METRICS};
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::signing::Secret;
use crate::session::SessionStore;

/// `[import]` as configured.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    /// The app's cookie, `connect.sid` by default.
    pub cookie: String,
    /// The app's secrets: any length, verify only.
    pub secrets: Vec<Secret>,
    /// The end of the import window (unix ms): no import after it.
    pub until: u64,
    pub paths: Paths,
    /// `old_cookie = "clear"`: expire the app's cookie and delete its record
    /// once taken over, so an old cookie works once. `"keep"`: both stay,
    /// for a rollback to the app's own sessions.
    pub clear: bool,
    /// The app's cookie's path and domain, to expire it.
    pub cookie_path: String,
    pub cookie_domain: Option<String>,
    /// Send the app's cookie upstream (the app still reads its sessions).
    pub forward_cookie: bool,
    pub source: SourceOptions,
}

/// The import of one config generation.
pub(crate) struct Import {
    pub(crate) options: ImportOptions,
    source: Source,
    /// Cookie values refused lately (by SHA-256), with why: a browser that
    /// keeps sending one (`old_cookie = "keep"`, or a client that ignores
    /// the clearing cookie) is not looked up again at every request.
    refused: moka::sync::Cache<[u8; 32], Outcome>,
}

/// How long a refused cookie is remembered, and how many at most.
const REFUSED_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const REFUSED_CAPACITY: u64 = 100_000;

/// What the proxy does after a request's import.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Imported {
    /// No cookie of the app's: the request goes on as it was.
    Nothing,
    /// Refused: the request goes on as it was; with `clear`, the
    /// `Set-Cookie` that expires the app's cookie.
    Refused { clear: Option<String> },
    /// A new session; with `clear`, the `Set-Cookie` that expires the app's.
    Done { clear: Option<String> },
    /// The app's Redis could not be reached: as when our store is down.
    Unavailable,
}

impl Import {
    /// # Errors
    /// The source cannot be opened (an invalid URL, an unreadable dump).
    pub(crate) fn new(options: ImportOptions) -> Result<Import, String> {
        let source = Source::new(&options.source)?;
        let refused = moka::sync::Cache::builder()
            .max_capacity(REFUSED_CAPACITY)
            .time_to_live(REFUSED_TTL)
            .build();
        Ok(Import {
            options,
            source,
            refused,
        })
    }

    /// The app's cookie in `headers`: the first one, as Express reads it.
    fn cookie_in(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.options.cookie.as_str();
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                crate::session::cookie::find(v, name)
                    .next()
                    .map(str::to_owned)
            })
    }

    /// The user the app's session under cookie value `raw` names.
    async fn recognise(&self, raw: &str, now_ms: u64) -> Result<(String, record::Who), Outcome> {
        if now_ms >= self.options.until {
            return Err(Outcome::WindowClosed);
        }
        let id = cookie::unsign(raw, &self.options.secrets).map_err(|e| match e {
            Unsigned::BadSignature => Outcome::BadSignature,
            Unsigned::BadId => Outcome::BadId,
        })?;
        let found = match self.source.get(&id).await {
            Ok(Looked::Found(v)) => v,
            Ok(Looked::NotFound) => return Err(Outcome::NotFound),
            Ok(Looked::Broken) => return Err(Outcome::BadRecord),
            Err(e) => {
                tracing::error!(target: "auth", error = %e, "the app's session store cannot be reached for an import");
                return Err(Outcome::Unavailable);
            }
        };
        let who = record::read(&found, &self.options.paths, now_ms).map_err(|e| match e {
            Unread::Broken => Outcome::BadRecord,
            Unread::Expired => Outcome::Expired,
            Unread::BadIdentity => Outcome::BadIdentity,
        })?;
        Ok((id, who))
    }

    /// The `Set-Cookie` that expires the app's cookie, with its own path and
    /// domain (a browser keeps a cookie of another path or domain).
    fn clear_cookie(&self, https: bool) -> String {
        let domain = self
            .options
            .cookie_domain
            .as_deref()
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        // A browser lets only a secure page touch a Secure cookie, and a
        // `__Secure-`/`__Host-` name needs the attribute to be accepted.
        let secure = if https { "; Secure" } else { "" };
        format!(
            "{}=; Path={}{domain}; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly{secure}",
            self.options.cookie, self.options.cookie_path
        )
    }
}

impl Auth {
    /// For a request with no signed-in session of ours: when it carries the
    /// app's cookie, sign its user in from the app's session (a new session,
    /// a new id). Logged with the user only: never the cookie, the id or a
    /// secret.
    pub(crate) async fn import_session<S: SessionStore>(
        &self,
        headers: &HeaderMap,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
        client: &Client,
    ) -> Imported {
        let Some(import) = self.import.as_deref() else {
            return Imported::Nothing;
        };
        let Some(raw) = import.cookie_in(headers) else {
            return Imported::Nothing;
        };
        let now = crate::session::now_ms();
        let digest: [u8; 32] = {
            use sha2::{Digest, Sha256};
            Sha256::digest(raw.as_bytes()).into()
        };
        let outcome = match import.refused.get(&digest) {
            Some(outcome) => Err(outcome),
            None => match import.recognise(&raw, now).await {
                Ok((id, who)) => {
                    self.take_over(import, id, who, now, cur, sessions, client)
                        .await
                }
                Err(outcome) => Err(outcome),
            },
        };
        // Refusals the next minute cannot change are remembered; the store
        // being down, an account set up meanwhile, are not.
        if let Err(
            o @ (Outcome::BadSignature
            | Outcome::BadId
            | Outcome::Expired
            | Outcome::BadRecord
            | Outcome::BadIdentity
            | Outcome::WindowClosed),
        ) = outcome
        {
            import.refused.insert(digest, o);
        }
        match outcome {
            Ok(done) => done,
            Err(Outcome::Unavailable) => {
                METRICS.import(Outcome::Unavailable);
                Imported::Unavailable
            }
            Err(outcome) => {
                METRICS.import(outcome);
                if outcome == Outcome::WindowClosed {
                    tracing::debug!(target: "auth", "an express-session cookie after the import window");
                } else {
                    tracing::info!(target: "auth", result = ?outcome, "an express-session cookie was not imported");
                }
                // With "clear", a cookie that will never be taken over is
                // expired too: the browser stops sending it, and the gate
                // stops looking it up at every request.
                Imported::Refused {
                    clear: import
                        .options
                        .clear
                        .then(|| import.clear_cookie(client.https)),
                }
            }
        }
    }

    /// Sign in the user a valid record names, as sessiongate's own rules
    /// allow: the users file decides for the names it has (their spelling,
    /// roles, and whether they are disabled), and an account that must pass
    /// a second factor is never signed in by an import (the app's session
    /// proved a password at most).
    #[allow(clippy::too_many_arguments)]
    async fn take_over<S: SessionStore>(
        &self,
        import: &Import,
        id: String,
        who: record::Who,
        now: u64,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
        client: &Client,
    ) -> Result<Imported, Outcome> {
        let record::Who { user, roles, data } = who;
        let (user, roles) = match self.users.get(&user) {
            Some(u) if u.disabled => return Err(Outcome::Disabled),
            Some(u) => (u.name.clone(), u.roles.clone()),
            None => (user, roles),
        };
        if let Some(factors) = &self.factors {
            let needs = factors.required_for(&roles)
                || factors.has_factor(&user).await.map_err(|e| {
                    tracing::error!(target: "auth", error = %e, "credential store unavailable for an import");
                    Outcome::Unavailable
                })?;
            if needs {
                return Err(Outcome::NeedsFactor);
            }
        }
        sessions
            .login_with(cur, user.clone(), roles, data, 0, client)
            .await
            .map_err(|e| {
                tracing::error!(target: "auth", error = %e, "an imported session could not be written");
                Outcome::Unavailable
            })?;
        // "clear": once, even for copies of the cookie sent at the same
        // moment or on another instance, and for a dump every instance (and
        // every reload) reads whole. Spent after our session is written, so
        // a failed write never spends it; a copy that lost the race ends the
        // session it just made.
        if import.options.clear {
            if let Some(home) = self.api_keys.as_ref().map(|k| k.home()) {
                let ttl = match import.source {
                    // The record is deleted: only copies in flight need it.
                    Source::Redis { .. } => std::time::Duration::from_secs(600),
                    Source::Dump(_) => std::time::Duration::from_millis(
                        import.options.until.saturating_sub(now).max(1000),
                    ),
                };
                let token = crate::session::credentials::once_token(&["import", &id]);
                match home.first_use(&token, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Err(e) = sessions.logout(cur).await {
                            tracing::error!(target: "auth", error = %e, "a duplicate import's session could not be ended");
                        }
                        return Err(Outcome::NotFound);
                    }
                    Err(e) => {
                        tracing::error!(target: "auth", error = %e, "an import could not be spent in the credential store; it stands");
                    }
                }
            }
        }
        METRICS.import(Outcome::Imported);
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, "signed in from the app's express-session");
        if !import.options.clear {
            return Ok(Imported::Done { clear: None });
        }
        // After the new session is written: a failure here leaves the old
        // cookie working once more, never a user without a session.
        if let Err(e) = import.source.remove(&id).await {
            tracing::warn!(target: "auth", error = %e, "the app's session could not be deleted after its import");
        }
        Ok(Imported::Done {
            clear: Some(import.clear_cookie(client.https)),
        })
    }
}
