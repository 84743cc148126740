//! The admin service and the users' own sessions page, through the real binary.

use crate::support::*;

#[test]
fn every_protected_endpoint_needs_the_token() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let key = key_of(&cookie);
    let wrong = "x".repeat(ADMIN_TOKEN.len());
    let endpoints = [
        ("GET", "/".to_owned()),
        ("GET", "/sessions".to_owned()),
        ("GET", format!("/sessions/{key}")),
        ("DELETE", format!("/sessions/{key}")),
        ("POST", format!("/sessions/{key}/revoke")),
        ("DELETE", "/users/alice/sessions".to_owned()),
        ("GET", "/stats".to_owned()),
        ("GET", "/metrics".to_owned()),
    ];
    for (method, path) in &endpoints {
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some(format!("Bearer {ADMIN_TOKEN}x")),
            Some("Basic Og==".to_owned()),
        ] {
            let mut req = gate.admin_anonymous(method, path);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send();
            assert_eq!(resp.status, 401, "{method} {path} with {auth:?}: {resp:#?}");
            assert!(
                resp.all("www-authenticate")
                    .iter()
                    .any(|v| v.starts_with("Basic")),
                "{resp:#?}"
            );
        }
    }
    assert_eq!(
        gate.get("/private").cookie(&cookie).send().status,
        200,
        "nothing was revoked"
    );
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            gate.admin_anonymous("GET", path).send().status,
            200,
            "{path} is open"
        );
    }
    // With the token (Bearer, or Basic with the token as password), every GET answers.
    for (method, path) in endpoints.iter().filter(|(m, _)| *m == "GET") {
        let resp = gate.admin(method, path).send();
        assert_eq!(resp.status, 200, "{method} {path}: {resp:#?}");
    }
    let basic = format!("Basic {}", base64(&format!("admin:{ADMIN_TOKEN}")));
    let resp = gate
        .admin_anonymous("GET", "/")
        .header("Authorization", &basic)
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(resp.body.contains("<table>"));
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn revoking_a_session_takes_effect_on_the_next_request() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let a = gate.login("alice", "");
    let b = gate.login("alice", "");
    let c = gate.login("bob", "");
    let resp = gate
        .admin("DELETE", &format!("/sessions/{}", key_of(&a)))
        .send();
    assert_eq!(resp.status, 204, "{resp:#?}");
    assert_eq!(
        gate.get("/private").api().cookie(&a).send().status,
        401,
        "revoked at once"
    );
    assert_eq!(gate.get("/private").cookie(&b).send().status, 200);
    assert_eq!(
        gate.admin("DELETE", &format!("/sessions/{}", key_of(&a)))
            .send()
            .status,
        404
    );
    let resp = gate.admin("DELETE", "/users/alice/sessions").send();
    assert_eq!(resp.json()["revoked"], 1, "{resp:#?}");
    assert_eq!(gate.get("/private").api().cookie(&b).send().status, 401);
    assert_eq!(
        gate.get("/private").cookie(&c).send().status,
        200,
        "bob untouched"
    );
}

#[test]
fn sessions_are_listed_and_shown_by_key_never_by_raw_id() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate
        .req("GET", "/_test/login?user=alice&roles=a,b")
        .header("User-Agent", "TestAgent/1")
        .send()
        .session_cookie()
        .unwrap();
    let key = key_of(&cookie);
    let list = gate.admin("GET", "/sessions").send().json();
    let item = &list["items"][0];
    assert_eq!(item["key"], key.as_str());
    assert_eq!(item["user"], "alice");
    assert_eq!(item["roles"], serde_json::json!(["a", "b"]));
    assert_eq!(item["client_ip"], "127.0.0.1");
    assert_eq!(item["user_agent"], "TestAgent/1");
    for field in [
        "created_at",
        "last_seen_at",
        "expires_at",
        "absolute_expires_at",
        "data_bytes",
    ] {
        assert!(item[field].is_u64(), "{field}: {item}");
    }
    let one = gate.admin("GET", &format!("/sessions/{key}")).send().json();
    assert_eq!(one["key"], key.as_str());
    assert_eq!(gate.admin("GET", "/sessions/not-a-key").send().status, 404);
    // The raw id (and so the cookie) appears in no admin response.
    let id = id_of(&cookie);
    for path in [
        "/",
        "/sessions",
        &format!("/sessions/{key}"),
        "/stats",
        "/metrics",
        "/sessions?user=alice",
    ] {
        let resp = gate.admin("GET", path).send();
        assert!(!resp.body.contains(id), "{path} leaks the raw id");
        assert!(
            !resp.headers.iter().any(|(_, v)| v.contains(id)),
            "{path} leaks the raw id in a header"
        );
    }
}

