//! The request's body framing as it goes upstream.
//!
//! RFC 9110 §8.6: a recipient may accept a `Content-Length` that is a list of
//! identical values (`5, 5`, or the same header line twice), but must then
//! forward one valid value. pingora reconciles such a list for its own framing
//! (and refuses lists that disagree), yet forwards the header lines as they
//! came; a backend that reads the list differently would frame the body
//! differently from us (request smuggling). So exactly one value goes on.
//!
//! A `101 Switching Protocols` ends HTTP framing on the connection: whatever
//! follows is relayed raw, past the response filter (so past our `Set-Cookie`
//! and `X-Session-*` handling). RFC 9110 §15.2.2: a server must not switch to
//! a protocol the client did not ask for. So a 101 is relayed only when the
//! request asked to upgrade to the protocol the response names.

use http::header::{CONTENT_LENGTH, UPGRADE};
use pingora::http::{RequestHeader, ResponseHeader};

/// Replace a `Content-Length` list with its one value. Untouched when there is
/// a single plain value (the common case: nothing is allocated).
///
/// # Errors
/// When the values disagree or one is not a number; the caller answers 400
/// (pingora should already have refused such a request).
pub(crate) fn single_content_length(req: &mut RequestHeader) -> Result<(), ()> {
    let mut values = req.headers.get_all(CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (None, _) => return Ok(()),
        (Some(v), None) if !v.as_bytes().contains(&b',') => return Ok(()),
        _ => {}
    }
    let mut length: Option<u64> = None;
    for value in req.headers.get_all(CONTENT_LENGTH) {
        for token in value.to_str().map_err(|_| ())?.split(',') {
            let token = token.trim();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = token.parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    let n = length.ok_or(())?;
    req.insert_header(CONTENT_LENGTH, n).map_err(|_| ())
}

/// Whether a backend's `101` switches to a protocol the client asked for: the
/// response's `Upgrade` names one of the request's `Upgrade` tokens.
pub(crate) fn upgrade_was_asked(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    let tokens = |v: Option<&http::HeaderValue>| -> Vec<String> {
        v.and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let asked = tokens(req.headers.get(UPGRADE));
    let switched = tokens(resp.headers.get(UPGRADE));
    !switched.is_empty() && switched.iter().all(|p| asked.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(values: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        for v in values {
            r.append_header("Content-Length", v.to_string()).unwrap();
        }
        r
    }

    fn lengths(r: &RequestHeader) -> Vec<&str> {
        r.headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn a_list_of_identical_values_goes_on_as_one() {
        for values in [&["5, 5"][..], &["5", "5"], &["5,5", " 5 "]] {
            let mut r = req(values);
            assert_eq!(single_content_length(&mut r), Ok(()), "{values:?}");
            assert_eq!(lengths(&r), ["5"], "{values:?}");
        }
        let mut plain = req(&["12"]);
        assert_eq!(single_content_length(&mut plain), Ok(()));
        assert_eq!(lengths(&plain), ["12"]);
        let mut none = req(&[]);
        assert_eq!(single_content_length(&mut none), Ok(()));
        assert!(lengths(&none).is_empty());
    }

    #[test]
    fn disagreeing_or_malformed_lists_are_refused() {
        for values in [
            &["5, 6"][..],
            &["5", "6"],
            &["5, x"],
            &["5, "],
            &["+5", "5"],
        ] {
            let mut r = req(values);
            assert_eq!(single_content_length(&mut r), Err(()), "{values:?}");
        }
    }

    #[test]
    fn a_101_is_relayed_only_to_the_protocol_asked_for() {
        let req = |upgrade: Option<&str>| {
            let mut r = RequestHeader::build("GET", b"/ws", None).unwrap();
            if let Some(u) = upgrade {
                r.insert_header("Upgrade", u.to_owned()).unwrap();
            }
            r
        };
        let resp = |upgrade: Option<&str>| {
            let mut r = ResponseHeader::build(101, None).unwrap();
            if let Some(u) = upgrade {
                r.insert_header("Upgrade", u.to_owned()).unwrap();
            }
            r
        };
        assert!(upgrade_was_asked(
            &req(Some("websocket")),
            &resp(Some("WebSocket"))
        ));
        assert!(upgrade_was_asked(
            &req(Some("h2c, websocket")),
            &resp(Some("websocket"))
        ));
        assert!(!upgrade_was_asked(&req(None), &resp(Some("websocket"))));
        assert!(!upgrade_was_asked(
            &req(Some("websocket")),
            &resp(Some("h2c"))
        ));
        assert!(!upgrade_was_asked(&req(Some("websocket")), &resp(None)));
    }
}
