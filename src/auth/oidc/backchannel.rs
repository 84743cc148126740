//! OpenID Connect Back-Channel Logout 1.0: the provider ends sessions here.
//!
//! A sign-in through a provider with `backchannel_logout = true` records
//! the provider's `sub` and `sid` with the session
//! ([`crate::session::ProviderSession`]), and links each, hashed, to the user
//! in the credential store ([`crate::session::credentials::Home::link`]) for
//! the session's absolute lifetime: a logout token finds the user's sessions
//! through the user index, never by a scan.
//!
//! `POST <p>/oidc/<id>/backchannel-logout` takes `logout_token` (a form field,
//! from the provider's server, with no cookie or origin to check). The token
//! is checked as a bearer JWT of that provider is ([`super::super::jwt`]: the
//! provider's keys and allow-listed algorithms, `iss`, this client as `aud`,
//! `exp`), then as the spec asks: `iat` present and not in the future, the
//! back-channel `events` member, `sid` and/or `sub`, no `nonce` (an ID token
//! is not a logout token), and a `jti` never seen before (spent in the
//! credential store, on every instance). Then every session of that provider
//! session ends (with `sid`), or of that subject (with `sub` alone), each with
//! the rest of its sign-in on other domains ([`SessionManager::end_login`]);
//! the other instances hear of it as of any revocation. 200 with `no-store`;
//! a refused token is 400 `{"error":"invalid_request"}` and changes nothing.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{OidcOptions, LEEWAY};
use crate::auth::jwt::{Issuer, JwtOptions};
use crate::auth::Auth;
use crate::http::reply::Reply;
use crate::session::manager::SessionManager;
use crate::session::{ProviderSession, SessionStore};

/// The member of `events` that makes a JWT a logout token.
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Longest `sub` or `sid` kept: longer ones are not recorded.
const MAX_ID_LEN: usize = 255;
/// How long a `jti` is remembered: past this a token's `iat` is too old.
const JTI_REMEMBERED: Duration = Duration::from_secs(600);

/// The checks of `options`' logout tokens.
///
/// # Errors
/// If the HTTP client for its keys cannot be built, or an algorithm is unknown.
pub(crate) fn verifier(options: &OidcOptions) -> Result<Issuer, String> {
    let algorithms = options
        .algorithms
        .iter()
        .map(|a| a.parse().map_err(|_| format!("algorithm {a:?}")))
        .collect::<Result<_, _>>()?;
    Issuer::new(JwtOptions {
        id: options.id.clone(),
        issuer: options.issuer.clone(),
        jwks_url: None,
        audiences: vec![options.client_id.clone()],
        algorithms,
        claims: options.claims.clone(),
    })
}

/// The provider session an ID token's claims name, if it has a `sub`.
pub(crate) fn provider_session(
    provider: &str,
    claims: &Map<String, Value>,
) -> Option<ProviderSession> {
    let id = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
            .map(str::to_owned)
    };
    Some(ProviderSession {
        provider: provider.to_owned(),
        sub: id("sub")?,
        sid: id("sid"),
    })
}

/// The credential store's link for a provider's `kind` (`sub`, `sid`) of value `v`.
fn link(provider: &str, kind: &str, v: &str) -> String {
    format!(
        "oidc:{provider}:{kind}:{}",
        hex::encode(Sha256::digest(v.as_bytes()))
    )
}

/// What a logout token names.
#[derive(Debug, PartialEq, Eq)]
struct Named {
    sub: Option<String>,
    sid: Option<String>,
    jti: String,
}

/// The spec's checks past the signature, `iss`, `aud` and `exp`.
fn named(claims: &Map<String, Value>, now: u64) -> Result<Named, &'static str> {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let iat = claims.get("iat").and_then(Value::as_u64).ok_or("no iat")?;
    if iat > now + LEEWAY.as_secs() {
        return Err("issued in the future");
    }
    if now.saturating_sub(iat) > JTI_REMEMBERED.as_secs() {
        return Err("issued too long ago");
    }
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err("no back-channel logout event");
    }
    if claims.contains_key("nonce") {
        return Err("a nonce: an ID token, not a logout token");
    }
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err("neither sub nor sid");
    }
    let jti = text("jti").filter(|j| !j.is_empty()).ok_or("no jti")?;
    Ok(Named { sub, sid, jti })
}

impl Auth {
    /// After a sign-in through `provider`: link its subject and session to
    /// `user` for `lifetime`.
    ///
    /// # Errors
    /// When the credential store fails: the sign-in must not stand, since
    /// the provider could not end it.
    pub(crate) async fn link_provider_session(
        &self,
        ps: &ProviderSession,
        user: &str,
        lifetime: Duration,
    ) -> Result<(), crate::session::StoreError> {
        let Some(home) = self.api_keys.as_ref().map(|k| k.home()) else {
            return Ok(());
        };
        let mut links = vec![link(&ps.provider, "sub", &ps.sub)];
        links.extend(ps.sid.as_deref().map(|sid| link(&ps.provider, "sid", sid)));
        for l in links {
            home.link(&l, user, lifetime).await?;
        }
        Ok(())
    }

