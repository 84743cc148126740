//! The admin service: its own listener (default `127.0.0.1:9091`), separate
//! from client traffic.
//!
//! | endpoint                        | guard | does                                               |
//! |---------------------------------|-------|----------------------------------------------------|
//! | `GET /healthz`                  | none  | 200 while the process is up                        |
//! | `GET /readyz`                   | none  | 200 when at least one upstream address is healthy  |
//! | `GET /`                         | token | HTML: sessions, filter by user, revoke buttons     |
//! | `GET /sessions?user=&limit=&cursor=` | token | JSON page of sessions, ordered by key        |
//! | `GET /sessions/{key}`           | token | one session                                        |
//! | `DELETE /sessions/{key}`        | token | revoke one session (204, or 404)                   |
//! | `POST /sessions/{key}/revoke`   | token + same origin | the HTML page's revoke button; 303   |
//! | `DELETE /users/{user}/sessions` | token | revoke all of a user's sessions: `{"revoked": n}`  |
//! | `GET /stats`                    | token | live sessions, logins, evictions, capacity         |
//! | `GET /metrics`                  | token | Prometheus text                                    |
//!
//! The token is `Authorization: Bearer <token>`, or HTTP Basic with the token as
//! the password (so a browser can open the HTML page without the token ever
//! being in a URL). It is compared in constant time (SHA-256 of both, then
//! `subtle`). Without a configured token, only the two health endpoints answer;
//! a non-loopback listener without a token is a config error. GET never
//! changes anything. Sessions are shown by key (SHA-256 of the id), never by
//! raw id or cookie.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::html::{escape, wide_page};
use crate::metrics::{StoreGauges, METRICS};
use crate::session::manager::SessionManager;
use crate::session::signing::Secret;
use crate::session::{Session, SessionKey, SessionStore};

/// Most sessions in one page of `GET /sessions`.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// The admin application.
pub struct Admin<S> {
    sessions: Arc<SessionManager<S>>,
    token_digest: Option<[u8; 32]>,
    upstreams: Vec<Arc<LoadBalancer<RoundRobin>>>,
}

impl<S: SessionStore> Admin<S> {
    /// The admin app over `sessions`; `token` `None` leaves only health endpoints.
    pub fn new(
        sessions: Arc<SessionManager<S>>,
        token: Option<&Secret>,
        upstreams: Vec<Arc<LoadBalancer<RoundRobin>>>,
    ) -> Self {
        let token_digest = token.map(|t| Sha256::digest(t.expose()).into());
        Admin {
            sessions,
            token_digest,
            upstreams,
        }
    }

