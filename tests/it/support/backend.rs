//! The recording backend: a real HTTP/1.1 server on an ephemeral loopback
//! port that records every request exactly as it arrived ([`Recorded`]: header
//! lines with their case, the body) and answers with a [`Reply`] a test
//! chooses. [`Backend::app`] is the standard test application, whose replies
//! carry the session commands; [`Silent`] accepts and never answers. It does
//! not start processes or pick ports for them ([`super::process`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::http1::{content_length, read_headers, values};

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    #[allow(dead_code, reason = "printed with the request when a test fails")]
    pub method: String,
    pub target: String,
    /// Header lines exactly as received (name case preserved).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
    }

    /// The one value of header `name`, if any; panics if there are several.
    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times: {self:#?}",
            all.len()
        );
        all.first().copied()
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query_param(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| pct_decode(v))
    }
}

/// Decode `%XX` escapes (test input only; invalid escapes are kept as they are).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
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
    String::from_utf8_lossy(&out).into_owned()
}

/// What the backend answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Answer 101 and echo bytes afterwards (a WebSocket stand-in).
    pub upgrade: bool,
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
            ..Reply::default()
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A recording HTTP/1.1 backend with keep-alive.
pub struct Backend {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Backend {
    /// A backend that answers every request with `handler`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, handler) = (log2.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &log, &*handler));
            }
        });
        Backend { addr, log }
    }

    /// The standard test application: `/_test/login?user=U&roles=a,b` logs in,
    /// `/_test/logout` logs out, `/_test/data?json=…` stores data, and anything
    /// else answers `200 ok`.
    pub fn app() -> Backend {
        Backend::start(app_reply)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The last request received; panics if there was none.
    pub fn last(&self) -> Recorded {
        self.requests()
            .last()
            .cloned()
            .expect("the backend received no request")
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

pub fn app_reply(r: &Recorded) -> Reply {
    match r.path() {
        "/_test/login" => Reply::ok("logged in")
            .header(
                "X-Session-Login",
                &r.query_param("user").unwrap_or_default(),
            )
            .header(
                "X-Session-Roles",
                &r.query_param("roles").unwrap_or_default(),
            ),
        "/_test/logout" => Reply::ok("bye").header("X-Session-Logout", "1"),
        "/_test/data" => {
            Reply::ok("stored").header("X-Session-Data", &r.query_param("json").unwrap_or_default())
        }
        "/ws" if r.one("upgrade").is_some() => Reply {
            status: 101,
            upgrade: true,
            ..Reply::default()
        },
        _ => Reply::ok("ok"),
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Recorded>>, handler: &Handler) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let Some(headers) = read_headers(&mut reader) else {
            return;
        };
        let len = content_length(&headers).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let rec = Recorded {
            method,
            target,
            headers,
            body,
        };
        let close = rec
            .all("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("close"));
        let reply = handler(&rec);
        log.lock().unwrap().push(rec);
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if reply.upgrade {
            out.push_str("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
            if writer.write_all(out.as_bytes()).is_err() {
                return;
            }
            // Echo raw bytes until the connection closes.
            let mut buf = [0u8; 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if writer.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}",
            reply.body.len(),
            reply.body
        ));
        if writer.write_all(out.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// A backend that accepts connections and never answers.
pub struct Silent {
    pub addr: SocketAddr,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        Silent { addr }
    }
}
