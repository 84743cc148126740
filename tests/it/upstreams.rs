//! Upstream failures and protocol pass-through through the real binary.

use crate::support::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn backend_down_gets_502_with_a_generic_body() {
    let dead = dead_addr();
    let gate = Gate::start(&standard_config(dead, ""));
    let resp = gate.get("/public/x").send();
    assert_eq!(resp.status, 502, "{resp:#?}");
    assert_eq!(resp.body, problem_body(&resp, "bad gateway"));
    assert!(!resp.body.contains("127.0.0.1") && !resp.body.contains(&dead.port().to_string()));
}

#[test]
fn silent_backend_gets_504_within_the_read_timeout_and_the_proxy_keeps_serving() {
    let silent = Silent::start();
    let backend = Backend::app();
    let extra = format!(
        "[upstream.slow]\naddrs = [\"{}\"]\nread_timeout = \"500ms\"\nhealth_check_interval = \"1h\"\n[[route]]\npath = \"/slow\"\naccess = \"public\"\nupstream = \"slow\"\n[routes]\ndefault_upstream = \"app\"\n",
        silent.addr
    );
    let mut gate = Gate::start(&standard_config(backend.addr, &extra));
    let start = Instant::now();
    let resp = gate.get("/slow").send();
    let took = start.elapsed();
    assert_eq!(resp.status, 504, "{resp:#?}");
    assert_eq!(resp.body, problem_body(&resp, "gateway timeout"));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(gate.alive());
    assert_eq!(gate.get("/public/x").send().status, 200, "still serving");
}

#[test]
fn websocket_upgrade_passes_through_on_an_allowed_route() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: app.test\r\nCookie: {cookie}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let mut s = std::net::TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let resp = read_response(&mut s, &req);
    assert_eq!(resp.status, 101, "{resp:#?}");
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // Both directions, twice, so a tunnel that closes after the first frame fails too.
    for frame in [&b"ping-frame"[..], b"pong-frame"] {
        s.write_all(frame).unwrap();
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("the upgraded tunnel closed: {e}"));
        assert_eq!(&buf, frame);
    }
}

#[test]
fn websocket_upgrade_on_a_protected_route_without_session_is_refused() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate
        .get("/ws")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .no_close()
        .send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(backend.count(), 0);
}
