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
                    pass_authorization: u.pass_authorization,
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
    use std::time::Duration;

    use super::super::testing::{assert_refused, minimal, minimal_with, valid};

    #[test]
    fn an_upstream_without_addresses_is_refused() {
        assert_refused(
            &minimal("").replace("addrs = [\"127.0.0.1:9\"]", "addrs = []"),
            "upstream.app.addrs: needs at least one",
        );
    }

    #[test]
    fn upstream_defaults_apply_when_unset() {
        let u = &valid(&minimal("")).upstreams[0];
        assert_eq!(u.name, "app");
        assert_eq!(u.addrs, ["127.0.0.1:9".parse().unwrap()]);
        assert!(!u.session_commands);
        assert_eq!(u.connect_timeout, Duration::from_secs(2));
        assert_eq!(u.read_timeout, Duration::from_secs(30));
        assert_eq!(u.write_timeout, Duration::from_secs(30));
        assert_eq!(u.idle_timeout, Duration::from_secs(55));
        assert_eq!(u.health_check_interval, Duration::from_secs(5));
        assert_eq!(u.assertion_audience, None);
    }

    #[test]
    fn upstreams_come_in_name_order_with_their_settings() {
        let c = valid(&minimal(
            "[upstream.api]\naddrs = [\"[::1]:3000\", \"127.0.0.1:3001\"]\nsession_commands = true\nread_timeout = \"2m\"\n[routes]\ndefault_upstream = \"app\"\n",
        ));
        let names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["api", "app"]);
        let api = &c.upstreams[0];
        assert_eq!(
            api.addrs,
            [
                "[::1]:3000".parse().unwrap(),
                "127.0.0.1:3001".parse().unwrap()
            ]
        );
        assert!(api.session_commands);
        assert_eq!(api.read_timeout, Duration::from_secs(120));
    }

    #[test]
    fn each_upstream_refusal_names_its_key_and_value() {
        let mut cases = vec![
            (
                minimal("").replace("[upstream.app]\naddrs = [\"127.0.0.1:9\"]\n", ""),
                "upstream: at least one [upstream.<name>] is required".to_owned(),
            ),
            (
                minimal("").replace("addrs = [\"127.0.0.1:9\"]", "addrs = []"),
                "upstream.app.addrs: needs at least one address (e.g. \"127.0.0.1:3000\")"
                    .to_owned(),
            ),
            (
                // No port: refused without a DNS lookup.
                minimal("").replace("\"127.0.0.1:9\"", "\"127.0.0.1:9\", \"backend\""),
                "upstream.app.addrs[1]: not a resolvable host:port (got \"backend\")".to_owned(),
            ),
            (
                minimal("").replace("\"127.0.0.1:9\"", "\"127.0.0.1:http\""),
                "upstream.app.addrs[0]: not a resolvable host:port (got \"127.0.0.1:http\")"
                    .to_owned(),
            ),
        ];
        for key in [
            "connect_timeout",
            "read_timeout",
            "write_timeout",
            "idle_timeout",
            "health_check_interval",
        ] {
            cases.push((
                minimal_with("[upstream.app]", &format!("{key} = \"0s\"")),
                format!("upstream.app.{key}: must be greater than zero (got \"0s\")"),
            ));
        }
        for (text, want) in cases {
            assert_refused(&text, &want);
        }
    }
}
