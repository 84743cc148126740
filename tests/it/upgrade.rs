//! Zero-downtime restart: a new process started with `--upgrade` takes the
//! listening sockets over when the old one gets SIGQUIT. Under a steady load
//! no connection is refused and no request fails; sessions survive with the
//! Redis store and end with the memory store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn upgrade_hands_the_sockets_over_without_a_failed_request() {
    let backend = Backend::app();
    let dir = scratch_dir();
    let socket = dir.join("upgrade.sock");
    // The old process's requests in flight get the default grace of 5 s: with
    // the tests' 1 s, a request it accepted just before its shutdown was cut
    // once when the whole suite shared the two cores.
    let config = format!(
        "upgrade_socket = \"{}\"\ngrace_period = \"5s\"\n{}",
        socket.display(),
        standard_config(backend.addr, "")
    );
    let mut old = Gate::start(&config);
    let alice = old.login("alice", "user");

    // A steady load on new connections (each request its own), from two threads.
    // A connection the old process accepted in the instant of the handover,
    // before its request arrived, may be closed with no answer at all (about
    // one in ten thousand here): a client retries an idempotent request on
    // such a close (RFC 9112 §9.3.1), and so does this one, once. Anything
    // else (a refused connection, an error status, a second close) fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let retried = Arc::new(AtomicU64::new(0));
    let addr = old.addr;
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let retried = retried.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut r = Req::new(addr, "GET", "/public").send_or_why();
                    if r.as_ref().err() == Some(&NoResponse::Closed) {
                        retried.fetch_add(1, Ordering::Relaxed);
                        r = Req::new(addr, "GET", "/public").send_or_why();
                    }
                    if !matches!(&r, Ok(r) if r.status == 200) {
                        eprintln!("failed: {r:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let wait_done = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = done.load(Ordering::Relaxed) + n;
        while done.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_done(50);

    // The new process: it waits on the upgrade socket for the old one's sockets.
    let mut new = Proc::spawn(
        "the new process",
        &mut sessiongate(&["run", "--upgrade"], &old.dir().join("proxy.toml")),
        old.dir().join("new.log"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no upgrade socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    old.signal("-QUIT");
    // The old process serves until it has sent its sockets and drained.
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.alive() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        old.output().contains("listener sockets sent"),
        "{}",
        old.output()
    );
    // Only the new process is left; the load goes on against it.
    wait_done(200);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert!(new.exited().is_none(), "the new process runs");
    let (done, retried) = (
        done.load(Ordering::Relaxed),
        retried.load(Ordering::Relaxed),
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {done} requests");
    // Closes without an answer stay rare: one handover's instant, not a gap.
    assert!(
        retried <= 3,
        "{retried} of {done} requests closed without an answer"
    );

    // The session from before: shared with the Redis store, gone with memory.
    let status = Req::new(addr, "GET", "/private")
        .api()
        .cookie(&alice)
        .send()
        .status;
    if redis_run() {
        assert_eq!(status, 200, "a Redis session survives the restart");
    } else {
        assert_eq!(status, 401, "memory sessions end with their process");
    }
    // The admin listener came over too.
    let stats = Req::new(old.admin, "GET", "/stats")
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send();
    assert_eq!(stats.status, 200);
    new.signal("-INT");
    let _ = new.wait();
}

#[test]
fn upgrade_without_an_upgrade_socket_is_refused_and_sigquit_stops_gracefully() {
    let backend = Backend::app();
    let mut gate = Gate::start(&standard_config(backend.addr, ""));
    let out = sessiongate(&["run", "--upgrade"], &gate.dir().join("proxy.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--upgrade needs server.upgrade_socket"),
        "{err}"
    );
    // SIGQUIT then sends nothing anywhere: it is a graceful stop.
    gate.signal("-QUIT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while gate.alive() {
        assert!(Instant::now() < deadline, "still running after SIGQUIT");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gate
        .output()
        .contains("SIGQUIT without server.upgrade_socket"));
}

#[test]
fn an_upgrade_socket_in_a_world_writable_directory_is_refused() {
    let p = {
        let backend = Backend::app();
        let dir = scratch_dir();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\nupgrade_socket = \"/tmp/sessiongate.sock\"\n{}",
            standard_config(backend.addr, "")
        );
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        dir.join("proxy.toml")
    };
    let out = sessiongate(&["check"], &p).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.upgrade_socket: /tmp is writable by every user"),
        "{err}"
    );
}
