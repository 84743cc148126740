//! The Redis store on a Redis Cluster: six real `redis-server` processes (three
//! primaries, three replicas) made into a cluster with `redis-cli --cluster
//! create`, on ephemeral loopback ports. Two sessiongate instances share it:
//! a login on one is used on the other, a revocation on one is seen on the
//! other through the invalidations of every primary (`local_ttl` is 60 s
//! here, so nothing else could explain it), revoke-all and `max_per_user`
//! reach sessions in every slot, the cluster going away answers 503, and a
//! primary failing over inside the cluster is ridden out without answering
//! anonymous or losing an acknowledged session, with invalidations following
//! the promoted replica.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    free_addr, key_of, standard_config, wait_for, with_keys, Backend, Gate, Redis, SteadyLoad,
};

/// A three-primary, three-replica cluster; every node killed on drop.
struct Cluster {
    nodes: Vec<Option<Redis>>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Redis> = (0..6)
            .map(|_| {
                // The cluster bus would be port + 10000 (past 65535 for a high
                // ephemeral port): give it a free port of its own.
                let bus = free_addr().port().to_string();
                Redis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli (./test.sh installs redis-server, which brings it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster {
            nodes: nodes.into_iter().map(Some).collect(),
        };
        wait_for(Duration::from_secs(30), "the cluster to be ok", || {
            cluster.live().all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
            })
        });
        cluster
    }

    fn live(&self) -> impl Iterator<Item = &Redis> {
        self.nodes.iter().flatten()
    }

    /// The nodes that are primaries now.
    fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .as_ref()
                    .is_some_and(|n| n.cli(&["ROLE"]).starts_with("master"))
            })
            .collect()
    }

    /// The `[store]` section for this cluster, naming two seed nodes.
    fn store_section(&self) -> String {
        let seeds: Vec<String> = self
            .live()
            .take(2)
            .map(|n| format!("\"127.0.0.1:{}\"", n.port))
            .collect();
        format!(
            "\n[store]\nkind = \"redis\"\ntimeout = \"1s\"\nlocal_ttl = \"60s\"\n\n[store.cluster]\nnodes = [{}]\n",
            seeds.join(", ")
        )
    }

    /// Every primary has its replica's acknowledgement of all writes so far.
    fn replicated(&self) {
        for i in self.primaries() {
            self.nodes[i].as_ref().unwrap().wait_replicated();
        }
    }
}

/// Wait until `gate` refuses `cookie`: far sooner than `local_ttl` (60 s),
/// so only an invalidation can have ended its cached copy.
fn until_refused(gate: &Gate, cookie: &str) {
    let start = Instant::now();
    while gate.get("/private").api().cookie(cookie).send().status != 401 {
        assert!(
            start.elapsed() < INVALIDATION_BOUND,
            "still accepted {:?} after the session ended:\n{}",
            start.elapsed(),
            gate.output()
        );
    }
}

/// Invalidations arrive within milliseconds; this leaves room for a loaded
/// machine and stays below both `local_ttl` and the 5 s after which a cached
/// session is touched in Redis (which would also find it gone).
const INVALIDATION_BOUND: Duration = Duration::from_secs(2);

/// Wait until a request with `cookie` is answered 200 from `gate`'s local
/// cache (its hit counter moves), so a refusal after a revocation elsewhere
/// can only come from an invalidation (or the 5 s touch, past the bound).
fn cached(gate: &Gate, cookie: &str) {
    wait_for(Duration::from_secs(10), "a local-cache hit", || {
        let hits = gate.metric("sessiongate_store_local_hits_total");
        gate.get("/private").cookie(cookie).send().status == 200
            && gate.metric("sessiongate_store_local_hits_total") > hits
    });
}

/// Wait until `gate` answers 200 for every one of `cookies`.
fn every_session_answers(gate: &Gate, cookies: &[String]) {
    wait_for(Duration::from_secs(30), "every session to answer", || {
        cookies
            .iter()
            .all(|c| gate.get("/private").cookie(c).send().status == 200)
    });
}

fn gate_on(cluster: &Cluster, backend: &Backend) -> Gate {
    let config = with_keys(
        standard_config(backend.addr, &cluster.store_section()),
        "max_per_user = 3",
    );
    let gate = Gate::start(&config);
    gate.wait_ready(Duration::from_secs(15));
    gate
}

