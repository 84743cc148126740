//! Where a browser may be sent after login: a same-origin relative path, or `/`.
//!
//! An open redirect on a login page turns a trusted link into a phishing hop, so
//! `next` is accepted only when it cannot leave this origin in any browser's
//! reading: it must start with exactly one `/`, and neither it nor any of its
//! percent-decoded forms may contain a backslash (`/\evil` is `//evil` to
//! browsers), a second leading `/`, or any control character (browsers drop tab
//! and newline inside URLs, so `/<TAB>/evil` becomes `//evil`). Anything else
//! falls back to `/`. What comes out is percent-encoded so the `Location`
//! header never carries CR, LF, spaces or non-ASCII.
//!
//! The way there is encoded here too: [`encode_next`] writes the `next` of the
//! login redirect the proxy sends an anonymous browser to.
//!
//! Pure functions; the login endpoints call [`safe_next`].

use std::borrow::Cow;

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};

/// The redirect target for a `next` parameter (already form-decoded once).
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub fn safe_next(next: Option<&str>) -> Cow<'_, str> {
    match next {
        Some(n) if is_safe(n) => encode(n),
        _ => Cow::Borrowed("/"),
    }
}

fn is_safe(next: &str) -> bool {
    // Check the value and every percent-decoded layer of it: a browser or the
    // application may decode once more than we expect.
    let mut current = Cow::Borrowed(next);
    for _ in 0..4 {
        if !is_plain_local(&current) {
            return false;
        }
        match percent_decode(&current) {
            Some(decoded) if decoded != current.as_ref() => current = Cow::Owned(decoded),
            Some(_) => return true,
            None => return false,
        }
    }
    // Still changing after four rounds: nobody needs that, refuse it.
    false
}

fn is_plain_local(s: &str) -> bool {
    let b = s.as_bytes();
    b.first() == Some(&b'/')
        && b.get(1) != Some(&b'/')
        && !b.iter().any(|&c| c == b'\\' || c < 0x20 || c == 0x7f)
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() && c != ' ')
}

/// Decode `%XX` once; `None` when the result is not UTF-8. Invalid escapes
/// stay as they are.
fn percent_decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// What may not appear raw in a `Location` header: controls, space and the
/// characters RFC 3986 leaves out of a URI (non-ASCII is always encoded).
const LOCATION: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^');

/// Percent-encode what may not appear raw in a `Location` header.
fn encode(s: &str) -> Cow<'_, str> {
    utf8_percent_encode(s, LOCATION).into()
}

/// What `next` keeps raw: RFC 3986's unreserved characters and `/`. Everything
/// else, `?`, `%` and `:` included, is encoded, so the value can only ever be
/// read back as a path on this origin.
const NEXT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Append the login redirect's `next` value: the normalised path and the query,
/// percent-encoded (the query's `?` too).
pub(crate) fn encode_next(out: &mut String, path: &str, query: Option<&str>) {
    out.extend(utf8_percent_encode(path, NEXT));
    if let Some(q) = query {
        out.push_str("%3F");
        out.extend(utf8_percent_encode(q, NEXT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for p in ["/", "/app", "/app/x?y=1&z=/a#frag", "/a%20b", "/%E2%82%AC"] {
            assert_eq!(safe_next(Some(p)), p, "{p}");
        }
        assert_eq!(safe_next(Some("/a b")), "/a%20b");
        assert_eq!(safe_next(Some("/é")), "/%C3%A9");
    }

    #[test]
    fn everything_else_falls_back_to_root() {
        for p in [
            "",
            "//evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "https://evil.test",
            "javascript:alert(1)",
            "/%2F%2Fevil.test",
            "/%2f/evil.test",
            "%2F%2Fevil.test",
            "/%5Cevil.test",
            "/%09/evil.test",
            "/\t/evil.test",
            "/\r\nSet-Cookie: x=1",
            "/%0d%0aSet-Cookie:x",
            "/%252F%252Fevil.test",
            "evil.test",
            "?next=//x",
            "/%E2%80%A8x",
        ] {
            assert_eq!(safe_next(Some(p)), "/", "{p:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    /// oauth2-proxy's open-redirect corpus: every payload must stay on our origin.
    #[test]
    fn open_redirect_corpus_stays_same_origin() {
        let corpus = include_str!("../../tests/data/openredirects.txt");
        let base = "http://127.0.0.1:8080/.sessiongate/login";
        for line in corpus.lines() {
            let got = safe_next(Some(line));
            assert!(!got.contains(['\r', '\n']), "{line:?} -> {got:?}");
            assert!(
                got.starts_with('/') && !got.starts_with("//"),
                "{line:?} -> {got:?}"
            );
            // A WHATWG URL parser (as browsers use) must land on the same origin.
            let base = url::Url::parse(base).unwrap();
            let resolved = base
                .join(&got)
                .unwrap_or_else(|e| panic!("{line:?} -> {got:?}: {e}"));
            assert_eq!(resolved.origin(), base.origin(), "{line:?} -> {got:?}");
        }
    }

    #[test]
    fn next_is_encoded_as_a_relative_path() {
        let mut s = String::new();
        encode_next(&mut s, "/a b/c", Some("x=1&y=//evil"));
        assert_eq!(s, "/a%20b/c%3Fx%3D1%26y%3D//evil");
    }
}
