//! Sign-in with OpenID Connect against a real, certified provider:
//! node-oidc-provider, started per test by `tests/browser/oidc_provider.mjs`
//! on an ephemeral loopback port. The HTTP client here follows the provider's
//! redirects with a cookie jar (the provider signs in as `login_hint` at once);
//! `browser.rs` runs the provider's own login and consent pages in Chromium.
//!
//! The negative cases are the provider's real tokens changed on their way out
//! (`--tamper`): a wrong nonce, another audience, expired, an unknown key,
//! `alg: none`, HS256 keyed with the public key. Each must end on the login
//! page with no session, and a key rotation must be followed.

use crate::support::{form, users_file, Backend, Gate, NodeIssuer, Req, Resp};

pub const CLIENT_ID: &str = "sessiongate-test";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// The callback as registered: the test client catches the redirect to it and
/// sends the request to the gate itself, so no port is needed here.
pub(crate) const CALLBACK: &str = "http://localhost/.sessiongate/oidc/op/callback";
pub(crate) const POST_LOGOUT: &str = "http://localhost/goodbye";
const FAILED: &str = "Sign-in with Test OP did not complete. Try again.";

/// node-oidc-provider on a loopback port; ended on drop (its stdin closes).
pub struct Op(pub NodeIssuer);

impl std::ops::Deref for Op {
    type Target = NodeIssuer;
    fn deref(&self) -> &NodeIssuer {
        &self.0
    }
}