    /// The explicit guard every non-health handler passes.
    fn authorized(&self, req: &pingora::http::RequestHeader) -> bool {
        let Some(expected) = &self.token_digest else {
            return false;
        };
        let Some(value) = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let presented: Vec<u8> = if let Some(t) = value.strip_prefix("Bearer ") {
            t.trim().as_bytes().to_vec()
        } else if let Some(b) = value.strip_prefix("Basic ") {
            match decode_base64(b.trim()) {
                Some(creds) => match creds.iter().position(|&c| c == b':') {
                    Some(i) => creds[i + 1..].to_vec(),
                    None => return false,
                },
                None => return false,
            }
        } else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&presented).into();
        digest.ct_eq(expected).into()
    }

    fn ready(&self) -> bool {
        self.sessions.store().healthy()
            && self.upstreams.iter().any(|lb| {
                let backends = lb.backends();
                backends.get_backend().iter().any(|b| backends.ready(b))
            })
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        match (method, path) {
            (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => {
                return if self.ready() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: no healthy upstream or session store\n",
                    )
                };
            }
            _ => {}
        }
        if !self.authorized(req) {
            let mut resp = json_resp(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
            let h = resp.headers_mut();
            h.append(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"sessiongate admin\""),
            );
            h.append(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(
                    "Basic realm=\"sessiongate admin\", charset=\"UTF-8\"",
                ),
            );
            return resp;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let store = self.sessions.store();
        match (method, segments.as_slice()) {
            (&Method::GET, [""]) => self.page(query).await,
            (&Method::GET, ["sessions"]) => {
                let q = ListQuery::parse(query);
                match self.list(&q).await {
                    Ok((items, next)) => json_resp(
                        StatusCode::OK,
                        json!({"items": items.iter().map(|s| item(s)).collect::<Vec<_>>(), "next_cursor": next}),
                    ),
                    Err(e) => unavailable(&e),
                }
            }
            (&Method::GET, ["sessions", key]) => match self.find(key).await {
                Ok(Some(s)) => json_resp(StatusCode::OK, item(&s)),
                Ok(None) => not_found(),
                Err(e) => unavailable(&e),
            },
            (&Method::DELETE, ["sessions", key]) => match SessionKey::from_hex(key) {
                Some(k) => match store.destroy(&k).await {
                    Ok(true) => empty(StatusCode::NO_CONTENT),
                    Ok(false) => not_found(),
                    Err(e) => unavailable(&e),
                },
                None => not_found(),
            },
            (&Method::POST, ["sessions", key, "revoke"]) => {
                if !crate::http::origin::same_origin(req) {
                    return json_resp(
                        StatusCode::FORBIDDEN,
                        json!({"error": "cross-origin request"}),
                    );
                }
                if let Some(k) = SessionKey::from_hex(key) {
                    if let Err(e) = store.destroy(&k).await {
                        return unavailable(&e);
                    }
                }
                let back = match ListQuery::parse(query).user {
                    Some(u) => format!(
                        "/?user={}",
                        form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
                    ),
                    None => "/".to_owned(),
                };
                let mut resp = empty(StatusCode::SEE_OTHER);
                resp.headers_mut().insert(
                    http::header::LOCATION,
                    http::HeaderValue::from_str(&back)
                        .unwrap_or(http::HeaderValue::from_static("/")),
                );
                resp
            }
            (&Method::DELETE, ["users", user, "sessions"]) => {
                let user = percent_decode(user);
                match self.sessions.destroy_user(&user).await {
                    Ok(n) => json_resp(StatusCode::OK, json!({"revoked": n})),
                    Err(e) => unavailable(&e),
                }
            }
            (&Method::GET, ["stats"]) => match self.stats().await {
                Ok(v) => json_resp(StatusCode::OK, v),
                Err(e) => unavailable(&e),
            },
            (&Method::GET, ["metrics"]) => {
                let gauges = match store.stats().await {
                    Ok(s) => StoreGauges {
                        sessions: s.entries,
                        evictions: s.evictions,
                        expirations: s.expirations,
                        displaced: s.displaced,
                        capacity: s.capacity,
                    },
                    Err(_) => StoreGauges::default(),
                };
                let mut resp = Response::new(METRICS.render(gauges).into_bytes());
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            (
                _,
                [""]
                | ["sessions"]
                | ["sessions", _]
                | ["users", _, "sessions"]
                | ["stats"]
                | ["metrics"],
            ) => json_resp(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            ),
            _ => not_found(),
        }
    }

    async fn find(&self, key: &str) -> Result<Option<Arc<Session>>, crate::session::StoreError> {
        let Some(k) = SessionKey::from_hex(key) else {
            return Ok(None);
        };
        // Listing does not slide expiry; `load` would.
        Ok(self
            .sessions
            .store()
            .list()
            .await?
            .into_iter()
            .find(|s| s.key == k))
    }

    /// One page, ordered by key: every session that exists throughout a walk is
    /// returned exactly once, however many are added or removed meanwhile.
    async fn list(
        &self,
        q: &ListQuery,
    ) -> Result<(Vec<Arc<Session>>, Option<String>), crate::session::StoreError> {
        let store = self.sessions.store();
        let all = match &q.user {
            Some(u) => store.list_user(u).await?,
            None => store.list().await?,
        };
        let mut page: Vec<Arc<Session>> = all
            .into_iter()
            .filter(|s| q.after.is_none_or(|c| s.key > c))
            .collect();
        let more = page.len() > q.limit;
        if more {
            // Only the first `limit` by key are wanted: select them in O(n)
            // rather than sorting a million sessions for one page.
            page.select_nth_unstable_by_key(q.limit, |s| s.key);
            page.truncate(q.limit);
        }
        page.sort_unstable_by_key(|s| s.key);
        let next = if more {
            page.last().map(|s| s.key.to_hex())
        } else {
            None
        };
        Ok((page, next))
    }

    async fn stats(&self) -> Result<serde_json::Value, crate::session::StoreError> {
        let store = self.sessions.store();
        let all = store.list().await?;
        let authenticated = all.iter().filter(|s| s.user().is_some()).count();
        let st = store.stats().await?;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Ok(json!({
            "sessions": {"live": all.len(), "authenticated": authenticated, "anonymous": all.len() - authenticated},
            "logins": {
                "succeeded": get(&METRICS.logins_succeeded),
                "failed": get(&METRICS.logins_failed),
                "throttled": get(&METRICS.logins_throttled),
            },
            "evictions": st.evictions,
            "expirations": st.expirations,
            "displaced": st.displaced,
            "capacity": st.capacity,
            "anonymous_capacity": st.anonymous_capacity,
            "store_writes": self.sessions.writes(),
        }))
    }

    async fn page(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = ListQuery::parse(query);
        let (items, next) = match self.list(&q).await {
            Ok(v) => v,
            Err(e) => return unavailable(&e),
        };
        let user_q = q.user.as_deref().unwrap_or("");
        let revoke_suffix = match &q.user {
            Some(u) => format!(
                "?user={}",
                form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
            ),
            None => String::new(),
        };
        let mut rows = String::new();
        for s in &items {
            rows.push_str(&format!(
                "<tr><td><code title=\"{key}\">{short}…</code></td><td>{user}</td><td>{roles}</td><td>{ip}</td><td>{ua}</td><td>{seen}</td><td>{expires}</td><td>\
                 <form method=\"post\" action=\"/sessions/{key}/revoke{suffix}\"><button type=\"submit\">Revoke</button></form></td></tr>\n",
                key = s.key.to_hex(),
                short = &s.key.to_hex()[..12],
                user = escape(s.user().unwrap_or("(anonymous)")),
                roles = escape(&s.roles().collect::<Vec<_>>().join(", ")),
                ip = s.client_ip.map(|i| i.to_string()).unwrap_or_default(),
                ua = escape(s.user_agent().unwrap_or("")),
                seen = crate::http::html::date(s.last_seen_at()),
                expires = crate::http::html::date(s.expires_at()),
                suffix = escape(&revoke_suffix),
            ));
        }
        let more = match next {
            Some(c) => format!(
                "<p><a href=\"/?cursor={c}{u}\">Next page</a></p>",
                u = escape(&if user_q.is_empty() {
                    String::new()
                } else {
                    format!(
                        "&user={}",
                        form_urlencoded::byte_serialize(user_q.as_bytes()).collect::<String>()
                    )
                })
            ),
            None => String::new(),
        };
        let body = format!(
            "<h1>SessionManager</h1>\n<form class=\"inline\" method=\"get\" action=\"/\"><div><label for=\"user\">User</label>\
             <input id=\"user\" name=\"user\" value=\"{uq}\"></div><button type=\"submit\">Filter</button></form>\n\
             <div class=\"scroll\"><table><thead><tr><th>Key</th><th>User</th><th>Roles</th><th>Client IP</th><th>User agent</th>\
             <th>Last seen</th><th>Expires</th><th></th></tr></thead><tbody>\n{rows}</tbody></table></div>\n{more}",
            uq = escape(user_q),
        );
        let mut resp = Response::new(wide_page("sessiongate admin", &body).into_bytes());
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for (k, v) in crate::http::reply::PAGE_HEADERS {
            h.insert(k, http::HeaderValue::from_static(v));
        }
        resp
    }
}

