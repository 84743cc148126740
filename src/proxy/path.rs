//! Path normalisation: one canonical form of a request path, pure, no I/O.
//!
//! A request path is normalised once ([`normalize`]); the same normalised path
//! decides the rule ([`super::routes`]) and is sent upstream, so the proxy and
//! the application can never disagree about which resource was asked for (the
//! classic `/public/../admin` bypass).

use std::borrow::Cow;

use pingora::http::RequestHeader;

/// Why a path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub enum Refusal {
    /// Not starting with `/` (an asterisk or a relative target).
    #[error("path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits, or one that decodes to invalid UTF-8.
    #[error("malformed percent-encoding")]
    BadEscape,
    /// `%2F` or `%5C`: a separator hidden inside a segment.
    #[error("encoded '/' or '\\' in a path segment")]
    EncodedSeparator,
    /// A literal `\`.
    #[error("backslash in path")]
    Backslash,
    /// A `;`, raw or encoded (path parameters decide nothing here).
    #[error("';' in path")]
    Semicolon,
    /// NUL, CR, LF or another control character.
    #[error("NUL or control character in path")]
    Control,
}

/// Normalise a request path (no query) into the one canonical form that both the
/// rule decision and the upstream use.
///
/// - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other
///   escapes keep their meaning with upper-case hex (§6.2.2.1);
/// - `.` and `..` segments are removed (§5.2.4; `..` never climbs above `/`),
///   including their encoded forms such as `%2e%2e`;
/// - runs of `/` collapse into one.
///
/// # Errors
/// An encoded `/` or `\` (their meaning differs between servers), a raw
/// backslash (some servers treat it as `/`), NUL or any control character (raw or
/// encoded), a malformed escape, or a path not starting with `/`.
///
/// Borrows the input when it is already normal, so the common case allocates nothing.
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub fn normalize(path: &str) -> Result<Cow<'_, str>, Refusal> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Refusal::NotAbsolute);
    }
    let mut needs_work = false;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(Refusal::Backslash),
            // Servlet containers strip `;params` from each segment before they
            // resolve it, so `/static/..;/admin` would be `/admin` to them while
            // it is under `/static` here. Refused rather than guessed at.
            b';' => return Err(Refusal::Semicolon),
            0..=0x1f | 0x7f => return Err(Refusal::Control),
            b'%' => needs_work = true,
            b'/' if prev == b'/' => needs_work = true,
            b'.' if prev == b'/' => {
                // A segment of "." or ".." (followed by '/' or the end).
                let rest = &bytes[i..];
                let seg_len = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                if seg_len <= 2 && rest[..seg_len].iter().all(|&c| c == b'.') {
                    needs_work = true;
                }
            }
            _ => {}
        }
        prev = b;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }

    // Decode unreserved escapes segment by segment, then resolve dot segments.
    let mut segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&str> = path[1..].split('/').collect();
    let last = raw_segments.len() - 1;
    for (idx, raw) in raw_segments.iter().enumerate() {
        let seg = decode_segment(raw)?;
        match seg.as_str() {
            "" if idx != last => {} // repeated slash
            "." => {
                if idx == last {
                    segments.push(String::new());
                }
            }
            ".." => {
                segments.pop();
                if idx == last {
                    segments.push(String::new());
                }
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn decode_segment(raw: &str) -> Result<String, Refusal> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            // Copy one whole character (UTF-8 in the raw path passes unchanged).
            let ch = raw[i..].chars().next().ok_or(Refusal::BadEscape)?;
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let hex = b.get(i + 1..i + 3).ok_or(Refusal::BadEscape)?;
        let byte = u8::from_str_radix(
            std::str::from_utf8(hex).map_err(|_| Refusal::BadEscape)?,
            16,
        )
        .map_err(|_| Refusal::BadEscape)?;
        match byte {
            b'/' | b'\\' => return Err(Refusal::EncodedSeparator),
            b';' => return Err(Refusal::Semicolon),
            0..=0x1f | 0x7f => return Err(Refusal::Control),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                out.push('%');
                out.push_str(&format!("{byte:02X}"));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// Make the request's target the one the rule was decided on: the
/// normalised path (when it differs) with the query as sent, always in
/// origin-form (an absolute-form target is not passed on). Untouched, and
/// without an allocation, when the target already is that.
///
/// # Errors
/// When the rebuilt target does not parse, which a normalised path and a
/// query pingora accepted cannot cause.
pub(crate) fn set_upstream_target(
    req: &mut RequestHeader,
    normalized: Option<&str>,
) -> Result<(), http::uri::InvalidUri> {
    let unchanged = normalized.is_none()
        && req.uri.path_and_query().map(|pq| pq.as_str().as_bytes()) == Some(req.raw_path());
    if unchanged {
        return Ok(());
    }
    let path = normalized.unwrap_or(req.uri.path());
    let target = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    req.set_uri(target.parse::<http::Uri>()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_target_is_the_decided_path_in_origin_form() {
        // (request target, normalised path, want)
        let cases = [
            ("/a/b?x=1", None, "/a/b?x=1"),
            ("/a/../admin?x=1", Some("/admin"), "/admin?x=1"),
            ("/a/%2e%2e/admin", Some("/admin"), "/admin"),
            ("http://evil.test/a?q", None, "/a?q"),
            ("http://evil.test/a/../b", Some("/b"), "/b"),
        ];
        for (target, normalized, want) in cases {
            let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
            set_upstream_target(&mut req, normalized).unwrap();
            assert_eq!(req.uri.to_string(), want, "{target}");
        }
    }

    #[test]
    fn normalize_table() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//private", "/private"),
            ("/a//b///c", "/a/b/c"),
            ("/public/../private", "/private"),
            ("/public/%2e%2e/private", "/private"),
            ("/public/%2E%2E/private", "/private"),
            ("/public/.%2e/private", "/private"),
            ("/private/./x", "/private/x"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/%61dmin", "/admin"),
            ("/a%7eb", "/a~b"),
            ("/a%20b", "/a%20b"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/a%3f", "/a%3F"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/...", "/a/..."),
            ("/a/.b", "/a/.b"),
            ("/é", "/é"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).as_deref(), Ok(want), "input {input:?}");
            // Normal form is a fixed point.
            assert_eq!(normalize(want).as_deref(), Ok(want), "fixed point {want:?}");
        }
        let bad = [
            ("/private%2fx", Refusal::EncodedSeparator),
            ("/private%2Fx", Refusal::EncodedSeparator),
            ("/public/..%5cprivate", Refusal::EncodedSeparator),
            ("/a\\b", Refusal::Backslash),
            ("/static/..;/admin", Refusal::Semicolon),
            ("/admin;x=1", Refusal::Semicolon),
            ("/a%3b", Refusal::Semicolon),
            ("/a%00", Refusal::Control),
            ("/a%0d%0a", Refusal::Control),
            ("/a\tb", Refusal::Control),
            ("/a%7f", Refusal::Control),
            ("/a%", Refusal::BadEscape),
            ("/a%4", Refusal::BadEscape),
            ("/a%zz", Refusal::BadEscape),
            ("a/b", Refusal::NotAbsolute),
            ("", Refusal::NotAbsolute),
            ("*", Refusal::NotAbsolute),
        ];
        for (input, want) in bad {
            assert_eq!(normalize(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/v1/items"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a/.b/c.d"), Ok(Cow::Borrowed(_))));
    }
}
