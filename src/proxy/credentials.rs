//! Which credential identifies a request on the route it falls under: the
//! session cookie, `Authorization: Basic`, a bearer JWT or an API key, as
//! the route's `credentials` say (`routes::Credentials`; the default is the
//! session only). Forward-auth resolves the original request's the same way
//! ([`Proxy::resolve_credential`]).
//!
//! - An `Authorization` header the route takes must prove a user: a refusal
//!   is answered here (401 with the route's challenges, 429 while throttled,
//!   503 while every hashing slot is busy or the store cannot answer), never
//!   replaced by the session's identity and never by the login redirect.
//! - A header of a scheme the route does not take is ignored, as is a session
//!   on a route that does not take sessions: the request is then decided as
//!   if it carried none, and no identity of theirs reaches the upstream.
//!
//! - A browser that once answered the Basic challenge sends the credentials
//!   by itself, from any site: Basic is not taken for a state-changing
//!   request that a browser marks as from another origin (403, the login
//!   form's CSRF check), as `SameSite=Lax` does for cookies.
//!
//! The access line names the credential used (`credential`).

use std::sync::Arc;

use http::header::{self, HeaderName};
use pingora::prelude::*;

use super::routes::{Credentials, Identity};
use super::{Ctx, Downstream, Proxy};
use crate::auth::api_keys::{self, KeyRefusal};
use crate::auth::jwt::BearerRefusal;
use crate::auth::password::PasswordRefusal;
use crate::auth::Caller;
use crate::http::authorization::{self, Authorization};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::session::SessionStore;

/// The challenge of routes that take Basic (RFC 7617 §2.1: UTF-8 user-pass).
const BASIC_CHALLENGE: &str = "Basic realm=\"sessiongate\", charset=\"UTF-8\"";
/// The challenge of routes that take bearer tokens (RFC 6750 §3).
const BEARER_CHALLENGE: &str = "Bearer realm=\"sessiongate\"";
const BEARER_INVALID_TOKEN: &str = "Bearer realm=\"sessiongate\", error=\"invalid_token\"";
/// A bearer token that proves a user without the route's role (RFC 6750 §3.1).
pub(super) const BEARER_INSUFFICIENT_SCOPE: &str =
    "Bearer realm=\"sessiongate\", error=\"insufficient_scope\"";

/// The credential a request was identified by.
#[derive(Debug, Default)]
pub(crate) enum Credential {
    /// None that the route takes, or none at all.
    #[default]
    None,
    /// The session cookie, logged in.
    Session,
    /// `Authorization: Basic` against the users file.
    Basic(Caller),
    /// `Authorization: Bearer` with a JWT of a trusted issuer.
    Bearer(Arc<Caller>),
    /// `Authorization: Bearer sgk_...`: an API key.
    ApiKey(Arc<Caller>),
}

impl Credential {
    /// The access log's `credential`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Credential::None => "-",
            Credential::Session => "session",
            Credential::Basic(_) => "basic",
            Credential::Bearer(_) => "bearer",
            Credential::ApiKey(_) => "api_key",
        }
    }
}

impl Ctx {
    /// The identity the route's rule is decided on, and the upstream gets.
    pub(super) fn identity(&self) -> Option<Identity<'_>> {
        match &self.credential {
            Credential::Basic(u) => Some(Identity {
                user: &u.user,
                roles: &u.roles,
                factor_at: 0,
                claims: &[],
            }),
            Credential::Bearer(u) | Credential::ApiKey(u) => Some(Identity {
                user: &u.user,
                roles: &u.roles,
                factor_at: 0,
                claims: &[],
            }),
            Credential::Session => self.session_identity(),
            Credential::None => None,
        }
    }
}

impl<S: SessionStore> Proxy<S> {
    /// Settle `ctx.credential` for a route that takes `accepts`; `false` when
    /// the request has been answered (a refused credential).
    pub(super) async fn take_credential(
        &self,
        session: &mut Downstream,
        ctx: &mut Ctx,
        accepts: Credentials,
    ) -> Result<bool> {
        ctx.accepts = accepts;
        let req = session.req_header();
        let method = req.method.clone();
        match self.resolve_credential(req, &method, ctx, accepts).await {
            Ok(()) => Ok(true),
            Err(refusal) => {
                let (problem, extra) = refusal.answer(accepts);
                super::respond::respond_problem(session, &ctx.id, problem, &extra).await?;
                Ok(false)
            }
        }
    }

