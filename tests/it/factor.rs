//! The second factor through the binary: an authenticator app (TOTP) set up
//! on the enrolment page with codes computed here from the key it shows,
//! sign-in with a code after the password, recovery codes, a required factor,
//! step-up routes, and the rules peers broke: the pending state is nobody's
//! login, a code works once, failed codes lock the account across sign-ins
//! and instances, Basic cannot go around the factor.
//!
//! The credential store is the file beside the memory store, or Redis when
//! the suite runs against it; the multi-instance test has its own Redis.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

/// The key that seals TOTP secrets (at least 32 bytes, from the environment).
const FACTOR_KEY: &str = "factor-key-0123456789abcdef0123456789abcdef";
const ALICE: (&str, &str, &str, bool) = ("alice", "alice-password-1", "staff", false);
const BOB: (&str, &str, &str, bool) = ("bob", "bob-password-1", "admin", false);
const CAROL: (&str, &str, &str, bool) = ("carol", "carol-password-1", "", false);
const FILE_STORE: &str = "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n";
const LOGIN: &str = "/.sessiongate/login";
const FACTOR: &str = "/.sessiongate/factor";
const ENROL: &str = "/.sessiongate/factor/enrol";
const PENDING: &str = "__Host-sg_factor";

/// `/secure` is a step-up route, `/fresh` wants a factor within 2 s, `/basic`
/// takes Basic.
const ROUTES: &str = r#"
[[route]]
path = "/secure"
second_factor = true

[[route]]
path = "/fresh"
second_factor_within = "2s"

[[route]]
path = "/basic"
credentials = ["basic"]
"#;

fn store() -> &'static str {
    if redis_run() {
        ""
    } else {
        FILE_STORE
    }
}

/// Trusts the loopback as a front proxy, for the forward-auth endpoint.
fn config(backend: &Backend, factor: &str, store: &str) -> String {
    "trusted_proxies = [\"127.0.0.1/32\"]\n".to_owned()
        + &standard_config(
        backend.addr,
        &format!(
            "\n[auth]\nusers_file = \"users.toml\"\nmax_failures = 3\n\n[auth.second_factor]\nkeys = [{{ file = \"factor.key\" }}]\n{factor}\n{ROUTES}{store}"
        ),
    )
}

/// The forward-auth endpoint asked, as a trusted front proxy, about `GET /app`.
fn forward_auth(gate: &Gate, cookie: &str) -> Resp {
    gate.get("/.sessiongate/auth/forward")
        .cookie(cookie)
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/app")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "app.test")
        .send()
}

fn start(backend: &Backend, factor: &str) -> Gate {
    start_with_store(backend, factor, store())
}

fn start_with_store(backend: &Backend, factor: &str, store: &str) -> Gate {
    let users = users_file(&[ALICE, BOB, CAROL]);
    // The key in a file, so that a restart (which keeps the files) has it.
    Gate::start_with(
        &config(backend, factor, store),
        &[("users.toml", &users), ("factor.key", FACTOR_KEY)],
        &[("TEST_SECRET", SECRET)],
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The authenticator app: the code of the base32 key `secret`, `steps`
/// 30-second steps from now (the gate takes the step before and after too).
fn code(secret: &str, steps: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .expect("the page shows base32");
    let t = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        String::new(),
    );
    t.generate(now().saturating_add_signed(steps * 30))
}

/// The text between `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
        + start.len();
    let len = html[from..].find(end).unwrap();
    &html[from..from + len]
}

/// The enrolment page's key and form: `(secret, sealed, expires)`.
fn enrolment_form(page: &Resp) -> (String, String, String) {
    assert_eq!(page.status, 200, "{page:#?}");
    (
        between(&page.body, "<code id=\"totp-secret\">", "</code>").to_owned(),
        between(&page.body, "name=\"sealed\" value=\"", "\"").to_owned(),
        between(&page.body, "name=\"expires\" value=\"", "\"").to_owned(),
    )
}

/// Set up an authenticator for whoever `jar` is (a session, or a pending
/// enrolment): its key and the ten recovery codes shown once. The code
/// confirming it is the previous step's, so later sign-ins with the current
/// and next steps' codes are not replays of it.
fn enrol(gate: &Gate, jar: &mut Jar) -> (String, Vec<String>) {
    let page = jar.get(gate, ENROL);
    let (secret, sealed, expires) = enrolment_form(&page);
    let resp = jar.post(
        gate,
        ENROL,
        &[
            ("code", &code(&secret, -1)),
            ("sealed", &sealed),
            ("expires", &expires),
            ("next", "/app"),
        ],
    );
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
    let list = between(&resp.body, "<ol class=\"recovery-codes\">", "</ol>");
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", resp.body);
    (secret, codes)
}

