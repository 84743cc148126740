//! The HTTP/1.1 head as both ends of the harness read it: header lines with
//! their names' case kept, and the body length they announce. The backend
//! ([`super::backend`]) reads requests with it, the client
//! ([`super::client`]) responses; neither end's framing rules live here.

use std::io::BufRead;

/// Every value of header `name` (case-insensitive) among `headers`.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Header lines up to the blank line, name case kept; `None` if the
/// connection ended first.
pub fn read_headers(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
    }
}

pub fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
}
