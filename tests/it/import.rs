//! Moving an Express app behind sessiongate (`[import]`) against the real
//! thing: an Express app with express-session and connect-redis
//! (`tests/browser/express_app.mjs`) on a loopback port and its own
//! redis-server. Users sign in through the app (some before a secret
//! rotation, some after); their `connect.sid` cookies are then presented to
//! the gate. Each refusal has its case, made through the app or written to
//! the app's Redis as a restored snapshot would hold it; the dump source
//! repeats the main ones.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::*;

const OLD: &str = "keyboard cat";
const NEW: &str = "the secret of 2027";
const IMPORTED: &str = "sessiongate_express_imports_total{result=\"imported\"}";

/// The Express app on `redis`, signing with `secrets[0]`.
fn app(redis: &Redis, secrets: &[&str]) -> NodeIssuer {
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let mut args = vec!["--redis-url", url.as_str()];
    for s in secrets {
        args.extend(["--secret", s]);
    }
    NodeIssuer::start("express_app.mjs", &args)
}

/// Sign in at the app as `user` (JSON) with more query pairs: its cookie,
/// `connect.sid=<value>`.
fn app_login(app: &NodeIssuer, user: &str, more: &[(&str, &str)]) -> String {
    let mut pairs = vec![("user", user)];
    pairs.extend(more);
    let resp = Req::new(app.addr, "GET", &format!("/login?{}", form(&pairs)))
        .host("app.test")
        .send();
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.all("set-cookie")
        .into_iter()
        .filter_map(|c| c.split(';').next())
        .find(|c| c.starts_with("connect.sid="))
        .expect("the app's cookie")
        .to_owned()
}

/// The session id inside a `connect.sid=s%3A<id>.<sig>` cookie.
fn id_of(cookie: &str) -> String {
    let value = cookie.trim_start_matches("connect.sid=");
    let value = value.replace("%3A", ":");
    let signed = value.strip_prefix("s:").unwrap();
    signed.rsplit_once('.').unwrap().0.to_owned()
}

/// A cookie for session `id` signed with `secret`, as the app makes them.
fn signed(id: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(id.as_bytes());
    let sig = STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
    let sig: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    format!("connect.sid=s%3A{id}.{sig}")
}

/// A record as connect-redis writes it, for `user` (JSON), ending at `expires`.
fn record(user: &str, expires: &str) -> String {
    format!(
        r#"{{"cookie":{{"originalMaxAge":86400000,"expires":"{expires}","httpOnly":true,"path":"/"}},"passport":{{"user":{user}}}}}"#
    )
}

/// `[import]` with `source` and more keys.
fn import_config(source: &str, keys: &str) -> String {
    format!(
        r#"
[import]
secrets = [{{ env = "APP_SECRET_NEW" }}, {{ env = "APP_SECRET_OLD" }}]
until = "2099-01-01T00:00:00Z"
user_path = "passport.user"
roles_path = "roles"
copy = ["cart"]
{source}
{keys}
"#
    )
}

fn gate(backend: &Backend, import: &str) -> Gate {
    Gate::start_with_env(
        &standard_config(backend.addr, import),
        &[("APP_SECRET_NEW", NEW), ("APP_SECRET_OLD", OLD)],
    )
}

fn redis_source(redis: &Redis) -> String {
    format!("redis_url = \"redis://127.0.0.1:{}/0\"", redis.port)
}

/// A protected page with `cookie`: its response (API client: 401 when anonymous).
fn visit(gate: &Gate, cookie: &str) -> Resp {
    gate.get("/dashboard").cookie(cookie).api().send()
}

