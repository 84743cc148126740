//! Bearer JWTs on the routes that take them, through the binary, with real
//! access tokens: node-oidc-provider issues them by the client-credentials
//! grant (`tests/browser/token_issuer.mjs`, started per test on an ephemeral
//! loopback port), and mints beside them the bad ones a broken or hostile
//! client sends: `alg: none`, HS256 keyed with the public key, another issuer
//! or audience, expired, not yet valid, an unknown key, oversized.
//!
//! A good token proves the client to the upstream as a session would; a bad
//! one is 401 with RFC 6750's challenge, never a redirect; a key the issuer
//! rotates in is fetched, and while its keys cannot be fetched the known ones
//! still verify. `check` refuses the configs that would let a forgery in.

use std::time::Duration;

use base64::Engine;

use crate::support::*;

const CLIENT_ID: &str = "ci-job";
const CLIENT_SECRET: &str = "ci-job-secret-0123456789";
/// The resource (the `aud` of the issuer's tokens) the gate is configured for.
const RESOURCE: &str = "urn:sessiongate:test";
/// The challenge of a bearer route (RFC 6750 §3).
const REALM: &str = "Bearer realm=\"sessiongate\"";

/// node-oidc-provider issuing JWT access tokens on a loopback port; ended on
/// drop (its stdin closes).
pub struct Issuer(pub NodeIssuer);

impl std::ops::Deref for Issuer {
    type Target = NodeIssuer;
    fn deref(&self) -> &NodeIssuer {
        &self.0
    }
}

impl Issuer {
    pub fn start() -> Issuer {
        Issuer(NodeIssuer::start("token_issuer.mjs", &[]))
    }

    fn req(&self, method: &str, target: &str) -> Req {
        Req::new(self.addr, method, target).host(self.issuer.trim_start_matches("http://"))
    }

