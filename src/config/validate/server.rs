//! `[server]`: the plain and TLS listeners, the upgrade socket, the worker and
//! shutdown settings, the connection limits and the trusted proxies.
//!
//! It loads each `[[server.tls]]` certificate pair now, so a bad pair is a
//! config problem rather than a listener that fails later. It does not build a
//! listener; the `server` module does, from the validated `Config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Validator;
use crate::config::raw::{RawServer, RawTls};
use crate::http::connections::Limits;
use crate::http::tls::{self, TlsListener};
use crate::proxy::forwarded::{self, Networks};

/// `[server]`, validated: the fields of [`Config`](crate::config::Config)
/// it fills, named as there.
pub(super) struct Server {
    pub(super) listen: Vec<SocketAddr>,
    pub(super) tls: Vec<TlsListener>,
    pub(super) upgrade_socket: Option<PathBuf>,
    pub(super) trusted_proxies: Networks,
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
            trusted_proxies: Networks::new(trusted_proxies),
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
            let first = self.tls_pair(&key, &t.cert_file, &t.key_file, None, base);
            let mut pairs: Vec<tls::Pair> = first.into_iter().collect();
            for (j, c) in t.certificates.iter().enumerate() {
                let key = format!("{key}.certificates[{j}]");
                match self.tls_pair(&key, &c.cert_file, &c.key_file, c.names.as_deref(), base) {
                    Some(p) if p.names.is_empty() => self.problem(
                        &key,
                        "serves no name: the certificate has no DNS names; give them in names = [...]",
                    ),
                    Some(p) => pairs.push(p),
                    None => {}
                }
            }
            if pairs.len() == 1 + t.certificates.len() {
                out.push(TlsListener { listen, pairs });
            }
        }
        out
    }

    /// One certificate pair, loaded and checked; `names` in place of its own.
    fn tls_pair(
        &mut self,
        key: &str,
        cert_file: &str,
        key_file: &str,
        names: Option<&[String]>,
        base: &Path,
    ) -> Option<tls::Pair> {
        let (cert, key_file) = (base.join(cert_file), base.join(key_file));
        self.files.push(cert.clone());
        self.files.push(key_file.clone());
        let mut pair = match tls::Pair::load(&cert, &key_file) {
            Ok(p) => p,
            Err(e) => {
                self.problem(key, e);
                return None;
            }
        };
        if let Some(names) = names {
            let mut given = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let (wild, name) = match n.strip_prefix("*.") {
                    Some(rest) => ("*.", rest),
                    None => ("", n.as_str()),
                };
                match crate::proxy::host::canonical(name, false) {
                    Ok(h) if h.port.is_none() && !name.contains('*') => {
                        given.push(format!("{wild}{}", h.name));
                    }
                    _ => self.problem(
                        &format!("{key}.names[{i}]"),
                        format!("not a host name or \"*.\" and a domain (got {n:?})"),
                    ),
                }
            }
            pair.names = given;
        }
        Some(pair)
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
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use super::super::testing::{
        assert_refused, assert_refused_in, minimal, minimal_with, valid, valid_in, Scratch,
    };

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

    /// The minimal config with `server.listen` set to `value`.
    fn listen(value: &str) -> String {
        minimal("").replace("listen = [\"127.0.0.1:0\"]", &format!("listen = {value}"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn server_defaults_apply_when_unset() {
        let c = valid(&minimal(""));
        assert_eq!(c.listen, [addr("127.0.0.1:0")]);
        assert!(c.tls.is_empty());
        assert_eq!(c.upgrade_socket, None);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.threads, 2);
        assert_eq!(c.grace_period, Duration::from_secs(5));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c.client_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.connections.head_timeout, Duration::from_secs(10));
        assert_eq!(c.connections.max_connections, 10_000);
        assert_eq!(c.read_buffer, 4096);
    }

    #[test]
    fn each_server_refusal_names_its_key_and_value() {
        let cases = [
            (
                listen("[\"localhost:80\"]"),
                "server.listen[0]: not an ip:port (got \"localhost:80\")",
            ),
            (
                listen("[]"),
                "server.listen: needs at least one address (e.g. \"127.0.0.1:8080\"), or a [[server.tls]]",
            ),
            (
                listen("[\"127.0.0.1:8080\", \"127.0.0.1:8080\"]"),
                "server: 127.0.0.1:8080 is listed twice (server.listen and server.tls[].listen)",
            ),
            (
                minimal_with("[server]", "threads = 0"),
                "server.threads: must be at least 1 (got 0)",
            ),
            (
                minimal_with("[server]", "grace_period = \"500ms\""),
                "server.grace_period: must be at least 1s (got \"500ms\")",
            ),
            (
                minimal_with("[server]", "shutdown_timeout = \"0s\""),
                "server.shutdown_timeout: must be greater than zero (got \"0s\")",
            ),
            (
                minimal_with("[server]", "client_idle_timeout = \"999ms\""),
                "server.client_idle_timeout: must be at least 1s (got \"999ms\")",
            ),
            (
                minimal_with("[server]", "request_head_timeout = \"500ms\""),
                "server.request_head_timeout: must be at least 1s (got \"500ms\")",
            ),
            (
                minimal_with("[server]", "read_buffer = 1023"),
                "server.read_buffer: must be 1024-1048576 bytes (got 1023)",
            ),
            (
                minimal_with("[server]", "read_buffer = 1048577"),
                "server.read_buffer: must be 1024-1048576 bytes (got 1048577)",
            ),
            (
                minimal_with("[server]", "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]"),
                "server.trusted_proxies[1]: not an address or CIDR like \"10.0.0.0/8\" (got \"10.0.0.0/33\")",
            ),
            (
                minimal_with("[server]", "trusted_proxies = [\"proxy.internal\"]"),
                "server.trusted_proxies[0]: not an address or CIDR like \"10.0.0.0/8\" (got \"proxy.internal\")",
            ),
            (
                minimal_with("[server]", "upgrade_socket = \"sessiongate.sock\""),
                "server.upgrade_socket: must be an absolute path (got \"sessiongate.sock\")",
            ),
            (
                minimal_with("[server]", "upgrade_socket = \"/\""),
                "server.upgrade_socket: must be an absolute path (got \"/\")",
            ),
            (
                minimal_with("[server]", "upgrade_socket = \"/nonexistent-sessiongate/u.sock\""),
                "server.upgrade_socket: cannot use /nonexistent-sessiongate: ",
            ),
            (
                minimal("[[server.tls]]\nlisten = []\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"),
                "server.tls[0].listen: needs at least one address",
            ),
            (
                minimal("[[server.tls]]\nlisten = [\"x\"]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"),
                "server.tls[0].listen[0]: not an ip:port (got \"x\")",
            ),
            (
                minimal("[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert_file = \"absent.pem\"\nkey_file = \"k.pem\"\n"),
                "server.tls[0]: cannot read ./absent.pem: ",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }

    #[test]
    fn limits_at_their_bounds_are_accepted() {
        for (lines, read_buffer) in [
            ("read_buffer = 1024", 1024),
            ("read_buffer = 1048576", 1_048_576),
        ] {
            assert_eq!(
                valid(&minimal_with("[server]", lines)).read_buffer,
                read_buffer
            );
        }
        let c = valid(&minimal_with(
            "[server]",
            "threads = 1\nmax_connections = 1\nclient_idle_timeout = \"1s\"",
        ));
        assert_eq!((c.threads, c.connections.max_connections), (1, 1));
        assert_eq!(c.client_idle_timeout, Duration::from_secs(1));
    }

    #[test]
    fn trusted_proxies_are_ranges_or_single_addresses() {
        let c = valid(&minimal_with(
            "[server]",
            "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"::1\"]",
        ));
        let t = &c.trusted_proxies;
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("192.0.2.1".parse().unwrap()));
        assert!(!t.contains("192.0.2.2".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
    }

    #[test]
    fn the_upgrade_socket_needs_a_directory_no_other_user_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new();
        let mode = |p: &Path, m: u32| {
            std::fs::create_dir(p).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        let (own, open) = (dir.path().join("own"), dir.path().join("open"));
        mode(&own, 0o700);
        mode(&open, 0o777);
        let file = dir.write("file", "");
        let socket = |p: &Path| {
            let line = format!("upgrade_socket = \"{}\"", p.join("u.sock").display());
            minimal_with("[server]", &line)
        };
        assert_eq!(
            valid(&socket(&own)).upgrade_socket,
            Some(own.join("u.sock"))
        );
        assert_refused(
            &socket(&open),
            &format!(
                "server.upgrade_socket: {} is writable by every user: use a directory of sessiongate's own, e.g. /run/sessiongate",
                open.display()
            ),
        );
        assert_refused(
            &socket(&file),
            &format!(
                "server.upgrade_socket: {} is not a directory",
                file.display()
            ),
        );
    }

    #[test]
    fn tls_listeners_load_their_pair_and_share_no_address() {
        let dir = Scratch::new();
        let pair = |n: &str| {
            let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let cert = dir.write(&format!("cert{n}.pem"), c.cert.pem());
            let key = dir.write(&format!("key{n}.pem"), c.key_pair.serialize_pem());
            (cert, key)
        };
        let (cert, key) = pair("1");
        let (_, other_key) = pair("2");
        let tls = "[[server.tls]]\nlisten = [\"127.0.0.1:8443\"]\ncert_file = \"cert1.pem\"\nkey_file = \"key1.pem\"\n";
        let c = valid_in(&minimal(tls), dir.path());
        assert_eq!(c.tls[0].listen, [addr("127.0.0.1:8443")]);
        assert_eq!(c.files, [cert.clone(), key.clone()]);
        // TLS alone is a listener enough.
        let only_tls = minimal(tls).replace("listen = [\"127.0.0.1:0\"]\n", "");
        assert!(valid_in(&only_tls, dir.path()).listen.is_empty());
        assert_refused_in(
            &minimal(tls).replace("127.0.0.1:0", "127.0.0.1:8443"),
            dir.path(),
            "server: 127.0.0.1:8443 is listed twice (server.listen and server.tls[].listen)",
        );
        assert_refused_in(
            &minimal(tls).replace("key1.pem", "key2.pem"),
            dir.path(),
            &format!(
                "server.tls[0]: {} does not go with {}: ",
                other_key.display(),
                cert.display()
            ),
        );
        // More pairs: their own names, or the config's, canonical.
        let more = |extra: &str| minimal(&format!("{}certificates = [{extra}]\n", tls));
        let c = valid_in(
            &more("{ cert_file = \"cert2.pem\", key_file = \"key2.pem\", names = [\"App.Example.COM.\", \"*.example.org\"] }"),
            dir.path(),
        );
        assert_eq!(c.tls[0].pairs.len(), 2);
        assert_eq!(c.tls[0].pairs[0].names, ["localhost"]);
        assert_eq!(
            c.tls[0].pairs[1].names,
            ["app.example.com", "*.example.org"]
        );
        assert_refused_in(
            &more("{ cert_file = \"cert2.pem\", key_file = \"key2.pem\", names = [\"a.*.org\"] }"),
            dir.path(),
            "server.tls[0].certificates[0].names[0]: not a host name",
        );
        assert_refused_in(
            &more("{ cert_file = \"cert2.pem\", key_file = \"key1.pem\" }"),
            dir.path(),
            "server.tls[0].certificates[0]: ",
        );
    }
}
