//! The backend's session commands: response headers an upstream with
//! `session_commands = true` sends to log a session in, store data in it, or
//! end it. They are always removed from the response, and a backend
//! `Set-Cookie` for the session cookie is dropped, so only the proxy ever sets
//! it.
//!
//! This module parses; `proxy` applies the [`Commands`] through the session
//! manager.

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use serde_json::{Map, Value};

use super::identity::{same_name, starts_with_name};
use super::{Ctx, Downstream, Proxy};
use crate::auth::names;
use crate::session::SessionStore;
use pingora::prelude::*;

/// Largest `X-Session-Data` accepted from a backend (bytes).
const MAX_DATA_LEN: usize = 8 * 1024;

/// A login the backend asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub struct Command {
    /// The user to log in, in the identity alphabet.
    pub user: String,
    /// Their roles, each in the identity alphabet.
    pub roles: Vec<String>,
}

/// The session commands in one backend response.
#[derive(Debug, Default, PartialEq)]
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub struct Commands {
    /// `X-Session-Logout: 1`: destroy the session, clear the cookie.
    pub logout: bool,
    /// `X-Session-Login: <user>` (+ `X-Session-Roles: a,b`): a new authenticated session.
    pub login: Option<Command>,
    /// `X-Session-Data: <json object>`: merged into the session.
    pub data: Option<Map<String, Value>>,
}

/// Remove every `X-Session-*` header and any backend `Set-Cookie` for the
/// session cookie from a response, and return the commands they carried.
/// `None` when the response carried no `X-Session-*` header at all (the common
/// case, which allocates nothing). Malformed commands are dropped with a warning:
/// a backend bug must not log anyone in.
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub fn take_commands(resp: &mut ResponseHeader, cookie_name: &str) -> Option<Commands> {
    drop_backend_session_cookie(resp, cookie_name);
    if !resp
        .headers
        .keys()
        .any(|n| starts_with_name(n.as_str().as_bytes(), b"x-session-"))
    {
        return None;
    }
    let names: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|n| starts_with_name(n.as_str().as_bytes(), b"x-session-"))
        .cloned()
        .collect();
    let mut out = Commands::default();
    let mut login_user = None;
    let mut roles = Vec::new();
    let mut roles_refused = false;
    for name in names {
        let Some(value) = resp.remove_header(&name) else {
            continue;
        };
        let n = name.as_str().as_bytes();
        let Ok(v) = value.to_str() else {
            tracing::warn!(header = name.as_str(), "non-ASCII session command ignored");
            continue;
        };
        let v = v.trim();
        if same_name(n, b"x-session-logout") {
            out.logout = v == "1" || v.eq_ignore_ascii_case("true");
        } else if same_name(n, b"x-session-login") {
            match names::check_user(v) {
                Ok(()) => login_user = Some(v.to_owned()),
                // The name itself is not logged: it is what failed the check.
                Err(rule) => tracing::warn!("X-Session-Login refused: the user name {rule}"),
            }
        } else if same_name(n, b"x-session-roles") {
            roles = v
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect();
            if let Some(rule) = roles.iter().find_map(|r| names::check_role(r).err()) {
                tracing::warn!("X-Session-Roles refused with its login: a role {rule}");
                roles_refused = true;
            }
        } else if same_name(n, b"x-session-data") {
            match (v.len() <= MAX_DATA_LEN).then(|| serde_json::from_str::<Value>(v)) {
                Some(Ok(Value::Object(map))) => out.data = Some(map),
                _ => tracing::warn!(
                    "X-Session-Data that is not a JSON object of at most 8 KiB ignored"
                ),
            }
        }
    }
    // A login with a refused role is refused whole: no session change.
    out.login = login_user
        .filter(|_| !roles_refused)
        .map(|user| Command { user, roles });
    Some(out)
}

fn drop_backend_session_cookie(resp: &mut ResponseHeader, cookie_name: &str) {
    drop_backend_cookies(resp, &[cookie_name]);
}