    /// A real access token for `scope` from the token endpoint, as a CI job
    /// gets one (client credentials, client_secret_basic).
    pub fn client_credentials(&self, scope: &str) -> String {
        let client = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("resource", RESOURCE),
            ("scope", scope),
        ]);
        let resp = self
            .req("POST", "/token")
            .header("Authorization", &format!("Basic {client}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(&body)
            .send();
        assert_eq!(resp.status, 200, "the token endpoint: {resp:#?}");
        let token = resp.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {resp:#?}"))
            .to_owned();
        // The harness's own check: the token is the one the tests assume.
        let claims = payload(&token);
        assert_eq!(claims["iss"], self.issuer.as_str(), "{claims}");
        assert_eq!(claims["sub"], CLIENT_ID, "{claims}");
        assert_eq!(claims["aud"], RESOURCE, "{claims}");
        token
    }

    /// A token minted beside the provider's (`GET /test/token?mode=`): see
    /// the script's header for the modes.
    pub fn token(&self, mode: &str) -> String {
        let resp = self.req("GET", &format!("/test/token?mode={mode}")).send();
        assert_eq!(resp.status, 200, "mode {mode}: {resp:#?}");
        resp.body
    }

    /// `POST /test/<what>`: `rotate`, `jwks-down` or `jwks-up`.
    pub fn control(&self, what: &str) {
        let resp = self.req("POST", &format!("/test/{what}")).send();
        assert_eq!(resp.status, 204, "{what}: {resp:#?}");
    }
}

/// A JWT's claims, unverified (for the harness's own checks).
fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url claims");
    serde_json::from_slice(&json).expect("JSON claims")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `[[auth.jwt]]` trusting `issuer` for [`RESOURCE`], the scopes as roles.
fn jwt_section(issuer: &str) -> String {
    format!(
        r#"
[[auth.jwt]]
id = "ci"
issuer = "{issuer}"
audiences = ["{RESOURCE}"]
algorithms = ["RS256"]
user_claim = "sub"
roles_claim = "scope"
"#
    )
}

/// `/api` takes bearer tokens only; under it `/api/deploy` needs the role
/// `deploy` and `/api/admin` the role `admin`. Routes 4 to 6 of the config.
const BEARER_ROUTES: &str = r#"
[[route]]
path = "/api"
credentials = ["bearer"]

[[route]]
path = "/api/deploy"
roles = ["deploy"]
credentials = ["bearer"]

[[route]]
path = "/api/admin"
roles = ["admin"]
credentials = ["bearer"]
"#;

/// [`standard_config`] with `[auth]` keys `auth`, the issuer, the bearer
/// routes and `extra` (more routes or sections).
fn config(backend: &Backend, issuer: &Issuer, auth: &str, extra: &str) -> String {
    standard_config(
        backend.addr,
        &format!(
            "\n[auth]\n{auth}\n{}{BEARER_ROUTES}{extra}",
            jwt_section(&issuer.issuer)
        ),
    )
}

/// `GET /api/items` with `token` as the bearer token.
fn with_token(gate: &Gate, token: &str) -> Resp {
    gate.get("/api/items")
        .header("Authorization", &bearer(token))
        .send()
}

fn start(backend: &Backend, issuer: &Issuer) -> Gate {
    Gate::start(&config(backend, issuer, "", ""))
}

/// `resp` is a refused token: 401 with the challenge and `invalid_token`,
/// and no login redirect.
fn assert_invalid_token(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {resp:#?}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(REALM) && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge:?}"
    );
    assert_eq!(resp.header("location"), None, "{what}");
}

#[test]
fn a_real_token_identifies_the_client_and_never_reaches_the_upstream() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    let token = issuer.client_credentials("read deploy");
    for _ in 0..2 {
        // The second is answered from the remembered verification.
        let resp = gate
            .get("/api/items")
            .header("Authorization", &bearer(&token))
            .header("X-User", "mallory")
            .send();
        assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
        let seen = backend.last();
        assert_eq!(seen.all("x-user"), vec![CLIENT_ID]);
        assert_eq!(seen.one("x-user-roles"), Some("read,deploy"));
        assert_eq!(seen.one("authorization"), None, "a credential for us only");
    }
    // The scope is a role a route can require.
    let resp = gate
        .get("/api/deploy/now")
        .header("Authorization", &bearer(&token))
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let resp = gate
        .get("/api/other")
        .header("Authorization", &format!("bearer {token}"))
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.count(), 4);

    // The access line names the credential; the token is never logged.
    wait_for(Duration::from_secs(3), "the access lines", || {
        gate.output().matches("path=\"/api/items\"").count() == 2
    });
    let out = gate.output();
    let line = out.lines().find(|l| l.contains("/api/items")).unwrap();
    assert!(line.contains("credential=\"bearer\""), "{line}");
    assert!(line.contains("ci-job"), "the user: {line}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !out.contains(signature),
        "the token reached the log:\n{out}"
    );
}

#[test]
fn an_upstream_with_pass_authorization_gets_the_token_too() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let config = config(&backend, &issuer, "", "").replace(
        "session_commands = true",
        "session_commands = true\npass_authorization = true",
    );
    let gate = Gate::start(&config);
    let token = issuer.client_credentials("read deploy");
    let resp = gate
        .get("/api/items")
        .header("Authorization", &bearer(&token))
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let seen = backend.last();
    assert_eq!(seen.one("x-user"), Some(CLIENT_ID));
    assert_eq!(
        seen.one("authorization"),
        Some(bearer(&token).as_str()),
        "the app checks the token itself"
    );
}

