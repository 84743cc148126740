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
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

pub mod assertion;
pub mod commands;
pub mod current;
pub mod forward_auth;
pub mod forwarded;
pub mod framing;
pub mod identity;
pub mod path;
pub mod request_id;
pub mod routes;
pub mod upstream;

use self::forwarded::TrustedProxies;
use self::routes::{Decision, Identity, Rules};
use crate::auth::endpoints::{self, Auth, Endpoint};
use crate::http::problem::Problem;
use crate::http::reply::PAGE_HEADERS;
use crate::http::{headers, redirect};
use crate::metrics::{Outcome, UpstreamError, METRICS};
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::{SessionStore, StoreError};

type Downstream = pingora::proxy::Session;

pub use self::current::CurrentProxy;
pub use self::upstream::{load_balancer, Upstream, UpstreamOptions};

/// What the request path needs to know, built once by `config`.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Peers whose `X-Forwarded-For`/`-Proto` are believed.
    pub trusted_proxies: TrustedProxies,
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
pub struct Proxy<S> {
    config: Arc<ProxyOptions>,
    sessions: Arc<SessionManager<S>>,
    auth: Arc<Auth>,
    upstreams: Vec<Upstream>,
    /// `login_url?next=`, prepared once.
    login_prefix: String,
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    /// The normalised path when it differs from the request's; `None` = unchanged.
    normalized: Option<String>,
    cur: RequestSession,
    decision: Option<Decision>,
    endpoint: Option<Endpoint>,
    /// The peer is a trusted proxy (its X-Forwarded-* are believed).
    trusted_peer: bool,
    /// The client's address (through trusted proxies), for throttling and sessions.
    client_ip: Option<IpAddr>,
    /// The session store failed this request: no session command may run.
    store_down: bool,
    /// The client reached us over HTTPS (our TLS listener, or a trusted proxy says so).
    https: bool,
    /// This request's `X-Request-Id` ([`request_id`]).
    id: HeaderValue,
}

impl<S: SessionStore> Proxy<S> {
    /// Assemble the proxy.
    pub fn new(
        config: Arc<ProxyOptions>,
        sessions: Arc<SessionManager<S>>,
        auth: Arc<Auth>,
        upstreams: Vec<Upstream>,
    ) -> Self {
        let login_prefix = format!("{}?next=", config.login_url);
        Proxy {
            config,
            sessions,
            auth,
            upstreams,
            login_prefix,
        }
    }

    /// Answer a denied request here; the backend never sees it.
    async fn deny(
        &self,
        session: &mut Downstream,
        ctx: &Ctx,
        decision: Decision,
        path: &str,
    ) -> Result<()> {
        let cookie = self.sessions.set_cookie(&ctx.cur, ctx.https);
        let mut extra: Vec<(HeaderName, String)> = cookie
            .into_iter()
            .map(|c| (header::SET_COOKIE, c))
            .collect();
        let problem = match decision {
            Decision::Unauthenticated if is_navigation(session.req_header()) => {
                let mut location = String::with_capacity(self.login_prefix.len() + path.len() + 16);
                location.push_str(&self.login_prefix);
                redirect::encode_next(&mut location, path, session.req_header().uri.query());
                extra.push((header::LOCATION, location));
                return respond(
                    session,
                    &ctx.id,
                    302,
                    "text/plain; charset=utf-8",
                    Bytes::new(),
                    &extra,
                )
                .await;
            }
            Decision::Unauthenticated => Problem::Unauthenticated,
            Decision::Forbidden => Problem::Forbidden,
            Decision::NotFound => Problem::NotFound,
            Decision::Allow { .. } => return Ok(()),
        };
        respond_problem(session, &ctx.id, problem, &extra).await
    }

