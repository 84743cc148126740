//! What the Redis store is built from: [`RedisOptions`] and [`Servers`] (one
//! server, Sentinel or Cluster), as the config compiles them, and the rule that
//! their `Debug` never shows a password (a `Config` holding them derives
//! `Debug`).
//!
//! It does not parse or validate `proxy.toml` (`config/`), nor connect
//! (`conn.rs`, `sentinel.rs`, `cluster.rs`).

use std::time::Duration;

use super::{ClusterOptions, SentinelOptions};

/// The shared store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RedisOptions {
    pub servers: Servers,
    pub prefix: String,
    pub timeout: Duration,
    pub local_ttl: Duration,
    pub local_capacity: u64,
}

/// Which Redis servers hold the sessions. Its `Debug` leaves passwords out.
#[derive(Clone, PartialEq)]
pub(crate) enum Servers {
    /// One server: `redis://host:port/db`, with the password (if any) filled
    /// in from `store.password`.
    One(String),
    /// `[store.sentinel]`: whichever server the sentinels name as primary.
    Sentinel(SentinelOptions),
    /// `[store.cluster]`: a Redis Cluster.
    Cluster(ClusterOptions),
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Servers::One(url) => {
                // redis://:<password>@host:port/db: only what follows the `@`.
                let shown = match url.split_once('@') {
                    Some((_, rest)) => format!("redis://[redacted]@{rest}"),
                    None => url.clone(),
                };
                f.debug_tuple("One").field(&shown).finish()
            }
            Servers::Sentinel(s) => f.debug_tuple("Sentinel").field(s).finish(),
            Servers::Cluster(c) => f.debug_tuple("Cluster").field(c).finish(),
        }
    }
}

/// A password as `Debug` shows it: whether there is one, never what it is.
pub(super) fn redacted(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::redis::{ClusterOptions, SentinelOptions};

    #[test]
    fn debug_output_never_shows_a_password() {
        let pw = Some("hunter2-secret".to_owned());
        let shown = [
            format!(
                "{:?}",
                Servers::One("redis://:hunter2-secret@h:6379/0".into())
            ),
            format!(
                "{:?}",
                Servers::Cluster(ClusterOptions {
                    nodes: vec!["h:1".into()],
                    password: pw.clone(),
                })
            ),
            format!(
                "{:?}",
                Servers::Sentinel(SentinelOptions {
                    addrs: vec!["h:2".into()],
                    master_name: "m".into(),
                    password: pw.clone(),
                    node_password: pw,
                    database: 0,
                })
            ),
        ];
        for s in shown {
            assert!(!s.contains("hunter2"), "{s}");
            assert!(s.contains("[redacted]"), "{s}");
        }
    }
}
