//! TLS on the client listener (`[[server.tls]]`), through real clients:
//! curl over HTTP/2 and HTTP/1.1 against a throwaway CA (`support::Ca`), a raw
//! TLS 1.1 ClientHello, a certificate swap, and the core black-box cases
//! (spoofed identity, protected route, login) over TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn curl_gets_http2_and_http1_over_tls_and_the_backend_learns_it_was_https() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (gate, tls) = tls_gate(&backend, &ca, "", "");
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");

    let h2 = curl(tls, &ca_file, "/public", &["--http2"]);
    assert_eq!((h2.version.as_str(), h2.status), ("2", 200), "{h2:#?}");
    assert_eq!(h2.body, "ok");
    assert_eq!(backend.last().one("x-forwarded-proto"), Some("https"));

    let h1 = curl(tls, &ca_file, "/public", &["--http1.1"]);
    assert_eq!((h1.version.as_str(), h1.status), ("1.1", 200), "{h1:#?}");
    // The plain listener is still plain.
    assert_eq!(gate.get("/public").send().status, 200);
    assert_eq!(backend.last().one("x-forwarded-proto"), Some("http"));

    // Only our CA's certificate is served: another CA does not verify it.
    let other = Ca::new("other CA").ca_file(gate.dir(), "other.pem");
    let wrong = curl(tls, &other, "/public", &["--http2"]);
    assert!(!wrong.ok && wrong.status == 0, "{wrong:#?}");
    assert!(wrong.stderr.contains("certificate"), "{wrong:#?}");
}

/// A ClientHello of `version` with no supported_versions extension (so it
/// offers that version and nothing later), common ECDHE/RSA suites, and the
/// signature algorithms and groups a TLS 1.2 server would need.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let suites: &[u8] = &[0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9, 0xc0, 0x13, 0x00, 0x2f];
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(suites);
    body.extend_from_slice(&[1, 0]); // compression: null
    let sigalgs: &[u8] = &[0x04, 0x03, 0x08, 0x04, 0x04, 0x01];
    let groups: &[u8] = &[0x00, 0x1d, 0x00, 0x17];
    let mut ext = Vec::new();
    for (kind, list) in [(0x000du16, sigalgs), (0x000a, groups)] {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(list);
    }
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]); // ec_point_formats
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1u8]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[test]
fn tls_1_0_and_1_1_handshakes_are_refused() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (gate, tls) = tls_gate(&backend, &ca, "", "");
    // The same hello offering TLS 1.2 gets a ServerHello: the refusal below
    // is the version's, not the hello's.
    let mut s = TcpStream::connect(tls).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&client_hello([3, 3])).unwrap();
    let mut head = [0u8; 6];
    s.read_exact(&mut head).unwrap();
    assert_eq!((head[0], head[5]), (0x16, 2), "a ServerHello: {head:02x?}");
    for version in [[3u8, 1], [3, 2]] {
        let mut s = TcpStream::connect(tls).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&client_hello(version)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        // A fatal alert (content type 21), never a ServerHello (22).
        assert_eq!(got.first(), Some(&0x15), "{version:?}: {got:02x?}");
        assert_eq!(
            got.get(5..7),
            Some(&[2u8, 70][..]),
            "protocol_version alert"
        );
    }
    // TLS 1.2 and 1.3 are offered and work.
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    for v in ["--tlsv1.2", "--tlsv1.3"] {
        let max = if v == "--tlsv1.2" { "1.2" } else { "1.3" };
        let r = curl(tls, &ca_file, "/public", &[v, "--tls-max", max]);
        assert_eq!(r.status, 200, "{v}: {r:#?}");
    }
    assert!(gate.output().contains("sessiongate starting"));
}

