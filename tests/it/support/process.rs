//! What a process a test starts needs from the test: a loopback port nobody
//! else was handed, and a scratch directory for its files. It does not
//! start `sessiongate` itself ([`super::gate`]) or redis-server
//! ([`super::redis`]).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory for one test's files.
pub fn scratch_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sessiongate-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Send the process `pid` the signal `sig` (`-HUP`, `-STOP`, …) with
/// kill(1); panics if kill fails.
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}
