//! Identity headers: the ones sessiongate vouches for, how client copies of them
//! are removed, and the session commands a backend may send back.
//!
//! The backend trusts `X-User` only because nothing but the proxy can set it. So
//! on every request, public routes included, every client header that a backend
//! framework might read as one of ours is removed: any letter case, and with `_`
//! for `-` (CGI-style servers map both to `HTTP_X_USER`). pingora 0.9 already drops
//! headers a client names in `Connection:` before our filter runs, and ours are
//! inserted after that, so `Connection: X-User` cannot remove them.
//!
//! Responses: `X-Session-*` headers are commands for the proxy, never for the
//! client; they are always removed, and a backend `Set-Cookie` for the session
//! cookie is dropped so only the proxy ever sets it.
//!
//! This module does not touch the store; `proxy` applies the [`Commands`].

use std::net::IpAddr;

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use serde_json::{Map, Value};

pub const X_USER: &str = "X-User";
pub const X_USER_ROLES: &str = "X-User-Roles";
pub const X_SESSION_DATA: &str = "X-Session-Data";
pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
pub const X_FORWARDED_HOST: &str = "X-Forwarded-Host";

/// Longest user name a backend may log in (bytes).
const MAX_USER_LEN: usize = 256;
/// Largest `X-Session-Data` accepted from a backend (bytes).
const MAX_DATA_LEN: usize = 8 * 1024;

/// Compare a header name to a lower-case, `-`-separated name, treating `_` as `-`.
fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

fn starts_with_name(name: &[u8], canonical_prefix: &[u8]) -> bool {
    name.len() >= canonical_prefix.len()
        && same_name(&name[..canonical_prefix.len()], canonical_prefix)
}

/// Whether a client may not send this header: one the proxy sets (or a
/// spelling a backend may read as one), any other `X-Forwarded-*` or
/// `Forwarded` (RFC 7239), which the proxy does not vouch for, or a header that
/// frameworks use to override the client address, the path or the method.
pub fn is_reserved(name: &[u8]) -> bool {
    const EXACT: [&[u8]; 11] = [
        b"x-user",
        b"x-user-roles",
        b"forwarded",
        // Client addresses some frameworks believe.
        b"x-real-ip",
        b"true-client-ip",
        b"x-client-ip",
        // Path overrides (IIS, older Symfony): they would bypass the rules.
        b"x-original-url",
        b"x-rewrite-url",
        // Method overrides (Express method-override and friends): they would
        // turn an allowed method into one the rules never saw.
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
    ];
    EXACT.iter().any(|c| same_name(name, c))
        || starts_with_name(name, b"x-session-")
        // Every X-Forwarded-* (User, Email, Prefix, Port, ...): only the proxy
        // sets the three it vouches for.
        || starts_with_name(name, b"x-forwarded-")
}

/// Remove every reserved header a client sent. Allocates only when there is one.
pub fn strip_client_identity(req: &mut RequestHeader) {
    let spoofed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| is_reserved(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

/// Remove the session cookie from the `Cookie` header(s) sent upstream, leaving
/// every other cookie as it was. Several `Cookie` headers (HTTP/2) are joined
/// into one, as RFC 6265 §5.4 requires for HTTP/1.1.
///
/// # Errors
/// Only if the rebuilt header is not a valid header value, which cannot happen
/// for input that was one.
pub fn strip_session_cookie(req: &mut RequestHeader, name: &str) -> pingora::Result<()> {
    let ours = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|v| crate::cookie::find(v, name).next().is_some())
    };
    let cookies = req.headers.get_all(header::COOKIE);
    if !cookies.iter().any(ours) {
        return Ok(());
    }
    let mut kept = String::new();
    for v in cookies {
        let Ok(v) = v.to_str() else { continue };
        if let Some(rest) = crate::cookie::strip(v, name) {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(&rest);
        }
    }
    req.remove_header(&header::COOKIE);
    if !kept.is_empty() {
        req.insert_header(header::COOKIE, kept)?;
    }
    Ok(())
}

/// A login the backend asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub user: String,
    pub roles: Vec<String>,
}

/// The session commands in one backend response.
#[derive(Debug, Default, PartialEq)]
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
            if v.is_empty() || v.len() > MAX_USER_LEN || v.chars().any(char::is_control) {
                tracing::warn!(
                    "X-Session-Login with an empty, long or control-character user ignored"
                );
            } else {
                login_user = Some(v.to_owned());
            }
        } else if same_name(n, b"x-session-roles") {
            roles = v
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect();
        } else if same_name(n, b"x-session-data") {
            match (v.len() <= MAX_DATA_LEN).then(|| serde_json::from_str::<Value>(v)) {
                Some(Ok(Value::Object(map))) => out.data = Some(map),
                _ => tracing::warn!(
                    "X-Session-Data that is not a JSON object of at most 8 KiB ignored"
                ),
            }
        }
    }
    out.login = login_user.map(|user| Command { user, roles });
    Some(out)
}

