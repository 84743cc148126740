//! Identity headers through the real binary: the backend sees exactly the
//! identity the proxy vouches for, whatever a client sends.

use crate::support::*;

#[test]
fn valid_session_backend_sees_exactly_one_x_user() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "user,ops");
    let resp = gate.get("/private").cookie(&cookie).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let seen = backend.last();
    assert_eq!(seen.all("x-user"), vec!["alice"], "{seen:#?}");
    assert_eq!(seen.all("x-user-roles"), vec!["user,ops"], "{seen:#?}");
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.one("x-forwarded-host"), Some("app.test"));
}

#[test]
fn client_x_user_is_stripped_in_every_spelling() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "user");
    let spoofs: [&[(&str, &str)]; 6] = [
        &[("X-User", "root")],
        &[("x-user", "root")],
        &[("X_User", "root")],
        &[("X-USER", "root"), ("x_user_roles", "admin")],
        &[
            ("X-User-Roles", "admin"),
            ("X-Session-Data", r#"{"admin":true}"#),
            ("X_Session_Login", "root"),
        ],
        &[
            ("Forwarded", "for=1.2.3.4"),
            ("X-Forwarded-User", "root"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Original-URL", "/admin"),
            ("X-HTTP-Method-Override", "evil-DELETE"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X_Forwarded_Host", "evil"),
        ],
    ];
    for spoof in spoofs {
        for cookie in [Some(cookie.as_str()), None] {
            let path = if cookie.is_some() {
                "/private"
            } else {
                "/public/x"
            };
            let mut req = gate.get(path);
            for (k, v) in spoof {
                req = req.header(k, v);
            }
            if let Some(c) = cookie {
                req = req.cookie(c);
            }
            let resp = req.send();
            assert_eq!(resp.status, 200, "{resp:#?}");
            let seen = backend.last();
            let spoofed: Vec<_> = seen
                .headers
                .iter()
                .filter(|(_, v)| {
                    v.contains("root")
                        || v.contains("admin")
                        || v.contains("1.2.3.4")
                        || v.contains("evil")
                })
                .collect();
            assert!(
                spoofed.is_empty(),
                "spoofed value reached the backend: {spoofed:?}\n{seen:#?}"
            );
            assert_eq!(
                seen.all("x-user"),
                if cookie.is_some() {
                    vec!["alice"]
                } else {
                    vec![]
                },
                "{seen:#?}"
            );
            assert!(
                seen.headers
                    .iter()
                    .all(|(k, _)| !k.eq_ignore_ascii_case("x_user")),
                "{seen:#?}"
            );
        }
    }
}

#[test]
fn connection_header_cannot_remove_proxy_set_identity() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "user");
    for conn in ["close, X-User", "close, x-user, X-User-Roles", "X-User"] {
        let resp = gate
            .get("/private")
            .cookie(&cookie)
            .header("X-User", "root")
            .header("Connection", conn)
            .no_close()
            .send();
        assert_eq!(resp.status, 200, "{conn}: {resp:#?}");
        let seen = backend.last();
        assert_eq!(seen.all("x-user"), vec!["alice"], "{conn}: {seen:#?}");
        assert_eq!(seen.all("x-user-roles"), vec!["user"], "{conn}: {seen:#?}");
    }
}

#[test]
fn session_cookie_is_removed_upstream_other_cookies_pass() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let resp = gate
        .get("/private")
        .header("Cookie", &format!("theme=dark; {cookie}; lang=en"))
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().all("cookie"), vec!["theme=dark; lang=en"]);
    let resp = gate.get("/private").cookie(&cookie).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().all("cookie"), Vec::<&str>::new());
    let resp = gate.get("/public/x").header("Cookie", "a=1;b=2").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(
        backend.last().all("cookie"),
        vec!["a=1;b=2"],
        "untouched when ours is absent"
    );
}

#[test]
fn configured_identity_header_names_are_set_and_stripped_in_every_spelling() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(
        backend.addr,
        "\n[identity]\nuser_header = \"Remote-User\"\nroles_header = \"X-WEBAUTH-ROLES\"\n",
    ));
    let alice = gate.login("alice", "user,admin");
    let resp = gate
        .get("/private")
        .cookie(&alice)
        .header("Remote-User", "mallory")
        .header("remote_user", "mallory")
        .header("REMOTE-USER", "mallory")
        .header("X-Webauth-Roles", "admin")
        .header("X-User", "mallory")
        .send();
    assert_eq!(resp.status, 200);
    let seen = backend.last();
    assert_eq!(seen.all("remote-user"), vec!["alice"], "{seen:?}");
    assert_eq!(seen.all("remote_user"), Vec::<&str>::new());
    assert_eq!(seen.all("x-webauth-roles"), vec!["user,admin"]);
    // The default names are still never believed from a client.
    assert_eq!(seen.all("x-user"), Vec::<&str>::new());
    // Anonymous on a public route: none of them.
    gate.get("/public/x")
        .header("Remote-User", "mallory")
        .send();
    assert_eq!(backend.last().all("remote-user"), Vec::<&str>::new());
    // /check answers with the configured names.
    let check = gate.get("/.sessiongate/check").cookie(&alice).send();
    assert_eq!(check.status, 204);
    assert_eq!(check.header("remote-user"), Some("alice"));
}
