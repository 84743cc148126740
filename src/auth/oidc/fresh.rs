//! Claims stay fresh (`recheck_every`): a session signed in through a
//! provider keeps the provider's refresh token, sealed
//! ([`crate::auth::sealing::REFRESH_TOKEN`]), and once its last check is
//! older than `recheck_every`, the next request that carries it asks the
//! provider again (the refresh token grant, and the userinfo endpoint with
//! `userinfo = true`).
//!
//! - The provider confirms: the roles and claims become what it says now, so
//!   a group removed there removes the role here; a rotated refresh token
//!   replaces the old one.
//! - The provider refuses (`invalid_grant`: the user was disabled, deleted
//!   or signed out there; any other OAuth error), or its claims no longer
//!   make this user: the session ends, with the rest of its sign-in.
//! - The provider cannot be reached (a network error, a timeout, a 5xx, an
//!   answer that is not OAuth's): `if_unreachable` decides. `"keep"` keeps
//!   the session, asked again after another `recheck_every`; `"end"` ends it.
//!
//! A re-check happens while a request waits, once per interval per session,
//! never on a request of a session that does not need one (one comparison).
//! One re-check per session at a time: in this process by an in-flight set,
//! across instances by the credential store's first-use token, so a refresh
//! token is never presented twice (providers that detect reuse would revoke
//! the whole grant). Requests that find a re-check under way go on with the
//! session as it was.

use std::time::Duration;

use openidconnect::core::{CoreErrorResponseType, CoreGenderClaim};
use openidconnect::{
    AccessToken, AdditionalClaims, Nonce, RefreshToken, RequestTokenError, SubjectIdentifier,
    UserInfoClaims, UserInfoError,
};
use serde_json::{Map, Value};

use super::{describe, Failure, Provider};
use crate::auth::sealing::{Sealer, REFRESH_TOKEN};
use crate::auth::Auth;
use crate::metrics::{Recheck as Counted, METRICS};
use crate::session::manager::{RequestSession, SessionManager};
use crate::session::signing::Secret;
use crate::session::{now_ms, Freshness, Session, SessionKey, SessionStore};

/// How long one re-check may hold its session's turn: the provider's two
/// calls (token, userinfo) are bounded by the HTTP timeout (10 s each).
const TURN: Duration = Duration::from_secs(60);

/// Claims the ID token states about itself; userinfo never replaces them.
const TOKEN_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "auth_time",
    "amr",
    "acr",
];

/// The sessions this process is re-checking now.
pub(super) fn in_flight() -> moka::sync::Cache<SessionKey, ()> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(TURN)
        .build()
}

/// Every claim of a userinfo answer, for the roles claim and the named
/// claims ([`UserInfoClaims`] types the standard ones only).
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Everything {
    #[serde(flatten)]
    all: Map<String, Value>,
}

impl AdditionalClaims for Everything {}

/// What the provider said when asked again.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Still this user: what the provider says of them now (`None` when it
    /// sent neither an ID token nor, with `userinfo`, claims), and the new
    /// refresh token if it rotated it.
    Confirmed {
        claims: Option<Map<String, Value>>,
        refresh_token: Option<RefreshToken>,
    },
    /// It refused, or its answer no longer makes this user.
    Refused(String),
    /// It could not be reached, or did not answer as OAuth does.
    Unreachable(String),
}

/// Userinfo's claims over the ID token's, except those the token states
/// about itself (and `null`s).
pub(crate) fn merge_userinfo(claims: &mut Map<String, Value>, info: Map<String, Value>) {
    // An address and whether it is verified go together: userinfo's email
    // never borrows the ID token's `email_verified`.
    if info.contains_key("email") {
        claims.remove("email_verified");
    }
    for (k, v) in info {
        if !v.is_null() && !TOKEN_CLAIMS.contains(&k.as_str()) {
            claims.insert(k, v);
        }
    }
}

/// OAuth errors that say "not now" rather than "no" (RFC 6749 §5.2 has
/// none; providers send these two, named after §4.1.2.1's).
fn is_transient(e: &CoreErrorResponseType) -> bool {
    matches!(e, CoreErrorResponseType::Extension(x) if x == "temporarily_unavailable" || x == "server_error")
}