#[async_trait]
impl<S: SessionStore> ServeHttp for Admin<S> {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // Bodies are not used; drain them so the connection can be reused.
        let _ = session.drain_request_body().await;
        let req = session.req_header();
        let (method, path, query) = (
            req.method.clone(),
            req.uri.path().to_owned(),
            req.uri.query().map(str::to_owned),
        );
        let mut resp = self.route(&method, &path, query.as_deref(), req).await;
        let len = resp.body().len();
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        resp.headers_mut()
            .entry(http::header::CACHE_CONTROL)
            .or_insert(http::HeaderValue::from_static("no-store"));
        resp
    }
}

/// `GET /sessions` parameters.
struct ListQuery {
    user: Option<String>,
    limit: usize,
    after: Option<SessionKey>,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> ListQuery {
        let mut q = ListQuery {
            user: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "user" if !v.is_empty() => q.user = Some(v.into_owned()),
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .unwrap_or(DEFAULT_LIMIT)
                        .clamp(1, MAX_LIMIT)
                }
                "cursor" => q.after = SessionKey::from_hex(&v),
                _ => {}
            }
        }
        q
    }
}

/// One session as the admin API shows it: by key, never by id.
fn item(s: &Session) -> serde_json::Value {
    json!({
        "key": s.key.to_hex(),
        "user": s.user(),
        "roles": s.roles().collect::<Vec<_>>(),
        "created_at": s.created_at / 1000,
        "last_seen_at": s.last_seen_at() / 1000,
        "expires_at": s.expires_at() / 1000,
        "absolute_expires_at": s.absolute_expires_at / 1000,
        "client_ip": s.client_ip.map(|i| i.to_string()),
        "user_agent": s.user_agent(),
        "data_bytes": s.data_header().map_or(0, str::len),
    })
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    let mut resp = Response::new(v.to_string().into_bytes());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut resp = Response::new(body.as_bytes().to_vec());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn empty(status: StatusCode) -> Response<Vec<u8>> {
    let mut resp = Response::new(Vec::new());
    *resp.status_mut() = status;
    resp
}

fn not_found() -> Response<Vec<u8>> {
    json_resp(StatusCode::NOT_FOUND, json!({"error": "not found"}))
}

fn unavailable(e: &crate::session::StoreError) -> Response<Vec<u8>> {
    tracing::error!(error = %e, "session store unavailable");
    json_resp(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "session store unavailable"}),
    )
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("u={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Standard base64 (RFC 4648 §4), for HTTP Basic credentials.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            decode_base64("YWRtaW46czNjcjN0").as_deref(),
            Some(&b"admin:s3cr3t"[..])
        );
        assert_eq!(decode_base64("Og==").as_deref(), Some(&b":"[..]));
        assert_eq!(decode_base64("YQ").as_deref(), Some(&b"a"[..]));
        assert!(decode_base64("Y").is_none());
        assert!(decode_base64("!!!!").is_none());
    }

    #[test]
    fn list_query_is_bounded() {
        let q = ListQuery::parse(Some("user=a%20b&limit=99999&cursor=zz"));
        assert_eq!(q.user.as_deref(), Some("a b"));
        assert_eq!(q.limit, MAX_LIMIT);
        assert!(q.after.is_none());
        assert_eq!(ListQuery::parse(None).limit, DEFAULT_LIMIT);
        assert_eq!(percent_decode("a%2Fb+c"), "a/b+c");
    }
}
