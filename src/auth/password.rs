//! The password login: `POST <prefix>/login` against the users file, and the
//! login page that carries its form (and a button per OIDC provider).
//!
//! Failures have one shape: an unknown user, a disabled user and a wrong
//! password get the same status, body and cookies, in the same time (unknown
//! users are checked against a dummy hash). Attempts are throttled per canonical
//! user name and per client IP; hashing runs off the async workers, at idle
//! CPU priority ([`hashing`]), behind a bounded semaphore. POSTs from another origin get 403 (OWASP CSRF: verify
//! `Origin`, or failing that `Referer`).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use pingora::http::RequestHeader;

use super::endpoints::{forbidden, unavailable};
use super::hashing;
use super::users::{self, MAX_PASSWORD_LEN};
use super::Auth;
use crate::http::html::{escape, page};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::http::reply::Reply;
use crate::metrics::METRICS;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::SessionStore;

/// How long a login waits for a hashing slot before 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Why a password check gave no user.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PasswordRefusal {
    /// Too many failures for this name or address: try again after this.
    Throttled(Duration),
    /// Every hashing slot stayed busy: 503.
    Busy,
    /// The directory (`[auth.ldap]`) could not be asked: 503.
    Unavailable,
    /// An unknown user, a disabled user or a wrong password: one answer for all.
    Invalid,
}

/// Who a password proved: the user, roles and claims for the backend.
#[derive(Debug)]
pub(crate) struct Proved {
    pub user: String,
    pub roles: Vec<String>,
    pub claims: Vec<(String, String)>,
}

/// A lockout, counted and logged wherever a credential meets it.
fn throttled(retry: Duration) -> PasswordRefusal {
    METRICS.logins_throttled.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "auth", "login throttled");
    PasswordRefusal::Throttled(retry)
}

