//! The express-session options through the real binary: save_uninitialized,
//! rolling, max_age, cookie attributes, secure = "auto", secret rotation.

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn save_uninitialized_false_anonymous_browsing_sets_no_cookie() {
    let backend = Backend::app();
    let gate = with_session(&backend, "");
    for path in ["/public/a", "/public/b", "/private", "/.sessiongate/me"] {
        let resp = gate.get(path).send();
        assert!(resp.all("set-cookie").is_empty(), "{path}: {resp:#?}");
    }
}

#[test]
fn save_uninitialized_true_gives_each_new_visitor_one_stored_session() {
    let backend = Backend::app();
    let gate = with_session(&backend, "save_uninitialized = true");
    let first = gate.get("/public/a").send();
    let cookie = first.session_cookie().expect("a new visitor gets a cookie");
    assert_eq!(first.header("cache-control"), Some("no-store"));
    // The session is stored: sending it back gets no new cookie (rolling is off).
    let again = gate.get("/public/b").cookie(&cookie).send();
    assert!(again.all("set-cookie").is_empty(), "{again:#?}");
    // Another visitor gets another session; a denied request gets one too.
    let other = gate.get("/private").api().send();
    assert_eq!(other.status, 401);
    assert_ne!(
        other.session_cookie().expect("cookie on the 401 too"),
        cookie
    );
    // Anonymous sessions never authenticate.
    assert_eq!(
        gate.get("/private").api().cookie(&cookie).send().status,
        401
    );
}

#[test]
fn rolling_true_resends_the_cookie_on_every_response() {
    let backend = Backend::app();
    let gate = with_session(
        &backend,
        "rolling = true\n[session.cookie]\nmax_age = \"10m\"",
    );
    let cookie = gate.login("alice", "");
    for path in ["/private", "/public/x", "/.sessiongate/me"] {
        let resp = gate.get(path).cookie(&cookie).send();
        assert_eq!(
            resp.session_cookie().as_deref(),
            Some(cookie.as_str()),
            "{path}: {resp:#?}"
        );
        let set = resp.header("set-cookie").unwrap();
        assert!(set.contains("; Max-Age=600; Expires="), "{set}");
    }
    // No live session, nothing to roll.
    assert!(gate.get("/public/x").send().all("set-cookie").is_empty());
}

#[test]
fn rolling_false_sends_the_cookie_only_when_created_or_modified() {
    let backend = Backend::app();
    let gate = with_session(&backend, "rolling = false");
    let cookie = gate.login("alice", "");
    for path in ["/private", "/public/x", "/.sessiongate/me"] {
        let resp = gate.get(path).cookie(&cookie).send();
        assert!(resp.all("set-cookie").is_empty(), "{path}: {resp:#?}");
    }
    let modified = gate
        .get("/_test/data?json=%7B%22k%22%3A1%7D")
        .cookie(&cookie)
        .send();
    assert_eq!(modified.session_cookie().as_deref(), Some(cookie.as_str()));
}

#[test]
fn max_age_sets_cookie_lifetime_and_server_idle_expiry_together() {
    let backend = Backend::app();
    let gate = with_session(&backend, "[session.cookie]\nmax_age = \"2s\"");
    let resp = gate.get("/_test/login?user=alice&roles=").send();
    let set = resp.header("set-cookie").unwrap();
    assert!(set.contains("; Max-Age=2; Expires="), "{set}");
    let cookie = resp.session_cookie().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2300));
    assert_eq!(
        gate.get("/private").api().cookie(&cookie).send().status,
        401,
        "server expiry follows max_age"
    );
}

#[test]
fn without_max_age_the_cookie_is_a_browser_session_cookie() {
    let backend = Backend::app();
    let gate = with_session(&backend, "");
    let resp = gate.get("/_test/login?user=alice&roles=").send();
    let set = resp.header("set-cookie").unwrap();
    assert!(
        !set.contains("Max-Age") && !set.contains("Expires"),
        "{set}"
    );
}

#[test]
fn cookie_attributes_follow_the_config() {
    let backend = Backend::app();
    let gate = with_session(
        &backend,
        "[session.cookie]\nname = \"app_sid\"\npath = \"/\"\ndomain = \"app.test\"\nhttp_only = false\nsecure = false\nsame_site = \"strict\"",
    );
    let resp = gate.get("/_test/login?user=alice&roles=").send();
    let set = resp.header("set-cookie").unwrap();
    assert!(set.starts_with("app_sid="), "{set}");
    // The cookie crate's order: HttpOnly, SameSite, Secure, Path, Domain.
    assert!(
        set.ends_with("; SameSite=Strict; Path=/; Domain=app.test") && !set.contains("HttpOnly"),
        "{set}"
    );
}

