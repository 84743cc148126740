//! A demo application to put behind sessiongate; it is NOT part of the proxy.
//! It stands in for "your existing web application" so `demo/run.sh` can show
//! the whole login flow.
//!
//! It trusts `X-User` / `X-User-Roles` only because it listens on 127.0.0.1
//! behind the proxy, which removes any copy a client sends and sets them from
//! the session. The session cookie never reaches it. It has no login of its
//! own: logging in and out is sessiongate's built-in `/.sessiongate/login` and
//! `/.sessiongate/logout`, which never reach this application.
//!
//! Standard library only: a thread per connection, HTTP/1.1 keep-alive,
//! `Content-Length` bodies. Run: `cargo run -p sessiongate-demo -- 127.0.0.1:3000`
#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 64 * 1024;
const OK: &str = "200 OK";

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let h = self
            .headers
            .iter()
            .find(|h| h.0.eq_ignore_ascii_case(name))?;
        Some(&h.1)
    }
    fn user(&self) -> Option<&str> {
        self.header("X-User").filter(|u| !u.is_empty())
    }
}

struct Response {
    status: &'static str, // code and reason, e.g. "303 See Other"
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn new(status: &'static str, headers: Vec<(&'static str, String)>, body: String) -> Self {
        Response {
            status,
            headers,
            body,
        }
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:3000".into());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("demo_backend: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    eprintln!("demo_backend: listening on http://{addr}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

/// Answer requests on one connection until the client closes it or errs.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(75)))?;
    let (mut reader, mut writer) = (BufReader::new(stream.try_clone()?), stream);
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let resp = Response::new("400 Bad Request", vec![], esc(&e.to_string()));
                return write_response(&mut writer, resp, false, true);
            }
            Err(e) => return Err(e), // timeout, reset, EOF in a body: just close
        };
        let resp = handle(&req);
        let user = req.user().unwrap_or("-");
        eprintln!("{} {} {} user={user}", req.method, req.path, resp.status);
        write_response(&mut writer, resp, req.method == "HEAD", req.close)?;
        if req.close {
            return Ok(());
        }
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    reader.take(MAX_LINE).read_line(&mut line)?;
    if !line.is_empty() && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// One request; `None` when the client closed the connection between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let line = read_line(reader)?;
    if line.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad("malformed request line"));
    };
    let mut headers = Vec::new();
    loop {
        let h = read_line(reader)?;
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or_else(|| bad("malformed header"))?;
        if headers.len() == MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut req = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: vec![],
        close: false,
    };
    let connection = req.header("Connection").unwrap_or("");
    req.close = version != "HTTP/1.1" || connection.eq_ignore_ascii_case("close");
    if req.header("Transfer-Encoding").is_some() {
        return Err(bad("chunked request bodies are not supported by this demo"));
    }
    match req.header("Content-Length").unwrap_or("0").parse::<usize>() {
        Ok(len) if len <= MAX_BODY => req.body = vec![0; len],
        _ => return Err(bad("bad or too large Content-Length")),
    }
    reader.read_exact(&mut req.body)?;
    Ok(Some(req))
}

fn write_response(w: &mut TcpStream, r: Response, head: bool, close: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {}\r\n", r.status);
    out += &format!("Content-Length: {}\r\n", r.body.len());
    // Pages are HTML unless the response names its own type.
    if !r
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
    {
        out += "Content-Type: text/html; charset=utf-8\r\n";
    }
    out += "Cache-Control: no-store\r\n";
    out += "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'; \
            style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'\r\n";
    for (k, v) in &r.headers {
        out += &format!("{k}: {v}\r\n");
    }
    if close {
        out += "Connection: close\r\n";
    }
    out += "\r\n";
    if !head {
        out += &r.body;
    }
    w.write_all(out.as_bytes())
}