/// A signed-in session of `user` with an authenticator set up: the jar and
/// the key. The password session enrols, and the enrolment gives a new id.
fn enrolled(gate: &Gate, user: (&str, &str, &str, bool)) -> (Jar, String, Vec<String>) {
    let mut jar = Jar::default();
    let resp = jar.password(gate, user);
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert!(jar.has("__Host-sid"), "no factor yet: signed in at once");
    let before = jar.only("__Host-sid");
    let (secret, codes) = enrol(gate, &mut jar);
    assert_ne!(
        jar.only("__Host-sid"),
        before,
        "passing a factor gives a new id"
    );
    (jar, secret, codes)
}

/// POST a code to the prompt.
fn submit(gate: &Gate, jar: &mut Jar, code: &str) -> Resp {
    jar.post(gate, FACTOR, &[("code", code), ("next", "/ignored")])
}

#[test]
fn an_authenticator_app_is_set_up_and_asked_for_after_the_password() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let (mut jar, secret, _) = enrolled(&gate, ALICE);
    // Setting up a factor proves the factor, not the person: the session
    // (a password's) has still not passed one.
    let me = jar.send(gate.get("/.sessiongate/me").api()).json();
    assert!(me["second_factor_at"].is_null(), "{me}");
    assert_eq!(jar.send(gate.get("/secure").api()).status, 401);
    // The key and the QR code were on the page: the record holds neither.
    if !redis_run() {
        let file = std::fs::read_to_string(gate.dir().join("credentials.json")).unwrap();
        assert!(!file.contains(&secret), "{file}");
        assert!(file.contains("\"sealed\": \"v1."), "{file}");
    }

    // Next time: the password alone is not a session.
    let mut jar = Jar::default();
    let resp = jar.password(&gate, ALICE);
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(resp.header("location"), Some(FACTOR));
    assert!(jar.has(PENDING) && !jar.has("__Host-sid"), "{resp:#?}");
    let cookie = resp
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(PENDING))
        .unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=300",
    ] {
        assert!(cookie.contains(attr), "{attr}: {cookie}");
    }
    let prompt = jar.get(&gate, FACTOR);
    assert_eq!(prompt.status, 200);
    assert!(prompt.body.contains("name=\"code\""), "{}", prompt.body);

    let resp = submit(&gate, &mut jar, "000000");
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert!(resp.body.contains("That code is not valid."));
    let resp = submit(&gate, &mut jar, &code(&secret, 0));
    assert_eq!(resp.status, 303, "{resp:#?}\n{}", gate.output());
    // `next` is the one the password form carried, not the prompt's.
    assert_eq!(resp.header("location"), Some("/app?x=1"));
    assert!(jar.has("__Host-sid") && !jar.has(PENDING), "{resp:#?}");
    let me = jar.send(gate.get("/.sessiongate/me").api()).json();
    assert!(
        me["second_factor_at"].as_u64().unwrap() >= now() - 5,
        "{me}"
    );
    let resp = jar.send(gate.get("/app").api());
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // Step-up routes take this session: it passed the factor.
    assert_eq!(jar.send(gate.get("/secure").api()).status, 200);
    // The sessions page lists the methods.
    let page = jar.get(&gate, "/.sessiongate/sessions");
    assert!(page.body.contains("Authenticator app"), "{}", page.body);
    assert!(page
        .body
        .contains("<small id=\"recovery-left\">10 left</small>"));
}

#[test]
fn a_code_is_accepted_once_and_a_pending_sign_in_completes_once() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let (_, secret, _) = enrolled(&gate, ALICE);
    let mut first = Jar::default();
    first.password(&gate, ALICE);
    let pending = first.clone();
    let used = code(&secret, 0);
    assert_eq!(submit(&gate, &mut first, &used).status, 303);

    // The same code again, in a new sign-in: refused.
    let mut second = Jar::default();
    second.password(&gate, ALICE);
    let resp = submit(&gate, &mut second, &used);
    assert_eq!(resp.status, 401, "a replayed code: {resp:#?}");
    assert!(!second.has("__Host-sid"));
    // A copy of the first sign-in's pending cookie, with a fresh code: it
    // was spent, so back to the password.
    let mut copy = pending;
    let resp = submit(&gate, &mut copy, &code(&secret, 1));
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert!(
        resp.header("location").unwrap().starts_with(LOGIN),
        "{resp:#?}"
    );
    assert!(!copy.has("__Host-sid") && !copy.has(PENDING));
}

