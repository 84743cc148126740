//! The pingora glue: each `ProxyHttp` phase translates between pingora and the
//! pure modules (`routes`, `cookie`, `session`, `identity`) and does nothing else.
//!
//! - `request_filter`: normalise the path, read the session cookie, load the
//!   session, decide; denied requests are answered here and never reach a backend.
//! - `upstream_peer`: the decided upstream, round robin over healthy addresses,
//!   with every timeout set explicitly.
//! - `upstream_request_filter`: the normalised path, identity headers rebuilt
//!   from the session only, the session cookie removed.
//! - `response_filter`: the backend's session commands applied and removed, and
//!   our `Set-Cookie` added.
//! - `fail_to_proxy`: 502 / 504 with a generic body that names no address.
//! - `logging`: one access event per request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use crate::config::{Config, UpstreamConfig};
use crate::cookie::{self, SessionId, Signer};
use crate::identity::{self, Command};
use crate::routes::{self, Decision, Identity};
use crate::session::{now_ms, Session, SessionKey, SessionStore};

/// One upstream, ready for the request path.
pub struct Upstream {
    pub config: UpstreamConfig,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
}

/// The proxy: configuration, signer, store and upstreams, built once at start-up.
pub struct Gate<S> {
    config: Arc<Config>,
    signer: Signer,
    store: Arc<S>,
    upstreams: Vec<Upstream>,
    /// `login_url?next=` prepared once.
    login_prefix: String,
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    /// The normalised path when it differs from the request's; `None` = unchanged.
    normalized: Option<String>,
    session: Option<Arc<Session>>,
    /// The cookie verified with an older secret: send it again, freshly signed.
    resign: Option<SessionId>,
    decision: Option<Decision>,
    /// Set-Cookie values to send with the response.
    set_cookies: Vec<String>,
}

impl<S: SessionStore> Gate<S> {
    /// Assemble the proxy from a validated config and the upstreams `main` built.
    pub fn new(config: Arc<Config>, store: Arc<S>, upstreams: Vec<Upstream>) -> Self {
        let signer = Signer::new(&config.session.cookie.name, &config.session.secrets);
        let login_prefix = format!("{}?next=", config.auth.login_url);
        Gate {
            config,
            signer,
            store,
            upstreams,
            login_prefix,
        }
    }

