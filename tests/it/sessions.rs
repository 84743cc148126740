//! Cookies and sessions through the real binary: what counts as a live session,
//! and the session commands a backend may issue.

use crate::support::*;
use std::time::{Duration, Instant};

fn private_status(gate: &Gate, cookie: &str) -> u16 {
    gate.get("/private").api().cookie(cookie).send().status
}

#[test]
fn tampered_and_unknown_cookies_are_anonymous() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    assert_eq!(private_status(&gate, &cookie), 200);
    let (name, value) = cookie.split_once('=').unwrap();
    let flip = |i: usize| {
        let mut b = value.as_bytes().to_vec();
        b[i] = if b[i] == b'a' { b'b' } else { b'a' };
        format!("{name}={}", String::from_utf8(b).unwrap())
    };
    let unknown_but_signed = {
        // A well-formed cookie for an id the store never issued: sign it like the proxy.
        use hmac::Mac;
        let id = "ab".repeat(32);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{name}={id}").as_bytes());
        format!("{name}={id}.{}", hex::encode(mac.finalize().into_bytes()))
    };
    // The live session's own id, signed with the right secret but for another
    // cookie name, sent under ours: the name is part of the MAC, so it fails.
    let other_name = {
        use hmac::Mac;
        let id = &value[..64];
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("sid={id}").as_bytes());
        format!("{name}={id}.{}", hex::encode(mac.finalize().into_bytes()))
    };
    for bad in [
        flip(0),
        flip(value.len() - 1),
        format!("{name}="),
        format!("{name}={}", value.to_uppercase()),
        unknown_but_signed,
        other_name,
    ] {
        let resp = gate.get("/private").api().cookie(&bad).send();
        assert_eq!(resp.status, 401, "{bad}: {resp:#?}");
        assert!(resp.session_cookie().is_none());
    }
    assert!(
        gate.output().contains("possibly suspicious activity"),
        "a bad cookie is logged"
    );
    assert!(
        !gate.output().contains(value),
        "the cookie value never reaches the log"
    );
    assert_eq!(
        private_status(&gate, &cookie),
        200,
        "the real session is unharmed"
    );
}

#[test]
fn idle_expired_cookie_is_anonymous() {
    let backend = Backend::app();
    let gate = Gate::start(
        &standard_config(backend.addr, "").replace("[session]", "[session]\nidle_timeout = \"1s\""),
    );
    let cookie = gate.login("alice", "");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            private_status(&gate, &cookie),
            200,
            "used within the idle time"
        );
    }
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(private_status(&gate, &cookie), 401, "idle past the timeout");
}

#[test]
fn past_absolute_timeout_cookie_is_anonymous_even_when_used() {
    let backend = Backend::app();
    let config = standard_config(backend.addr, "").replace(
        "[session]",
        "[session]\nidle_timeout = \"1s\"\nabsolute_timeout = \"2s\"",
    );
    let gate = Gate::start(&config);
    let cookie = gate.login("alice", "");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1700) {
        assert_eq!(private_status(&gate, &cookie), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        private_status(&gate, &cookie),
        401,
        "past the absolute timeout"
    );
}

#[test]
fn backend_login_issues_a_new_session_and_commands_never_reach_the_client() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/_test/login?user=alice&roles=a,b").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(
        resp.headers
            .iter()
            .all(|(k, _)| !k.to_ascii_lowercase().starts_with("x-session")),
        "{resp:#?}"
    );
    let set = resp.all("set-cookie");
    assert_eq!(set.len(), 1, "{resp:#?}");
    assert!(
        set[0].ends_with("; HttpOnly; SameSite=Lax; Secure; Path=/"),
        "{}",
        set[0]
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let first = resp.session_cookie().unwrap();
    // Logging in again (with the old cookie) rotates the id and kills the old one.
    let resp = gate
        .get("/_test/login?user=bob&roles=")
        .cookie(&first)
        .send();
    let second = resp.session_cookie().expect("a new cookie at login");
    assert_ne!(first, second);
    assert_eq!(
        private_status(&gate, &first),
        401,
        "the pre-login session is destroyed"
    );
    assert_eq!(private_status(&gate, &second), 200);
    assert_eq!(backend.last().one("x-user"), Some("bob"));
}

