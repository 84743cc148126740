//! The raw HTTP/1.1 client: [`Req`] writes a request byte for byte (so a test
//! can send `X_User` or `Connection: close, X-User` exactly as an attacker
//! would), [`read_response`] reads one back into a [`Resp`] that keeps the
//! request for failure messages. Also the encodings a client needs: forms
//! and the session key of a cookie. It knows nothing of the gate's process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::http1::{content_length, read_headers, values};

/// The raw session id (64 hex digits) in a `name=<id>.<sig>` cookie pair.
pub fn id_of(cookie: &str) -> &str {
    &cookie.split_once('=').unwrap().1[..64]
}

/// The session key (SHA-256 of the raw id) of a `name=<id>.<sig>` cookie pair.
pub fn key_of(cookie: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(hex::decode(id_of(cookie)).unwrap()))
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A raw HTTP/1.1 request, written byte for byte.
pub struct Req {
    addr: SocketAddr,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
    close: bool,
}

impl Req {
    pub fn new(addr: SocketAddr, method: &str, target: &str) -> Req {
        Req {
            addr,
            method: method.into(),
            target: target.into(),
            headers: vec![("Host".into(), "app.test".into())],
            body: String::new(),
            close: true,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Send `Host: <host>` instead of the default `app.test`.
    pub fn host(mut self, host: &str) -> Req {
        self.headers[0].1 = host.into();
        self
    }

    /// Send `Cookie: <pair>` (as returned by [`Gate::login`]).
    pub fn cookie(self, pair: &str) -> Req {
        self.header("Cookie", pair)
    }

    /// The request as an API client (no HTML accepted).
    pub fn api(self) -> Req {
        self.header("Accept", "application/json")
    }

    /// The request as a browser navigation.
    pub fn browser(self) -> Req {
        self.header("Accept", "text/html,application/xhtml+xml")
            .header("Sec-Fetch-Mode", "navigate")
    }

    pub fn body(mut self, b: &str) -> Req {
        self.body = b.into();
        self
    }

    /// Do not add `Connection: close` (the test sends its own Connection header).
    pub fn no_close(mut self) -> Req {
        self.close = false;
        self
    }

    pub fn raw(&self) -> String {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.close {
            out.push_str("Connection: close\r\n");
        }
        if !self.body.is_empty() || self.method == "POST" {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out
    }

    /// Send and read the whole response.
    pub fn send(self) -> Resp {
        let raw = self.raw();
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        read_response(&mut s, &raw)
    }

    /// [`Req::send`], or `None` when the server closes without answering.
    pub fn try_send(self) -> Option<Resp> {
        self.send_or_why().ok()
    }

    /// [`Req::try_send`], saying why there was no response: the connection
    /// was refused, or it was accepted and closed with no answer.
    pub fn send_or_why(self) -> Result<Resp, NoResponse> {
        let raw = self.raw();
        let mut s = TcpStream::connect(self.addr).map_err(|_| NoResponse::Refused)?;
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw.as_bytes())
            .map_err(|_| NoResponse::Closed)?;
        match s.peek(&mut [0u8; 1]) {
            Ok(n) if n > 0 => Ok(read_response(&mut s, &raw)),
            _ => Err(NoResponse::Closed),
        }
    }
}

/// The JSON error body sessiongate writes for `error`, with the response's
/// request id (`{"error":"…","request_id":"…"}`).
pub fn problem_body(resp: &Resp, error: &str) -> String {
    let id = resp.header("x-request-id").expect("an X-Request-Id");
    format!(r#"{{"error":"{error}","request_id":"{id}"}}"#)
}

/// Read one response (Content-Length framed, or to EOF).
pub fn read_response(s: &mut TcpStream, request: &str) -> Resp {
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .unwrap_or_else(|e| panic!("no response to\n{request}\n: {e}"));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?} for\n{request}"));
    let headers = read_headers(&mut reader).unwrap_or_default();
    let len = content_length(&headers);
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        None if status == 101 => {}
        None => {
            let _ = reader.read_to_end(&mut body);
        }
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        request: request.to_owned(),
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoResponse {
    /// The connection was refused.
    Refused,
    /// It was accepted, then closed (or timed out) before any answer.
    Closed,
}

/// A response, with the request that produced it (for failure messages).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    #[allow(dead_code, reason = "printed with the response when a test fails")]
    pub request: String,
}

impl Resp {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
    }

    /// The body as JSON; panics with the whole response if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The `name=value` pair of the session cookie this response sets, if any
    /// (a clearing cookie is not returned).
    pub fn session_cookie(&self) -> Option<String> {
        self.all("set-cookie")
            .into_iter()
            .filter_map(|c| c.split(';').next())
            .find(|pair| pair.starts_with("__Host-sid=") && pair.len() > "__Host-sid=".len())
            .map(str::to_owned)
    }
}
