//! The pingora glue: each `ProxyHttp` phase translates between pingora and the
//! modules that decide ([`routes`], the session manager, the auth endpoints,
//! [`identity`], [`commands`], [`forwarded`]), and does nothing else.
//!
//! - `request_filter`: normalise the path, resolve the session from its cookie,
//!   answer the built-in endpoints, decide the route; denied requests are
//!   answered here and never reach a backend.
//! - `upstream_peer`: the decided upstream, round robin over healthy addresses,
//!   with every timeout set explicitly.
//! - `upstream_request_filter`: the normalised path, identity headers rebuilt
//!   from the session only, the session cookie removed.
//! - `response_filter`: the backend's session commands applied and removed, and
//!   the session `Set-Cookie` added when the session manager says so.
//! - `fail_to_proxy`: 502 / 504 with a generic body that names no address.
//! - `logging`: `resave`, then one access event per request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::header::{self, HeaderValue};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

pub(crate) mod assertion;
pub(crate) mod commands;
pub(crate) mod credentials;
pub(crate) mod current;
pub(crate) mod forward_auth;
pub(crate) mod forwarded;
pub(crate) mod framing;
pub(crate) mod host;
pub(crate) mod identity;
pub(crate) mod path;
pub(crate) mod request_id;
mod respond;
pub(crate) mod routes;
mod session;
pub(crate) mod upstream;

use self::credentials::Credential;
use self::forwarded::{Forwarded, Networks};
use self::respond::{respond_problem, respond_store_down};
use self::routes::{Credentials, Decision, Identity, Rules};
use crate::auth::endpoints::{self, Endpoint};
use crate::auth::Auth;
use crate::http::headers;
use crate::http::problem::Problem;
use crate::metrics::{Outcome, METRICS};
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::{SessionStore, StoreError};

type Downstream = pingora::proxy::Session;

pub(crate) use self::current::CurrentProxy;
pub(crate) use self::upstream::{load_balancer, Upstream, UpstreamOptions};

/// What the request path needs to know, built once by `config`.
#[derive(Debug, Clone)]
pub(crate) struct ProxyOptions {
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed.
    pub trusted_proxies: Networks,
    /// How long an idle client connection is kept open.
    pub client_idle_timeout: Duration,
    /// Where sessiongate's own endpoints live (`auth.prefix`).
    pub auth_prefix: String,
    /// Where anonymous browsers are sent (`auth.login_url`).
    pub login_url: String,
    /// The compiled route rules.
    pub rules: Rules,
    /// One event per request on the `access` target.
    pub access_log: bool,
    /// The identity headers' names (`[identity]`).
    pub identity: crate::http::headers::IdentityNames,
    /// The signer of `X-User-Assertion`, with `[assertion]` keys.
    pub assertions: Option<Arc<assertion::Assertions>>,
}

/// The proxy: everything built once at start-up.
pub(crate) struct Proxy<S> {
    config: Arc<ProxyOptions>,
    sessions: Arc<SessionManager<S>>,
    auth: Arc<Auth>,
    upstreams: Vec<Upstream>,
    redirects: Redirects,
    /// The cookies of sessiongate's own flows besides the session cookie
    /// (`Auth::own_cookies`): stripped upstream, refused from a backend.
    own_cookies: Vec<&'static str>,
}

/// Where a browser is sent when a route wants more than it brought,
/// prepared once; `next` (the path and query) is appended encoded.
pub(crate) struct Redirects {
    /// `login_url?next=`: no session.
    pub(crate) login: String,
    /// `<prefix>/factor?next=`: a session without the route's second factor.
    pub(crate) factor: String,
}

/// Per-request state.
pub(crate) struct Ctx {
    start: Instant,
    /// The normalised path when it differs from the request's; `None` = unchanged.
    normalized: Option<String>,
    /// The canonical host when it differs from the request's `Host`
    /// ([`host`]); `None` with `host_as_sent`: the `Host` is canonical.
    host: Option<host::Host<'static>>,
    /// The request's own host is canonical as sent (no copy was made).
    host_as_sent: bool,
    cur: RequestSession,
    decision: Option<Decision>,
    endpoint: Option<Endpoint>,
    /// The peer is a trusted proxy (its X-Forwarded-* are believed).
    trusted_peer: bool,
    /// The client's address (through trusted proxies), for throttling and sessions.
    client_ip: Option<IpAddr>,
    /// The session store failed this request: no session command may run.
    store_down: bool,
    /// An import from the app's express-session took the app's cookie over:
    /// the `Set-Cookie` that expires it (`auth::import`).
    import_clear: Option<String>,
    /// The client reached us over HTTPS (our TLS listener, or a trusted proxy says so).
    https: bool,
    /// This request's `X-Request-Id` ([`request_id`]), set by
    /// [`Proxy::note_peer`] before any other step runs.
    id: HeaderValue,
    /// The credentials the request's route takes ([`credentials`]).
    accepts: Credentials,
    /// The credential the request was identified by on its route.
    credential: Credential,
}