#[test]
fn paging_walks_every_session_exactly_once_while_sessions_are_added() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let mut original = std::collections::BTreeSet::new();
    for i in 0..45 {
        original.insert(key_of(&gate.login(&format!("u{i}"), "")));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sessions?limit=7&cursor={c}"),
            None => "/sessions?limit=7".to_owned(),
        };
        let page = gate.admin("GET", &path).send().json();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        // New sessions arrive between pages.
        for _ in 0..3 {
            gate.login("late", "");
            added += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no session twice");
    assert!(original.is_subset(&unique), "every original session once");
    assert!(added > 0);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "stable order by key");
}

#[test]
fn html_page_escapes_every_value_and_revokes_by_button() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let evil = gate
        .req(
            "GET",
            "/_test/login?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E&roles=%3Cimg%20src%3Dx%3E",
        )
        .header("User-Agent", "<b>ua</b>")
        .send()
        .session_cookie()
        .unwrap();
    let page = gate.admin("GET", "/").send();
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<script>alert(1)</script>")
            && !page.body.contains("<img src=x>")
            && !page.body.contains("<b>ua</b>")
    );
    assert!(page.header("content-security-policy").is_some());
    let filtered = gate
        .admin("GET", "/?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .send();
    assert!(filtered.body.contains(&key_of(&evil)));
    assert!(!filtered.body.contains("<script>alert(1)</script>"));
    // The revoke button: a same-origin POST; a cross-site one is refused.
    let key = key_of(&evil);
    let cross = gate
        .admin("POST", &format!("/sessions/{key}/revoke"))
        .header("Origin", "http://evil.test")
        .send();
    assert_eq!(cross.status, 403);
    assert_eq!(gate.get("/private").cookie(&evil).send().status, 200);
    let resp = gate
        .admin("POST", &format!("/sessions/{key}/revoke"))
        .header("Origin", "http://app.test")
        .send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(gate.get("/private").api().cookie(&evil).send().status, 401);
}

