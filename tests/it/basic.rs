//! HTTP Basic on the routes that take it, through the binary: the identity
//! it proves reaches the upstream as a session's would; a wrong, malformed or
//! throttled one is refused with the challenge and never redirected; a
//! credential a route does not take is ignored; a change in the users file
//! applies at once however recently a password was verified.

use std::time::Duration;

use base64::Engine;

use crate::support::*;

/// `/api` takes Basic only, `/both` Basic and sessions; the rest as
/// [`standard_config`] (sessions only).
fn config(backend: &Backend, auth: &str) -> String {
    standard_config(
        backend.addr,
        &format!(
            "\n[auth]\nusers_file = \"users.toml\"\n{auth}\n\n\
             [[route]]\npath = \"/api\"\ncredentials = [\"basic\"]\n\n\
             [[route]]\npath = \"/both\"\ncredentials = [\"session\", \"basic\"]\n"
        ),
    )
}

fn start(backend: &Backend, users: &str, auth: &str) -> Gate {
    Gate::start_with(
        &config(backend, auth),
        &[("users.toml", users)],
        &[("TEST_SECRET", SECRET)],
    )
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

const CHALLENGE: &str = "Basic realm=\"sessiongate\", charset=\"UTF-8\"";

#[test]
fn basic_identifies_the_user_and_the_upstream_never_sees_the_password() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "staff,dev", false)]);
    let gate = start(&backend, &users, "");
    for _ in 0..2 {
        // The second is answered from the remembered verification.
        let resp = gate
            .get("/api/items")
            .header("Authorization", &basic("alice", "alice-password-1"))
            .header("X-User", "mallory")
            .send();
        assert_eq!(resp.status, 200, "{}", resp.body);
        let seen = backend.last();
        assert_eq!(seen.one("x-user"), Some("alice"));
        assert_eq!(seen.one("x-user-roles"), Some("staff,dev"));
        assert_eq!(seen.one("authorization"), None, "a credential for us only");
    }
    assert_eq!(backend.count(), 2);
    // The access line names the credential.
    wait_for(Duration::from_secs(3), "the access lines", || {
        gate.output().matches("path=\"/api/items\"").count() == 2
    });
    let out = gate.output();
    let line = out.lines().find(|l| l.contains("/api/items")).unwrap();
    assert!(line.contains("credential=\"basic\""), "{line}");
    assert!(
        line.contains("user=\"alice\""),
        "the credential's user: {line}"
    );
    assert!(
        !out.contains("alice-password-1"),
        "the password reached the log"
    );
}

#[test]
fn a_refused_basic_is_a_401_challenge_never_a_redirect() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "");
    let cases = [
        ("wrong password", Some(basic("alice", "not-her-password"))),
        ("unknown user", Some(basic("bob", "alice-password-1"))),
        ("not base64", Some("Basic !!!".to_owned())),
        ("no colon", Some("Basic YWxpY2U=".to_owned())),
        ("no credential", None),
    ];
    for (what, authorization) in cases {
        let mut req = gate.get("/api/items").browser();
        if let Some(a) = &authorization {
            req = req.header("Authorization", a);
        }
        let resp = req.send();
        assert_eq!(resp.status, 401, "{what}: {}", resp.body);
        assert_eq!(resp.header("www-authenticate"), Some(CHALLENGE), "{what}");
        assert_eq!(resp.header("location"), None, "{what}");
        assert_eq!(resp.json()["error"], "unauthenticated", "{what}");
    }
    assert_eq!(backend.count(), 0);
}

#[test]
fn each_route_takes_only_its_credentials() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "");
    let good = basic("alice", "alice-password-1");
    let cookie = gate.login("carol", "user");
    let before = backend.count();

    // A session route ignores Basic: no identity, and no login redirect
    // for a request that carries Authorization, even a navigation.
    let resp = gate
        .get("/private")
        .browser()
        .header("Authorization", &good)
        .send();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.header("www-authenticate"), None, "it takes no Basic");

    // A Basic-only route ignores the session: 401 with the challenge, and
    // no login redirect (the login page could not help).
    let resp = gate.get("/api/x").browser().cookie(&cookie).send();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("www-authenticate"), Some(CHALLENGE));
    assert_eq!(resp.header("location"), None);
    assert_eq!(backend.count(), before, "neither reached the upstream");

    // A route that takes both takes either.
    assert_eq!(gate.get("/both").cookie(&cookie).send().status, 200);
    assert_eq!(backend.last().one("x-user"), Some("carol"));
    let resp = gate.get("/both").header("Authorization", &good).send();
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // Both at once: the Authorization header is the client's explicit choice.
    let resp = gate
        .get("/both")
        .cookie(&cookie)
        .header("Authorization", &good)
        .send();
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // A wrong Basic is refused even with a good session beside it.
    let resp = gate
        .get("/both")
        .cookie(&cookie)
        .header("Authorization", &basic("alice", "wrong-password"))
        .send();
    assert_eq!(resp.status, 401);
}