impl Provider {
    /// Ask the provider about `sub` again with `refresh`.
    pub(crate) async fn recheck(&self, refresh: &RefreshToken, sub: &str) -> Verdict {
        use openidconnect::OAuth2TokenResponse as _;
        use openidconnect::TokenResponse as _;
        let d = match self.discovered().await {
            Ok(d) => d,
            Err(e) => return Verdict::Unreachable(e.to_string()),
        };
        let client = match self.client(&d) {
            Ok(c) => c,
            Err(e) => return Verdict::Unreachable(e.to_string()),
        };
        let request = match client.exchange_refresh_token(refresh) {
            Ok(r) => r,
            Err(e) => return Verdict::Refused(format!("the provider has no token endpoint: {e}")),
        };
        let response = match request.request_async(&self.http).await {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(e)) if !is_transient(e.error()) => {
                return Verdict::Refused(format!("the provider answered {}", e.error()));
            }
            Err(e) => return Verdict::Unreachable(describe(&e)),
        };
        let mut claims = None;
        if let Some(id_token) = response.id_token() {
            // A refreshed ID token carries no nonce of ours (OpenID Connect
            // Core §12.2); its subject must be the same.
            let any_nonce = |_: Option<&Nonce>| Ok(());
            match self.verified_claims(&d, id_token, any_nonce).await {
                Ok(c) if c.get("sub").and_then(Value::as_str) == Some(sub) => claims = Some(c),
                Ok(_) => return Verdict::Refused("the new ID token names another subject".into()),
                Err(Failure::Discovery(e)) => return Verdict::Unreachable(e),
                Err(e) => return Verdict::Refused(e.to_string()),
            }
        }
        if self.options.userinfo {
            match self.userinfo(&d, response.access_token(), sub).await {
                Ok(info) => {
                    let c = claims.get_or_insert_with(Map::new);
                    c.entry("sub").or_insert_with(|| sub.into());
                    merge_userinfo(c, info);
                }
                Err(UserInfoError::Request(e)) => return Verdict::Unreachable(describe(&e)),
                Err(UserInfoError::Response(status, _, _)) if status.is_server_error() => {
                    return Verdict::Unreachable(format!("userinfo answered {status}"));
                }
                Err(e) => return Verdict::Refused(format!("userinfo: {}", describe(&e))),
            }
        }
        Verdict::Confirmed {
            claims,
            refresh_token: response.refresh_token().cloned(),
        }
    }

    /// The userinfo endpoint's claims for the holder of `access`, whose
    /// `sub` must be `sub` (the crate checks it).
    pub(super) async fn userinfo(
        &self,
        d: &super::Discovered,
        access: &AccessToken,
        sub: &str,
    ) -> Result<
        Map<String, Value>,
        UserInfoError<openidconnect::HttpClientError<openidconnect::reqwest::Error>>,
    > {
        let client = self
            .client(d)
            .map_err(|e| UserInfoError::Other(e.to_string()))?;
        let request = client
            .user_info(access.clone(), Some(SubjectIdentifier::new(sub.to_owned())))
            .map_err(|e| UserInfoError::Other(format!("no userinfo endpoint: {e}")))?;
        let info: UserInfoClaims<Everything, CoreGenderClaim> =
            request.request_async(&self.http).await?;
        match serde_json::to_value(&info) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(UserInfoError::Other("not a JSON object".into())),
        }
    }
}

/// What seals refresh tokens: keys derived from the session secrets, so they
/// rotate with them (a token sealed under a secret since removed no longer
/// opens, and its session ends at its next check).
fn sealer(secrets: &[Secret]) -> Sealer {
    Sealer::new(secrets, &REFRESH_TOKEN)
}

/// Binds a sealed token to its provider and user: copied into another
/// session's record, it does not open.
fn context(provider: &str, user: &str) -> String {
    format!("refresh\0{provider}\0{user}")
}

/// A new sign-in's [`Freshness`]: `refresh` sealed, confirmed now.
pub(crate) fn freshness(
    secrets: &[Secret],
    provider: &str,
    user: &str,
    sub: &str,
    refresh: &RefreshToken,
) -> Freshness {
    Freshness {
        provider: provider.to_owned(),
        sub: sub.to_owned(),
        sealed: sealer(secrets).seal(refresh.secret().as_bytes(), &context(provider, user)),
        checked_at: now_ms(),
    }
}

