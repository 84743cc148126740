//! The second factor's endpoints under the auth prefix:
//!
//! | endpoint                  | does                                                       |
//! |---------------------------|------------------------------------------------------------|
//! | `GET  <p>/factor`         | the prompt: a pending sign-in's, or a session's step-up    |
//! | `POST <p>/factor`         | checks a code; passed: a new session id, 303 to `next`     |
//!
//! Setting a factor up, new recovery codes and the sessions page's section
//! are [`super::enrol`]; passkeys [`super::passkeys`].
//!
//! Who asks is either a pending sign-in ([`super::pending`], its own cookie)
//! or a signed-in session. Both end the same way when the factor passes: a
//! new session with a new id, stamped with the time (`Session::factor_at`).
//! POSTs are same-origin only (checked by the caller's endpoint table).

use std::time::Duration;

use http::{header, StatusCode};
use pingora::http::RequestHeader;

use super::pending::{self, Pending, Waiting};
use super::{Factors, Verdict, RECENT};
use crate::auth::endpoints::{query_param, unavailable};
use crate::auth::Auth;
use crate::http::html::{card_page, escape, page};
use crate::http::redirect::safe_next;
use crate::http::reply::Reply;
use crate::metrics::METRICS;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::{now_ms, SessionStore};

/// Who is at the factor endpoints.
pub(crate) enum Asker {
    /// A sign-in whose password passed.
    Pending(Pending),
    /// A sign-in with a passkey alone (`passkey_login`): this user of the
    /// users file, proved by the passkey.
    PasskeyOnly(String),
    /// A signed-in session (step-up, enrolment, new codes).
    Session {
        user: String,
        roles: Vec<String>,
        factor_at: u64,
        /// When the session was made (unix ms).
        created_at: u64,
    },
}

impl Asker {
    pub(crate) fn user(&self) -> &str {
        match self {
            Asker::Pending(p) => &p.user,
            Asker::PasskeyOnly(user) | Asker::Session { user, .. } => user,
        }
    }
}

pub(super) fn now_secs() -> u64 {
    now_ms() / 1000
}

impl Auth {
    pub(super) fn factors_or_404(&self) -> Result<&Factors, Reply> {
        self.factors
            .as_ref()
            .ok_or_else(|| Reply::problem(crate::http::problem::Problem::NotFound))
    }

    /// After a correct password: `None` when the sign-in may complete now;
    /// else the reply that starts the second step (a pending cookie and a
    /// redirect to the prompt or to enrolment).
    ///
    /// # Errors
    /// When the credential store fails: the sign-in does not complete.
    pub(crate) async fn second_step(
        &self,
        user: &str,
        roles: &[String],
        next: &str,
        client: &Client,
        cookie: &crate::session::cookie::CookieAttrs,
        secrets: &[crate::session::signing::Secret],
    ) -> Result<Option<Reply>, crate::session::StoreError> {
        let Some(factors) = &self.factors else {
            return Ok(None);
        };
        let waiting = if factors.has_factor(user).await? {
            Waiting::Code
        } else if factors.required_for(roles) {
            Waiting::Enrolment
        } else {
            return Ok(None);
        };
        let timeout = factors.options.pending_timeout;
        let stamp = self
            .users
            .get(user)
            .map(|u| u.password_stamp())
            .unwrap_or_default();
        let p = Pending::new(
            user.to_owned(),
            stamp,
            waiting,
            next.to_owned(),
            now_secs() + timeout.as_secs(),
        );
        let attrs = pending::cookie_attrs(cookie, timeout);
        tracing::info!(target: "auth", user = %user, waiting = ?waiting, "password accepted; second factor pending");
        let to = match waiting {
            Waiting::Code => format!("{}/factor", self.config.prefix),
            Waiting::Enrolment => format!("{}/factor/enrol", self.config.prefix),
        };
        Ok(Some(Reply::see_other(&to).with(
            header::SET_COOKIE,
            attrs.set_cookie(&p.seal(secrets), client.https),
        )))
    }

