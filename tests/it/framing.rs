//! Request framing through the real binary: what reaches the backend is framed
//! one way only (request smuggling).

use crate::support::*;

#[test]
fn a_content_length_list_is_forwarded_as_one_value() {
    // Guards against forwarding `Content-Length: 5, 5` (or the line twice) as
    // sent: RFC 9110 §8.6 allows accepting it only if one value goes on.
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    // The client adds its own `Content-Length: 5` for the body.
    for sent in ["5", "5, 5", "5,5"] {
        let resp = gate
            .req("POST", "/public/form")
            .header("Content-Length", sent)
            .body("hello")
            .send();
        assert_eq!(resp.status, 200, "{sent:?}: {resp:#?}");
        let got = backend.last();
        assert_eq!(got.all("content-length"), ["5"], "{sent:?}: {got:#?}");
        assert_eq!(got.body, b"hello", "{sent:?}");
    }
    let resp = gate
        .req("POST", "/public/form")
        .header("Content-Length", "6")
        .body("hello")
        .send();
    assert_eq!(
        resp.status, 400,
        "disagreeing lengths are refused: {resp:#?}"
    );
}

#[test]
fn an_unasked_for_101_from_the_backend_is_a_502() {
    // Guards against relaying a 101 the client never asked for: the raw bytes
    // after it could carry a second response (our cookie, X-Session-*) that
    // the response filter never sees.
    let backend = Backend::start(|r| {
        if r.path() == "/public/sneaky" {
            Reply {
                status: 101,
                upgrade: true,
                ..Reply::default()
            }
        } else {
            app_reply(r)
        }
    });
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/public/sneaky").send();
    assert_eq!(resp.status, 502, "{resp:#?}");
    // Asked for another protocol than the one the backend switches to.
    let resp = gate
        .get("/public/sneaky")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .send();
    assert_eq!(resp.status, 502, "{resp:#?}");
    assert!(
        gate.output().contains("did not ask for"),
        "logged:\n{}",
        gate.output()
    );
}

#[test]
fn a_small_read_buffer_still_carries_large_heads_and_bodies() {
    let backend = Backend::app();
    let config =
        standard_config(backend.addr, "").replace("[session]", "read_buffer = 1024\n\n[session]");
    // `server` keys go before [session]: standard_config has no [server] of its
    // own; the harness writes one first, so this lands inside it.
    let gate = Gate::start(&config);
    let body: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let resp = gate
        .req("POST", "/public/upload")
        .header("X-Long", &"v".repeat(6000))
        .body(&body)
        .send();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let last = backend.last();
    assert_eq!(last.body.len(), body.len());
    assert_eq!(last.body, body.as_bytes());
    assert_eq!(last.one("x-long").map(str::len), Some(6000));
}
