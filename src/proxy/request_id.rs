//! `X-Request-Id`: one id per request, sent upstream, returned to the client,
//! in the access log line and in every error body sessiongate writes, so one
//! line of each ties a complaint to a request.
//!
//! A trusted peer's id (`server.trusted_proxies`: the front proxy that
//! started the trace) is kept when it is 1–128 characters of `A–Z a–z 0–9 . _ : -`;
//! anyone else's, and any other value, is replaced. A new id is this process's
//! random prefix and a counter (32 hex digits): unique across instances
//! without a random draw per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::HeaderValue;
use pingora::http::RequestHeader;

/// The header's name.
pub(crate) const X_REQUEST_ID: &str = "X-Request-Id";

/// Longest id kept from a trusted peer.
const MAX_LEN: usize = 128;

/// A new id.
pub(crate) fn generate() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        // No entropy is no reason to stop serving: a zero prefix is still
        // unique within the process.
        let _ = getrandom::getrandom(&mut b);
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 32];
    hex::encode_to_slice(prefix.to_be_bytes(), &mut text[..16]).expect("16 hex digits");
    hex::encode_to_slice(n.to_be_bytes(), &mut text[16..]).expect("16 hex digits");
    HeaderValue::from_bytes(&text).expect("hex digits are a header value")
}

/// Whether `value` is an id we pass on as it is.
fn acceptable(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id of `req`: a trusted peer's single acceptable one, or `fresh`.
pub(crate) fn of(req: &RequestHeader, trusted_peer: bool, fresh: HeaderValue) -> HeaderValue {
    if trusted_peer {
        let mut values = req.headers.get_all("x-request-id").iter();
        if let (Some(v), None) = (values.next(), values.next()) {
            if acceptable(v.as_bytes()) {
                return v.clone();
            }
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for id in ids {
            r.append_header("X-Request-Id", *id).unwrap();
        }
        r
    }

    #[test]
    fn new_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(
            a.as_bytes()[..16],
            b.as_bytes()[..16],
            "one prefix per process"
        );
    }

    #[test]
    fn only_a_trusted_peers_well_formed_id_is_kept() {
        let fresh = || HeaderValue::from_static("fresh");
        assert_eq!(of(&req(&["abc-123"]), true, fresh()), "abc-123");
        assert_eq!(of(&req(&["abc-123"]), false, fresh()), "fresh");
        for bad in ["", "a b", "a\"b", "<script>", &"x".repeat(129)] {
            assert_eq!(of(&req(&[bad]), true, fresh()), "fresh", "{bad:?}");
        }
        assert_eq!(
            of(&req(&["a", "b"]), true, fresh()),
            "fresh",
            "two ids: neither"
        );
        assert_eq!(of(&req(&[]), true, fresh()), "fresh");
    }
}
