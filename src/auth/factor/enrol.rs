//! Setting a second factor up, under the auth prefix:
//!
//! | endpoint                  | does                                                       |
//! |---------------------------|------------------------------------------------------------|
//! | `GET  <p>/factor/enrol`   | a new authenticator secret: QR code, text, a code to confirm |
//! | `POST <p>/factor/enrol`   | saves it and shows ten recovery codes, once                |
//! | `POST <p>/factor/recovery`| new recovery codes (after a recent factor)                 |
//!
//! and the sessions page's section on a user's sign-in methods. Who may set
//! a factor up is [`Auth::may_enrol`]: a pending enrolment, or a recent
//! sign-in. Passing ends as for the prompt ([`super::pages`]), except that
//! a factor set up from a session proves the factor, not the person.

use http::{header, StatusCode};
use pingora::http::RequestHeader;

use super::pages::{next_query, now_secs, recent, Asker, Proved};
use super::pending::Waiting;
use super::{Factors, Verdict};
use crate::auth::endpoints::{query_param, unavailable};
use crate::auth::Auth;
use crate::http::html::{card_page, date, escape, page};
use crate::http::redirect::safe_next;
use crate::http::reply::Reply;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::SessionStore;

impl Auth {
    /// `GET <p>/factor/enrol`
    pub(crate) async fn enrol_page<S: SessionStore>(
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
        let (user, next) = match self.may_enrol(req, cur, sessions).await {
            Ok((user, next)) => (user, next.unwrap_or(typed_next)),
            Err(reply) => return reply,
        };
        let expires = now_secs() + factors.options.pending_timeout.as_secs().max(300);
        let (secret, sealed) = factors.enrolment(&user, expires);
        Reply::html(
            StatusCode::OK,
            self.enrol_form(&user, &secret, &sealed, expires, &next, None),
        )
    }