impl Op {
    pub fn start(extra: &[&str], redirect_uri: &str, post_logout: &str) -> Op {
        let mut args = vec!["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET];
        args.extend([
            "--redirect-uri",
            redirect_uri,
            "--post-logout-uri",
            post_logout,
        ]);
        args.extend(extra);
        Op(NodeIssuer::start("oidc_provider.mjs", &args))
    }

    pub fn simple(extra: &[&str]) -> Op {
        Op::start(extra, CALLBACK, POST_LOGOUT)
    }
}

/// `[[auth.oidc]]` for `op` with more keys.
fn provider_config(op: &Op, keys: &str) -> String {
    provider_config_at(op, CALLBACK, keys)
}

/// `[[auth.oidc]]` for `op` with its callback at `redirect_url` (the browser
/// test's is the gate's real address).
pub fn provider_config_at(op: &Op, redirect_url: &str, keys: &str) -> String {
    format!(
        r#"
[[auth.oidc]]
id = "op"
name = "Test OP"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = {{ env = "TEST_OIDC_SECRET" }}
redirect_url = "{redirect_url}"
scopes = ["openid", "profile", "email", "groups"]
roles_claim = "groups"
roles_map = {{ admins = "admin" }}
{keys}
"#,
        issuer = op.issuer
    )
}

/// A gate in front of `backend` signing in with `op` only.
fn gate(backend: &Backend, op: &Op, keys: &str) -> Gate {
    gate_with(backend, op, keys, "")
}

fn gate_with(backend: &Backend, op: &Op, keys: &str, auth: &str) -> Gate {
    let config = crate::support::standard_config(
        backend.addr,
        &format!(
            "\n[auth]\nlogout_redirect = \"/goodbye\"\n{auth}\n{}",
            provider_config(op, keys)
        ),
    );
    Gate::start_with_env(
        &config,
        &[
            ("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789"),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
        ],
    )
}

/// Cookies by name, as a browser would keep them for one site (paths ignored:
/// the provider's cookie names differ).
#[derive(Default)]
pub(crate) struct Jar(Vec<(String, String)>);

impl Jar {
    pub(crate) fn absorb(&mut self, resp: &Resp) {
        for c in resp.all("set-cookie") {
            let pair = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.0.retain(|(n, _)| n != name);
            let cleared = value.is_empty() || c.to_ascii_lowercase().contains("max-age=0");
            if !cleared {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub(crate) fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A sign-in in progress: the gate's pre-login cookie and the callback URL
/// the provider sent the browser to.
pub(crate) struct Flow {
    gate_jar: Jar,
    /// The provider's cookies: its session, for a logout there.
    pub(crate) op_jar: Jar,
    callback: String,
}

/// `start` at the gate, then the provider's redirects until it sends the
/// browser back to the callback. `hint` picks the account.
pub(crate) fn begin(gate: &Gate, op: &Op, next: &str, hint: &str) -> Flow {
    let mut gate_jar = Jar::default();
    let start = gate
        .get(&format!(
            "/.sessiongate/oidc/op/start?{}",
            form(&[("next", next)])
        ))
        .browser()
        .send();
    assert_eq!(start.status, 303, "start: {}", start.body);
    gate_jar.absorb(&start);
    assert!(
        gate_jar.get("__Host-sg_oidc").is_some(),
        "a pre-login cookie: {:?}",
        start.headers
    );
    let set = start.all("set-cookie").join("\n");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age=600"),
        "{set}"
    );
    let mut location = format!("{}&login_hint={hint}", start.header("location").unwrap());
    assert!(
        location.starts_with(&format!("{}/auth?", op.issuer)),
        "{location}"
    );
    for param in [
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "response_type=code",
    ] {
        assert!(location.contains(param), "{param} in {location}");
    }
    let mut op_jar = Jar::default();
    for _ in 0..8 {
        if location.starts_with(CALLBACK) {
            return Flow {
                gate_jar,
                op_jar,
                callback: location[CALLBACK.len() - "/.sessiongate/oidc/op/callback".len()..]
                    .to_owned(),
            };
        }
        let target = location.trim_start_matches(&op.issuer).to_owned();
        let resp = Req::new(op.addr, "GET", &target)
            .host(op.issuer.trim_start_matches("http://"))
            .header("Cookie", &op_jar.header())
            .send();
        op_jar.absorb(&resp);
        assert!(
            (300..400).contains(&resp.status),
            "the provider answered {} to {target}: {}",
            resp.status,
            resp.body
        );
        location = resp.header("location").unwrap().to_owned();
        if location.starts_with('/') {
            location = format!("{}{location}", op.issuer);
        }
    }
    panic!("the provider did not send the browser back: {location}");
}

impl Flow {
    /// The callback, as the browser would send it.
    pub(crate) fn finish(&self, gate: &Gate) -> Resp {
        self.finish_at(gate, &self.callback)
    }

    fn finish_at(&self, gate: &Gate, target: &str) -> Resp {
        gate.get(target)
            .browser()
            .header("Cookie", &self.gate_jar.header())
            .send()
    }
}

/// The callback failed the way every failure does: the login page with the
/// generic message, no session, and the pre-login cookie cleared.
fn assert_refused(resp: &Resp) {
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(resp.body.contains(FAILED), "{}", resp.body);
    assert!(resp.body.contains("Sign in with Test OP"), "{}", resp.body);
    assert_eq!(
        resp.session_cookie(),
        None,
        "no session: {:?}",
        resp.headers
    );
    assert!(
        resp.all("set-cookie")
            .iter()
            .any(|c| c.starts_with("__Host-sg_oidc=;") && c.contains("Max-Age=0")),
        "the pre-login cookie is cleared: {:?}",
        resp.headers
    );
}

/// The identity the backend sees with `cookie`.
fn backend_identity(gate: &Gate, backend: &Backend, cookie: &str) -> (String, String) {
    let resp = gate.get("/dashboard").cookie(cookie).send();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let last = backend.last();
    (
        last.one("x-user").unwrap_or_default().to_owned(),
        last.one("x-user-roles").unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_sign_in_makes_a_session_with_the_mapped_identity() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    // A client's own identity headers never reach the backend.
    let flow = begin(&gate, &op, "/dashboard?tab=1", "alice");
    let done = flow.finish(&gate);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/dashboard?tab=1"));
    let cookie = done.session_cookie().expect("a session cookie");
    assert!(
        done.all("set-cookie")
            .iter()
            .any(|c| c.starts_with("__Host-sg_oidc=;")),
        "{:?}",
        done.headers
    );
    let resp = gate
        .get("/dashboard")
        .cookie(&cookie)
        .header("X-User", "root")
        .send();
    assert_eq!(resp.status, 200);
    let last = backend.last();
    assert_eq!(last.all("x-user"), vec!["alice"]);
    assert_eq!(last.one("x-user-roles"), Some("staff,admin"));
    assert!(
        last.one("x-session-data")
            .is_some_and(|d| d.contains(r#""sessiongate.provider":"op""#)),
        "{:?}",
        last.one("x-session-data")
    );
    // The pre-login cookie of a sign-in left half-way is ours: it never
    // reaches the backend, and the other cookies do.
    let pre = flow.gate_jar.get("__Host-sg_oidc").unwrap().to_owned();
    let resp = gate
        .get("/public/x")
        .cookie(&format!("theme=dark; __Host-sg_oidc={pre}"))
        .send();
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last().all("cookie"), vec!["theme=dark"]);
    // The renamed group opens the admin route.
    assert_eq!(gate.get("/admin").cookie(&cookie).send().status, 200);
    let me = gate.get("/.sessiongate/me").cookie(&cookie).send().json();
    assert_eq!(me["user"], "alice");
}

#[test]
fn a_sign_in_gives_a_new_session_id_and_ends_the_old_session() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    let first = begin(&gate, &op, "/", "bob").finish(&gate);
    let old = first.session_cookie().unwrap();
    let mut flow = begin(&gate, &op, "/", "alice");
    flow.gate_jar
        .0
        .push(("__Host-sid".into(), old["__Host-sid=".len()..].into()));
    let second = flow.finish(&gate);
    let new = second.session_cookie().unwrap();
    assert_ne!(old, new);
    assert_eq!(gate.get("/dashboard").cookie(&old).api().send().status, 401);
    assert_eq!(backend_identity(&gate, &backend, &new).0, "alice");
}

#[test]
fn with_a_strict_session_cookie_the_callback_moves_on_with_a_page() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate_with(
        &backend,
        &op,
        "",
        "\n[session.cookie]\nsame_site = \"strict\"\n",
    );
    let done = begin(&gate, &op, "/dashboard?tab=1", "alice").finish(&gate);
    // A browser does not send a Strict cookie on a redirect chain begun at the
    // provider: a page of ours moves on instead of a 303.
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body
            .contains(r#"<meta http-equiv="refresh" content="0;url=/dashboard?tab=1">"#),
        "{}",
        done.body
    );
    let cookie = done.session_cookie().expect("a session cookie");
    assert!(
        done.all("set-cookie")
            .iter()
            .any(|c| c.starts_with("__Host-sid=") && c.contains("SameSite=Strict")),
        "{:?}",
        done.headers
    );
    assert_eq!(backend_identity(&gate, &backend, &cookie).0, "alice");
}

#[test]
fn a_wrong_state_or_a_missing_pre_login_cookie_is_refused() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    let flow = begin(&gate, &op, "/", "alice");
    let state = flow
        .callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_owned();
    let wrong = flow.callback.replace(&state, "forged-state");
    assert_refused(&flow.finish_at(&gate, &wrong));
    // The callback URL alone (a link sent to a victim) does not sign anyone in.
    let bare = gate.get(&flow.callback).browser().send();
    assert_refused(&bare);
    // A pre-login cookie signed with another secret is not ours.
    let forged = gate
        .get(&flow.callback)
        .browser()
        .cookie(&format!(
            "__Host-sg_oidc={}",
            flow.gate_jar
                .get("__Host-sg_oidc")
                .unwrap()
                .replace('a', "b")
        ))
        .send();
    assert_refused(&forged);
    assert!(
        gate.output().contains("sign-in failed"),
        "{}",
        gate.output()
    );
    assert!(
        !gate.output().contains(&state),
        "no state or code in the log: {}",
        gate.output()
    );
}

#[test]
fn a_replayed_code_is_refused() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    let flow = begin(&gate, &op, "/", "alice");
    let first = flow.finish(&gate);
    assert_eq!(first.status, 303, "{}", first.body);
    // The same callback and pre-login cookie again: the provider refuses the code.
    assert_refused(&flow.finish(&gate));
    assert!(
        gate.output().contains("the code exchange failed"),
        "{}",
        gate.output()
    );
}

/// Sign in through a provider that changes its ID tokens as `mode` says.
fn tampered(mode: &str) -> (Resp, Gate) {
    let op = Op::simple(&["--tamper", mode]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    let resp = begin(&gate, &op, "/", "alice").finish(&gate);
    (resp, gate)
}

#[test]
fn an_id_token_with_another_nonce_is_refused() {
    let (resp, gate) = tampered("nonce");
    assert_refused(&resp);
    assert!(gate.output().contains("nonce"), "{}", gate.output());
}

#[test]
fn an_id_token_for_another_audience_is_refused() {
    let (resp, gate) = tampered("audience");
    assert_refused(&resp);
    assert!(
        gate.output().to_lowercase().contains("audience"),
        "{}",
        gate.output()
    );
}

#[test]
fn an_expired_id_token_is_refused() {
    let (resp, gate) = tampered("expired");
    assert_refused(&resp);
    assert!(gate.output().contains("expired"), "{}", gate.output());
}

#[test]
fn an_id_token_signed_by_an_unknown_key_is_refused() {
    let (resp, gate) = tampered("unknown");
    assert_refused(&resp);
    let out = gate.output();
    assert!(
        out.contains("keys fetched again"),
        "the keys were refetched once: {out}"
    );
}

#[test]
fn an_unsigned_or_hmac_id_token_is_refused() {
    for mode in ["none", "hs256"] {
        let (resp, gate) = tampered(mode);
        assert_refused(&resp);
        assert!(
            gate.output().contains("sign-in failed"),
            "{mode}: {}",
            gate.output()
        );
    }
}

#[test]
fn a_key_rotated_in_at_the_provider_is_fetched_and_accepted() {
    let (resp, gate) = tampered("rotated");
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert!(resp.session_cookie().is_some());
    assert!(
        gate.output().contains("keys fetched again"),
        "{}",
        gate.output()
    );
}

#[test]
fn allow_lists_by_email_domain_and_group() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(
        &backend,
        &op,
        "allowed_email_domains = [\"example.com\"]\nallowed_groups = [\"staff\"]",
    );
    let alice = begin(&gate, &op, "/", "alice").finish(&gate);
    assert_eq!(alice.status, 303, "{}", alice.body);
    // bob: another domain, another group.
    assert_refused(&begin(&gate, &op, "/", "bob").finish(&gate));
    // carol: the right domain and group, but the provider did not verify her address.
    assert_refused(&begin(&gate, &op, "/", "carol").finish(&gate));
    let out = gate.output();
    assert!(out.contains("email domain is not allowed"), "{out}");
    assert!(out.contains("not verified"), "{out}");
}

#[test]
fn next_is_checked_like_the_password_login() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "");
    for evil in ["https://evil.test/", "//evil.test", "/\\evil.test"] {
        let done = begin(&gate, &op, evil, "alice").finish(&gate);
        assert_eq!(done.status, 303, "{evil}: {}", done.body);
        assert_eq!(done.header("location"), Some("/"), "{evil}");
    }
}

