//! `[server]`: the plain and TLS listeners, the upgrade socket, the worker and
//! shutdown settings, the connection limits and the trusted proxies.
//!
//! It loads each `[[server.tls]]` certificate pair now, so a bad pair is a
//! config problem rather than a listener that fails later. It does not build a
//! listener; `server` does that from the [`Server`] returned here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Validator;
use crate::config::raw::{RawServer, RawTls};
use crate::http::connections::Limits;
use crate::http::tls::{self, TlsListener};
use crate::proxy::forwarded::{self, TrustedProxies};

/// `[server]`, validated: the fields of [`Config`](crate::config::Config)
/// it fills, named as there.
pub(super) struct Server {
    pub(super) listen: Vec<SocketAddr>,
    pub(super) tls: Vec<TlsListener>,
    pub(super) upgrade_socket: Option<PathBuf>,
    pub(super) trusted_proxies: TrustedProxies,
    pub(super) threads: usize,
    pub(super) grace_period: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) client_idle_timeout: Duration,
    pub(super) read_buffer: usize,
    pub(super) connections: Limits,
}

impl Validator {
    pub(super) fn server(&mut self, raw: RawServer, base: &Path) -> Option<Server> {
        let listen = self.addresses("server.listen", &raw.listen);
        let tls = self.tls(&raw.tls, base);
        if raw.listen.is_empty() && raw.tls.is_empty() {
            self.problem(
                "server.listen",
                "needs at least one address (e.g. \"127.0.0.1:8080\"), or a [[server.tls]]",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for addr in listen.iter().chain(tls.iter().flat_map(|t| &t.listen)) {
            if !seen.insert(*addr) {
                self.problem(
                    "server",
                    format!("{addr} is listed twice (server.listen and server.tls[].listen)"),
                );
            }
        }
        let upgrade_socket = raw
            .upgrade_socket
            .as_deref()
            .and_then(|p| self.upgrade_socket(p));
        if raw.threads == 0 {
            self.problem("server.threads", "must be at least 1 (got 0)");
        }
        let grace_period = self.whole_seconds("server.grace_period", &raw.grace_period);
        let shutdown_timeout = self.whole_seconds("server.shutdown_timeout", &raw.shutdown_timeout);
        let client_idle_timeout =
            self.whole_seconds("server.client_idle_timeout", &raw.client_idle_timeout);
        let head_timeout =
            self.whole_seconds("server.request_head_timeout", &raw.request_head_timeout);
        if raw.max_connections == 0 {
            self.problem("server.max_connections", "must be at least 1 (got 0)");
        }
        if !(1024..=1024 * 1024).contains(&raw.read_buffer) {
            self.problem(
                "server.read_buffer",
                format!("must be 1024-1048576 bytes (got {})", raw.read_buffer),
            );
        }
        let mut trusted_proxies = Vec::new();
        for (i, c) in raw.trusted_proxies.iter().enumerate() {
            match forwarded::parse_range(c) {
                Some(c) => trusted_proxies.push(c),
                None => self.problem(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("not an address or CIDR like \"10.0.0.0/8\" (got {c:?})"),
                ),
            }
        }
        Some(Server {
            listen,
            tls,
            upgrade_socket,
            trusted_proxies: TrustedProxies::new(trusted_proxies),
            threads: raw.threads,
            grace_period: grace_period?,
            shutdown_timeout: shutdown_timeout?,
            client_idle_timeout: client_idle_timeout?,
            read_buffer: raw.read_buffer,
            connections: Limits {
                max_connections: raw.max_connections,
                head_timeout: head_timeout?,
            },
        })
    }

    fn addresses(&mut self, key: &str, raw: &[String]) -> Vec<SocketAddr> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, a)| match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        &format!("{key}[{i}]"),
                        format!("not an ip:port (got {a:?})"),
                    );
                    None
                }
            })
            .collect()
    }

    /// `[[server.tls]]`: each block's addresses and its certificate pair,
    /// loaded and checked now, so `sessiongate check` and a reload catch a
    /// bad pair before it is served.
    fn tls(&mut self, raw: &[RawTls], base: &Path) -> Vec<TlsListener> {
        let mut out = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let key = format!("server.tls[{i}]");
            let listen = self.addresses(&format!("{key}.listen"), &t.listen);
            if t.listen.is_empty() {
                self.problem(&format!("{key}.listen"), "needs at least one address");
            }
            let (cert, key_file) = (base.join(&t.cert_file), base.join(&t.key_file));
            self.files.push(cert.clone());
            self.files.push(key_file.clone());
            match tls::Pair::load(&cert, &key_file) {
                Ok(pair) => out.push(TlsListener { listen, pair }),
                Err(e) => self.problem(&key, e),
            }
        }
        out
    }

    /// `server.upgrade_socket`: the new process listens there and the old one
    /// sends it the listening sockets, so whoever can create that path could
    /// receive them. It must be absolute and in a directory that exists and
    /// that other users cannot write (not /tmp).
    fn upgrade_socket(&mut self, raw: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let key = "server.upgrade_socket";
        let path = PathBuf::from(raw);
        let parent = path
            .parent()
            .filter(|p| path.is_absolute() && !p.as_os_str().is_empty());
        let Some(parent) = parent else {
            self.problem(key, format!("must be an absolute path (got {raw:?})"));
            return None;
        };
        match std::fs::metadata(parent) {
            Ok(m) if m.is_dir() && m.permissions().mode() & 0o002 == 0 => Some(path),
            Ok(m) if m.is_dir() => {
                self.problem(
                    key,
                    format!(
                        "{} is writable by every user: use a directory of sessiongate's own, e.g. /run/sessiongate",
                        parent.display()
                    ),
                );
                None
            }
            Ok(_) => {
                self.problem(key, format!("{} is not a directory", parent.display()));
                None
            }
            Err(e) => {
                self.problem(key, format!("cannot use {}: {e}", parent.display()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal_with};

    #[test]
    fn unsafe_server_settings_are_refused() {
        let cases = [
            (
                minimal_with("[server]", "client_idle_timeout = \"500ms\""),
                "server.client_idle_timeout: must be at least 1s",
            ),
            (
                minimal_with("[server]", "request_head_timeout = \"0s\""),
                "server.request_head_timeout: must be greater than zero",
            ),
            (
                minimal_with("[server]", "max_connections = 0"),
                "server.max_connections: must be at least 1 (got 0)",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }
}
