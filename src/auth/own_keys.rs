//! A signed-in user's own API keys (personal access tokens), on their
//! sessions page: listed by name and id (`GET <prefix>/sessions`), made with
//! `POST <prefix>/keys` (form: `name`, `expires_in`; the key is shown once)
//! and revoked with `POST <prefix>/keys/revoke` (form: `id`). A key acts as
//! the user, with their roles. Only the caller's own keys are listed or
//! revocable: another user's key is answered like one that does not exist.
//! Both forms are same-origin only (checked by the endpoint table).
//!
//! A key is a credential of its own that outlives the session, so a user who
//! has a second factor (or must have one) makes keys only from a session
//! that passed it: else a stolen password would mint a key that never asks.

use http::StatusCode;

use super::Auth;
use crate::http::html::{card_page, escape, time_ago};
use crate::http::problem::Problem;
use crate::http::reply::Reply;
use crate::session::manager::RequestSession;

impl Auth {
    /// The sessions page's section on `user`'s keys; empty without a store,
    /// and for a user who is not in the users file (signed in with a
    /// provider): a key acts as a user of the users file.
    pub(crate) async fn own_keys_section(&self, user: &str) -> String {
        if self.api_keys.is_none() || self.users.get(user).is_none_or(|u| u.name != user) {
            return String::new();
        }
        let prefix = escape(&self.config.prefix);
        let keys = match self.list_api_keys(Some(user)).await {
            Ok(k) => k,
            Err(_) => {
                return "<h2>API keys</h2><p>Your API keys cannot be listed right now.</p>"
                    .to_owned()
            }
        };
        let now = crate::session::now_ms();
        let mut items = String::new();
        for k in &keys {
            items.push_str(&format!(
                r#"<li><div><strong>{name}</strong> <code>{id}</code><br><small>made {made} · used {used} · {expires}</small></div><form method="post" action="{prefix}/keys/revoke"><input type="hidden" name="id" value="{id}"><button type="submit" class="secondary">Revoke</button></form></li>
"#,
                name = escape(&k.name),
                id = escape(&k.id),
                made = time_ago(k.created_at * 1000, now),
                used = k.last_used_at.map_or_else(|| "never".to_owned(), |t| time_ago(t * 1000, now)),
                expires = match k.expires_at {
                    Some(e) if e * 1000 <= now => "expired".to_owned(),
                    Some(e) => format!("expires in {}", humantime::format_duration(std::time::Duration::from_secs(e - now / 1000))),
                    None => "never expires".to_owned(),
                },
            ));
        }
        if items.is_empty() {
            items.push_str("<li><small>No API keys.</small></li>\n");
        }
        format!(
            r#"<h2>API keys</h2>
<p><small>For scripts that act as you, on the routes that take API keys.</small></p>
<ul class="keys">
{items}</ul>
<form method="post" action="{prefix}/keys"><label for="key-name">Name</label><input id="key-name" name="name" required maxlength="64"><label for="key-exp">Expires in</label><select id="key-exp" name="expires_in"><option>7d</option><option>30d</option><option selected>90d</option><option>365d</option><option value="">never</option></select><button type="submit">Create API key</button></form>
"#
        )
    }

    /// `POST <prefix>/keys`: a key for the caller, shown once.
    pub(crate) async fn create_own_key(&self, form: &[u8], cur: &RequestSession) -> Reply {
        let Some(user) = cur.user() else {
            return Reply::problem(Problem::Unauthenticated);
        };
        if let Some(factors) = &self.factors {
            let factor_at = cur.session.as_deref().map_or(0, |s| s.factor_at);
            let roles: Vec<String> = cur
                .session
                .as_deref()
                .map(|s| s.roles().map(str::to_owned).collect())
                .unwrap_or_default();
            let needed = match factors.has_factor(user).await {
                Ok(has) => has || factors.required_for(&roles),
                Err(_) => return Reply::problem(Problem::Unavailable),
            };
            if needed && factor_at == 0 {
                return Reply::see_other(&format!(
                    "{}/factor?next={}/sessions",
                    self.config.prefix, self.config.prefix
                ));
            }
        }
        let (mut name, mut expires) = (String::new(), String::new());
        for (k, v) in form_urlencoded::parse(form) {
            match k.as_ref() {
                "name" => name = v.into_owned(),
                "expires_in" => expires = v.into_owned(),
                _ => {}
            }
        }
        let lifetime = match super::api_keys::lifetime(Some(&expires)) {
            Ok(l) => l,
            Err(_) => return Reply::problem(Problem::BadRequest),
        };
        let body = match self
            .create_api_key(user, None, &name, lifetime, "self")
            .await
        {
            Ok((key, r)) => format!(
                "<h1>API key created</h1><p>Copy it now: it is shown only this once.</p>\
                 <p><code id=\"new-key\">{key}</code></p><p>{name}</p>\
                 <p>Use it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>\
                 <p><a href=\"{prefix}/sessions\">Back to your sessions</a></p>",
                key = escape(&key),
                name = escape(&r.name),
                prefix = escape(&self.config.prefix),
            ),
            Err(super::api_keys::CreateError::Store(_)) => {
                return Reply::problem(Problem::Unavailable)
            }
            Err(e) => format!(
                "<h1>No key was made</h1><p>{}</p><p><a href=\"{}/sessions\">Back</a></p>",
                escape(&e.to_string()),
                escape(&self.config.prefix)
            ),
        };
        Reply::html(StatusCode::OK, card_page("API key", &body))
    }

    /// `POST <prefix>/keys/revoke`: one of the caller's keys; 303 back.
    pub(crate) async fn revoke_own_key(&self, form: &[u8], cur: &RequestSession) -> Reply {
        let Some(user) = cur.user() else {
            return Reply::problem(Problem::Unauthenticated);
        };
        let id = form_urlencoded::parse(form)
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if self.revoke_api_key(&id, Some(user)).await.is_err() {
            return Reply::problem(Problem::Unavailable);
        }
        Reply::see_other(&format!("{}/sessions", self.config.prefix))
    }
}