#[test]
fn over_tls_spoofed_identity_is_stripped_routes_are_enforced_and_login_works() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    // "auto": Secure on the TLS listener, without one on plain HTTP.
    let (gate, tls) = tls_gate(
        &backend,
        &ca,
        "",
        "[session.cookie]\nname = \"sid\"\nsecure = \"auto\"\n",
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");

    let spoof = curl(
        tls,
        &ca_file,
        "/public",
        &[
            "--http2",
            "-H",
            "X-User: admin",
            "-H",
            "X-User-Roles: admin",
        ],
    );
    assert_eq!(spoof.status, 200, "{spoof:#?}");
    let seen = backend.last();
    assert_eq!(seen.one("x-user"), None);
    assert_eq!(seen.one("x-user-roles"), None);

    let api = curl(
        tls,
        &ca_file,
        "/private",
        &["--http2", "-H", "Accept: application/json"],
    );
    assert_eq!(api.status, 401, "{api:#?}");
    let nav = curl(
        tls,
        &ca_file,
        "/private?x=1",
        &["--http2", "-H", "Accept: text/html"],
    );
    assert_eq!(nav.status, 302, "{nav:#?}");
    assert!(
        nav.headers
            .contains("location: /.sessiongate/login?next=/private%3fx%3d1"),
        "{nav:#?}"
    );

    let login = curl(
        tls,
        &ca_file,
        "/_test/login?user=alice&roles=user",
        &["--http2"],
    );
    assert_eq!(login.status, 200, "{login:#?}");
    let set = login
        .headers
        .lines()
        .find(|l| l.starts_with("set-cookie: sid="))
        .unwrap_or_else(|| panic!("{login:#?}"))
        .trim_start_matches("set-cookie: ")
        .to_owned();
    assert!(set.contains("; secure"), "Secure over TLS with auto: {set}");
    let pair = set.split(';').next().unwrap().to_owned();
    let private = curl(
        tls,
        &ca_file,
        "/private",
        &[
            "--http2",
            "-H",
            &format!("Cookie: {pair}"),
            "-H",
            "X-User: mallory",
        ],
    );
    assert_eq!(private.status, 200, "{private:#?}");
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    let admin = curl(
        tls,
        &ca_file,
        "/admin",
        &["--http1.1", "-H", &format!("Cookie: {pair}")],
    );
    assert_eq!(admin.status, 403, "{admin:#?}");

    // The same config on the plain listener: no Secure.
    let plain = gate.get("/_test/login?user=bob&roles=user").send();
    let plain_set = plain.all("set-cookie").join(" ");
    assert!(
        plain_set.starts_with("sid=") && !plain_set.to_ascii_lowercase().contains("secure"),
        "{plain_set}"
    );
}

#[test]
fn a_new_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let backend = Backend::app();
    let first = Ca::new("first CA");
    let (gate, tls) = tls_gate(&backend, &first, "", "");
    let first_ca = first.ca_file(gate.dir(), "first.pem");
    assert_eq!(curl(tls, &first_ca, "/public", &["--http2"]).status, 200);

    // A connection open across the swap keeps working.
    let mut open = TcpStream::connect(tls).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    let second = Ca::new("second CA");
    let second_ca = second.ca_file(gate.dir(), "second.pem");
    second.install(gate.dir());
    wait_for(Duration::from_secs(10), "new certificate served", || {
        curl(tls, &second_ca, "/public", &["--http2"]).status == 200
    });
    assert_eq!(curl(tls, &first_ca, "/public", &["--http2"]).status, 0);
    open.write_all(&client_hello([3, 3])).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        open.read(&mut byte).unwrap(),
        1,
        "the open connection is served"
    );

    // A key that is not the certificate's: refused, the second pair stays.
    let third = Ca::new("third CA");
    let refusals = || gate.output().matches("does not go with").count();
    let before = refusals();
    std::fs::write(gate.dir().join("key.pem.tmp"), &third.key_pem).unwrap();
    std::fs::rename(gate.dir().join("key.pem.tmp"), gate.dir().join("key.pem")).unwrap();
    wait_for(
        Duration::from_secs(10),
        "refusal of the mismatched key",
        || refusals() > before,
    );
    assert!(gate.output().contains("the last good config keeps serving"));
    assert_eq!(curl(tls, &second_ca, "/public", &["--http2"]).status, 200);
}