#[test]
fn logout_ends_the_session_and_can_send_the_browser_to_the_provider() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(&backend, &op, "end_session = true");
    let cookie = begin(&gate, &op, "/", "alice")
        .finish(&gate)
        .session_cookie()
        .unwrap();
    let out = gate
        .req("POST", "/.sessiongate/logout")
        .cookie(&cookie)
        .header("Origin", "http://app.test")
        .send();
    assert_eq!(out.status, 303, "{}", out.body);
    let location = out.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{}/session/end?", op.issuer))
            && location.contains(&format!("client_id={CLIENT_ID}"))
            && location.contains("post_logout_redirect_uri=http%3A%2F%2Flocalhost%2Fgoodbye"),
        "{location}"
    );
    assert_eq!(
        gate.get("/dashboard").cookie(&cookie).api().send().status,
        401
    );
    // The provider takes that request: it asks the user to confirm the logout.
    let end = Req::new(op.addr, "GET", location.trim_start_matches(&op.issuer))
        .host(op.issuer.trim_start_matches("http://"))
        .send();
    assert_eq!(end.status, 200, "{}", end.body);
    assert!(end.body.contains("logout"), "{}", end.body);
}

#[test]
fn the_login_page_offers_the_provider_and_the_password_form() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let users = users_file(&[("dana", "dana-password-1234", "", false)]);
    let config = crate::support::standard_config(
        backend.addr,
        &format!(
            "\n[auth]\nusers_file = \"users.toml\"\n{}",
            provider_config(&op, "")
        ),
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users)],
        &[
            ("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789"),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
        ],
    );
    let page = gate.get("/.sessiongate/login?next=/reports").send();
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"href="/.sessiongate/oidc/op/start?next=%2Freports""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"name="password""#), "{}", page.body);
    // Both work: the password...
    let pw = gate.login_form("dana", "dana-password-1234", "/");
    assert_eq!(pw.status, 303);
    // ...and the provider.
    assert_eq!(begin(&gate, &op, "/", "alice").finish(&gate).status, 303);
}

