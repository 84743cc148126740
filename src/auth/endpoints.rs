//! The built-in endpoints under the auth prefix (default `/.sessiongate`):
//!
//! | endpoint            | does                                                        |
//! |---------------------|-------------------------------------------------------------|
//! | `GET  <p>/login`    | the login page (keeps `next`)                               |
//! | `POST <p>/login`    | checks the form; success: new session id, 303 to `next`     |
//! | `GET  <p>/logout`   | a one-button confirmation page; changes nothing             |
//! | `POST <p>/logout`   | destroys the session, clears the cookie, 303 to a set page  |
//! | `GET  <p>/me`       | `{user, roles, expires_at, absolute_expires_at}` or 401     |
//! | `GET  <p>/check`    | 204 with `X-User`/`X-User-Roles`, or 401: who this is        |
//! | `*    <p>/auth/nginx`, `<p>/auth/forward` | forward-auth with the route rules; answered by `proxy::forward_auth` |
//! | `GET  <p>/oidc/<id>/start`, `<p>/oidc/<id>/callback` | sign-in with an OpenID Connect provider (`auth::oidc`) |
//!
//! Failures have one shape: an unknown user, a disabled user and a wrong
//! password get the same status, body and cookies, in the same time (unknown
//! users are checked against a dummy hash). Attempts are throttled per canonical
//! user name and per client IP; hashing runs off the async workers behind a
//! bounded semaphore. POSTs from another origin get 403 (OWASP CSRF: verify
//! `Origin`, or failing that `Referer`).
//!
//! This module builds [`Reply`] values; `proxy` writes them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use pingora::http::RequestHeader;
use tokio::sync::Semaphore;

use crate::auth::oidc::prelogin::{self, PreLogin};
use crate::auth::oidc::{Failure, OidcOptions, Provider};
use crate::auth::throttle::Throttle;
use crate::auth::users::{self, Users, MAX_PASSWORD_LEN};
use crate::http::headers::IdentityNames;
use crate::http::html::{escape, page};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::http::redirect::safe_next;
use crate::http::reply::Reply;
use crate::metrics::METRICS;
use crate::session::cookie::SameSite;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::SessionStore;
use std::sync::atomic::Ordering;

/// The built-in endpoints' location and where anonymous browsers are sent.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub prefix: String,
    /// Relative URL of the login page; `?next=` is appended.
    pub login_url: String,
    /// The users file of the built-in login; `None` = built-in login off.
    pub users_file: Option<PathBuf>,
    /// The identity headers `GET <p>/check` answers with (`[identity]`).
    pub identity: IdentityNames,
    /// Where `POST <prefix>/logout` sends the browser.
    pub logout_redirect: String,
    /// Failed logins per user name within `failure_window` before lockout.
    pub max_failures: u32,
    /// Failed logins per client IP within `failure_window` before lockout.
    pub ip_max_failures: u32,
    pub failure_window: Duration,
    /// Password verifications running at once.
    pub max_concurrent_hashes: usize,
    /// `[[auth.oidc]]`: the OpenID Connect providers one may sign in with.
    pub oidc: Vec<OidcOptions>,
}

/// Largest login or logout form accepted (bytes).
pub const MAX_FORM_LEN: usize = 8 * 1024;
/// How long a login waits for a hashing slot before 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Keys the throttles remember at most.
const THROTTLE_CAPACITY: u64 = 100_000;

/// A built-in endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    LoginPage,
    LoginSubmit,
    LogoutPage,
    LogoutSubmit,
    Me,
    /// For `auth_request`-style callers: 204 with `X-User`/`X-User-Roles` for a
    /// live authenticated session, 401 otherwise.
    Check,
    /// The caller's own sessions (ASVS 5.0 7.5.2).
    OwnSessions,
    /// End one of the caller's own other sessions.
    OwnSessionRevoke,
    NotFound,
    MethodNotAllowed,
    /// Forward-auth for nginx `auth_request` (the proxy answers it: it needs the rules).
    AuthNginx,
    /// Forward-auth for Caddy and Traefik.
    AuthForward,
    /// The identity assertion's public keys (answered by the proxy, which holds them).
    Jwks,
    /// `<p>/oidc/<id>/start`: off to the provider to sign in.
    OidcStart,
    /// `<p>/oidc/<id>/callback`: back from the provider.
    OidcCallback,
}