#[test]
fn a_disabled_user_or_a_new_password_applies_at_once() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "");
    let old = basic("alice", "alice-password-1");
    assert_eq!(
        gate.get("/api").header("Authorization", &old).send().status,
        200
    );

    let reload = |users: String| {
        let generation = gate.stats()["config"]["generation"].as_u64().unwrap();
        let path = gate.dir().join("users.toml");
        std::fs::write(gate.dir().join("users.toml.new"), users).unwrap();
        std::fs::rename(gate.dir().join("users.toml.new"), path).unwrap();
        wait_for(Duration::from_secs(10), "the reload", || {
            gate.stats()["config"]["generation"].as_u64() == Some(generation + 1)
        });
    };
    reload(users_file(&[("alice", "alice-password-1", "", true)]));
    let resp = gate.get("/api").header("Authorization", &old).send();
    assert_eq!(resp.status, 401, "disabled: refused at once");

    reload(users_file(&[("alice", "alice-password-2", "", false)]));
    let resp = gate.get("/api").header("Authorization", &old).send();
    assert_eq!(resp.status, 401, "the old password: refused at once");
    let new = basic("alice", "alice-password-2");
    assert_eq!(
        gate.get("/api").header("Authorization", &new).send().status,
        200
    );
}

/// A client with many connections sends its password on all of them at once
/// (at start, and each time the remembered verification expires): one check
/// answers them all. Checked each apart, every one in flight held a throttle
/// slot, and the ones past `max_failures` were refused 429 with the right
/// password (bench/run.sh --credentials: 19,505 refusals in one run).
#[test]
fn parallel_requests_with_one_password_share_one_check() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "max_failures = 2");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    gate.get("/api")
                        .header("Authorization", &basic("alice", "alice-password-1"))
                        .send()
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn basic_failures_are_throttled_like_the_login_form() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "max_failures = 2");
    // Remembered from here on.
    let ok = gate
        .get("/api")
        .header("Authorization", &basic("alice", "alice-password-1"))
        .send();
    assert_eq!(ok.status, 200);
    for _ in 0..2 {
        let resp = gate
            .get("/api")
            .header("Authorization", &basic("alice", "guess"))
            .send();
        assert_eq!(resp.status, 401);
    }
    // Locked: even the right (remembered) password waits, else a locked
    // account would still answer guesses; and the form shares the lock.
    let resp = gate
        .get("/api")
        .header("Authorization", &basic("alice", "alice-password-1"))
        .send();
    assert_eq!(resp.status, 429, "{}", resp.body);
    assert!(resp.header("retry-after").is_some());
    let resp = gate.login_form("alice", "alice-password-1", "/");
    assert_eq!(resp.status, 429);
    assert_eq!(backend.count(), 1, "only the first");
}

#[test]
fn authorization_reaches_only_an_upstream_that_asks_for_it() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    gate.get("/public/x")
        .header("Authorization", "Bearer the-apps-own-token")
        .send();
    assert_eq!(backend.last().one("authorization"), None);

    let gate = Gate::start(&standard_config(backend.addr, "").replace(
        "session_commands = true",
        "session_commands = true\npass_authorization = true",
    ));
    gate.get("/public/x")
        .header("Authorization", "Bearer the-apps-own-token")
        .send();
    assert_eq!(
        backend.last().one("authorization"),
        Some("Bearer the-apps-own-token")
    );
}

#[test]
fn a_cross_origin_write_never_rides_on_basic() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let gate = start(&backend, &users, "");
    let good = basic("alice", "alice-password-1");
    // A browser remembers Basic for the site and sends it from any page.
    let forged = gate
        .req("POST", "/api/transfer")
        .header("Authorization", &good)
        .header("Origin", "http://evil.example")
        .send();
    assert_eq!(forged.status, 403, "{}", forged.body);
    let forged = gate
        .req("POST", "/api/transfer")
        .header("Authorization", &good)
        .header("Sec-Fetch-Site", "cross-site")
        .send();
    assert_eq!(forged.status, 403);
    assert_eq!(backend.count(), 0);
    // A script (no Origin), and a page of the same origin, may write.
    let script = gate
        .req("POST", "/api/transfer")
        .header("Authorization", &good)
        .send();
    assert_eq!(script.status, 200);
    let same = gate
        .req("POST", "/api/transfer")
        .header("Authorization", &good)
        .header("Origin", "http://app.test")
        .send();
    assert_eq!(same.status, 200);
    // Reads are taken from anywhere, as a SameSite=Lax cookie is.
    let read = gate
        .get("/api/x")
        .header("Authorization", &good)
        .header("Sec-Fetch-Site", "cross-site")
        .send();
    assert_eq!(read.status, 200);
}
