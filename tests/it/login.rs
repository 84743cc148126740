//! The built-in login through the real binary: pages, form logins, failures of
//! one shape, throttling, CSRF refusal, logout, `/me`, users-file reloads.

use crate::support::*;
use std::time::{Duration, Instant};

const USERS: &[(&str, &str, &str, bool)] = &[
    ("alice", "alice-password", "user,admin", false),
    ("carol", "carol-password", "user", true),
];

fn login_config(backend: std::net::SocketAddr, auth: &str) -> String {
    standard_config(backend, "").replace(
        "[upstream.app]",
        &format!("[auth]\nusers_file = \"users.toml\"\n{auth}\n[upstream.app]"),
    )
}

fn start(backend: &Backend, auth: &str) -> Gate {
    Gate::start_with(
        &login_config(backend.addr, auth),
        &[("users.toml", &users_file(USERS))],
        &[("TEST_SECRET", SECRET)],
    )
}

#[test]
fn login_page_is_accessible_keeps_next_and_is_never_cached() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let resp = gate
        .get("/.sessiongate/login?next=%2Fprivate%2Fx%3Fa%3D1")
        .browser()
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(resp
        .header("content-security-policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));
    for want in [
        r#"<label for="username">"#,
        r#"<input id="username" name="username""#,
        r#"<label for="password">"#,
        r#"type="password""#,
        r#"<input type="hidden" name="next" value="/private/x?a=1">"#,
        r#"name="viewport""#,
    ] {
        assert!(resp.body.contains(want), "{want} missing:\n{}", resp.body);
    }
    assert!(!resp.body.contains("<script"), "works without JavaScript");
    assert_eq!(backend.count(), 0);
}

#[test]
fn successful_login_issues_a_new_session_and_redirects_to_next() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    // An anonymous session the browser already had (planted or not) ...
    let before = gate
        .get("/_test/data?json=%7B%22a%22%3A1%7D")
        .send()
        .session_cookie()
        .unwrap();
    let body = form(&[
        ("username", "alice"),
        ("password", "alice-password"),
        ("next", "/private/x?y=1"),
    ]);
    let resp = gate
        .req("POST", "/.sessiongate/login")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", "http://app.test")
        .cookie(&before)
        .body(&body)
        .send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(resp.header("location"), Some("/private/x?y=1"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let after = resp.session_cookie().expect("a session cookie");
    assert_ne!(after, before, "a new id at login");
    // ... is destroyed: no fixation.
    assert_eq!(
        gate.get("/private").api().cookie(&before).send().status,
        401
    );
    let resp = gate.get("/private").cookie(&after).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(backend.last().one("x-user-roles"), Some("user,admin"));
}

#[test]
fn unknown_user_wrong_password_and_disabled_user_fail_the_same_way() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let a = gate.login_form("alice", "wrong", "/app");
    let b = gate.login_form("nobody", "wrong", "/app");
    let c = gate.login_form("carol", "carol-password", "/app");
    for r in [&a, &b, &c] {
        assert_eq!(r.status, 401, "{r:#?}");
        assert!(r.all("set-cookie").is_empty(), "{r:#?}");
        assert!(r.body.contains("Invalid username or password."));
    }
    // The pages differ only in the user name typed, which is kept in the form.
    let typed = |r: &Resp, name: &str| {
        let field = format!(r#"name="username" value="{name}""#);
        assert!(r.body.contains(&field), "{}", r.body);
        r.body.replace(&field, r#"name="username" value="""#)
    };
    assert_eq!(typed(&a, "alice"), typed(&b, "nobody"));
    assert_eq!(typed(&a, "alice"), typed(&c, "carol"));
    let names = |r: &Resp| {
        r.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k != "date")
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(names(&a), names(&c));
}

#[test]
fn next_from_the_open_redirect_corpus_never_leaves_the_origin() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let corpus = include_str!("../data/openredirects.txt");
    let base = url::Url::parse(&format!("http://{}/.sessiongate/login", gate.addr)).unwrap();
    for line in corpus.lines() {
        let target = format!("/.sessiongate/login?{}", form(&[("next", line)]));
        let resp = gate.get(&target).send();
        assert_eq!(resp.status, 200, "{line:?}: {resp:#?}");
        let start =
            resp.body.find(r#"name="next" value=""#).unwrap() + r#"name="next" value=""#.len();
        let value = &resp.body[start..start + resp.body[start..].find('"').unwrap()];
        let value = value
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        let resolved = base.join(&value).unwrap();
        assert_eq!(resolved.origin(), base.origin(), "{line:?} -> {value:?}");
    }
    // The redirect after a real login, for a sample of payloads, including CR/LF.
    for (i, line) in [
        "//evil.test",
        "/\\evil.test",
        "https://evil.test",
        "javascript:alert(1)",
        "/%2F%2Fevil.test",
        "/%0d%0aSet-Cookie:x=1",
        "/\r\nX: y",
    ]
    .iter()
    .enumerate()
    {
        let resp = gate.login_form("alice", "alice-password", line);
        assert_eq!(resp.status, 303, "{i}: {resp:#?}");
        assert_eq!(resp.header("location"), Some("/"), "{line:?}");
    }
}

#[test]
fn overlong_password_is_refused_before_hashing() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let resp = gate.login_form("alice", &"x".repeat(1025), "/");
    assert_eq!(resp.status, 400, "{resp:#?}");
    assert!(resp.body.contains("too long"));
    let resp = gate.login_form("alice", &"x".repeat(9000), "/");
    assert_eq!(resp.status, 413, "a form over 8 KiB: {resp:#?}");
}

#[test]
fn repeated_failures_lock_the_user_out_even_with_the_right_password() {
    let backend = Backend::app();
    let gate = start(&backend, "max_failures = 3\nfailure_window = \"1h\"");
    for typed in ["alice", "ALICE", " alice "] {
        assert_eq!(gate.login_form(typed, "wrong", "/").status, 401);
    }
    for password in ["wrong", "alice-password"] {
        let resp = gate.login_form("ａｌｉｃｅ", password, "/");
        assert_eq!(resp.status, 429, "{resp:#?}");
        let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
        assert!(retry > 3000 && retry <= 3600, "{retry}");
        assert!(resp.all("set-cookie").is_empty());
        // The page says when, in the same terms as Retry-After.
        let minutes = retry.div_ceil(60);
        assert!(
            resp.body.contains(&format!(
                "Too many attempts. Try again in {minutes} minutes."
            )),
            "{}",
            resp.body
        );
    }
}

#[test]
fn repeated_failures_from_one_ip_are_throttled() {
    let backend = Backend::app();
    let gate = start(&backend, "ip_max_failures = 4\nfailure_window = \"1h\"");
    for i in 0..4 {
        assert_eq!(gate.login_form(&format!("user{i}"), "x", "/").status, 401);
    }
    let resp = gate.login_form("alice", "alice-password", "/");
    assert_eq!(resp.status, 429, "{resp:#?}");
    assert!(resp.header("retry-after").is_some());
}

#[test]
fn concurrent_failures_are_counted_exactly() {
    let backend = Backend::app();
    let gate = start(
        &backend,
        "max_failures = 4\nfailure_window = \"1h\"\nmax_concurrent_hashes = 2",
    );
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| s.spawn(|| gate.login_form("alice", "wrong", "/").status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        8,
        "{statuses:?}"
    );
}

#[test]
fn cross_site_post_to_login_or_logout_is_forbidden() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let cookie = gate
        .login_form("alice", "alice-password", "/")
        .session_cookie()
        .unwrap();
    let body = form(&[("username", "alice"), ("password", "alice-password")]);
    for (k, v) in [
        ("Origin", "http://evil.test"),
        ("Origin", "null"),
        ("Referer", "http://evil.test/app.test"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        for path in ["/.sessiongate/login", "/.sessiongate/logout"] {
            let resp = gate
                .req("POST", path)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header(k, v)
                .cookie(&cookie)
                .body(&body)
                .send();
            assert_eq!(resp.status, 403, "{path} {k}: {v}: {resp:#?}");
            assert!(resp.all("set-cookie").is_empty());
        }
    }
    assert_eq!(
        gate.get("/private").cookie(&cookie).send().status,
        200,
        "the session survived"
    );
}

#[test]
fn logout_destroys_the_session_and_clears_the_cookie_get_only_asks() {
    let backend = Backend::app();
    let gate = start(&backend, "logout_redirect = \"/public/bye\"");
    let cookie = gate
        .login_form("alice", "alice-password", "/")
        .session_cookie()
        .unwrap();
    let page = gate.get("/.sessiongate/logout").cookie(&cookie).send();
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<form method="post" action="/.sessiongate/logout">"#),
        "{}",
        page.body
    );
    assert!(page.all("set-cookie").is_empty());
    assert_eq!(
        gate.get("/private").cookie(&cookie).send().status,
        200,
        "GET changed nothing"
    );
    let resp = gate
        .req("POST", "/.sessiongate/logout")
        .header("Origin", "http://app.test")
        .cookie(&cookie)
        .send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(resp.header("location"), Some("/public/bye"));
    let clear = resp.all("set-cookie");
    assert_eq!(clear.len(), 1);
    assert!(clear[0].starts_with("__Host-sid=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), "{}", clear[0]);
    assert_eq!(
        gate.get("/private").api().cookie(&cookie).send().status,
        401,
        "destroyed server-side"
    );
}

#[test]
fn me_describes_the_live_session_or_401() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let resp = gate.get("/.sessiongate/me").send();
    assert_eq!(resp.status, 401);
    let cookie = gate
        .login_form("alice", "alice-password", "/")
        .session_cookie()
        .unwrap();
    let resp = gate.get("/.sessiongate/me").cookie(&cookie).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let me = resp.json();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["roles"], serde_json::json!(["user", "admin"]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let idle = me["expires_at"].as_u64().unwrap();
    let absolute = me["absolute_expires_at"].as_u64().unwrap();
    assert!(
        idle > now + 1700 && idle <= now + 1801,
        "30 minutes idle: {me}"
    );
    assert!(
        absolute > now + 12 * 3600 - 100 && absolute <= now + 12 * 3600 + 1,
        "12 h absolute: {me}"
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
}

#[test]
fn removing_or_disabling_a_user_ends_their_sessions_and_bad_files_are_ignored() {
    let backend = Backend::app();
    let users = [
        ("alice", "alice-password", "user", false),
        ("bob", "bob-password", "user", false),
    ];
    let original = users_file(&users);
    let gate = Gate::start_with(
        &login_config(backend.addr, ""),
        &[("users.toml", &original)],
        &[("TEST_SECRET", SECRET)],
    );
    let alice = gate
        .login_form("alice", "alice-password", "/")
        .session_cookie()
        .unwrap();
    let bob = gate
        .login_form("bob", "bob-password", "/")
        .session_cookie()
        .unwrap();
    let path = gate.dir().join("users.toml");
    // An invalid file is refused; everyone keeps working.
    std::fs::write(
        &path,
        "[[user]]\nname = \"alice\"\npassword_hash = \"plain\"\n",
    )
    .unwrap();
    // A reload of the whole config; the error names the key, as `check` does.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gate.output().contains("the last good config keeps serving") {
        assert!(Instant::now() < deadline, "{}", gate.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gate.output().contains("auth.users_file"),
        "{}",
        gate.output()
    );
    assert_eq!(gate.get("/private").cookie(&alice).send().status, 200);
    assert_eq!(gate.login_form("bob", "bob-password", "/").status, 303);
    // Bob disabled: his sessions end within the polling interval.
    // (Alice's entry stays byte for byte: a new hash would end her sessions too.)
    let (head, tail) = original.rsplit_once("disabled = false").unwrap();
    std::fs::write(&path, format!("{head}disabled = true{tail}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.get("/private").api().cookie(&bob).send().status != 401 {
        assert!(
            Instant::now() < deadline,
            "bob's session outlived his account"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        gate.get("/private").cookie(&alice).send().status,
        200,
        "alice unaffected"
    );
    assert_eq!(gate.login_form("bob", "bob-password", "/").status, 401);
}

#[test]
fn sighup_reloads_the_users_file() {
    let backend = Backend::app();
    let gate = Gate::start_with(
        &login_config(backend.addr, ""),
        &[("users.toml", &users_file(&[USERS[0]]))],
        &[("TEST_SECRET", SECRET)],
    );
    let path = gate.dir().join("users.toml");
    let next = users_file(&[USERS[0], ("dave", "dave-password", "", false)]);
    // The same length, inode and mtime as the new file, so that only the
    // signal can trigger the reload (the poll looks at all three).
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(first.len() < next.len());
    let padded = format!("{first}#{}\n", "x".repeat(next.len() - first.len() - 2));
    std::fs::write(&path, &padded).unwrap();
    let ready = Instant::now() + Duration::from_secs(5);
    while !gate.output().contains("config reloaded") {
        assert!(Instant::now() < ready, "{}", gate.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, &next).unwrap();
    // Keep the old mtime so only the signal can trigger the reload.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        gate.login_form("dave", "dave-password", "/").status,
        401,
        "not reloaded yet"
    );
    gate.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let resp = gate.login_form("dave", "dave-password", "/");
        if resp.status == 303 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {resp:#?}\n{}",
            gate.output()
        );
    }
}

#[test]
fn hash_password_prints_an_owasp_argon2id_hash() {
    let hash = hash_password("correct horse battery staple");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("correct horse"));
}

#[test]
fn behind_a_trusted_proxy_the_throttle_counts_the_client_not_the_proxy() {
    let backend = Backend::app();
    let config = format!(
        "trusted_proxies = [\"127.0.0.1\"]\n{}",
        login_config(
            backend.addr,
            "ip_max_failures = 2\nmax_failures = 100\nfailure_window = \"1h\""
        )
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users_file(USERS))],
        &[("TEST_SECRET", SECRET)],
    );
    let attempt = |xff: &str, user: &str| {
        let body = form(&[("username", user), ("password", "wrong")]);
        gate.req("POST", "/.sessiongate/login")
            .header("X-Forwarded-For", xff)
            .body(&body)
            .send()
            .status
    };
    assert_eq!(attempt("203.0.113.1", "a"), 401);
    assert_eq!(
        attempt("198.51.100.7, 203.0.113.1", "b"),
        401,
        "left entries are the client's own claims"
    );
    assert_eq!(
        attempt("203.0.113.1", "c"),
        429,
        "the client behind the proxy is locked out"
    );
    assert_eq!(
        attempt("203.0.113.2", "d"),
        401,
        "another client through the same proxy is not"
    );
}

#[test]
fn check_endpoint_answers_for_auth_request_callers() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    assert_eq!(gate.get("/.sessiongate/check").send().status, 401);
    let cookie = gate
        .login_form("alice", "alice-password", "/")
        .session_cookie()
        .unwrap();
    let resp = gate.get("/.sessiongate/check").cookie(&cookie).send();
    assert_eq!(resp.status, 204, "{resp:#?}");
    assert_eq!(resp.header("x-user"), Some("alice"));
    assert_eq!(resp.header("x-user-roles"), Some("user,admin"));
    assert_eq!(backend.count(), 0, "answered by the proxy itself");
}
