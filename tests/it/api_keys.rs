//! API keys through the binary: made on the admin API (or by a user on their
//! own sessions page), sent as `Authorization: Bearer sgk_<id>_<secret>` to
//! the routes that take `api_key`. A key acts as its owner (a users-file
//! user) with its roles that the owner still has; the upstream never sees the
//! key; a wrong, unknown, malformed, expired, revoked key or a disabled
//! owner's is 401 `invalid_token`, never a redirect, and guesses are throttled
//! per address with the password logins. The credential store is the file
//! beside the memory store (`store.credentials_file`: mode 0600, no secret,
//! kept across a restart) or Redis, where a revocation on one instance is
//! honoured by another within the store's bound.
//!
//! Tests that do not name a store run against the file, or against Redis
//! when the suite does (`SESSIONGATE_TEST_STORE=redis`, see [`store`]).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// The challenge of a refused key (RFC 6750 §3.1).
const INVALID_TOKEN: &str = "Bearer realm=\"sessiongate\", error=\"invalid_token\"";

/// The memory store with its credential file.
const FILE_STORE: &str = "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n";

/// The credential store of the tests that do not name one: the file, or
/// nothing here when the suite runs against Redis ([`Gate`] then adds its
/// own Redis, where the keys live).
fn store() -> &'static str {
    if redis_run() {
        ""
    } else {
        FILE_STORE
    }
}

/// `/api` takes API keys only; under it `/api/deploy` needs the role
/// `deploy`. Routes 4 and 5 of the config.
const KEY_ROUTES: &str = r#"
[[route]]
path = "/api"
credentials = ["api_key"]

[[route]]
path = "/api/deploy"
roles = ["deploy"]
credentials = ["api_key"]
"#;

/// [`standard_config`] with the users file, `[auth]` keys `auth`, the key
/// routes, `extra` (more routes or sections) and `store` last.
fn config(backend: std::net::SocketAddr, auth: &str, extra: &str, store: &str) -> String {
    standard_config(
        backend,
        &format!("\n[auth]\nusers_file = \"users.toml\"\n{auth}\n{KEY_ROUTES}{extra}{store}"),
    )
}

fn start(backend: &Backend, users: &str, auth: &str, extra: &str) -> Gate {
    start_with_store(backend, users, auth, extra, store())
}

fn start_with_store(backend: &Backend, users: &str, auth: &str, extra: &str, store: &str) -> Gate {
    Gate::start_with(
        &config(backend.addr, auth, extra, store),
        &[("users.toml", users)],
        &[("TEST_SECRET", SECRET)],
    )
}

/// `POST /keys` on the admin API with `body`.
fn create(gate: &Gate, body: &str) -> Resp {
    gate.admin("POST", "/keys")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
}

/// Make a key on the admin API: the key, and the answer.
fn new_key(gate: &Gate, body: Value) -> (String, Value) {
    let resp = create(gate, &body.to_string());
    assert_eq!(resp.status, 201, "{body}: {resp:#?}");
    let made = resp.json();
    let key = made["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key: {made}"))
        .to_owned();
    let (id, _) = parts(&key);
    assert_eq!(made["id"], id, "{made}");
    (key, made)
}

/// The id and secret of a key, checking its format:
/// `sgk_<16 lower hex>_<64 lower hex>`.
fn parts(key: &str) -> (&str, &str) {
    let lower_hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let (id, secret) = key
        .strip_prefix("sgk_")
        .and_then(|rest| rest.split_once('_'))
        .unwrap_or_else(|| panic!("not a key: {key:?}"));
    assert!(
        lower_hex(id, 16) && lower_hex(secret, 64),
        "not a key: {key:?}"
    );
    (id, secret)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `GET path` with the key.
fn with_key(gate: &Gate, path: &str, key: &str) -> Resp {
    gate.get(path).header("Authorization", &bearer(key)).send()
}

/// The roles the upstream was given, as a sorted list.
fn roles_seen(seen: &Recorded) -> Vec<String> {
    let mut roles: Vec<String> = seen
        .one("x-user-roles")
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    roles.sort();
    roles
}

/// A JSON list of strings, sorted.
fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// `resp` is a refused key: 401 with the challenge, no login redirect.
fn assert_invalid_token(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {resp:#?}");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(INVALID_TOKEN),
        "{what}: {resp:#?}"
    );
    assert_eq!(resp.header("location"), None, "{what}");
}

/// A 400 with the JSON error body.
fn assert_bad_request(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 400, "{what}: {resp:#?}");
    assert!(resp.json()["error"].is_string(), "{what}: {resp:#?}");
}