    /// `POST <p>/oidc/<id>/backchannel-logout`.
    pub(crate) async fn backchannel_logout<S: SessionStore>(
        &self,
        path: &str,
        form: &[u8],
        sessions: &SessionManager<S>,
    ) -> Reply {
        let Some(provider) = self
            .provider_at(path)
            .filter(|p| p.options.backchannel_logout)
        else {
            return Reply::problem(crate::http::problem::Problem::NotFound);
        };
        let (Some(verifier), Some(home)) = (
            provider.logout_tokens.as_ref(),
            self.api_keys.as_ref().map(|k| k.home()),
        ) else {
            return Reply::problem(crate::http::problem::Problem::NotFound);
        };
        let id = &provider.options.id;
        let token = form_urlencoded::parse(form)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let now = crate::session::now_ms() / 1000;
        let checked = match verifier.verified_claims(&token).await {
            Ok(claims) => named(&claims, now).map_err(str::to_owned),
            Err(e) => Err(e),
        };
        let named = match checked {
            Ok(n) => n,
            Err(why) => {
                tracing::warn!(target: "auth", provider = %id, reason = %why, "back-channel logout token refused");
                return invalid();
            }
        };
        match home
            .first_use(&format!("bcl:{id}:{}", named.jti), JTI_REMEMBERED * 2)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(target: "auth", provider = %id, "back-channel logout token refused: replayed");
                return invalid();
            }
            Err(e) => return super::super::endpoints::unavailable(&e),
        }
        match self.end_provider_sessions(id, &named, sessions).await {
            Ok((user, n)) => {
                tracing::info!(target: "auth", provider = %id, user = user.as_deref().unwrap_or("-"), ended = n, "back-channel logout");
                Reply::json(StatusCode::OK, "{}".into())
                    .with(http::header::CACHE_CONTROL, "no-store".into())
            }
            Err(e) => super::super::endpoints::unavailable(&e),
        }
    }

    /// End the sessions a logout token names: its `sid`'s (and, with a `sub`,
    /// that subject's sessions that recorded no `sid`), or with `sub` alone
    /// every session of that subject. The user, and how many ended.
    async fn end_provider_sessions<S: SessionStore>(
        &self,
        provider: &str,
        named: &Named,
        sessions: &SessionManager<S>,
    ) -> Result<(Option<String>, usize), crate::session::StoreError> {
        let Some(home) = self.api_keys.as_ref().map(|k| k.home()) else {
            return Ok((None, 0));
        };
        let by = match (&named.sid, &named.sub) {
            (Some(sid), _) => link(provider, "sid", sid),
            (None, Some(sub)) => link(provider, "sub", sub),
            (None, None) => return Ok((None, 0)),
        };
        let mut user = home.linked(&by).await?;
        if user.is_none() {
            if let (Some(_), Some(sub)) = (&named.sid, &named.sub) {
                user = home.linked(&link(provider, "sub", sub)).await?;
            }
        }
        let Some(user) = user else {
            return Ok((None, 0));
        };
        let mut n = 0;
        for s in sessions.store().list_user(&user).await? {
            let Some(ps) = s
                .provider_session
                .as_deref()
                .filter(|ps| ps.provider == provider)
            else {
                continue;
            };
            let sub_matches = named.sub.as_deref().is_none_or(|sub| sub == ps.sub);
            let matches = match (&named.sid, &ps.sid) {
                (Some(sid), Some(own)) => sid == own && sub_matches,
                // The ID token had no sid: the subject decides.
                (Some(_), None) => named.sub.is_some() && sub_matches,
                (None, _) => sub_matches,
            };
            if matches {
                n += sessions.end_login(&s).await?;
            }
        }
        Ok((Some(user), n))
    }
}

fn invalid() -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        r#"{"error":"invalid_request"}"#.into(),
    )
    .with(http::header::CACHE_CONTROL, "no-store".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_logout_token_has_the_event_an_id_and_no_nonce() {
        let now = 1_000_000;
        let good = serde_json::json!({"iat": now, "jti": "j1", "sub": "alice", "sid": "s1",
            "events": {EVENT: {}}});
        assert_eq!(
            named(&claims(good.clone()), now),
            Ok(Named {
                sub: Some("alice".into()),
                sid: Some("s1".into()),
                jti: "j1".into()
            })
        );
        let with = |k: &str, v: Value| {
            let mut c = claims(good.clone());
            c.insert(k.into(), v);
            named(&c, now)
        };
        let without = |k: &str| {
            let mut c = claims(good.clone());
            c.remove(k);
            named(&c, now)
        };
        assert_eq!(
            with("nonce", "n".into()),
            Err("a nonce: an ID token, not a logout token")
        );
        assert_eq!(
            with("events", serde_json::json!({})),
            Err("no back-channel logout event")
        );
        assert_eq!(
            with("events", serde_json::json!({EVENT: "x"})),
            Err("no back-channel logout event")
        );
        assert_eq!(
            with("iat", (now + 3600).into()),
            Err("issued in the future")
        );
        assert_eq!(with("iat", (now - 3600).into()), Err("issued too long ago"));
        assert_eq!(without("iat"), Err("no iat"));
        assert_eq!(without("jti"), Err("no jti"));
        let mut neither = claims(good);
        neither.remove("sub");
        neither.remove("sid");
        assert_eq!(named(&neither, now), Err("neither sub nor sid"));
    }

    #[test]
    fn a_provider_session_needs_a_sub_and_bounded_ids() {
        let c = claims(serde_json::json!({"sub": "u1", "sid": "s".repeat(300)}));
        let ps = provider_session("op", &c).unwrap();
        assert_eq!((ps.sub.as_str(), ps.sid), ("u1", None));
        assert!(provider_session("op", &claims(serde_json::json!({"sid": "s"}))).is_none());
        assert_ne!(link("op", "sub", "a"), link("op", "sid", "a"));
        assert_ne!(link("op", "sub", "a"), link("op2", "sub", "a"));
    }
}
