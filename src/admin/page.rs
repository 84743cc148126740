//! The admin HTML page, for people: totals, the sessions (filter by user, a
//! page at a time) with a revoke button each and one for all of a user's,
//! and the handlers of those buttons (POSTs, checked for same origin).

use http::{Response, StatusCode};

use super::api::ListQuery;
use super::{empty, problem, unavailable, Admin};
use crate::http::html::{device, escape, time_ago, wide_page};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::http::reply::PAGE_HEADERS;
use crate::metrics::METRICS;
use crate::session::{SessionKey, SessionStore};

/// `?user=<u>` (or `&user=<u>`), form-encoded; empty without a user.
fn user_query(sep: char, user: Option<&str>) -> String {
    match user {
        Some(u) => format!(
            "{sep}user={}",
            form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    }
}

impl<S: SessionStore> Admin<S> {
    /// `GET /`: totals, then the sessions (filtered by user, a page at a
    /// time) with a revoke button each, and for a user, one for them all.
    pub(super) async fn page(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = ListQuery::parse(query);
        let (items, next) = match self.page_of_sessions(&q).await {
            Ok(v) => v,
            Err(e) => return unavailable(&e),
        };
        let store = self.sessions.store();
        let (count, stats) = match (store.count().await, store.stats().await) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => return unavailable(&e),
        };
        let minute = crate::metrics::now_minute();
        let totals = [
            ("live sessions", count.live),
            ("users", count.users),
            ("logins, last hour", METRICS.recent_logins.last_hour(minute)),
            (
                "failed, last hour",
                METRICS.recent_failures.last_hour(minute),
            ),
            ("evictions", stats.evictions),
        ]
        .iter()
        .map(|(label, n)| format!("<div><b>{n}</b>{label}</div>"))
        .collect::<String>();
        let now = crate::session::now_ms();
        let user_q = q.user.as_deref().unwrap_or("");
        let revoke_suffix = user_query('?', q.user.as_deref());
        let mut rows = String::new();
        for s in &items {
            rows.push_str(&format!(
                "<tr><td><code title=\"{key}\">{short}…</code></td><td>{user}</td><td>{roles}</td><td>{ip}</td><td>{device}</td><td>{seen}</td><td>{created}</td><td>\
                 <form method=\"post\" action=\"/sessions/{key}/revoke{suffix}\"><button type=\"submit\" class=\"secondary\">Revoke</button></form></td></tr>\n",
                key = s.key.to_hex(),
                short = &s.key.to_hex()[..12],
                user = escape(s.user().unwrap_or("(anonymous)")),
                roles = escape(&s.roles().collect::<Vec<_>>().join(", ")),
                ip = s.client_ip.map(|i| i.to_string()).unwrap_or_default(),
                device = device(s.user_agent()),
                seen = time_ago(s.last_seen_at(), now),
                created = time_ago(s.created_at, now),
                suffix = escape(&revoke_suffix),
            ));
        }
        if rows.is_empty() {
            rows.push_str("<tr><td colspan=\"8\">No sessions.</td></tr>\n");
        }
        let revoke_all = match q.user.as_deref() {
            Some(u) if !items.is_empty() => format!(
                "<form method=\"post\" action=\"/users/{path}/revoke\"><button type=\"submit\">Revoke all of {name}'s sessions</button></form>\n",
                path = escape(&percent_encoding::utf8_percent_encode(u, SEGMENT).to_string()),
                name = escape(u),
            ),
            _ => String::new(),
        };
        let mut pages = String::new();
        if q.after.is_some() {
            pages.push_str(&format!(
                "<a href=\"/{}\">First page</a>",
                escape(&user_query('?', q.user.as_deref()))
            ));
        }
        if let Some(c) = next {
            pages.push_str(&format!(
                "<a href=\"/?cursor={c}{u}\">Next page</a>",
                u = escape(&user_query('&', q.user.as_deref()))
            ));
        }
        let body = format!(
            "<h1>sessiongate</h1>\n<div class=\"totals\">{totals}</div>\n<h2>Sessions</h2>\n\
             <form class=\"inline\" method=\"get\" action=\"/\"><div><label for=\"user\">User</label>\
             <input id=\"user\" name=\"user\" value=\"{uq}\"></div><button type=\"submit\">Filter</button></form>\n{revoke_all}\
             <div class=\"scroll\"><table><thead><tr><th>Key</th><th>User</th><th>Roles</th><th>Client IP</th><th>Device</th>\
             <th>Active</th><th>Signed in</th><th></th></tr></thead><tbody>\n{rows}</tbody></table></div>\n<nav class=\"pages\">{pages}</nav>\n{keys}{factors}",
            uq = escape(user_q),
            keys = self.keys_section(q.user.as_deref()).await,
            factors = self.factors_section().await,
        );
        admin_page(&body)
    }

    /// `POST /users/{user}/revoke`: the page's "revoke all" button; back to
    /// the page filtered by that user, now empty.
    pub(super) async fn revoke_user_from_page(
        &self,
        user: &str,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        // The admin listener has no trusted proxies: its Host is the host.
        if !same_origin(req, false) {
            return problem(Problem::CrossOrigin);
        }
        let user = percent_encoding::percent_decode_str(user).decode_utf8_lossy();
        if let Err(e) = self.sessions.destroy_user(&user).await {
            return unavailable(&e);
        }
        see_other(&format!("/{}", user_query('?', Some(&user))))
    }

    /// `POST /sessions/{key}/revoke`: the page's revoke button; back to the
    /// page (with its user filter) with 303.
    pub(super) async fn revoke_from_page(
        &self,
        key: &str,
        query: Option<&str>,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        // The admin listener has no trusted proxies: its Host is the host.
        if !same_origin(req, false) {
            return problem(Problem::CrossOrigin);
        }
        if let Some(k) = SessionKey::from_hex(key) {
            if let Err(e) = self.sessions.end_login_of(&k).await {
                return unavailable(&e);
            }
        }
        let back = format!(
            "/{}",
            user_query('?', ListQuery::parse(query).user.as_deref())
        );
        see_other(&back)
    }
}