/// `GET /keys[?user=]` on the admin API: the items.
fn listed(gate: &Gate, query: &str) -> Vec<Value> {
    let resp = gate.admin("GET", &format!("/keys{query}")).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    resp.json()["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {resp:#?}"))
        .clone()
}

/// Replace the users file (by rename) and wait until the gate has reloaded it.
fn reload_users(gate: &Gate, users: &str) {
    let generation = gate.stats()["config"]["generation"].as_u64().unwrap();
    let path = gate.dir().join("users.toml");
    std::fs::write(gate.dir().join("users.toml.new"), users).unwrap();
    std::fs::rename(gate.dir().join("users.toml.new"), path).unwrap();
    wait_for(Duration::from_secs(10), "the reload", || {
        gate.stats()["config"]["generation"].as_u64() == Some(generation + 1)
    });
}

#[test]
fn an_admin_made_key_acts_as_its_owner_and_survives_a_restart() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "deploy,read", false)]);
    // The file itself is under test: the memory store in either suite.
    let mut gate = start_with_store(&backend, &users, "", "", FILE_STORE);
    let file = gate.dir().join("credentials.json");
    assert!(!file.exists(), "made at the first key, not before");

    let (key, made) = new_key(
        &gate,
        json!({"owner": "alice", "name": "ci", "roles": ["deploy"], "expires_in": "30d"}),
    );
    let (id, secret) = parts(&key);
    assert_eq!(made["owner"], "alice", "{made}");
    assert_eq!(made["name"], "ci", "{made}");
    assert_eq!(made["roles"], json!(["deploy"]), "{made}");
    let created = made["created_at"].as_u64().expect("created_at");
    assert_eq!(
        made["expires_at"].as_u64(),
        Some(created + 30 * 86400),
        "{made}"
    );

    for _ in 0..2 {
        // The second is answered from the remembered record.
        let resp = gate
            .get("/api/items")
            .header("Authorization", &bearer(&key))
            .header("X-User", "mallory")
            .send();
        assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
        let seen = backend.last();
        assert_eq!(seen.all("x-user"), vec!["alice"]);
        assert_eq!(seen.one("x-user-roles"), Some("deploy"));
        assert_eq!(seen.one("authorization"), None, "a credential for us only");
    }
    // A route that needs the key's role.
    assert_eq!(with_key(&gate, "/api/deploy/now", &key).status, 200);

    // The access line names the credential and the owner; the secret is
    // never logged.
    wait_for(Duration::from_secs(3), "the access lines", || {
        gate.output().matches("path=\"/api/items\"").count() == 2
    });
    let out = gate.output();
    let line = out.lines().find(|l| l.contains("/api/items")).unwrap();
    assert!(line.contains("credential=\"api_key\""), "{line}");
    assert!(line.contains("user=\"alice\""), "{line}");
    assert!(!out.contains(secret), "the secret reached the log:\n{out}");

    // The file: the key's record, owner-only, without the secret, and no
    // temporary file left beside it.
    let text = std::fs::read_to_string(&file).expect("the credentials file");
    let stored: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(stored["version"], 1, "{stored}");
    assert!(stored["api_keys"].get(id).is_some(), "{stored}");
    assert!(!text.contains(secret), "the secret is in the file:\n{text}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    let beside: Vec<String> = std::fs::read_dir(gate.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("credentials"))
        .collect();
    assert_eq!(
        beside,
        vec!["credentials.json"],
        "a write left a file behind"
    );

    // The admin list: every field but the hash and the secret; last use noted.
    wait_for(Duration::from_secs(3), "the key's last use", || {
        listed(&gate, "")
            .first()
            .is_some_and(|k| k["last_used_at"].is_u64())
    });
    let list = gate.admin("GET", "/keys").send();
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{list:#?}");
    let item = &items[0];
    let mut fields: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "created_at",
            "created_by",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "owner",
            "roles"
        ],
        "{item}"
    );
    assert_eq!(item["id"], id);
    assert_eq!(item["owner"], "alice");
    assert_eq!(item["name"], "ci");
    assert_eq!(item["roles"], json!(["deploy"]));
    assert_eq!(item["created_at"].as_u64(), Some(created));
    assert_eq!(item["expires_at"], made["expires_at"]);
    assert_eq!(item["created_by"], "admin");
    assert!(!list.body.contains(secret), "{list:#?}");
    assert_eq!(listed(&gate, "?user=alice").len(), 1);
    assert_eq!(listed(&gate, "?user=bob").len(), 0);

    // A restart on the same directory: the file is read again.
    gate.restart();
    let before = backend.count();
    let resp = with_key(&gate, "/api/items", &key);
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
    assert_eq!(backend.count(), before + 1);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(backend.last().one("x-user-roles"), Some("deploy"));
    assert_eq!(listed(&gate, "")[0]["id"], id);
}

