//! The processes a test starts besides the backend: [`Proc`] runs one with
//! its output in a log file, waits until it listens, signals it, kills it on
//! drop and prints its output when the test failed; and what such a process
//! needs from the test: a loopback port nobody else was handed
//! ([`free_addr`]) and a scratch directory ([`scratch_dir`], [`ScratchDir`]).
//! What to run is the caller's: `sessiongate` is [`super::gate`]'s, and
//! redis-server, which is ready when it answers PING, [`super::redis`]'s.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A child process with its stdout and stderr in a log file; killed on
/// drop, and its output printed when the test panics.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` (as `name` in messages) with no stdin and its output in
    /// `log`.
    ///
    /// # Errors
    /// When the program cannot be started (not installed, most likely); the
    /// caller says what to install.
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> std::io::Result<Proc> {
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// [`Proc::output`] under a heading with the process's name.
    pub fn report(&self) -> String {
        format!("---- {} output ----\n{}", self.name, self.output())
    }

    /// The exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait until `addr` accepts connections, at most 20 s; panics with the
    /// output if the process exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = self.exited() {
                panic!("{} exited with {status}\n{}", self.name, self.report());
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {addr}\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send the signal `sig` (`-HUP`, `-QUIT`, …).
    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    /// Wait for the exit, at most `within`; panics if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit, however long it takes (after a signal that ends it).
    pub fn wait(&mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }

    /// Kill the process and wait for it (its log stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
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

/// A [`scratch_dir`] that is removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn create() -> ScratchDir {
        ScratchDir(scratch_dir())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