/// `body` in the admin page's shell, with the pages' headers.
pub(super) fn admin_page(body: &str) -> Response<Vec<u8>> {
    let mut resp = Response::new(wide_page("sessiongate admin", body).into_bytes());
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (k, v) in PAGE_HEADERS {
        h.insert(k, http::HeaderValue::from_static(v));
    }
    resp
}

/// 303 to `location` (a path of this listener).
pub(super) fn see_other(location: &str) -> Response<Vec<u8>> {
    let mut resp = empty(StatusCode::SEE_OTHER);
    resp.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_str(location).unwrap_or(http::HeaderValue::from_static("/")),
    );
    resp
}

/// What a user name needs escaped to be one path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::http::html::{assert_inert, HOSTILE};
    use crate::session::manager::testing::{manager, options};
    use crate::session::manager::{Client, RequestSession};

    /// A user name and a user agent the store holds, and the user filter of
    /// the query, all come out as text.
    #[tokio::test]
    async fn the_admin_page_shows_stored_and_typed_text_as_text() {
        let sessions = Arc::new(manager(options(false, false, false)));
        let client = Client {
            user_agent: Some(HOSTILE.to_owned()),
            ..Client::default()
        };
        let mut cur = RequestSession::default();
        sessions
            .login(
                &mut cur,
                HOSTILE.to_owned(),
                vec![HOSTILE.to_owned()],
                &client,
            )
            .await
            .unwrap();
        let admin = Admin::new(
            sessions,
            Arc::new(crate::auth::testing::auth()),
            None,
            Vec::new(),
            None,
        );
        let filter: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("user", HOSTILE)
            .finish();
        for query in [None, Some(filter.as_str())] {
            let resp = admin.page(query).await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert_inert(&String::from_utf8(resp.into_body()).unwrap());
        }
    }
}
