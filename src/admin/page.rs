//! The admin HTML page, for people: the sessions (filter by user, a page at
//! a time) with a revoke button each, and the handler of that button.

use http::{Response, StatusCode};

use super::api::ListQuery;
use super::{empty, problem, unavailable, Admin};
use crate::http::html::{date, escape, wide_page};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::http::reply::PAGE_HEADERS;
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
    /// `GET /`: the sessions, filtered by user, a revoke button each.
    pub(super) async fn page(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = ListQuery::parse(query);
        let (items, next) = match self.page_of_sessions(&q).await {
            Ok(v) => v,
            Err(e) => return unavailable(&e),
        };
        let user_q = q.user.as_deref().unwrap_or("");
        let revoke_suffix = user_query('?', q.user.as_deref());
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
                seen = date(s.last_seen_at()),
                expires = date(s.expires_at()),
                suffix = escape(&revoke_suffix),
            ));
        }
        let more = match next {
            Some(c) => format!(
                "<p><a href=\"/?cursor={c}{u}\">Next page</a></p>",
                u = escape(&user_query('&', q.user.as_deref()))
            ),
            None => String::new(),
        };
        let body = format!(
            "<h1>Sessions</h1>\n<form class=\"inline\" method=\"get\" action=\"/\"><div><label for=\"user\">User</label>\
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
        for (k, v) in PAGE_HEADERS {
            h.insert(k, http::HeaderValue::from_static(v));
        }
        resp
    }

    /// `POST /sessions/{key}/revoke`: the page's revoke button; back to the
    /// page (with its user filter) with 303.
    pub(super) async fn revoke_from_page(
        &self,
        key: &str,
        query: Option<&str>,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        if !same_origin(req) {
            return problem(Problem::CrossOrigin);
        }
        if let Some(k) = SessionKey::from_hex(key) {
            if let Err(e) = self.sessions.store().destroy(&k).await {
                return unavailable(&e);
            }
        }
        let back = format!(
            "/{}",
            user_query('?', ListQuery::parse(query).user.as_deref())
        );
        let mut resp = empty(StatusCode::SEE_OTHER);
        resp.headers_mut().insert(
            http::header::LOCATION,
            http::HeaderValue::from_str(&back).unwrap_or(http::HeaderValue::from_static("/")),
        );
        resp
    }
}
