//! The sign-in flow with an OpenID Connect provider, as endpoints under the
//! auth prefix: `<p>/oidc/<id>/start` (a sealed pre-login cookie, then off to
//! the provider) and `<p>/oidc/<id>/callback` (the cookie and `state`
//! checked, the code redeemed, the ID token checked, a new session). The
//! provider itself (discovery, keys, token checks) is [`super::Provider`].

use std::sync::Arc;

use http::StatusCode;
use pingora::http::RequestHeader;

use super::prelogin::{self, PreLogin};
use super::{Failure, Provider};
use crate::auth::endpoints::{oidc_step, query_param, unavailable};
use crate::auth::Auth;
use crate::http::problem::Problem;
use crate::http::reply::Reply;
use crate::metrics::METRICS;
use crate::session::cookie::SameSite;
use crate::session::manager::{Client, RequestSession, SessionManager, SignIn};
use crate::session::SessionStore;

/// The session data key that records which provider signed a session in
/// (for RP-initiated logout). The backend sees it in `X-Session-Data`.
pub(crate) const PROVIDER_KEY: &str = "sessiongate.provider";
/// A longer `next` is replaced by `/` rather than carried through the provider.
const MAX_NEXT_LEN: usize = 1024;

fn now_secs() -> u64 {
    crate::session::now_ms() / 1000
}

/// After a sign-in at a provider: [`Reply::onward`], or, when the session
/// cookie is `SameSite=Strict`, always a page that moves on by itself,
/// because a browser does not send a Strict cookie on a redirect chain that
/// began at another site.
fn signed_in(next: &str, same_site: SameSite) -> Reply {
    if same_site == SameSite::Strict {
        Reply::onward_page(next, "Signed in")
    } else {
        Reply::onward(next)
    }
}

impl Auth {
    /// The claims a provider's sign-in (or re-check) records for the
    /// backend: strings (or numbers) as its claims have them.
    pub(crate) fn claims_of_token(
        &self,
        token: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<(String, String)> {
        // An address the provider has not verified is anyone's claim: a
        // backend that links accounts by email must never see one.
        let verified = token.get("email_verified") == Some(&serde_json::Value::Bool(true));
        self.claims_for(|c| match token.get(c)? {
            _ if c == "email" && !verified => None,
            serde_json::Value::String(s) => Some(s.clone()),
            v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
            _ => None,
        })
    }

    /// The pre-login cookie's name when sign-in with a provider is on: it is
    /// ours, so the proxy strips it from requests to upstreams.
    /// The names of the short-lived cookies of sessiongate's own flows
    /// beside a session cookie with `session`'s attributes (the OIDC
    /// pre-login, a pending second factor, a passkey ceremony): never sent
    /// upstream, never set by a backend.
    pub(crate) fn own_cookies(
        &self,
        session: &crate::session::cookie::CookieAttrs,
    ) -> Vec<&'static str> {
        let mut names = Vec::new();
        if !self.providers.is_empty() {
            names.push(prelogin::cookie_name(session));
        }
        if self.factors.is_some() {
            names.extend(crate::auth::factor::cookie_names(session));
        }
        if self.config.cross_domain.is_some() {
            names.push(crate::auth::hop::hop_cookie_name(session));
        }
        names
    }

    pub(crate) fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.options.id == id)
    }

    /// The provider a `<p>/oidc/<id>/...` path names.
    pub(crate) fn provider_at(&self, path: &str) -> Option<&Arc<Provider>> {
        let rest = path.strip_prefix(self.config.prefix.as_str())?;
        self.provider(oidc_step(rest)?.0)
    }

    /// `GET <p>/oidc/<id>/start`: the pre-login cookie, and off to the provider.
    pub(crate) async fn oidc_start<S: SessionStore>(
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
        let mut next = self.safe_next(next.as_deref(), client);
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
    pub(crate) async fn oidc_callback<S: SessionStore>(
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
        let (mapped, refresh_token) = match outcome {
            Ok(signed) => (signed.mapped, signed.refresh_token),
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
        // A second factor required of these roles, and a provider that says
        // whether it asked for one (second_factor_amr/acr): it must have.
        // A provider without those settings is trusted to apply its own policy.
        let claims = &provider.options.factor_claims;
        let speaks = !claims.amr.is_empty() || !claims.acr.is_empty();
        let required = self
            .factors
            .as_ref()
            .is_some_and(|f| f.required_for(&mapped.roles));
        if speaks && required && !mapped.second_factor {
            METRICS.login_failed();
            tracing::warn!(target: "auth", provider = %provider.options.id, user = %mapped.user, "sign-in refused: a second factor is required and the provider did not say it asked for one");
            return Reply::html(
                StatusCode::UNAUTHORIZED,
                self.login_page(
                    &next,
                    Some(&format!(
                        "Sign-in with {} needs a second factor there. Try again.",
                        provider.options.name
                    )),
                    "",
                ),
            )
            .with(http::header::SET_COOKIE, clear);
        }
        let mut data = serde_json::Map::new();
        data.insert(PROVIDER_KEY.to_owned(), provider.options.id.clone().into());
        let user = mapped.user;
        let factor_at = if mapped.second_factor {
            crate::session::now_ms()
        } else {
            0
        };
        let claims = self.claims_of_token(&mapped.id_token);
        // With re-checks, the refresh token, sealed (`finish` refused a
        // sign-in without one).
        let fresh = match (&provider.options.recheck, &refresh_token) {
            (Some(_), Some(rt)) => {
                let sub = mapped.id_token.get("sub").and_then(|v| v.as_str());
                Some(super::fresh::freshness(
                    &sessions.config().secrets,
                    &provider.options.id,
                    &user,
                    sub.unwrap_or_default(),
                    rt,
                ))
            }
            _ => None,
        };
        // The provider's session, for its back-channel logout.
        let provider_session = mapped
            .session
            .filter(|_| provider.options.backchannel_logout);
        if let Some(ps) = &provider_session {
            let lifetime = sessions.config().absolute_timeout;
            if let Err(e) = self.link_provider_session(ps, &user, lifetime).await {
                tracing::error!(target: "auth", error = %e, "sign-in refused: the provider's session could not be recorded for its back-channel logout");
                return unavailable(&e).with(http::header::SET_COOKIE, clear);
            }
        }
        if let Err(e) = sessions
            .login_from(
                cur,
                user.clone(),
                mapped.roles,
                data,
                SignIn {
                    factor_at,
                    provider_session,
                    claims,
                    fresh,
                },
                client,
            )
            .await
        {
            return unavailable(&e).with(http::header::SET_COOKIE, clear);
        }
        METRICS.login_succeeded();
        tracing::info!(target: "auth", user = %user, provider = %provider.options.id, "login succeeded");
        signed_in(&next, sessions.config().cookie.same_site).with(http::header::SET_COOKIE, clear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::html::{assert_inert, HOSTILE};

    #[test]
    fn the_signed_in_page_shows_next_as_text() {
        let reply = signed_in(HOSTILE, SameSite::Strict);
        assert_inert(&String::from_utf8(reply.body).unwrap());
    }
}
