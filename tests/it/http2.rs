//! HTTP/2 on the TLS listener, frame by frame: the request-head deadline
//! and the connection cap hold for a client that completes the handshake and
//! then sends nothing, only the preface, only PINGs, or a header block it
//! never finishes; an HTTP/2 connection with no stream ends after
//! `client_idle_timeout`; a slow body after a whole head is not cut; and the
//! limits pingora and h2 already set are the ones advertised.
//!
//! The client is rustls (ALPN `h2`) over a blocking socket with frames
//! written by hand: a real HTTP/2 client library would never send the
//! half-finished frames these tests are about.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` that chose `h2` by ALPN.
fn h2_connect(addr: SocketAddr, ca: &Ca) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
    tls
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A request's header block in HPACK, without Huffman or indexing:
/// `:method` and `:scheme` from the static table, `:path` and `:authority`
/// as literals with an indexed name (RFC 7541 §6.1, §6.2.2). A POST says
/// `content-length: 6` (static index 28; the recording backend reads no
/// chunked bodies).
fn request_block(method: &str, path: &str) -> Vec<u8> {
    let mut b = vec![if method == "POST" { 0x83 } else { 0x82 }, 0x87];
    for (index, value) in [(4u8, path), (1u8, "localhost")] {
        b.push(index);
        b.push(u8::try_from(value.len()).unwrap());
        b.extend_from_slice(value.as_bytes());
    }
    if method == "POST" {
        b.extend_from_slice(&[0x0f, 28 - 15, 1, b'6']);
    }
    b
}

/// A whole GET request on stream 1, after the preface and our SETTINGS.
fn get(path: &str) -> Vec<u8> {
    [
        PREFACE,
        &frame(SETTINGS, 0, 0, &[]),
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &request_block("GET", path),
        ),
    ]
    .concat()
}

/// What a connection did while it was watched.
#[derive(Debug)]
struct Watched {
    /// When the server closed it; `None` if it was open at the end.
    closed_after: Option<Duration>,
    /// The frames received: (type, flags, stream, payload).
    frames: Vec<(u8, u8, u32, Vec<u8>)>,
}

/// Read `tls` for up to `within`, calling `tick` every 200 ms of silence
/// (to send a PING, a byte of body, ...), until the server closes it.
fn watch(tls: &mut Tls, within: Duration, mut tick: impl FnMut(&mut Tls, Duration)) -> Watched {
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed_after = loop {
        if start.elapsed() > within {
            break None;
        }
        match tls.read(&mut buf) {
            Ok(0) => break Some(start.elapsed()),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                tick(tls, start.elapsed());
            }
            // A close without close_notify, a reset: closed all the same.
            Err(_) => break Some(start.elapsed()),
        }
    };
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        frames.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    Watched {
        closed_after,
        frames,
    }
}

/// Write, ignoring a connection the server already closed (a later read says so).
fn send(tls: &mut Tls, bytes: &[u8]) {
    let _ = tls.write_all(bytes).and_then(|()| tls.flush());
}