#[test]
fn backend_data_creates_an_anonymous_session_and_reaches_later_requests() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/_test/data?json=%7B%22cart%22%3A1%7D").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let cookie = resp.session_cookie().expect("data starts a session");
    let resp = gate.get("/public/x").cookie(&cookie).send();
    assert_eq!(resp.status, 200);
    let seen = backend.last();
    assert_eq!(
        seen.one("x-session-data"),
        Some(r#"{"cart":1}"#),
        "{seen:#?}"
    );
    assert_eq!(seen.one("x-user"), None, "an anonymous session has no user");
    assert_eq!(
        private_status(&gate, &cookie),
        401,
        "data alone does not authenticate"
    );
    // Merging keeps earlier keys and the id (a modified session re-sends its cookie).
    let resp = gate
        .get("/_test/data?json=%7B%22theme%22%3A%22dark%22%7D")
        .cookie(&cookie)
        .send();
    assert_eq!(
        resp.session_cookie().as_deref(),
        Some(cookie.as_str()),
        "{resp:#?}"
    );
    gate.get("/public/y").cookie(&cookie).send();
    assert_eq!(
        backend.last().one("x-session-data"),
        Some(r#"{"cart":1,"theme":"dark"}"#)
    );
}

#[test]
fn backend_logout_destroys_the_session_and_clears_the_cookie() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let resp = gate.get("/_test/logout").cookie(&cookie).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(resp.header("x-session-logout").is_none());
    let clear = resp.all("set-cookie");
    assert_eq!(clear.len(), 1, "{resp:#?}");
    assert!(
        clear[0].starts_with("__Host-sid=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0;"),
        "{}",
        clear[0]
    );
    assert_eq!(
        private_status(&gate, &cookie),
        401,
        "the session is gone server-side"
    );
}

#[test]
fn backend_set_cookie_for_the_session_name_is_dropped() {
    let backend = Backend::start(|r| match r.path() {
        "/public/evil" => Reply::ok("x")
            .header("Set-Cookie", "__Host-sid=planted; Path=/")
            .header("Set-Cookie", "theme=dark"),
        _ => app_reply(r),
    });
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/public/evil").send();
    assert_eq!(resp.all("set-cookie"), vec!["theme=dark"], "{resp:#?}");
}

#[test]
fn upstream_without_opt_in_cannot_issue_session_commands() {
    let trusted = Backend::app();
    let other = Backend::start(|_| {
        Reply::ok("x")
            .header("X-Session-Login", "root")
            .header("X-Session-Roles", "admin")
    });
    let extra = format!(
        "[upstream.other]\naddrs = [\"{}\"]\nhealth_check_interval = \"1h\"\n[[route]]\npath = \"/other\"\naccess = \"public\"\nupstream = \"other\"\n[routes]\ndefault_upstream = \"app\"\n",
        other.addr
    );
    let gate = Gate::start(&standard_config(trusted.addr, &extra));
    let resp = gate.get("/other/x").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(resp.session_cookie().is_none(), "{resp:#?}");
    assert!(
        resp.headers
            .iter()
            .all(|(k, _)| !k.to_ascii_lowercase().starts_with("x-session")),
        "{resp:#?}"
    );
}

#[test]
fn session_data_reaches_only_upstreams_that_issue_session_commands() {
    let trusted = Backend::app();
    let other = Backend::app();
    let extra = format!(
        "[upstream.other]\naddrs = [\"{}\"]\nhealth_check_interval = \"1h\"\n[[route]]\npath = \"/other\"\naccess = \"public\"\nupstream = \"other\"\n[routes]\ndefault_upstream = \"app\"\n",
        other.addr
    );
    let gate = Gate::start(&standard_config(trusted.addr, &extra));
    let cookie = gate
        .get("/_test/data?json=%7B%22cart%22%3A1%7D")
        .send()
        .session_cookie()
        .unwrap();
    gate.get("/public/x").cookie(&cookie).send();
    assert_eq!(trusted.last().one("x-session-data"), Some(r#"{"cart":1}"#));
    gate.get("/other/x").cookie(&cookie).send();
    assert_eq!(
        other.last().one("x-session-data"),
        None,
        "{:#?}",
        other.last()
    );
}

#[test]
fn only_the_first_few_cookies_of_our_name_are_tried() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let junk = "__Host-sid=x; ".repeat(3);
    assert_eq!(
        gate.get("/private")
            .cookie(&format!("{junk}{cookie}"))
            .api()
            .send()
            .status,
        401,
        "the real one comes too late"
    );
    let two = "__Host-sid=x; ".repeat(2);
    assert_eq!(
        gate.get("/private")
            .cookie(&format!("{two}{cookie}"))
            .send()
            .status,
        200
    );
}

#[test]
fn session_data_is_bounded_in_total_not_only_per_command() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let chunk = |k: usize| format!("%7B%22k{k}%22%3A%22{}%22%7D", "x".repeat(3000));
    let cookie = gate
        .get(&format!("/_test/data?json={}", chunk(0)))
        .send()
        .session_cookie()
        .unwrap();
    for k in 1..5 {
        assert_eq!(
            gate.get(&format!("/_test/data?json={}", chunk(k)))
                .cookie(&cookie)
                .send()
                .status,
            200
        );
    }
    gate.get("/public/x").cookie(&cookie).send();
    let data = backend.last().one("x-session-data").unwrap().len();
    assert!(
        data <= 8 * 1024 && data > 6000,
        "kept what fits: {data} bytes"
    );
}

