//! Second factors on the admin listener: who has which (`GET /factors`), and
//! a reset for a user who lost theirs (`DELETE /users/{user}/factors`, and the
//! page's button `POST /users/{user}/factors/reset`). A reset forgets the
//! authenticator and the recovery codes: the user signs in with their
//! password alone, or enrols again at once where a factor is required. It
//! does not end their sessions (the sessions section's "revoke all" does).
//! Nothing secret is listed: no sealed secret, no code hash.

use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::{json_resp, problem, unavailable, Admin};
use crate::http::html::{escape, time_ago};
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::session::credentials::FactorRecord;
use crate::session::SessionStore;

fn item(r: &FactorRecord) -> serde_json::Value {
    json!({
        "user": r.user,
        "totp": r.totp.is_some(),
        "totp_created_at": r.totp.as_ref().map(|t| t.created_at),
        "passkeys": r.passkeys.iter().map(|p| json!({
            "name": p.name,
            "created_at": p.created_at,
            "last_used_at": p.last_used_at,
        })).collect::<Vec<_>>(),
        "recovery_codes_left": r.recovery.len(),
        "updated_at": r.updated_at,
    })
}

impl<S: SessionStore> Admin<S> {
    /// `GET /factors`
    pub(super) async fn list_factors(&self) -> Response<Vec<u8>> {
        let Some(factors) = &self.auth.factors else {
            return problem(Problem::NotFound);
        };
        match factors.list().await {
            Ok(all) => json_resp(
                StatusCode::OK,
                json!({"items": all.iter().map(item).collect::<Vec<_>>()}),
            ),
            Err(e) => unavailable(&e),
        }
    }

    /// `DELETE /users/{user}/factors`: 204, or 404 when the user had none.
    pub(super) async fn reset_factors(&self, user: &str) -> Response<Vec<u8>> {
        let Some(factors) = &self.auth.factors else {
            return problem(Problem::NotFound);
        };
        let user = percent_decode_str(user).decode_utf8_lossy();
        match factors.reset(&user).await {
            Ok(true) => {
                tracing::warn!(target: "admin", user = %user, "second factors reset");
                super::empty(StatusCode::NO_CONTENT)
            }
            Ok(false) => problem(Problem::NotFound),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /users/{user}/factors/reset`: the page's button; back to the page.
    pub(super) async fn reset_factors_from_page(
        &self,
        user: &str,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        // The admin listener has no trusted proxies: its Host is the host.
        if !same_origin(req, false) {
            return problem(Problem::CrossOrigin);
        }
        let resp = self.reset_factors(user).await;
        if resp.status().is_server_error() {
            return resp;
        }
        super::page::see_other("/#factors")
    }

    /// The page's section: each user with a factor, a reset button each.
    pub(super) async fn factors_section(&self) -> String {
        let Some(factors) = &self.auth.factors else {
            return String::new();
        };
        let all = match factors.list().await {
            Ok(a) => a,
            Err(e) => {
                return format!(
                    "<h2 id=\"factors\">Second factors</h2><p>{}</p>",
                    escape(&e.to_string())
                )
            }
        };
        let now = crate::session::now_ms();
        let mut rows = String::new();
        for r in &all {
            let user = escape(&r.user);
            let path: String =
                percent_encoding::utf8_percent_encode(&r.user, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            rows.push_str(&format!(
                "<tr><td>{user}</td><td>{app}</td><td>{passkeys}</td><td>{left}</td><td>{updated}</td><td>\
                 <form method=\"post\" action=\"/users/{path}/factors/reset\"><button type=\"submit\" class=\"secondary\">Reset</button></form></td></tr>\n",
                app = if r.totp.is_some() { "yes" } else { "no" },
                passkeys = r.passkeys.len(),
                left = r.recovery.len(),
                updated = time_ago(r.updated_at * 1000, now),
            ));
        }
        if rows.is_empty() {
            rows.push_str("<tr><td colspan=\"6\">Nobody has a second factor yet.</td></tr>\n");
        }
        format!(
            "<h2 id=\"factors\">Second factors</h2>\n<div class=\"scroll\"><table><thead><tr><th>User</th>\
             <th>Authenticator app</th><th>Passkeys</th><th>Recovery codes left</th><th>Changed</th><th></th></tr></thead><tbody>\n{rows}</tbody></table></div>\n"
        )
    }
}
