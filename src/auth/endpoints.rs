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
//! | `POST <p>/oidc/<id>/backchannel-logout` | the provider ends sessions (`auth::oidc::backchannel`) |
//! | `<p>/factor`, `<p>/factor/enrol`, `<p>/factor/recovery` | the second factor (`auth::factor::pages`) |
//! | `GET  <p>/hop`, `<p>/hop/land` | one sign-in across domains (`auth::hop`)              |
//!
//! Failures have one shape: an unknown user, a disabled user and a wrong
//! password get the same status, body and cookies, in the same time (unknown
//! users are checked against a dummy hash). Attempts are throttled per canonical
//! user name and per client IP; hashing runs off the async workers behind a
//! bounded semaphore. POSTs from another origin get 403 (OWASP CSRF: verify
//! `Origin`, or failing that `Referer`).
//!
//! This module builds [`Reply`] values; `proxy` writes them. The password
//! login is [`super::password`], the OIDC flow [`super::oidc::flow`].

use http::{Method, StatusCode};
use pingora::http::RequestHeader;

use super::hop::Site;
use super::oidc::flow::PROVIDER_KEY;
use super::Auth;
use crate::http::headers::IdentityNames;
use crate::http::html::{escape, page};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::http::redirect::{safe_next, safe_next_among};
use crate::http::reply::Reply;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::SessionStore;

/// Largest login or logout form accepted (bytes).
pub(crate) const MAX_FORM_LEN: usize = 8 * 1024;

/// A built-in endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
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
    /// Make an API key for the caller (a personal access token).
    OwnKeyCreate,
    /// Revoke one of the caller's API keys.
    OwnKeyRevoke,
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
    /// `POST <p>/oidc/<id>/backchannel-logout`: the provider ends sessions.
    OidcBackchannel,
    /// `GET <p>/factor`: the second factor's prompt.
    FactorPage,
    /// `POST <p>/factor`: a code.
    FactorSubmit,
    /// `GET <p>/factor/enrol`: set up an authenticator app.
    EnrolPage,
    /// `POST <p>/factor/enrol`: its first code.
    EnrolSubmit,
    /// `POST <p>/factor/recovery`: new recovery codes.
    RecoveryRenew,
    /// `GET <p>/factor/passkey.js`: the passkey buttons' script.
    PasskeyScript,
    /// `POST <p>/factor/passkey/register`: creation options.
    PasskeyRegister,
    /// `POST <p>/factor/passkey/register/finish`: the new credential.
    PasskeyRegisterFinish,
    /// `POST <p>/factor/passkey/auth`: request options.
    PasskeyAuth,
    /// `POST <p>/factor/passkey/auth/finish`: the assertion.
    PasskeyAuthFinish,
    /// `POST <p>/factor/passkey/remove`: remove one.
    PasskeyRemove,
    /// `GET <p>/hop`: the login site sends a signed-in browser back with a code.
    HopIssue,
    /// `GET <p>/hop/land`: a code becomes a session here.
    HopLand,
}

impl Endpoint {
    /// Whether the endpoint reads a form body.
    pub(crate) fn reads_form(self) -> bool {
        matches!(
            self,
            Endpoint::LoginSubmit
                | Endpoint::LogoutSubmit
                | Endpoint::OwnSessionRevoke
                | Endpoint::OwnKeyCreate
                | Endpoint::OwnKeyRevoke
                | Endpoint::FactorSubmit
                | Endpoint::EnrolSubmit
                | Endpoint::RecoveryRenew
                | Endpoint::PasskeyRegister
                | Endpoint::PasskeyRegisterFinish
                | Endpoint::PasskeyAuth
                | Endpoint::PasskeyAuthFinish
                | Endpoint::PasskeyRemove
                | Endpoint::OidcBackchannel
        )
    }
}

