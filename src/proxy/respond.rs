//! The answers sessiongate writes itself, never a backend's: the login
//! redirect, the JSON problems (401, 403, 404, 400, 503, 502, 504), the
//! forward-auth answers, the built-in endpoints' replies and the JWKS.
//!
//! Every one is framed (`Content-Length`: an unframed direct answer hung the
//! client in older pingora, pingora#540, and is closed after in 0.9), carries
//! the request id, and is never cached. Which answer a request gets is decided elsewhere (the rule
//! table, the auth endpoints, [`problem_for`] for a failed proxy attempt);
//! this module only writes it.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use pingora::prelude::*;

use super::routes::Decision;
use super::{forward_auth, request_id, Ctx, Downstream, Proxy};
use crate::auth::endpoints::{self, Endpoint};
use crate::http::problem::Problem;
use crate::http::redirect;
use crate::http::reply::{Reply, PAGE_HEADERS};
use crate::metrics::UpstreamError;
use crate::session::SessionStore;

/// Write a whole answer: status, type, body and `extra` headers.
pub(super) async fn respond(
    session: &mut Downstream,
    id: &HeaderValue,
    status: u16,
    content_type: &'static str,
    body: Bytes,
    extra: &[(HeaderName, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(5 + extra.len()))?;
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(request_id::X_REQUEST_ID, id)?;
    for (k, v) in extra {
        resp.append_header(k.clone(), v.as_str())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The JSON error body for `problem`, with its status.
pub(super) async fn respond_problem(
    session: &mut Downstream,
    id: &HeaderValue,
    problem: Problem,
    extra: &[(HeaderName, String)],
) -> Result<()> {
    let body = problem.body_with_id(id.to_str().unwrap_or_default());
    respond(
        session,
        id,
        problem.status(),
        "application/json",
        Bytes::from(body),
        extra,
    )
    .await
}

/// 503 while the session store cannot answer: never "anonymous".
pub(super) async fn respond_store_down(session: &mut Downstream, id: &HeaderValue) -> Result<()> {
    let retry = [(header::RETRY_AFTER, "1".to_owned())];
    respond_problem(session, id, Problem::Unavailable, &retry).await
}

/// What a failed proxy attempt is answered with, and the upstream failure
/// it counts as (none when the fault was not the upstream's). The body is
/// generic on purpose: no upstream address, no error detail.
pub(super) fn problem_for(e: &Error) -> (Problem, Option<UpstreamError>) {
    let kind = match e.etype() {
        ConnectRefused => Some(UpstreamError::ConnectRefused),
        ConnectTimedout => Some(UpstreamError::ConnectTimeout),
        ReadTimedout => Some(UpstreamError::ReadTimeout),
        WriteTimedout => Some(UpstreamError::WriteTimeout),
        ConnectNoRoute => Some(UpstreamError::NoHealthyUpstream),
        _ if e.esource() == &ErrorSource::Upstream => Some(UpstreamError::Other),
        _ => None,
    };
    let problem = match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => Problem::GatewayTimeout,
        ConnectRefused | ConnectNoRoute | ConnectError => Problem::BadGateway,
        HTTPStatus(c) if (400..600).contains(c) => Problem::of_status(*c),
        _ => match e.esource() {
            ErrorSource::Downstream => Problem::BadRequest,
            ErrorSource::Internal | ErrorSource::Unset => Problem::Internal,
            ErrorSource::Upstream => Problem::BadGateway,
        },
    };
    (problem, kind)
}

impl<S: SessionStore> Proxy<S> {
    /// Answer a denied request here; the backend never sees it. A browser
    /// navigation without a session goes to the login page with `next`.
    pub(super) async fn deny(
        &self,
        session: &mut Downstream,
        ctx: &Ctx,
        decision: Decision,
    ) -> Result<()> {
        let cookie = self.sessions.set_cookie(&ctx.cur, ctx.https);
        let mut extra: Vec<(HeaderName, String)> = cookie
            .into_iter()
            .chain(ctx.import_clear.clone())
            .map(|c| (header::SET_COOKIE, c))
            .collect();
        let problem = match decision {
            // The login page makes a session: no use where sessions are not taken.
            Decision::Unauthenticated | Decision::StepUp
                if ctx.accepts.session && super::is_navigation(session.req_header()) =>
            {
                let to = if decision == Decision::StepUp {
                    &self.redirects.factor
                } else {
                    &self.redirects.login
                };
                let req = session.req_header();
                let path = ctx.path(req);
                let mut location = String::with_capacity(to.len() + path.len() + 16);
                location.push_str(to);
                redirect::encode_next(&mut location, path, req.uri.query());
                extra.push((header::LOCATION, location));
                let text = "text/plain; charset=utf-8";
                return respond(session, &ctx.id, 302, text, Bytes::new(), &extra).await;
            }
            Decision::StepUp => Problem::SecondFactor,
            Decision::Unauthenticated => {
                extra.extend(super::credentials::challenges(ctx.accepts, false));
                Problem::Unauthenticated
            }
            Decision::Forbidden => {
                if matches!(
                    ctx.credential,
                    super::credentials::Credential::Bearer(_)
                        | super::credentials::Credential::ApiKey(_)
                ) {
                    let scope = super::credentials::BEARER_INSUFFICIENT_SCOPE.to_owned();
                    extra.push((header::WWW_AUTHENTICATE, scope));
                }
                Problem::Forbidden
            }
            Decision::NotFound => Problem::NotFound,
            Decision::Misdirected => Problem::Misdirected,
            Decision::Allow { .. } => return Ok(()),
        };
        respond_problem(session, &ctx.id, problem, &extra).await
    }

    /// Answer an endpoint under the auth prefix, whatever it is.
    pub(super) async fn answer_endpoint(
        &self,
        session: &mut Downstream,
        ctx: &mut Ctx,
        endpoint: Endpoint,
        store_down: bool,
    ) -> Result<()> {
        let convention = match endpoint {
            Endpoint::Jwks => return self.jwks(session, ctx).await,
            Endpoint::AuthNginx => Some(forward_auth::Convention::Nginx),
            Endpoint::AuthForward => Some(forward_auth::Convention::Forward),
            _ => None,
        };
        // The login and logout pages change nothing: they need no store.
        let needs_store = !matches!(endpoint, Endpoint::LoginPage | Endpoint::LogoutPage);
        match convention {
            _ if store_down && needs_store => respond_store_down(session, &ctx.id).await,
            Some(convention) => self.forward_auth(session, ctx, convention).await,
            None => self.builtin(session, ctx, endpoint).await,
        }
    }

    /// The identity assertion's public keys, or 404 without `[assertion]`.
    async fn jwks(&self, session: &mut Downstream, ctx: &Ctx) -> Result<()> {
        let (status, body) = match self.config.assertions.as_deref() {
            Some(a) => (200, Bytes::copy_from_slice(a.jwks().as_bytes())),
            None => {
                let id = ctx.id.to_str().unwrap_or_default();
                (404, Bytes::from(Problem::NotFound.body_with_id(id)))
            }
        };
        respond(session, &ctx.id, status, "application/json", body, &[]).await
    }

    /// Answer a front proxy's forward-auth request ([`forward_auth`]). No
    /// cookie is set: the front proxy does not pass the auth answer's on.
    /// The original request's credential is taken as its route says, so a
    /// script's Basic, bearer token or API key works behind nginx, Caddy and
    /// Traefik as it does here.
    async fn forward_auth(
        &self,
        session: &mut Downstream,
        ctx: &mut Ctx,
        convention: forward_auth::Convention,
    ) -> Result<()> {
        let req = session.req_header();
        let answer = match forward_auth::original(convention, req, ctx.trusted_peer, ctx.https) {
            Ok(mut original) => {
                original.client = ctx.client_ip;
                let accepts = self
                    .config
                    .rules
                    .matched(
                        &original.method,
                        original.host.as_deref(),
                        &original.path,
                        original.client,
                    )
                    .credentials;
                ctx.accepts = accepts;
                match self
                    .resolve_credential(req, &original.method, ctx, accepts)
                    .await
                {
                    Ok(()) => forward_auth::answer(
                        convention,
                        &self.config.rules,
                        &self.config.identity,
                        &original,
                        ctx.identity(),
                        super::is_navigation(req),
                        &self.redirects,
                    ),
                    Err(refusal) => {
                        let (problem, headers) = refusal.answer(accepts);
                        forward_auth::credential_refused(convention, problem.status(), headers)
                    }
                }
            }
            Err(why) => {
                if why == forward_auth::Refusal::Untrusted {
                    tracing::warn!(
                        peer = ?super::client_ip(session),
                        "forward-auth request from a peer not in server.trusted_proxies: denied"
                    );
                }
                forward_auth::refused(why)
            }
        };
        tracing::debug!(
            decision = answer.decision,
            status = answer.status.as_u16(),
            "forward-auth"
        );
        let text = "text/plain; charset=utf-8";
        let status = answer.status.as_u16();
        respond(
            session,
            &ctx.id,
            status,
            text,
            Bytes::new(),
            &answer.headers,
        )
        .await
    }

    /// Answer a built-in endpoint (the table in `auth::endpoints`).
    async fn builtin(
        &self,
        session: &mut Downstream,
        ctx: &mut Ctx,
        endpoint: Endpoint,
    ) -> Result<()> {
        let form = if endpoint.reads_form() {
            match super::read_body(session, endpoints::MAX_FORM_LEN).await? {
                Some(b) => b,
                None => {
                    return respond_problem(session, &ctx.id, Problem::FormTooLarge, &[]).await;
                }
            }
        } else {
            Vec::new()
        };
        let client = super::client_info(session, ctx);
        let req = session.req_header();
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        // The canonical host, borrowed (from the request when it was canonical as sent).
        let host = match &ctx.host {
            Some(h) => Some(super::host::Host {
                name: std::borrow::Cow::Borrowed(h.name.as_ref()),
                port: h.port,
            }),
            None if ctx.host_as_sent => super::host::of_request(req, ctx.https).ok().flatten(),
            None => None,
        };
        let site = host.as_ref().map(|h| crate::auth::hop::Site {
            name: &h.name,
            port: h.port,
        });
        let reply = self
            .auth
            .handle(
                endpoint,
                req,
                path,
                site,
                &form,
                &client,
                &mut ctx.cur,
                &self.sessions,
            )
            .await;
        self.write_reply(session, ctx, reply).await
    }

    /// Write an auth endpoint's [`Reply`]: the page headers, the request id
    /// in a JSON error, the session cookie when the endpoint changed it.
    async fn write_reply(&self, session: &mut Downstream, ctx: &Ctx, reply: Reply) -> Result<()> {
        let mut body = reply.body;
        if reply.status.as_u16() >= 400 && reply.content_type == "application/json" {
            let text = String::from_utf8_lossy(&body);
            let id = ctx.id.to_str().unwrap_or_default();
            body = crate::http::problem::with_request_id(&text, id).into_bytes();
        }
        let mut resp = ResponseHeader::build(reply.status, Some(9 + reply.headers.len()))?;
        resp.insert_header(header::CONTENT_TYPE, reply.content_type)?;
        resp.insert_header(header::CONTENT_LENGTH, body.len())?;
        resp.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        for (k, v) in PAGE_HEADERS {
            resp.insert_header(k, v)?;
        }
        for (k, v) in reply.headers {
            // A page may loosen the default policy (the passkey pages run
            // their one same-origin script): replace it, never add a second.
            if k == header::CONTENT_SECURITY_POLICY {
                resp.insert_header(k, v)?;
            } else {
                resp.append_header(k, v)?;
            }
        }
        if let Some(c) = self.sessions.set_cookie(&ctx.cur, ctx.https) {
            resp.append_header(header::SET_COOKIE, c)?;
        }
        if let Some(clear) = &ctx.import_clear {
            resp.append_header(header::SET_COOKIE, clear)?;
        }
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_attempts_map_to_generic_problems() {
        use Problem::*;
        let cases = [
            (
                Error::new(ConnectTimedout),
                GatewayTimeout,
                Some(UpstreamError::ConnectTimeout),
            ),
            (
                Error::new(ReadTimedout),
                GatewayTimeout,
                Some(UpstreamError::ReadTimeout),
            ),
            (
                Error::new(WriteTimedout),
                GatewayTimeout,
                Some(UpstreamError::WriteTimeout),
            ),
            (
                Error::new(ConnectRefused),
                BadGateway,
                Some(UpstreamError::ConnectRefused),
            ),
            (
                Error::new(ConnectNoRoute),
                BadGateway,
                Some(UpstreamError::NoHealthyUpstream),
            ),
            (Error::new(ConnectError), BadGateway, None),
            (Error::new(HTTPStatus(503)), Unavailable, None),
            (Error::new(HTTPStatus(400)), BadRequest, None),
            (Error::new(InternalError), Internal, None),
            (Error::new(ReadError).into_down(), BadRequest, None),
            (
                Error::new(ReadError).into_up(),
                BadGateway,
                Some(UpstreamError::Other),
            ),
        ];
        for (e, problem, kind) in cases {
            assert_eq!(problem_for(&e), (problem, kind), "{e}");
        }
    }
}
