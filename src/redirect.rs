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
//! Pure functions; the login endpoints call [`safe_next`].

use std::borrow::Cow;

/// The redirect target for a `next` parameter (already form-decoded once).
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

/// Decode `%XX` once; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode what may not appear raw in a `Location` header.
fn encode(s: &str) -> Cow<'_, str> {
    let needs = |c: u8| {
        !(c.is_ascii_graphic())
            || matches!(c, b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'^')
    };
    if !s.bytes().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.bytes() {
        if needs(c) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    Cow::Owned(out)
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
        let corpus = include_str!("../tests/data/openredirects.txt");
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
}
