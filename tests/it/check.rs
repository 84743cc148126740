//! `sessiongate check`: the shipped config passes; broken configs fail, naming each key.

use crate::support;

fn check(path: &std::path::Path, secret: Option<&str>) -> (bool, String) {
    let mut cmd = support::sessiongate(&["check"], path);
    cmd.env_remove("SESSIONGATE_SECRET");
    if let Some(s) = secret {
        cmd.env("SESSIONGATE_SECRET", s);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_proxy_toml_passes_check() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml");
    let (ok, text) = check(&path, Some(support::SECRET));
    assert!(ok, "{text}");
    let (ok, text) = check(&path, None);
    assert!(
        !ok && text
            .contains("session.secrets[0]: environment variable SESSIONGATE_SECRET is not set"),
        "{text}"
    );
}

#[test]
fn broken_configs_fail_naming_each_key() {
    let dir = support::scratch_dir();
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml"),
    )
    .unwrap();
    // The line the inserted key lands on: the one after `threads = 2`.
    let colour_line = format!(
        "line {}",
        base.lines().position(|l| l == "threads = 2").unwrap() + 2
    );
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            base.replace("path = \"/static\"", "path = \"static\""),
            vec!["route[0].path: must start with '/' (got \"static\")"],
        ),
        (
            base.replace("path = \"/admin\"", "path = \"/admin/../x\""),
            vec!["route[2].path: not in normal form"],
        ),
        (
            base.replace("addrs = [\"127.0.0.1:3000\"]", "addrs = []"),
            vec!["upstream.app.addrs: needs at least one address"],
        ),
        (
            base.replace(
                "path = \"/admin\"",
                "path = \"/static\"\nmatch = \"prefix\"\nmethods = [\"GET\"]",
            ),
            vec!["route[2]: same host, path, match and methods as route[0]"],
        ),
        (
            base.replace("threads = 2", "threads = 2\ncolour = \"blue\""),
            vec!["unknown field `colour`", &colour_line],
        ),
        (
            base.replace("same_site = \"lax\"", "same_site = \"sometimes\"")
                .replace("read_timeout = \"30s\"", "read_timeout = \"soon\""),
            vec![
                "session.cookie.same_site: must be strict, lax or none (got \"sometimes\")",
                "upstream.app.read_timeout:",
            ],
        ),
        (
            base.replace("listen = \"127.0.0.1:9091\"", "listen = \"0.0.0.0:9091\""),
            vec!["admin.listen: 0.0.0.0:9091 is not loopback: set admin.token"],
        ),
        (
            base.replace("secure = true", "secure = false"),
            vec!["session.cookie.name: a __Host- cookie requires secure = true"],
        ),
        (
            base.replace(
                "[{ env = \"SESSIONGATE_SECRET\" }]",
                "[{ file = \"missing-secret\" }, { env = \"SESSIONGATE_SECRET\", file = \"x\" }]",
            ),
            vec![
                "session.secrets[0]: cannot read",
                "session.secrets[1]: give exactly one of",
            ],
        ),
    ];
    for (i, (text, wants)) in cases.iter().enumerate() {
        let path = dir.join(format!("broken-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, out) = check(&path, Some(support::SECRET));
        assert!(!ok, "case {i} must fail:\n{out}");
        for want in wants {
            assert!(out.contains(want), "case {i}: {want:?} missing in:\n{out}");
        }
    }
    let short = dir.join("short.toml");
    std::fs::write(&short, &base).unwrap();
    let (ok, out) = check(&short, Some("only-20-bytes-secret"));
    assert!(
        !ok && out.contains("session.secrets[0]: must be at least 32 bytes (got 20 bytes)"),
        "{out}"
    );
    assert!(
        !out.contains("only-20-bytes-secret"),
        "the secret is never printed"
    );
}

#[test]
fn a_user_name_with_a_comma_fails_check_naming_the_entry() {
    // Guards against a list identity: `X-User: root, alice` reads as `root` to
    // a backend that splits on commas.
    let dir = support::scratch_dir();
    std::fs::write(
        dir.join("users.toml"),
        support::users_file(&[
            ("alice", "alice-password", "", false),
            ("root, alice", "x-password", "", false),
        ]),
    )
    .unwrap();
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml"),
    )
    .unwrap();
    let text = base.replace(
        "# users_file = \"users.toml\"",
        "users_file = \"users.toml\"",
    );
    assert_ne!(text, base, "proxy.toml documents users_file");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, out) = check(&path, Some(support::SECRET));
    assert!(
        !ok && out.contains("user[1].name: must be 1-256 bytes without `,`"),
        "{out}"
    );
    assert!(
        !out.contains("user[0]"),
        "only the bad entry is named: {out}"
    );
}
