//! Test harness: the real `sessiongate` binary, a real recording backend and a
//! raw HTTP/1.1 client, all on ephemeral loopback ports.
//!
//! The client writes requests byte for byte (so a test can send `X_User` or a
//! `Connection: close, X-User` exactly as an attacker would), and the backend
//! records the exact header lines it received. Processes are killed on drop;
//! when a test panics, the proxy's output is printed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token of every test gate (at least 32 bytes).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The secret every test gate signs with (at least 32 bytes).
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

// ------------------------------------------------------------------ backend

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Header lines exactly as received (name case preserved).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every value of header `name` (case-insensitive) among `headers`.
fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
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

/// Header lines up to the blank line, name case kept; `None` if the
/// connection ended first.
fn read_headers(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
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

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
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

/// Ports this test process has handed out, so it never hands one out twice.
static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback address nothing listens on now, for a child process to bind.
///
/// Picked by binding port 0 and letting go, so the kernel can hand the same
/// port to the next caller. Two gates of this process on one port would both
/// bind it (their workers set `SO_REUSEPORT`) and share its connections: a
/// login on one, a 401 from the other. So a port is never handed out twice.
pub fn free_addr() -> SocketAddr {
    let mut seen = HANDED_OUT.lock().unwrap();
    loop {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        if !seen.contains(&addr.port()) {
            seen.push(addr.port());
            return addr;
        }
    }
}

/// An address where nothing listens.
pub fn dead_addr() -> SocketAddr {
    free_addr()
}

// ------------------------------------------------------------------ the proxy

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory for one test's files.
pub fn scratch_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sessiongate-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A standard config: `/public` public, `/admin` needs role `admin`, `/_test`
/// and `/ws` public on an upstream that may issue session commands, everything
/// else authenticated. `extra` is appended (more sections or routes).
pub fn standard_config(backend: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[session]
secrets = [{{ env = "TEST_SECRET" }}]

[upstream.app]
addrs = ["{backend}"]
session_commands = true
read_timeout = "2s"
health_check_interval = "1h"

[[route]]
path = "/public"
access = "public"

[[route]]
path = "/admin"
roles = ["admin"]

[[route]]
path = "/_test"
access = "public"

[[route]]
path = "/ws"
{extra}
"#
    )
}

/// Whether this run of the suite is against the Redis store
/// (`SESSIONGATE_TEST_STORE=redis`); only bounds that are the memory store's
/// own (its capacities) are asserted in the memory run alone.
pub fn redis_run() -> bool {
    std::env::var("SESSIONGATE_TEST_STORE").as_deref() == Ok("redis")
}

/// A gate with `standard_config` and more `[session]` keys.
pub fn with_session(backend: &Backend, session_keys: &str) -> Gate {
    Gate::start(&with_keys(standard_config(backend.addr, ""), session_keys))
}

/// Add keys after the `[session]` secrets line (a `[session.cookie]` table may follow).
pub fn with_keys(config: String, keys: &str) -> String {
    let secrets = "secrets = [{ env = \"TEST_SECRET\" }]";
    config.replace(secrets, &format!("{secrets}\n{keys}\n"))
}

/// A running `sessiongate`, killed on drop.
pub struct Gate {
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    child: Child,
    dir: PathBuf,
    /// A Redis of this gate's own, when the suite runs against the Redis store.
    _redis: Option<Redis>,
}

