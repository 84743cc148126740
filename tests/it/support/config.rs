//! The config a test gate runs with: [`standard_config`] (the routes most
//! tests need) and its variations, and a users file hashed by the real
//! binary. Starting the gate with it is [`super::gate`]'s.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;

use super::backend::Backend;
use super::gate::Gate;

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

/// A gate with `standard_config` and more `[session]` keys.
pub fn with_session(backend: &Backend, session_keys: &str) -> Gate {
    Gate::start(&with_keys(standard_config(backend.addr, ""), session_keys))
}

/// Add keys after the `[session]` secrets line (a `[session.cookie]` table may follow).
pub fn with_keys(config: String, keys: &str) -> String {
    let secrets = "secrets = [{ env = \"TEST_SECRET\" }]";
    config.replace(secrets, &format!("{secrets}\n{keys}\n"))
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