/// Why the login cannot be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("users file: {0}")]
    Users(#[from] users::Error),
    #[error("auth.oidc: {0}")]
    Provider(String),
}

impl Endpoint {
    /// Whether the endpoint reads a form body.
    pub fn reads_form(self) -> bool {
        matches!(
            self,
            Endpoint::LoginSubmit | Endpoint::LogoutSubmit | Endpoint::OwnSessionRevoke
        )
    }
}

/// Which endpoint a normalised path under `prefix` is; `None` when the path is
/// not under the prefix at all.
pub fn route(prefix: &str, method: &Method, path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    Some(match (rest, get, post) {
        ("/login", true, _) => Endpoint::LoginPage,
        ("/login", _, true) => Endpoint::LoginSubmit,
        ("/logout", true, _) => Endpoint::LogoutPage,
        ("/logout", _, true) => Endpoint::LogoutSubmit,
        ("/me", true, _) => Endpoint::Me,
        ("/check", true, _) => Endpoint::Check,
        ("/sessions", true, _) => Endpoint::OwnSessions,
        ("/sessions/revoke", _, true) => Endpoint::OwnSessionRevoke,
        // Any method: nginx's subrequest keeps the original request's.
        ("/auth/nginx", _, _) => Endpoint::AuthNginx,
        ("/auth/forward", _, _) => Endpoint::AuthForward,
        ("/jwks.json", true, _) => Endpoint::Jwks,
        (r, true, _) if oidc_step(r).is_some_and(|(_, s)| s == "start") => Endpoint::OidcStart,
        (r, true, _) if oidc_step(r).is_some_and(|(_, s)| s == "callback") => {
            Endpoint::OidcCallback
        }
        ("/login" | "/logout" | "/me" | "/check" | "/sessions" | "/sessions/revoke", _, _) => {
            Endpoint::MethodNotAllowed
        }
        _ => Endpoint::NotFound,
    })
}

/// `/oidc/<id>/<step>` split into its provider id and step.
fn oidc_step(rest: &str) -> Option<(&str, &str)> {
    let (id, step) = rest.strip_prefix("/oidc/")?.split_once('/')?;
    (!id.is_empty() && !step.contains('/')).then_some((id, step))
}

/// The built-in login: users, throttles, the hashing limit, the OIDC providers.
pub struct Auth {
    config: AuthOptions,
    /// The users file as this login's config generation read it.
    users: Arc<Users>,
    /// Checked when the user is unknown, so that an unknown name costs as
    /// much as a wrong password. Made once per process (an argon2 hash).
    dummy_hash: Arc<String>,
    /// The throttles and the hashing slots outlive a reload whose settings
    /// for them are unchanged: a reload must not forgive failed attempts.
    by_user: Arc<Throttle<String>>,
    by_ip: Arc<Throttle<IpAddr>>,
    hashing: Arc<Semaphore>,
    /// `[[auth.oidc]]`, in config order (the login page's order).
    providers: Vec<Arc<Provider>>,
}

impl Auth {
    /// Load the users file (if configured) and prepare the dummy hash.
    ///
    /// # Errors
    /// If the users file cannot be loaded.
    pub fn new(config: AuthOptions) -> Result<Auth, AuthError> {
        let users = load_users(&config)?;
        let providers = providers(&config, &[])?;
        let window = config.failure_window;
        Ok(Auth {
            by_user: Arc::new(Throttle::new(
                config.max_failures,
                window,
                THROTTLE_CAPACITY,
            )),
            by_ip: Arc::new(Throttle::new(
                config.ip_max_failures,
                window,
                THROTTLE_CAPACITY,
            )),
            hashing: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            dummy_hash: Arc::new(users::dummy_hash()),
            users: Arc::new(users),
            providers,
            config,
        })
    }