/// Clears a session's turn in this process however the re-check ends.
struct Turn<'a> {
    in_flight: &'a moka::sync::Cache<SessionKey, ()>,
    key: SessionKey,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.in_flight.invalidate(&self.key);
    }
}

impl Auth {
    /// Re-check the session in `cur` at its provider if it is due. Called
    /// as a request's session is loaded, before any decision, so a refusal
    /// is anonymous for this very request.
    pub(crate) async fn keep_fresh<S: SessionStore>(
        &self,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) {
        let Some(s) = cur.session.clone() else { return };
        let Some(f) = s.fresh.as_deref() else { return };
        // A provider removed, or its re-checks turned off, since the sign-in:
        // the session is no longer re-checked.
        let Some(provider) = self.provider(&f.provider) else {
            return;
        };
        let Some(recheck) = provider.options.recheck else {
            return;
        };
        let now = now_ms();
        if now.saturating_sub(f.checked_at) < recheck.every.as_millis() as u64 {
            return;
        }
        let in_flight = &provider.rechecking;
        if !in_flight.entry(s.key).or_insert(()).is_fresh() {
            return; // this process is on it
        }
        let _turn = Turn {
            in_flight,
            key: s.key,
        };
        if let Some(home) = self.api_keys.as_ref().map(|k| k.home()) {
            let checked = f.checked_at.to_string();
            let token =
                crate::session::credentials::once_token(&["recheck", &s.key.to_hex(), &checked]);
            match home.first_use(&token, TURN).await {
                Ok(true) => {}
                Ok(false) => return, // another instance is on it
                // Better a rare double re-check than none while it is down.
                Err(e) => {
                    tracing::warn!(target: "auth", error = %e, "re-check goes on without the store's turn")
                }
            }
        }
        let user = s.user().unwrap_or_default();
        let secrets = &sessions.config().secrets;
        let sealer = sealer(secrets);
        // Sealed under an older secret: sealed again under the first after
        // the check, so removing that secret later does not end the session.
        let mut stale = false;
        let mut held = None;
        let verdict = match sealer.open(&f.sealed, &context(&f.provider, user)) {
            Some(opened) => match String::from_utf8(opened.plain) {
                Ok(plain) => {
                    stale = opened.stale;
                    let token = RefreshToken::new(plain);
                    let verdict = provider.recheck(&token, &f.sub).await;
                    held = Some(token);
                    verdict
                }
                Err(_) => Verdict::Refused("the sealed refresh token is not text".into()),
            },
            None => Verdict::Refused(
                "the refresh token does not open (sealed under a session secret since removed)"
                    .into(),
            ),
        };
        match verdict {
            Verdict::Confirmed {
                claims,
                refresh_token,
            } => {
                let mut changed = (*s).clone();
                if let Some(claims) = claims {
                    match provider.options.claims.map(&claims) {
                        Ok(m) if m.user == user => {
                            changed.set_roles(&m.roles);
                            changed.claims =
                                crate::session::claims_of(self.claims_of_token(&claims));
                        }
                        Ok(_) => {
                            return self
                                .end_refused(cur, sessions, &s, "its claims name another user")
                                .await
                        }
                        Err(r) => return self.end_refused(cur, sessions, &s, &r.to_string()).await,
                    }
                }
                let mut fresh = f.clone();
                fresh.checked_at = now;
                if let Some(rt) = refresh_token.as_ref().or(held.as_ref().filter(|_| stale)) {
                    fresh.sealed = sealer.seal(rt.secret().as_bytes(), &context(&f.provider, user));
                }
                changed.fresh = Some(Box::new(fresh));
                self.write_back(cur, sessions, changed).await;
                METRICS.recheck(Counted::Confirmed);
                tracing::info!(target: "auth", user = %user, provider = %f.provider, "session re-checked at the provider");
            }
            Verdict::Refused(why) => self.end_refused(cur, sessions, &s, &why).await,
            Verdict::Unreachable(why) if recheck.keep_if_unreachable => {
                // Kept until the next check, not the next request: a provider
                // that is down is not asked again by every request.
                let mut changed = (*s).clone();
                let mut fresh = f.clone();
                fresh.checked_at = now;
                changed.fresh = Some(Box::new(fresh));
                self.write_back(cur, sessions, changed).await;
                METRICS.recheck(Counted::UnreachableKept);
                tracing::warn!(target: "auth", user = %user, provider = %f.provider, reason = %why, "session kept: its provider could not be reached for a re-check");
            }
            Verdict::Unreachable(why) => {
                METRICS.recheck(Counted::UnreachableEnded);
                tracing::warn!(target: "auth", user = %user, provider = %f.provider, reason = %why, "session ended: its provider could not be reached for a re-check (if_unreachable = \"end\")");
                self.end(cur, sessions).await;
            }
        }
    }