#[test]
fn the_pending_state_is_nobodys_login() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let (session, _secret, _) = enrolled(&gate, ALICE);
    // What a signed-in session gets, so each refusal below can tell.
    let sid = session.only("__Host-sid");
    assert_eq!(forward_auth(&gate, &sid).status, 200);
    assert_eq!(
        gate.get("/.sessiongate/check").cookie(&sid).send().status,
        204
    );
    let mut jar = Jar::default();
    jar.password(&gate, ALICE);
    let pending = jar.only(PENDING);
    let value = pending.split_once('=').unwrap().1.to_owned();
    // The pending cookie alone, and its value as a session cookie.
    for cookie in [pending.clone(), format!("__Host-sid={value}")] {
        let get = |target: &str| gate.get(target).cookie(&cookie);
        let resp = get("/app").browser().send();
        assert_eq!(resp.status, 302, "{cookie}: {resp:#?}");
        assert!(resp.header("location").unwrap().starts_with(LOGIN));
        assert_eq!(get("/app").api().send().status, 401);
        assert_eq!(get("/secure").api().send().status, 401);
        assert_eq!(get("/.sessiongate/check").send().status, 401);
        assert_eq!(get("/.sessiongate/me").send().status, 401);
        assert_eq!(get("/.sessiongate/sessions").send().status, 401);
        let resp = gate
            .req("POST", "/.sessiongate/keys")
            .cookie(&cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("name=x&expires_in=7d")
            .send();
        assert_eq!(resp.status, 401, "{resp:#?}");
        let resp = forward_auth(&gate, &cookie);
        assert_eq!(resp.status, 401, "forward-auth: {resp:#?}");
        // A public route: the backend sees no user, and a backend command
        // that writes session data makes an anonymous session, not alice's.
        let resp = get("/_test/data?json=%7B%22cart%22%3A1%7D").send();
        assert_eq!(resp.status, 200, "{resp:#?}");
        assert_eq!(backend.last().one("x-user"), None);
        // Nor does the pending cookie reach the backend (half a login in its logs).
        let sent = backend.last().one("cookie").unwrap_or_default().to_owned();
        assert!(!sent.contains(&value), "{sent}");
        if let Some(sid) = resp.session_cookie() {
            let me = gate.get("/.sessiongate/me").cookie(&sid).send();
            assert_eq!(me.status, 401, "{me:#?}");
        }
    }
    // Basic with the right password on a Basic route: a factor is needed.
    let basic = gate
        .get("/basic")
        .header("Authorization", &basic_auth("alice", ALICE.1))
        .send();
    assert_eq!(basic.status, 401, "{basic:#?}");
    assert!(backend
        .requests()
        .iter()
        .all(|r| r.one("x-user") != Some("alice") || !r.path().starts_with("/basic")));
}

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn basic_is_refused_with_a_factor_and_taken_without() {
    let backend = Backend::app();
    let gate = start(
        &backend,
        "mode = \"required\"\nrequired_roles = [\"admin\"]",
    );
    let carol = gate
        .get("/basic")
        .header("Authorization", &basic_auth("alice", ALICE.1))
        .send();
    assert_eq!(
        carol.status, 200,
        "alice has none and needs none: {carol:#?}"
    );
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // bob must have one (role admin): Basic is a password alone.
    let bob = gate
        .get("/basic")
        .header("Authorization", &basic_auth("bob", BOB.1))
        .send();
    assert_eq!(bob.status, 401, "{bob:#?}");
    let wrong = gate
        .get("/basic")
        .header("Authorization", &basic_auth("bob", "wrong"))
        .send();
    assert_eq!(
        wrong.status, bob.status,
        "the same answer as a wrong password"
    );
    assert_eq!(wrong.json()["error"], bob.json()["error"]);
    assert_eq!(
        wrong.header("www-authenticate"),
        bob.header("www-authenticate")
    );
}