#[test]
fn secure_auto_follows_https_from_a_trusted_proxy_only() {
    let backend = Backend::app();
    let keys = "[session.cookie]\nname = \"sid\"\nsecure = \"auto\"";
    // trusted_proxies belongs to [server], which the harness opens just before.
    let config = |trust: bool| {
        let mut c = with_keys(standard_config(backend.addr, ""), keys);
        if trust {
            c = format!("trusted_proxies = [\"127.0.0.1/32\"]\n{c}");
        }
        c
    };
    for (trust, proto, secure) in [
        (true, "https", true),
        (true, "http", false),
        (false, "https", false),
    ] {
        let gate = Gate::start(&config(trust));
        let resp = gate
            .get("/_test/login?user=alice&roles=")
            .header("X-Forwarded-Proto", proto)
            .send();
        let set = resp
            .all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("sid="))
            .unwrap()
            .to_owned();
        assert_eq!(
            set.contains("; Secure"),
            secure,
            "trusted={trust} proto={proto}: {set}"
        );
        assert_eq!(
            backend.last().one("x-forwarded-proto"),
            Some(if secure { "https" } else { "http" })
        );
    }
}

#[test]
fn trusted_proxy_extends_x_forwarded_for_others_are_replaced() {
    let backend = Backend::app();
    let trusted = Gate::start(&format!(
        "trusted_proxies = [\"127.0.0.1\"]\n{}",
        standard_config(backend.addr, "")
    ));
    trusted
        .get("/public/x")
        .header("X-Forwarded-For", "203.0.113.9")
        .send();
    assert_eq!(
        backend.last().one("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    let untrusted = Gate::start(&standard_config(backend.addr, ""));
    untrusted
        .get("/public/x")
        .header("X-Forwarded-For", "203.0.113.9")
        .send();
    assert_eq!(backend.last().one("x-forwarded-for"), Some("127.0.0.1"));
}

#[test]
fn cookie_signed_with_an_older_secret_is_accepted_and_resigned_with_the_first() {
    let backend = Backend::app();
    let old = "the-previous-secret-0123456789abcdef0123456789";
    let config = standard_config(backend.addr, "").replace(
        "secrets = [{ env = \"TEST_SECRET\" }]",
        "secrets = [{ env = \"TEST_SECRET\" }, { env = \"OLD_SECRET\" }]",
    );
    let gate = Gate::start_with(
        &config,
        &[],
        &[("TEST_SECRET", SECRET), ("OLD_SECRET", old)],
    );
    let current = gate.login("alice", "");
    // The same id, signed with the old secret, as a browser from before the rotation holds it.
    let (name, value) = current.split_once('=').unwrap();
    let id = &value[..64];
    let sign = |secret: &str| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{name}={id}").as_bytes());
        format!("{name}={id}.{}", hex::encode(mac.finalize().into_bytes()))
    };
    assert_eq!(sign(SECRET), current, "the harness signs like the proxy");
    let legacy = sign(old);
    let resp = gate.get("/private").cookie(&legacy).send();
    assert_eq!(
        resp.status, 200,
        "an older secret still verifies: {resp:#?}"
    );
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(
        resp.session_cookie().as_deref(),
        Some(current.as_str()),
        "re-signed with the first secret"
    );
    // A cookie under the current secret is not re-sent (rolling is off).
    assert!(gate
        .get("/private")
        .cookie(&current)
        .send()
        .all("set-cookie")
        .is_empty());
}

/// Full session writes caused by five requests with `cookie`. A resave is
/// written in the logging phase, after the response, so the count is polled
/// until it reaches `expected` (or 5 s pass) before it is returned.
fn writes_during_five_requests(gate: &Gate, cookie: &str, expected: u64) -> u64 {
    let writes = || gate.stats()["store_writes"].as_u64().unwrap();
    let before = writes();
    for _ in 0..5 {
        assert_eq!(gate.get("/private").cookie(cookie).send().status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = writes() - before;
        if done >= expected || Instant::now() >= deadline {
            return done;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn resave_false_only_touches_an_unchanged_session() {
    let backend = Backend::app();
    let gate = with_session(&backend, "resave = false");
    let cookie = gate.login("alice", "");
    assert_eq!(
        writes_during_five_requests(&gate, &cookie, 0),
        0,
        "no writes, only touches"
    );
}

#[test]
fn resave_true_writes_the_session_back_on_every_request() {
    let backend = Backend::app();
    let gate = with_session(&backend, "resave = true");
    let cookie = gate.login("alice", "");
    assert_eq!(writes_during_five_requests(&gate, &cookie, 5), 5);
}

#[test]
fn save_uninitialized_decides_whether_anonymous_visitors_are_stored() {
    let backend = Backend::app();
    let off = with_session(&backend, "save_uninitialized = false");
    let on = with_session(&backend, "save_uninitialized = true");
    for _ in 0..3 {
        off.get("/public/a").send();
        on.get("/public/a").send();
    }
    assert_eq!(
        off.stats()["sessions"]["live"],
        0,
        "anonymous visitors cost nothing"
    );
    assert_eq!(
        on.stats()["sessions"]["live"],
        3,
        "one stored session per new visitor"
    );
}