#[test]
fn a_keys_roles_are_at_most_what_its_owner_has_now() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "deploy,read", false)]);
    let gate = start(&backend, &users, "", "");

    // A role the owner lacks is refused, and no key is made.
    let resp = create(
        &gate,
        &json!({"owner": "alice", "name": "ci", "roles": ["deploy", "admin"]}).to_string(),
    );
    assert_bad_request(&resp, "a role alice lacks");
    assert!(listed(&gate, "").is_empty());

    // Without roles: the owner's.
    let (all, made) = new_key(&gate, json!({"owner": "alice", "name": "everything"}));
    assert_eq!(sorted(&made["roles"]), vec!["deploy", "read"], "{made}");
    assert_eq!(made["expires_at"], Value::Null, "no expiry: {made}");
    let (deploy, _) = new_key(
        &gate,
        json!({"owner": "alice", "name": "deployer", "roles": ["deploy"]}),
    );
    let (read, _) = new_key(
        &gate,
        json!({"owner": "alice", "name": "reader", "roles": ["read"]}),
    );

    assert_eq!(with_key(&gate, "/api/x", &all).status, 200);
    assert_eq!(roles_seen(&backend.last()), vec!["deploy", "read"]);
    assert_eq!(with_key(&gate, "/api/deploy/x", &deploy).status, 200);
    assert_eq!(roles_seen(&backend.last()), vec!["deploy"]);
    let resp = with_key(&gate, "/api/deploy/x", &read);
    assert_eq!(resp.status, 403, "the key lacks the role: {resp:#?}");

    // Alice loses `deploy`: so do her keys, at once.
    reload_users(
        &gate,
        &users_file(&[("alice", "alice-password-1", "read", false)]),
    );
    let before = backend.count();
    for key in [&all, &deploy] {
        let resp = with_key(&gate, "/api/deploy/x", key);
        assert_eq!(resp.status, 403, "{resp:#?}");
    }
    assert_eq!(backend.count(), before, "neither reached the upstream");
    assert_eq!(with_key(&gate, "/api/x", &all).status, 200);
    assert_eq!(roles_seen(&backend.last()), vec!["read"]);
    assert_eq!(with_key(&gate, "/api/x", &deploy).status, 200);
    assert_eq!(roles_seen(&backend.last()), Vec::<String>::new());
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    // And a new key cannot ask for it.
    let resp = create(
        &gate,
        &json!({"owner": "alice", "name": "again", "roles": ["deploy"]}).to_string(),
    );
    assert_bad_request(&resp, "a role alice lost");
}