impl Ctx {
    /// The path the rule is decided on and the upstream gets.
    fn path<'r>(&'r self, req: &'r RequestHeader) -> &'r str {
        self.normalized.as_deref().unwrap_or(req.uri.path())
    }

    /// The host name the rule is decided on (canonical, no port), if the
    /// request named one.
    fn host_name<'r>(&'r self, req: &'r RequestHeader) -> Option<std::borrow::Cow<'r, str>> {
        if let Some(h) = &self.host {
            return Some(std::borrow::Cow::Borrowed(&h.name));
        }
        if !self.host_as_sent {
            return None;
        }
        // Canonical as sent: read again without a copy (checked once already).
        host::of_request(req, self.https)
            .ok()
            .flatten()
            .map(|h| h.name)
    }

    /// The identity of the session, if it is logged in, whatever the route
    /// takes ([`Ctx::identity`] is what the route's rule sees).
    fn session_identity(&self) -> Option<Identity<'_>> {
        self.cur.session.as_deref().and_then(|s| {
            s.user().map(|user| Identity {
                user,
                roles: s.roles_header(),
                factor_at: s.factor_at,
                claims: s.claims.as_deref().unwrap_or_default(),
            })
        })
    }

    /// The upstream the rule chose, once the request was allowed.
    fn upstream(&self) -> Option<usize> {
        match self.decision {
            Some(Decision::Allow { upstream }) => Some(upstream),
            _ => None,
        }
    }
}

impl<S: SessionStore> Proxy<S> {
    /// Assemble the proxy.
    pub(crate) fn new(
        config: Arc<ProxyOptions>,
        sessions: Arc<SessionManager<S>>,
        auth: Arc<Auth>,
        upstreams: Vec<Upstream>,
    ) -> Self {
        let redirects = Redirects {
            login: format!("{}?next=", config.login_url),
            factor: format!("{}/factor?next=", auth.config.prefix),
        };
        let own_cookies = auth.own_cookies(&sessions.config().cookie);
        Proxy {
            config,
            sessions,
            auth,
            upstreams,
            redirects,
            own_cookies,
        }
    }

    // ------------------------------------------------ request_filter's steps

    /// Who is on the other end: the connection's deadlines, whether the peer
    /// is a trusted proxy, whether the request came over HTTPS, the client's
    /// address and the request id. [`CurrentProxy`](current::CurrentProxy)
    /// runs it first, before anything can log, so that every event of the
    /// request carries the id.
    pub(super) fn note_peer(&self, session: &mut Downstream, ctx: &mut Ctx) {
        crate::http::connections::head_read(session);
        // pingora keeps an idle keep-alive connection for ever (pingora#447).
        session.set_keepalive(Some(self.config.client_idle_timeout.as_secs()));
        let trusted = &self.config.trusted_proxies;
        let peer = client_ip(session);
        ctx.trusted_peer = !trusted.is_empty() && peer.is_some_and(|ip| trusted.contains(ip));
        let req = session.req_header();
        // Our own TLS listener, or a trusted proxy that terminated TLS.
        ctx.https = session.digest().is_some_and(|d| d.ssl_digest.is_some())
            || forwarded::is_https(req, ctx.trusted_peer);
        ctx.client_ip = peer.map(|peer| match ctx.trusted_peer {
            false => peer,
            true => {
                let xff = req.headers.get_all(headers::X_FORWARDED_FOR);
                let xff = xff.iter().filter_map(|v| v.to_str().ok());
                forwarded::client_address(peer, xff, trusted)
            }
        });
        let fresh = std::mem::replace(&mut ctx.id, HeaderValue::from_static(""));
        ctx.id = request_id::of(req, ctx.trusted_peer, fresh);
    }

    /// The one canonical path ([`path::normalize`]); `false` when the
    /// target cannot have one (a target pingora had to decode lossily cannot
    /// be forwarded faithfully either).
    fn normalize_path(&self, session: &Downstream, ctx: &mut Ctx) -> bool {
        let req = session.req_header();
        if !req.raw_path_is_utf8() {
            return false;
        }
        match path::normalize(req.uri.path()) {
            Ok(std::borrow::Cow::Borrowed(_)) => true,
            Ok(std::borrow::Cow::Owned(p)) => {
                ctx.normalized = Some(p);
                true
            }
            Err(_) => false,
        }
    }