#[test]
fn a_bad_token_is_a_401_invalid_token_never_a_redirect() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    // A good one first: the keys are fetched, so `unknown` below takes the
    // refetch path, and the refusals are not a gate that verifies nothing.
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());

    let mut cases: Vec<(String, String)> = [
        "none", "hs256", "issuer", "audience", "expired", "future", "unknown", "huge",
    ]
    .iter()
    .map(|mode| (mode.to_string(), bearer(&issuer.token(mode))))
    .collect();
    assert!(cases
        .iter()
        .any(|(m, t)| m == "huge" && t.len() > 16 * 1024));
    cases.push(("garbage".into(), "Bearer not-a-jwt".into()));
    cases.push(("three garbage parts".into(), "Bearer a.b.c".into()));
    cases.push(("empty token".into(), "Bearer ".into()));
    cases.push(("no token".into(), "Bearer".into()));
    for (what, authorization) in &cases {
        // A navigation: a browser-like request still gets no redirect.
        let resp = gate
            .get("/api/items")
            .browser()
            .header("Authorization", authorization)
            .send();
        assert_invalid_token(&resp, what);
    }

    // No Authorization at all: the bare challenge (RFC 6750 §3.1: no error
    // code for a request without a token), and no login redirect either, as
    // on a Basic-only route: the login page could not help.
    let resp = gate.get("/api/items").browser().send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("www-authenticate"), Some(REALM));
    assert_eq!(resp.header("location"), None);
    assert_eq!(
        backend.count(),
        1,
        "only the good token reached the upstream"
    );
}

#[test]
fn a_token_without_the_route_role_gets_403_insufficient_scope() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    let read = issuer.client_credentials("read");
    assert_eq!(payload(&read)["scope"], "read");
    let resp = gate
        .get("/api/items")
        .header("Authorization", &bearer(&read))
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("x-user-roles"), Some("read"));

    let full = issuer.client_credentials("read deploy");
    for (what, token, path) in [
        ("read only", &read, "/api/deploy/now"),
        ("no admin scope", &full, "/api/admin"),
    ] {
        let resp = gate
            .get(path)
            .browser()
            .header("Authorization", &bearer(token))
            .send();
        assert_eq!(resp.status, 403, "{what}: {resp:#?}");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with(REALM) && challenge.contains("error=\"insufficient_scope\""),
            "{what}: {challenge:?}"
        );
        assert_eq!(resp.header("location"), None, "{what}");
    }
    assert_eq!(backend.count(), 1);
}

#[test]
fn the_issuers_keys_are_fetched_at_start_before_any_token() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    wait_for(Duration::from_secs(10), "the keys fetched at start", || {
        gate.output().contains("bearer token keys fetched")
    });
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(
        gate.output().matches("bearer token keys fetched").count(),
        1,
        "the first token used the keys fetched at start"
    );
}

#[test]
fn a_key_rotated_in_at_the_issuer_is_fetched_and_accepted() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    // The keys as they were: fetched at start.
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());

    issuer.control("rotate");
    let resp = with_token(&gate, &issuer.token("rotated"));
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
    assert_eq!(backend.last().one("x-user"), Some(CLIENT_ID));
    // The old key still verifies beside it.
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}");
}

#[test]
fn while_the_keys_cannot_be_fetched_known_keys_verify_and_unknown_are_refused() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let gate = start(&backend, &issuer);
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());

    issuer.control("jwks-down");
    // A token never seen before (not remembered), under the known key.
    let resp = with_token(&gate, &issuer.token("valid"));
    assert_eq!(resp.status, 200, "{resp:#?}\n{}", gate.output());
    // A kid the gate does not have and cannot fetch: fail closed.
    let resp = with_token(&gate, &issuer.token("rotated"));
    assert_invalid_token(&resp, "an unknown kid while the keys are down");
    assert_eq!(backend.count(), 2);
}

#[test]
fn a_bearer_token_is_taken_only_where_the_route_lists_it() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let users = users_file(&[("alice", "alice-password-1", "", false)]);
    let config = config(
        &backend,
        &issuer,
        "users_file = \"users.toml\"",
        "\n[[route]]\npath = \"/both\"\ncredentials = [\"session\", \"basic\"]\n",
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users)],
        &[("TEST_SECRET", SECRET)],
    );
    let good = bearer(&issuer.client_credentials("read deploy"));
    let cookie = gate.login("carol", "user");
    let before = backend.count();

    // A session route ignores the token: no identity, and no login redirect
    // for a request that carries Authorization, even a navigation.
    let resp = gate
        .get("/private")
        .browser()
        .header("Authorization", &good)
        .send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.header("www-authenticate"), None, "it takes no bearer");

    // Nor does a route of sessions and Basic.
    let resp = gate.get("/both").header("Authorization", &good).send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert!(
        !resp
            .header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Bearer"),
        "{resp:#?}"
    );

    // A bearer-only route ignores the session: the challenge, no redirect.
    let resp = gate.get("/api/items").browser().cookie(&cookie).send();
    assert_eq!(resp.status, 401, "{resp:#?}");
    assert_eq!(resp.header("www-authenticate"), Some(REALM));
    assert_eq!(resp.header("location"), None);
    assert_eq!(backend.count(), before, "none reached the upstream");

    // Where it is listed, the same token is taken.
    let resp = gate.get("/api/items").header("Authorization", &good).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("x-user"), Some(CLIENT_ID));
}

