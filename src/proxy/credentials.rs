//! Which credential identifies a request on the route it falls under: the
//! session cookie, or `Authorization: Basic`, as the route's `credentials`
//! say (`routes::Credentials`; the default is the session only).
//!
//! - An `Authorization` header the route takes must prove a user: a refusal
//!   is answered here (401 with the Basic challenge, 429 while throttled, 503
//!   while every hashing slot is busy), never replaced by the session's
//!   identity and never by the login redirect.
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

use http::header::{self, HeaderName};
use pingora::prelude::*;

use super::routes::{Credentials, Identity};
use super::{Ctx, Downstream, Proxy};
use crate::auth::basic::BasicUser;
use crate::auth::password::PasswordRefusal;
use crate::http::authorization::{self, Authorization};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::session::SessionStore;

/// The challenge of routes that take Basic (RFC 7617 §2.1: UTF-8 user-pass).
pub(super) const BASIC_CHALLENGE: &str = "Basic realm=\"sessiongate\", charset=\"UTF-8\"";

/// The credential a request was identified by.
#[derive(Debug, Default)]
pub(crate) enum Credential {
    /// None that the route takes, or none at all.
    #[default]
    None,
    /// The session cookie, logged in.
    Session,
    /// `Authorization: Basic` against the users file.
    Basic(BasicUser),
}

impl Credential {
    /// The access log's `credential`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Credential::None => "-",
            Credential::Session => "session",
            Credential::Basic(_) => "basic",
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
        if accepts.basic {
            let req = session.req_header();
            match authorization::of(&req.headers) {
                Some(Authorization::Basic { .. })
                    if !req.method.is_safe() && !same_origin(req, ctx.trusted_peer) =>
                {
                    let (id, problem) = (&ctx.id, Problem::CrossOrigin);
                    super::respond::respond_problem(session, id, problem, &[]).await?;
                    return Ok(false);
                }
                Some(Authorization::Basic { user, password }) => {
                    match self.auth.check_basic(&user, password, ctx.client_ip).await {
                        Ok(user) => {
                            ctx.credential = Credential::Basic(user);
                            return Ok(true);
                        }
                        Err(refusal) => {
                            self.refuse_basic(session, ctx, refusal).await?;
                            return Ok(false);
                        }
                    }
                }
                Some(Authorization::Malformed) => {
                    self.refuse_basic(session, ctx, PasswordRefusal::Invalid)
                        .await?;
                    return Ok(false);
                }
                Some(Authorization::Bearer(_) | Authorization::Other) | None => {}
            }
        }
        if accepts.session && ctx.session_identity().is_some() {
            ctx.credential = Credential::Session;
        }
        Ok(true)
    }

    /// Answer a Basic credential that proved no user.
    async fn refuse_basic(
        &self,
        session: &mut Downstream,
        ctx: &Ctx,
        refusal: PasswordRefusal,
    ) -> Result<()> {
        let challenge = (header::WWW_AUTHENTICATE, BASIC_CHALLENGE.to_owned());
        let (problem, extra): (Problem, Vec<(HeaderName, String)>) = match refusal {
            PasswordRefusal::Invalid => (Problem::Unauthenticated, vec![challenge]),
            PasswordRefusal::Throttled(retry) => {
                let secs = retry.as_secs().max(1).to_string();
                (Problem::TooManyRequests, vec![(header::RETRY_AFTER, secs)])
            }
            PasswordRefusal::Busy => (
                Problem::Unavailable,
                vec![(header::RETRY_AFTER, "1".to_owned())],
            ),
        };
        super::respond::respond_problem(session, &ctx.id, problem, &extra).await
    }
}
