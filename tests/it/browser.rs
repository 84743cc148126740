//! The login flow in a real browser: headless Chromium, driven by
//! `tests/browser/login_flow.mjs` (playwright-core), against the real
//! `sessiongate` binary in front of the real demo backend
//! (`demo/backend`), configured like the demo (`demo/proxy.toml`)
//! on ephemeral ports. It also refreshes the screenshot `docs/login.png`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules`: `./test.sh`
//! installs both. Without them the test fails rather than skips.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_addr, hash_password, Proc, Req, ScratchDir};

const INSTALL_HINT: &str = "run ./test.sh to install chromium and playwright-core";
const CHROMIUM: &str = "/usr/bin/chromium";
const USER: &str = "demo";
const PASSWORD: &str = "browser-test-password-7f3a";
const SECRET: &str = "browser-test-secret-0123456789abcdef0123456789";
const ADMIN_TOKEN: &str = "browser-test-admin-token-0123456789abcdef";
const FACTOR_KEY: &str = "browser-test-factor-key-0123456789abcdef0123";
const NODE_TIMEOUT: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `demo/proxy.toml` with its three addresses replaced by `proxy`, `admin`, `backend`.
fn demo_config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    let mut text = std::fs::read_to_string(repo().join("demo/proxy.toml")).unwrap();
    for (from, to) in [
        ("127.0.0.1:8080", proxy.to_string()),
        ("localhost:8080", format!("localhost:{}", proxy.port())),
        ("127.0.0.1:9091", admin.to_string()),
        ("127.0.0.1:3000", backend.to_string()),
    ] {
        assert!(text.contains(from), "demo/proxy.toml no longer has {from}");
        text = text.replace(from, &to);
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
    // Held to be killed, and their output printed on a failure, on drop.
    _proxy: Proc,
    _backend: Proc,
    _dir: ScratchDir,
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
        // One per test: the browser tests run in parallel.
        let dir = ScratchDir::create();
        let (admin_addr, backend_addr) = (free_addr(), free_addr());
        let users = format!(
            "[[user]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nroles = [\"user\", \"admin\"]\n",
            hash_password(PASSWORD)
        );
        std::fs::write(dir.path().join("users.toml"), users).unwrap();
        // What demo/run.sh makes once.
        std::fs::write(dir.path().join("factor.key"), FACTOR_KEY).unwrap();
        let config = dir.path().join("proxy.toml");
        let text = demo_config(proxy_addr, admin_addr, backend_addr) + extra;
        std::fs::write(&config, text).unwrap();
        let mut backend = Proc::spawn(
            "demo_backend",
            Command::new(&backend_bin).arg(backend_addr.to_string()),
            dir.path().join("demo_backend.log"),
        )
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", backend_bin.display()));
        // The backend listens before the proxy starts: the proxy's first health
        // check must not find it down (the next one is seconds later).
        backend.wait_listening(backend_addr);
        let mut proxy = Proc::spawn(
            "sessiongate",
            Command::new(env!("CARGO_BIN_EXE_sessiongate"))
                .arg("--config")
                .arg(&config)
                .env("SESSIONGATE_SECRET", SECRET)
                .env("SESSIONGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .envs(env.iter().copied()),
            dir.path().join("sessiongate.log"),
        )
        .expect("start sessiongate");
        proxy.wait_listening(proxy_addr);
        proxy.wait_listening(admin_addr);
        Demo {
            base: format!("http://{proxy_addr}"),
            admin: format!("http://{admin_addr}"),
            proxy_addr,
            _proxy: proxy,
            _backend: backend,
            _dir: dir,
        }
    }

    /// Run a browser script with `args`; fail with node's output when it fails
    /// (the proxy and the backend print theirs as they are dropped).
    fn node(&self, script: &str, args: &[&str]) {
        node(script, args);
    }
}

