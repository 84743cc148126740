//! A throwaway redis-server for the tests of the Redis store, and the switch
//! (`SESSIONGATE_TEST_STORE=redis`) that runs every test against one. The
//! server runs on an ephemeral port without persistence and is killed on
//! drop. Sentinels and clusters are built from it in their own tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::process::{free_addr, scratch_dir, signal};

/// Whether this run of the suite is against the Redis store
/// (`SESSIONGATE_TEST_STORE=redis`); only bounds that are the memory store's
/// own (its capacities) are asserted in the memory run alone.
pub fn redis_run() -> bool {
    std::env::var("SESSIONGATE_TEST_STORE").as_deref() == Ok("redis")
}

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
        signal(self.child.id(), sig);
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