#[test]
fn sessiongates_own_assertion_is_never_a_bearer_token() {
    let issuer = Issuer::start();
    let backend = Backend::app();
    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    let config = config(
        &backend,
        &issuer,
        "",
        "\n[assertion]\nkeys = [{ file = \"signing.pem\" }]\n",
    )
    .replace(
        "[upstream.app]\n",
        "[upstream.app]\nassertion_audience = \"app\"\n",
    );
    let gate = Gate::start_with(
        &config,
        &[("signing.pem", &signing)],
        &[("TEST_SECRET", SECRET)],
    );
    let alice = gate.login("alice", "user,admin");
    let resp = gate.get("/private").cookie(&alice).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let assertion = backend
        .last()
        .one("x-user-assertion")
        .expect("an assertion for the upstream")
        .to_owned();
    let before = backend.count();

    let resp = gate
        .get("/api/items")
        .header("Authorization", &bearer(&assertion))
        .send();
    assert_invalid_token(&resp, "the gate's own assertion");
    assert_eq!(backend.count(), before);
}

#[test]
fn check_refuses_a_bearer_config_that_would_let_forgeries_in() {
    let dir = scratch_dir();
    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    std::fs::write(dir.join("signing.pem"), signing).unwrap();
    let issuer = "https://sso.example.com";
    let jwt = jwt_section(issuer);
    let base = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
        standard_config(dead_addr(), &format!("{jwt}{BEARER_ROUTES}"))
    );
    let check = |name: &str, text: &str| check_config(&dir, name, text);
    // The base passes: each failure below is its one change.
    let (ok, said) = check("base.toml", &base);
    assert!(ok, "{said}");

    let assertion = |extra: &str| {
        format!("{base}\n[assertion]\nkeys = [{{ file = \"signing.pem\" }}]\n{extra}")
    };
    let cases = [
        (
            "an HMAC algorithm",
            base.replace("algorithms = [\"RS256\"]", "algorithms = [\"HS256\"]"),
            "auth.jwt[0].algorithms",
        ),
        (
            "alg none",
            base.replace("algorithms = [\"RS256\"]", "algorithms = [\"none\"]"),
            "auth.jwt[0].algorithms",
        ),
        (
            "no audience",
            base.replace(&format!("audiences = [\"{RESOURCE}\"]"), "audiences = []"),
            "auth.jwt[0].audiences",
        ),
        (
            "a bearer route with no issuer",
            base.replace(&jwt, ""),
            "route[4].credentials",
        ),
        (
            "the assertion's issuer",
            assertion(&format!("issuer = \"{issuer}\"\n")),
            "auth.jwt[0].issuer",
        ),
        (
            "an audience the upstream's assertions are made for",
            assertion("").replace(
                "[upstream.app]\n",
                &format!("[upstream.app]\nassertion_audience = \"{RESOURCE}\"\n"),
            ),
            "auth.jwt[0].audiences",
        ),
    ];
    for (i, (what, text, want)) in cases.iter().enumerate() {
        assert_ne!(text, &base, "{what}: the change applies");
        let (ok, said) = check(&format!("case-{i}.toml"), text);
        assert!(!ok, "{what} must fail:\n{said}");
        assert!(said.contains(want), "{what}: {want} missing in:\n{said}");
    }
}
