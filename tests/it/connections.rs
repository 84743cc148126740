//! Client connections through the real binary: a deadline for the whole
//! request head (slowloris), and a cap on open connections.

use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `[server]` keys (they land in the section the harness opens) plus the
/// standard config.
fn config(server: &str, backend: &Backend) -> String {
    format!("{server}\n{}", standard_config(backend.addr, ""))
}

/// Whether the server has closed `s` (a read returns end of file or a reset).
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Send a request head one header line every `gap`, until the server closes
/// the connection; returns how long it stayed open and whether the head got
/// through.
fn trickle_head(gate: &Gate, gap: Duration, lines: usize) -> (Duration, bool) {
    trickle_head_to(gate.addr, gap, lines)
}

fn trickle_head_to(addr: std::net::SocketAddr, gap: Duration, lines: usize) -> (Duration, bool) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /public/slow HTTP/1.1\r\nHost: app.test\r\n")
        .unwrap();
    for i in 0..lines {
        std::thread::sleep(gap);
        if closed(&mut s)
            || s.write_all(format!("X-Slow-{i}: x\r\n").as_bytes())
                .is_err()
        {
            return (start.elapsed(), false);
        }
    }
    let _ = s.write_all(b"\r\n");
    (start.elapsed(), true)
}

#[test]
fn a_request_head_sent_one_line_at_a_time_is_cut_at_the_deadline() {
    // pingora alone times out each read (60 s), never the whole head: one
    // line every 300 ms kept a connection open for as long as the client liked.
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"1s\"", &backend));
    let (open_for, got_through) = trickle_head(&gate, Duration::from_millis(300), 30);
    assert!(!got_through, "a 9 s head was let through");
    assert!(
        open_for >= Duration::from_millis(900) && open_for < Duration::from_secs(4),
        "closed after {open_for:?}"
    );
    assert_eq!(backend.count(), 0);
    assert_eq!(gate.metric("sessiongate_request_head_timeouts_total"), 1);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_at_the_deadline() {
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"1s\"", &backend));
    let start = Instant::now();
    let mut s = TcpStream::connect(gate.addr).unwrap();
    wait_for(Duration::from_secs(4), "silent connection closed", || {
        closed(&mut s)
    });
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_keep_alive_wait_does_not_count_against_the_next_head() {
    // The next request's clock starts at its first byte: an idle keep-alive
    // connection is the idle timeout's business (60 s here), not the head's.
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"1s\"", &backend));
    let mut s = TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = "GET /public/a HTTP/1.1\r\nHost: app.test\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(read_response(&mut s, req).status, 200);
    // Idle for longer than the head deadline, on purpose.
    std::thread::sleep(Duration::from_millis(1500));
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(read_response(&mut s, req).status, 200);
    assert_eq!(backend.count(), 2);
}

#[test]
fn a_slow_body_after_a_prompt_head_is_not_cut() {
    // The deadline is the head's: once it is parsed, the body may take longer.
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"1s\"", &backend));
    let mut s = TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = "POST /public/upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    for chunk in [b"ab", b"cd", b"ef"] {
        std::thread::sleep(Duration::from_millis(700));
        s.write_all(chunk).unwrap();
    }
    assert_eq!(read_response(&mut s, head).status, 200);
    assert_eq!(backend.last().body, b"abcdef");
}

#[test]
fn normal_clients_are_served_while_slow_heads_hold_connections() {
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"2s\"", &backend));
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = gate.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let _ = s.write_all(b"GET /public/slow HTTP/1.1\r\n");
                for i in 0..40 {
                    std::thread::sleep(Duration::from_millis(100));
                    if s.write_all(format!("X-{i}: x\r\n").as_bytes()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for i in 0..50 {
        let resp = gate.get(&format!("/public/{i}")).send();
        assert_eq!(resp.status, 200, "request {i}: {resp:#?}");
    }
    for t in slow {
        t.join().unwrap();
    }
    assert_eq!(backend.count(), 50, "no slow head reached the backend");
}

#[test]
fn connections_past_max_connections_are_closed_at_once_and_counted() {
    let backend = Backend::app();
    let gate = Gate::start(&config(
        "max_connections = 3\nrequest_head_timeout = \"30s\"",
        &backend,
    ));
    // The harness's readiness probes have come and gone: wait for 0 open.
    wait_for(Duration::from_secs(5), "probes closed", || {
        gate.metric("sessiongate_connections_open") == 0
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(gate.addr).unwrap())
        .collect();
    wait_for(Duration::from_secs(5), "three open", || {
        gate.metric("sessiongate_connections_open") == 3
    });
    let mut fourth = TcpStream::connect(gate.addr).unwrap();
    let _ = fourth.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\n");
    wait_for(Duration::from_secs(5), "the fourth closed", || {
        closed(&mut fourth)
    });
    assert_eq!(backend.count(), 0);
    assert_eq!(gate.metric("sessiongate_connections_refused_total"), 1);
    wait_for(Duration::from_secs(5), "the warn line", || {
        gate.output().contains("server.max_connections")
    });
    // The held ones still work, and a slot frees when one goes.
    let req = "GET /public/held HTTP/1.1\r\nHost: app.test\r\n\r\n";
    held[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    held[0].write_all(req.as_bytes()).unwrap();
    assert_eq!(read_response(&mut held[0], req).status, 200);
    held.pop();
    wait_for(Duration::from_secs(5), "a slot freed", || {
        gate.get("/public/after")
            .try_send()
            .is_some_and(|r| r.status == 200)
    });
}

#[test]
fn the_admin_listener_cuts_slow_heads_too() {
    // Its flood would spend the same process's file descriptors.
    let backend = Backend::app();
    let gate = Gate::start(&config("request_head_timeout = \"1s\"", &backend));
    let (open_for, got_through) = trickle_head_to(gate.admin, Duration::from_millis(300), 30);
    assert!(!got_through, "a 9 s head was let through");
    assert!(
        open_for < Duration::from_secs(4),
        "closed after {open_for:?}"
    );
    assert_eq!(gate.admin("GET", "/healthz").send().status, 200);
}
