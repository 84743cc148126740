//! The session as the Redis store keeps it: one JSON value per session,
//! written by Rust and re-encoded by the Lua scripts (cjson) without changing
//! its shape. It holds no identifier: the session key is only the Redis key's name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::{Session, SessionKey};

/// The session as stored: roles and data are strings inside the JSON so the Lua
/// scripts can decode and re-encode it without changing its shape.
#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) user: Option<String>,
    roles: String,
    data: String,
    created_at: u64,
    absolute_expires_at: u64,
    last_seen: u64,
    idle_ms: u64,
    client_ip: Option<String>,
    user_agent: Option<String>,
    /// Absent in records written before the second factor: never passed.
    #[serde(default)]
    factor_at: u64,
    /// The sign-in it belongs to, in hex: Lua's cjson would round a number
    /// past 2^53. Absent in older records: none.
    #[serde(default)]
    login: String,
    /// Absent in older records and for sign-ins without a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_session: Option<crate::session::ProviderSession>,
    /// The user's claims for the backend; absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    claims: Vec<(String, String)>,
    /// A provider's re-checks: the sealed refresh token; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fresh: Option<crate::session::Freshness>,
}

impl Record {
    pub(super) fn of(s: &Session) -> Record {
        Record {
            user: s.user().map(str::to_owned),
            roles: s.roles_header().to_owned(),
            data: s.data_header().unwrap_or("{}").to_owned(),
            created_at: s.created_at,
            absolute_expires_at: s.absolute_expires_at,
            last_seen: s.last_seen_at(),
            idle_ms: s.idle().as_millis() as u64,
            client_ip: s.client_ip.map(|i| i.to_string()),
            user_agent: s.user_agent().map(str::to_owned),
            factor_at: s.factor_at,
            login: match s.login {
                0 => String::new(),
                l => format!("{l:016x}"),
            },
            provider_session: s.provider_session.as_deref().cloned(),
            claims: s
                .claims
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fresh: s.fresh.as_deref().cloned(),
        }
    }

    pub(super) fn into_session(self, key: SessionKey) -> Option<Session> {
        let roles = self
            .roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        let data = match serde_json::from_str(&self.data).ok()? {
            serde_json::Value::Object(m) => m,
            // cjson may turn an empty object into an empty array.
            serde_json::Value::Array(a) if a.is_empty() => serde_json::Map::new(),
            _ => return None,
        };
        let mut s = Session::new(
            key,
            self.user,
            roles,
            data,
            self.created_at,
            self.absolute_expires_at,
            Duration::from_millis(self.idle_ms),
        )
        .with_client(
            self.client_ip.and_then(|i| i.parse().ok()),
            self.user_agent.as_deref(),
        );
        s.mark_seen(self.last_seen);
        s.factor_at = self.factor_at;
        s.login = match self.login.as_str() {
            "" => 0,
            l => u64::from_str_radix(l, 16).ok()?,
        };
        s.provider_session = self.provider_session.map(Box::new);
        s.claims = crate::session::claims_of(self.claims);
        s.fresh = self.fresh.map(Box::new);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_survives_cjson_reencoding() {
        let id = crate::session::signing::SessionId::generate();
        let key = SessionKey::of(&id);
        let mut data = serde_json::Map::new();
        data.insert("cart".into(), serde_json::json!([1, 2]));
        let mut s = Session::new(
            key,
            Some("alice".into()),
            vec!["a".into(), "b".into()],
            data,
            1_000,
            9_000,
            Duration::from_secs(60),
        );
        s.client_ip = Some("10.0.0.1".parse().unwrap());
        s.mark_seen(2_000);
        s.factor_at = 1_500;
        s.login = u64::MAX - 1;
        let json = serde_json::to_string(&Record::of(&s)).unwrap();
        let back = serde_json::from_str::<Record>(&json)
            .unwrap()
            .into_session(key)
            .unwrap();
        assert_eq!(back.user(), Some("alice"));
        assert_eq!(back.roles().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(back.data_header(), Some(r#"{"cart":[1,2]}"#));
        assert_eq!(back.last_seen_at(), 2_000);
        assert_eq!(back.client_ip, s.client_ip);
        assert_eq!(back.factor_at, 1_500);
        assert_eq!(back.login, u64::MAX - 1, "past 2^53, kept exactly");
        // Lua's cjson writes "/" as "\/" and an empty object as "{}".
        let lua = json.replace('/', "\\/");
        assert!(serde_json::from_str::<Record>(&lua)
            .unwrap()
            .into_session(key)
            .is_some());
        // The record holds no identifier at all: neither the raw id nor the
        // key (which is only ever the Redis key's name).
        assert!(
            !json.contains(&hex::encode(id.as_bytes())),
            "raw session id in the record: {json}"
        );
        assert!(
            !json.contains(&key.to_hex()),
            "session key in the record: {json}"
        );
    }
}
