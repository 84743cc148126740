//! API keys on the admin listener: the JSON API (`GET /keys`, `POST /keys`,
//! `DELETE /keys/{id}`, `DELETE /users/{user}/keys`) and the page's section
//! with its two forms (`POST /keys/new`, `POST /keys/{id}/revoke`). A key is
//! shown once, in the answer that makes it; lists show no hash and no secret.

use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;

use super::{json_resp, problem, unavailable, Admin};
use crate::auth::api_keys::{lifetime, CreateError};
use crate::http::html::escape;
use crate::http::origin::same_origin;
use crate::http::problem::Problem;
use crate::session::credentials::ApiKeyRecord;
use crate::session::SessionStore;

/// `POST /keys`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    owner: String,
    name: String,
    roles: Option<Vec<String>>,
    /// A duration ("30d"); absent: until revoked.
    expires_in: Option<String>,
}

/// One key as the admin API shows it.
pub(super) fn item(r: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "owner": r.owner,
        "name": r.name,
        "roles": r.roles,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "last_used_at": r.last_used_at,
        "created_by": r.created_by,
    })
}

/// A `400` that says what was wrong (the admin listener is the operator's).
fn bad_request(detail: &str) -> Response<Vec<u8>> {
    json_resp(
        StatusCode::BAD_REQUEST,
        json!({"error": "bad request", "detail": detail}),
    )
}

impl<S: SessionStore> Admin<S> {
    /// `GET /keys?user=`
    pub(super) async fn list_keys(&self, query: Option<&str>) -> Response<Vec<u8>> {
        if self.auth.api_keys.is_none() {
            return problem(Problem::NotFound);
        }
        let user = super::api::ListQuery::parse(query).user;
        match self.auth.list_api_keys(user.as_deref()).await {
            Ok(keys) => json_resp(
                StatusCode::OK,
                json!({"items": keys.iter().map(item).collect::<Vec<_>>()}),
            ),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /keys`: 201 with the key, shown this once.
    ///
    /// Only with `Content-Type: application/json`: a browser that holds the
    /// admin's Basic login sends it with a cross-site form too, and a form can
    /// post a JSON-shaped body as `text/plain` without a CORS preflight; it
    /// cannot set this type (OWASP CSRF cheat sheet, "custom request headers").
    pub(super) async fn create_key(
        &self,
        req: &pingora::http::RequestHeader,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        if self.auth.api_keys.is_none() {
            return problem(Problem::NotFound);
        }
        if !is_json(req) {
            return json_resp(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "unsupported media type", "detail": "send Content-Type: application/json"}),
            );
        }
        let new: NewKey = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(e) => return bad_request(&format!("the body: {e}")),
        };
        let lifetime = match lifetime(new.expires_in.as_deref()) {
            Ok(l) => l,
            Err(e) => return bad_request(&e),
        };
        let made = self
            .auth
            .create_api_key(&new.owner, new.roles, &new.name, lifetime, "admin")
            .await;
        match made {
            Ok((key, record)) => {
                let mut v = item(&record);
                v["key"] = json!(key);
                json_resp(StatusCode::CREATED, v)
            }
            Err(CreateError::Store(e)) => unavailable(&crate::session::StoreError::Unavailable(e)),
            Err(e) => bad_request(&e.to_string()),
        }
    }

    /// `DELETE /keys/{id}`
    pub(super) async fn revoke_key(&self, id: &str) -> Response<Vec<u8>> {
        match self.auth.revoke_api_key(id, None).await {
            Ok(true) => super::empty(StatusCode::NO_CONTENT),
            Ok(false) => problem(Problem::NotFound),
            Err(e) => unavailable(&e),
        }
    }

    /// `DELETE /users/{user}/keys`
    pub(super) async fn revoke_user_keys(&self, user: &str) -> Response<Vec<u8>> {
        let user = percent_decode_str(user).decode_utf8_lossy();
        match self.auth.revoke_api_keys_of(&user).await {
            Ok(n) => json_resp(StatusCode::OK, json!({"revoked": n})),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /keys/{id}/revoke`: the page's button; back to the page.
    pub(super) async fn revoke_key_from_page(
        &self,
        id: &str,
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        // The admin listener has no trusted proxies: its Host is the host.
        if !same_origin(req, false) {
            return problem(Problem::CrossOrigin);
        }
        if let Err(e) = self.auth.revoke_api_key(id, None).await {
            return unavailable(&e);
        }
        super::page::see_other("/#keys")
    }

    /// `POST /keys/new`: the page's form (owner, name, roles, expires_in);
    /// a page that shows the key once.
    pub(super) async fn create_key_from_page(
        &self,
        body: &[u8],
        req: &pingora::http::RequestHeader,
    ) -> Response<Vec<u8>> {
        if !same_origin(req, false) {
            return problem(Problem::CrossOrigin);
        }
        let (mut owner, mut name, mut roles, mut expires) =
            (String::new(), String::new(), String::new(), String::new());
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "owner" => owner = v.into_owned(),
                "name" => name = v.into_owned(),
                "roles" => roles = v.into_owned(),
                "expires_in" => expires = v.into_owned(),
                _ => {}
            }
        }
        let roles: Vec<String> = roles
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        let roles = (!roles.is_empty()).then_some(roles);
        let made = match lifetime(Some(&expires)) {
            Ok(lifetime) => {
                self.auth
                    .create_api_key(&owner, roles, &name, lifetime, "admin")
                    .await
            }
            Err(e) => Err(CreateError::Store(e)),
        };
        let body = match made {
            Ok((key, r)) => shown_once(&key, &r),
            Err(e) => format!(
                "<h1>No key was made</h1><p>{}</p><p><a href=\"/#keys\">Back</a></p>",
                escape(&e.to_string())
            ),
        };
        super::page::admin_page(&body)
    }

