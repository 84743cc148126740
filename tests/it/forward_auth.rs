//! Forward-auth behind real front proxies, both started here on ephemeral
//! ports: nginx with `auth_request` (`<prefix>/auth/nginx`) and Caddy with
//! `forward_auth` (`<prefix>/auth/forward`). The front proxy serves the
//! backend itself; sessiongate only decides, with its own rules, and serves
//! its login pages through the front proxy.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const USERS: &[(&str, &str, &str, bool)] = &[("alice", "alice-password", "user", false)];

/// A front proxy on `addr`, killed on drop.
struct Front {
    addr: SocketAddr,
    _process: Proc,
}

/// The nginx snippet of the README, on `addr`.
fn nginx(gate: &Gate, backend: SocketAddr) -> Front {
    let dir = scratch_dir();
    let addr = free_addr();
    let sg = gate.addr;
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let conf = format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    server {{
        listen {addr};
        absolute_redirect off;

        # sessiongate's own pages (login, logout) through the front proxy.
        location /.sessiongate/ {{
            proxy_pass http://{sg};
            # $http_host keeps the port the browser used ($host drops it, and
            # the login form's same-origin check then fails on :8080).
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}

        # The auth subrequest: the original method and target, no body.
        location = /_sessiongate_auth {{
            internal;
            proxy_pass http://{sg}/.sessiongate/auth/nginx;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}

        # 401: a browser goes to the login page sessiongate named, an API client gets 401.
        location @sessiongate_login {{
            if ($sessiongate_login) {{ return 302 $sessiongate_login; }}
            return 401;
        }}

        location / {{
            auth_request /_sessiongate_auth;
            auth_request_set $sessiongate_user $upstream_http_x_user;
            auth_request_set $sessiongate_roles $upstream_http_x_user_roles;
            auth_request_set $sessiongate_login $upstream_http_location;
            error_page 401 = @sessiongate_login;
            # Set from sessiongate's answer only: empty (so removed) when anonymous.
            proxy_set_header X-User $sessiongate_user;
            proxy_set_header X-User-Roles $sessiongate_roles;
            proxy_pass http://{backend};
        }}
    }}
}}
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let mut process = Proc::spawn(
        "front proxy",
        Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"]),
        dir.join("front.log"),
    )
    .expect("nginx (Debian package nginx)");
    process.wait_listening(addr);
    Front {
        addr,
        _process: process,
    }
}

/// The Caddy snippet of the README, on `addr`.
fn caddy(gate: &Gate, backend: SocketAddr) -> Front {
    let dir = scratch_dir();
    let addr = free_addr();
    let sg = gate.addr;
    let conf = format!(
        r#"{{
    admin off
    auto_https off
}}
# Any host name, on this address only.
http://:{port} {{
    bind {ip}
    handle /.sessiongate/* {{
        reverse_proxy {sg}
    }}
    # `route` keeps this order (Caddy would sort request_header after forward_auth).
    route {{
        # A client's own identity headers never reach the app, whatever the answer.
        request_header -X-User
        request_header -X-User-Roles
        forward_auth {sg} {{
            uri /.sessiongate/auth/forward
            copy_headers X-User X-User-Roles
        }}
        reverse_proxy {backend}
    }}
}}
"#,
        port = addr.port(),
        ip = addr.ip()
    );
    std::fs::write(dir.join("Caddyfile"), conf).unwrap();
    let mut process = Proc::spawn(
        "front proxy",
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.join("Caddyfile"))
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config")),
        dir.join("front.log"),
    )
    .expect("caddy (Debian package caddy)");
    process.wait_listening(addr);
    Front {
        addr,
        _process: process,
    }
}

fn gate(backend: &Backend) -> Gate {
    gate_with(backend, "")
}

/// [`gate`] with more routes.
fn gate_with(backend: &Backend, routes: &str) -> Gate {
    let config = format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        standard_config(backend.addr, routes).replace(
            "[upstream.app]",
            "[auth]\nusers_file = \"users.toml\"\n[upstream.app]"
        )
    );
    Gate::start_with(
        &config,
        &[("users.toml", &users_file(USERS))],
        &[("TEST_SECRET", SECRET)],
    )
}

/// The cases every front proxy must pass. An anonymous browser gets a 302 to
/// the login page from both (nginx turns sessiongate's 401 + Location into one).
///
/// The browser's host carries the front proxy's own, non-default port, as
/// behind a proxy on :8080: the login and logout forms' same-origin check
/// must see it (regression: nginx's `$host` dropped it and every login got 403).
fn the_cases(front: &Front, backend: &Backend) {
    let host = format!("app.test:{}", front.addr.port());
    let origin = format!("http://{host}");
    let at = |target: &str| Req::new(front.addr, "GET", target).host(&host);

    // A public page: allowed; a spoofed identity never reaches the backend.
    let public = at("/public/x")
        .header("X-User", "admin")
        .header("X-User-Roles", "admin")
        .send();
    assert_eq!(public.status, 200, "{public:#?}");
    let seen = backend.last();
    assert_eq!(seen.path(), "/public/x");
    // Absent (nginx), or empty (Caddy: see proxy/forward_auth.rs), never the client's.
    for name in ["x-user", "x-user-roles"] {
        let values = seen.all(name);
        assert!(values.iter().all(|v| v.is_empty()), "{name}: {seen:?}");
    }

    // A protected page: a browser is sent to the login page, an API client gets 401.
    let before = backend.count();
    let nav = at("/private?a=1&b=2").browser().send();
    assert_eq!(nav.status, 302, "{nav:#?}");
    assert_eq!(
        nav.header("location"),
        Some("/.sessiongate/login?next=/private%3Fa%3D1%26b%3D2"),
        "{nav:#?}"
    );
    assert_eq!(at("/private").api().send().status, 401);
    assert_eq!(
        backend.count(),
        before,
        "denied requests never reach the backend"
    );

    // The login page and the login itself, through the front proxy.
    let page = at("/.sessiongate/login?next=%2Fprivate").browser().send();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form"), "{page:#?}");
    let form = form(&[
        ("username", "alice"),
        ("password", "alice-password"),
        ("next", "/private"),
    ]);
    // A form from another port of the same host is another origin.
    let cross = Req::new(front.addr, "POST", "/.sessiongate/login")
        .host(&host)
        .header("Origin", "http://app.test:1")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&form)
        .send();
    assert_eq!(cross.status, 403, "{cross:#?}");
    let login = Req::new(front.addr, "POST", "/.sessiongate/login")
        .host(&host)
        .header("Origin", &origin)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&form)
        .send();
    assert_eq!(login.status, 303, "{login:#?}");
    assert_eq!(login.header("location"), Some("/private"));
    let alice = login.session_cookie().expect("a session cookie");

    // Logged in: the backend gets sessiongate's identity, not the client's.
    let private = at("/private")
        .cookie(&alice)
        .header("X-User", "mallory")
        .send();
    assert_eq!(private.status, 200, "{private:#?}");
    let seen = backend.last();
    assert_eq!(seen.one("x-user"), Some("alice"), "{seen:?}");
    assert_eq!(seen.one("x-user-roles"), Some("user"));

    // A route that needs a role alice lacks: 403, and the backend never sees it.
    let before = backend.count();
    assert_eq!(at("/admin").cookie(&alice).send().status, 403);
    // Traversal: decided on the normalised path (/admin), not on "/public".
    for target in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public//../admin",
    ] {
        let r = at(target).cookie(&alice).send();
        assert!(r.status == 403 || r.status == 400, "{target}: {}", r.status);
        let anonymous = at(target).api().send();
        assert!(
            anonymous.status == 401 || anonymous.status == 400,
            "{target} anonymous: {}",
            anonymous.status
        );
    }
    assert_eq!(backend.count(), before, "{:?}", backend.last());

    // Logout through the front proxy ends the session.
    let out = Req::new(front.addr, "POST", "/.sessiongate/logout")
        .host(&host)
        .header("Origin", &origin)
        .cookie(&alice)
        .send();
    assert_eq!(out.status, 303, "{out:#?}");
    assert_eq!(at("/private").api().cookie(&alice).send().status, 401);
}

#[test]
fn nginx_auth_request_applies_the_rules() {
    let backend = Backend::app();
    let gate = gate(&backend);
    let front = nginx(&gate, backend.addr);
    the_cases(&front, &backend);
}

#[test]
fn caddy_forward_auth_applies_the_rules() {
    let backend = Backend::app();
    let gate = gate(&backend);
    let front = caddy(&gate, backend.addr);
    the_cases(&front, &backend);
}

#[test]
fn only_a_trusted_peer_may_name_the_original_request() {
    let backend = Backend::app();
    let gate = gate(&backend);
    // From 127.0.0.2, which is not in trusted_proxies: a deny, even for a
    // public original, and the headers are not believed.
    for (endpoint, method, uri) in [
        (
            "/.sessiongate/auth/nginx",
            "X-Original-Method",
            "X-Original-URI",
        ),
        (
            "/.sessiongate/auth/forward",
            "X-Forwarded-Method",
            "X-Forwarded-Uri",
        ),
    ] {
        let raw = format!(
            "GET {endpoint} HTTP/1.1\r\nHost: app.test\r\n{method}: GET\r\n{uri}: /public\r\nConnection: close\r\n\r\n"
        );
        let mut stream = bind_from("127.0.0.2", gate.addr);
        use std::io::Write;
        stream.write_all(raw.as_bytes()).unwrap();
        let resp = read_response(&mut stream, &raw);
        assert_eq!(resp.status, 403, "{endpoint}: {resp:#?}");
        assert_eq!(resp.header("x-user"), None);
        // The same from the trusted peer is decided: /public is allowed.
        let trusted = Req::new(gate.addr, "GET", endpoint)
            .header(method, "GET")
            .header(uri, "/public")
            .send();
        assert_eq!(trusted.status, 200, "{endpoint}: {trusted:#?}");
        // A trusted peer without the headers gets a deny, not a decision on
        // the auth request's own path.
        let bare = Req::new(gate.addr, "GET", endpoint).send();
        assert_eq!(bare.status, 403, "{endpoint}: {bare:#?}");
    }
    assert!(gate
        .output()
        .contains("forward-auth request from a peer not in server.trusted_proxies"));
}

/// Forward-auth decides on the session only: a route that does not take
/// sessions (`credentials = ["basic"]`) is decided as for no identity, even
/// for a logged-in browser.
#[test]
fn forward_auth_honours_a_routes_credentials() {
    let backend = Backend::app();
    let config = format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        standard_config(
            backend.addr,
            "\n[auth]\nusers_file = \"users.toml\"\n\n[[route]]\npath = \"/scripts\"\ncredentials = [\"basic\"]\n"
        )
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users_file(USERS))],
        &[("TEST_SECRET", SECRET)],
    );
    let cookie = gate.login("alice", "user");
    let check = |uri: &str| {
        Req::new(gate.addr, "GET", "/.sessiongate/auth/nginx")
            .header("X-Original-Method", "GET")
            .header("X-Original-URI", uri)
            .cookie(&cookie)
            .send()
    };
    let allowed = check("/private");
    assert_eq!(allowed.status, 200, "{allowed:#?}");
    assert_eq!(allowed.header("x-user"), Some("alice"));
    let refused = check("/scripts/run");
    assert_eq!(refused.status, 401, "{refused:#?}");
    assert_eq!(refused.header("x-user"), None);
}

/// A script's credential works behind a front proxy as it does here: the
/// original request's Basic (or bearer token, or API key: the same code)
/// where its route takes it, with the same refusals in each convention.
#[test]
fn forward_auth_takes_a_scripts_credential_where_its_route_does() {
    use base64::Engine;
    let backend = Backend::app();
    let config = format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        standard_config(
            backend.addr,
            "\n[auth]\nusers_file = \"users.toml\"\nip_max_failures = 2\n\n[[route]]\npath = \"/scripts\"\ncredentials = [\"basic\"]\n"
        )
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users_file(USERS))],
        &[("TEST_SECRET", SECRET)],
    );
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let check = |endpoint: &str, uri: &str, authorization: &str| {
        Req::new(gate.addr, "GET", endpoint)
            .header("X-Original-Method", "GET")
            .header("X-Original-URI", uri)
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", uri)
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "app.test")
            .header("Authorization", authorization)
            .send()
    };
    let right = basic("alice:alice-password");
    for endpoint in ["/.sessiongate/auth/nginx", "/.sessiongate/auth/forward"] {
        let allowed = check(endpoint, "/scripts/run", &right);
        assert_eq!(allowed.status, 200, "{endpoint}: {allowed:#?}");
        assert_eq!(allowed.header("x-user"), Some("alice"), "{endpoint}");
        // Not where the route takes only sessions.
        let elsewhere = check(endpoint, "/private", &right);
        assert_ne!(elsewhere.status, 200, "{endpoint}: {elsewhere:#?}");
        assert_eq!(elsewhere.header("x-user"), None, "{endpoint}");
    }
    // A wrong password: 401 with the challenge, then throttled. nginx's
    // auth_request knows only 401 and 403: 403 there; 429 elsewhere.
    let wrong = basic("alice:guess");
    let refused = check("/.sessiongate/auth/forward", "/scripts/run", &wrong);
    assert_eq!(refused.status, 401, "{refused:#?}");
    assert!(refused
        .header("www-authenticate")
        .is_some_and(|c| c.starts_with("Basic")));
    let _ = check("/.sessiongate/auth/forward", "/scripts/run", &wrong);
    let throttled = check("/.sessiongate/auth/forward", "/scripts/run", &wrong);
    assert_eq!(throttled.status, 429, "{throttled:#?}");
    let throttled = check("/.sessiongate/auth/nginx", "/scripts/run", &wrong);
    assert_eq!(throttled.status, 403, "{throttled:#?}");
}

/// A TCP connection to `to` from the loopback address `from`.
fn bind_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Two hosts behind one front proxy: `app.test` keeps `/public` public,
/// `ops.test` is for admins only, whatever the path; a third host no rule
/// names is refused (421 from Caddy; nginx knows only 401 and 403).
const TWO_HOSTS: &str = r#"
[[route]]
path = "/public"
hosts = ["app.test"]
access = "public"

[[route]]
path = "/"
hosts = ["app.test"]

[[route]]
path = "/"
hosts = ["ops.test"]
roles = ["admin"]
"#;

fn two_hosts(front: &Front, backend: &Backend, misdirected: u16) {
    let at = |host: &str, target: &str| {
        Req::new(front.addr, "GET", target)
            .host(&format!("{host}:{}", front.addr.port()))
            .api()
            .send()
    };
    assert_eq!(at("app.test", "/public/x").status, 200);
    assert_eq!(backend.last().path(), "/public/x");
    let before = backend.count();
    assert_eq!(
        at("ops.test", "/public/x").status,
        401,
        "ops.test's own rule"
    );
    assert_eq!(at("OPS.Test.", "/public/x").status, 401, "in any spelling");
    assert_eq!(at("other.test", "/public/x").status, misdirected);
    assert_eq!(backend.count(), before, "none of them reached the backend");
}

#[test]
fn a_second_host_gets_its_own_rules_behind_nginx() {
    let backend = Backend::app();
    let gate = gate_with(&backend, TWO_HOSTS);
    let front = nginx(&gate, backend.addr);
    two_hosts(&front, &backend, 403);
}

#[test]
fn a_second_host_gets_its_own_rules_behind_caddy() {
    let backend = Backend::app();
    let gate = gate_with(&backend, TWO_HOSTS);
    let front = caddy(&gate, backend.addr);
    two_hosts(&front, &backend, 421);
}