#[test]
fn an_unreachable_provider_ends_on_the_login_page() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let dead = crate::support::dead_addr();
    let config = crate::support::standard_config(
        backend.addr,
        &provider_config(&op, "").replace(&op.issuer, &format!("http://{dead}")),
    );
    drop(op);
    let gate = Gate::start_with_env(
        &config,
        &[
            ("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789"),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
        ],
    );
    let resp = gate
        .get("/.sessiongate/oidc/op/start?next=/x")
        .browser()
        .send();
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert!(
        resp.body
            .contains("Sign-in with Test OP is not available right now"),
        "{}",
        resp.body
    );
    assert!(resp.all("set-cookie").is_empty(), "{:?}", resp.headers);
    assert!(
        gate.output().contains("sign-in could not start"),
        "{}",
        gate.output()
    );
}

#[test]
fn a_bad_provider_config_is_refused_with_every_problem() {
    let backend = Backend::app();
    let config = crate::support::standard_config(
        backend.addr,
        r#"
[server]
listen = ["127.0.0.1:0"]

[[auth.oidc]]
id = "Bad Id"
name = "x"
issuer = "http://idp.example.com"
client_id = "c"
redirect_url = "https://app.example.com/elsewhere"
algorithms = ["HS256", "none"]
allowed_groups = ["staff"]
"#,
    );
    let dir = crate::support::scratch_dir();
    std::fs::write(dir.join("proxy.toml"), &config).unwrap();
    let out = crate::support::sessiongate(&["check"], &dir.join("proxy.toml"))
        .env("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "auth.oidc[0].id",
        "auth.oidc[0].issuer: must be https://",
        "auth.oidc[0].redirect_url",
        "\"HS256\" is not allowed",
        "\"none\" is not allowed",
        "auth.oidc[0].allowed_groups: needs roles_claim",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
}

/// `second_factor_amr` / `second_factor_acr`: a sign-in whose ID token says
/// the provider asked for more than a password counts as a second factor
/// (step-up routes take it); one that does not, or a provider without the
/// setting, does not, whatever the token says.
#[test]
fn the_providers_amr_or_acr_can_count_as_a_second_factor() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let step_up = "\n[[route]]\npath = \"/secure\"\nsecond_factor = true\n";
    let sign_in = |gate: &Gate, hint: &str| {
        begin(gate, &op, "/", hint)
            .finish(gate)
            .session_cookie()
            .unwrap()
    };
    for keys in [
        "second_factor_amr = [\"mfa\", \"hwk\"]",
        "second_factor_acr = [\"mfa-acr\"]",
    ] {
        let gate = gate_with(&backend, &op, &format!("{keys}\n{step_up}"), "");
        let with_mfa = sign_in(&gate, "alice:mfa");
        let me = gate.get("/.sessiongate/me").cookie(&with_mfa).send().json();
        assert!(me["second_factor_at"].is_u64(), "{keys}: {me}");
        let resp = gate.get("/secure").cookie(&with_mfa).api().send();
        assert_eq!(resp.status, 200, "{keys}: {resp:#?}");
        assert_eq!(backend.last().one("x-user"), Some("alice"));
        // A password alone at the provider: no second factor here.
        let without = sign_in(&gate, "alice");
        let me = gate.get("/.sessiongate/me").cookie(&without).send().json();
        assert!(me["second_factor_at"].is_null(), "{keys}: {me}");
        let resp = gate.get("/secure").cookie(&without).browser().send();
        assert_eq!(resp.status, 302, "{keys}: {resp:#?}");
        assert_eq!(
            resp.header("location"),
            Some("/.sessiongate/factor?next=/secure")
        );
    }
    // Without the setting, the provider's amr is not taken at its word; a
    // step-up route then cannot be configured at all.
    let gate = gate(&backend, &op, "");
    let cookie = sign_in(&gate, "alice:mfa");
    let me = gate.get("/.sessiongate/me").cookie(&cookie).send().json();
    assert!(me["second_factor_at"].is_null(), "{me}");
}

