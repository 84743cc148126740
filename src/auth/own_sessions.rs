//! A signed-in user's view of their own sessions, on the main listener
//! (`GET <prefix>/sessions`), and ending any of the others
//! (`POST <prefix>/sessions/revoke`, form field `key`): OWASP ASVS 5.0 §7.5.2.
//!
//! Only the caller's own sessions are ever listed or revocable: a key that
//! belongs to someone else is answered exactly like a key that does not exist.

use http::StatusCode;
use pingora::http::RequestHeader;
use serde_json::json;

use crate::http::html::{card_page, device, escape, time_ago};
use crate::http::problem::Problem;
use crate::http::reply::Reply;
use crate::session::manager::{RequestSession, SessionManager};
use crate::session::{SessionKey, SessionStore};

/// The caller's sessions: HTML, or JSON when the client accepts only that.
pub(crate) async fn list<S: SessionStore>(
    req: &RequestHeader,
    cur: &RequestSession,
    sessions: &SessionManager<S>,
    prefix: &str,
    keys: &str,
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
    let now = crate::session::now_ms();
    let mut items = String::new();
    for s in &mine {
        let action = if s.key == current {
            r#"<span class="tag">This session</span>"#.to_owned()
        } else {
            format!(
                r#"<form method="post" action="{p}/sessions/revoke"><input type="hidden" name="key" value="{k}"><button type="submit" class="secondary">Sign out</button></form>"#,
                p = escape(prefix),
                k = s.key.to_hex()
            )
        };
        items.push_str(&format!(
            r#"<li><div><strong>{device}</strong><br><small>{ip}active {seen} · signed in {created}</small></div>{action}</li>
"#,
            device = device(s.user_agent()),
            ip = s
                .client_ip
                .map(|i| format!("{i} · "))
                .unwrap_or_default(),
            seen = time_ago(s.last_seen_at(), now),
            created = time_ago(s.created_at, now),
        ));
    }
    let others = if mine.len() > 1 {
        format!(
            r#"<form method="post" action="{p}/sessions/revoke"><input type="hidden" name="key" value="{OTHERS}"><button type="submit">Sign out all other sessions</button></form>"#,
            p = escape(prefix)
        )
    } else {
        "<p><small>This is your only session.</small></p>".to_owned()
    };
    let body = format!(
        "<h1>Your sessions</h1>\n<p>Signed in as <strong>{u}</strong>.</p>\n<ul class=\"sessions\">\n{items}</ul>\n{others}\n{keys}",
        u = escape(user)
    );
    Reply::html(StatusCode::OK, card_page("Your sessions", &body))
}

/// The `key` of the form that ends every session of the caller but this one.
pub(crate) const OTHERS: &str = "others";

/// End one of the caller's other sessions; 303 back to the list.
pub(crate) async fn revoke<S: SessionStore>(
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
        .map(|(_, v)| v.into_owned());
    if key.as_deref() == Some(OTHERS) {
        return revoke_others(user, cur, sessions, prefix).await;
    }
    let key = key.as_deref().and_then(SessionKey::from_hex);
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
    // With it, the sessions its sign-in opened on other domains.
    if sessions.end_login_of(&key).await.is_err() {
        return Reply::problem(Problem::Unavailable);
    }
    Reply::see_other(&format!("{prefix}/sessions"))
}

/// End every session of the caller but the ones of this browser's sign-in.
async fn revoke_others<S: SessionStore>(
    user: &str,
    cur: &RequestSession,
    sessions: &SessionManager<S>,
    prefix: &str,
) -> Reply {
    let current = cur.session.as_deref().map(|s| (s.key, s.login));
    let mine = match sessions.store().list_user(user).await {
        Ok(v) => v,
        Err(_) => return Reply::problem(Problem::Unavailable),
    };
    // This browser's sign-in stays, on every domain it reached.
    let this_browser = |s: &crate::session::Session| {
        current.is_some_and(|(k, l)| s.key == k || (l != 0 && s.login == l))
    };
    for s in mine.iter().filter(|s| !this_browser(s)) {
        if sessions.store().destroy(&s.key).await.is_err() {
            return Reply::problem(Problem::Unavailable);
        }
    }
    Reply::see_other(&format!("{prefix}/sessions"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::html::{assert_inert, HOSTILE};
    use crate::session::manager::testing::{manager, options};
    use crate::session::manager::Client;

    /// A user name or a user agent a store holds is shown as text, even one
    /// outside the identity alphabet (a store written by another version).
    #[tokio::test]
    async fn the_sessions_page_shows_stored_text_as_text() {
        let sessions = manager(options(false, false, false));
        let mut cur = RequestSession::default();
        let client = Client {
            user_agent: Some(HOSTILE.to_owned()),
            ..Client::default()
        };
        for _ in 0..2 {
            sessions
                .login(&mut cur, HOSTILE.to_owned(), vec![], &client)
                .await
                .unwrap();
        }
        let req = RequestHeader::build("GET", b"/.sessiongate/sessions", None).unwrap();
        let reply = list(&req, &cur, &sessions, "/.sessiongate", "").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_inert(&String::from_utf8(reply.body).unwrap());
    }
}