/// Which endpoint a normalised path under `prefix` is; `None` when the path is
/// not under the prefix at all.
pub(crate) fn route(prefix: &str, method: &Method, path: &str) -> Option<Endpoint> {
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
        ("/keys", _, true) => Endpoint::OwnKeyCreate,
        ("/keys/revoke", _, true) => Endpoint::OwnKeyRevoke,
        ("/factor", true, _) => Endpoint::FactorPage,
        ("/factor", _, true) => Endpoint::FactorSubmit,
        ("/factor/enrol", true, _) => Endpoint::EnrolPage,
        ("/factor/enrol", _, true) => Endpoint::EnrolSubmit,
        ("/factor/recovery", _, true) => Endpoint::RecoveryRenew,
        ("/factor/passkey.js", true, _) => Endpoint::PasskeyScript,
        ("/factor/passkey/register", _, true) => Endpoint::PasskeyRegister,
        ("/factor/passkey/register/finish", _, true) => Endpoint::PasskeyRegisterFinish,
        ("/factor/passkey/auth", _, true) => Endpoint::PasskeyAuth,
        ("/factor/passkey/auth/finish", _, true) => Endpoint::PasskeyAuthFinish,
        ("/factor/passkey/remove", _, true) => Endpoint::PasskeyRemove,
        ("/hop", true, _) => Endpoint::HopIssue,
        ("/hop/land", true, _) => Endpoint::HopLand,
        // Any method: nginx's subrequest keeps the original request's.
        ("/auth/nginx", _, _) => Endpoint::AuthNginx,
        ("/auth/forward", _, _) => Endpoint::AuthForward,
        ("/jwks.json", true, _) => Endpoint::Jwks,
        (r, true, _) if oidc_step(r).is_some_and(|(_, s)| s == "start") => Endpoint::OidcStart,
        (r, true, _) if oidc_step(r).is_some_and(|(_, s)| s == "callback") => {
            Endpoint::OidcCallback
        }
        (r, _, true) if oidc_step(r).is_some_and(|(_, s)| s == "backchannel-logout") => {
            Endpoint::OidcBackchannel
        }
        (
            "/login"
            | "/logout"
            | "/me"
            | "/check"
            | "/sessions"
            | "/sessions/revoke"
            | "/keys"
            | "/keys/revoke"
            | "/factor"
            | "/factor/enrol"
            | "/factor/recovery"
            | "/factor/passkey.js"
            | "/factor/passkey/register"
            | "/factor/passkey/register/finish"
            | "/factor/passkey/auth"
            | "/factor/passkey/auth/finish"
            | "/factor/passkey/remove"
            | "/hop"
            | "/hop/land",
            _,
            _,
        ) => Endpoint::MethodNotAllowed,
        _ => Endpoint::NotFound,
    })
}

/// `/oidc/<id>/<step>` split into its provider id and step.
pub(super) fn oidc_step(rest: &str) -> Option<(&str, &str)> {
    let (id, step) = rest.strip_prefix("/oidc/")?.split_once('/')?;
    (!id.is_empty() && !step.contains('/')).then_some((id, step))
}