/// With a second factor required of a role and a provider that says whether
/// it asked for one, a sign-in of that role without it is refused; one with
/// it, and one of a role not required, go through.
#[test]
fn a_required_second_factor_takes_the_providers_word_or_refuses() {
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let auth = "users_file = \"users.toml\"\n\n[auth.second_factor]\nmode = \"required\"\nrequired_roles = [\"admin\"]\nkeys = [{ env = \"TEST_FACTOR_KEY\" }]\n";
    let config = crate::support::standard_config(
        backend.addr,
        &format!(
            "\n{}\n[auth]\nlogout_redirect = \"/goodbye\"\n{auth}\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n",
            provider_config(&op, "second_factor_amr = [\"mfa\"]")
        ),
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", "")],
        &[
            ("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789"),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
            (
                "TEST_FACTOR_KEY",
                "oidc-test-factor-key-0123456789abcdef012345",
            ),
        ],
    );
    // alice (admins: role admin) without a second factor at the provider.
    let refused = begin(&gate, &op, "/", "alice").finish(&gate);
    assert_eq!(refused.status, 401, "{refused:#?}");
    assert!(refused.session_cookie().is_none());
    assert!(
        refused
            .body
            .contains("Sign-in with Test OP needs a second factor there."),
        "{}",
        refused.body
    );
    // With one.
    let done = begin(&gate, &op, "/", "alice:mfa").finish(&gate);
    assert!(done.session_cookie().is_some(), "{done:#?}");
    // bob (contractors) is not required to have one.
    let done = begin(&gate, &op, "/", "bob").finish(&gate);
    assert!(done.session_cookie().is_some(), "{done:#?}");
}

