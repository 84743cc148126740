//! The Redis store behind Redis Sentinel: real `redis-server` processes (a
//! primary and a replica) and three sentinels (`redis-server --sentinel`),
//! started here on ephemeral loopback ports. The primary is killed under a
//! steady load of protected requests with sessions made before: sessiongate
//! must follow the sentinels to the promoted replica without a restart, answer
//! 503 (never anonymous, never clearing the cookie) while there is no primary,
//! and lose no session that the replica had acknowledged.

use std::time::{Duration, Instant};

use crate::support::{scratch_dir, wait_for, Backend, Gate, Redis, SteadyLoad};

const MASTER: &str = "sessiongate-test";

/// One sentinel: a [`Redis`] started in sentinel mode; killed on drop.
struct Sentinel(Redis);

impl Sentinel {
    fn start(primary: u16) -> Sentinel {
        // Its own file: a sentinel rewrites its config as it learns.
        let conf = scratch_dir().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 10000\n\
                 sentinel parallel-syncs {MASTER} 1\n"
            ),
        )
        .unwrap();
        Sentinel(Redis::start_with(&[conf.to_str().unwrap(), "--sentinel"]))
    }

    fn port(&self) -> u16 {
        self.0.port
    }

    /// `SENTINEL <args>` as a flat list of strings.
    fn ask(&self, args: &[&str]) -> Vec<String> {
        let command = [&["SENTINEL"], args].concat();
        self.0.cli(&command).lines().map(str::to_owned).collect()
    }

    /// A field of `SENTINEL MASTER <name>`.
    fn master_field(&self, field: &str) -> Option<String> {
        let flat = self.ask(&["MASTER", MASTER]);
        flat.iter()
            .position(|k| k == field)
            .and_then(|i| flat.get(i + 1).cloned())
    }
}

#[test]
fn a_primary_failover_is_followed_without_answering_anonymous_or_losing_sessions() {
    let mut primary = Some(Redis::start());
    let primary_port = primary.as_ref().unwrap().port;
    let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &primary_port.to_string()]);
    wait_for(Duration::from_secs(20), "the replica to sync", || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(primary_port)).collect();
    wait_for(
        Duration::from_secs(30),
        "the sentinels to find the replica and each other",
        || {
            sentinels.iter().all(|s| {
                s.master_field("num-slaves").as_deref() == Some("1")
                    && s.master_field("num-other-sentinels").as_deref() == Some("2")
            })
        },
    );
    let addrs: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port()))
        .collect();
    let backend = Backend::app();
    let config = crate::support::standard_config(
        backend.addr,
        &format!(
            "\n[store]\nkind = \"redis\"\ntimeout = \"1s\"\n\n[store.sentinel]\naddrs = [{}]\nmaster_name = \"{MASTER}\"\n",
            addrs.join(", ")
        ),
    );
    let gate = Gate::start(&config);
    let cookies: Vec<String> = (0..20)
        .map(|i| {
            gate.get(&format!("/_test/login?user=u{i}&roles="))
                .send()
                .session_cookie()
                .expect("a session through the sentinels' primary")
        })
        .collect();
    for c in &cookies {
        assert_eq!(gate.get("/private").cookie(c).send().status, 200);
    }
    // Acknowledged: the replica has every write so far.
    primary.as_ref().unwrap().wait_replicated();

    // A steady load of protected requests across the failover.
    let load = SteadyLoad::start(gate.addr, cookies.clone());
    let killed_at = Instant::now();
    drop(primary.take());
    wait_for(
        Duration::from_secs(30),
        "the sentinels to promote the replica",
        || replica.cli(&["ROLE"]).starts_with("master"),
    );
    wait_for(
        Duration::from_secs(30),
        "protected routes to answer again",
        || gate.get("/private").cookie(&cookies[0]).send().status == 200,
    );
    // Some load on the new primary, then stop.
    let back = killed_at.elapsed();
    load.more(50);
    load.stop_and_check("sentinel failover", back);
    // Every session made before the failover is still there.
    for c in &cookies {
        assert_eq!(gate.get("/private").cookie(c).send().status, 200, "{c}");
    }
    assert!(
        gate.output().contains("Redis primary changed"),
        "{}",
        gate.output()
    );
    // New sessions go to the new primary.
    assert!(gate
        .get("/_test/login?user=after&roles=")
        .send()
        .session_cookie()
        .is_some());
}