/// Regression: an HTTP/2 connection that never completed a request head was
/// kept for ever (pingora waits for the preface and the first stream with no
/// timeout), where HTTP/1.1 in the same state is closed at the deadline.
#[test]
fn http2_connections_without_a_whole_request_head_are_closed_at_the_deadline() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (gate, tls) = tls_gate(&backend, &ca, "request_head_timeout = \"1s\"", "");
    let before = gate.metric("sessiongate_request_head_timeouts_total");
    let settings = frame(SETTINGS, 0, 0, &[]);
    let open_block = frame(HEADERS, END_STREAM, 1, &request_block("GET", "/public"));
    let whole = frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &request_block("GET", "/public"),
    );
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("nothing after the handshake", vec![], false),
        ("the preface only", PREFACE.to_vec(), false),
        (
            "SETTINGS, then a PING every 200 ms",
            [PREFACE, &settings].concat(),
            true,
        ),
        (
            "a HEADERS frame without END_HEADERS",
            [PREFACE, &settings, &open_block].concat(),
            false,
        ),
        (
            "END_HEADERS with its payload withheld",
            [PREFACE, &settings, &whole[..whole.len() - 3]].concat(),
            false,
        ),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(what, bytes, ping)| {
            let mut conn = h2_connect(tls, &ca);
            std::thread::spawn(move || {
                send(&mut conn, &bytes);
                let seen = watch(&mut conn, Duration::from_secs(6), |c, _| {
                    if ping {
                        send(c, &frame(PING, 0, 0, &[0; 8]));
                    }
                });
                (what, seen)
            })
        })
        .collect();
    for t in threads {
        let (what, seen) = t.join().unwrap();
        let after = seen
            .closed_after
            .unwrap_or_else(|| panic!("{what}: still open after 6 s\n{seen:?}\n{}", gate.output()));
        assert!(
            after < Duration::from_secs(4),
            "{what}: closed after {after:?}"
        );
        assert!(
            !seen.frames.iter().any(|f| f.0 == HEADERS),
            "{what}: no response: {seen:?}"
        );
    }
    assert_eq!(
        gate.metric("sessiongate_request_head_timeouts_total"),
        before + 5
    );
    // A whole request on a new connection is served.
    let mut conn = h2_connect(tls, &ca);
    send(&mut conn, &get("/public"));
    let seen = watch(&mut conn, Duration::from_millis(1500), |_, _| {});
    assert!(
        seen.frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "{seen:?}"
    );
}

/// Regression: four idle HTTP/2 connections held `max_connections = 4` for
/// ever, and every later client's handshake failed.
#[test]
fn stalled_http2_connections_count_against_the_cap_until_the_deadline() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (gate, tls) = tls_gate(
        &backend,
        &ca,
        "request_head_timeout = \"1s\"\nmax_connections = 4",
        "",
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    let mut stalled: Vec<Tls> = (0..4)
        .map(|_| {
            let mut c = h2_connect(tls, &ca);
            send(&mut c, PREFACE);
            c
        })
        .collect();
    let refused = curl(tls, &ca_file, "/public", &["--http2"]);
    assert!(
        !refused.ok,
        "a fifth connection is over the cap: {refused:#?}"
    );
    for c in &mut stalled {
        let seen = watch(c, Duration::from_secs(5), |_, _| {});
        assert!(seen.closed_after.is_some(), "{seen:?}");
    }
    wait_for(
        Duration::from_secs(10),
        "a client served once the stalled connections are gone",
        || curl(tls, &ca_file, "/public", &["--http2"]).status == 200,
    );
}

/// An HTTP/2 connection with no stream open ends after client_idle_timeout,
/// PINGs or not; the head deadline does not cut it once a request was whole.
#[test]
fn an_idle_http2_connection_ends_after_the_idle_timeout() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (_gate, tls) = tls_gate(
        &backend,
        &ca,
        "request_head_timeout = \"1s\"\nclient_idle_timeout = \"3s\"",
        "",
    );
    let mut conn = h2_connect(tls, &ca);
    send(&mut conn, &get("/public"));
    let seen = watch(&mut conn, Duration::from_secs(10), |c, _| {
        send(c, &frame(PING, 0, 0, &[0; 8]));
    });
    assert!(
        seen.frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "served first: {seen:?}"
    );
    let after = seen.closed_after.expect("closed while idle");
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(8),
        "closed after {after:?}: not the head deadline (1 s), the idle timeout (3 s)"
    );
}