#[test]
fn the_admin_api_refuses_what_it_cannot_make() {
    let backend = Backend::app();
    let users = users_file(&[
        ("alice", "alice-password-1", "read", false),
        ("dora", "dora-password-1", "read", true),
    ]);
    let gate = start(&backend, &users, "", "");
    let cases = [
        (
            "an unknown owner",
            json!({"owner": "nobody", "name": "ci"}).to_string(),
        ),
        (
            "a disabled owner",
            json!({"owner": "dora", "name": "ci"}).to_string(),
        ),
        (
            "an empty name",
            json!({"owner": "alice", "name": ""}).to_string(),
        ),
        (
            "a long name",
            json!({"owner": "alice", "name": "n".repeat(65)}).to_string(),
        ),
        (
            "a control character",
            json!({"owner": "alice", "name": "a\u{7}b"}).to_string(),
        ),
        ("no owner", json!({"name": "ci"}).to_string()),
        (
            "a bad lifetime",
            json!({"owner": "alice", "name": "ci", "expires_in": "soon"}).to_string(),
        ),
        ("not JSON", "{\"owner\": \"alice\", \"name\": ".to_owned()),
    ];
    for (what, body) in &cases {
        assert_bad_request(&create(&gate, body), what);
    }
    // A cross-site form can post a JSON-shaped body as text/plain (no CORS
    // preflight) with the admin's cached Basic login: only JSON is taken.
    let body = json!({"owner": "alice", "name": "csrf"}).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut req = gate.admin("POST", "/keys").body(&body);
        if !content_type.is_empty() {
            req = req.header("Content-Type", content_type);
        }
        let resp = req.send();
        assert_eq!(resp.status, 415, "{content_type}: {resp:#?}");
    }
    assert!(listed(&gate, "").is_empty(), "nothing was made");
    let resp = gate.admin("DELETE", "/keys/0123456789abcdef").send();
    assert_eq!(resp.status, 404, "{resp:#?}");
    // The token guards the keys like everything else.
    let resp = gate
        .admin_anonymous("POST", "/keys")
        .header("Content-Type", "application/json")
        .body(&json!({"owner": "alice", "name": "ci"}).to_string())
        .send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(gate.admin_anonymous("GET", "/keys").send().status, 401);
    assert!(listed(&gate, "").is_empty());

    // Without a credential store there are no keys to make.
    let bare = Gate::start_with(
        &standard_config(
            backend.addr,
            "\n[auth]\nusers_file = \"users.toml\"\n\n[store]\nkind = \"memory\"\n",
        ),
        &[("users.toml", &users)],
        &[("TEST_SECRET", SECRET)],
    );
    let resp = create(&bare, &json!({"owner": "alice", "name": "ci"}).to_string());
    assert_eq!(resp.status, 404, "{resp:#?}");
    assert!(resp.json()["error"].is_string(), "{resp:#?}");
}

#[test]
fn a_key_stops_at_its_expiry() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "read", false)]);
    let gate = start(&backend, &users, "", "");
    let (key, made) = new_key(
        &gate,
        json!({"owner": "alice", "name": "short", "expires_in": "4s"}),
    );
    let created = made["created_at"].as_u64().unwrap();
    // Whole seconds: it lives 3 to 4 s, room for a loaded machine's first use.
    assert_eq!(made["expires_at"].as_u64(), Some(created + 4), "{made}");
    let resp = with_key(&gate, "/api/x", &key);
    assert_eq!(resp.status, 200, "fresh: {resp:#?}");
    let start = Instant::now();
    wait_for(Duration::from_secs(8), "the key to expire", || {
        with_key(&gate, "/api/x", &key).status != 200
    });
    eprintln!(
        "a 4 s key refused {:?} after its first use",
        start.elapsed()
    );
    assert_invalid_token(&with_key(&gate, "/api/x", &key), "expired");
}