    /// The page's section: every key (or the filtered user's), a revoke
    /// button each, and the form that makes one.
    pub(super) async fn keys_section(&self, user: Option<&str>) -> String {
        if self.auth.api_keys.is_none() {
            return String::new();
        }
        let keys = match self.auth.list_api_keys(user).await {
            Ok(k) => k,
            Err(e) => {
                return format!(
                    "<h2 id=\"keys\">API keys</h2><p>{}</p>",
                    escape(&e.to_string())
                )
            }
        };
        let now = crate::session::now_ms();
        let when = |s: Option<u64>| {
            s.map_or_else(
                || "never".to_owned(),
                |s| crate::http::html::time_ago(s * 1000, now),
            )
        };
        let mut rows = String::new();
        for r in &keys {
            rows.push_str(&format!(
                "<tr><td><code>{id}</code></td><td>{name}</td><td>{owner}</td><td>{roles}</td><td>{created}</td><td>{used}</td><td>{expires}</td><td>\
                 <form method=\"post\" action=\"/keys/{id}/revoke\"><button type=\"submit\" class=\"secondary\">Revoke</button></form></td></tr>\n",
                id = escape(&r.id),
                name = escape(&r.name),
                owner = escape(&r.owner),
                roles = escape(&r.roles.join(", ")),
                created = when(Some(r.created_at)),
                used = when(r.last_used_at),
                expires = r.expires_at.map_or_else(|| "never".to_owned(), |e| format!("<time>{e}</time>")),
            ));
        }
        if rows.is_empty() {
            rows.push_str("<tr><td colspan=\"8\">No API keys.</td></tr>\n");
        }
        format!(
            "<h2 id=\"keys\">API keys</h2>\n<div class=\"scroll\"><table><thead><tr><th>Id</th><th>Name</th><th>Owner</th><th>Roles</th>\
             <th>Created</th><th>Last used</th><th>Expires (unix)</th><th></th></tr></thead><tbody>\n{rows}</tbody></table></div>\n\
             <form class=\"inline\" method=\"post\" action=\"/keys/new\">\
             <div><label for=\"k-owner\">Owner</label><input id=\"k-owner\" name=\"owner\" required></div>\
             <div><label for=\"k-name\">Name</label><input id=\"k-name\" name=\"name\" required maxlength=\"64\"></div>\
             <div><label for=\"k-roles\">Roles (default: the owner's)</label><input id=\"k-roles\" name=\"roles\"></div>\
             <div><label for=\"k-exp\">Expires in (e.g. 30d; empty: never)</label><input id=\"k-exp\" name=\"expires_in\" value=\"90d\"></div>\
             <button type=\"submit\">Create API key</button></form>\n"
        )
    }
}

/// The page that shows a new key, once.
pub(crate) fn shown_once(key: &str, r: &ApiKeyRecord) -> String {
    format!(
        "<h1>API key created</h1><p>Copy it now: it is shown only this once, and only its hash is kept.</p>\
         <p><code id=\"new-key\">{key}</code></p>\
         <p>Name: {name} · owner: {owner} · roles: {roles}</p>\
         <p>Use it as <code>Authorization: Bearer {key}</code> on routes that take <code>api_key</code>.</p>",
        key = escape(key),
        name = escape(&r.name),
        owner = escape(&r.owner),
        roles = escape(&r.roles.join(", ")),
    )
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
fn is_json(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}
