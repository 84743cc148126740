//! `X-Request-Id`: one id per request, sent upstream, returned to the client,
//! in the access log line, in every other log event of the request
//! ([`in_request`]) and in every error body sessiongate writes, so one line of
//! each ties a complaint to a request.
//!
//! A trusted peer's id (`server.trusted_proxies`: the front proxy that
//! started the trace) is kept when it is 1–128 characters of `A–Z a–z 0–9 . _ : -`;
//! anyone else's, and any other value, is replaced. A new id is this process's
//! random prefix and a counter (32 hex digits): unique across instances
//! without a random draw per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

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

// ------------------------------------------------ the id in every log event

/// A request id by value: what a worker thread holds while it polls one
/// request's phase. A copy rather than a `HeaderValue` clone, so setting it on
/// every poll counts no reference and allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct LogId {
    len: u8,
    text: [u8; MAX_LEN],
}

impl LogId {
    const NONE: LogId = LogId {
        len: 0,
        text: [0; MAX_LEN],
    };

    pub(crate) fn of(id: &HeaderValue) -> LogId {
        let id = id.as_bytes();
        let len = id.len().min(MAX_LEN);
        let mut text = [0; MAX_LEN];
        text[..len].copy_from_slice(&id[..len]);
        LogId {
            len: len as u8,
            text,
        }
    }

    /// Empty outside a request. Every id is ASCII from [`acceptable`]'s
    /// alphabet or hex digits, so it needs no escaping in JSON or text.
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }
}

thread_local! {
    static CURRENT: std::cell::Cell<LogId> = const { std::cell::Cell::new(LogId::NONE) };
}

/// `phase` with `id` as this thread's current request id whenever it is
/// polled, so the log formatter (`server::logging`) adds it to every event
/// the phase emits, however deep. Not a `tracing` span: a span per request
/// cost 5-10 % of the CPU per proxied request (bench/results/ab.md), most of
/// it in the locks of the subscriber's reloadable layers, and a span made
/// under the text format made the JSON formatter panic after a reload.
pub(crate) fn in_request<F: Future + Unpin>(id: LogId, phase: F) -> InRequest<F> {
    InRequest { id, phase }
}

/// The future [`in_request`] returns.
pub(crate) struct InRequest<F> {
    id: LogId,
    phase: F,
}

/// A poll longer than this held its worker thread, and every other request
/// on that thread, that long: it is logged, naming the request.
const LONG_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl<F: Future + Unpin> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = CURRENT.replace(self.id);
        let started = std::time::Instant::now();
        let polled = Pin::new(&mut self.phase).poll(cx);
        let took = started.elapsed();
        if took > LONG_POLL {
            // A request phase must never block: each worker thread runs
            // many connections (issue 22's tail). Inside the request, so the
            // event carries its id.
            tracing::warn!(target: "proxy", took_ms = took.as_millis() as u64, "a request phase held its worker thread");
        }
        CURRENT.set(outer);
        polled
    }
}

/// `f` of the id of the request this thread is running a phase of, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    let id = CURRENT.get();
    f(Some(id.as_str()).filter(|id| !id.is_empty()))
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

    fn current() -> Option<String> {
        with_current(|id| id.map(str::to_owned))
    }

    #[tokio::test]
    async fn the_id_is_current_only_while_its_phase_is_polled() {
        let mut phase = in_request(
            LogId::of(&HeaderValue::from_static("req-1")),
            Box::pin(async {
                let first = current();
                tokio::task::yield_now().await;
                let nested = in_request(
                    LogId::of(&HeaderValue::from_static("req-2")),
                    Box::pin(async { current() }),
                )
                .await;
                (first, nested, current())
            }),
        );
        assert!(futures::poll!(&mut phase).is_pending());
        assert_eq!(current(), None, "between polls the thread runs others");
        let (first, nested, after) = phase.await;
        assert_eq!(first.as_deref(), Some("req-1"));
        assert_eq!(nested.as_deref(), Some("req-2"));
        assert_eq!(after.as_deref(), Some("req-1"), "the outer id restored");
        assert_eq!(current(), None);
    }
}