#[test]
fn a_disabled_owner_or_a_revocation_stops_keys() {
    let backend = Backend::app();
    let alice = ("alice", "alice-password-1", "read", false);
    let bob = ("bob", "bob-password-1", "read", false);
    let carol = ("carol", "carol-password-1", "read", false);
    let gate = start(&backend, &users_file(&[alice, bob, carol]), "", "");
    let make = |owner: &str, name: &str| new_key(&gate, json!({"owner": owner, "name": name}));
    let (a1, a1_made) = make("alice", "one");
    let (a2, _) = make("alice", "two");
    let (b, _) = make("bob", "bob's");
    let (c, _) = make("carol", "carol's");
    for key in [&a1, &a2, &b, &c] {
        assert_eq!(with_key(&gate, "/api/x", key).status, 200);
    }

    // Carol is disabled in the users file: her key stops at the reload.
    reload_users(
        &gate,
        &users_file(&[alice, bob, ("carol", "carol-password-1", "read", true)]),
    );
    assert_invalid_token(&with_key(&gate, "/api/x", &c), "a disabled owner");
    assert_eq!(with_key(&gate, "/api/x", &a1).status, 200, "others stay");
    assert_bad_request(
        &create(&gate, &json!({"owner": "carol", "name": "new"}).to_string()),
        "a key for a disabled owner",
    );

    // One of alice's keys is revoked: refused at once; her other stays.
    let id = a1_made["id"].as_str().unwrap();
    let resp = gate.admin("DELETE", &format!("/keys/{id}")).send();
    assert_eq!(resp.status, 204, "{resp:#?}");
    assert_invalid_token(&with_key(&gate, "/api/x", &a1), "a revoked key");
    assert_eq!(with_key(&gate, "/api/x", &a2).status, 200);
    let resp = gate.admin("DELETE", &format!("/keys/{id}")).send();
    assert_eq!(resp.status, 404, "revoked already: {resp:#?}");

    // All of alice's keys: the one left and a new one.
    let (a3, _) = make("alice", "three");
    assert_eq!(with_key(&gate, "/api/x", &a3).status, 200);
    let resp = gate.admin("DELETE", "/users/alice/keys").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(resp.json(), json!({"revoked": 2}), "{resp:#?}");
    for key in [&a2, &a3] {
        assert_invalid_token(
            &with_key(&gate, "/api/x", key),
            "revoked with all of alice's",
        );
    }
    assert_eq!(with_key(&gate, "/api/x", &b).status, 200, "bob untouched");
    assert_eq!(backend.last().one("x-user"), Some("bob"));
    assert!(listed(&gate, "?user=alice").is_empty());
    let mut owners: Vec<String> = listed(&gate, "")
        .iter()
        .map(|k| k["owner"].as_str().unwrap().to_owned())
        .collect();
    owners.sort();
    assert_eq!(owners, vec!["bob", "carol"]);
    let resp = gate.admin("DELETE", "/users/alice/keys").send();
    assert_eq!(resp.json(), json!({"revoked": 0}), "{resp:#?}");
}

#[test]
fn a_bad_key_is_a_401_invalid_token_and_guesses_are_throttled() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "read", false)]);
    let gate = start(&backend, &users, "ip_max_failures = 3", "");
    let (key, _) = new_key(&gate, json!({"owner": "alice", "name": "ci"}));
    let (id, secret) = parts(&key);
    assert_eq!(with_key(&gate, "/api/x", &key).status, 200);
    let before = backend.count();

    // A wrong secret of the right shape for a real id; an id no key has;
    // a key of the wrong shape. Navigations, so a redirect would show.
    let wrong_secret = format!("sgk_{id}_{}", "0".repeat(64));
    assert_ne!(&wrong_secret[21..], secret);
    let unknown_id = format!("sgk_0123456789abcdef_{secret}");
    assert_ne!(id, "0123456789abcdef");
    let malformed = format!("sgk_{id}_{}", &secret[..63]);
    for (what, bad) in [
        ("a wrong secret", &wrong_secret),
        ("an unknown id", &unknown_id),
        ("a malformed key", &malformed),
    ] {
        let resp = gate
            .get("/api/x")
            .browser()
            .header("Authorization", &bearer(bad))
            .send();
        assert_invalid_token(&resp, what);
    }
    // Three failures from this address: the next guess waits.
    let resp = with_key(&gate, "/api/x", &wrong_secret);
    assert_eq!(resp.status, 429, "{resp:#?}");
    let retry: u64 = resp
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Shared with the password login: the address is locked there too.
    let resp = gate.login_form("alice", "alice-password-1", "/");
    assert_eq!(resp.status, 429, "{resp:#?}");
    assert_eq!(backend.count(), before, "no guess reached the upstream");
    let out = gate.output();
    assert!(!out.contains(secret), "a secret reached the log:\n{out}");
}