    /// The login of a reloaded config: the users file read again, and the
    /// throttles kept where their settings did not change. Returns it with
    /// the users who can no longer log in, whose sessions the caller ends.
    ///
    /// # Errors
    /// The users file is unreadable or invalid; `self` stays as it was.
    pub fn next(&self, config: AuthOptions) -> Result<(Auth, Vec<String>), AuthError> {
        let users = load_users(&config)?;
        let providers = providers(&config, &self.providers)?;
        let revoked = self.users.revoked_in(&users);
        let old = &self.config;
        let window = config.failure_window;
        let same_window = window == old.failure_window;
        let by_user = if same_window && config.max_failures == old.max_failures {
            self.by_user.clone()
        } else {
            Arc::new(Throttle::new(
                config.max_failures,
                window,
                THROTTLE_CAPACITY,
            ))
        };
        let by_ip = if same_window && config.ip_max_failures == old.ip_max_failures {
            self.by_ip.clone()
        } else {
            Arc::new(Throttle::new(
                config.ip_max_failures,
                window,
                THROTTLE_CAPACITY,
            ))
        };
        let hashing = if config.max_concurrent_hashes == old.max_concurrent_hashes {
            self.hashing.clone()
        } else {
            Arc::new(Semaphore::new(config.max_concurrent_hashes))
        };
        let login = Auth {
            config,
            users: Arc::new(users),
            dummy_hash: self.dummy_hash.clone(),
            by_user,
            by_ip,
            hashing,
            providers,
        };
        Ok((login, revoked))
    }

    fn users(&self) -> Arc<Users> {
        self.users.clone()
    }

    /// Answer a built-in endpoint. `path` is the request's normalised path,
    /// `form` the request body for the POST endpoints.
    #[allow(clippy::too_many_arguments)]
    pub async fn handle<S: SessionStore>(
        &self,
        endpoint: Endpoint,
        req: &RequestHeader,
        path: &str,
        form: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let reply = match endpoint {
            Endpoint::LoginPage => {
                let next = query_param(req, "next");
                Reply::html(
                    StatusCode::OK,
                    self.login_page(&safe_next(next.as_deref()), None, ""),
                )
            }
            Endpoint::OidcStart => self.oidc_start(req, path, client, sessions).await,
            Endpoint::OidcCallback => self.oidc_callback(req, path, client, cur, sessions).await,
            Endpoint::LoginSubmit => self.submit_login(req, form, client, cur, sessions).await,
            Endpoint::LogoutPage => Reply::html(StatusCode::OK, self.logout_page()),
            Endpoint::LogoutSubmit => {
                if !same_origin(req, client.via_trusted_proxy) {
                    return forbidden();
                }
                // Where the provider that signed this session in sends it after
                // its own logout, when RP-initiated logout is on.
                let provider = cur
                    .session
                    .as_deref()
                    .and_then(|s| s.data().get(PROVIDER_KEY)?.as_str().map(str::to_owned))
                    .and_then(|id| self.provider(&id));
                let provider_logout = match provider {
                    Some(p) => {
                        p.end_session_url(&p.post_logout_url(&self.config.logout_redirect))
                            .await
                    }
                    None => None,
                };
                match sessions.logout(cur).await {
                    Ok(()) => Reply::see_other(
                        provider_logout
                            .as_deref()
                            .unwrap_or(&self.config.logout_redirect),
                    ),
                    Err(e) => unavailable(&e),
                }
            }
            Endpoint::Check => check(cur, &self.config.identity),
            // Answered by the proxy, which holds the rules; never routed here.
            Endpoint::AuthNginx | Endpoint::AuthForward | Endpoint::Jwks => {
                Reply::problem(Problem::NotFound)
            }
            Endpoint::Me => me(cur),
            Endpoint::OwnSessions => {
                crate::auth::own_sessions::list(req, cur, sessions, &self.config.prefix).await
            }
            Endpoint::OwnSessionRevoke => {
                if !same_origin(req, client.via_trusted_proxy) {
                    return forbidden();
                }
                crate::auth::own_sessions::revoke(form, cur, sessions, &self.config.prefix).await
            }
            Endpoint::NotFound => Reply::problem(Problem::NotFound),
            Endpoint::MethodNotAllowed => method_not_allowed(req.uri.path()),
        };
        reply
    }