    /// The pending sign-in this request carries, if valid.
    fn pending<S: SessionStore>(
        &self,
        req: &RequestHeader,
        sessions: &SessionManager<S>,
    ) -> Option<Pending> {
        let factors = self.factors.as_ref()?;
        let attrs =
            pending::cookie_attrs(&sessions.config().cookie, factors.options.pending_timeout);
        let now = now_secs();
        let found = req
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| crate::session::cookie::find(v, &attrs.name))
            .find_map(|v| Pending::open(v, &sessions.config().secrets, now));
        // Still that user, enabled, with the password it was proved with.
        found.filter(|p| {
            self.users
                .get(&p.user)
                .is_some_and(|u| !u.disabled && u.name == p.user && u.password_stamp() == p.stamp)
        })
    }

    pub(crate) fn asker<S: SessionStore>(
        &self,
        req: &RequestHeader,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Option<Asker> {
        // A signed-in session first: a pending cookie beside it was not
        // made by this browser's last sign-in (that ends the session it
        // replaces), so it may be planted.
        if let Some(s) = cur.session.as_deref().filter(|s| s.user().is_some()) {
            let user = s.user()?;
            // Factors belong to users of the users file.
            if self
                .users
                .get(user)
                .is_none_or(|u| u.name != user || u.disabled)
            {
                return None;
            }
            return Some(Asker::Session {
                user: user.to_owned(),
                roles: s.roles().map(str::to_owned).collect(),
                factor_at: s.factor_at,
                created_at: s.created_at,
            });
        }
        self.pending(req, sessions).map(Asker::Pending)
    }

    /// The signed-in user of the users file this session is, and when it
    /// last passed a factor: who may change their own factors.
    pub(crate) fn session_user(&self, cur: &RequestSession) -> Option<(String, u64)> {
        let s = cur.session.as_deref()?;
        let user = s.user()?;
        self.users
            .get(user)
            .filter(|u| u.name == user && !u.disabled)
            .map(|u| (u.name.clone(), s.factor_at))
    }

    fn clear_pending<S: SessionStore>(&self, sessions: &SessionManager<S>, https: bool) -> String {
        let timeout = self
            .factors
            .as_ref()
            .map_or(Duration::from_secs(1), |f| f.options.pending_timeout);
        pending::cookie_attrs(&sessions.config().cookie, timeout).clear_cookie(https)
    }

    pub(super) fn to_login(&self, next: &str) -> Reply {
        let mut location = self.config.login_url.clone();
        location.push_str("?next=");
        crate::http::redirect::encode_next(&mut location, next, None);
        Reply::see_other(&location)
    }

    /// `GET <p>/factor`
    pub(crate) async fn factor_page<S: SessionStore>(
        &self,
        req: &RequestHeader,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let factors = match self.factors_or_404() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let typed_next = safe_next(query_param(req, "next").as_deref()).into_owned();
        match self.asker(req, cur, sessions) {
            Some(Asker::Pending(p)) if p.waiting == Waiting::Enrolment => {
                Reply::see_other(&format!("{}/factor/enrol", self.config.prefix))
            }
            Some(Asker::Pending(p)) => Reply::html(
                StatusCode::OK,
                self.prompt_for(&p.user, &p.next, None).await,
            ),
            Some(Asker::Session { user, .. }) => match factors.has_factor(&user).await {
                Ok(true) => Reply::html(
                    StatusCode::OK,
                    self.prompt_for(&user, &typed_next, None).await,
                ),
                Ok(false) => Reply::see_other(&format!(
                    "{}/factor/enrol?{}",
                    self.config.prefix,
                    next_query(&typed_next)
                )),
                Err(e) => unavailable(&e),
            },
            Some(Asker::PasskeyOnly(_)) | None => self.to_login(&typed_next),
        }
    }

    /// `POST <p>/factor`
    pub(crate) async fn factor_submit<S: SessionStore>(
        &self,
        req: &RequestHeader,
        form: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let factors = match self.factors_or_404() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let (mut code, mut next) = (String::new(), None);
        for (k, v) in form_urlencoded::parse(form) {
            match k.as_ref() {
                "code" => code = v.into_owned(),
                "next" => next = Some(v.into_owned()),
                _ => {}
            }
        }
        let asker = match self.asker(req, cur, sessions) {
            Some(Asker::Pending(p)) if p.waiting == Waiting::Code => Asker::Pending(p),
            Some(a @ Asker::Session { .. }) => a,
            _ => return self.to_login(&safe_next(next.as_deref())),
        };
        let next = match &asker {
            Asker::Pending(p) => p.next.clone(),
            _ => safe_next(next.as_deref()).into_owned(),
        };
        if code.len() > 64 {
            return Reply::html(
                StatusCode::BAD_REQUEST,
                self.prompt_for(asker.user(), &next, Some("That is not a code."))
                    .await,
            );
        }
        let verdict = factors
            .verify(
                asker.user(),
                &code,
                self.config.max_failures,
                self.config.failure_window,
                now_secs(),
            )
            .await;
        match verdict {
            Err(e) => unavailable(&e),
            Ok(Verdict::Throttled) => Reply::html(
                StatusCode::TOO_MANY_REQUESTS,
                self.prompt_for(
                    asker.user(),
                    &next,
                    Some("Too many attempts. Try again later."),
                )
                .await,
            )
            .with(
                header::RETRY_AFTER,
                self.config.failure_window.as_secs().to_string(),
            ),
            Ok(Verdict::Refused) => {
                METRICS.login_failed();
                Reply::html(
                    StatusCode::UNAUTHORIZED,
                    self.prompt_for(asker.user(), &next, Some("That code is not valid."))
                        .await,
                )
            }
            Ok(Verdict::Passed { recovery_left }) => {
                let done = self
                    .factor_passed(asker, Proved::User, &next, client, cur, sessions)
                    .await;
                match recovery_left {
                    // Say how many are left, on a page of its own, once.
                    Some(left) if done.status == StatusCode::SEE_OTHER => {
                        let mut r = Reply::html(
                            StatusCode::OK,
                            card_page(
                                "Recovery code used",
                                &format!(
                                    "<h1>Signed in with a recovery code</h1><p>You have {left} recovery codes left. \
                                     New ones can be made on <a href=\"{p}/sessions\">your sessions page</a>.</p>\
                                     <p><a class=\"button\" href=\"{next}\">Continue</a></p>",
                                    p = escape(&self.config.prefix),
                                    next = escape(&next),
                                ),
                            ),
                        );
                        r.headers = done
                            .headers
                            .into_iter()
                            .filter(|(n, _)| n != header::LOCATION)
                            .collect();
                        r
                    }
                    _ => done,
                }
            }
        }
    }

    /// The factor passed for `asker`: a new session (new id) stamped now,
    /// the pending cookie spent and cleared; 303 to `next`.
    pub(crate) async fn factor_passed<S: SessionStore>(
        &self,
        asker: Asker,
        proved: Proved,
        next: &str,
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let Some(factors) = &self.factors else {
            return self.to_login(next);
        };
        let now = now_ms();
        // Setting up a factor from a session proves the new factor, not the
        // person: the session keeps what it had (a step-up route asks again).
        let factor_at = match (&asker, proved) {
            (Asker::Session { factor_at, .. }, Proved::NewFactor) => *factor_at,
            _ => now,
        };
        // Only a step-up carries on a provider's re-checks: a password
        // sign-in of the same name is a sign-in of its own.
        let step_up = matches!(asker, Asker::Session { .. });
        let (user, roles, data) = match asker {
            Asker::Pending(p) => {
                match factors.spend(&p.nonce).await {
                    Ok(true) => {}
                    // A copy of the cookie already completed this sign-in.
                    Ok(false) => {
                        return self.to_login(next).with(
                            header::SET_COOKIE,
                            self.clear_pending(sessions, client.https),
                        )
                    }
                    Err(e) => return unavailable(&e),
                }
                // The users file may have changed since the password.
                match self.users.get(&p.user).filter(|u| !u.disabled) {
                    Some(u) => (u.name.clone(), u.roles.clone(), serde_json::Map::new()),
                    None => {
                        return self.to_login(next).with(
                            header::SET_COOKIE,
                            self.clear_pending(sessions, client.https),
                        )
                    }
                }
            }
            Asker::PasskeyOnly(user) => match self.users.get(&user).filter(|u| !u.disabled) {
                Some(u) => (u.name.clone(), u.roles.clone(), serde_json::Map::new()),
                None => return self.to_login(next),
            },
            Asker::Session { user, roles, .. } => {
                let data = cur.session.as_deref().map(|s| s.data()).unwrap_or_default();
                (user, roles, data)
            }
        };
        // A factor passed from a session (a step-up after a provider's
        // sign-in) keeps what that sign-in proved: the provider's session,
        // the user's claims, its refresh token. A sign-in that began here
        // has none.
        let (provider_session, claims, fresh) = match cur.session.as_deref() {
            Some(s) if s.user() == Some(user.as_str()) => (
                s.provider_session.as_deref().cloned(),
                s.claims
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                s.fresh.as_deref().cloned().filter(|_| step_up),
            ),
            _ => (None, Vec::new(), None),
        };
        let sign_in = crate::session::manager::SignIn {
            factor_at,
            provider_session,
            claims,
            fresh,
        };
        if let Err(e) = sessions
            .login_from(cur, user.clone(), roles, data, sign_in, client)
            .await
        {
            return unavailable(&e);
        }
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, "second factor passed");
        Reply::onward(next).with(
            header::SET_COOKIE,
            self.clear_pending(sessions, client.https),
        )
    }

    /// The prompt for `user`'s factors: the code form when they have an
    /// authenticator app (or only recovery codes), a passkey button when
    /// they have passkeys.
    async fn prompt_for(&self, user: &str, next: &str, error: Option<&str>) -> String {
        let record = match &self.factors {
            Some(f) => f.record(user).await.ok().flatten(),
            None => None,
        };
        let passkey = self.factors.as_ref().is_some_and(|f| f.passkeys.is_some())
            && record.as_ref().is_some_and(|r| !r.passkeys.is_empty());
        let code = record.as_ref().is_none_or(|r| r.totp.is_some() || !passkey);
        self.prompt(next, error, code, passkey)
    }

    fn prompt(&self, next: &str, error: Option<&str>, code: bool, passkey: bool) -> String {
        let error = error.map_or(String::new(), |e| {
            format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
        });
        let passkey = if passkey {
            format!(
                r#"<p><button type="button" data-passkey="authenticate" data-next="{next}">Use a passkey</button></p>
<p class="error" role="alert" id="passkey-error" hidden></p>
{script}
"#,
                next = escape(next),
                script = super::passkeys::script_tag(&self.config.prefix),
            )
        } else {
            String::new()
        };
        let form = format!(
            r#"<p>Enter the code from your authenticator app, or one of your recovery codes.</p>
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="code">Code</label>
<input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" autocapitalize="none" spellcheck="false" maxlength="64" required{focus}>
<button type="submit">Verify</button>
</form>"#,
            action = escape(&format!("{}/factor", self.config.prefix)),
            next = escape(next),
            focus = if passkey.is_empty() { " autofocus" } else { "" },
        );
        let form = if code {
            form
        } else {
            // Recovery codes still work for a passkey-only user who lost it.
            format!("<details><summary>Use a recovery code</summary>{form}</details>")
        };
        page(
            "Second factor",
            &format!("<h1>Second factor</h1>{error}\n{passkey}{form}"),
        )
    }
}

/// What a passed factor proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proved {
    /// The user: a code or a passkey they already had.
    User,
    /// A factor just set up: its owner holds it, whoever they are.
    NewFactor,
}

/// Whether `at` (unix ms; 0: never) is recent enough for the factor's own
/// pages ([`RECENT`]).
pub(crate) fn recent(at: u64) -> bool {
    at != 0 && now_ms().saturating_sub(at) <= RECENT.as_millis() as u64
}

/// `next=<next>`, encoded.
pub(super) fn next_query(next: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish()
}