fn drop_backend_session_cookie(resp: &mut ResponseHeader, cookie_name: &str) {
    let is_ours = |v: &HeaderValue| {
        let v = v.as_bytes();
        let end = v.iter().position(|&b| b == b'=').unwrap_or(v.len());
        v[..end].trim_ascii() == cookie_name.as_bytes()
    };
    let all = resp.headers.get_all(header::SET_COOKIE);
    if !all.iter().any(is_ours) {
        return;
    }
    let keep: Vec<HeaderValue> = all.iter().filter(|v| !is_ours(v)).cloned().collect();
    tracing::warn!("backend Set-Cookie for the session cookie dropped");
    resp.remove_header(&header::SET_COOKIE);
    for v in keep {
        // append_header only fails on invalid names; SET_COOKIE is valid.
        let _ = resp.append_header(header::SET_COOKIE, v);
    }
}

/// Append the login redirect's `next` value: the normalised path and the query,
/// percent-encoded so it can only ever be read back as a same-origin path.
pub fn encode_next(out: &mut String, path: &str, query: Option<&str>) {
    fn push_encoded(out: &mut String, s: &str) {
        for &b in s.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
                out.push(b as char);
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
    }
    push_encoded(out, path);
    if let Some(q) = query {
        out.push_str("%3F");
        push_encoded(out, q);
    }
}

/// An address range (`10.0.0.0/8`, `::1/128`, or a single address) of proxies
/// whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this range (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| ())?,
                Some(p.parse::<u8>().map_err(|_| ())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| ())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(());
        }
        Ok(Cidr { addr, prefix })
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy, then
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries further left were written by the client and prove nothing).
pub fn client_address<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = xff.flat_map(|v| v.split(',')).map(str::trim).collect();
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            // Garbage where an address should be: stop believing the chain.
            Err(_) => return peer,
        }
    }
    peer
}

/// Whether a request reached us over HTTPS: only a trusted proxy can say so
/// (`X-Forwarded-Proto: https`); our own listener is plain HTTP.
pub fn is_https(req: &RequestHeader, peer_trusted: bool) -> bool {
    peer_trusted
        && req
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn client_address_walks_x_forwarded_for_from_the_right() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            (lb, vec!["203.0.113.9"], "203.0.113.9"),
            (lb, vec!["1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),
            (lb, vec!["1.1.1.1", "203.0.113.9"], "203.0.113.9"),
            (lb, vec![], "10.0.0.2"),
            (lb, vec!["nonsense"], "10.0.0.2"),
            (ip("198.51.100.1"), vec!["203.0.113.9"], "198.51.100.1"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_address(peer, xff.iter().copied(), &trusted),
                ip(want),
                "{xff:?}"
            );
        }
    }

    #[test]
    fn cidr_contains() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn reserved_names_in_every_spelling() {
        for name in [
            "x-user",
            "X-User",
            "X_USER",
            "x_user",
            "X-USER-ROLES",
            "x_user_roles",
            "x-session-data",
            "X_Session_Login",
            "x-session-anything",
            "x-forwarded-for",
            "X_Forwarded_Host",
            "forwarded",
            "X-Forwarded-User",
            "x-forwarded-prefix",
            "X-Real-IP",
            "x_original_url",
            "X-HTTP-Method-Override",
        ] {
            assert!(is_reserved(name.as_bytes()), "{name}");
        }
        for name in [
            "x-users",
            "x-user-role",
            "x-sessions",
            "user",
            "x-forwarded",
            "accept",
        ] {
            assert!(!is_reserved(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn client_identity_headers_are_stripped() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("X-User", "root"),
            ("x_user", "root"),
            ("X-Session-Data", "{}"),
            ("Accept", "*/*"),
        ] {
            req.append_header(k.to_string(), v).unwrap();
        }
        strip_client_identity(&mut req);
        let names: Vec<_> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn session_cookie_is_removed_other_cookies_kept() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Cookie", "a=1; sid=x").unwrap();
        req.append_header("Cookie", "b=2").unwrap();
        strip_session_cookie(&mut req, "sid").unwrap();
        let got: Vec<_> = req
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, vec!["a=1; b=2"]);

        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Cookie", "sid=x").unwrap();
        strip_session_cookie(&mut req, "sid").unwrap();
        assert!(req.headers.get("cookie").is_none());
    }

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
    fn next_is_encoded_as_a_relative_path() {
        let mut s = String::new();
        encode_next(&mut s, "/a b/c", Some("x=1&y=//evil"));
        assert_eq!(s, "/a%20b/c%3Fx%3D1%26y%3D//evil");
    }
}
