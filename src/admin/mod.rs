//! The admin service: its own listener (default `127.0.0.1:9091`), separate
//! from client traffic.
//!
//! | endpoint                        | guard | does                                               |
//! |---------------------------------|-------|----------------------------------------------------|
//! | `GET /healthz`                  | none  | 200 while the process is up                        |
//! | `GET /readyz`                   | none  | 200 when at least one upstream address is healthy  |
//! | `GET /jwks.json`                | none  | the identity assertion's public keys (or 404)      |
//! | `GET /`                         | token | HTML: sessions, filter by user, revoke buttons     |
//! | `GET /sessions?user=&limit=&cursor=` | token | JSON page of sessions, ordered by key        |
//! | `GET /sessions/{key}`           | token | one session                                        |
//! | `DELETE /sessions/{key}`        | token | revoke one session (204, or 404)                   |
//! | `POST /sessions/{key}/revoke`   | token + same origin | the HTML page's revoke button; 303   |
//! | `DELETE /users/{user}/sessions` | token | revoke all of a user's sessions: `{"revoked": n}`  |
//! | `POST /users/{user}/revoke`     | token + same origin | the HTML page's "revoke all" button; 303 |
//! | `GET /keys?user=`               | token | API keys (no secret, no hash)                      |
//! | `POST /keys`                    | token | make a key: `{"owner","name","roles"?,"expires_in"?}`; 201 with the key, once |
//! | `DELETE /keys/{id}`             | token | revoke one key (204, or 404)                       |
//! | `DELETE /users/{user}/keys`     | token | revoke all of a user's keys: `{"revoked": n}`      |
//! | `POST /keys/new`, `POST /keys/{id}/revoke` | token + same origin | the HTML page's key forms |
//! | `GET /factors`                  | token | who has which second factor (no secret)            |
//! | `DELETE /users/{user}/factors`  | token | reset a user's second factors (204, or 404)        |
//! | `POST /users/{user}/factors/reset` | token + same origin | the HTML page's reset button; 303 |
//! | `GET /stats`                    | token | live sessions, logins, evictions, capacity         |
//! | `GET /metrics`                  | token | Prometheus text                                    |
//!
//! The token guard is [`guard`]: Bearer, or Basic with the token as the
//! password, compared in constant time. Without a configured token, only the two health endpoints answer;
//! a non-loopback listener without a token is a config error. GET never
//! changes anything. Sessions are shown by key (SHA-256 of the id), never by
//! raw id or cookie.
//!
//! Files: this one routes (one function per endpoint, in [`api`] and
//! [`page`]) and holds the response helpers; [`guard`] checks the token;
//! [`probe`] is the `sessiongate healthcheck` client of `/healthz`.

mod api;
mod factors;
mod guard;
mod keys;
mod page;
mod probe;

pub use self::probe::healthcheck;

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::protocols::http::ServerSession;

use self::guard::Token;
use crate::auth::Auth;
use crate::http::problem::Problem;
use crate::session::manager::SessionManager;
use crate::session::signing::Secret;
use crate::session::{SessionStore, StoreError};

/// The admin application.
pub(crate) struct Admin<S> {
    sessions: Arc<SessionManager<S>>,
    /// This generation's users and API keys.
    auth: Arc<Auth>,
    token: Token,
    upstreams: Vec<Arc<LoadBalancer<RoundRobin>>>,
    /// The identity assertion's JWKS, when `[assertion]` is configured.
    jwks: Option<String>,
}

impl<S: SessionStore> Admin<S> {
    /// The admin app over `sessions`; `token` `None` leaves only health endpoints.
    pub(crate) fn new(
        sessions: Arc<SessionManager<S>>,
        auth: Arc<Auth>,
        token: Option<&Secret>,
        upstreams: Vec<Arc<LoadBalancer<RoundRobin>>>,
        jwks: Option<String>,
    ) -> Self {
        Admin {
            sessions,
            auth,
            token: Token::new(token),
            upstreams,
            jwks,
        }
    }

    fn ready(&self) -> bool {
        self.sessions.store().healthy()
            && self.upstreams.iter().any(|lb| {
                let backends = lb.backends();
                backends.get_backend().iter().any(|b| backends.ready(b))
            })
    }