impl Auth {
    /// Answer a built-in endpoint. `path` is the request's normalised path,
    /// `form` the request body for the POST endpoints.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn handle<S: SessionStore>(
        &self,
        endpoint: Endpoint,
        req: &RequestHeader,
        path: &str,
        site: Option<Site<'_>>,
        form: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let reply = match endpoint {
            Endpoint::LoginPage => match site.filter(|_| self.hops_from(site)) {
                // Signed in here already: no hop, on to where it was going.
                Some(_) if cur.user().is_some() => {
                    Reply::see_other(&safe_next(query_param(req, "next").as_deref()))
                }
                Some(site) => {
                    let config = sessions.config();
                    self.hop_out(req, site, client, &config.secrets, &config.cookie)
                }
                None => {
                    let next = query_param(req, "next");
                    Reply::html(
                        StatusCode::OK,
                        self.login_page(&self.safe_next(next.as_deref(), client), None, ""),
                    )
                }
            },
            Endpoint::HopIssue => self.hop_issue(req, site, client, cur, sessions).await,
            Endpoint::HopLand => self.hop_land(req, site, client, cur, sessions).await,
            Endpoint::OidcStart => self.oidc_start(req, path, client, sessions).await,
            Endpoint::OidcCallback => self.oidc_callback(req, path, client, cur, sessions).await,
            // From the provider's server: no cookie, no origin to check; the
            // signed logout token is the credential.
            Endpoint::OidcBackchannel => self.backchannel_logout(path, form, sessions).await,
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
            Endpoint::FactorPage => self.factor_page(req, cur, sessions).await,
            Endpoint::EnrolPage => self.enrol_page(req, cur, sessions).await,
            Endpoint::PasskeyScript => match &self.factors {
                Some(f) if f.passkeys.is_some() => Reply {
                    status: StatusCode::OK,
                    content_type: "text/javascript; charset=utf-8",
                    headers: Vec::new(),
                    body: crate::auth::factor::passkeys::SCRIPT.as_bytes().to_vec(),
                },
                _ => Reply::problem(Problem::NotFound),
            },
            Endpoint::FactorSubmit
            | Endpoint::EnrolSubmit
            | Endpoint::RecoveryRenew
            | Endpoint::PasskeyRegister
            | Endpoint::PasskeyRegisterFinish
            | Endpoint::PasskeyAuth
            | Endpoint::PasskeyAuthFinish
            | Endpoint::PasskeyRemove => {
                if !same_origin(req, client.via_trusted_proxy) {
                    return forbidden();
                }
                match endpoint {
                    Endpoint::PasskeyRegister => {
                        self.passkey_register(req, client, cur, sessions).await
                    }
                    Endpoint::PasskeyRegisterFinish => {
                        self.passkey_register_finish(req, form, client, cur, sessions)
                            .await
                    }
                    Endpoint::PasskeyAuth => self.passkey_auth(req, client, cur, sessions).await,
                    Endpoint::PasskeyAuthFinish => {
                        self.passkey_auth_finish(req, form, client, cur, sessions)
                            .await
                    }
                    Endpoint::PasskeyRemove => self.passkey_remove(form, cur).await,
                    Endpoint::FactorSubmit => {
                        self.factor_submit(req, form, client, cur, sessions).await
                    }
                    Endpoint::EnrolSubmit => {
                        self.enrol_submit(req, form, client, cur, sessions).await
                    }
                    _ => self.renew_recovery(cur).await,
                }
            }
            Endpoint::OwnSessions => {
                let keys = match cur.user() {
                    Some(user) => {
                        let mut s = self.own_factors_section(user).await;
                        s.push_str(&self.own_keys_section(user).await);
                        s
                    }
                    None => String::new(),
                };
                crate::auth::own_sessions::list(req, cur, sessions, &self.config.prefix, &keys)
                    .await
            }
            Endpoint::OwnKeyCreate | Endpoint::OwnKeyRevoke => {
                if !same_origin(req, client.via_trusted_proxy) {
                    return forbidden();
                }
                if endpoint == Endpoint::OwnKeyCreate {
                    self.create_own_key(form, cur).await
                } else {
                    self.revoke_own_key(form, cur).await
                }
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
        crate::auth::factor::passkeys::scripted(reply)
    }

    /// Where a sign-in may send the browser on to: a local path, or a host
    /// the routes name with this request's scheme ([`safe_next_among`]).
    pub(super) fn safe_next(&self, next: Option<&str>, client: &Client) -> String {
        safe_next_among(next, &self.config.sites, client.https).into_owned()
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
            headers: {
                let mut h = vec![
                    (names.user.clone(), s.user().unwrap_or_default().to_owned()),
                    (names.roles.clone(), s.roles_header().to_owned()),
                ];
                // Each claim header present, empty when the sign-in
                // recorded none: as the forward-auth answer has them.
                for (header, claim) in &names.claims {
                    h.push((
                        header.clone(),
                        s.claim(claim).unwrap_or_default().to_owned(),
                    ));
                }
                h
            },
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
                "second_factor_at": (s.factor_at != 0).then_some(s.factor_at / 1000),
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
    } else if path.ends_with("/revoke")
        || path.ends_with("/recovery")
        || path.contains("/factor/passkey/")
    {
        "POST"
    } else if path.ends_with("/passkey.js") {
        "GET, HEAD"
    } else {
        "GET, HEAD, POST"
    };
    Reply::problem(Problem::MethodNotAllowed).with(http::header::ALLOW, allow.into())
}

pub(super) fn forbidden() -> Reply {
    tracing::warn!(target: "auth", "cross-origin POST to a built-in endpoint refused");
    Reply::problem(Problem::CrossOrigin)
}

pub(super) fn unavailable(e: &crate::session::StoreError) -> Reply {
    tracing::error!(error = %e, "session store unavailable");
    Reply::problem(Problem::Unavailable)
}

pub(super) fn query_param(req: &RequestHeader, key: &str) -> Option<String> {
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
    fn the_logout_page_is_inert() {
        let html = crate::auth::testing::auth().logout_page();
        assert!(html.contains(r#"action="/.sessiongate/logout""#), "{html}");
        // Its only variable text is the prefix: validation refuses a hostile
        // one, and the page does not rely on that.
        let hostile = crate::auth::testing::auth_at(crate::http::html::HOSTILE).logout_page();
        crate::http::html::assert_inert(&hostile);
    }

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
