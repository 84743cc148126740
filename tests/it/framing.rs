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
