//! What the benchmark's tools share: reading one HTTP/1.1 response off a
//! keep-alive connection (std only, so the load they add is easy to account).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// One response: its status and the value of our cookie, if it set one.
pub struct Response {
    pub status: u16,
    pub cookie: Option<String>,
}

/// Read one HTTP/1.1 response (Content-Length or chunked body, discarded).
pub fn read_response(r: &mut BufReader<TcpStream>, cookie_name: &str) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut cookie = None;
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in headers"));
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("set-cookie") {
            let pair = value.split(';').next().unwrap_or("");
            if pair
                .split_once('=')
                .is_some_and(|(k, v)| k == cookie_name && !v.is_empty())
            {
                cookie = Some(pair.to_owned());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| bad("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            let mut skip = vec![0u8; size + 2];
            r.read_exact(&mut skip)?;
            if size == 0 {
                break;
            }
        }
    } else if length > 0 {
        let mut skip = vec![0u8; length];
        r.read_exact(&mut skip)?;
    }
    Ok(Response { status, cookie })
}
