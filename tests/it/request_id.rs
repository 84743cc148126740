//! `X-Request-Id`: made per request (or taken from a trusted peer, when well
//! formed), sent upstream, returned to the client, in the access log line and
//! in sessiongate's error bodies.

use std::time::{Duration, Instant};

use crate::support::*;

fn is_new_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn every_request_gets_an_id_that_the_backend_the_client_and_the_log_share() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    // A client's own id is not believed (the client is no trusted proxy).
    let resp = gate
        .get("/public/x")
        .header("X-Request-Id", "evil-id")
        .send();
    assert_eq!(resp.status, 200);
    let id = resp
        .header("x-request-id")
        .expect("returned to the client")
        .to_owned();
    assert!(is_new_id(&id), "{id}");
    assert_eq!(backend.last().all("x-request-id"), vec![id.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gate.output().contains(&format!("request_id=\"{id}\"")) {
        assert!(
            Instant::now() < deadline,
            "not in the access log:\n{}",
            gate.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each request its own.
    let other = gate.get("/public/x").send();
    assert_ne!(other.header("x-request-id"), Some(id.as_str()));

    // Errors sessiongate writes carry it in the body too.
    let denied = gate.get("/private").api().send();
    assert_eq!(denied.status, 401);
    assert_eq!(denied.body, problem_body(&denied, "unauthenticated"));
    let redirect = gate.get("/private").browser().send();
    assert_eq!(redirect.status, 302);
    assert!(redirect.header("x-request-id").is_some_and(is_new_id));
    // The built-in endpoints' errors as well.
    let me = gate.get("/.sessiongate/me").api().send();
    assert_eq!(me.status, 401);
    assert_eq!(me.body, problem_body(&me, "unauthenticated"));
}

#[test]
fn a_trusted_peers_well_formed_id_is_kept() {
    let backend = Backend::app();
    let gate = Gate::start(&format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        standard_config(backend.addr, "")
    ));
    let kept = gate
        .get("/public/x")
        .header("X-Request-Id", "front-1234.abc_def:9")
        .send();
    assert_eq!(kept.header("x-request-id"), Some("front-1234.abc_def:9"));
    assert_eq!(
        backend.last().one("x-request-id"),
        Some("front-1234.abc_def:9")
    );
    for bad in ["has space", "quote\"d", &"x".repeat(129)] {
        let r = gate.get("/public/x").header("X-Request-Id", bad).send();
        let id = r.header("x-request-id").unwrap();
        assert!(is_new_id(id), "{bad:?} replaced by a new id, got {id}");
        assert_eq!(backend.last().one("x-request-id"), Some(id));
    }
}