#[test]
fn a_key_is_taken_only_where_the_route_lists_it() {
    let backend = Backend::app();
    let passing = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "read", false)]);
    let jwt = format!(
        "\n[[auth.jwt]]\nid = \"ci\"\nissuer = \"http://{dead}\"\njwks_url = \"http://{dead}/jwks\"\naudiences = [\"urn:sessiongate:test\"]\nalgorithms = [\"RS256\"]\n",
        dead = dead_addr()
    );
    let extra = format!(
        r#"
[[route]]
path = "/basic"
credentials = ["basic"]

[[route]]
path = "/bearer"
credentials = ["bearer"]

[[route]]
path = "/mixed"
credentials = ["session", "api_key"]

[[route]]
path = "/any"
credentials = ["basic", "bearer", "api_key"]

[[route]]
path = "/passed"
credentials = ["api_key"]
upstream = "passing"

[upstream.passing]
addrs = ["{}"]
pass_authorization = true
health_check_interval = "1h"

[routes]
default_upstream = "app"
"#,
        passing.addr
    );
    let gate = start(&backend, &users, &jwt, &extra);
    let (key, _) = new_key(&gate, json!({"owner": "alice", "name": "ci"}));
    let cookie = gate.login("carol", "user");
    let before = backend.count();

    // A session route ignores the key: no identity, no redirect for a
    // request that carries Authorization, even a navigation.
    let resp = gate
        .get("/private")
        .browser()
        .header("Authorization", &bearer(&key))
        .send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.header("www-authenticate"), None, "it takes no bearer");
    // A Basic route: its own challenge, no identity.
    let resp = gate
        .get("/basic")
        .browser()
        .header("Authorization", &bearer(&key))
        .send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("location"), None);
    assert!(
        resp.all("www-authenticate")
            .iter()
            .all(|c| c.starts_with("Basic")),
        "{resp:#?}"
    );
    // A route of JWTs: the key is no JWT.
    let resp = gate
        .get("/bearer")
        .browser()
        .header("Authorization", &bearer(&key))
        .send();
    assert_invalid_token(&resp, "a key on a JWT route");
    // A key route ignores the session: the challenge, no redirect.
    let resp = gate.get("/api/x").browser().cookie(&cookie).send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("location"), None);
    // A bearer token that is no key, where only keys are taken.
    for token in ["not-a-key", "a.b.c"] {
        let resp = gate
            .get("/api/x")
            .header("Authorization", &bearer(token))
            .send();
        assert_invalid_token(&resp, token);
    }
    assert_eq!(backend.count(), before, "none reached the upstream");

    // Where it is listed, the same key is taken, beside the others.
    for path in ["/api/x", "/mixed", "/any"] {
        let resp = with_key(&gate, path, &key);
        assert_eq!(resp.status, 200, "{path}: {resp:#?}");
        assert_eq!(backend.last().one("x-user"), Some("alice"), "{path}");
        assert_eq!(backend.last().one("authorization"), None, "{path}");
    }
    assert_eq!(gate.get("/mixed").cookie(&cookie).send().status, 200);
    assert_eq!(backend.last().one("x-user"), Some("carol"));
    // An upstream that checks Authorization itself gets the key too.
    let resp = with_key(&gate, "/passed/x", &key);
    assert_eq!(resp.status, 200, "{resp:#?}");
    let seen = passing.last();
    assert_eq!(seen.one("x-user"), Some("alice"));
    assert_eq!(seen.one("authorization"), Some(bearer(&key).as_str()));
}

#[test]
fn keys_live_in_redis_and_a_revocation_reaches_every_instance() {
    let redis = Redis::start();
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "deploy,read", false)]);
    let store = format!("{}timeout = \"2s\"\n", redis.store_section());
    let (a, b) = (
        start_with_store(&backend, &users, "", "", &store),
        start_with_store(&backend, &users, "", "", &store),
    );
    a.wait_ready(Duration::from_secs(10));
    b.wait_ready(Duration::from_secs(10));

    let (key, made) = new_key(
        &a,
        json!({"owner": "alice", "name": "ci", "roles": ["deploy"]}),
    );
    let (id, secret) = parts(&key);
    // Made on A, taken on B (twice: B now remembers it).
    for _ in 0..2 {
        let resp = with_key(&b, "/api/x", &key);
        assert_eq!(resp.status, 200, "{resp:#?}\n{}", b.output());
        assert_eq!(backend.last().one("x-user"), Some("alice"));
        assert_eq!(backend.last().one("x-user-roles"), Some("deploy"));
    }
    assert_eq!(listed(&b, "")[0]["id"], made["id"], "B's admin lists it");

    // In Redis: the record under the prefix, never the secret.
    let keys = redis.cli(&["--scan"]);
    assert!(
        keys.lines()
            .any(|k| k == format!("sessiongate:cred:key:{id}")),
        "{keys}"
    );
    let mut everything = keys.clone();
    for k in keys.lines() {
        for cmd in [
            &["GET", k][..],
            &["HGETALL", k],
            &["SMEMBERS", k],
            &["ZRANGE", k, "0", "-1"],
            &["DUMP", k],
        ] {
            everything.push_str(&redis.cli(cmd));
        }
    }
    assert!(!everything.contains(secret), "the secret is in Redis");

    // Revoked on A: A refuses at once, B within the store's bound.
    let resp = a.admin("DELETE", &format!("/keys/{id}")).send();
    assert_eq!(resp.status, 204, "{resp:#?}");
    let start = Instant::now();
    assert_invalid_token(&with_key(&a, "/api/x", &key), "revoked here");
    wait_for(
        Duration::from_secs(3),
        "B to refuse the revoked key",
        || with_key(&b, "/api/x", &key).status == 401,
    );
    eprintln!(
        "a revoked key refused on the other instance after {:?}",
        start.elapsed()
    );
    assert_invalid_token(&with_key(&b, "/api/x", &key), "revoked on A");
    assert!(listed(&b, "").is_empty());
}