#[test]
fn a_stalled_tls_handshake_is_cut_at_the_head_deadline_and_counts_against_the_cap() {
    let backend = Backend::app();
    let ca = Ca::new("test CA");
    let (gate, tls) = tls_gate(
        &backend,
        &ca,
        "request_head_timeout = \"1s\"\nmax_connections = 3",
        "",
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    // The readiness probe's own connection must be gone first, or one of the
    // three below could be the one refused at the cap (a flake under load).
    wait_for(Duration::from_secs(10), "no client connection open", || {
        gate.metric("sessiongate_connections_open") == 0
    });
    // Three connections that send half a ClientHello and stall: the cap is full.
    let hello = client_hello([3, 3]);
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(tls).unwrap();
            s.write_all(&hello[..20]).unwrap();
            s
        })
        .collect();
    let refused = curl(tls, &ca_file, "/public", &["--http1.1"]);
    assert!(
        !refused.ok,
        "a fourth connection is over the cap: {refused:#?}"
    );
    // Each stalled handshake is closed at the deadline, not held for ever.
    let start = Instant::now();
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without a ServerHello");
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let metrics = gate.admin("GET", "/metrics").send().body;
    assert!(
        metrics.contains("sessiongate_request_head_timeouts_total 3"),
        "{metrics}"
    );
    // Served again once they are gone.
    assert_eq!(curl(tls, &ca_file, "/public", &["--http1.1"]).status, 200);
}

/// Several certificates on one listener: the one for the name the client
/// asks for (SNI: exact, then a wildcard), the first for any other name; a
/// request whose Host is not its connection's name is 421, so one
/// certificate cannot reach another site's rules.
#[test]
fn the_certificate_follows_the_name_asked_for_and_the_host_must_match_it() {
    let backend = Backend::app();
    let ca = Ca::new("sni test CA");
    let (app_cert, app_key) = ca.leaf(&["app.test", "*.example.test"]);
    let (ops_cert, ops_key) = ca.leaf(&["internal.host"]);
    let tls = free_addr();
    let config = format!(
        "{}\n[[server.tls]]\nlisten = [\"{tls}\"]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\
         certificates = [{{ cert_file = \"app.pem\", key_file = \"app.key\" }}, \
         {{ cert_file = \"ops.pem\", key_file = \"ops.key\", names = [\"OPS.test\"] }}]\n",
        standard_config(backend.addr, "")
    );
    let gate = Gate::start_with(
        &config,
        &[
            ("cert.pem", &ca.cert_pem),
            ("key.pem", &ca.key_pem),
            ("app.pem", &app_cert),
            ("app.key", &app_key),
            ("ops.pem", &ops_cert),
            ("ops.key", &ops_key),
        ],
        &[("TEST_SECRET", crate::support::SECRET)],
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    wait_for(Duration::from_secs(10), "the TLS listener", || {
        curl(tls, &ca_file, "/public", &["--http1.1"]).status == 200
    });
    // curl checks the certificate against the name: each of these would fail
    // with the listener's first (localhost) certificate.
    for name in ["app.test", "api.example.test"] {
        for version in ["--http1.1", "--http2"] {
            let r = curl_at(name, tls, &ca_file, "/public/x", &[version]);
            assert!(r.ok && r.status == 200, "{name} {version}: {r:#?}");
        }
    }
    // A name given in the config, not the certificate's: curl refuses it
    // (the certificate is not for ops.test), which shows it was the one served.
    let r = curl_at("ops.test", tls, &ca_file, "/public/x", &["--http1.1"]);
    assert!(!r.ok, "{r:#?}");
    let r = curl_at(
        "ops.test",
        tls,
        &ca_file,
        "/public/x",
        &["--http1.1", "-k", "-v"],
    );
    assert!(
        r.stderr.contains("subject: CN=internal.host"),
        "{}",
        r.stderr
    );
    let r = curl_at(
        "other.test",
        tls,
        &ca_file,
        "/public/x",
        &["--http1.1", "-k", "-v"],
    );
    assert!(
        r.stderr.contains("subject: CN=rcgen self signed cert"),
        "the first: {}",
        r.stderr
    );
    // An unknown name: the first certificate.
    let r = curl_at("localhost", tls, &ca_file, "/public/x", &["--http1.1"]);
    assert_eq!(r.status, 200, "{r:#?}");
    // A Host other than the connection's name: 421, over HTTP/1.1 and HTTP/2.
    let port = tls.port();
    for version in ["--http1.1", "--http2"] {
        let r = curl_at(
            "app.test",
            tls,
            &ca_file,
            "/public/x",
            &[version, "-H", &format!("Host: localhost:{port}")],
        );
        assert_eq!(r.status, 421, "{version}: {r:#?}");
    }
    // The same name in another spelling is the same name.
    let r = curl_at(
        "app.test",
        tls,
        &ca_file,
        "/public/x",
        &["--http1.1", "-H", &format!("Host: APP.test.:{port}")],
    );
    assert_eq!(r.status, 200, "{r:#?}");
}
