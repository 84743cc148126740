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