/// The key an HTML page shows: the first `sgk_...` in it.
fn key_in(page: &str) -> String {
    let at = page
        .find("sgk_")
        .unwrap_or_else(|| panic!("no key on the page:\n{page}"));
    let key: String = page[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    parts(&key);
    key
}

#[test]
fn a_user_makes_and_revokes_their_own_keys_on_the_sessions_page() {
    let backend = Backend::app();
    let users = users_file(&[
        ("alice", "alice-password-1", "deploy,read", false),
        ("bob", "bob-password-1", "read", false),
    ]);
    let gate = start(&backend, &users, "", "");
    let login = gate.login_form("alice", "alice-password-1", "/");
    assert_eq!(login.status, 303, "{login:#?}");
    let alice = login.session_cookie().expect("a session");
    let post = |path: &str, cookie: Option<&str>, body: &str| {
        let mut req = gate
            .req("POST", &format!("/.sessiongate{path}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            req = req.cookie(c);
        }
        req
    };

    // Made from the page (a same-origin form post): shown once.
    let body = form(&[("name", "laptop script"), ("expires_in", "30d")]);
    let resp = post("/keys", Some(alice.as_str()), &body)
        .header("Origin", "http://app.test")
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{resp:#?}"
    );
    assert_eq!(
        resp.header("cache-control"),
        Some("no-store"),
        "a page with a secret is never cached"
    );
    let key = key_in(&resp.body);
    let (id, secret) = parts(&key);
    // It acts as alice, with her roles.
    let resp = with_key(&gate, "/api/deploy/x", &key);
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(roles_seen(&backend.last()), vec!["deploy", "read"]);
    // With no lifetime given: until revoked.
    let body = form(&[("name", "forever"), ("expires_in", "")]);
    let resp = post("/keys", Some(alice.as_str()), &body).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let forever = key_in(&resp.body);
    let (forever_id, _) = parts(&forever);
    let items = listed(&gate, "?user=alice");
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        assert_eq!(item["owner"], "alice", "{item}");
        assert_eq!(sorted(&item["roles"]), vec!["deploy", "read"], "{item}");
        assert_eq!(item["created_by"], "self", "{item}");
        let created = item["created_at"].as_u64().unwrap();
        match item["id"].as_str().unwrap() {
            i if i == id => {
                assert_eq!(item["name"], "laptop script");
                assert_eq!(item["expires_at"].as_u64(), Some(created + 30 * 86400));
            }
            i if i == forever_id => {
                assert_eq!(item["name"], "forever");
                assert_eq!(item["expires_at"], Value::Null);
            }
            other => panic!("a key nobody made: {other}"),
        }
    }

    // Listed on her sessions page by name and id, never the secret.
    let page = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&alice)
        .send();
    assert_eq!(page.status, 200, "{page:#?}");
    for want in ["laptop script", id, forever_id] {
        assert!(page.body.contains(want), "{want} in:\n{}", page.body);
    }
    assert!(!page.body.contains(secret), "the secret is on the page");

    // Another origin can neither make nor revoke one.
    let before = listed(&gate, "").len();
    let body = form(&[("name", "forged"), ("expires_in", "")]);
    for (header, value) in [
        ("Origin", "http://evil.test"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let resp = post("/keys", Some(alice.as_str()), &body)
            .header(header, value)
            .send();
        assert_eq!(resp.status, 403, "{header}: {resp:#?}");
        assert!(!resp.body.contains("sgk_"), "{resp:#?}");
        let resp = post("/keys/revoke", Some(alice.as_str()), &form(&[("id", id)]))
            .header(header, value)
            .send();
        assert_eq!(resp.status, 403, "{header}: {resp:#?}");
    }
    assert_eq!(listed(&gate, "").len(), before, "nothing made");
    assert_eq!(
        with_key(&gate, "/api/x", &key).status,
        200,
        "nothing revoked"
    );
    // Without a session: 401, and nothing made.
    let resp = post("/keys", None, &body).send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    let resp = post("/keys/revoke", None, &form(&[("id", id)])).send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(listed(&gate, "").len(), before, "nothing made");

    // Bob's key is not hers to revoke: answered as an unknown one.
    let (bobs, bobs_made) = new_key(&gate, json!({"owner": "bob", "name": "bob's"}));
    let bobs_id = bobs_made["id"].as_str().unwrap();
    for target in [bobs_id, "0123456789abcdef"] {
        let resp = post(
            "/keys/revoke",
            Some(alice.as_str()),
            &form(&[("id", target)]),
        )
        .send();
        assert_eq!(resp.status, 303, "{target}: {resp:#?}");
        assert_eq!(resp.header("location"), Some("/.sessiongate/sessions"));
    }
    assert_eq!(
        with_key(&gate, "/api/x", &bobs).status,
        200,
        "bob's key stays"
    );
    assert_eq!(backend.last().one("x-user"), Some("bob"));
    let page = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&alice)
        .send();
    assert!(!page.body.contains(bobs_id), "bob's key on alice's page");

    // Her own: revoked, and gone from the page.
    let resp = post("/keys/revoke", Some(alice.as_str()), &form(&[("id", id)])).send();
    assert_eq!(resp.status, 303, "{resp:#?}");
    assert_eq!(resp.header("location"), Some("/.sessiongate/sessions"));
    assert_invalid_token(&with_key(&gate, "/api/x", &key), "revoked by its owner");
    assert_eq!(
        with_key(&gate, "/api/x", &forever).status,
        200,
        "her other key stays"
    );
    let page = gate
        .get("/.sessiongate/sessions")
        .browser()
        .cookie(&alice)
        .send();
    assert!(!page.body.contains(id), "a revoked key is still listed");
    assert!(page.body.contains(forever_id));
}