impl Auth {
    pub(super) async fn submit_login<S: SessionStore>(
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
        let next = self.safe_next(next.as_deref(), client);
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
        if !self.takes_passwords() {
            return Reply::problem(Problem::NotFound);
        }
        if password.len() > MAX_PASSWORD_LEN {
            // Refused before hashing: a huge password must not buy a huge hash.
            return Reply::html(
                StatusCode::BAD_REQUEST,
                self.login_page(&next, Some("That password is too long."), &username),
            );
        }
        let Proved {
            user,
            roles,
            claims,
        } = match self.check_password(&username, password, client.ip).await {
            Ok(found) => found,
            Err(PasswordRefusal::Throttled(retry)) => {
                return self.locked_out(&next, retry, &username)
            }
            Err(PasswordRefusal::Busy) => {
                return Reply::problem(Problem::Unavailable)
                    .with(http::header::RETRY_AFTER, "1".into())
            }
            Err(PasswordRefusal::Unavailable) => {
                return Reply::html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.login_page(
                        &next,
                        Some("The directory cannot be reached right now. Try again later."),
                        &username,
                    ),
                )
                .with(http::header::RETRY_AFTER, "5".into())
            }
            Err(PasswordRefusal::Invalid) => {
                return Reply::html(
                    StatusCode::UNAUTHORIZED,
                    self.login_page(&next, Some("Invalid username or password."), &username),
                )
            }
        };
        let cookie = &sessions.config().cookie;
        let secrets = &sessions.config().secrets;
        match self
            .second_step(&user, &roles, &next, client, cookie, secrets)
            .await
        {
            Ok(Some(reply)) => {
                // A sign-in as someone (else) ends the session it replaces
                // now: a pending sign-in never sits beside a session.
                if cur.user().is_some() {
                    if let Err(e) = sessions.logout(cur).await {
                        return unavailable(&e);
                    }
                }
                return reply;
            }
            Ok(None) => {}
            Err(e) => return unavailable(&e),
        }
        let sign_in = crate::session::manager::SignIn {
            claims,
            ..Default::default()
        };
        if let Err(e) = sessions
            .login_from(
                cur,
                user.clone(),
                roles,
                serde_json::Map::new(),
                sign_in,
                client,
            )
            .await
        {
            return unavailable(&e);
        }
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, "login succeeded");
        Reply::onward(&next)
    }

    /// Check `password` for the user typed as `username` against the users
    /// file: throttled per canonical name and per client address, hashed off
    /// the workers behind the hashing slots. Every credential that carries a
    /// password (the login form, Basic) comes here, so they share one
    /// throttle and one failure shape. Returns the user's name and roles.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> Result<Proved, PasswordRefusal> {
        let user_slot = self
            .by_user
            .begin(users::canonical_name(username))
            .map_err(throttled)?;
        // Each slot is given back when dropped, unless the password failed.
        let ip_slot = ip
            .map(|ip| self.by_ip.begin(ip))
            .transpose()
            .map_err(throttled)?;
        let users = self.users();
        // The users file decides for the names it has; the directory for the
        // rest (without a hashing slot: its round trips must not hold one).
        let checked = match &self.directory {
            Some(dir) if users.get(username).is_none() => {
                let wanted: Vec<&str> = self.config.identity.wanted().collect();
                match dir
                    .check(&users::canonical_name(username), &password, &wanted)
                    .await
                {
                    // A directory account may not be a users-file user under
                    // another spelling the directory's filter matched.
                    super::ldap::Checked::User(name, ..) if users.get(&name).is_some() => {
                        tracing::warn!(target: "auth", "a directory account named like a users-file user was refused");
                        None
                    }
                    super::ldap::Checked::User(name, roles, attributes) => {
                        let claims = self.claims_for(|c| {
                            attributes
                                .iter()
                                .find(|(k, _)| k == c)
                                .map(|(_, v)| v.clone())
                        });
                        Some(Proved {
                            user: name,
                            roles,
                            claims,
                        })
                    }
                    super::ldap::Checked::Invalid => None,
                    // Not a failed password: the slots are given back.
                    super::ldap::Checked::Unavailable => return Err(PasswordRefusal::Unavailable),
                }
            }
            _ => {
                let Ok(Ok(_permit)) =
                    tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.acquire()).await
                else {
                    return Err(PasswordRefusal::Busy);
                };
                let (dummy, typed) = (self.dummy_hash.clone(), username.to_owned());
                hashing::off_the_workers(move || {
                    users::check(&users, &dummy, &typed, password.as_bytes()).map(|u| Proved {
                        user: u.name.clone(),
                        roles: u.roles.clone(),
                        claims: Vec::new(),
                    })
                })
                .await
                .flatten()
            }
        };
        let Some(found) = checked else {
            // The slots stay taken: they are the failures the throttle counts.
            user_slot.failed();
            if let Some(a) = ip_slot {
                a.failed();
            }
            METRICS.login_failed();
            tracing::info!(target: "auth", "login failed");
            return Err(PasswordRefusal::Invalid);
        };
        Ok(found)
    }

    /// Whether the login form takes passwords: a users file, or a directory.
    pub(crate) fn takes_passwords(&self) -> bool {
        self.config.users_file.is_some() || self.directory.is_some()
    }

    /// Whether `username` or `ip` is locked out now, taking no slot (see
    /// [`super::throttle::Throttle::locked`]).
    pub(crate) fn locked_out_now(
        &self,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), PasswordRefusal> {
        let locked = self
            .by_user
            .locked(&users::canonical_name(username))
            .or_else(|| ip.and_then(|ip| self.by_ip.locked(&ip)));
        match locked {
            Some(retry) => Err(throttled(retry)),
            None => Ok(()),
        }
    }

    /// A lockout looks like a failure with a `Retry-After`, whatever the password.
    fn locked_out(&self, next: &str, retry: Duration, username: &str) -> Reply {
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
    pub(super) fn login_page(&self, next: &str, error: Option<&str>, username: &str) -> String {
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
        let password = if self.takes_passwords() {
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
        // A passkey alone, where the operator allows it (`passkey_login`).
        let passkey = match self.factors.as_ref().and_then(|f| f.passkeys.as_ref()) {
            Some(p) if p.login => format!(
                r#"<p><button type="button" class="provider" data-passkey="authenticate" data-next="{next}">Sign in with a passkey</button></p>
<p class="error" role="alert" id="passkey-error" hidden></p>
{script}
"#,
                next = escape(next),
                script = super::factor::passkeys::script_tag(&self.config.prefix),
            ),
            _ => String::new(),
        };
        page(
            "Sign in",
            &format!("<h1>Sign in</h1>{error}\n{passkey}{providers}{password}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::testing::auth;
    use crate::http::html::{assert_inert, HOSTILE};

    #[test]
    fn the_login_page_shows_what_was_typed_as_text() {
        let html = auth().login_page(HOSTILE, Some(HOSTILE), HOSTILE);
        assert_inert(&html);
    }
}
