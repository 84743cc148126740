//! Start-up, workers and shutdown through the real binary: each worker thread
//! has its own listening socket (SO_REUSEPORT), yet the port is not shared
//! with another instance, every worker sees the same sessions, and SIGTERM
//! exits cleanly.

use crate::support::*;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Run the binary with `server` (a `[server]` section) and the standard config;
/// it must exit non-zero within 10 s. Returns what it printed on stderr.
fn fails_to_start(server: &str, backend: &Backend) -> String {
    let admin = free_addr();
    fails_to_start_with_admin(server, &admin.to_string(), backend)
}

/// [`fails_to_start`] with the admin listener on `admin`.
fn fails_to_start_with_admin(server: &str, admin: &str, backend: &Backend) -> String {
    let dir = scratch_dir();
    let path = dir.join("proxy.toml");
    std::fs::write(
        &path,
        format!(
            "{server}\n[admin]\nlisten = \"{admin}\"\n{}",
            standard_config(backend.addr, "")
        ),
    )
    .unwrap();
    let mut child = sessiongate(&[], &path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sessiongate started with {server:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[test]
fn a_second_instance_on_a_port_in_use_fails_to_start() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let err = fails_to_start(
        &format!("[server]\nlisten = [\"{}\"]\nthreads = 2", gate.addr),
        &backend,
    );
    assert!(
        err.contains(&gate.addr.to_string()) && err.contains("in use"),
        "{err}"
    );
    // The first one is unaffected.
    assert_eq!(gate.get("/public/x").send().status, 200);
}

/// Listening sockets on loopback `port`, from `/proc/net/tcp` (state 0A).
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
        })
        .count()
}

#[test]
fn two_instances_started_at_once_never_share_the_port() {
    // Both pass the start-up check that the port is free when they start in the
    // same instant, and the workers' sockets set SO_REUSEPORT: both bound it,
    // and the kernel split the connections between two processes (10 starts in
    // 10). Now the second stops at once, naming the address.
    let backend = Backend::app();
    let addr = free_addr();
    let dir = scratch_dir();
    let spawn = |n: usize| {
        let path = dir.join(format!("proxy-{n}.toml"));
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = [\"{addr}\"]\nthreads = 2\n[admin]\nlisten = \"{}\"\n{}",
                free_addr(),
                standard_config(backend.addr, "")
            ),
        )
        .unwrap();
        sessiongate(&[], &path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = [spawn(0), spawn(1)];
    let deadline = Instant::now() + Duration::from_secs(10);
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| children[i].try_wait().unwrap().is_some()) {
            break i;
        }
        assert!(Instant::now() < deadline, "both instances kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(children[loser].stderr.as_mut().unwrap(), &mut err).unwrap();
    let winner_alive = children[1 - loser].try_wait().unwrap().is_none();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(
        err.contains(&addr.to_string()) && err.contains("another sessiongate"),
        "{err}"
    );
    assert!(winner_alive, "the first instance stopped too");
    assert!(listeners_on(addr.port()) == 0, "sockets left behind");
}

#[test]
fn sigterm_with_several_workers_exits_cleanly() {
    // pingora hands an address it has already bound to the next service as the
    // same descriptor, and each service closes it: a debug build aborted on
    // every shutdown ("IO Safety violation"), exit status 134.
    let backend = Backend::app();
    let mut gate = Gate::start(&standard_config(backend.addr, ""));
    assert_eq!(gate.get("/public/x").send().status, 200);
    let status = gate.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", gate.output());
}

#[test]
fn a_port_in_use_stops_a_single_worker_at_once() {
    // Guards against pingora's 30 s of retries and then a panicked service
    // thread, with the process still up.
    let backend = Backend::app();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let start = Instant::now();
    let err = fails_to_start(
        &format!("[server]\nlisten = [\"{addr}\"]\nthreads = 1"),
        &backend,
    );
    assert!(
        err.contains(&addr.to_string()) && err.contains("in use"),
        "{err}"
    );
    assert_eq!(err.matches("in use").count(), 1, "the cause once: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn an_admin_address_in_use_stops_start_up() {
    let backend = Backend::app();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap();
    let free = free_addr();
    for threads in [1, 2] {
        let err = fails_to_start_with_admin(
            &format!("[server]\nlisten = [\"{free}\"]\nthreads = {threads}"),
            &admin.to_string(),
            &backend,
        );
        assert!(
            err.contains(&admin.to_string()) && err.contains("in use"),
            "threads = {threads}: {err}"
        );
    }
}

#[test]
fn port_0_with_several_workers_is_refused() {
    // Each worker would bind a different ephemeral port.
    let backend = Backend::app();
    let err = fails_to_start(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nthreads = 2",
        &backend,
    );
    assert!(err.contains("port 0 needs server.threads = 1"), "{err}");
}

#[test]
fn every_worker_sees_the_same_sessions() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    // Each request is a new connection; the kernel spreads them over the two
    // workers' sockets by source port, so 24 of them land on both (all on one:
    // 1 chance in 8 million).
    for i in 0..24 {
        let resp = gate.get("/private").cookie(&cookie).send();
        assert_eq!(resp.status, 200, "request {i}: {resp:#?}");
        assert_eq!(backend.last().one("x-user"), Some("alice"), "request {i}");
    }
}

/// `sessiongate healthcheck --config <gate's file>`: (exit code, stderr).
fn healthcheck(config: &std::path::Path) -> (bool, String) {
    let out = sessiongate(&["healthcheck"], config).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn healthcheck_exits_0_while_the_instance_is_up_and_1_once_it_is_gone() {
    // A distroless image has no curl: its HEALTHCHECK runs this.
    let backend = Backend::app();
    let mut gate = Gate::start(&standard_config(backend.addr, ""));
    let config = gate.dir().join("proxy.toml");
    assert_eq!(healthcheck(&config), (true, String::new()));
    gate.stop();
    let (ok, err) = healthcheck(&config);
    assert!(!ok);
    assert!(
        err.contains(&gate.admin.to_string()) && err.contains("cannot connect"),
        "{err}"
    );
}