#[test]
fn the_apps_users_are_signed_in_once_and_then_only_our_cookie_counts() {
    let redis = Redis::start();
    let backend = Backend::app();
    // Alice signed in before the rotation, Bob after it.
    let before = app(&redis, &[OLD]);
    let alice = app_login(
        &before,
        "\"alice\"",
        &[("roles", "[\"staff\"]"), ("cart", "[1,2]")],
    );
    let after = app(&redis, &[NEW, OLD]);
    let bob = app_login(&after, "\"bob\"", &[]);
    // The app itself still knows Alice under the new secret list.
    let whoami = Req::new(after.addr, "GET", "/whoami")
        .host("app.test")
        .cookie(&alice)
        .send();
    assert_eq!(whoami.body, "\"alice\"");

    let gate = gate(&backend, &import_config(&redis_source(&redis), ""));
    let resp = visit(&gate, &format!("theme=dark; {alice}"));
    assert_eq!(resp.status, 200, "{}\n{}", resp.body, gate.output());
    let last = backend.last();
    assert_eq!(last.one("x-user"), Some("alice"));
    assert_eq!(last.one("x-user-roles"), Some("staff"));
    // The app's cookie never reaches the upstream; the others do.
    assert_eq!(last.all("cookie"), vec!["theme=dark"]);
    let ours = resp.session_cookie().expect("sessiongate's cookie");
    let cleared = resp
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("connect.sid="))
        .expect("the app's cookie expired");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/"),
        "{cleared}"
    );
    // The record went after the new session was written: an old cookie works once.
    let key = format!("sess:{}", id_of(&alice));
    assert_eq!(redis.cli(&["EXISTS", &key]).trim(), "0");
    assert_eq!(visit(&gate, &alice).status, 401, "a second use");

    // From then on only our cookie counts, alone.
    let resp = visit(&gate, &ours);
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    let me = gate.get("/.sessiongate/me").cookie(&ours).send().json();
    assert_eq!(me["user"], "alice");
    let data = backend
        .last()
        .one("x-session-data")
        .unwrap_or_default()
        .to_owned();
    // The copied field, and nothing else of the app's session.
    assert_eq!(data, r#"{"cart":[1,2]}"#);

    // Bob's cookie, signed with the new secret.
    assert_eq!(visit(&gate, &bob).status, 200);
    assert_eq!(backend.last().one("x-user"), Some("bob"));
    assert_eq!(gate.metric(IMPORTED), 2);
    // The log names the user, never the cookie, the id or a secret.
    let log = gate.output();
    assert!(
        log.contains("signed in from the app's express-session"),
        "{log}"
    );
    for secret in [id_of(&alice).as_str(), id_of(&bob).as_str(), OLD, NEW] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn every_refusal_is_anonymous_and_counted() {
    let redis = Redis::start();
    let backend = Backend::app();
    let express = app(&redis, &[NEW]);
    let retired_app = app(&redis, &["a retired secret"]);
    let gate = gate(&backend, &import_config(&redis_source(&redis), ""));
    let refused = |cookie: &str, result: &str, why: &str| {
        let name = format!("sessiongate_express_imports_total{{result=\"{result}\"}}");
        let before = gate.metric(&name);
        let resp = visit(&gate, cookie);
        assert_eq!(resp.status, 401, "{why}: {}", gate.output());
        assert_eq!(resp.session_cookie(), None, "{why}");
        assert_eq!(gate.metric(&name), before + 1, "{why}: counted as {result}");
    };

    refused(
        &app_login(&retired_app, "\"carol\"", &[]),
        "bad_signature",
        "a retired secret",
    );
    let good = app_login(&express, "\"dave\"", &[]);
    let tampered = format!("{}x", &good[..good.len() - 1]);
    refused(&tampered, "bad_signature", "a tampered signature");
    refused(&signed("short", NEW), "bad_id", "an id outside the pattern");
    refused(
        &signed("../../a*[?]-0123456789abcdef", NEW),
        "bad_id",
        "an id with a pattern",
    );

    for (user, why) in [
        ("42", "a number, not opted in"),
        ("{\"id\":1}", "an object"),
        ("[\"alice\"]", "an array"),
        ("true", "a boolean"),
        ("null", "null"),
        ("\"root, alice\"", "two names"),
        ("\"ali\\u0001ce\"", "a control character"),
        (&format!("\"{}\"", "x".repeat(300)), "an over-long name"),
    ] {
        refused(&app_login(&express, user, &[]), "bad_identity", why);
    }

    // Written as a restored snapshot holds them: no TTL, whatever the record says.
    let put = |id: &str, value: &str| {
        assert_eq!(
            redis.cli(&["SET", &format!("sess:{id}"), value]).trim(),
            "OK"
        );
        signed(id, NEW)
    };
    let expired = put(
        "expired-0123456789abcdef012345",
        &record("\"erin\"", "2020-01-01T00:00:00.000Z"),
    );
    refused(&expired, "expired", "an expired record still in Redis");
    // Sent again: counted again, but remembered, not looked up.
    let lookups = || {
        let stats = redis.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with("cmdstat_getrange:"))
            .and_then(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let before = lookups();
    assert!(before >= 1);
    refused(&expired, "expired", "the same cookie again");
    assert_eq!(lookups(), before, "a refused cookie is not looked up again");
    let huge = format!(
        r#"{{"cookie":{{"expires":null}},"passport":{{"user":"frank"}},"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    refused(
        &put("huge-0123456789abcdef0123456789", &huge),
        "bad_record",
        "a huge record",
    );
    refused(
        &put("notjson-0123456789abcdef012345", "{not json"),
        "bad_record",
        "not JSON",
    );
    refused(
        &put(
            "nocookie-0123456789abcdef01234",
            r#"{"passport":{"user":"gina"}}"#,
        ),
        "bad_record",
        "no cookie",
    );
    redis.cli(&["RPUSH", "sess:alist-0123456789abcdef0123456", "x"]);
    refused(
        &signed("alist-0123456789abcdef0123456", NEW),
        "bad_record",
        "a list, not a string",
    );
    refused(
        &signed("missing-0123456789abcdef012345", NEW),
        "not_found",
        "no such session",
    );

    // Duplicated: the first wins, as in Express.
    let henry = app_login(&express, "\"henry\"", &[]);
    refused(
        &format!("{tampered}; {henry}"),
        "bad_signature",
        "a bad first cookie",
    );
    let resp = visit(&gate, &format!("{henry}; {tampered}"));
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().one("x-user"), Some("henry"));
    assert_eq!(gate.metric(IMPORTED), 1, "only henry");
}

#[test]
fn numbers_when_opted_in_keep_mode_a_closed_window_and_an_unreachable_redis() {
    let redis = Redis::start();
    let backend = Backend::app();
    let express = app(&redis, &[NEW]);
    // Numbers as names, and the old cookie kept for a rollback.
    let kept = gate(
        &backend,
        &import_config(
            &redis_source(&redis),
            "numeric_users = true\nold_cookie = \"keep\"",
        ),
    );
    let cookie = app_login(&express, "42", &[]);
    let resp = visit(&kept, &cookie);
    assert_eq!(resp.status, 200, "{}", kept.output());
    assert_eq!(backend.last().one("x-user"), Some("42"));
    assert!(resp
        .all("set-cookie")
        .iter()
        .all(|c| !c.starts_with("connect.sid=")));
    let key = format!("sess:{}", id_of(&cookie));
    assert_eq!(redis.cli(&["EXISTS", &key]).trim(), "1", "kept for the app");
    // The app still serves it: a rollback loses no one.
    let whoami = Req::new(express.addr, "GET", "/whoami")
        .host("app.test")
        .cookie(&cookie)
        .send();
    assert_eq!(whoami.body, "42");
    assert_eq!(visit(&kept, &cookie).status, 200, "kept: it imports again");
    drop(kept);

    // The window closed: nothing is looked at.
    let closed = gate_with_window(&backend, &redis, "2020-01-01T00:00:00Z");
    assert_eq!(visit(&closed, &cookie).status, 401);
    assert_eq!(
        closed.metric("sessiongate_express_imports_total{result=\"window_closed\"}"),
        1
    );
    drop(closed);

    // The app's Redis down: protected routes 503, public ones go on.
    let down = gate(
        &backend,
        &import_config("redis_url = \"redis://127.0.0.1:1/0\"", ""),
    );
    assert_eq!(visit(&down, &cookie).status, 503);
    assert_eq!(down.get("/public/x").cookie(&cookie).send().status, 200);
    assert_eq!(
        down.metric("sessiongate_express_imports_total{result=\"unavailable\"}"),
        2
    );
}

fn gate_with_window(backend: &Backend, redis: &Redis, until: &str) -> Gate {
    let config = import_config(&redis_source(redis), "").replace(
        "until = \"2099-01-01T00:00:00Z\"",
        &format!("until = \"{until}\""),
    );
    gate(backend, &config)
}

#[test]
fn a_dump_file_is_a_source_with_the_same_rules() {
    let backend = Backend::app();
    let dump = serde_json::json!({
        "dumped-alice-0123456789abcdef01": serde_json::from_str::<serde_json::Value>(
            &record("\"alice\"", "2099-01-01T00:00:00.000Z")).unwrap(),
        "dumped-old-0123456789abcdef0123": serde_json::from_str::<serde_json::Value>(
            &record("\"bob\"", "2020-01-01T00:00:00.000Z")).unwrap(),
        "dumped-obj-0123456789abcdef0123": serde_json::from_str::<serde_json::Value>(
            &record("{\"id\":7}", "2099-01-01T00:00:00.000Z")).unwrap(),
        "dumped-bad-0123456789abcdef0123": {"passport": {"user": "carol"}},
        "dumped-huge-0123456789abcdef012": {
            "cookie": {"expires": null}, "passport": {"user": "dave"}, "pad": "x".repeat(70_000)
        },
    });
    // "clear" with a dump remembers the sessions taken over in the
    // credential store (Redis in the Redis pass).
    let store = if redis_run() {
        ""
    } else {
        "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n"
    };
    let config = standard_config(
        backend.addr,
        &(import_config("dump_file = \"sessions.json\"", "") + store),
    );
    let gate = Gate::start_with(
        &config,
        &[("sessions.json", &dump.to_string())],
        &[("APP_SECRET_NEW", NEW), ("APP_SECRET_OLD", OLD)],
    );
    let alice = signed("dumped-alice-0123456789abcdef01", OLD);
    let resp = visit(&gate, &alice);
    assert_eq!(resp.status, 200, "{}", gate.output());
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(visit(&gate, &alice).status, 401, "cleared: once");
    for (id, result) in [
        ("dumped-old-0123456789abcdef0123", "expired"),
        ("dumped-obj-0123456789abcdef0123", "bad_identity"),
        ("dumped-bad-0123456789abcdef0123", "bad_record"),
        ("dumped-huge-0123456789abcdef012", "bad_record"),
        ("dumped-none-0123456789abcdef012", "not_found"),
    ] {
        assert_eq!(visit(&gate, &signed(id, NEW)).status, 401, "{id}");
        let name = format!("sessiongate_express_imports_total{{result=\"{result}\"}}");
        assert!(gate.metric(&name) >= 1, "{id}: {result}");
    }
    // The cookie's own checks come first, whatever the source.
    let carol = signed("dumped-bad-0123456789abcdef0123", "a retired secret");
    let tampered = format!("{}x", &alice[..alice.len() - 1]);
    for (cookie, result) in [
        (carol.as_str(), "bad_signature"),
        (tampered.as_str(), "bad_signature"),
        (&signed("short", NEW), "bad_id"),
    ] {
        let name = format!("sessiongate_express_imports_total{{result=\"{result}\"}}");
        let before = gate.metric(&name);
        assert_eq!(visit(&gate, cookie).status, 401, "{cookie}");
        assert_eq!(gate.metric(&name), before + 1, "{cookie}: {result}");
    }
}

#[test]
fn check_refuses_an_import_that_could_touch_our_keys() {
    let dir = scratch_dir();
    let check = |import: &str, store: &str| {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n{}{store}",
            standard_config("127.0.0.1:9".parse().unwrap(), import)
        );
        let path = dir.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let out = sessiongate(&["check"], &path)
            .env("APP_SECRET_NEW", NEW)
            .env("APP_SECRET_OLD", OLD)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), said)
    };
    let ours =
        "\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\nprefix = \"app:\"\n";
    // The base passes: the app's sessions beside ours, under their own prefix.
    let (ok, said) = check(
        &import_config("redis_url = \"redis://127.0.0.1:6379/0\"", ""),
        ours,
    );
    assert!(ok, "{said}");
    for (import, want) in [
        (
            "redis_url = \"redis://127.0.0.1/0\"\nredis_prefix = \"app:sess:\"",
            "import.redis_prefix: \"app:sess:\" and store.prefix \"app:\" could name the same keys",
        ),
        (
            "redis_url = \"redis://127.0.0.1:6379\"\nredis_prefix = \"\"",
            "could name the same keys",
        ),
        ("", "give exactly one source"),
        (
            "redis_url = \"redis://127.0.0.1:6379/0\"\ndump_file = \"x.json\"",
            "give exactly one source",
        ),
        (
            "redis_url = \"redis://:pw@127.0.0.1:6379/1\"",
            "import.redis_url: must not carry credentials",
        ),
    ] {
        let (ok, said) = check(&import_config(import, ""), ours);
        assert!(!ok && said.contains(want), "{import}: {said}");
    }
    // Another database of the same server is another keyspace.
    let (ok, said) = check(
        &import_config(
            "redis_url = \"redis://127.0.0.1:6379/1\"\nredis_prefix = \"app:\"",
            "",
        ),
        ours,
    );
    assert!(ok, "{said}");
    for (keys, want) in [
        ("old_cookie = \"maybe\"", "import.old_cookie"),
        (
            "cookie = \"__Host-sid\"",
            "import.cookie: must not be sessiongate's own",
        ),
        ("copy = [\"cookie\"]", "import.copy"),
    ] {
        let mut config = import_config("redis_url = \"redis://127.0.0.1:6379/1\"", keys);
        if keys.starts_with("copy") {
            config = config.replacen("copy = [\"cart\"]\n", "", 1);
        }
        let (ok, said) = check(&config, ours);
        assert!(!ok && said.contains(want), "{keys}: {said}");
    }
    let (ok, said) = check(
        &import_config("redis_url = \"redis://127.0.0.1:6379/1\"", "")
            .replace("2099-01-01T00:00:00Z", "next spring"),
        ours,
    );
    assert!(!ok && said.contains("import.until"), "{said}");
}

