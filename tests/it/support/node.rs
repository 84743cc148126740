//! An OpenID provider in node (node-oidc-provider, `tests/browser/*.mjs`) on
//! an ephemeral loopback port: started with its arguments, ready once it
//! prints `issuer http://127.0.0.1:<port>`, ended on drop (its stdin closes).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A provider script running; ended on drop.
pub struct NodeIssuer {
    pub issuer: String,
    pub addr: SocketAddr,
    child: Child,
}

impl NodeIssuer {
    /// Run `tests/browser/<script>` with `args` and wait (30 s at most) for its issuer line.
    pub fn start(script: &str, args: &[&str]) -> NodeIssuer {
        let path = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("node")
            .arg(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (./test.sh installs what the OIDC tests need)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{script} starts within 30 s"));
        let addr = issuer
            .trim_start_matches("http://")
            .parse()
            .expect("an issuer on 127.0.0.1:<port>");
        NodeIssuer {
            issuer,
            addr,
            child,
        }
    }
}

impl Drop for NodeIssuer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