    async fn submit_login<S: SessionStore>(
        &self,
        req: &RequestHeader,
        form: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        if !same_origin(req, client.via_trusted_proxy) {
            return forbidden();
        }
        let (mut username, mut password, mut next) = (None, None, None);
        for (k, v) in form_urlencoded::parse(form) {
            match k.as_ref() {
                "username" => username = Some(v.into_owned()),
                "password" => password = Some(v.into_owned()),
                "next" => next = Some(v.into_owned()),
                _ => {}
            }
        }
        let next = safe_next(next.as_deref()).into_owned();
        let (Some(username), Some(password)) = (username.clone(), password) else {
            return Reply::html(
                StatusCode::BAD_REQUEST,
                self.login_page(
                    &next,
                    Some("Enter a username and a password."),
                    username.as_deref().unwrap_or_default(),
                ),
            );
        };
        if self.config.users_file.is_none() {
            return Reply::problem(Problem::NotFound);
        }
        if password.len() > MAX_PASSWORD_LEN {
            // Refused before hashing: a huge password must not buy a huge hash.
            return Reply::html(
                StatusCode::BAD_REQUEST,
                self.login_page(&next, Some("That password is too long."), &username),
            );
        }
        let user_key = users::canonical_name(&username);
        let user_slot = match self.by_user.begin(user_key) {
            Ok(a) => a,
            Err(retry) => return self.locked_out(&next, retry, &username),
        };
        // Each slot is given back when dropped, unless the password failed.
        let ip_slot = match client.ip.map(|ip| self.by_ip.begin(ip)).transpose() {
            Ok(a) => a,
            Err(retry) => return self.locked_out(&next, retry, &username),
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.acquire()).await
        else {
            return Reply::problem(Problem::Unavailable)
                .with(http::header::RETRY_AFTER, "1".into());
        };
        let typed = username.clone();
        let users = self.users();
        let dummy = self.dummy_hash.clone();
        let checked = tokio::task::spawn_blocking(move || {
            users::check(&users, &dummy, &username, password.as_bytes())
                .map(|u| (u.name.clone(), u.roles.clone()))
        })
        .await
        .ok()
        .flatten();
        let Some((user, roles)) = checked else {
            // The slots stay taken: they are the failures the throttle counts.
            user_slot.failed();
            if let Some(a) = ip_slot {
                a.failed();
            }
            METRICS.login_failed();
            tracing::info!(target: "auth", "login failed");
            return Reply::html(
                StatusCode::UNAUTHORIZED,
                self.login_page(&next, Some("Invalid username or password."), &typed),
            );
        };
        drop((user_slot, ip_slot));
        if let Err(e) = sessions.login(cur, user.clone(), roles, client).await {
            return unavailable(&e);
        }
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, "login succeeded");
        Reply::see_other(&next)
    }

    /// A lockout looks like a failure with a `Retry-After`, whatever the password.
    fn locked_out(&self, next: &str, retry: Duration, username: &str) -> Reply {
        METRICS.logins_throttled.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "auth", "login throttled");
        let secs = retry.as_secs().max(1);
        let when = if secs < 90 {
            format!("{secs} seconds")
        } else {
            format!("{} minutes", secs.div_ceil(60))
        };
        Reply::html(
            StatusCode::TOO_MANY_REQUESTS,
            self.login_page(
                next,
                Some(&format!("Too many attempts. Try again in {when}.")),
                username,
            ),
        )
        .with(http::header::RETRY_AFTER, secs.to_string())
    }

    /// The login page: a button per OIDC provider, and the password form
    /// when there is a users file. `username` is what was typed last time.
    fn login_page(&self, next: &str, error: Option<&str>, username: &str) -> String {
        let error = error.map_or(String::new(), |e| {
            format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
        });
        let mut providers = String::new();
        for p in &self.providers {
            let href = format!(
                "{}/oidc/{}/start?{}",
                self.config.prefix,
                p.options.id,
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish()
            );
            providers.push_str(&format!(
                r#"<a class="button provider" href="{}">Sign in with {}</a>
"#,
                escape(&href),
                escape(&p.options.name)
            ));
        }
        let password = if self.config.users_file.is_some() {
            format!(
                r#"{or}<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required{focus_user}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{focus_password}>
<button type="submit">Sign in</button>
</form>"#,
                or = if providers.is_empty() {
                    ""
                } else {
                    r#"<p class="or"><span>or</span></p>
"#
                },
                action = escape(&format!("{}/login", self.config.prefix)),
                next = escape(next),
                username = escape(username),
                focus_user = if username.is_empty() {
                    " autofocus"
                } else {
                    ""
                },
                focus_password = if username.is_empty() {
                    ""
                } else {
                    " autofocus"
                },
            )
        } else {
            String::new()
        };
        page(
            "Sign in",
            &format!("<h1>Sign in</h1>{error}\n{providers}{password}"),
        )
    }

    /// The pre-login cookie's name when sign-in with a provider is on: it is
    /// ours, so the proxy strips it from requests to upstreams.
    pub fn prelogin_cookie(
        &self,
        session: &crate::session::cookie::CookieAttrs,
    ) -> Option<&'static str> {
        (!self.providers.is_empty()).then(|| prelogin::cookie_name(session))
    }

    fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.options.id == id)
    }

    /// The provider a `<p>/oidc/<id>/...` path names.
    fn provider_at(&self, path: &str) -> Option<&Arc<Provider>> {
        let rest = path.strip_prefix(self.config.prefix.as_str())?;
        self.provider(oidc_step(rest)?.0)
    }

    /// `GET <p>/oidc/<id>/start`: the pre-login cookie, and off to the provider.
    async fn oidc_start<S: SessionStore>(
        &self,
        req: &RequestHeader,
        path: &str,
        client: &Client,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let Some(provider) = self.provider_at(path) else {
            return Reply::problem(Problem::NotFound);
        };
        let next = query_param(req, "next");
        let mut next = safe_next(next.as_deref()).into_owned();
        if next.len() > MAX_NEXT_LEN {
            next = "/".to_owned();
        }
        match provider.start(&next, now_secs()).await {
            Ok(started) => {
                let secrets = &sessions.config().secrets;
                let cookie = prelogin::cookie_attrs(&sessions.config().cookie)
                    .set_cookie(&started.record.seal(secrets), client.https);
                Reply::see_other(&started.location).with(http::header::SET_COOKIE, cookie)
            }
            Err(e) => {
                tracing::warn!(target: "auth", provider = %provider.options.id, reason = %e, "sign-in could not start");
                Reply::html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.login_page(
                        &next,
                        Some(&format!(
                            "Sign-in with {} is not available right now. Try again later.",
                            provider.options.name
                        )),
                        "",
                    ),
                )
            }
        }
    }

    /// `GET <p>/oidc/<id>/callback`: the pre-login cookie and `state` checked,
    /// the code redeemed, the ID token checked, then a new session.
    async fn oidc_callback<S: SessionStore>(
        &self,
        req: &RequestHeader,
        path: &str,
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let Some(provider) = self.provider_at(path) else {
            return Reply::problem(Problem::NotFound);
        };
        let attrs = prelogin::cookie_attrs(&sessions.config().cookie);
        // Cleared whatever happens: a record is good for one callback.
        let clear = attrs.clear_cookie(client.https);
        let now = now_secs();
        let record = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| crate::session::cookie::find(v, &attrs.name))
            .find_map(|v| PreLogin::open(v, &sessions.config().secrets, now));
        let outcome = match &record {
            Some(record) => provider.finish(req.uri.query().unwrap_or(""), record).await,
            None => Err(Failure::NoPreLogin),
        };
        let next = record.map_or_else(|| "/".to_owned(), |r| r.next);
        let mapped = match outcome {
            Ok(m) => m,
            Err(e) => {
                METRICS.login_failed();
                tracing::warn!(target: "auth", provider = %provider.options.id, reason = %e, "sign-in failed");
                return Reply::html(
                    StatusCode::UNAUTHORIZED,
                    self.login_page(
                        &next,
                        Some(&format!(
                            "Sign-in with {} did not complete. Try again.",
                            provider.options.name
                        )),
                        "",
                    ),
                )
                .with(http::header::SET_COOKIE, clear);
            }
        };
        if mapped.dropped > 0 {
            tracing::warn!(target: "auth", provider = %provider.options.id, dropped = mapped.dropped, "groups that cannot be roles were left out");
        }
        let mut data = serde_json::Map::new();
        data.insert(PROVIDER_KEY.to_owned(), provider.options.id.clone().into());
        let user = mapped.user;
        if let Err(e) = sessions
            .login_with(cur, user.clone(), mapped.roles, data, client)
            .await
        {
            return unavailable(&e).with(http::header::SET_COOKIE, clear);
        }
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, provider = %provider.options.id, "login succeeded");
        signed_in(&next, sessions.config().cookie.same_site).with(http::header::SET_COOKIE, clear)
    }

    fn logout_page(&self) -> String {
        page(
            "Sign out",
            &format!(
                r#"<h1>Sign out?</h1>
<form method="post" action="{action}">
<button type="submit">Sign out</button>
</form>"#,
                action = escape(&format!("{}/logout", self.config.prefix)),
            ),
        )
    }
}

