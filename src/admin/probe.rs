//! `sessiongate healthcheck`: ask this instance's admin listener for
//! `GET /healthz`, for a container `HEALTHCHECK` (a distroless image has no
//! curl).
//!
//! Hand-written on `std::net` rather than with an HTTP client crate: one fixed
//! request to a loopback address and one status line to read, and the binary
//! gains no dependency for it.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long the probe waits to connect, and then for the answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `Ok` when the admin listener at `listen` answers `/healthz` with 200.
///
/// # Errors
/// A sentence saying what failed: no connection, no answer, another status.
pub fn healthcheck(listen: SocketAddr) -> Result<(), String> {
    // A wildcard listener is reached on loopback.
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, listen.port());
    let fail = |what: &str, e: std::io::Error| format!("{what} {addr}: {e}");
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail("cannot connect to", e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail("cannot set timeouts on", e))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| fail("cannot write to", e))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| fail("no answer from", e))?;
    match line.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("{addr} answered {:?}", line.trim_end())),
    }
}