#[test]
fn failed_codes_lock_the_account_whatever_sign_in_they_come_from() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let (_, secret, codes) = enrolled(&gate, ALICE);
    // max_failures = 3, over three separate sign-ins: starting again does
    // not forgive (CVE-2024-21500).
    for _ in 0..3 {
        let mut jar = Jar::default();
        jar.password(&gate, ALICE);
        assert_eq!(submit(&gate, &mut jar, "123456").status, 401);
    }
    let mut jar = Jar::default();
    let resp = jar.password(&gate, ALICE);
    assert_eq!(resp.status, 303, "the password is not what is locked");
    for right in [code(&secret, 0), codes[0].clone()] {
        let resp = submit(&gate, &mut jar, &right);
        assert_eq!(resp.status, 429, "{resp:#?}");
        assert!(resp.header("retry-after").is_some());
        assert!(!jar.has("__Host-sid"));
    }
    // Guesses sent at once cannot all slip under the limit: each is counted
    // before it is checked (bob: max_failures = 3).
    let (_, bob_secret, _) = enrolled(&gate, BOB);
    let mut pending = Jar::default();
    pending.password(&gate, BOB);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let guesses: Vec<_> = (0..12)
            .map(|i| {
                let mut jar = pending.clone();
                let gate = &gate;
                s.spawn(move || submit(gate, &mut jar, &format!("{:06}", 100_000 + i)).status)
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    assert!(refused <= 3, "{statuses:?}");
    assert_eq!(
        refused + statuses.iter().filter(|&&s| s == 429).count(),
        12,
        "{statuses:?}"
    );
    assert_eq!(
        submit(&gate, &mut pending, &code(&bob_secret, 0)).status,
        429
    );

    // Another user is not locked by alice's or bob's failures.
    let (_, carol_secret, _) = enrolled(&gate, CAROL);
    let mut jar = Jar::default();
    jar.password(&gate, CAROL);
    assert_eq!(submit(&gate, &mut jar, &code(&carol_secret, 0)).status, 303);
}

#[test]
fn recovery_codes_sign_in_once_each_and_can_be_renewed() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    let (mut session, secret, codes) = enrolled(&gate, ALICE);
    let mut jar = Jar::default();
    jar.password(&gate, ALICE);
    // Typed loosely: upper case, spaces for dashes.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let resp = submit(&gate, &mut jar, &typed);
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(
        resp.body.contains("You have 9 recovery codes left"),
        "{}",
        resp.body
    );
    assert!(jar.has("__Host-sid") && !jar.has(PENDING));
    assert_eq!(jar.send(gate.get("/app").api()).status, 200);
    // Once only.
    let mut again = Jar::default();
    again.password(&gate, ALICE);
    assert_eq!(submit(&gate, &mut again, &codes[3]).status, 401);
    // Stored hashed: no code is in the file.
    if !redis_run() {
        let file = std::fs::read_to_string(gate.dir().join("credentials.json")).unwrap();
        for c in &codes {
            assert!(!file.contains(c.as_str()) && !file.contains(&c.replace('-', "")));
        }
    }
    // New codes: only from a session that passed the factor lately (the
    // one that set it up did not)...
    let resp = session.post(&gate, "/.sessiongate/factor/recovery", &[]);
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert!(resp.header("location").unwrap().starts_with(FACTOR));
    // ...such as the one the recovery code signed in; the old codes stop.
    let resp = jar.post(&gate, "/.sessiongate/factor/recovery", &[]);
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(resp.body.contains("New recovery codes"));
    let mut old = Jar::default();
    old.password(&gate, ALICE);
    assert_eq!(submit(&gate, &mut old, &codes[5]).status, 401);
    assert_eq!(submit(&gate, &mut old, &code(&secret, 1)).status, 303);
}