/// An import signs in only whom sessiongate itself would: the users file
/// decides for the names it has (spelling, roles, disabled), an account
/// that must pass a second factor signs in itself, and with "clear" a
/// cookie that is refused is expired too.
#[test]
fn sessiongates_own_rules_apply_to_imported_users() {
    let redis = Redis::start();
    let backend = Backend::app();
    let express = app(&redis, &[NEW]);
    let users = users_file(&[
        ("Alice", "alice-password-1", "staff", false),
        ("bob", "bob-password-1", "", true),
    ]);
    let store = if redis_run() {
        ""
    } else {
        "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n"
    };
    let extra = format!(
        "\n[auth]\nusers_file = \"users.toml\"\n[auth.second_factor]\nkeys = [{{ file = \"factor.key\" }}]\nmode = \"required\"\nrequired_roles = [\"admin\"]\n{}{store}",
        import_config(&redis_source(&redis), "")
    );
    let gate = Gate::start_with(
        &standard_config(backend.addr, &extra),
        &[
            ("users.toml", &users),
            ("factor.key", "import-test-factor-key-0123456789abcdef0123"),
        ],
        &[("APP_SECRET_NEW", NEW), ("APP_SECRET_OLD", OLD)],
    );
    // The file's spelling and roles, not the app's.
    let alice = app_login(&express, "\"alice\"", &[("roles", "[\"admin\"]")]);
    assert_eq!(visit(&gate, &alice).status, 200, "{}", gate.output());
    assert_eq!(backend.last().one("x-user"), Some("Alice"));
    assert_eq!(backend.last().one("x-user-roles"), Some("staff"));

    let count = |result: &str| {
        gate.metric(&format!(
            "sessiongate_express_imports_total{{result=\"{result}\"}}"
        ))
    };
    // Disabled in the users file.
    let bob = app_login(&express, "\"bob\"", &[]);
    let resp = visit(&gate, &bob);
    assert_eq!(resp.status, 401);
    assert_eq!(count("disabled"), 1);
    // Expired with the refusal: the browser stops sending it.
    assert!(
        resp.all("set-cookie")
            .iter()
            .any(|c| c.starts_with("connect.sid=;") && c.contains("Max-Age=0")),
        "{:?}",
        resp.headers
    );
    // A role that must pass a second factor: never by an import.
    let carol = app_login(&express, "\"carol\"", &[("roles", "[\"admin\"]")]);
    assert_eq!(visit(&gate, &carol).status, 401);
    assert_eq!(count("needs_factor"), 1);
    assert_eq!(count("imported"), 1);
}

/// With `save_uninitialized`, a browser may hold an anonymous session of
/// ours first: the app's cookie still signs it in, with a new id.
#[test]
fn an_anonymous_session_of_ours_does_not_stop_an_import() {
    let redis = Redis::start();
    let backend = Backend::app();
    let express = app(&redis, &[NEW]);
    let config = with_keys(
        standard_config(backend.addr, &import_config(&redis_source(&redis), "")),
        "save_uninitialized = true",
    );
    let gate = Gate::start_with_env(&config, &[("APP_SECRET_NEW", NEW), ("APP_SECRET_OLD", OLD)]);
    let anonymous = gate
        .get("/public/x")
        .send()
        .session_cookie()
        .expect("an anonymous session");
    let dave = app_login(&express, "\"dave\"", &[]);
    let resp = visit(&gate, &format!("{anonymous}; {dave}"));
    assert_eq!(resp.status, 200, "{}", gate.output());
    assert_eq!(backend.last().one("x-user"), Some("dave"));
    let ours = resp.session_cookie().expect("a new session");
    assert_ne!(ours, anonymous, "a new id");
}