#[test]
fn stats_and_metrics_count_what_happened() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    gate.get("/_test/data?json=%7B%22a%22%3A1%7D").send();
    gate.get("/private").cookie(&cookie).send();
    gate.get("/private").api().send();
    gate.get("/private").browser().send();
    gate.get("/admin/x").cookie(&cookie).send();
    gate.get("/private")
        .api()
        .cookie("__Host-sid=forged")
        .send();
    let stats = gate.admin("GET", "/stats").send().json();
    assert_eq!(stats["sessions"]["live"], 2, "{stats}");
    assert_eq!(stats["sessions"]["authenticated"], 1, "{stats}");
    assert_eq!(stats["sessions"]["anonymous"], 1, "{stats}");
    assert!(stats["capacity"].is_u64() && stats["evictions"].is_u64());
    // Metrics are recorded in the logging phase, just after the response is
    // written: give the last request a moment to be counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let wants = [
        "sessiongate_requests_total{decision=\"allowed\",status=\"2xx\"}",
        "sessiongate_requests_total{decision=\"unauthenticated\",status=\"4xx\"} 2",
        "sessiongate_requests_total{decision=\"redirected\",status=\"3xx\"} 1",
        "sessiongate_requests_total{decision=\"forbidden\",status=\"4xx\"} 1",
        "sessiongate_cookie_verification_failures_total 1",
        "sessiongate_sessions ",
        "sessiongate_request_duration_seconds_bucket{le=\"+Inf\"}",
        "sessiongate_upstream_errors_total{kind=\"connect_refused\"} 0",
    ];
    loop {
        let metrics = gate.admin("GET", "/metrics").send();
        assert!(metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let missing: Vec<_> = wants
            .iter()
            .filter(|w| !metrics.body.contains(*w))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:?} missing:\n{}",
            metrics.body
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn readyz_needs_a_healthy_upstream() {
    let gate = Gate::start(&standard_config(dead_addr(), "").replace(
        "health_check_interval = \"1h\"",
        "health_check_interval = \"100ms\"",
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let resp = gate.admin_anonymous("GET", "/readyz").send();
        if resp.status == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz stays ready with a dead upstream: {resp:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        gate.admin_anonymous("GET", "/healthz").send().status,
        200,
        "alive, though not ready"
    );
}

#[test]
fn without_a_token_only_health_endpoints_answer() {
    let backend = Backend::app();
    let admin = dead_addr();
    let gate = Gate::start(&format!(
        "{}\n[admin]\nlisten = \"{admin}\"\n",
        standard_config(backend.addr, "")
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut gate = gate;
    gate.admin = admin;
    assert_eq!(gate.admin("GET", "/sessions").send().status, 401);
    assert_eq!(gate.admin_anonymous("GET", "/healthz").send().status, 200);
}

#[test]
fn users_see_and_end_only_their_own_sessions() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let laptop = gate
        .req("GET", "/_test/login?user=alice&roles=")
        .header("User-Agent", "Laptop")
        .send()
        .session_cookie()
        .unwrap();
    let phone = gate
        .req("GET", "/_test/login?user=alice&roles=")
        .header("User-Agent", "Phone")
        .send()
        .session_cookie()
        .unwrap();
    let bob = gate
        .req("GET", "/_test/login?user=bob&roles=")
        .header("User-Agent", "BobBrowser")
        .send()
        .session_cookie()
        .unwrap();
    let mine = gate
        .get("/.sessiongate/sessions")
        .api()
        .cookie(&laptop)
        .send()
        .json();
    let keys: Vec<&str> = mine["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{mine}");
    assert!(keys.contains(&key_of(&laptop).as_str()) && keys.contains(&key_of(&phone).as_str()));
    assert!(!keys.contains(&key_of(&bob).as_str()));
    let current: Vec<bool> = mine["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"] == key_of(&laptop).as_str())
        .collect();
    assert_eq!(
        mine["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["current"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        current
    );
    let html = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&laptop)
        .send();
    assert!(
        html.body.contains("Phone")
            && html.body.contains("This session")
            && !html.body.contains("BobBrowser"),
        "{}",
        html.body
    );
    // Bob's key is not Alice's to end: answered like a key that does not exist.
    let body = form(&[("key", &key_of(&bob))]);
    let resp = gate
        .req("POST", "/.sessiongate/sessions/revoke")
        .cookie(&laptop)
        .body(&body)
        .send();
    assert_eq!(resp.status, 404, "{resp:#?}");
    assert_eq!(gate.get("/private").cookie(&bob).send().status, 200);
    // Her phone is.
    let body = form(&[("key", &key_of(&phone))]);
    let resp = gate
        .req("POST", "/.sessiongate/sessions/revoke")
        .cookie(&laptop)
        .body(&body)
        .send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(gate.get("/private").api().cookie(&phone).send().status, 401);
    assert_eq!(gate.get("/private").cookie(&laptop).send().status, 200);
    assert_eq!(
        gate.get("/.sessiongate/sessions").api().send().status,
        401,
        "anonymous has no sessions page"
    );
}

#[test]
fn the_admin_page_shows_totals_and_revokes_all_of_a_users_sessions() {
    let backend = Backend::app();
    let users = crate::support::users_file(&[("dana", "dana-password-1234", "", false)]);
    let config = standard_config(backend.addr, "\n[auth]\nusers_file = \"users.toml\"\n");
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users)],
        &[("TEST_SECRET", crate::support::SECRET)],
    );
    let login = |user: &str, ua: &str| {
        gate.req("GET", &format!("/_test/login?user={user}&roles="))
            .header("User-Agent", ua)
            .send()
            .session_cookie()
            .unwrap()
    };
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let alice = [login("alice", chrome), login("alice", "Phone")];
    let bob = login("bob", chrome);
    assert_eq!(gate.login_form("dana", "wrong", "/").status, 401);
    assert_eq!(
        gate.login_form("dana", "dana-password-1234", "/").status,
        303
    );
    let page = gate.admin("GET", "/").send();
    assert_eq!(page.status, 200);
    for total in [
        "<b>4</b>live sessions",
        "<b>3</b>users",
        "<b>1</b>logins, last hour",
        "<b>1</b>failed, last hour",
    ] {
        assert!(page.body.contains(total), "{total} in {}", page.body);
    }
    // Devices read as such, the raw agent on hover; times in words.
    assert!(
        page.body
            .contains(&format!(r#"<span title="{chrome}">Chrome on Linux</span>"#)),
        "{}",
        page.body
    );
    assert!(page.body.contains(">just now</time>"), "{}", page.body);
    // Filtered by user: one button ends all of that user's sessions.
    let filtered = gate.admin("GET", "/?user=alice").send();
    assert!(
        filtered.body.contains(r#"action="/users/alice/revoke""#)
            && filtered.body.contains("Revoke all of alice's sessions"),
        "{}",
        filtered.body
    );
    let cross = gate
        .admin("POST", "/users/alice/revoke")
        .header("Origin", "http://evil.test")
        .send();
    assert_eq!(cross.status, 403);
    assert_eq!(gate.get("/private").cookie(&alice[0]).send().status, 200);
    let done = gate
        .admin("POST", "/users/alice/revoke")
        .header("Origin", "http://app.test")
        .send();
    assert_eq!(done.status, 303, "{done:#?}");
    assert_eq!(done.header("location"), Some("/?user=alice"));
    for c in &alice {
        assert_eq!(gate.get("/private").api().cookie(c).send().status, 401);
    }
    assert_eq!(gate.get("/private").cookie(&bob).send().status, 200);
    assert!(gate
        .admin("GET", "/?user=alice")
        .send()
        .body
        .contains("No sessions."));
}

#[test]
fn a_user_signs_out_all_other_sessions_at_once() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let login = |user: &str| gate.login(user, "");
    let (laptop, phone, tablet, bob) =
        (login("alice"), login("alice"), login("alice"), login("bob"));
    let page = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&laptop)
        .send();
    assert!(
        page.body.contains("Sign out all other sessions"),
        "{}",
        page.body
    );
    let cross = gate
        .req("POST", "/.sessiongate/sessions/revoke")
        .cookie(&laptop)
        .header("Origin", "http://evil.test")
        .body("key=others")
        .send();
    assert_eq!(cross.status, 403);
    let resp = gate
        .req("POST", "/.sessiongate/sessions/revoke")
        .cookie(&laptop)
        .body("key=others")
        .send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(gate.get("/private").cookie(&laptop).send().status, 200);
    for c in [&phone, &tablet] {
        assert_eq!(gate.get("/private").api().cookie(c).send().status, 401);
    }
    assert_eq!(gate.get("/private").cookie(&bob).send().status, 200);
    let page = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&laptop)
        .send();
    assert!(
        page.body.contains("This is your only session."),
        "{}",
        page.body
    );
}