#[test]
fn check_refuses_keys_without_a_credential_store_or_users() {
    let dir = scratch_dir();
    std::fs::write(
        dir.join("users.toml"),
        users_file(&[("alice", "alice-password-1", "", false)]),
    )
    .unwrap();
    let redis = "\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1/0\"\n";
    let base = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
        config(dead_addr(), "", "", FILE_STORE)
    );
    let check = |name: &str, text: &str| check_config(&dir, name, text);
    // The bases pass: each failure below is its one change.
    let (ok, said) = check("base.toml", &base);
    assert!(ok, "{said}");
    let with_redis = base.replace(FILE_STORE, redis);
    assert_ne!(with_redis, base);
    let (ok, said) = check("redis.toml", &with_redis);
    assert!(ok, "keys in Redis: {said}");
    assert!(
        !dir.join("credentials.json").exists(),
        "check writes nothing"
    );

    let cases = [
        (
            "no credential store",
            base.replace("credentials_file = \"credentials.json\"\n", ""),
            vec!["route[4].credentials", "api_key needs a credential store"],
        ),
        (
            "a credentials file beside Redis",
            with_redis.replace(
                "kind = \"redis\"\n",
                "kind = \"redis\"\ncredentials_file = \"credentials.json\"\n",
            ),
            vec!["store.credentials_file"],
        ),
        (
            "no users file",
            base.replace("users_file = \"users.toml\"\n", ""),
            vec!["route[4].credentials", "users_file"],
        ),
        (
            "an unknown credential",
            base.replace("[\"api_key\"]", "[\"api-key\"]"),
            vec!["route[4].credentials"],
        ),
    ];
    for (i, (what, text, wants)) in cases.iter().enumerate() {
        assert_ne!(text, &base, "{what}: the change applies");
        let (ok, said) = check(&format!("case-{i}.toml"), text);
        assert!(!ok, "{what} must fail:\n{said}");
        for want in wants {
            assert!(said.contains(want), "{what}: {want} missing in:\n{said}");
        }
    }
}
