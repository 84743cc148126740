//! `[admin]`: the admin listener's address and its token. Without a token
//! the listener must be on loopback, since the admin API can revoke every
//! session.

use std::net::SocketAddr;
use std::path::Path;

use super::Validator;
use crate::config::raw::RawAdmin;
use crate::config::AdminConfig;

impl Validator {
    pub(super) fn admin(&mut self, raw: RawAdmin, base: &Path) -> Option<AdminConfig> {
        let listen = match raw.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "admin.listen",
                    format!("not an ip:port (got {:?})", raw.listen),
                );
                None
            }
        };
        let token = match &raw.token {
            Some(t) => Some(self.secret("admin.token", t, base)?),
            None => None,
        };
        let listen = listen?;
        if token.is_none() && !listen.ip().is_loopback() {
            self.problem(
                "admin.listen",
                format!("{listen} is not loopback: set admin.token, or the admin API would be open to the network"),
            );
            return None;
        }
        Some(AdminConfig { listen, token })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        assert_refused, minimal, valid, SECRET, SECRET_VAR, SHORT_SECRET_VAR, UNSET_VAR,
    };

    /// The minimal config with `lines` in `[admin]`.
    fn admin(lines: &str) -> String {
        minimal(&format!("[admin]\n{lines}\n"))
    }

    #[test]
    fn admin_defaults_apply_when_unset() {
        let a = valid(&minimal("")).admin;
        assert_eq!(a.listen, "127.0.0.1:9091".parse().unwrap());
        assert!(a.token.is_none());
    }

    #[test]
    fn without_a_token_the_admin_listener_stays_on_loopback() {
        assert!(valid(&admin("listen = \"[::1]:9091\""))
            .admin
            .token
            .is_none());
        let token = format!("listen = \"0.0.0.0:9091\"\ntoken = {{ env = \"{SECRET_VAR}\" }}");
        let a = valid(&admin(&token)).admin;
        assert_eq!(a.token.map(|t| t.expose().to_vec()), Some(SECRET.into()));
        let cases = [
            (
                admin("listen = \"nope\""),
                "admin.listen: not an ip:port (got \"nope\")".to_owned(),
            ),
            (
                admin("listen = \"0.0.0.0:9091\""),
                "admin.listen: 0.0.0.0:9091 is not loopback: set admin.token, or the admin API would be open to the network".to_owned(),
            ),
            (
                admin(&format!("token = {{ env = \"{SHORT_SECRET_VAR}\" }}")),
                "admin.token: must be at least 32 bytes (got 21 bytes)".to_owned(),
            ),
            (
                admin(&format!("token = {{ env = \"{UNSET_VAR}\" }}")),
                format!("admin.token: environment variable {UNSET_VAR} is not set"),
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, &want);
        }
    }
}