#[test]
fn two_instances_share_a_cluster_revocations_are_seen_at_once_and_its_loss_fails_closed() {
    let mut cluster = Cluster::start();
    let backend = Backend::app();
    let (a, b) = (gate_on(&cluster, &backend), gate_on(&cluster, &backend));

    // Sessions land in slots all over the cluster; each works on the other instance.
    let alice: Vec<String> = (0..3).map(|_| a.login("alice", "ops")).collect();
    let carol: Vec<String> = (0..3).map(|_| a.login("carol", "")).collect();
    for c in alice.iter().chain(&carol) {
        let resp = b.get("/private").cookie(c).send();
        assert_eq!(resp.status, 200, "{resp:#?}");
        // The second is a local-cache hit.
        assert_eq!(b.get("/private").cookie(c).send().status, 200);
    }
    assert!(
        b.metric("sessiongate_store_local_hits_total") > 0,
        "the local cache is used"
    );
    assert_eq!(backend.last().one("x-user"), Some("carol"));
    // Listing and counting reach every primary.
    let stats = b.stats();
    assert_eq!(stats["sessions"]["live"], 6, "{stats}");
    assert_eq!(stats["sessions"]["authenticated"], 6, "{stats}");
    let listed = b.admin("GET", "/sessions").send().json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(6),
        "{listed}"
    );

    // One revocation: the other instance, which has it cached, refuses it.
    cached(&b, &alice[0]);
    let resp = a
        .admin("DELETE", &format!("/sessions/{}", key_of(&alice[0])))
        .send();
    assert_eq!(resp.status, 204, "{resp:#?}");
    until_refused(&b, &alice[0]);
    assert_eq!(b.get("/private").cookie(&alice[1]).send().status, 200);

    // Revoke-all reads the user's index: no scan, every slot reached.
    cached(&a, &alice[1]);
    cached(&a, &alice[2]);
    let resp = b.admin("DELETE", "/users/alice/sessions").send();
    assert_eq!(resp.json()["revoked"], 2, "{resp:#?}");
    for c in &alice {
        until_refused(&a, c);
    }
    for c in &carol {
        assert_eq!(
            a.get("/private").cookie(c).send().status,
            200,
            "carol untouched"
        );
    }

    // max_per_user = 3: a fourth login ends carol's oldest, wherever it lives.
    cached(&a, &carol[0]);
    let fourth = b.login("carol", "");
    until_refused(&a, &carol[0]);
    for c in carol[1..].iter().chain([&fourth]) {
        assert_eq!(a.get("/private").cookie(c).send().status, 200);
    }
    let listed = a.admin("GET", "/sessions?user=carol").send().json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    // A backend logout on one instance ends the session on the other.
    cached(&b, &fourth);
    let resp = a.get("/_test/logout").cookie(&fourth).send();
    assert!(resp.header("set-cookie").unwrap().contains("Max-Age=0"));
    until_refused(&b, &fourth);

    // The cluster goes away: protected routes 503 (never anonymous, never a
    // cleared cookie), public routes work, not ready.
    cluster.nodes.iter_mut().for_each(|n| drop(n.take()));
    // Once the watcher has seen the loss (the cache is bypassed from then on).
    wait_for(Duration::from_secs(5), "not ready", || {
        b.admin_anonymous("GET", "/readyz").send().status == 503
    });
    let resp = b.get("/private").api().cookie(&carol[1]).send();
    assert_eq!(resp.status, 503, "{resp:#?}");
    assert!(resp.all("set-cookie").is_empty(), "{resp:#?}");
    assert_eq!(b.get("/public/x").cookie(&carol[1]).send().status, 200);
}

#[test]
fn a_primary_failover_inside_the_cluster_answers_503_meanwhile_and_loses_no_session() {
    let mut cluster = Cluster::start();
    let backend = Backend::app();
    let gate = gate_on(&cluster, &backend);
    let second = gate_on(&cluster, &backend);
    let cookies: Vec<String> = (0..20).map(|i| gate.login(&format!("u{i}"), "")).collect();
    for c in &cookies {
        assert_eq!(gate.get("/private").cookie(c).send().status, 200);
    }
    cluster.replicated();

    let load = SteadyLoad::start(gate.addr, cookies.clone());
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let killed_at = Instant::now();
    drop(cluster.nodes[primaries[0]].take());
    wait_for(Duration::from_secs(30), "a replica to take over", || {
        cluster.primaries().len() == 3
    });
    // Every session made before, the failed primary's included, is back.
    every_session_answers(&gate, &cookies);
    let back = killed_at.elapsed();
    load.more(50);
    load.stop_and_check("cluster failover", back);
    // New sessions go everywhere, the promoted replica's slots included.
    for i in 0..10 {
        let c = gate.login(&format!("after{i}"), "");
        assert_eq!(gate.get("/private").cookie(&c).send().status, 200);
    }
    // Invalidations follow the promoted replica: every session, cached on the
    // other instance, is refused there soon after its revocation here.
    second.wait_ready(Duration::from_secs(15));
    // It was idle through the failover: let it answer every session first.
    every_session_answers(&second, &cookies);
    for c in &cookies {
        // Served from the other instance's local cache, so only an
        // invalidation from the session's primary can end it there in time.
        cached(&second, c);
        let revoked = gate
            .admin("DELETE", &format!("/sessions/{}", key_of(c)))
            .send();
        assert_eq!(revoked.status, 204, "{revoked:#?}");
        until_refused(&second, c);
    }
}
