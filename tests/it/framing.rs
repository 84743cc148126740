//! Request framing through the real binary: what reaches the backend is framed
//! one way only (request smuggling).

use crate::common::*;

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