    /// The session the request's cookie names, if the cookie verifies and the
    /// session is live. A cookie that fails is logged once and means "anonymous".
    async fn session_from_cookie(&self, session: &Session_, ctx: &mut Ctx) -> Result<()> {
        let name = self.config.session.cookie.name.as_str();
        let mut saw_ours = false;
        for value in session.req_header().headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for candidate in cookie::find(value, name) {
                saw_ours = true;
                let Some(verified) = self.signer.verify(candidate) else {
                    continue;
                };
                let key = SessionKey::of(&verified.id);
                let loaded = self
                    .store
                    .load(&key)
                    .await
                    .map_err(|e| Error::because(HTTPStatus(503), "session store", e))?;
                if let Some(s) = loaded {
                    if verified.resign {
                        ctx.resign = Some(verified.id);
                    }
                    ctx.session = Some(s);
                    return Ok(());
                }
            }
        }
        if saw_ours {
            // Fixed message: never the value, never which check failed.
            tracing::warn!("possibly suspicious activity: session cookie did not verify or has no live session");
        }
        Ok(())
    }

    /// Answer a denied request here; the backend never sees it.
    async fn deny(&self, session: &mut Session_, decision: Decision, path: &str) -> Result<()> {
        match decision {
            Decision::Unauthenticated if is_navigation(session.req_header()) => {
                let mut location = String::with_capacity(self.login_prefix.len() + path.len() + 16);
                location.push_str(&self.login_prefix);
                identity::encode_next(&mut location, path, session.req_header().uri.query());
                respond(
                    session,
                    302,
                    "text/plain; charset=utf-8",
                    b"",
                    &[("Location", location)],
                )
                .await
            }
            Decision::Unauthenticated => {
                respond_json(session, 401, r#"{"error":"unauthenticated"}"#).await
            }
            Decision::Forbidden => respond_json(session, 403, r#"{"error":"forbidden"}"#).await,
            Decision::NotFound => respond_json(session, 404, r#"{"error":"not found"}"#).await,
            Decision::Allow { .. } => Ok(()),
        }
    }

    fn cookie_for(&self, id: &SessionId) -> String {
        self.config.session.cookie.set_cookie(&self.signer.sign(id))
    }

    /// Apply the backend's session commands (DESIGN.md §4.2).
    async fn apply_commands(
        &self,
        commands: identity::Commands,
        client: &ClientInfo,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let store_err = |e| Error::because(HTTPStatus(503), "session store", e);
        let mut current = ctx.session.clone();
        if commands.logout {
            if let Some(s) = current.take() {
                self.store.destroy(&s.key).await.map_err(store_err)?;
            }
            ctx.set_cookies
                .push(self.config.session.cookie.clear_cookie());
            ctx.resign = None;
        }
        if let Some(Command { user, roles }) = commands.login {
            // A new id at every login, the old session destroyed: no fixation.
            if let Some(s) = current.take() {
                self.store.destroy(&s.key).await.map_err(store_err)?;
            }
            let (id, s) = self.new_session(Some(user), roles, serde_json::Map::new(), client);
            current = Some(self.store.create(s).await.map_err(store_err)?);
            ctx.set_cookies.retain(|_| false);
            ctx.set_cookies.push(self.cookie_for(&id));
            ctx.resign = None;
        }
        if let Some(data) = commands.data {
            match current {
                Some(s) => {
                    let mut changed = (*s).clone();
                    let mut merged = changed.data.clone();
                    merged.extend(data);
                    changed.set_data(merged);
                    self.store.update(changed).await.map_err(store_err)?;
                }
                None => {
                    let (id, s) = self.new_session(None, Vec::new(), data, client);
                    self.store.create(s).await.map_err(store_err)?;
                    ctx.set_cookies.push(self.cookie_for(&id));
                }
            }
        }
        Ok(())
    }

    fn new_session(
        &self,
        user: Option<String>,
        roles: Vec<String>,
        data: serde_json::Map<String, serde_json::Value>,
        client: &ClientInfo,
    ) -> (SessionId, Session) {
        let id = SessionId::generate();
        let now = now_ms();
        let cfg = &self.config.session;
        let mut s = Session::new(
            SessionKey::of(&id),
            user,
            roles,
            data,
            now,
            now + cfg.absolute_timeout.as_millis() as u64,
            cfg.idle_timeout,
        );
        s.client_ip = client.ip;
        s.user_agent = client.user_agent.clone();
        (id, s)
    }
}

type Session_ = pingora::proxy::Session;

/// What a new session records about its client.
struct ClientInfo {
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

fn client_ip(session: &Session_) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
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

async fn respond(
    session: &mut Session_,
    status: u16,
    content_type: &'static str,
    body: &'static [u8],
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    for (k, v) in extra {
        resp.append_header(*k, v.as_str())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body)), true)
        .await?;
    Ok(())
}

async fn respond_json(session: &mut Session_, status: u16, body: &'static str) -> Result<()> {
    respond(session, status, "application/json", body.as_bytes(), &[]).await
}

#[async_trait]
impl<S: SessionStore> ProxyHttp for Gate<S> {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            normalized: None,
            session: None,
            resign: None,
            decision: None,
            set_cookies: Vec::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session_, ctx: &mut Ctx) -> Result<bool> {
        session.set_keepalive(Some(self.config.client_idle_timeout.as_secs()));
        let req = session.req_header();
        // A target pingora had to decode lossily cannot be forwarded faithfully.
        let path = match req
            .raw_path_is_utf8()
            .then(|| routes::normalize(req.uri.path()))
        {
            Some(Ok(p)) => p,
            _ => {
                respond_json(session, 400, r#"{"error":"bad request"}"#).await?;
                return Ok(true);
            }
        };
        if let std::borrow::Cow::Owned(p) = path {
            ctx.normalized = Some(p);
        }

        self.session_from_cookie(session, ctx).await?;

        let req = session.req_header();
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        let who = ctx.session.as_deref().and_then(|s| {
            s.user.as_deref().map(|user| Identity {
                user,
                roles: &s.roles,
            })
        });
        let decision = self.config.rules.decide(&req.method, path, who);
        ctx.decision = Some(decision);
        if let Decision::Allow { .. } = decision {
            return Ok(false);
        }
        let path = path.to_owned();
        self.deny(session, decision, &path).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session_, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
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
        session: &mut Session_,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
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

        identity::strip_client_identity(req);
        identity::strip_session_cookie(req, &self.config.session.cookie.name)?;

        if let Some(s) = ctx.session.as_deref() {
            if let Some(user) = &s.user {
                req.insert_header(identity::X_USER, user.as_str())?;
                req.insert_header(identity::X_USER_ROLES, s.roles_header())?;
            }
            if let Some(data) = s.data_header() {
                req.insert_header(identity::X_SESSION_DATA, data)?;
            }
        }
        if let Some(ip) = client_ip(session) {
            req.insert_header(identity::X_FORWARDED_FOR, ip.to_string())?;
        }
        req.insert_header(identity::X_FORWARDED_PROTO, "http")?;
        let host = session
            .req_header()
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| {
                session
                    .req_header()
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
        if let Some(host) = host {
            req.insert_header(identity::X_FORWARDED_HOST, host)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session_,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let name = &self.config.session.cookie.name;
        let commands = identity::take_commands(resp, name);
        let allowed = match ctx.decision {
            Some(Decision::Allow { upstream }) => self.upstreams[upstream].config.session_commands,
            _ => false,
        };
        if let Some(commands) = commands {
            if allowed {
                let client = ClientInfo {
                    ip: client_ip(session),
                    user_agent: session
                        .req_header()
                        .headers
                        .get(header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.chars().take(256).collect()),
                };
                self.apply_commands(commands, &client, ctx).await?;
            } else {
                tracing::warn!(
                    "session command from an upstream without session_commands = true ignored"
                );
            }
        }
        if let Some(id) = ctx.resign.take() {
            // Rotation: the cookie verified with an older secret; re-sign it now.
            ctx.set_cookies.push(self.cookie_for(&id));
        }
        if !ctx.set_cookies.is_empty() {
            for c in ctx.set_cookies.drain(..) {
                resp.append_header(header::SET_COOKIE, c)?;
            }
            // A response that sets a session cookie must never be cached and replayed.
            resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session_,
        e: &Error,
        _ctx: &mut Ctx,
    ) -> FailToProxy {
        let (code, body): (u16, &'static str) = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => {
                (504, r#"{"error":"gateway timeout"}"#)
            }
            ConnectRefused | ConnectNoRoute | ConnectError => (502, r#"{"error":"bad gateway"}"#),
            HTTPStatus(400) => (400, r#"{"error":"bad request"}"#),
            HTTPStatus(503) => (503, r#"{"error":"service unavailable"}"#),
            HTTPStatus(c) if (400..600).contains(c) => (*c, r#"{"error":"error"}"#),
            _ => match e.esource() {
                ErrorSource::Downstream => (400, r#"{"error":"bad request"}"#),
                ErrorSource::Internal | ErrorSource::Unset => {
                    (500, r#"{"error":"internal error"}"#)
                }
                ErrorSource::Upstream => (502, r#"{"error":"bad gateway"}"#),
            },
        };
        // The body is generic on purpose: no upstream address, no error detail.
        if session.response_written().is_none() {
            let _ = respond(session, code, "application/json", body.as_bytes(), &[]).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session_, e: Option<&Error>, ctx: &mut Ctx) {
        if !self.config.log.access_log {
            return;
        }
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let user = ctx
            .session
            .as_deref()
            .and_then(|s| s.user.as_deref())
            .unwrap_or("-");
        let upstream = match ctx.decision {
            Some(Decision::Allow { upstream }) => self.upstreams[upstream].config.name.as_str(),
            _ => "-",
        };
        // The query is left out: it can carry tokens.
        let path = ctx.normalized.as_deref().unwrap_or(req.uri.path());
        tracing::info!(
            target: "access",
            method = %req.method,
            path,
            status,
            user,
            upstream,
            duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
            decision = ctx.decision.map_or("bad_request", |d| d.as_str()),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

/// Health-check and build the load balancer for one upstream.
///
/// # Errors
/// If pingora rejects the addresses (it parses them again).
pub fn load_balancer(config: &UpstreamConfig) -> std::io::Result<LoadBalancer<RoundRobin>> {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(config.addrs.iter().copied())?;
    let mut hc = pingora::lb::health_check::TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout = Some(config.connect_timeout);
    lb.set_health_check(hc);
    lb.health_check_frequency = Some(config.health_check_interval.max(Duration::from_millis(100)));
    Ok(lb)
}