/// `GET <p>/check`: 204 with the identity headers, or 401 (for `auth_request`).
fn check(cur: &RequestSession, names: &IdentityNames) -> Reply {
    match cur.session.as_deref() {
        Some(s) if s.user().is_some() => Reply {
            status: StatusCode::NO_CONTENT,
            content_type: "text/plain; charset=utf-8",
            headers: vec![
                (names.user.clone(), s.user().unwrap_or_default().to_owned()),
                (names.roles.clone(), s.roles_header().to_owned()),
            ],
            body: Vec::new(),
        },
        _ => Reply::problem(Problem::Unauthenticated),
    }
}

/// `GET <p>/me`: who this is, and until when.
fn me(cur: &RequestSession) -> Reply {
    match cur.session.as_deref().filter(|s| s.user().is_some()) {
        Some(s) => Reply::json(
            StatusCode::OK,
            serde_json::json!({
                "user": s.user(),
                "roles": s.roles().collect::<Vec<_>>(),
                "expires_at": s.expires_at() / 1000,
                "absolute_expires_at": s.absolute_expires_at / 1000,
            })
            .to_string(),
        ),
        None => Reply::problem(Problem::Unauthenticated),
    }
}

/// 405 with the methods the endpoint at `path` does take.
fn method_not_allowed(path: &str) -> Reply {
    let allow = if path.ends_with("/me") || path.ends_with("/check") || path.ends_with("/sessions")
    {
        "GET, HEAD"
    } else if path.ends_with("/revoke") {
        "POST"
    } else {
        "GET, HEAD, POST"
    };
    Reply::problem(Problem::MethodNotAllowed).with(http::header::ALLOW, allow.into())
}

