//! `[upstream.<name>]`: each backend's addresses, resolved once here, and its
//! timeouts. At least one upstream is required.
//!
//! The routes that point at them are checked in [`routes`](super::routes);
//! `assertion_audience` in [`assertion`](super::assertion).

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;

use super::Validator;
use crate::config::raw::RawUpstream;
use crate::proxy::UpstreamOptions;

impl Validator {
    pub(super) fn upstreams(&mut self, raw: BTreeMap<String, RawUpstream>) -> Vec<UpstreamOptions> {
        if raw.is_empty() {
            self.problem("upstream", "at least one [upstream.<name>] is required");
        }
        let mut out = Vec::new();
        for (name, u) in raw {
            let key = |field: &str| format!("upstream.{name}.{field}");
            if u.addrs.is_empty() {
                self.problem(
                    &key("addrs"),
                    "needs at least one address (e.g. \"127.0.0.1:3000\")",
                );
            }
            let mut addrs = Vec::new();
            for (i, a) in u.addrs.iter().enumerate() {
                // Resolved once, at start-up: pingora's HttpPeer would resolve with a
                // blocking call (and panic on failure) on the request path.
                match a.to_socket_addrs().map(|mut it| it.next()) {
                    Ok(Some(addr)) => addrs.push(addr),
                    _ => self.problem(
                        &format!("upstream.{name}.addrs[{i}]"),
                        format!("not a resolvable host:port (got {a:?})"),
                    ),
                }
            }
            let connect_timeout = self.duration(&key("connect_timeout"), &u.connect_timeout);
            let read_timeout = self.duration(&key("read_timeout"), &u.read_timeout);
            let write_timeout = self.duration(&key("write_timeout"), &u.write_timeout);
            let idle_timeout = self.duration(&key("idle_timeout"), &u.idle_timeout);
            let health = self.duration(&key("health_check_interval"), &u.health_check_interval);
            if let (Some(c), Some(r), Some(w), Some(i), Some(h)) = (
                connect_timeout,
                read_timeout,
                write_timeout,
                idle_timeout,
                health,
            ) {
                out.push(UpstreamOptions {
                    name,
                    addrs,
                    session_commands: u.session_commands,
                    connect_timeout: c,
                    read_timeout: r,
                    write_timeout: w,
                    idle_timeout: i,
                    health_check_interval: h,
                    assertion_audience: u.assertion_audience.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal};

    #[test]
    fn an_upstream_without_addresses_is_refused() {
        assert_refused(
            &minimal("").replace("addrs = [\"127.0.0.1:9\"]", "addrs = []"),
            "upstream.app.addrs: needs at least one",
        );
    }
}
