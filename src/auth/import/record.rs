//! An express-session record, as connect-redis stores it (`JSON.stringify`
//! of the session) or a dump holds it: the app's fields and a `cookie`
//! object whose `expires` says when the session ends. What the import
//! takes from it: the user at `user_path` (passport keeps it at
//! `passport.user`), the roles at `roles_path`, and the `copy` fields.

use serde_json::{Map, Value};

use crate::auth::names;

/// Why a record gives no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// Not a JSON object with a `cookie` object, or an `expires` that is
    /// not a date.
    Broken,
    /// Its `cookie.expires` has passed (only Express's MemoryStore checks
    /// this; connect-redis relies on the key's TTL, which a restored
    /// snapshot does not have).
    Expired,
    /// The identity is missing, of the wrong type, or outside the alphabet.
    BadIdentity,
}

/// Where to look in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    /// `passport.user` as `["passport", "user"]`.
    pub user: Vec<String>,
    pub roles: Option<Vec<String>>,
    /// Integers as user names (`serializeUser` returning `user.id`).
    pub numeric_users: bool,
    /// Top-level fields copied into the new session's data.
    pub copy: Vec<String>,
}

/// Who a record says is signed in, and what comes with them.
#[derive(Debug, PartialEq)]
pub(crate) struct Who {
    pub user: String,
    pub roles: Vec<String>,
    pub data: Map<String, Value>,
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.as_object()?.get(k))
}

/// Read `record` as of `now_ms`.
pub(crate) fn read(record: &Value, paths: &Paths, now_ms: u64) -> Result<Who, Unread> {
    let obj = record.as_object().ok_or(Unread::Broken)?;
    let cookie = obj
        .get("cookie")
        .and_then(Value::as_object)
        .ok_or(Unread::Broken)?;
    match cookie.get("expires") {
        // A browser-session cookie (no maxAge): the store's TTL is its end.
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let at = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| Unread::Broken)?;
            if at.timestamp_millis() <= i64::try_from(now_ms).unwrap_or(i64::MAX) {
                return Err(Unread::Expired);
            }
        }
        Some(_) => return Err(Unread::Broken),
    }
    let user = match at(record, &paths.user) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if paths.numeric_users => {
            n.as_u64().ok_or(Unread::BadIdentity)?.to_string()
        }
        // Objects, arrays, booleans, null, and numbers not opted in.
        _ => return Err(Unread::BadIdentity),
    };
    names::check_user(&user).map_err(|_| Unread::BadIdentity)?;
    let roles = match paths.roles.as_deref().map(|p| at(record, p)) {
        None | Some(None) | Some(Some(Value::Null)) => Vec::new(),
        Some(Some(Value::Array(a))) => a
            .iter()
            .map(|r| r.as_str().map(str::to_owned).ok_or(Unread::BadIdentity))
            .collect::<Result<_, _>>()?,
        Some(Some(Value::String(s))) => vec![s.clone()],
        Some(Some(_)) => return Err(Unread::BadIdentity),
    };
    if roles.len() > crate::auth::oidc::claims::MAX_ROLES
        || roles.iter().any(|r| names::check_role(r).is_err())
    {
        return Err(Unread::BadIdentity);
    }
    let data: Map<String, Value> = paths
        .copy
        .iter()
        .filter_map(|k| Some((k.clone(), obj.get(k)?.clone())))
        .collect();
    // Session data goes upstream with every request: the cap of the
    // backend's own writes holds for copied fields too.
    let size = serde_json::to_string(&data).map_or(usize::MAX, |j| j.len());
    if size > crate::session::manager::MAX_DATA_BYTES {
        return Err(Unread::Broken);
    }
    Ok(Who { user, roles, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_790_000_000_000;

    fn paths() -> Paths {
        Paths {
            user: vec!["passport".into(), "user".into()],
            roles: Some(vec!["roles".into()]),
            numeric_users: false,
            copy: vec!["cart".into()],
        }
    }

    fn record(user: Value) -> Value {
        json!({
            "cookie": {"originalMaxAge": 86400000, "expires": "2027-01-15T08:00:00.000Z", "httpOnly": true, "path": "/"},
            "passport": {"user": user},
            "roles": ["staff"],
            "cart": [1, 2],
            "secret_note": "not copied",
        })
    }

    #[test]
    fn the_user_roles_and_copied_fields_are_read() {
        let who = read(&record(json!("alice")), &paths(), NOW).unwrap();
        assert_eq!(who.user, "alice");
        assert_eq!(who.roles, vec!["staff"]);
        assert_eq!(Value::Object(who.data), json!({"cart": [1, 2]}));
        // No expiry: a browser-session cookie.
        let mut r = record(json!("alice"));
        r["cookie"]["expires"] = Value::Null;
        assert!(read(&r, &paths(), NOW).is_ok());
    }

    #[test]
    fn each_bad_identity_is_refused() {
        for bad in [
            json!(42),
            json!({"id": 1}),
            json!(["alice"]),
            json!(true),
            Value::Null,
            json!("root, alice"),
            json!("ali\u{0}ce"),
            json!("line\nbreak"),
            json!("x".repeat(300)),
            json!(""),
            json!(-1),
            json!(1.5),
        ] {
            assert_eq!(
                read(&record(bad.clone()), &paths(), NOW),
                Err(Unread::BadIdentity),
                "{bad}"
            );
        }
        // Numbers only when opted in, and whole.
        let numeric = Paths {
            numeric_users: true,
            ..paths()
        };
        assert_eq!(read(&record(json!(42)), &numeric, NOW).unwrap().user, "42");
        for bad in [json!(-1), json!(1.5)] {
            assert_eq!(read(&record(bad), &numeric, NOW), Err(Unread::BadIdentity));
        }
        // Roles outside the alphabet refuse the whole record.
        let mut r = record(json!("alice"));
        r["roles"] = json!(["staff", "a,b"]);
        assert_eq!(read(&r, &paths(), NOW), Err(Unread::BadIdentity));
        r["roles"] = json!({"admin": true});
        assert_eq!(read(&r, &paths(), NOW), Err(Unread::BadIdentity));
        // Copied fields past the session data cap.
        let mut r = record(json!("alice"));
        r["cart"] = json!("x".repeat(9000));
        assert_eq!(read(&r, &paths(), NOW), Err(Unread::Broken));
    }

    #[test]
    fn an_expired_or_broken_record_is_no_one() {
        let mut r = record(json!("alice"));
        r["cookie"]["expires"] = json!("2020-01-01T00:00:00.000Z");
        assert_eq!(read(&r, &paths(), NOW), Err(Unread::Expired));
        for broken in [
            json!("a string"),
            json!([1]),
            json!({"passport": {"user": "alice"}}),
            json!({"cookie": "x", "passport": {"user": "alice"}}),
            json!({"cookie": {"expires": "soon"}, "passport": {"user": "alice"}}),
            json!({"cookie": {"expires": 5}, "passport": {"user": "alice"}}),
        ] {
            assert_eq!(
                read(&broken, &paths(), NOW),
                Err(Unread::Broken),
                "{broken}"
            );
        }
    }
}