    /// Who may enrol now, and the pending sign-in's `next`: a pending
    /// enrolment, or a signed-in user of the users file who has no factor
    /// yet or passed theirs within [`RECENT`].
    pub(crate) async fn may_enrol<S: SessionStore>(
        &self,
        req: &RequestHeader,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Result<(String, Option<String>), Reply> {
        let factors = self.factors_or_404()?;
        match self.asker(req, cur, sessions) {
            // A pending enrolment, while the user still has no factor (one
            // set up since must not be replaced with it).
            Some(Asker::Pending(p)) if p.waiting == Waiting::Enrolment => {
                match factors.has_factor(&p.user).await {
                    Ok(false) => Ok((p.user, Some(p.next))),
                    Ok(true) => Err(self.to_login(&p.next)),
                    Err(e) => Err(unavailable(&e)),
                }
            }
            Some(Asker::Session {
                user,
                factor_at,
                created_at,
                ..
            }) => {
                match factors.has_factor(&user).await {
                    // A first factor from a recent sign-in only: a stolen,
                    // older session must not set up the thief's factor.
                    Ok(false) if recent(created_at) => Ok((user, None)),
                    Ok(false) => {
                        Err(self.to_login(&format!("{}/factor/enrol", self.config.prefix)))
                    }
                    Ok(true) if recent(factor_at) => Ok((user, None)),
                    Ok(true) => Err(Reply::see_other(&format!(
                        "{p}/factor?{q}",
                        p = self.config.prefix,
                        q = next_query(&format!("{}/factor/enrol", self.config.prefix))
                    ))),
                    Err(e) => Err(unavailable(&e)),
                }
            }
            _ => Err(self.to_login(&format!("{}/factor/enrol", self.config.prefix))),
        }
    }

    fn enrol_form(
        &self,
        user: &str,
        secret: &[u8],
        sealed: &str,
        expires: u64,
        next: &str,
        error: Option<&str>,
    ) -> String {
        let Some(factors) = &self.factors else {
            return String::new();
        };
        let url = super::totp::url(secret, &factors.options.issuer, user);
        let error = error.map_or(String::new(), |e| {
            format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
        });
        let passkey = if factors.passkeys.is_some() {
            format!(
                r#"<h2>A passkey</h2>
<p>Your device's screen lock, fingerprint or face, or a security key.</p>
<label for="passkey-name">Name</label>
<input id="passkey-name" maxlength="64" placeholder="laptop">
<button type="button" data-passkey="register" data-name-input="passkey-name">Add a passkey</button>
<p class="error" role="alert" id="passkey-error" hidden></p>
{script}
<h2>Or an authenticator app</h2>
"#,
                script = super::passkeys::script_tag(&self.config.prefix),
            )
        } else {
            String::new()
        };
        page(
            "Set up a second factor",
            &format!(
                r#"<h1>Set up a second factor</h1>{error}
{passkey}<p>Scan this code with your authenticator app, or type the key into it.</p>
<figure class="qr">{qr}</figure>
<p><small>Key</small><br><code id="totp-secret">{text}</code></p>
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<input type="hidden" name="sealed" value="{sealed}">
<input type="hidden" name="expires" value="{expires}">
<label for="code">Code from the app</label>
<input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="6" required autofocus>
<button type="submit">Confirm</button>
</form>"#,
                // The SVG is the qrcode crate's, made from the URL: no text of ours in it.
                qr = super::totp::qr_svg(&url),
                text = escape(&super::totp::base32(secret)),
                action = escape(&format!("{}/factor/enrol", self.config.prefix)),
                next = escape(next),
                sealed = escape(sealed),
            ),
        )
    }

    /// `POST <p>/factor/enrol`
    pub(crate) async fn enrol_submit<S: SessionStore>(
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
        let (mut code, mut sealed, mut expires, mut next) =
            (String::new(), String::new(), 0u64, None);
        for (k, v) in form_urlencoded::parse(form) {
            match k.as_ref() {
                "code" => code = v.into_owned(),
                "sealed" => sealed = v.into_owned(),
                "expires" => expires = v.parse().unwrap_or(0),
                "next" => next = Some(v.into_owned()),
                _ => {}
            }
        }
        let (user, pending_next) = match self.may_enrol(req, cur, sessions).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let next = pending_next.unwrap_or_else(|| safe_next(next.as_deref()).into_owned());
        let now = now_secs();
        let enrolled = factors
            .enrol(
                &user,
                &sealed,
                expires,
                &code,
                self.config.max_failures,
                self.config.failure_window,
                now,
            )
            .await;
        let codes = match enrolled {
            Err(e) => return unavailable(&e),
            Ok(Ok(codes)) => codes,
            Ok(Err(verdict)) => {
                let (status, msg) = match verdict {
                    Verdict::Throttled => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many attempts. Try again later.",
                    ),
                    _ => (
                        StatusCode::UNAUTHORIZED,
                        "That code did not match. Check the app's clock and try the next code.",
                    ),
                };
                // The same secret again while the form is fresh (it is in the
                // user's app already); a new one once it is stale.
                let (secret, sealed, expires) =
                    match factors.enrolling(&user, &sealed, expires, now) {
                        Some(secret) => (secret, sealed, expires),
                        None => {
                            let expires = now + factors.options.pending_timeout.as_secs().max(300);
                            let (secret, sealed) = factors.enrolment(&user, expires);
                            (secret, sealed, expires)
                        }
                    };
                return Reply::html(
                    status,
                    self.enrol_form(&user, &secret, &sealed, expires, &next, Some(msg)),
                );
            }
        };
        let asker = match self.asker(req, cur, sessions) {
            Some(a) => a,
            None => return self.to_login(&next),
        };
        let done = self
            .factor_passed(asker, Proved::NewFactor, &next, client, cur, sessions)
            .await;
        if done.status != StatusCode::SEE_OTHER {
            return done;
        }
        let mut r = self.codes_page("Authenticator app set up", &codes, &next);
        r.headers = done
            .headers
            .into_iter()
            .filter(|(n, _)| n != header::LOCATION)
            .collect();
        r
    }