#[test]
fn a_required_factor_is_set_up_before_anything_is_reachable() {
    let backend = Backend::app();
    let gate = start(
        &backend,
        "mode = \"required\"\nrequired_roles = [\"admin\"]",
    );
    // alice (staff) is not required: in at once.
    let mut alice = Jar::default();
    assert_eq!(
        alice.password(&gate, ALICE).header("location"),
        Some("/app?x=1")
    );
    assert!(alice.has("__Host-sid"));

    // bob (admin) has none: to enrolment, with no session.
    let mut bob = Jar::default();
    let resp = bob.password(&gate, BOB);
    assert_eq!(resp.header("location"), Some(ENROL), "{resp:#?}");
    assert!(bob.has(PENDING) && !bob.has("__Host-sid"));
    let mut stale_enrolment = bob.clone();
    assert_eq!(bob.send(gate.get("/app").api()).status, 401);
    assert_eq!(bob.send(gate.get("/.sessiongate/me")).status, 401);
    // The prompt sends a pending enrolment on to the enrolment page.
    assert_eq!(bob.get(&gate, FACTOR).header("location"), Some(ENROL));
    let (_, codes) = enrol(&gate, &mut bob);
    assert_eq!(codes.len(), 10);
    assert!(bob.has("__Host-sid") && !bob.has(PENDING));
    assert_eq!(bob.send(gate.get("/app").api()).status, 200);
    assert_eq!(backend.last().one("x-user"), Some("bob"));
    // Now bob has a factor: his password leads to the prompt, and a pending
    // enrolment made before (a copy of the cookie) cannot replace it.
    let mut again = Jar::default();
    again.password(&gate, BOB);
    let page = again.get(&gate, FACTOR);
    assert!(page.body.contains("name=\"code\""), "bob now has a factor");
    let resp = stale_enrolment.get(&gate, ENROL);
    assert!(
        resp.header("location")
            .is_some_and(|l| l.starts_with(LOGIN)),
        "{resp:#?}"
    );
    // A sign-in as bob from a browser where alice is signed in ends alice's
    // session there: a pending sign-in never sits beside a session.
    let alice_sid = alice.only("__Host-sid");
    let resp = alice.password(&gate, BOB);
    assert_eq!(resp.header("location"), Some(FACTOR));
    assert!(!alice.has("__Host-sid"), "the session cookie is cleared");
    assert_eq!(gate.get("/app").api().cookie(&alice_sid).send().status, 401);
}

#[test]
fn step_up_routes_send_a_session_without_a_recent_factor_to_the_prompt() {
    let backend = Backend::app();
    let gate = start(&backend, "");
    // A password session of a user with no factor yet.
    let mut jar = Jar::default();
    jar.password(&gate, ALICE);
    assert_eq!(jar.send(gate.get("/app").api()).status, 200);
    let resp = jar.get(&gate, "/secure/page?x=1");
    assert_eq!(resp.status, 302, "{resp:#?}");
    assert_eq!(
        resp.header("location"),
        Some("/.sessiongate/factor?next=/secure/page%3Fx%3D1")
    );
    let resp = jar.send(gate.get("/secure").api());
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "second factor required");
    // The prompt of a user without a factor leads to enrolment.
    let resp = jar.get(&gate, "/.sessiongate/factor?next=%2Fsecure");
    assert_eq!(
        resp.header("location"),
        Some("/.sessiongate/factor/enrol?next=%2Fsecure")
    );
    let (secret, codes) = enrol(&gate, &mut jar);
    // Set up, not yet passed: the prompt, and back to the page.
    assert_eq!(jar.send(gate.get("/secure").api()).status, 401);
    let resp = jar.post(
        &gate,
        FACTOR,
        &[("code", &code(&secret, 0)), ("next", "/secure")],
    );
    assert_eq!(resp.header("location"), Some("/secure"), "{resp:#?}");
    assert_eq!(jar.send(gate.get("/secure").api()).status, 200);
    assert_eq!(jar.send(gate.get("/fresh").api()).status, 200);
    // Within 2 s only: then back to the prompt, and back to the page.
    wait_for(Duration::from_secs(10), "the factor to be stale", || {
        jar.send(gate.get("/fresh").api()).status == 401
    });
    assert_eq!(jar.send(gate.get("/secure").api()).status, 200);
    let before = jar.only("__Host-sid");
    let resp = jar.post(
        &gate,
        FACTOR,
        &[("code", &code(&secret, 1)), ("next", "/fresh?y=2")],
    );
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(resp.header("location"), Some("/fresh?y=2"));
    assert_ne!(jar.only("__Host-sid"), before, "a new id");
    assert_eq!(jar.send(gate.get("/fresh").api()).status, 200);
    // The old id is gone.
    assert_eq!(gate.get("/app").api().cookie(&before).send().status, 401);
    // `next` is same-origin only.
    let resp = jar.post(
        &gate,
        FACTOR,
        &[("code", &codes[0]), ("next", "//evil.example/")],
    );
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(resp.body.contains("href=\"/\""), "{}", resp.body);
    assert!(!resp.body.contains("evil.example"), "{}", resp.body);
}