/// Run a browser script with `args`; fail with node's output when it fails.
fn node(script: &str, args: &[&str]) {
    {
        let (status, stdout, stderr) = run_with_timeout(
            Command::new("node")
                .arg(repo().join("tests/browser").join(script))
                .args(args),
            NODE_TIMEOUT,
        );
        let ok = status.is_some_and(|s| s.success());
        assert!(
            ok,
            "{script} {}\n---- node stdout ----\n{stdout}\n---- node stderr ----\n{stderr}",
            status.map_or(format!("timed out after {NODE_TIMEOUT:?}"), |s| format!(
                "exited with {s}"
            )),
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

/// The second factor in Chromium with its virtual WebAuthn authenticator: a
/// passkey added and used (after the password, and alone), an authenticator
/// app set up and used. WebAuthn needs a host name: the browser opens the
/// demo as `localhost`, its `passkey_origin`.
#[test]
fn browser_passkeys_and_an_authenticator_app() {
    let demo = Demo::start(free_addr(), "", &[]);
    let base = format!("http://localhost:{}", demo.proxy_addr.port());
    let docs = repo().join("docs");
    demo.node(
        "factor_flow.mjs",
        &[&base, USER, PASSWORD, &docs.to_string_lossy()],
    );
}

/// The demo banner's and the README's script line, `curl -u demo:<password>
/// http://127.0.0.1:8080/api/whoami`, against the demo's own config and
/// backend (no browser).
#[test]
fn the_demos_script_route_takes_basic() {
    use base64::Engine;
    let demo = Demo::start(free_addr(), "", &[]);
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let resp = Req::new(demo.proxy_addr, "GET", "/api/whoami")
        .header("Authorization", &basic(&format!("{USER}:{PASSWORD}")))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body, format!("user: {USER}\nroles: user,admin\n"));
    let resp = Req::new(demo.proxy_addr, "GET", "/api/whoami")
        .header("Authorization", &basic(&format!("{USER}:wrong")))
        .send();
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").is_some());
}

/// The demo banner's API key lines: a key made on the admin API, as printed,
/// reaches the demo's `/api` route as its owner.
#[test]
fn the_demos_script_route_takes_an_api_key_made_as_the_banner_says() {
    let demo = Demo::start(free_addr(), "", &[]);
    let admin: SocketAddr = demo.admin.trim_start_matches("http://").parse().unwrap();
    let made = Req::new(admin, "POST", "/keys")
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .header("Content-Type", "application/json")
        .body(r#"{"owner":"demo","name":"script","expires_in":"30d"}"#)
        .send();
    assert_eq!(made.status, 201, "{}", made.body);
    let key = made.json()["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sgk_"), "{key}");
    let resp = Req::new(demo.proxy_addr, "GET", "/api/whoami")
        .header("Authorization", &format!("Bearer {key}"))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body, format!("user: {USER}\nroles: user,admin\n"));
}

/// One sign-in across two unrelated domains in Chromium, over TLS with a
/// throwaway CA whose leaf names all three hosts, each resolved to the
/// loopback by `--host-resolver-rules`; Chromium trusts the leaf by its key
/// (`--ignore-certificate-errors-spki-list`). The cases, one by one, are in
/// `cross_domain.rs`; this shows a real browser's cookies and redirects
/// carry them: `SameSite=Lax` hop cookies, `__Host-` cookies per host.
#[test]
fn browser_one_sign_in_across_two_domains_and_one_sign_out() {
    use crate::cross_domain::{store, ALICE, ROUTES};
    use crate::support::{curl_at, standard_config, users_file, wait_for, Backend, Ca, Gate};
    use base64::Engine;
    use sha2::Digest;

    let backend = Backend::app();
    let ca = Ca::new("sessiongate browser test CA");
    let (cert, key) = ca.leaf(&["login.test", "app.example.org", "*.example.com"]);
    let tls = free_addr();
    let config = format!(
        "{}\n[[server.tls]]\nlisten = [\"{tls}\"]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
        standard_config(backend.addr, &format!("{ROUTES}{}", store()))
    );
    let gate = Gate::start_with(
        &config,
        &[
            ("cert.pem", &cert),
            ("key.pem", &key),
            ("users.toml", &users_file(&[ALICE])),
        ],
        &[("TEST_SECRET", crate::support::SECRET)],
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    wait_for(Duration::from_secs(10), "the TLS listener", || {
        curl_at("login.test", tls, &ca_file, "/public", &["--http1.1"]).status == 200
    });
    // Chromium's form of a key pin: base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo.
    let der = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap().1;
    let parsed = der.parse_x509().unwrap();
    let spki = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(parsed.public_key().raw));
    node(
        "cross_domain_flow.mjs",
        &[&tls.port().to_string(), ALICE.0, ALICE.1, &spki],
    );
    // The app got the signed-in user over the hop.
    assert!(
        backend.requests().iter().any(|r| r.one("host")
            == Some(&format!("app.example.org:{}", tls.port()))
            && r.one("x-user") == Some("alice")),
        "the app never saw alice"
    );
}
