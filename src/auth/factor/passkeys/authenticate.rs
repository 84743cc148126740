//! Signing in with a passkey: as the second factor of a pending sign-in or
//! a session's step-up, or alone (`passkey_login`). Every authentication is
//! started as a discoverable one (a small state in the ceremony cookie);
//! for a known user the options list that user's credentials and the finish
//! checks the answer against that user's keys only.

use http::StatusCode;
use pingora::http::RequestHeader;
use serde::Deserialize;
use webauthn_rs::prelude::{DiscoverableAuthentication, DiscoverableKey, PublicKeyCredential};

use super::{as_json, base64url, json_error, nonce, now_secs, Ceremony, Kind, CEREMONY_LIFETIME};
use crate::auth::endpoints::unavailable;
use crate::auth::Auth;
use crate::http::reply::Reply;
use crate::metrics::METRICS;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::SessionStore;

impl Auth {
    /// `POST <p>/factor/passkey/auth`
    pub(crate) async fn passkey_auth<S: SessionStore>(
        &self,
        req: &RequestHeader,
        client: &Client,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let (factors, passkeys) = match self.passkeys_or_404() {
            Ok(p) => p,
            Err(r) => return r,
        };
        let user = match self.asker(req, cur, sessions) {
            Some(a) => Some(a.user().to_owned()),
            None if passkeys.login => None,
            None => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
        };
        let (mut options, state) = match passkeys.webauthn.start_discoverable_authentication() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "auth", error = %e, "passkey sign-in could not start");
                return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        };
        // A modal request, not the autofill ("conditional") one webauthn-rs
        // asks for by default: the page has a button.
        options.mediation = None;
        let mut allowed = Vec::new();
        if let Some(user) = &user {
            let keys = match factors.record(user).await {
                Ok(r) => r.map(|r| r.passkeys).unwrap_or_default(),
                Err(e) => return unavailable(&e),
            };
            if keys.is_empty() {
                return json_error(StatusCode::NOT_FOUND, "no passkey");
            }
            allowed = keys
                .iter()
                .map(|k| base64url(k.key.cred_id().as_ref()))
                .collect();
        }
        let ceremony = Ceremony {
            kind: Kind::Authenticate,
            user,
            handle: None,
            state: serde_json::to_value(&state).unwrap_or_default(),
            expires: now_secs() + CEREMONY_LIFETIME.as_secs(),
            nonce: nonce(),
        };
        // A known user's credentials, so the browser offers only theirs (the
        // finish checks against their keys whatever the browser sends).
        let mut options = serde_json::to_value(&options).unwrap_or_default();
        if !allowed.is_empty() {
            options["publicKey"]["allowCredentials"] = allowed
                .iter()
                .map(|id| serde_json::json!({"type": "public-key", "id": id}))
                .collect();
        }
        self.start_ceremony(sessions, client, &ceremony, options.to_string())
    }

    /// `POST <p>/factor/passkey/auth/finish`
    pub(crate) async fn passkey_auth_finish<S: SessionStore>(
        &self,
        req: &RequestHeader,
        body: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        #[derive(Deserialize)]
        struct Finish {
            credential: PublicKeyCredential,
        }
        let (factors, passkeys) = match self.passkeys_or_404() {
            Ok(p) => p,
            Err(r) => return r,
        };
        let ceremony = match self.ceremony(req, sessions, Kind::Authenticate) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let Ok(state) = serde_json::from_value::<DiscoverableAuthentication>(ceremony.state) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "no passkey ceremony in progress; start again",
            );
        };
        let Ok(Finish { credential }) = serde_json::from_slice::<Finish>(body) else {
            return json_error(StatusCode::BAD_REQUEST, "the body is not {credential}");
        };
        let refused = || json_error(StatusCode::UNAUTHORIZED, "the passkey was not accepted");
        // Whose passkey: the ceremony's user, or the one its user handle names.
        let handle = passkeys
            .webauthn
            .identify_discoverable_authentication(&credential)
            .ok()
            .map(|(h, _)| h.to_string());
        let user = match (&ceremony.user, &handle) {
            (Some(u), _) => u.clone(),
            (None, Some(h)) => match factors.user_of_handle(h).await {
                Ok(Some(u)) => u,
                Ok(None) => return refused(),
                Err(e) => return unavailable(&e),
            },
            (None, None) => return refused(),
        };
        let mut record = match factors.record(&user).await {
            Ok(Some(r)) => r,
            Ok(None) => return refused(),
            Err(e) => return unavailable(&e),
        };
        // A user handle, when the authenticator sends one, must be this user's.
        if handle.is_some() && handle != record.handle {
            return refused();
        }
        // A known user's attempt counts before it is checked, as a code does.
        let window = self.config.failure_window;
        if ceremony.user.is_some() {
            match factors
                .attempt(&user, self.config.max_failures, window)
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return json_error(StatusCode::TOO_MANY_REQUESTS, "too many attempts"),
                Err(e) => return unavailable(&e),
            }
        }
        let keys: Vec<DiscoverableKey> = record.passkeys.iter().map(|p| (&p.key).into()).collect();
        let result =
            passkeys
                .webauthn
                .finish_discoverable_authentication(&credential, state, &keys);
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "auth", user = %user, error = %e, "passkey refused");
                METRICS.login_failed();
                return refused();
            }
        };
        // Verified: now spend the ceremony (a replayed answer stops here).
        if let Err(r) = self.spend_ceremony(factors, &ceremony.nonce).await {
            return r;
        }
        if ceremony.user.is_some() {
            if let Err(e) = factors.refund(&user).await {
                return unavailable(&e);
            }
        }
        let now = now_secs();
        for p in &mut record.passkeys {
            if p.key.cred_id() == result.cred_id() {
                p.key.update_credential(&result);
                p.last_used_at = Some(now);
            }
        }
        if let Err(e) = factors.save(&record).await {
            return unavailable(&e);
        }
        // Who is completing what: the pending sign-in or session the
        // ceremony was started for, or a passkey sign-in.
        let asker = match (self.asker(req, cur, sessions), &ceremony.user) {
            (Some(a), Some(u)) if a.user() == u => a,
            (_, Some(_)) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
            (_, None) => match self
                .users
                .get(&user)
                .filter(|u| !u.disabled && u.name == user)
            {
                Some(_) => crate::auth::factor::pages::Asker::PasskeyOnly(user.clone()),
                None => return refused(),
            },
        };
        let next = match &asker {
            crate::auth::factor::pages::Asker::Pending(p) => p.next.clone(),
            _ => self.safe_next(
                crate::auth::endpoints::query_param(req, "next").as_deref(),
                client,
            ),
        };
        let done = self
            .factor_passed(
                asker,
                crate::auth::factor::pages::Proved::User,
                &next,
                client,
                cur,
                sessions,
            )
            .await;
        as_json(done, &next, &[])
    }
}
