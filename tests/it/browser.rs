//! The login flow in a real browser: headless Chromium, driven by
//! `tests/browser/login_flow.mjs` (playwright-core), against the real
//! `sessiongate` binary in front of the real demo backend
//! (`demo/backend`), configured like the demo (`demo/proxy.toml`)
//! on ephemeral ports. It also refreshes the screenshot `docs/login.png`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`: `./test.sh`
//! installs both. Without them the test fails rather than skips.

use crate::support::free_addr;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::hash_password;

const INSTALL_HINT: &str = "run ./test.sh to install chromium and playwright-core";
const CHROMIUM: &str = "/usr/bin/chromium";
const USER: &str = "demo";
const PASSWORD: &str = "browser-test-password-7f3a";
const SECRET: &str = "browser-test-secret-0123456789abcdef0123456789";
const ADMIN_TOKEN: &str = "browser-test-admin-token-0123456789abcdef";
const NODE_TIMEOUT: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        // One per test: the browser tests run in parallel.
        TempDir(crate::support::scratch_dir())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process with its output in a file; killed on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("---- {} output ----\n{out}", self.name)
    }

    /// Wait until `addr` accepts connections; panics if the process exits first.
    fn wait_for(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}\n{}", self.name, self.output());
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {addr}\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `demo/proxy.toml` with its three addresses replaced by `proxy`, `admin`, `backend`.
fn demo_config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    let mut text = std::fs::read_to_string(repo().join("demo/proxy.toml")).unwrap();
    for (from, to) in [
        ("127.0.0.1:8080", proxy),
        ("127.0.0.1:9091", admin),
        ("127.0.0.1:3000", backend),
    ] {
        assert!(text.contains(from), "demo/proxy.toml no longer has {from}");
        text = text.replace(from, &to.to_string());
    }
    text
}

/// Run `cmd` to completion or until `timeout`, collecting stdout and stderr.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?} (is node 20+ installed?): {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    (
        status,
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    )
}

/// The demo (its backend and `demo/proxy.toml` with `extra` appended) on
/// ephemeral ports, killed on drop.
struct Demo {
    base: String,
    admin: String,
    proxy_addr: SocketAddr,
    proxy: Proc,
    backend: Proc,
    _dir: TempDir,
}

impl Demo {
    fn start(proxy_addr: SocketAddr, extra: &str, env: &[(&str, &str)]) -> Demo {
        let modules = repo().join("tests/browser/node_modules/playwright-core");
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: {INSTALL_HINT}"
        );
        assert!(
            modules.exists(),
            "{} is missing: {INSTALL_HINT}",
            modules.display()
        );
        // Another package's binary gets no CARGO_BIN_EXE_*; it sits beside ours.
        let backend_bin = Path::new(env!("CARGO_BIN_EXE_sessiongate"))
            .parent()
            .unwrap()
            .join(format!("demo_backend{}", std::env::consts::EXE_SUFFIX));
        assert!(
            backend_bin.exists(),
            "{} is missing: run `cargo build -p sessiongate-demo`",
            backend_bin.display()
        );
        let dir = TempDir::new();
        let (admin_addr, backend_addr) = (free_addr(), free_addr());
        let users = format!(
            "[[user]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nroles = [\"user\", \"admin\"]\n",
            hash_password(PASSWORD)
        );
        std::fs::write(dir.0.join("users.toml"), users).unwrap();
        let config = dir.0.join("proxy.toml");
        let text = demo_config(proxy_addr, admin_addr, backend_addr) + extra;
        std::fs::write(&config, text).unwrap();
        let mut backend = Proc::spawn(
            "demo_backend",
            Command::new(&backend_bin).arg(backend_addr.to_string()),
            &dir.0,
        );
        // The backend listens before the proxy starts: the proxy's first health
        // check must not find it down (the next one is seconds later).
        backend.wait_for(backend_addr);
        let mut proxy = Proc::spawn(
            "sessiongate",
            Command::new(env!("CARGO_BIN_EXE_sessiongate"))
                .arg("--config")
                .arg(&config)
                .env("SESSIONGATE_SECRET", SECRET)
                .env("SESSIONGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .envs(env.iter().copied()),
            &dir.0,
        );
        proxy.wait_for(proxy_addr);
        proxy.wait_for(admin_addr);
        Demo {
            base: format!("http://{proxy_addr}"),
            admin: format!("http://{admin_addr}"),
            proxy_addr,
            proxy,
            backend,
            _dir: dir,
        }
    }

    /// Run a browser script with `args`; fail with every log when it fails.
    fn node(&self, script: &str, args: &[&str]) {
        let (status, stdout, stderr) = run_with_timeout(
            Command::new("node")
                .arg(repo().join("tests/browser").join(script))
                .args(args),
            NODE_TIMEOUT,
        );
        let ok = status.is_some_and(|s| s.success());
        assert!(
            ok,
            "{script} {}\n---- node stdout ----\n{stdout}\n---- node stderr ----\n{stderr}\n{}\n{}",
            status.map_or(format!("timed out after {NODE_TIMEOUT:?}"), |s| format!(
                "exited with {s}"
            )),
            self.proxy.output(),
            self.backend.output(),
        );
    }
}

/// A screenshot's path in `docs/`, which the README shows.
fn screenshot(name: &str) -> String {
    let path = repo().join("docs").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn browser_login_flow_reaches_the_app_and_logs_out() {
    let demo = Demo::start(free_addr(), "", &[]);
    demo.node(
        "login_flow.mjs",
        &[&demo.base, USER, PASSWORD, &screenshot("login.png")],
    );
}

#[test]
fn browser_sign_in_with_an_openid_provider_and_out() {
    let proxy_addr = free_addr();
    let callback = format!("http://{proxy_addr}/.sessiongate/oidc/op/callback");
    let op = crate::oidc::Op::start(
        &["--interactive"],
        &callback,
        &format!("http://{proxy_addr}/"),
    );
    let extra = crate::oidc::provider_config_at(&op, &callback, "");
    let demo = Demo::start(
        proxy_addr,
        &extra,
        &[("TEST_OIDC_SECRET", crate::oidc::CLIENT_SECRET)],
    );
    assert_eq!(demo.proxy_addr, proxy_addr);
    demo.node(
        "oidc_flow.mjs",
        &[&demo.base, &op.issuer, &screenshot("login-oidc.png")],
    );
}

#[test]
fn browser_own_sessions_and_admin_pages_do_their_main_actions() {
    let demo = Demo::start(free_addr(), "", &[]);
    let docs = repo().join("docs");
    demo.node(
        "pages_flow.mjs",
        &[
            &demo.base,
            &demo.admin,
            USER,
            PASSWORD,
            ADMIN_TOKEN,
            &docs.to_string_lossy(),
        ],
    );
}