    /// `GET /readyz`
    fn readyz(&self) -> Response<Vec<u8>> {
        if self.ready() {
            text(StatusCode::OK, "ready\n")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no healthy upstream or session store\n",
            )
        }
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        req: &pingora::http::RequestHeader,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        match (method, path) {
            (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => return self.readyz(),
            // Public keys: no token needed, as on the client listener.
            (&Method::GET, "/jwks.json") => {
                return match &self.jwks {
                    Some(j) => {
                        with_type(StatusCode::OK, j.clone().into_bytes(), "application/json")
                    }
                    None => problem(Problem::NotFound),
                }
            }
            _ => {}
        }
        if !self.token.allows(req) {
            return unauthorized();
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, [""]) => self.page(query).await,
            (&Method::GET, ["sessions"]) => self.list_sessions(query).await,
            (&Method::GET, ["sessions", key]) => self.show_session(key).await,
            (&Method::DELETE, ["sessions", key]) => self.revoke_session(key).await,
            (&Method::POST, ["sessions", key, "revoke"]) => {
                self.revoke_from_page(key, query, req).await
            }
            (&Method::DELETE, ["users", user, "sessions"]) => self.revoke_user(user).await,
            (&Method::POST, ["users", user, "revoke"]) => {
                self.revoke_user_from_page(user, req).await
            }
            (&Method::GET, ["keys"]) => self.list_keys(query).await,
            (&Method::POST, ["keys"]) => self.create_key(req, body).await,
            (&Method::DELETE, ["keys", id]) => self.revoke_key(id).await,
            (&Method::POST, ["keys", id, "revoke"]) => self.revoke_key_from_page(id, req).await,
            (&Method::POST, ["keys", "new"]) => self.create_key_from_page(body, req).await,
            (&Method::DELETE, ["users", user, "keys"]) => self.revoke_user_keys(user).await,
            (&Method::GET, ["factors"]) => self.list_factors().await,
            (&Method::DELETE, ["users", user, "factors"]) => self.reset_factors(user).await,
            (&Method::POST, ["users", user, "factors", "reset"]) => {
                self.reset_factors_from_page(user, req).await
            }
            (&Method::GET, ["stats"]) => self.stats().await,
            (&Method::GET, ["metrics"]) => self.metrics().await,
            (
                _,
                [""]
                | ["sessions"]
                | ["sessions", _]
                | ["users", _, "sessions"]
                | ["keys"]
                | ["keys", _]
                | ["users", _, "keys"]
                | ["factors"]
                | ["users", _, "factors"]
                | ["stats"]
                | ["metrics"],
            ) => problem(Problem::MethodNotAllowed),
            _ => problem(Problem::NotFound),
        }
    }
}

#[async_trait]
impl<S: SessionStore> ServeHttp for Admin<S> {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        crate::http::connections::head_read(session);
        // A key's JSON or the page's form, at most MAX_BODY; the rest is
        // drained so the connection can be reused.
        let body = read_body(session).await;
        let req = session.req_header();
        let (method, path, query) = (
            req.method.clone(),
            req.uri.path().to_owned(),
            req.uri.query().map(str::to_owned),
        );
        let mut resp = match body {
            Some(body) => {
                self.route(&method, &path, query.as_deref(), req, &body)
                    .await
            }
            None => problem(Problem::FormTooLarge),
        };
        let len = resp.body().len();
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        resp.headers_mut()
            .entry(http::header::CACHE_CONTROL)
            .or_insert(http::HeaderValue::from_static("no-store"));
        resp
    }
}

/// The admin app of the current config generation (its token and upstreams
/// change on reload), taken once per request.
pub(crate) struct CurrentAdmin<S> {
    current: Arc<ArcSwap<Admin<S>>>,
}

impl<S> CurrentAdmin<S> {
    /// Serve whatever admin app `current` holds.
    pub(crate) fn new(current: Arc<ArcSwap<Admin<S>>>) -> Self {
        CurrentAdmin { current }
    }
}

#[async_trait]
impl<S: SessionStore> ServeHttp for CurrentAdmin<S> {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let admin = self.current.load_full();
        admin.response(session).await
    }
}

/// The largest admin request body read (a key's JSON, the page's forms).
const MAX_BODY: usize = 16 * 1024;

/// The request body, or `None` when it is longer than [`MAX_BODY`] (or unreadable).
async fn read_body(session: &mut ServerSession) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    let _ = session.drain_request_body().await;
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body),
            Err(_) => return None,
        }
    }
}

fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    with_type(status, v.to_string().into_bytes(), "application/json")
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    with_type(
        status,
        body.as_bytes().to_vec(),
        "text/plain; charset=utf-8",
    )
}

fn empty(status: StatusCode) -> Response<Vec<u8>> {
    let mut resp = Response::new(Vec::new());
    *resp.status_mut() = status;
    resp
}

/// The one JSON error body.
fn problem(p: Problem) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(p.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_type(status, p.body().as_bytes().to_vec(), "application/json")
}

/// 401 with the two schemes a client may answer with.
fn unauthorized() -> Response<Vec<u8>> {
    let mut resp = problem(Problem::Unauthorized);
    let h = resp.headers_mut();
    h.append(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"sessiongate admin\""),
    );
    h.append(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Basic realm=\"sessiongate admin\", charset=\"UTF-8\""),
    );
    resp
}

fn unavailable(e: &StoreError) -> Response<Vec<u8>> {
    tracing::error!(error = %e, "session store unavailable");
    problem(Problem::Unavailable)
}