    /// `POST <p>/factor/recovery`: new codes, after a recent factor.
    pub(crate) async fn renew_recovery(&self, cur: &RequestSession) -> Reply {
        let factors = match self.factors_or_404() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let Some((user, factor_at)) = self.session_user(cur) else {
            return self.to_login(&format!("{}/sessions", self.config.prefix));
        };
        let user = user.as_str();
        if !recent(factor_at) {
            return Reply::see_other(&format!(
                "{}/factor?{}",
                self.config.prefix,
                next_query(&format!("{}/sessions", self.config.prefix))
            ));
        }
        match factors.renew_recovery(user, now_secs()).await {
            Ok(Some(codes)) => self.codes_page(
                "New recovery codes",
                &codes,
                &format!("{}/sessions", self.config.prefix),
            ),
            Ok(None) => Reply::see_other(&format!("{}/factor/enrol", self.config.prefix)),
            Err(e) => unavailable(&e),
        }
    }

    fn codes_page(&self, title: &str, codes: &[String], next: &str) -> Reply {
        let items: String = codes
            .iter()
            .map(|c| format!("<li><code>{}</code></li>", escape(c)))
            .collect();
        Reply::html(
            StatusCode::OK,
            card_page(
                title,
                &format!(
                    r#"<h1>{title}</h1>
<p>Keep these recovery codes somewhere safe: each signs you in once if you lose your authenticator. They are shown only this once.</p>
<ol class="recovery-codes">{items}</ol>
<p><a class="button" href="{next}">Continue</a></p>"#,
                    title = escape(title),
                    next = escape(next),
                ),
            ),
        )
    }

    /// The sessions page's section on the user's sign-in methods; empty when
    /// the second factor is off or the user is not of the users file.
    pub(crate) async fn own_factors_section(&self, user: &str) -> String {
        let Some(factors) = &self.factors else {
            return String::new();
        };
        if self.users.get(user).is_none_or(|u| u.name != user) {
            return String::new();
        }
        let prefix = escape(&self.config.prefix);
        let record = match factors.record(user).await {
            Ok(r) => r.filter(|r| r.has_factor()),
            Err(_) => {
                return "<h2>Sign-in methods</h2><p>Your sign-in methods cannot be listed right now.</p>"
                    .to_owned()
            }
        };
        let passkeys = match (&record, factors.passkeys.is_some()) {
            (Some(r), true) => r
                .passkeys
                .iter()
                .map(|p| {
                    format!(
                        r#"<li><div><strong>Passkey</strong> {name}<br><small>added {made} · used {used}</small></div><form method="post" action="{prefix}/factor/passkey/remove"><input type="hidden" name="id" value="{id}"><button type="submit" class="secondary">Remove</button></form></li>
"#,
                        name = escape(&p.name),
                        made = date(p.created_at * 1000),
                        used = p.last_used_at.map_or_else(|| "never".to_owned(), |t| date(t * 1000)),
                        id = escape(&p.id),
                    )
                })
                .collect::<String>(),
            _ => String::new(),
        };
        let add = if factors.passkeys.is_some() {
            "Add a passkey or an authenticator app"
        } else {
            "Set up an authenticator app"
        };
        let body = match record {
            Some(r) => format!(
                r#"<ul class="factors">
<li><div><strong>Password</strong></div></li>
{app}{passkeys}<li><div><strong>Recovery codes</strong><br><small id="recovery-left">{left} left</small></div><form method="post" action="{prefix}/factor/recovery"><button type="submit" class="secondary">New codes</button></form></li>
</ul>
<p><a class="button secondary" href="{prefix}/factor/enrol">{add}</a></p>"#,
                app = r.totp.as_ref().map_or_else(String::new, |t| format!(
                    r#"<li><div><strong>Authenticator app</strong><br><small>set up {}</small></div></li>
"#,
                    date(t.created_at * 1000)
                )),
                left = r.recovery.len(),
            ),
            None => format!(
                r#"<ul class="factors">
<li><div><strong>Password</strong></div></li>
</ul>
<p><a class="button" href="{prefix}/factor/enrol">{add}</a></p>"#
            ),
        };
        format!("<h2>Sign-in methods</h2>\n{body}\n")
    }
}

impl Factors {
    /// The secret of an enrolment form still fresh at `now`, to show again.
    pub(crate) fn enrolling(
        &self,
        user: &str,
        sealed: &str,
        expires: u64,
        now: u64,
    ) -> Option<Vec<u8>> {
        (now < expires)
            .then(|| {
                self.sealer
                    .open(sealed, &super::enrol_context(user, expires))
            })
            .flatten()
            .map(|o| o.plain)
    }
}