fn handle(req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/") => home(req),
        ("GET" | "HEAD", "/app") => {
            let user = esc(req.user().unwrap_or("(nobody)"));
            let roles = esc(req.header("X-User-Roles").unwrap_or(""));
            let intro = format!("<h1>Hello, {user}</h1><p>Your roles: <b>{roles}</b></p>");
            page(req, OK, "App", &(intro + &headers_table(req)))
        }
        ("GET" | "HEAD", "/admin") => {
            let intro = "<h1>Admin</h1><p>Only sessions with the role <code>admin</code> get \
                         here: the proxy checks, this app does not.</p>";
            page(req, OK, "Admin", &(intro.to_owned() + &headers_table(req)))
        }
        // For scripts (the demo's /api route takes HTTP Basic as well): who
        // the proxy says is asking, as plain text.
        ("GET" | "HEAD", "/api/whoami") => Response::new(
            OK,
            vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            format!(
                "user: {}\nroles: {}\n",
                req.user().unwrap_or("(nobody)"),
                req.header("X-User-Roles").unwrap_or("")
            ),
        ),
        (_, "/" | "/app" | "/admin") => error_page(req, "405 Method Not Allowed"),
        _ => error_page(req, "404 Not Found"),
    }
}

fn home(req: &Request) -> Response {
    let status = match req.user() {
        Some(u) => format!("You are logged in as <b>{}</b>.", esc(u)),
        None => "You are not logged in.".to_owned(),
    };
    let body = format!(
        "<h1>sessiongate demo</h1><p><b>sessiongate</b> is an authenticating reverse proxy. It \
         owns the session cookie and the access rules, and tells the application behind it who \
         you are in a trusted <code>X-User</code> header. This page comes from that application.\
         </p><p>{status}</p><ul><li><a href=\"/app\">/app</a>: needs a login</li>\
         <li><a href=\"/admin\">/admin</a>: needs the role <code>admin</code></li>\
         <li><a href=\"{LOGIN}\">{LOGIN}</a>: sessiongate's login page</li>\
         <li><a href=\"/.sessiongate/me\">/.sessiongate/me</a>: your session as JSON</li>\
         <li><a href=\"/.sessiongate/sessions\">/.sessiongate/sessions</a>: your sessions</li></ul>"
    );
    page(req, OK, "sessiongate demo", &body)
}

fn headers_table(req: &Request) -> String {
    let mut t = String::from("<h2>Request headers this app received</h2><table>");
    for (k, v) in &req.headers {
        t += &format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    t + "</table><p>No session cookie: the proxy removes it before forwarding.</p>"
}

fn error_page(req: &Request, status: &'static str) -> Response {
    let main = format!("<h1>{status}</h1><p><a href=\"/\">Home</a></p>");
    page(req, status, status, &main)
}

/// HTML-escape text for element content and quoted attribute values.
fn esc(s: &str) -> String {
    let s = s.replace('&', "&amp;").replace('<', "&lt;");
    let s = s.replace('>', "&gt;").replace('"', "&quot;");
    s.replace('\'', "&#39;")
}

/// An HTML page with the shared layout and a nav bar that knows who is logged in.
fn page(req: &Request, status: &'static str, title: &str, main: &str) -> Response {
    let who = match req.user() {
        Some(u) => format!("{} {LOGOUT_FORM}", esc(u)),
        None => format!("<a href=\"{LOGIN}\">Log in</a>"),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style>\
         </head><body><nav><a href=\"/\">Home</a><a href=\"/app\">App</a><a href=\"/admin\">\
         Admin</a><a href=\"/.sessiongate/sessions\">Your sessions</a><span class=\"who\">\
         {who}</span></nav><main>{main}</main></body></html>",
        esc(title)
    );
    Response::new(status, vec![], body)
}

/// sessiongate's login page; it sends the browser back to `next` afterwards.
const LOGIN: &str = "/.sessiongate/login?next=/app";
/// sessiongate's logout is a POST (a link could be followed by a prefetch or
/// another site); the browser sends `Origin`, which the proxy checks.
const LOGOUT_FORM: &str =
    "<form method=\"post\" action=\"/.sessiongate/logout\"><button>Log out</button></form>";

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;padding:.75rem 1rem;background:#1f2937}\
nav a{color:#fff;text-decoration:none}.who{margin-left:auto;color:#d1d5db}nav form{display:inline}\
main{max-width:44rem;margin:1rem auto;padding:0 1rem}\
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}\
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;word-break:break-all}\
th{width:35%;background:#f0f1f3}code{background:#e5e7eb;padding:0 .2rem}\
button{padding:.2rem .8rem;font:inherit;cursor:pointer}";