    async fn end_refused<S: SessionStore>(
        &self,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
        s: &Session,
        why: &str,
    ) {
        METRICS.recheck(Counted::Refused);
        tracing::warn!(target: "auth", user = %s.user().unwrap_or_default(), reason = %why, "session ended: its provider refused a re-check");
        self.end(cur, sessions).await;
    }

    /// End the session with the rest of its sign-in; this request goes on
    /// anonymous, and its cookie is cleared.
    async fn end<S: SessionStore>(&self, cur: &mut RequestSession, sessions: &SessionManager<S>) {
        if let Err(e) = sessions.logout(cur).await {
            // Not written: still anonymous for this request, asked again next time.
            tracing::error!(target: "auth", error = %e, "a session the provider refused could not be ended in the store");
            cur.session = None;
        }
    }

    async fn write_back<S: SessionStore>(
        &self,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
        changed: Session,
    ) {
        let changed_copy = changed.clone();
        match sessions.refreshed(cur, changed).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(target: "auth", "a re-checked session had ended meanwhile"),
            Err(e) => {
                // This request at least goes on as the provider now says.
                tracing::error!(target: "auth", error = %e, "a re-checked session could not be written back");
                cur.session = Some(std::sync::Arc::new(changed_copy));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_never_replaces_what_the_token_says_of_itself() {
        let mut claims =
            serde_json::json!({"sub": "a", "iss": "i", "groups": ["x"], "amr": ["mfa"], "email_verified": true})
                .as_object()
                .unwrap()
                .clone();
        let info = serde_json::json!({"sub": "b", "iss": "j", "groups": ["y"], "amr": [], "email": "e@x", "name": null});
        merge_userinfo(&mut claims, info.as_object().unwrap().clone());
        assert_eq!(claims["sub"], "a");
        assert_eq!(claims["iss"], "i");
        assert_eq!(claims["amr"][0], "mfa");
        assert_eq!(claims["groups"][0], "y");
        assert_eq!(claims["email"], "e@x");
        // The token's `email_verified` was about the token's address.
        assert!(!claims.contains_key("email_verified"));
        assert!(!claims.contains_key("name"));
    }

    #[test]
    fn a_sealed_refresh_token_opens_for_its_provider_and_user_only() {
        let secrets = [Secret::new(vec![7; 32])];
        let f = freshness(
            &secrets,
            "op",
            "alice",
            "sub-1",
            &RefreshToken::new("rt-1".into()),
        );
        assert!(!f.sealed.contains("rt-1"));
        let s = sealer(&secrets);
        assert_eq!(
            s.open(&f.sealed, &context("op", "alice")).unwrap().plain,
            b"rt-1"
        );
        assert!(s.open(&f.sealed, &context("op", "bob")).is_none());
        assert!(s.open(&f.sealed, &context("other", "alice")).is_none());
        // The factor keys of the same secret do not open it.
        let factor = Sealer::new(&secrets, &crate::auth::sealing::SECOND_FACTOR);
        assert!(factor.open(&f.sealed, &context("op", "alice")).is_none());
    }

    #[test]
    fn only_not_now_errors_are_transient() {
        assert!(is_transient(&CoreErrorResponseType::Extension(
            "temporarily_unavailable".into()
        )));
        assert!(!is_transient(&CoreErrorResponseType::InvalidGrant));
        assert!(!is_transient(&CoreErrorResponseType::InvalidClient));
    }
}