impl Gate {
    /// Start the binary with `config` (everything but `[server]`, which is added
    /// with an ephemeral port). Waits until it accepts connections.
    pub fn start(config: &str) -> Gate {
        Gate::start_with_env(config, &[("TEST_SECRET", SECRET)])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gate {
        Gate::start_with(config, &[], env)
    }

    /// Start with extra files written next to the config (e.g. `users.toml`).
    pub fn start_with(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Gate {
        // The ports are picked by binding port 0 and letting go; a parallel test
        // can take one before the proxy binds it. Then start again on new ones.
        for _ in 0..4 {
            if let Some(gate) = Gate::try_start_with(config, files, env) {
                return gate;
            }
        }
        panic!("sessiongate could not bind free ports four times in a row");
    }

    fn try_start_with(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Option<Gate> {
        let dir = scratch_dir();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        // Free ports for the proxy to bind (pingora has no port-0 getter).
        let addr = free_addr();
        let admin = free_addr();
        let mut text = format!(
            "[server]\nlisten = [\"{addr}\"]\nthreads = 2\ngrace_period = \"1s\"\nshutdown_timeout = \"1s\"\n{config}"
        );
        // SESSIONGATE_TEST_STORE=redis runs every test against a Redis store.
        let redis = (redis_run() && !config.contains("[store]")).then(Redis::start);
        if let Some(r) = &redis {
            // A looser deadline than production's: the whole suite shares two cores.
            text.push_str(&r.store_section());
            text.push_str("timeout = \"2s\"\n");
        }
        if !config.contains("[admin]") {
            text.push_str(&format!(
                "\n[admin]\nlisten = \"{admin}\"\ntoken = {{ env = \"TEST_ADMIN_TOKEN\" }}\n"
            ));
        }
        let path = dir.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::fs::File::create(dir.join("output.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
        cmd.arg("--config")
            .arg(&path)
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        cmd.env("TEST_ADMIN_TOKEN", ADMIN_TOKEN);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start sessiongate");
        let mut gate = Gate {
            addr,
            admin,
            child,
            dir,
            _redis: redis,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(addr).is_ok()
                && (config.contains("[admin]") || TcpStream::connect(admin).is_ok())
            {
                return Some(gate);
            }
            if let Ok(Some(status)) = gate.child.try_wait() {
                if gate.output().contains("Address already in use") {
                    return None;
                }
                panic!("sessiongate exited with {status}:\n{}", gate.output());
            }
            assert!(
                Instant::now() < deadline,
                "sessiongate did not listen:\n{}",
                gate.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the proxy printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("output.log")).unwrap_or_default()
    }

    /// A request to the admin listener, with the admin token.
    pub fn admin(&self, method: &str, target: &str) -> Req {
        Req::new(self.admin, method, target)
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
    }

    /// A request to the admin listener without any token.
    pub fn admin_anonymous(&self, method: &str, target: &str) -> Req {
        Req::new(self.admin, method, target)
    }

    /// A request to this gate.
    pub fn get(&self, target: &str) -> Req {
        Req::new(self.addr, "GET", target)
    }

    pub fn req(&self, method: &str, target: &str) -> Req {
        Req::new(self.addr, method, target)
    }

    /// Log `user` in through the test backend's `X-Session-Login`; returns the cookie pair.
    pub fn login(&self, user: &str, roles: &str) -> String {
        let resp = self
            .get(&format!("/_test/login?user={user}&roles={roles}"))
            .send();
        assert_eq!(resp.status, 200, "{resp:#?}");
        resp.session_cookie()
            .unwrap_or_else(|| panic!("no session cookie: {resp:#?}"))
    }

    /// The admin API's `/stats`.
    pub fn stats(&self) -> serde_json::Value {
        self.admin("GET", "/stats").send().json()
    }

    /// The directory holding this gate's config and files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POST a form to the built-in login.
    pub fn login_form(&self, username: &str, password: &str, next: &str) -> Resp {
        let body = form(&[
            ("username", username),
            ("password", password),
            ("next", next),
        ]);
        self.req("POST", "/.sessiongate/login")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(&body)
            .send()
    }

    /// Send SIGTERM and wait for the exit, at most `within`.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the process and wait for it (its files stay until drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- sessiongate output ----\n{}", self.output());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ client

/// The session key (SHA-256 of the raw id) of a `name=<id>.<sig>` cookie pair.
pub fn key_of(cookie: &str) -> String {
    use sha2::Digest;
    let id = &cookie.split_once('=').unwrap().1[..64];
    hex::encode(sha2::Sha256::digest(hex::decode(id).unwrap()))
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

/// A users file line set: `(name, password, roles, disabled)`, hashed by the
/// real `sessiongate hash-password`.
pub fn users_file(users: &[(&str, &str, &str, bool)]) -> String {
    users
        .iter()
        .map(|(name, password, roles, disabled)| {
            let roles: Vec<String> = roles.split(',').filter(|r| !r.is_empty()).map(|r| format!("{r:?}")).collect();
            format!(
                "[[user]]\nname = {name:?}\npassword_hash = {:?}\nroles = [{}]\ndisabled = {disabled}\n\n",
                hash_password(password),
                roles.join(", ")
            )
        })
        .collect()
}

/// Run `sessiongate hash-password` with `password` on stdin.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiongate"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hash-password failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
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
        let raw = self.raw();
        let mut s = TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw.as_bytes()).ok()?;
        match s.peek(&mut [0u8; 1]) {
            Ok(n) if n > 0 => Some(read_response(&mut s, &raw)),
            _ => None,
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

/// A response, with the request that produced it (for failure messages).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
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

// ------------------------------------------------------------------ redis

/// A throwaway redis-server on an ephemeral port, no persistence; killed on drop.
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// [`Redis::start`] with more arguments (`--replicaof`, or a sentinel's
    /// config file and `--sentinel`).
    pub fn start_with(extra: &[&str]) -> Redis {
        // A port picked by binding port 0 can be taken by a parallel test before
        // redis-server binds it: then try another one.
        for _ in 0..5 {
            let port = free_addr().port();
            if let Some(r) = Redis::try_start_on(port, extra) {
                return r;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// Start on a given port (for tests that start the proxy first).
    pub fn start_on(port: u16) -> Redis {
        Redis::try_start_on(port, &[])
            .unwrap_or_else(|| panic!("redis-server did not start on {port}"))
    }

    /// Start, and wait until *this* server answers PING on the port.
    fn try_start_on(port: u16, extra: &[&str]) -> Option<Redis> {
        let child = Command::new("redis-server")
            // A config file, when given, must come first.
            .args(extra.iter().take_while(|a| !a.starts_with("--")))
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            // A replica's full sync writes dump.rdb even without --save: into
            // a scratch folder, not the checkout.
            .arg("--dir")
            .arg(scratch_dir())
            .args(extra.iter().skip_while(|a| !a.starts_with("--")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (install it: apt-get install -y redis-server, or run ./test.sh)");
        let mut redis = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(redis.child.try_wait(), Ok(None)) {
                return None; // it exited: most likely the port was taken
            }
            let pong = TcpStream::connect(("127.0.0.1", port))
                .ok()
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
                    s.write_all(b"PING\r\n").ok()?;
                    let mut buf = [0u8; 7];
                    s.read_exact(&mut buf).ok()?;
                    Some(&buf == b"+PONG\r\n")
                });
            if pong == Some(true) {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = redis.child.kill();
        None
    }

    /// The `[store]` section pointing at this server.
    pub fn store_section(&self) -> String {
        format!(
            "\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
            self.port
        )
    }

    /// Run redis-cli against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until this primary's replica has acknowledged every write made so
    /// far, by any client. (`WAIT` from a fresh redis-cli connection does
    /// not prove that: it waits only for that connection's own writes.)
    pub fn wait_replicated(&self) {
        let field = |info: &str, name: &str| -> Option<u64> {
            info.split(['\r', '\n', ','])
                .find_map(|f| f.strip_prefix(name)?.parse().ok())
        };
        let info = self.cli(&["INFO", "replication"]);
        let written = field(&info, "master_repl_offset:").expect("a primary's offset");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.cli(&["INFO", "replication"]);
            if field(&info, "offset=").is_some_and(|acked| acked >= written) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not acknowledge offset {written}: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freeze (SIGSTOP) or resume (SIGCONT) the server.
    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ waiting and load

/// Wait for `what`, checking every 50 ms, at most `within`.
pub fn wait_for(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A steady load of protected requests (`GET /private` as an API client,
/// cycling through `cookies`) on a thread of its own, for a store failover to
/// happen under. Every answer is recorded.
pub struct SteadyLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<(Instant, u16, bool)>>,
}

impl SteadyLoad {
    /// Start, and return once 50 requests were answered.
    pub fn start(addr: SocketAddr, cookies: Vec<String>) -> SteadyLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for c in cookies.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let resp = Req::new(addr, "GET", "/private").cookie(c).api().send();
                    let cleared = resp
                        .all("set-cookie")
                        .iter()
                        .any(|c| c.contains("Max-Age=0"));
                    seen.push((Instant::now(), resp.status, cleared));
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        };
        let load = SteadyLoad { stop, sent, thread };
        load.more(50);
        load
    }

    /// Wait until `n` more requests were answered.
    pub fn more(&self, n: usize) {
        let before = self.sent.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(10), "more requests answered", || {
            self.sent.load(Ordering::Relaxed) >= before + n
        });
    }

    /// Stop, and check what a store failover may do to protected requests:
    /// answer 200 or 503, never anything else (anonymous would be a 401),
    /// never clear the cookie. Prints how many answered 503 and over how long,
    /// with `what` and `back` (the time from the failure until service).
    pub fn stop_and_check(self, what: &str, back: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        let other: Vec<_> = seen
            .iter()
            .filter(|(_, s, _)| *s != 200 && *s != 503)
            .collect();
        assert!(
            other.is_empty(),
            "only 200 or 503 during a failover: {other:?}"
        );
        assert!(
            seen.iter().all(|(_, _, cleared)| !cleared),
            "no cookie is cleared because of a failover"
        );
        let unavailable: Vec<Instant> = seen
            .iter()
            .filter(|(_, s, _)| *s == 503)
            .map(|(t, _, _)| *t)
            .collect();
        let window = match (unavailable.first(), unavailable.last()) {
            (Some(a), Some(b)) => b.duration_since(*a),
            _ => Duration::ZERO,
        };
        eprintln!(
            "{what}: {} requests, {} answered 503 over {window:?}; back {back:?} after the failure",
            seen.len(),
            unavailable.len(),
        );
    }
}