fn forbidden() -> Reply {
    tracing::warn!(target: "auth", "cross-origin POST to a built-in endpoint refused");
    Reply::problem(Problem::CrossOrigin)
}

fn unavailable(e: &crate::session::StoreError) -> Reply {
    tracing::error!(error = %e, "session store unavailable");
    Reply::problem(Problem::Unavailable)
}

/// The session data key that records which provider signed a session in
/// (for RP-initiated logout). The backend sees it in `X-Session-Data`.
pub const PROVIDER_KEY: &str = "sessiongate.provider";
/// A longer `next` is replaced by `/` rather than carried through the provider.
const MAX_NEXT_LEN: usize = 1024;

fn now_secs() -> u64 {
    crate::session::now_ms() / 1000
}

/// After a sign-in at a provider: a 303 to `next`, or, when the session cookie
/// is `SameSite=Strict`, a page that moves on by itself, because a browser
/// does not send a Strict cookie on a redirect chain that began at another site.
fn signed_in(next: &str, same_site: SameSite) -> Reply {
    if same_site != SameSite::Strict {
        return Reply::see_other(next);
    }
    let next = escape(next);
    Reply::html(
        StatusCode::OK,
        page(
            "Signed in",
            &format!(
                r#"<meta http-equiv="refresh" content="0;url={next}"><h1>Signed in</h1><p><a class="button" href="{next}">Continue</a></p>"#
            ),
        ),
    )
}