/// The head deadline is for the head: a body that trickles in after a whole
/// HEADERS frame reaches the backend whole.
#[test]
fn a_slow_http2_body_after_a_whole_head_is_not_cut() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (_gate, tls) = tls_gate(&backend, &ca, "request_head_timeout = \"1s\"", "");
    let mut conn = h2_connect(tls, &ca);
    send(
        &mut conn,
        &[
            PREFACE,
            &frame(SETTINGS, 0, 0, &[]),
            &frame(
                HEADERS,
                END_HEADERS,
                1,
                &request_block("POST", "/public/upload"),
            ),
        ]
        .concat(),
    );
    let parts = ["ab", "cd", "ef"];
    let mut sent = 0;
    let mut last = Duration::ZERO;
    let seen = watch(&mut conn, Duration::from_secs(6), |c, at| {
        // One part every 700 ms: 2.1 s in all, twice the head deadline.
        if sent < parts.len() && at >= last + Duration::from_millis(700) {
            let flags = if sent + 1 == parts.len() {
                END_STREAM
            } else {
                0
            };
            send(c, &frame(DATA, flags, 1, parts[sent].as_bytes()));
            sent += 1;
            last = at;
        }
    });
    assert_eq!(sent, parts.len(), "{seen:?}");
    assert!(
        seen.frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "{seen:?}"
    );
    let got = backend.last();
    assert_eq!(got.path(), "/public/upload", "{got:?}");
    assert_eq!(got.body, b"abcdef", "{got:?}");
}

/// What pingora and h2 bound inside one connection, as this build
/// advertises it: 100 concurrent streams, a 64 KiB header list (h2 caps
/// CONTINUATION frames by it), and a SETTINGS flood answered in order.
#[test]
fn the_stream_and_header_limits_are_advertised() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (_gate, tls) = tls_gate(&backend, &ca, "", "");
    let mut conn = h2_connect(tls, &ca);
    send(&mut conn, &get("/public"));
    let seen = watch(&mut conn, Duration::from_millis(1500), |_, _| {});
    let settings = seen
        .frames
        .iter()
        .find(|f| f.0 == SETTINGS && f.1 == 0)
        .unwrap_or_else(|| panic!("no SETTINGS: {seen:?}"));
    let values: Vec<(u16, u32)> = settings
        .3
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(
        values.contains(&(0x3, 100)),
        "MAX_CONCURRENT_STREAMS: {values:?}"
    );
    assert!(
        values.contains(&(0x6, 65536)),
        "MAX_HEADER_LIST_SIZE: {values:?}"
    );
}

/// HTTP/2's `:authority` and a `host` header that names another host: the
/// request is refused (400) before any rule or upstream sees it (pingora
/// refuses a host that differs from `:authority` at all, which is stricter
/// than canonical equality, and sessiongate compares canonical forms after
/// it); the same host goes through.
#[test]
fn an_authority_and_a_host_that_disagree_are_refused() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (_gate, tls) = tls_gate(&backend, &ca, "", "");
    // :status from HPACK's static table: 200 is index 8, 400 index 12.
    let status_of = |host: &str| {
        let mut block = request_block("GET", "/public/x");
        // host: a literal with the static table's name 38 (4-bit prefix: 15 + 23).
        block.extend_from_slice(&[0x0f, 38 - 15, u8::try_from(host.len()).unwrap()]);
        block.extend_from_slice(host.as_bytes());
        let mut conn = h2_connect(tls, &ca);
        let req = [
            PREFACE,
            &frame(SETTINGS, 0, 0, &[]),
            &frame(HEADERS, END_STREAM | END_HEADERS, 1, &block),
        ]
        .concat();
        send(&mut conn, &req);
        let seen = watch(&mut conn, Duration::from_millis(1500), |_, _| {});
        let headers = seen
            .frames
            .iter()
            .find(|f| f.0 == HEADERS && f.2 == 1)
            .unwrap_or_else(|| panic!("no response: {seen:?}"));
        headers.3[0]
    };
    let before = backend.count();
    assert_eq!(status_of("other.test"), 0x80 | 12, "400");
    assert_eq!(backend.count(), before);
    assert_eq!(status_of("localhost"), 0x80 | 8, "200");
}
