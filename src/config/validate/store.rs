//! `[store]`: the memory store, or Redis as one server (`store.url`), through
//! Sentinel (`[store.sentinel]`) or as a cluster (`[store.cluster]`), and the
//! password that goes with it. Exactly one of the three ways is accepted, and
//! a URL never carries credentials.
//!
//! It does not connect to anything; `session::redis` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Validator;
use crate::config::raw::{RawCluster, RawSecret, RawSentinel, RawStore};
use crate::config::StoreConfig;
use crate::session::redis::{ClusterOptions, RedisOptions, SentinelOptions, Servers};

impl Validator {
    /// `store.credentials_file`: only beside the memory store; an existing
    /// file must be a credentials file (a new one is made at the first key).
    pub(super) fn credentials_file(&mut self, raw: &RawStore, base: &Path) -> Option<PathBuf> {
        let file = raw.credentials_file.as_ref()?;
        if raw.kind != "memory" {
            self.problem(
                "store.credentials_file",
                "only with kind = \"memory\" (with Redis, credentials live in Redis)",
            );
            return None;
        }
        let path = base.join(file);
        if let Err(e) = crate::session::credentials::file::FileHome::open(&path) {
            self.problem("store.credentials_file", e);
            return None;
        }
        Some(path)
    }

    pub(super) fn store(&mut self, raw: RawStore, base: &Path) -> Option<StoreConfig> {
        let timeout = self.duration("store.timeout", &raw.timeout);
        let local_ttl = self.duration("store.local_ttl", &raw.local_ttl);
        match raw.kind.as_str() {
            "memory" => return Some(StoreConfig::Memory),
            "redis" => {}
            other => {
                self.problem(
                    "store.kind",
                    format!("must be memory or redis (got {other:?})"),
                );
                return None;
            }
        }
        let servers = match (raw.url, raw.sentinel, raw.cluster) {
            (url, Some(sn), cluster) => {
                if url.is_some() || cluster.is_some() {
                    self.problem(
                        "store.sentinel",
                        "use one of store.url, [store.sentinel] and [store.cluster]",
                    );
                }
                Servers::Sentinel(self.sentinel(sn, raw.password.as_ref(), base)?)
            }
            (url, None, Some(cl)) => {
                if url.is_some() {
                    self.problem(
                        "store.cluster",
                        "use one of store.url, [store.sentinel] and [store.cluster]",
                    );
                }
                Servers::Cluster(self.cluster(cl, raw.password.as_ref(), base)?)
            }
            (Some(url), None, None) => Servers::One(self.redis_url(
                ("store.url", "store.password"),
                url,
                raw.password.as_ref(),
                base,
            )?),
            (None, None, None) => {
                self.problem(
                    "store.url",
                    "required with kind = \"redis\" (e.g. \"redis://127.0.0.1:6379/0\"), unless [store.sentinel] or [store.cluster] is set",
                );
                return None;
            }
        };
        if raw.prefix.is_empty()
            || raw
                .prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            self.problem(
                "store.prefix",
                format!("must be non-empty without spaces (got {:?})", raw.prefix),
            );
        }
        if local_ttl.is_some_and(|t| t > Duration::from_secs(60)) {
            self.problem(
                "store.local_ttl",
                "at most 60s: it bounds how long a revocation can go unseen",
            );
        }
        Some(StoreConfig::Redis(RedisOptions {
            servers,
            prefix: raw.prefix,
            timeout: timeout?,
            local_ttl: local_ttl?,
            local_capacity: raw.local_capacity.max(1),
        }))
    }

    /// `store.url` (or `import.redis_url`: `keys` names the URL's key and
    /// the password's): `redis://host:port/db` without credentials; the
    /// password (if any) from its own key goes in here.
    pub(super) fn redis_url(
        &mut self,
        (url_key, password_key): (&str, &str),
        url: String,
        password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<String> {
        let Some(rest) = url.strip_prefix("redis://") else {
            self.problem(url_key, format!("must start with redis:// (got {url:?})"));
            return None;
        };
        if rest.split('/').next().unwrap_or("").contains('@') {
            // A password in the URL would sit in the config file and in logs.
            self.problem(
                url_key,
                format!("must not carry credentials; use {password_key} = {{ env = \"VAR\" }}"),
            );
            return None;
        }
        match password {
            Some(p) => {
                // sessiongate's own store asks for a long password; an app's
                // Redis (`import.`) has whatever password it has.
                let bytes = if password_key.starts_with("import.") {
                    self.secret_bytes(password_key, p, base)?
                } else {
                    self.secret(password_key, p, base)?.expose().to_vec()
                };
                let pass: String = form_urlencoded::byte_serialize(&bytes).collect();
                Some(format!("redis://:{pass}@{rest}"))
            }
            None => Some(url),
        }
    }

    /// `store.password` as text, for Sentinel's and a cluster's nodes;
    /// `None` inside when there is none, `None` outside when it fails.
    fn node_password(&mut self, raw: Option<&RawSecret>, base: &Path) -> Option<Option<String>> {
        match raw {
            Some(p) => Some(Some(self.secret_text("store.password", p, base)?)),
            None => Some(None),
        }
    }

    /// `[store.cluster]`: the seed nodes, and `store.password` for them.
    fn cluster(
        &mut self,
        raw: RawCluster,
        password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<ClusterOptions> {
        if raw.nodes.is_empty() {
            self.problem(
                "store.cluster.nodes",
                "name at least one of the cluster's nodes (more, so a start survives one down)",
            );
        }
        for a in &raw.nodes {
            if !is_host_port(a) {
                self.problem("store.cluster.nodes", format!("{a:?} is not host:port"));
            }
        }
        Some(ClusterOptions {
            nodes: raw.nodes,
            password: self.node_password(password, base)?,
        })
    }

    /// `[store.sentinel]`: the sentinels' addresses, the primary's name, and
    /// the passwords (the sentinels' own, and `store.password` for the nodes).
    fn sentinel(
        &mut self,
        raw: RawSentinel,
        node_password: Option<&RawSecret>,
        base: &Path,
    ) -> Option<SentinelOptions> {
        if raw.addrs.is_empty() {
            self.problem(
                "store.sentinel.addrs",
                "name at least one sentinel (three for a quorum)",
            );
        }
        for a in &raw.addrs {
            if !is_host_port(a) {
                self.problem("store.sentinel.addrs", format!("{a:?} is not host:port"));
            }
        }
        if raw.master_name.is_empty() || raw.master_name.contains(char::is_whitespace) {
            self.problem(
                "store.sentinel.master_name",
                "must be the name the sentinels monitor",
            );
        }
        if !(0..=15).contains(&raw.database) {
            self.problem("store.sentinel.database", "must be 0-15");
        }
        let password = match &raw.password {
            Some(p) => Some(self.secret_text("store.sentinel.password", p, base)?),
            None => None,
        };
        let node_password = self.node_password(node_password, base)?;
        Some(SentinelOptions {
            addrs: raw.addrs,
            master_name: raw.master_name,
            password,
            node_password,
            database: raw.database,
        })
    }
}

/// `host:port` with a port above 0 and nothing that would make it a URL.
fn is_host_port(a: &str) -> bool {
    a.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.contains(['/', '@']) && p.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{
        assert_refused, minimal, parse, problems, valid, valid_in, Scratch, NODE_PASSWORD,
        NODE_PASSWORD_VAR, SECRET, SECRET_VAR, SHORT_SECRET_VAR, UNSET_VAR,
    };
    use super::*;
    use crate::config::Config;

    #[test]
    fn sentinel_settings_are_checked() {
        let ok = minimal(
            "[store]\nkind = \"redis\"\n[store.sentinel]\naddrs = [\"127.0.0.1:26379\", \"s2:26380\"]\nmaster_name = \"mymaster\"\n",
        );
        let c = parse(&ok).expect("a sentinel store");
        let StoreConfig::Redis(r) = c.store else {
            panic!("a Redis store")
        };
        let Servers::Sentinel(s) = r.servers else {
            panic!("sentinel options")
        };
        assert_eq!(s.addrs.len(), 2);
        assert_eq!(s.master_name, "mymaster");
        let bad = minimal(
            "[store]\nkind = \"redis\"\nurl = \"redis://x:6379/0\"\n[store.sentinel]\naddrs = [\"nope\", \"h:0\"]\nmaster_name = \"\"\ndatabase = 99\n",
        );
        let p = problems(&bad).join("\n");
        for want in [
            "store.sentinel: use one of store.url",
            "\"nope\" is not host:port",
            "\"h:0\" is not host:port",
            "store.sentinel.master_name",
            "store.sentinel.database",
        ] {
            assert!(p.contains(want), "{want} in {p}");
        }
    }

    #[test]
    fn cluster_settings_are_checked() {
        let ok = minimal(
            "[store]\nkind = \"redis\"\npassword = { env = \"SG_TEST_CLUSTER_PASSWORD\" }\n[store.cluster]\nnodes = [\"127.0.0.1:7000\", \"redis-1.internal:7001\"]\n",
        );
        let c = parse(&ok).expect("a cluster store");
        let StoreConfig::Redis(r) = c.store else {
            panic!("a Redis store")
        };
        let Servers::Cluster(cl) = r.servers else {
            panic!("cluster options")
        };
        assert_eq!(cl.nodes, ["127.0.0.1:7000", "redis-1.internal:7001"]);
        assert_eq!(cl.password.as_deref(), Some("cluster-password"));
        let bad = minimal(
            "[store]\nkind = \"redis\"\nurl = \"redis://x:6379/0\"\n[store.cluster]\nnodes = [\"redis://h:1\", \"h\", \"u@h:2\"]\n",
        );
        let p = problems(&bad).join("\n");
        for want in [
            "store.cluster: use one of store.url",
            "\"redis://h:1\" is not host:port",
            "\"h\" is not host:port",
            "\"u@h:2\" is not host:port",
        ] {
            assert!(p.contains(want), "{want} in {p}");
        }
        let empty = minimal("[store]\nkind = \"redis\"\n[store.cluster]\nnodes = []\n");
        assert!(problems(&empty)
            .join("\n")
            .contains("store.cluster.nodes: name at least one"));
    }

    /// The minimal config with a Redis `[store]` of `lines`.
    fn redis(lines: &str) -> String {
        minimal(&format!("[store]\nkind = \"redis\"\n{lines}\n"))
    }

    fn redis_options(c: Config) -> RedisOptions {
        match c.store {
            StoreConfig::Redis(r) => r,
            StoreConfig::Memory => panic!("a Redis store"),
        }
    }

    #[test]
    fn store_defaults_apply_when_unset() {
        assert!(matches!(valid(&minimal("")).store, StoreConfig::Memory));
        let r = redis_options(valid(&redis("url = \"redis://127.0.0.1:6379/0\"")));
        assert!(matches!(&r.servers, Servers::One(u) if u == "redis://127.0.0.1:6379/0"));
        assert_eq!(r.prefix, "sessiongate:");
        assert_eq!(r.timeout, Duration::from_millis(250));
        assert_eq!(r.local_ttl, Duration::from_secs(1));
        assert_eq!(r.local_capacity, 100_000);
    }

    #[test]
    fn store_settings_are_taken_as_written() {
        let r = redis_options(valid(&redis(
            "url = \"redis://h:6379/2\"\nprefix = \"app:\"\ntimeout = \"1s\"\nlocal_ttl = \"60s\"\nlocal_capacity = 0",
        )));
        assert_eq!(r.prefix, "app:");
        assert_eq!(r.timeout, Duration::from_secs(1));
        assert_eq!(r.local_ttl, Duration::from_secs(60));
        // A local cache of 0 is taken as 1, not refused.
        assert_eq!(r.local_capacity, 1);
        let r = redis_options(valid(&redis(&format!(
            "url = \"redis://h:6379/0\"\npassword = {{ env = \"{SECRET_VAR}\" }}"
        ))));
        assert!(
            matches!(&r.servers, Servers::One(u) if *u == format!("redis://:{SECRET}@h:6379/0"))
        );
    }

    #[test]
    fn the_password_is_percent_encoded_into_the_url() {
        let dir = Scratch::new();
        dir.write("password", "p@ss/w:rd%0123456789abcdef0123456789");
        let r = redis_options(valid_in(
            &redis("url = \"redis://h:6379/0\"\npassword = { file = \"password\" }"),
            dir.path(),
        ));
        assert!(
            matches!(&r.servers, Servers::One(u) if u == "redis://:p%40ss%2Fw%3Ard%250123456789abcdef0123456789@h:6379/0"),
            "{:?}",
            r.servers
        );
    }

    #[test]
    fn sentinel_passwords_are_the_sentinels_and_the_nodes() {
        let r = redis_options(valid(&redis(&format!(
            "password = {{ env = \"{NODE_PASSWORD_VAR}\" }}\n[store.sentinel]\naddrs = [\"s1:26379\"]\nmaster_name = \"mymaster\"\npassword = {{ env = \"{SECRET_VAR}\" }}\ndatabase = 15"
        ))));
        let Servers::Sentinel(s) = r.servers else {
            panic!("sentinel options")
        };
        assert_eq!(s.password.as_deref(), Some(SECRET));
        assert_eq!(s.node_password.as_deref(), Some(NODE_PASSWORD));
        assert_eq!(s.database, 15);
    }

    #[test]
    fn each_store_refusal_names_its_key_and_value() {
        let sentinel = |lines: &str| {
            redis(&format!(
                "[store.sentinel]\naddrs = [\"s1:26379\"]\nmaster_name = \"m\"\n{lines}"
            ))
        };
        let cases = [
            (
                minimal("[store]\nkind = \"disk\"\n"),
                "store.kind: must be memory or redis (got \"disk\")".to_owned(),
            ),
            (
                redis(""),
                "store.url: required with kind = \"redis\" (e.g. \"redis://127.0.0.1:6379/0\"), unless [store.sentinel] or [store.cluster] is set".to_owned(),
            ),
            (
                redis("url = \"rediss://h:6379/0\""),
                "store.url: must start with redis:// (got \"rediss://h:6379/0\")".to_owned(),
            ),
            (
                redis("url = \"redis://user:pass@h:6379/0\""),
                "store.url: must not carry credentials; use store.password = { env = \"VAR\" }".to_owned(),
            ),
            (
                redis(&format!("url = \"redis://h:6379/0\"\npassword = {{ env = \"{SHORT_SECRET_VAR}\" }}")),
                "store.password: must be at least 32 bytes (got 21 bytes)".to_owned(),
            ),
            (
                redis("url = \"redis://h:6379/0\"\nprefix = \"\""),
                "store.prefix: must be non-empty without spaces (got \"\")".to_owned(),
            ),
            (
                redis("url = \"redis://h:6379/0\"\nprefix = \"my app:\""),
                "store.prefix: must be non-empty without spaces (got \"my app:\")".to_owned(),
            ),
            (
                redis("url = \"redis://h:6379/0\"\ntimeout = \"0s\""),
                "store.timeout: must be greater than zero (got \"0s\")".to_owned(),
            ),
            (
                redis("url = \"redis://h:6379/0\"\nlocal_ttl = \"61s\""),
                "store.local_ttl: at most 60s: it bounds how long a revocation can go unseen".to_owned(),
            ),
            (
                redis("[store.sentinel]\naddrs = []\nmaster_name = \"m\""),
                "store.sentinel.addrs: name at least one sentinel (three for a quorum)".to_owned(),
            ),
            (
                redis("[store.sentinel]\naddrs = [\"s1\"]\nmaster_name = \"m\""),
                "store.sentinel.addrs: \"s1\" is not host:port".to_owned(),
            ),
            (
                sentinel("").replace("master_name = \"m\"", "master_name = \"my master\""),
                "store.sentinel.master_name: must be the name the sentinels monitor".to_owned(),
            ),
            (sentinel("database = -1"), "store.sentinel.database: must be 0-15".to_owned()),
            (sentinel("database = 16"), "store.sentinel.database: must be 0-15".to_owned()),
            (
                sentinel(&format!("password = {{ env = \"{UNSET_VAR}\" }}")),
                format!("store.sentinel.password: environment variable {UNSET_VAR} is not set"),
            ),
            (
                sentinel("[store.cluster]\nnodes = [\"h:7000\"]"),
                "store.sentinel: use one of store.url, [store.sentinel] and [store.cluster]".to_owned(),
            ),
            (
                redis("url = \"redis://h:6379/0\"\n[store.cluster]\nnodes = [\"h:7000\"]"),
                "store.cluster: use one of store.url, [store.sentinel] and [store.cluster]".to_owned(),
            ),
            (
                redis("[store.cluster]\nnodes = []"),
                "store.cluster.nodes: name at least one of the cluster's nodes (more, so a start survives one down)".to_owned(),
            ),
            (
                redis("[store.cluster]\nnodes = [\"h:0\"]"),
                "store.cluster.nodes: \"h:0\" is not host:port".to_owned(),
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, &want);
        }
    }

    #[test]
    fn node_addresses_are_host_and_port_only() {
        for (a, ok) in [
            ("h:1", true),
            ("127.0.0.1:6379", true),
            ("[::1]:6379", true),
            ("redis-1.internal:65535", true),
            ("h", false),
            (":6379", false),
            ("h:0", false),
            ("h:65536", false),
            ("h:port", false),
            ("redis://h:1", false),
            ("u@h:1", false),
            ("h/0:1", false),
        ] {
            assert_eq!(is_host_port(a), ok, "{a:?}");
        }
    }
}