/// The providers of `config`, reusing those of `old` whose settings are unchanged
/// (a reload keeps their discovery document and keys).
fn providers(config: &AuthOptions, old: &[Arc<Provider>]) -> Result<Vec<Arc<Provider>>, AuthError> {
    config
        .oidc
        .iter()
        .map(|o| match old.iter().find(|p| p.options == *o) {
            Some(p) => Ok(p.clone()),
            None => Provider::new(o.clone())
                .map(Arc::new)
                .map_err(AuthError::Provider),
        })
        .collect()
}

fn load_users(config: &AuthOptions) -> Result<Users, users::Error> {
    match &config.users_file {
        Some(path) => Users::load(path),
        None => Ok(Users::default()),
    }
}

fn query_param(req: &RequestHeader, key: &str) -> Option<String> {
    let q = req.uri.query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_under_the_prefix_only() {
        let p = "/.sessiongate";
        let cases = [
            (
                Method::GET,
                "/.sessiongate/login",
                Some(Endpoint::LoginPage),
            ),
            (
                Method::POST,
                "/.sessiongate/login",
                Some(Endpoint::LoginSubmit),
            ),
            (
                Method::GET,
                "/.sessiongate/logout",
                Some(Endpoint::LogoutPage),
            ),
            (
                Method::POST,
                "/.sessiongate/logout",
                Some(Endpoint::LogoutSubmit),
            ),
            (Method::GET, "/.sessiongate/me", Some(Endpoint::Me)),
            (
                Method::DELETE,
                "/.sessiongate/me",
                Some(Endpoint::MethodNotAllowed),
            ),
            (Method::GET, "/.sessiongate/x", Some(Endpoint::NotFound)),
            (Method::GET, "/.sessiongate", Some(Endpoint::NotFound)),
            (
                Method::GET,
                "/.sessiongate/oidc/idp/start",
                Some(Endpoint::OidcStart),
            ),
            (
                Method::GET,
                "/.sessiongate/oidc/idp/callback",
                Some(Endpoint::OidcCallback),
            ),
            (
                Method::GET,
                "/.sessiongate/oidc/idp/x/callback",
                Some(Endpoint::NotFound),
            ),
            (
                Method::GET,
                "/.sessiongate/oidc//start",
                Some(Endpoint::NotFound),
            ),
            (
                Method::POST,
                "/.sessiongate/oidc/idp/start",
                Some(Endpoint::NotFound),
            ),
            (Method::GET, "/.sessiongatex/login", None),
            (Method::GET, "/app", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(p, &method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