/// Drop a backend's `Set-Cookie` for any of `names` (ours: the session
/// cookie, and the cookies of our own flows), keeping its others.
pub(crate) fn drop_backend_cookies(resp: &mut ResponseHeader, names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let is_ours = |v: &HeaderValue| {
        let v = v.as_bytes();
        let end = v.iter().position(|&b| b == b'=').unwrap_or(v.len());
        names.iter().any(|n| v[..end].trim_ascii() == n.as_bytes())
    };
    let all = resp.headers.get_all(header::SET_COOKIE);
    if !all.iter().any(is_ours) {
        return;
    }
    let keep: Vec<HeaderValue> = all.iter().filter(|v| !is_ours(v)).cloned().collect();
    tracing::warn!("backend Set-Cookie for a cookie of sessiongate's dropped");
    resp.remove_header(&header::SET_COOKIE);
    for v in keep {
        // append_header only fails on invalid names; SET_COOKIE is valid.
        let _ = resp.append_header(header::SET_COOKIE, v);
    }
}

impl<S: SessionStore> Proxy<S> {
    /// Apply the backend's `X-Session-*` commands (already taken off the
    /// response), if its upstream may give them.
    pub(super) async fn apply_commands(
        &self,
        session: &Downstream,
        ctx: &mut Ctx,
        commands: Commands,
    ) -> Result<()> {
        let allowed = ctx
            .upstream()
            .is_some_and(|u| self.upstreams[u].config.session_commands);
        if !allowed {
            tracing::warn!(
                "session command from an upstream without session_commands = true ignored"
            );
            return Ok(());
        }
        if ctx.store_down {
            // The session could not be read: a logout would clear the cookie
            // of a session that lives on, a login could replace it. Neither.
            return Error::e_explain(HTTPStatus(503), "session command while the store is down");
        }
        let client = super::client_info(session, ctx);
        let cur = &mut ctx.cur;
        if commands.logout {
            self.sessions
                .logout(cur)
                .await
                .map_err(super::store_error)?;
        }
        if let Some(login) = commands.login {
            let sessions = &self.sessions;
            sessions
                .login(cur, login.user, login.roles, &client)
                .await
                .map_err(super::store_error)?;
        }
        if let Some(data) = commands.data {
            self.sessions
                .merge_data(cur, data, &client)
                .await
                .map_err(super::store_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_and_removed() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("X-Session-Login", " alice ").unwrap();
        resp.append_header("X_Session_Roles", "admin, ops,,")
            .unwrap();
        resp.append_header("X-Session-Data", r#"{"cart":1}"#)
            .unwrap();
        resp.append_header("X-Session-Other", "x").unwrap();
        resp.append_header("Set-Cookie", "sid=evil; Path=/")
            .unwrap();
        resp.append_header("Set-Cookie", "theme=dark").unwrap();
        let c = take_commands(&mut resp, "sid").unwrap();
        assert_eq!(
            c.login,
            Some(Command {
                user: "alice".into(),
                roles: vec!["admin".into(), "ops".into()]
            })
        );
        assert_eq!(c.data.unwrap().get("cart"), Some(&Value::from(1)));
        assert!(!c.logout);
        let left: Vec<_> = resp
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(left, vec!["set-cookie: theme=dark"]);
    }

    #[test]
    fn malformed_commands_are_ignored() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("X-Session-Login", "").unwrap();
        resp.append_header("X-Session-Data", "[1,2]").unwrap();
        resp.append_header("X-Session-Logout", "yes").unwrap();
        assert_eq!(take_commands(&mut resp, "sid"), Some(Commands::default()));
        let mut plain = ResponseHeader::build(200, None).unwrap();
        assert_eq!(take_commands(&mut plain, "sid"), None);
    }

    #[test]
    fn logins_outside_the_identity_alphabet_are_refused_whole() {
        let long_role = format!("admin, {}", "o".repeat(300));
        for (user, roles) in [
            ("root, alice", "admin"),
            ("root\talice", "admin"),
            ("alice", long_role.as_str()),
        ] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("X-Session-Login", user).unwrap();
            resp.append_header("X-Session-Roles", roles.to_owned())
                .unwrap();
            let got = take_commands(&mut resp, "sid").expect("commands seen");
            assert_eq!(got.login, None, "{user:?} / {roles:?}");
            assert!(
                resp.headers.get("x-session-login").is_none(),
                "still removed"
            );
        }
    }
}
