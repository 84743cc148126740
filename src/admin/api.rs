//! The admin JSON API: one function per endpoint (see the table in
//! [`super`]). Sessions are shown by key, never by id or cookie, and reading
//! one never slides its expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::{empty, json_resp, problem, unavailable, Admin};
use crate::http::problem::Problem;
use crate::metrics::{StoreGauges, METRICS};
use crate::session::{Session, SessionKey, SessionStore, StoreError};

/// Most sessions in one page of `GET /sessions`.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// `GET /sessions` (and the page's) parameters.
pub(super) struct ListQuery {
    pub(super) user: Option<String>,
    pub(super) limit: usize,
    pub(super) after: Option<SessionKey>,
}

impl ListQuery {
    pub(super) fn parse(query: Option<&str>) -> ListQuery {
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
        "second_factor_at": (s.factor_at != 0).then_some(s.factor_at / 1000),
    })
}

impl<S: SessionStore> Admin<S> {
    /// One page, ordered by key: every session that exists throughout a walk is
    /// returned exactly once, however many are added or removed meanwhile.
    pub(super) async fn page_of_sessions(
        &self,
        q: &ListQuery,
    ) -> Result<(Vec<Arc<Session>>, Option<String>), StoreError> {
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

    /// `GET /sessions?user=&limit=&cursor=`
    pub(super) async fn list_sessions(&self, query: Option<&str>) -> Response<Vec<u8>> {
        match self.page_of_sessions(&ListQuery::parse(query)).await {
            Ok((items, next)) => json_resp(
                StatusCode::OK,
                json!({"items": items.iter().map(|s| item(s)).collect::<Vec<_>>(), "next_cursor": next}),
            ),
            Err(e) => unavailable(&e),
        }
    }

    /// `GET /sessions/{key}`
    pub(super) async fn show_session(&self, key: &str) -> Response<Vec<u8>> {
        let Some(key) = SessionKey::from_hex(key) else {
            return problem(Problem::NotFound);
        };
        match self.sessions.store().peek(&key).await {
            Ok(Some(s)) => json_resp(StatusCode::OK, item(&s)),
            Ok(None) => problem(Problem::NotFound),
            Err(e) => unavailable(&e),
        }
    }

    /// `DELETE /sessions/{key}`
    pub(super) async fn revoke_session(&self, key: &str) -> Response<Vec<u8>> {
        let Some(key) = SessionKey::from_hex(key) else {
            return problem(Problem::NotFound);
        };
        // With it, the sessions its sign-in opened on other domains.
        match self.sessions.end_login_of(&key).await {
            Ok(1..) => empty(StatusCode::NO_CONTENT),
            Ok(0) => problem(Problem::NotFound),
            Err(e) => unavailable(&e),
        }
    }

    /// `DELETE /users/{user}/sessions`
    pub(super) async fn revoke_user(&self, user: &str) -> Response<Vec<u8>> {
        // A `+` in a path segment is a plus, not a space.
        let user = percent_decode_str(user).decode_utf8_lossy();
        match self.sessions.destroy_user(&user).await {
            Ok(n) => json_resp(StatusCode::OK, json!({"revoked": n})),
            Err(e) => unavailable(&e),
        }
    }

    /// `GET /stats`
    pub(super) async fn stats(&self) -> Response<Vec<u8>> {
        let store = self.sessions.store();
        let (count, st) = match (store.count().await, store.stats().await) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => return unavailable(&e),
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json_resp(
            StatusCode::OK,
            json!({
                "sessions": {
                    "live": count.live,
                    "authenticated": count.live - count.anonymous,
                    "anonymous": count.anonymous,
                    "users": count.users,
                },
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
                "config": {
                    "generation": get(&METRICS.config_generation),
                    "loaded_at": get(&METRICS.config_loaded_at),
                    "reloads": METRICS.reloads().iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                },
            }),
        )
    }

    /// `GET /metrics`: the store's figures are read at scrape time; a store
    /// that cannot answer shows zeros rather than failing the scrape.
    pub(super) async fn metrics(&self) -> Response<Vec<u8>> {
        let store = self.sessions.store();
        let mut gauges = StoreGauges::default();
        if let Ok(c) = store.count().await {
            gauges.sessions = c.live;
        }
        if let Ok(s) = store.stats().await {
            gauges.evictions = s.evictions;
            gauges.expirations = s.expirations;
            gauges.displaced = s.displaced;
            gauges.capacity = s.capacity;
        }
        let mut resp = Response::new(METRICS.render(gauges).into_bytes());
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_is_bounded() {
        let q = ListQuery::parse(Some("user=a%20b&limit=99999&cursor=zz"));
        assert_eq!(q.user.as_deref(), Some("a b"));
        assert_eq!(q.limit, MAX_LIMIT);
        assert!(q.after.is_none());
        assert_eq!(ListQuery::parse(None).limit, DEFAULT_LIMIT);
        assert_eq!(percent_decode_str("a%2Fb+c").decode_utf8_lossy(), "a/b+c");
    }
}