    /// Who is on the other end: whether the peer is a trusted proxy, whether
    /// the request came over HTTPS, and the client's address.
    fn note_peer(&self, session: &Downstream, ctx: &mut Ctx) {
        ctx.trusted_peer = !self.config.trusted_proxies.is_empty()
            && client_ip(session).is_some_and(|ip| self.config.trusted_proxies.contains(ip));
        // Our own TLS listener, or a trusted proxy that terminated TLS.
        ctx.https = session.digest().is_some_and(|d| d.ssl_digest.is_some())
            || forwarded::is_https(session.req_header(), ctx.trusted_peer);
        ctx.client_ip = client_ip(session).map(|peer| {
            if !ctx.trusted_peer {
                return peer;
            }
            let xff = session
                .req_header()
                .headers
                .get_all(headers::X_FORWARDED_FOR);
            forwarded::client_address(
                peer,
                xff.iter().filter_map(|v| v.to_str().ok()),
                &self.config.trusted_proxies,
            )
        });
    }

    /// The request's session from its cookie (and a new anonymous one with
    /// `save_uninitialized`). `Ok(true)` when the store cannot answer.
    async fn load_session(&self, session: &Downstream, ctx: &mut Ctx) -> Result<bool> {
        // A store that cannot answer must not turn a signed-in user into an
        // anonymous one: public routes go on without a session, the rest get 503.
        let store_down = match self.sessions.resolve(&session.req_header().headers).await {
            Ok(cur) => {
                ctx.cur = cur;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "session store unavailable");
                true
            }
        };
        ctx.store_down = store_down;
        if !store_down && self.sessions.config().save_uninitialized && ctx.cur.session.is_none() {
            let client = client_info(session, ctx);
            self.sessions
                .ensure_uninitialized(&mut ctx.cur, &client)
                .await
                .map_err(store_error)?;
        }
        Ok(store_down)
    }

    /// Answer a front proxy's forward-auth request ([`forward_auth`]). No
    /// cookie is set: the front proxy does not pass the auth answer's on.
    async fn forward_auth(
        &self,
        session: &mut Downstream,
        ctx: &Ctx,
        convention: forward_auth::Convention,
    ) -> Result<()> {
        let req = session.req_header();
        let answer = match forward_auth::original(convention, req, ctx.trusted_peer) {
            Ok(original) => {
                let who = ctx.cur.session.as_deref().and_then(|s| {
                    s.user().map(|user| Identity {
                        user,
                        roles: s.roles_header(),
                    })
                });
                forward_auth::answer(
                    convention,
                    &self.config.rules,
                    &self.config.identity,
                    &original,
                    who,
                    is_navigation(req),
                    &self.login_prefix,
                )
            }
            Err(why) => {
                if why == forward_auth::Refusal::Untrusted {
                    tracing::warn!(
                        peer = ?client_ip(session),
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
        respond(
            session,
            &ctx.id,
            answer.status.as_u16(),
            "text/plain; charset=utf-8",
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
            match read_body(session, endpoints::MAX_FORM_LEN).await? {
                Some(b) => b,
                None => {
                    return respond_problem(session, &ctx.id, Problem::FormTooLarge, &[]).await;
                }
            }
        } else {
            Vec::new()
        };
        let client = client_info(session, ctx);
        let reply = self
            .auth
            .handle(
                endpoint,
                session.req_header(),
                ctx.normalized
                    .as_deref()
                    .unwrap_or(session.req_header().uri.path()),
                &form,
                &client,
                &mut ctx.cur,
                &self.sessions,
            )
            .await;
        let mut body = reply.body;
        if reply.status.as_u16() >= 400 && reply.content_type == "application/json" {
            let text = String::from_utf8_lossy(&body);
            body =
                crate::http::problem::with_request_id(&text, ctx.id.to_str().unwrap_or_default())
                    .into_bytes();
        }
        let mut resp = ResponseHeader::build(reply.status, Some(9 + reply.headers.len()))?;
        resp.insert_header(header::CONTENT_TYPE, reply.content_type)?;
        resp.insert_header(header::CONTENT_LENGTH, body.len())?;
        resp.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        for (k, v) in PAGE_HEADERS {
            resp.insert_header(k, v)?;
        }
        for (k, v) in reply.headers {
            resp.append_header(k, v)?;
        }
        if let Some(c) = self.sessions.set_cookie(&ctx.cur, ctx.https) {
            resp.append_header(header::SET_COOKIE, c)?;
        }
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
        Ok(())
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
fn is_navigation(req: &RequestHeader) -> bool {
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

async fn respond(
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
async fn respond_problem(
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
async fn respond_store_down(session: &mut Downstream, id: &HeaderValue) -> Result<()> {
    let retry = [(header::RETRY_AFTER, "1".to_owned())];
    respond_problem(session, id, Problem::Unavailable, &retry).await
}

#[async_trait]
impl<S: SessionStore> ProxyHttp for Proxy<S> {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            normalized: None,
            cur: RequestSession::default(),
            decision: None,
            endpoint: None,
            trusted_peer: false,
            client_ip: None,
            store_down: false,
            https: false,
            id: request_id::generate(),
        }
    }

    async fn request_filter(&self, session: &mut Downstream, ctx: &mut Ctx) -> Result<bool> {
        crate::http::connections::head_read(session);
        session.set_keepalive(Some(self.config.client_idle_timeout.as_secs()));
        self.note_peer(session, ctx);
        let fresh = std::mem::replace(&mut ctx.id, HeaderValue::from_static(""));
        ctx.id = request_id::of(session.req_header(), ctx.trusted_peer, fresh);
        let req = session.req_header();
        // A target pingora had to decode lossily cannot be forwarded faithfully.
        let path = match req
            .raw_path_is_utf8()
            .then(|| path::normalize(req.uri.path()))
        {
            Some(Ok(p)) => p,
            _ => {
                respond_problem(session, &ctx.id, Problem::BadRequest, &[]).await?;
                return Ok(true);
            }
        };
        if let std::borrow::Cow::Owned(p) = path {
            ctx.normalized = Some(p);
        }
        let store_down = self.load_session(session, ctx).await?;

        let req = session.req_header();
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        if let Some(endpoint) = endpoints::route(&self.config.auth_prefix, &req.method, path) {
            ctx.endpoint = Some(endpoint);
            if endpoint == Endpoint::Jwks {
                let (status, body) = match self.config.assertions.as_deref() {
                    Some(a) => (200, Bytes::copy_from_slice(a.jwks().as_bytes())),
                    None => (
                        404,
                        Bytes::from(
                            Problem::NotFound.body_with_id(ctx.id.to_str().unwrap_or_default()),
                        ),
                    ),
                };
                respond(session, &ctx.id, status, "application/json", body, &[]).await?;
                return Ok(true);
            }
            let convention = match endpoint {
                Endpoint::AuthNginx => Some(forward_auth::Convention::Nginx),
                Endpoint::AuthForward => Some(forward_auth::Convention::Forward),
                _ => None,
            };
            if let Some(convention) = convention {
                if store_down {
                    respond_store_down(session, &ctx.id).await?;
                } else {
                    self.forward_auth(session, ctx, convention).await?;
                }
                return Ok(true);
            }
            if store_down && !matches!(endpoint, Endpoint::LoginPage | Endpoint::LogoutPage) {
                respond_store_down(session, &ctx.id).await?;
                return Ok(true);
            }
            self.builtin(session, ctx, endpoint).await?;
            return Ok(true);
        }
        let who = ctx.cur.session.as_deref().and_then(|s| {
            s.user().map(|user| Identity {
                user,
                roles: s.roles_header(),
            })
        });
        let decision = self.config.rules.decide(&req.method, path, who);
        ctx.decision = Some(decision);
        if let Decision::Allow { .. } = decision {
            return Ok(false);
        }
        if store_down {
            respond_store_down(session, &ctx.id).await?;
            return Ok(true);
        }
        let path = path.to_owned();
        self.deny(session, ctx, decision, &path).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Downstream,
        ctx: &mut Ctx,
    ) -> Result<Box<HttpPeer>> {
        let Some(Decision::Allow { upstream }) = ctx.decision else {
            return Error::e_explain(InternalError, "upstream_peer without an allow decision");
        };
        let up = &self.upstreams[upstream];
        let backend = up
            .lb
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ConnectNoRoute, "no healthy upstream address"))?;
        let mut peer = HttpPeer::new(backend, false, String::new());
        let c = &up.config;
        peer.options.connection_timeout = Some(c.connect_timeout);
        peer.options.total_connection_timeout = Some(c.connect_timeout);
        peer.options.read_timeout = Some(c.read_timeout);
        peer.options.write_timeout = Some(c.write_timeout);
        peer.options.idle_timeout = Some(c.idle_timeout);
        Ok(Box::new(peer))
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
        // The path the rule was decided on is the path the backend gets, and the
        // target is always origin-form (an absolute-form target is not passed on).
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        let origin_form_unchanged = ctx.normalized.is_none()
            && req.uri.path_and_query().map(|pq| pq.as_str().as_bytes()) == Some(req.raw_path());
        if !origin_form_unchanged {
            let target = match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            let uri = target
                .parse::<http::Uri>()
                .or_err(HTTPStatus(400), "normalised target")?;
            req.set_uri(uri);
        }

        // A trusted proxy's X-Forwarded-For is extended; anyone else's is replaced.
        let prior_xff = if ctx.trusted_peer {
            req.headers.get(headers::X_FORWARDED_FOR).cloned()
        } else {
            None
        };
        identity::strip_client_identity(req, &self.config.identity);
        let cookie = &self.sessions.config().cookie;
        identity::strip_session_cookie(req, &cookie.name)?;
        if let Some(name) = self.auth.prelogin_cookie(cookie) {
            identity::strip_session_cookie(req, name)?;
        }

        if let Some(s) = ctx.cur.session.as_deref() {
            if let Some(user) = s.user() {
                let names = &self.config.identity;
                req.insert_header(names.user.clone(), user)?;
                req.insert_header(names.roles.clone(), s.roles_header())?;
            }
            if let (Some(Decision::Allow { upstream }), Some(signer)) =
                (ctx.decision, self.config.assertions.as_deref())
            {
                if let Some(audience) = self.upstreams[upstream]
                    .config
                    .assertion_audience
                    .as_deref()
                {
                    if let Some(token) = signer.of(s, upstream, audience) {
                        req.insert_header(assertion::X_USER_ASSERTION, token)?;
                    }
                }
            }
            // Session data is the opted-in application's, not every upstream's.
            let upstream_may_see_data = matches!(ctx.decision,
                Some(Decision::Allow { upstream }) if self.upstreams[upstream].config.session_commands);
            if let Some(data) = s.data_header().filter(|_| upstream_may_see_data) {
                req.insert_header(headers::X_SESSION_DATA, data)?;
            }
        }
        if let Some(ip) = client_ip(session) {
            match prior_xff.as_ref().and_then(|v| v.to_str().ok()) {
                Some(prior) => {
                    req.insert_header(headers::X_FORWARDED_FOR, format!("{prior}, {ip}"))?
                }
                None => req.insert_header(headers::X_FORWARDED_FOR, ip.to_string())?,
            }
        }
        req.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        req.insert_header(
            headers::X_FORWARDED_PROTO,
            if ctx.https { "https" } else { "http" },
        )?;
        let req_in = session.req_header();
        let host = req_in.headers.get(header::HOST).cloned().or_else(|| {
            req_in
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        if let Some(host) = host {
            req.insert_header(headers::X_FORWARDED_HOST, host)?;
        }
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
        let commands = commands::take_commands(resp, &self.sessions.config().cookie.name);
        if let Some(commands) = commands {
            let allowed = match ctx.decision {
                Some(Decision::Allow { upstream }) => {
                    self.upstreams[upstream].config.session_commands
                }
                _ => false,
            };
            if allowed && ctx.store_down {
                // The session could not be read: a logout would clear the cookie
                // of a session that lives on, a login could replace it. Neither.
                return Error::e_explain(
                    HTTPStatus(503),
                    "session command while the store is down",
                );
            }
            if allowed {
                let client = client_info(session, ctx);
                let cur = &mut ctx.cur;
                if commands.logout {
                    self.sessions.logout(cur).await.map_err(store_error)?;
                }
                if let Some(login) = commands.login {
                    self.sessions
                        .login(cur, login.user, login.roles, &client)
                        .await
                        .map_err(store_error)?;
                }
                if let Some(data) = commands.data {
                    self.sessions
                        .merge_data(cur, data, &client)
                        .await
                        .map_err(store_error)?;
                }
            } else {
                tracing::warn!(
                    "session command from an upstream without session_commands = true ignored"
                );
            }
        }
        resp.insert_header(request_id::X_REQUEST_ID, &ctx.id)?;
        if let Some(cookie) = self.sessions.set_cookie(&ctx.cur, ctx.https) {
            resp.append_header(header::SET_COOKIE, cookie)?;
            // A response that sets a session cookie must never be cached and replayed.
            resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        }
        Ok(())
    }

    /// What pingora prints with its own error logs: the method and the
    /// normalised path, never the query (it can carry tokens).
    fn request_summary(&self, session: &Downstream, ctx: &Ctx) -> String {
        let req = session.req_header();
        format!(
            "{} {}",
            req.method,
            ctx.normalized.as_deref().unwrap_or(req.uri.path())
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Downstream,
        e: &Error,
        ctx: &mut Ctx,
    ) -> FailToProxy {
        let kind = match e.etype() {
            ConnectRefused => Some(UpstreamError::ConnectRefused),
            ConnectTimedout => Some(UpstreamError::ConnectTimeout),
            ReadTimedout => Some(UpstreamError::ReadTimeout),
            WriteTimedout => Some(UpstreamError::WriteTimeout),
            ConnectNoRoute => Some(UpstreamError::NoHealthyUpstream),
            _ if e.esource() == &ErrorSource::Upstream => Some(UpstreamError::Other),
            _ => None,
        };
        if let Some(kind) = kind {
            METRICS.upstream_error(kind);
        }
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
        let code = problem.status();
        // The body is generic on purpose: no upstream address, no error detail.
        if session.response_written().is_none() {
            let _ = respond_problem(session, &ctx.id, problem, &[]).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Downstream, e: Option<&Error>, ctx: &mut Ctx) {
        self.sessions.finish(&ctx.cur).await;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let outcome = match (ctx.endpoint, ctx.decision) {
            (Some(_), _) => Outcome::Builtin,
            (None, Some(Decision::Allow { .. })) => Outcome::Allowed,
            (None, Some(Decision::Unauthenticated)) if status == 302 => Outcome::Redirected,
            (None, Some(Decision::Unauthenticated)) => Outcome::Unauthenticated,
            (None, Some(Decision::Forbidden)) => Outcome::Forbidden,
            (None, Some(Decision::NotFound)) => Outcome::NotFound,
            (None, None) => Outcome::BadRequest,
        };
        METRICS.request(outcome, status, ctx.start.elapsed());
        if !self.config.access_log {
            return;
        }
        let req = session.req_header();
        let upstream = match ctx.decision {
            Some(Decision::Allow { upstream }) => self.upstreams[upstream].config.name.as_str(),
            _ => "-",
        };
        let decision = match (ctx.endpoint, ctx.decision) {
            (Some(_), _) => "builtin",
            (None, Some(d)) => d.as_str(),
            (None, None) => "bad_request",
        };
        // The query is left out: it can carry tokens.
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        tracing::info!(
            target: "access",
            method = %req.method,
            path,
            status,
            user = ctx.cur.user().unwrap_or("-"),
            upstream,
            duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
            decision,
            request_id = ctx.id.to_str().unwrap_or_default(),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}
