//! The `sessiongate` process under test: [`Gate`] starts the real binary
//! with a config on ephemeral ports, waits until it listens, kills it on
//! drop and prints its output when the test failed. It also holds what every
//! test gate is started with ([`SECRET`], [`ADMIN_TOKEN`]). The config text
//! is [`super::config`]'s, the requests [`super::client`]'s.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::client::{form, Req, Resp};
use super::process::{free_addr, Proc, ScratchDir};
use super::redis::{redis_run, Redis};
use super::wait::wait_for;

/// The admin token of every test gate (at least 32 bytes).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The secret every test gate signs with (at least 32 bytes).
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// `sessiongate <args> --config <config>`: the binary under test, with the
/// environment every test gate has (`TEST_SECRET`, `TEST_ADMIN_TOKEN`); a
/// later `.env` overrides it.
pub fn sessiongate(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_SECRET", SECRET)
        .env("TEST_ADMIN_TOKEN", ADMIN_TOKEN);
    cmd
}

/// `sessiongate check` of `text`, written to `dir/name`: whether it passed,
/// and what it said (stdout and stderr).
pub fn check_config(dir: &Path, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = sessiongate(&["check"], &path).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A running `sessiongate`, killed on drop.
pub struct Gate {
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Dropped before `dir`, so a failed test still finds its log there.
    process: Proc,
    dir: ScratchDir,
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
            if let Some(gate) = Gate::try_start_with(None, config, files, env) {
                return gate;
            }
        }
        panic!("sessiongate could not bind free ports four times in a row");
    }

    /// [`Gate::start_with`] listening on `addr`, picked before (another
    /// server must know it first: a provider's back-channel logout URL).
    pub fn start_at(
        addr: SocketAddr,
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Gate {
        Gate::try_start_with(Some(addr), config, files, env)
            .unwrap_or_else(|| panic!("sessiongate could not bind {addr}"))
    }

    fn try_start_with(
        addr: Option<SocketAddr>,
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Option<Gate> {
        let dir = ScratchDir::create();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        // Free ports for the proxy to bind (pingora has no port-0 getter).
        let addr = addr.unwrap_or_else(free_addr);
        let admin = free_addr();
        // Short grace unless the test sets its own (upgrade.rs).
        let grace = match config.contains("grace_period") {
            true => "",
            false => "grace_period = \"1s\"\n",
        };
        let mut text = format!(
            "[server]\nlisten = [\"{addr}\"]\nthreads = 2\n{grace}shutdown_timeout = \"1s\"\n{config}"
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
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let process = Proc::spawn(
            "sessiongate",
            sessiongate(&[], &path).envs(env.iter().copied()),
            dir.path().join("output.log"),
        )
        .expect("start sessiongate");
        let mut gate = Gate {
            addr,
            admin,
            process,
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
            if let Some(status) = gate.process.exited() {
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
        self.process.output()
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

    /// The value of the unlabelled sample `name` on the admin listener's
    /// `/metrics`; panics with the whole page if there is none.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.admin("GET", "/metrics").send().body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    }

    /// Wait until `/readyz` answers 200 (with the Redis store: its
    /// invalidation tracking is up), at most `within`.
    pub fn wait_ready(&self, within: Duration) {
        wait_for(within, "the instance to be ready", || {
            self.admin_anonymous("GET", "/readyz").send().status == 200
        });
    }

    /// Send the process signal `sig` (`-HUP`, `-QUIT`, …).
    pub fn signal(&self, sig: &str) {
        self.process.signal(sig);
    }

    /// The directory holding this gate's config and files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("-TERM");
        self.process.wait_exit(within)
    }

    /// Kill the process and wait for it (its files stay until drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// Kill the process and start the binary again in the same directory,
    /// with the same config and files (and the environment every test gate
    /// has), on new ports: what a restart keeps. The first process's output
    /// stays in `output.before-restart.log`. Waits until it listens.
    pub fn restart(&mut self) {
        self.process.stop();
        let dir = self.dir.path().to_owned();
        let _ = std::fs::rename(
            dir.join("output.log"),
            dir.join("output.before-restart.log"),
        );
        let path = dir.join("proxy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // New ports: the old ones may still be held by connections in TIME_WAIT.
        for _ in 0..4 {
            let (addr, admin) = (free_addr(), free_addr());
            let new = text
                .replace(&format!("\"{}\"", self.addr), &format!("\"{addr}\""))
                .replace(&format!("\"{}\"", self.admin), &format!("\"{admin}\""));
            std::fs::write(&path, &new).unwrap();
            self.process = Proc::spawn(
                "sessiongate",
                &mut sessiongate(&[], &path),
                dir.join("output.log"),
            )
            .expect("start sessiongate");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(addr).is_ok() && TcpStream::connect(admin).is_ok() {
                    self.addr = addr;
                    self.admin = admin;
                    return;
                }
                if let Some(status) = self.process.exited() {
                    if self.output().contains("Address already in use") {
                        break;
                    }
                    panic!(
                        "sessiongate exited at restart with {status}:\n{}",
                        self.output()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "sessiongate did not listen after a restart:\n{}",
                    self.output()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sessiongate could not bind free ports four times in a row at a restart");
    }
}
