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
//! After a sign-in, `next` may also be an absolute URL to another host the
//! gate serves ([`safe_next_among`]): one a route names, exactly or under a
//! wildcard ([`Sites`]), with the request's own scheme and no user info. The
//! host is read by a WHATWG URL parser (the `url` crate, as browsers read
//! it), so a look-alike internationalised name is its punycode and matches
//! nothing configured; backslashes, controls and spaces are refused before
//! any parsing.
//!
//! Pure functions; the login endpoints call [`safe_next_among`].

use std::borrow::Cow;
use std::collections::HashSet;

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};

/// The hosts the gate serves: a redirect after sign-in may name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sites {
    /// Exact names.
    exact: HashSet<String>,
    /// Wildcards, by the domain under them (`*.example.com`: `example.com`).
    under: HashSet<String>,
}

impl Sites {
    /// The sites of canonical exact names and wildcard domains.
    pub(crate) fn new(
        exact: impl IntoIterator<Item = String>,
        under: impl IntoIterator<Item = String>,
    ) -> Sites {
        Sites {
            exact: exact.into_iter().collect(),
            under: under.into_iter().collect(),
        }
    }

    /// Whether `name` (canonical, no port) is served: named, or under a
    /// wildcard (one label or more, never the wildcard's domain itself).
    /// Only letters, digits, `.` and `-`: a name given in a query
    /// (`auth::hop`) can carry nothing that would change a URL built from it.
    pub(crate) fn serves(&self, name: &str) -> bool {
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return false;
        }
        if self.exact.contains(name) {
            return true;
        }
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if self.under.contains(parent) {
                return true;
            }
            rest = parent;
        }
        false
    }
}

/// The redirect target after a sign-in: what [`safe_next`] keeps, or an
/// absolute URL to a host `sites` serves, with the request's scheme
/// (`https` or not) and no user info. Anything else is `/`.
pub(crate) fn safe_next_among<'a>(
    next: Option<&'a str>,
    sites: &Sites,
    https: bool,
) -> Cow<'a, str> {
    match next {
        Some(n) if n.starts_with('/') => safe_next(Some(n)),
        Some(n) => match elsewhere(n, sites, https) {
            Some(url) => Cow::Owned(url),
            None => Cow::Borrowed("/"),
        },
        None => Cow::Borrowed("/"),
    }
}

/// `next` as an absolute URL to a served host, re-serialised by the parser.
fn elsewhere(next: &str, sites: &Sites, https: bool) -> Option<String> {
    let scheme = if https { "https://" } else { "http://" };
    if !next.starts_with(scheme)
        || next.len() > 2048
        || next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let url = url::Url::parse(next).ok()?;
    let host = match url.host()? {
        url::Host::Domain(d) => d.to_owned(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => format!("[{a}]"),
    };
    (url.username().is_empty() && url.password().is_none() && sites.serves(&host))
        .then(|| url.to_string())
}

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

    fn sites() -> Sites {
        Sites::new(
            ["app.example.org".to_owned(), "login.example.com".to_owned()],
            ["example.net".to_owned()],
        )
    }

    #[test]
    fn a_served_host_is_a_destination_with_this_scheme() {
        let s = sites();
        for (next, want) in [
            (
                "https://app.example.org/x?y=1",
                "https://app.example.org/x?y=1",
            ),
            ("https://app.example.org", "https://app.example.org/"),
            (
                "https://APP.example.org:8443/a%20b",
                "https://app.example.org:8443/a%20b",
            ),
            ("https://a.b.example.net/", "https://a.b.example.net/"),
            ("/local", "/local"),
        ] {
            assert_eq!(safe_next_among(Some(next), &s, true), want, "{next}");
        }
        assert_eq!(
            safe_next_among(Some("http://app.example.org/"), &s, false),
            "http://app.example.org/"
        );
    }

    #[test]
    fn only_plain_names_are_served() {
        let s = sites();
        assert!(s.serves("a.example.net"));
        for bad in [
            "x/@evil.test#.example.net",
            "evil.test:1.example.net",
            "A.example.net",
            "a b.example.net",
        ] {
            assert!(!s.serves(bad), "{bad}");
        }
    }

    /// One case per form an open redirect takes: none leaves the served hosts.
    #[test]
    fn every_other_destination_falls_back_to_root() {
        let s = sites();
        for next in [
            // another host
            "https://evil.test/",
            "https://app.example.org.evil.test/",
            "https://example.net/",
            "https://evilexample.net/",
            // scheme-relative
            "//app.example.org/",
            "//evil.test/",
            // backslashes
            "https:\\\\evil.test/",
            "https://evil.test\\@app.example.org/",
            "https://app.example.org\\@evil.test/",
            "/\\evil.test",
            // user info
            "https://app.example.org@evil.test/",
            "https://user:pw@app.example.org/",
            "https://evil.test%40app.example.org/",
            // a look-alike name (Cyrillic 'а'), and its punycode
            "https://\u{430}pp.example.org/",
            "https://xn--pp-8cd.example.org/",
            // other schemes, or a downgrade
            "http://app.example.org/",
            "javascript://app.example.org/%0aalert(1)",
            "HTTPS://app.example.org/",
            // controls and spaces
            "https://app.example.org/\t",
            "https://app.example.org /",
            "https://app.example.org/\r\nSet-Cookie:x=1",
            // a trailing dot is another spelling: not served
            "https://app.example.org./",
        ] {
            assert_eq!(safe_next_among(Some(next), &s, true), "/", "{next:?}");
        }
        assert_eq!(
            safe_next_among(Some("https://app.example.org/"), &s, false),
            "/"
        );
    }

    #[test]
    fn next_is_encoded_as_a_relative_path() {
        let mut s = String::new();
        encode_next(&mut s, "/a b/c", Some("x=1&y=//evil"));
        assert_eq!(s, "/a%20b/c%3Fx%3D1%26y%3D//evil");
    }
}