    /// Canonicalise the request's host ([`host`]). Refused: a host that is
    /// malformed, repeated, or disagrees with the target (400), or that is
    /// not the name its TLS connection asked for (421: one certificate must
    /// not reach another site's rules).
    fn normalize_host(&self, session: &Downstream, ctx: &mut Ctx) -> Result<(), Problem> {
        let req = session.req_header();
        let h = match host::of_request(req, ctx.https) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(why) => {
                tracing::info!(reason = ?why, "request refused: its host is malformed");
                return Err(Problem::BadRequest);
            }
        };
        let sni = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|t| {
                t.extension
                    .get::<crate::http::tls::Sni>()
                    .map(|s| s.0.as_str())
            });
        if let Some(sni) = sni.filter(|sni| *sni != h.name) {
            tracing::info!(sni = %sni, host = %h.name, "request refused: its host is not its connection's TLS name");
            return Err(Problem::Misdirected);
        }
        let sent = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .is_some_and(|v| host::is_as_sent(v, &h));
        if sent {
            ctx.host_as_sent = true;
        } else {
            ctx.host = Some(h.into_owned());
        }
        Ok(())
    }

    /// Which built-in endpoint under the auth prefix the request is, if any.
    fn endpoint(&self, session: &Downstream, ctx: &Ctx) -> Option<Endpoint> {
        let req = session.req_header();
        endpoints::route(&self.config.auth_prefix, &req.method, ctx.path(req))
    }
}

fn store_error(e: StoreError) -> Box<Error> {
    Error::because(HTTPStatus(503), "session store", e)
}