/// The ID token's `email`, `name` and a named claim reach the backend
/// under their headers; a client's own copies never do.
#[test]
fn the_id_tokens_claims_reach_the_backend() {
    let backend = Backend::app();
    let op = Op::simple(&[]);
    let gate = gate(
        &backend,
        &op,
        "\n[identity]\nclaim_headers = { \"X-User-Login\" = \"preferred_username\" }\n",
    );
    let resp = begin(&gate, &op, "/dashboard", "alice").finish(&gate);
    let cookie = resp.session_cookie().expect("a session");
    let seen = gate
        .get("/dashboard")
        .cookie(&cookie)
        .header("X-User-Email", "root@evil.test")
        .send();
    assert_eq!(seen.status, 200);
    let last = backend.last();
    assert_eq!(last.all("x-user-email"), ["alice@example.com"]);
    assert_eq!(last.one("x-user-name"), Some("alice"));
    assert_eq!(last.one("x-user-login"), Some("alice"));
    // carol's address is not verified at the provider: it is nobody's.
    let carol = begin(&gate, &op, "/dashboard", "carol").finish(&gate);
    let carol = carol.session_cookie().expect("a session");
    assert_eq!(gate.get("/dashboard").cookie(&carol).send().status, 200);
    assert_eq!(backend.last().one("x-user"), Some("carol"));
    assert_eq!(backend.last().one("x-user-email"), None);
    // /check and the forward-auth answer agree: the header present, empty.
    let check = gate.get("/.sessiongate/check").cookie(&carol).send();
    assert_eq!(check.status, 204);
    assert_eq!(check.all("x-user-email"), [""]);
    let check = gate.get("/.sessiongate/check").cookie(&cookie).send();
    assert_eq!(check.all("x-user-email"), ["alice@example.com"]);
}