    /// The credential `req` proves for a route that takes `accepts` (`method`
    /// is the original request's: forward-auth decides for another request),
    /// into `ctx.credential`; or why its `Authorization` proves no one.
    pub(super) async fn resolve_credential(
        &self,
        req: &pingora::http::RequestHeader,
        method: &http::Method,
        ctx: &mut Ctx,
        accepts: Credentials,
    ) -> std::result::Result<(), Refusal> {
        if accepts.basic || accepts.bearer || accepts.api_key {
            let refusal = match authorization::of(&req.headers) {
                Some(Authorization::Basic { .. })
                    if accepts.basic
                        && !method.is_safe()
                        && !same_origin(req, ctx.trusted_peer) =>
                {
                    Refusal::CrossOrigin
                }
                Some(Authorization::Basic { user, password }) if accepts.basic => {
                    match self.auth.check_basic(&user, password, ctx.client_ip).await {
                        Ok(user) => {
                            ctx.credential = Credential::Basic(user);
                            return Ok(());
                        }
                        Err(refusal) => Refusal::Password(refusal),
                    }
                }
                Some(Authorization::Bearer(token))
                    if accepts.api_key && api_keys::is_api_key(&token) =>
                {
                    match self.auth.check_api_key(&token, ctx.client_ip).await {
                        Ok(caller) => {
                            ctx.credential = Credential::ApiKey(caller);
                            return Ok(());
                        }
                        Err(refusal) => Refusal::ApiKey(refusal),
                    }
                }
                Some(Authorization::Bearer(token)) if accepts.bearer => {
                    match self.auth.bearer.check(&token).await {
                        Ok(caller) => {
                            ctx.credential = Credential::Bearer(caller);
                            return Ok(());
                        }
                        Err(refusal) => Refusal::Bearer(refusal),
                    }
                }
                // A bearer token that is no API key, where only keys are taken.
                Some(Authorization::Bearer(_)) if accepts.api_key => {
                    Refusal::Bearer(BearerRefusal::Invalid)
                }
                Some(Authorization::Malformed) => Refusal::Malformed,
                Some(_) | None => Refusal::None,
            };
            if !matches!(refusal, Refusal::None) {
                return Err(refusal);
            }
        }
        if accepts.session && ctx.session_identity().is_some() {
            ctx.credential = Credential::Session;
        }
        Ok(())
    }
}

impl Refusal {
    /// The problem and headers a refusal is answered with.
    pub(super) fn answer(&self, accepts: Credentials) -> (Problem, Vec<(HeaderName, String)>) {
        let retry = |secs: u64| (header::RETRY_AFTER, secs.max(1).to_string());
        match self {
            Refusal::None => (Problem::Unauthenticated, Vec::new()),
            Refusal::CrossOrigin => (Problem::CrossOrigin, Vec::new()),
            Refusal::Password(PasswordRefusal::Throttled(wait))
            | Refusal::ApiKey(KeyRefusal::Throttled(wait)) => {
                (Problem::TooManyRequests, vec![retry(wait.as_secs())])
            }
            Refusal::Password(PasswordRefusal::Busy | PasswordRefusal::Unavailable)
            | Refusal::Bearer(BearerRefusal::KeysUnavailable)
            | Refusal::ApiKey(KeyRefusal::Unavailable) => (Problem::Unavailable, vec![retry(1)]),
            Refusal::Password(PasswordRefusal::Invalid)
            | Refusal::Bearer(BearerRefusal::Invalid)
            | Refusal::ApiKey(KeyRefusal::Invalid)
            | Refusal::Malformed => (Problem::Unauthenticated, challenges(accepts, true)),
        }
    }
}

/// Why a request's `Authorization` was refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Nothing to refuse: no header, or a scheme the route does not take.
    None,
    /// Basic on a cross-origin state-changing request.
    CrossOrigin,
    Password(PasswordRefusal),
    Bearer(BearerRefusal),
    ApiKey(KeyRefusal),
    /// Unreadable, or given twice.
    Malformed,
}

/// The `WWW-Authenticate` challenges of a route's credentials (RFC 7617 for
/// Basic, RFC 6750 §3 for Bearer: `invalid_token` when one was refused, and
/// nothing an attacker could use).
pub(super) fn challenges(accepts: Credentials, refused: bool) -> Vec<(HeaderName, String)> {
    let mut out = Vec::new();
    if accepts.bearer || accepts.api_key {
        let bearer = if refused {
            BEARER_INVALID_TOKEN
        } else {
            BEARER_CHALLENGE
        };
        out.push((header::WWW_AUTHENTICATE, bearer.to_owned()));
    }
    if accepts.basic {
        out.push((header::WWW_AUTHENTICATE, BASIC_CHALLENGE.to_owned()));
    }
    out
}