fn client_ip(session: &Downstream) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// What a new session records about its client.
fn client_info(session: &Downstream, ctx: &Ctx) -> Client {
    Client {
        ip: ctx.client_ip,
        https: ctx.https,
        via_trusted_proxy: ctx.trusted_peer,
        user_agent: session
            .req_header()
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

/// A browser navigation gets the login redirect; API clients get 401 JSON
/// (Fetch Metadata, W3C; `Accept: text/html` for browsers without it).
/// A request that carries `Authorization` is a client's, never a
/// navigation to send to the login page.
fn is_navigation(req: &RequestHeader) -> bool {
    if req.headers.contains_key(header::AUTHORIZATION) {
        return false;
    }
    if let Some(mode) = req.headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    (req.method == http::Method::GET || req.method == http::Method::HEAD)
        && req
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")))
}

/// Read a request body of at most `limit` bytes; `None` when it is larger.
async fn read_body(session: &mut Downstream, limit: usize) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[async_trait]
impl<S: SessionStore> ProxyHttp for Proxy<S> {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            normalized: None,
            host: None,
            host_as_sent: false,
            cur: RequestSession::default(),
            decision: None,
            endpoint: None,
            trusted_peer: false,
            client_ip: None,
            store_down: false,
            import_clear: None,
            https: false,
            id: request_id::generate(),
            accepts: Credentials::SESSION,
            credential: Credential::None,
        }
    }

    async fn request_filter(&self, session: &mut Downstream, ctx: &mut Ctx) -> Result<bool> {
        if !self.normalize_path(session, ctx) {
            respond_problem(session, &ctx.id, Problem::BadRequest, &[]).await?;
            return Ok(true);
        }
        if let Err(problem) = self.normalize_host(session, ctx) {
            respond_problem(session, &ctx.id, problem, &[]).await?;
            return Ok(true);
        }
        let store_down = self.load_session(session, ctx).await?;
        if let Some(endpoint) = self.endpoint(session, ctx) {
            ctx.endpoint = Some(endpoint);
            self.answer_endpoint(session, ctx, endpoint, store_down)
                .await?;
            return Ok(true);
        }
        let req = session.req_header();
        let host = ctx.host_name(req);
        let matched =
            self.config
                .rules
                .matched(&req.method, host.as_deref(), ctx.path(req), ctx.client_ip);
        if !self
            .take_credential(session, ctx, matched.credentials)
            .await?
        {
            return Ok(true);
        }
        let decision = matched.decide(ctx.identity());
        ctx.decision = Some(decision);
        match decision {
            Decision::Allow { .. } => return Ok(false),
            _ if store_down => respond_store_down(session, &ctx.id).await?,
            _ => self.deny(session, ctx, decision).await?,
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Downstream,
        ctx: &mut Ctx,
    ) -> Result<Box<HttpPeer>> {
        let Some(upstream) = ctx.upstream() else {
            return Error::e_explain(InternalError, "upstream_peer without an allow decision");
        };
        self.upstreams[upstream].peer()
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Downstream,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if framing::single_content_length(req).is_err() {
            return Error::e_explain(HTTPStatus(400), "conflicting Content-Length");
        }
        // The path the rule was decided on is the path the backend gets, and
        // so is the host.
        path::set_upstream_target(req, ctx.normalized.as_deref())
            .or_err(HTTPStatus(400), "normalised target")?;
        if let Some(h) = &ctx.host {
            req.insert_header(http::header::HOST, h.authority().as_ref())?;
        }
        let prior = forwarded::prior_chain(req, ctx.trusted_peer);
        self.strip_ours(req)?;
        self.hand_over_identity(req, ctx)?;
        let (peer, https) = (client_ip(session), ctx.https);
        forwarded::set(
            req,
            &Forwarded {
                peer,
                prior: prior.as_ref(),
                https,
            },
        )?;
        req.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS
            && !framing::upgrade_was_asked(session.req_header(), resp)
        {
            tracing::warn!("backend switched protocols the client did not ask for: 502");
            return Error::e_explain(HTTPStatus(502), "unrequested 101 from the backend");
        }
        let cookie_name = &self.sessions.config().cookie.name;
        commands::drop_backend_cookies(resp, &self.own_cookies);
        if let Some(commands) = commands::take_commands(resp, cookie_name) {
            self.apply_commands(session, ctx, commands).await?;
        }
        resp.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        if let Some(cookie) = self.sessions.set_cookie(&ctx.cur, ctx.https) {
            resp.append_header(header::SET_COOKIE, cookie)?;
            // A response that sets a session cookie must never be cached and replayed.
            resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        }
        if let Some(clear) = &ctx.import_clear {
            resp.append_header(header::SET_COOKIE, clear)?;
        }
        Ok(())
    }

    /// What pingora prints with its own error logs: the method and the
    /// normalised path, never the query (it can carry tokens).
    fn request_summary(&self, session: &Downstream, ctx: &Ctx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, ctx.path(req))
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Downstream,
        e: &Error,
        ctx: &mut Ctx,
    ) -> FailToProxy {
        let (problem, kind) = respond::problem_for(e);
        if let Some(kind) = kind {
            METRICS.upstream_error(kind);
        }
        if session.response_written().is_none() {
            let _ = respond_problem(session, &ctx.id, problem, &[]).await;
        }
        FailToProxy {
            error_code: problem.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Downstream, e: Option<&Error>, ctx: &mut Ctx) {
        self.sessions.finish(&ctx.cur).await;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        METRICS.request(outcome(ctx, status), status, ctx.start.elapsed());
        if !self.config.access_log {
            return;
        }
        let req = session.req_header();
        let upstream = ctx
            .upstream()
            .map_or("-", |u| self.upstreams[u].config.name.as_str());
        let decision = match (ctx.endpoint, ctx.decision) {
            (Some(_), _) => "builtin",
            (None, Some(d)) => d.as_str(),
            (None, None) => "bad_request",
        };
        // The query is left out: it can carry tokens.
        tracing::info!(
            target: "access",
            method = %req.method,
            path = ctx.path(req),
            status,
            // The credential's user (Basic, bearer), else the session's.
            user = ctx.identity().map(|i| i.user).or(ctx.cur.user()).unwrap_or("-"),
            upstream,
            duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
            decision,
            request_id = ctx.id.to_str().unwrap_or_default(),
            credential = ctx.credential.as_str(),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

/// How a finished request is counted.
fn outcome(ctx: &Ctx, status: u16) -> Outcome {
    match (ctx.endpoint, ctx.decision) {
        (Some(_), _) => Outcome::Builtin,
        (None, Some(Decision::Allow { .. })) => Outcome::Allowed,
        (None, Some(Decision::Unauthenticated | Decision::StepUp)) if status == 302 => {
            Outcome::Redirected
        }
        (None, Some(Decision::StepUp)) => Outcome::Unauthenticated,
        (None, Some(Decision::Unauthenticated)) => Outcome::Unauthenticated,
        (None, Some(Decision::Forbidden)) => Outcome::Forbidden,
        (None, Some(Decision::NotFound)) => Outcome::NotFound,
        (None, Some(Decision::Misdirected)) => Outcome::BadRequest,
        (None, None) => Outcome::BadRequest,
    }
}