#[test]
fn one_account_logging_in_past_its_cap_ends_only_its_own_oldest_sessions() {
    // Guards against one account flushing everyone: with capacity 100 and no
    // per-user cap, 500 logins of one account evicted all ten other users.
    let backend = Backend::app();
    let gate = with_session(&backend, "capacity = 100\nmax_per_user = 3");
    let others: Vec<String> = (0..10)
        .map(|i| gate.login(&format!("user{i}"), ""))
        .collect();
    let burst: Vec<String> = (0..500).map(|_| gate.login("shared", "")).collect();
    // "Oldest" is by creation time in milliseconds: the last three logins
    // each start on a later millisecond than every one before them.
    let mut last = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(3));
        last.push(gate.login("shared", ""));
    }
    for (i, c) in others.iter().enumerate() {
        assert_eq!(private_status(&gate, c), 200, "user{i} was logged out");
    }
    for (i, c) in burst.iter().enumerate() {
        assert_eq!(private_status(&gate, c), 401, "burst login {i} still live");
    }
    for c in &last {
        assert_eq!(private_status(&gate, c), 200, "a newest session was ended");
    }
    let listed = gate.admin("GET", "/sessions?user=shared").send().json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(gate.stats()["displaced"], 500, "counted in /stats");
    let metrics = gate.admin("GET", "/metrics").send().body;
    assert!(
        metrics.contains("sessiongate_session_removals_total{cause=\"displaced\"} 500"),
        "{metrics}"
    );
}

#[test]
fn a_fresh_login_into_a_full_store_sticks() {
    let backend = Backend::app();
    let gate = with_session(&backend, "capacity = 5");
    let cookies: Vec<String> = (0..5).map(|i| gate.login(&format!("u{i}"), "")).collect();
    // u0 is the least recently used; the others are read often.
    for _ in 0..3 {
        for c in &cookies[1..] {
            assert_eq!(private_status(&gate, c), 200);
        }
    }
    let fresh = gate.login("newcomer", "");
    assert_eq!(private_status(&gate, &fresh), 200, "logged in, then 401");
    for c in &cookies[1..] {
        assert_eq!(
            private_status(&gate, c),
            200,
            "a recently used session went"
        );
    }
    if !redis_run() {
        assert_eq!(private_status(&gate, &cookies[0]), 401, "the LRU one goes");
        let st = gate.stats();
        assert_eq!(
            (st["evictions"].as_u64(), st["capacity"].as_u64()),
            (Some(1), Some(5)),
            "{st}"
        );
    }
}

#[test]
fn an_anonymous_flood_evicts_no_logged_in_user() {
    let backend = Backend::app();
    let gate = with_session(
        &backend,
        "capacity = 50\nanonymous_capacity = 20\nsave_uninitialized = true",
    );
    let users: Vec<String> = (0..50).map(|i| gate.login(&format!("u{i}"), "")).collect();
    // Well past both capacities: every cookie-less visitor gets a stored session.
    for i in 0..300 {
        let resp = gate.get("/public").send();
        assert!(resp.session_cookie().is_some(), "visitor {i}: {resp:#?}");
    }
    for (i, c) in users.iter().enumerate() {
        assert_eq!(
            private_status(&gate, c),
            200,
            "u{i} was evicted by anonymous visitors"
        );
    }
    if !redis_run() {
        let st = gate.stats();
        assert_eq!(st["sessions"]["authenticated"], 50, "{st}");
        assert_eq!(st["sessions"]["anonymous"], 20, "{st}");
        assert_eq!(st["evictions"], 280, "{st}");
    }
}

#[test]
fn a_backend_login_outside_the_identity_alphabet_is_refused() {
    // Guards against a list identity from a backend: `X-Session-Login: root, alice`.
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let long_role = format!("admin,%20{}", "o".repeat(300));
    for (user, roles) in [("root,%20alice", ""), ("alice", long_role.as_str())] {
        let resp = gate
            .get(&format!("/_test/login?user={user}&roles={roles}"))
            .send();
        assert_eq!(resp.status, 200, "{resp:#?}");
        assert!(resp.session_cookie().is_none(), "no session: {resp:#?}");
        assert!(resp.header("x-session-login").is_none(), "{resp:#?}");
    }
    assert!(
        gate.output().contains("X-Session-Login refused")
            && gate.output().contains("X-Session-Roles refused"),
        "refusals are logged:\n{}",
        gate.output()
    );
    assert!(
        !gate.output().contains("root, alice"),
        "the refused name is not logged"
    );
    assert_eq!(gate.stats()["sessions"]["live"], 0);
}