#[test]
fn the_admin_lists_and_resets_factors_and_they_outlive_a_restart() {
    let backend = Backend::app();
    let mut gate = start_with_store(&backend, "", FILE_STORE);
    let (_, secret, _) = enrolled(&gate, ALICE);
    let list = gate.admin("GET", "/factors").send().json();
    assert_eq!(list["items"][0]["user"], "alice", "{list}");
    assert_eq!(list["items"][0]["totp"], true);
    assert_eq!(list["items"][0]["recovery_codes_left"], 10);
    assert!(
        !list.to_string().contains("v1."),
        "no sealed secret: {list}"
    );
    let page = gate.admin("GET", "/").send();
    assert!(
        page.body.contains("/users/alice/factors/reset"),
        "{}",
        page.body
    );

    gate.restart();
    let mut jar = Jar::default();
    assert_eq!(jar.password(&gate, ALICE).header("location"), Some(FACTOR));
    assert_eq!(submit(&gate, &mut jar, &code(&secret, 0)).status, 303);

    assert_eq!(
        gate.admin("DELETE", "/users/alice/factors").send().status,
        204
    );
    assert_eq!(
        gate.admin("DELETE", "/users/alice/factors").send().status,
        404
    );
    let mut jar = Jar::default();
    assert_eq!(
        jar.password(&gate, ALICE).header("location"),
        Some("/app?x=1")
    );
    assert!(jar.has("__Host-sid"));
}

