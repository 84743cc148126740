//! A signed-in user's view of their own sessions, on the main listener
//! (`GET <prefix>/sessions`), and ending any of the others
//! (`POST <prefix>/sessions/revoke`, form field `key`): OWASP ASVS 5.0 §7.5.2.
//!
//! Only the caller's own sessions are ever listed or revocable: a key that
//! belongs to someone else is answered exactly like a key that does not exist.

use http::StatusCode;
use pingora::http::RequestHeader;
use serde_json::json;

use crate::http::html::{escape, wide_page};
use crate::http::problem::Problem;
use crate::http::reply::Reply;
use crate::session::manager::{RequestSession, SessionManager};
use crate::session::{SessionKey, SessionStore};

/// The caller's sessions: HTML, or JSON when the client accepts only that.
pub async fn list<S: SessionStore>(
    req: &RequestHeader,
    cur: &RequestSession,
    sessions: &SessionManager<S>,
    prefix: &str,
) -> Reply {
    let Some((user, current)) = cur
        .session
        .as_deref()
        .and_then(|s| Some((s.user()?, s.key)))
    else {
        return Reply::problem(Problem::Unauthenticated);
    };
    let mut mine = match sessions.store().list_user(user).await {
        Ok(v) => v,
        Err(_) => return Reply::problem(Problem::Unavailable),
    };
    mine.sort_by_key(|s| std::cmp::Reverse(s.last_seen_at()));
    let wants_json = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if wants_json {
        let items: Vec<_> = mine
            .iter()
            .map(|s| {
                json!({
                    "key": s.key.to_hex(),
                    "current": s.key == current,
                    "created_at": s.created_at / 1000,
                    "last_seen_at": s.last_seen_at() / 1000,
                    "client_ip": s.client_ip.map(|i| i.to_string()),
                    "user_agent": s.user_agent(),
                })
            })
            .collect();
        return Reply::json(
            StatusCode::OK,
            json!({ "user": user, "sessions": items }).to_string(),
        );
    }
    let mut rows = String::new();
    for s in &mine {
        let action = if s.key == current {
            "<strong>This session</strong>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"{p}/sessions/revoke\"><input type=\"hidden\" name=\"key\" value=\"{k}\">\
                 <button type=\"submit\">Sign out</button></form>",
                p = escape(prefix),
                k = s.key.to_hex()
            )
        };
        rows.push_str(&format!(
            "<tr><td>{ua}</td><td>{ip}</td><td>{seen}</td><td>{action}</td></tr>\n",
            ua = escape(s.user_agent().unwrap_or("unknown device")),
            ip = s.client_ip.map(|i| i.to_string()).unwrap_or_default(),
            seen = crate::http::html::date(s.last_seen_at()),
        ));
    }
    let body = format!(
        "<h1>Your sessions</h1>\n<p>Signed in as {u}.</p>\n<div class=\"scroll\"><table><thead><tr><th>Device</th><th>IP</th>\
         <th>Last seen</th><th></th></tr></thead><tbody>\n{rows}</tbody></table></div>",
        u = escape(user)
    );
    Reply::html(StatusCode::OK, wide_page("Your sessions", &body))
}

/// End one of the caller's other sessions; 303 back to the list.
pub async fn revoke<S: SessionStore>(
    form: &[u8],
    cur: &RequestSession,
    sessions: &SessionManager<S>,
    prefix: &str,
) -> Reply {
    let Some(user) = cur.user() else {
        return Reply::problem(Problem::Unauthenticated);
    };
    let key = form_urlencoded::parse(form)
        .find(|(k, _)| k == "key")
        .and_then(|(_, v)| SessionKey::from_hex(&v));
    let Some(key) = key else {
        return Reply::problem(Problem::NotFound);
    };
    let owned = match sessions.store().list_user(user).await {
        Ok(v) => v.iter().any(|s| s.key == key),
        Err(_) => return Reply::problem(Problem::Unavailable),
    };
    if !owned {
        return Reply::problem(Problem::NotFound);
    }
    if sessions.store().destroy(&key).await.is_err() {
        return Reply::problem(Problem::Unavailable);
    }
    Reply::see_other(&format!("{prefix}/sessions"))
}