/// The factor file is written whole or not at all (a temporary file, fsync,
/// rename): a gate killed with SIGKILL while users set factors up leaves a
/// file that parses, and restarts with every factor it confirmed. The kill
/// lands while enrolments are in flight; whether it hits the write itself is
/// chance, which is why two clients keep the gate writing.
#[test]
fn the_factor_file_is_whole_after_a_kill_during_enrolments() {
    if redis_run() {
        return; // the file store's property; Redis has its own durability
    }
    let backend = Backend::app();
    const PASSWORD: &str = "same-password-1";
    let hash = hash_password(PASSWORD);
    let names: Vec<String> = (0..60).map(|i| format!("user{i}")).collect();
    let users: String = names
        .iter()
        .map(|n| format!("[[user]]\nname = {n:?}\npassword_hash = {hash:?}\n\n"))
        .collect();
    let mut gate = Gate::start_with(
        &config(&backend, "", FILE_STORE),
        &[("users.toml", &users), ("factor.key", FACTOR_KEY)],
        &[("TEST_SECRET", SECRET)],
    );
    // Each enrolment as it was tried: (user, key, confirmed to the client).
    let tried = std::sync::Mutex::new(Vec::<(String, String, bool)>::new());
    let enrol_one = |name: &str| -> Option<()> {
        let mut jar = Jar::default();
        let login = [("username", name), ("password", PASSWORD), ("next", "/app")];
        jar.try_post(&gate, LOGIN, &login)?;
        let page = jar.try_send(gate.get(ENROL).browser())?;
        let (secret, sealed, expires) = enrolment_form(&page);
        let at = {
            let mut t = tried.lock().unwrap();
            t.push((name.to_owned(), secret.clone(), false));
            t.len() - 1
        };
        let confirm = code(&secret, -1);
        let form = [
            ("code", confirm.as_str()),
            ("sealed", &sealed),
            ("expires", &expires),
            ("next", "/app"),
        ];
        let resp = jar.try_post(&gate, ENROL, &form)?;
        assert_eq!(resp.status, 200, "{resp:#?}");
        tried.lock().unwrap()[at].2 = true;
        Some(())
    };
    std::thread::scope(|s| {
        let (first, second) = names.split_at(names.len() / 2);
        let workers: Vec<_> = [first, second]
            .into_iter()
            .map(|half| s.spawn(|| half.iter().try_for_each(|n| enrol_one(n))))
            .collect();
        let confirmed = || tried.lock().unwrap().iter().filter(|t| t.2).count();
        wait_for(Duration::from_secs(60), "six confirmed enrolments", || {
            confirmed() >= 6
        });
        gate.signal("-KILL");
        // A worker cut off mid-answer may panic reading it: that is the kill.
        for w in workers {
            let _ = w.join();
        }
    });
    wait_for(Duration::from_secs(10), "the gate to die", || !gate.alive());

    let file = std::fs::read_to_string(gate.dir().join("credentials.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&file)
        .unwrap_or_else(|e| panic!("a torn credential file ({e}):\n{file}"));
    gate.restart();
    let tried = tried.into_inner().unwrap();
    assert!(
        tried.len() < names.len(),
        "the kill came after the last enrolment"
    );
    for (name, secret, confirmed) in tried {
        let mut jar = Jar::default();
        let login = [
            ("username", name.as_str()),
            ("password", PASSWORD),
            ("next", "/app"),
        ];
        let resp = jar.post(&gate, LOGIN, &login);
        match resp.header("location") {
            // An enrolment cut off by the kill may not have been written.
            Some("/app") if !confirmed => continue,
            Some(FACTOR) => {}
            other => panic!(
                "{name} (confirmed: {confirmed}): {other:?}\n{}",
                gate.output()
            ),
        }
        let resp = submit(&gate, &mut jar, &code(&secret, 0));
        assert_eq!(
            resp.status, 303,
            "{name}'s factor is the one it set up: {resp:#?}"
        );
    }
}

#[test]
fn codes_and_failures_count_on_every_instance_with_redis() {
    let redis = Redis::start();
    let backend = Backend::app();
    let store = format!("{}timeout = \"2s\"\n", redis.store_section());
    let (a, b) = (
        start_with_store(&backend, "", &store),
        start_with_store(&backend, "", &store),
    );
    a.wait_ready(Duration::from_secs(10));
    b.wait_ready(Duration::from_secs(10));
    let (_, secret, _) = enrolled(&a, ALICE);
    // Enrolled on A, asked for on B; a code used on A is refused on B.
    let used = code(&secret, 0);
    let mut on_a = Jar::default();
    on_a.password(&a, ALICE);
    assert_eq!(submit(&a, &mut on_a, &used).status, 303);
    let mut on_b = Jar::default();
    assert_eq!(on_b.password(&b, ALICE).header("location"), Some(FACTOR));
    assert_eq!(submit(&b, &mut on_b, &used).status, 401, "a replay on B");
    // That was one failure; two more on A lock the account on B too.
    let mut again = Jar::default();
    again.password(&a, ALICE);
    assert_eq!(submit(&a, &mut again, "111111").status, 401);
    assert_eq!(submit(&a, &mut again, "222222").status, 401);
    assert_eq!(submit(&b, &mut on_b, &code(&secret, 1)).status, 429);
    // In Redis: the record is sealed, no secret in the clear.
    let keys = redis.cli(&["--scan"]);
    assert!(keys.contains("sessiongate:cred:factor:alice"), "{keys}");
    let record = redis.cli(&["GET", "sessiongate:cred:factor:alice"]);
    assert!(
        !record.contains(&secret) && record.contains("v1."),
        "{record}"
    );
}

#[test]
fn check_refuses_factor_settings_that_cannot_work() {
    let backend = Backend::app();
    let dir = std::env::temp_dir().join(format!("sg-factor-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("users.toml"), users_file(&[ALICE])).unwrap();
    let with = |factor: &str, routes: &str, store: &str| {
        let text = standard_config(
            backend.addr,
            &format!("\n[auth]\nusers_file = \"users.toml\"\n{factor}\n{routes}{store}"),
        );
        format!("[server]\nlisten = [\"127.0.0.1:1\"]\n{text}")
    };
    let keys = "[auth.second_factor]\nkeys = [{ env = \"TEST_FACTOR_KEY\" }]\n";
    let cases = [
        (with(keys, "", "\n[store]\nkind = \"memory\"\n"), "auth.second_factor: needs a credential store"),
        (with("[auth.second_factor]\n", "", FILE_STORE), "auth.second_factor.keys: at least one key"),
        (with(&format!("{keys}mode = \"sometimes\"\n"), "", FILE_STORE), "auth.second_factor.mode"),
        (with(&format!("{keys}required_roles = [\"admin\"]\n"), "", FILE_STORE), "needs mode = \"required\""),
        (with(&format!("{keys}pending_timeout = \"1h\"\n"), "", FILE_STORE), "between 30s and 15m"),
        (with("", "[[route]]\npath = \"/x\"\nsecond_factor = true\n", FILE_STORE), "route[4].second_factor: needs [auth.second_factor]"),
        (with(keys, "[[route]]\npath = \"/x\"\nsecond_factor = true\ncredentials = [\"session\", \"basic\"]\n", FILE_STORE), "takes sessions only"),
        (with(&format!("{keys}passkey_origin = \"http://127.0.0.1:8080\"\n"), "", FILE_STORE), "passkey_origin: must be an origin"),
        (with(&format!("{keys}passkey_origin = \"http://example.com\"\n"), "", FILE_STORE), "http only for localhost"),
        (with(&format!("{keys}passkey_origin = \"https://app.example.com/app\"\n"), "", FILE_STORE), "passkey_origin: must be an origin"),
        (with(&format!("{keys}passkey_login = true\n"), "", FILE_STORE), "passkey_login: needs passkey_origin"),
    ];
    let check = |text: &str| {
        let path = dir.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let out = sessiongate(&["check"], &path)
            .env("TEST_FACTOR_KEY", FACTOR_KEY)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), said)
    };
    for (text, want) in cases {
        let (ok, out) = check(&text);
        assert!(!ok && out.contains(want), "{want}:\n{out}\n{text}");
    }
    let (ok, out) = check(&with(keys, "", FILE_STORE));
    assert!(ok, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The passkey endpoints without a browser: what they refuse (the ceremony
/// itself runs in Chromium, tests/it/browser.rs). A ceremony is started by
/// the caller it is for, finished once, and only with its cookie; the pages
/// that load the passkey script, and only those, allow that one script.
#[test]
fn passkey_ceremonies_need_their_cookie_and_work_once() {
    let backend = Backend::app();
    let gate = start(
        &backend,
        "passkey_origin = \"https://localhost\"\npasskey_login = true",
    );
    let post = |target: &str, cookie: Option<&str>, body: &str| {
        let mut r = gate
            .req("POST", target)
            .header("Content-Type", "application/json")
            .header("Origin", "http://app.test")
            .body(body);
        if let Some(c) = cookie {
            r = r.cookie(c);
        }
        r.send()
    };
    // Anyone may start a passkey sign-in here (passkey_login): the options
    // name this relying party and ask for user verification.
    let started = post("/.sessiongate/factor/passkey/auth", None, "{}");
    assert_eq!(started.status, 200, "{started:#?}");
    let options = started.json();
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(options["publicKey"]["challenge"].as_str().unwrap().len() >= 43);
    let ceremony = started
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-sg_passkey="))
        .expect("a ceremony cookie");
    assert!(ceremony.contains("SameSite=Strict") && ceremony.contains("HttpOnly"));
    let ceremony = ceremony.split(';').next().unwrap().to_owned();
    // A made-up assertion: refused, as often as it is sent (the ceremony is
    // spent only by an answer that verifies, so guesses cost the store
    // nothing); a body that is no assertion: 400.
    let forged = r#"{"credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"authenticatorData":"AAAA","clientDataJSON":"AAAA","signature":"AAAA","userHandle":null}}}"#;
    for body in [forged, forged, "{}"] {
        let resp = post(
            "/.sessiongate/factor/passkey/auth/finish",
            Some(&ceremony),
            body,
        );
        assert_eq!(
            resp.status,
            if body == "{}" { 400 } else { 401 },
            "{resp:#?}"
        );
        assert!(resp.session_cookie().is_none());
    }
    // No ceremony, a forged one, a cross-origin one.
    let resp = post("/.sessiongate/factor/passkey/auth/finish", None, forged);
    assert_eq!(resp.status, 400, "{resp:#?}");
    let resp = post(
        "/.sessiongate/factor/passkey/auth/finish",
        Some("__Host-sg_passkey=eyJ9.00"),
        forged,
    );
    assert_eq!(resp.status, 400, "{resp:#?}");
    let resp = gate
        .req("POST", "/.sessiongate/factor/passkey/auth")
        .header("Origin", "https://evil.example")
        .body("{}")
        .send();
    assert_eq!(resp.status, 403, "{resp:#?}");
    // Registering needs a sign-in.
    let resp = post("/.sessiongate/factor/passkey/register", None, "{}");
    assert_eq!(resp.status, 401, "{resp:#?}");

    // The script, and the pages that load it under a policy that allows it.
    let js = gate.get("/.sessiongate/factor/passkey.js").send();
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    let login = gate.get(LOGIN).send();
    assert!(
        login.body.contains("Sign in with a passkey"),
        "{}",
        login.body
    );
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(login.all("content-security-policy").len(), 1);
    let mut jar = Jar::default();
    jar.password(&gate, ALICE);
    let sessions = jar.get(&gate, "/.sessiongate/sessions");
    let csp = sessions.header("content-security-policy").unwrap();
    assert!(!csp.contains("script-src"), "no script there: {csp}");
    let enrol = jar.get(&gate, ENROL);
    assert!(enrol.body.contains("Add a passkey"));
    let csp = enrol.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // A signed-in user may start a registration: options for them.
    let resp = jar.send(
        gate.req("POST", "/.sessiongate/factor/passkey/register")
            .header("Content-Type", "application/json")
            .body("{}"),
    );
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(resp.json()["publicKey"]["user"]["name"], "alice");
}
