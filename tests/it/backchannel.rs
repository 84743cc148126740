//! OpenID Connect Back-Channel Logout through the binary, with
//! node-oidc-provider's own `backchannelLogout` feature: signing out at the
//! provider ends the session it made here, and only that one; forged,
//! replayed, wrong-audience and otherwise malformed logout tokens change
//! nothing.

use crate::oidc::{begin, provider_config_at, Op, CALLBACK, CLIENT_ID, CLIENT_SECRET, POST_LOGOUT};
use crate::support::*;

const ME: &str = "/.sessiongate/me";
const ENDPOINT: &str = "/.sessiongate/oidc/op/backchannel-logout";

/// A provider that knows the gate's back-channel URL, and the gate.
fn start(backend: &Backend) -> (Op, Gate) {
    let addr = free_addr();
    let op = Op::start(
        &["--backchannel-uri", &format!("http://{addr}{ENDPOINT}")],
        CALLBACK,
        POST_LOGOUT,
    );
    let store = if redis_run() {
        ""
    } else {
        "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n"
    };
    let config = standard_config(
        backend.addr,
        &format!(
            "\n[auth]\n{}{store}",
            provider_config_at(&op, CALLBACK, "backchannel_logout = true")
        ),
    );
    let gate = Gate::start_at(
        addr,
        &config,
        &[],
        &[
            ("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789"),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
        ],
    );
    (op, gate)
}

fn me(gate: &Gate, cookie: &str) -> u16 {
    gate.get(ME).api().cookie(cookie).send().status
}

/// Sign in as `hint` in a browser of its own: the gate's cookie, and the
/// provider's cookies (its session) for that browser.
fn sign_in(gate: &Gate, op: &Op, hint: &str) -> (String, String) {
    let flow = begin(gate, op, "/dashboard", hint);
    let resp = flow.finish(gate);
    let cookie = resp
        .session_cookie()
        .unwrap_or_else(|| panic!("no session: {resp:#?}"));
    (cookie, flow.op_jar.header())
}

/// Sign out at the provider, as its logout page's form does.
fn sign_out_at_provider(op: &Op, op_cookies: &str) {
    let host = op.issuer.trim_start_matches("http://").to_owned();
    let page = Req::new(
        op.addr,
        "GET",
        &format!("/session/end?client_id={CLIENT_ID}"),
    )
    .host(&host)
    .header("Cookie", op_cookies)
    .send();
    assert_eq!(page.status, 200, "{page:#?}");
    let xsrf = page
        .body
        .split(r#"name="xsrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no xsrf in {}", page.body))
        .to_owned();
    let done = Req::new(op.addr, "POST", "/session/end/confirm")
        .host(&host)
        .header("Cookie", op_cookies)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&form(&[("xsrf", &xsrf), ("logout", "yes")]))
        .send();
    assert!((300..400).contains(&done.status), "{done:#?}");
}

/// A logout token as the provider signs them, changed by `query`.
fn token(op: &Op, query: &str) -> String {
    let host = op.issuer.trim_start_matches("http://").to_owned();
    let resp = Req::new(op.addr, "GET", &format!("/test/logout-token?{query}"))
        .host(&host)
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    resp.body
}

fn post(gate: &Gate, token: &str) -> Resp {
    gate.req("POST", ENDPOINT)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&form(&[("logout_token", token)]))
        .send()
}

#[test]
fn signing_out_at_the_provider_ends_that_session_here_and_no_other() {
    let backend = Backend::app();
    let (op, gate) = start(&backend);
    let (first, first_op) = sign_in(&gate, &op, "alice");
    let (second, _) = sign_in(&gate, &op, "alice");
    assert_eq!((me(&gate, &first), me(&gate, &second)), (200, 200));
    // The provider POSTs its logout token before it answers the form.
    sign_out_at_provider(&op, &first_op);
    assert_eq!(
        me(&gate, &first),
        401,
        "the provider's session ended:\n{}",
        gate.output()
    );
    assert_eq!(
        me(&gate, &second),
        200,
        "another provider session of alice's stays"
    );
    assert!(
        gate.output().contains("back-channel logout"),
        "{}",
        gate.output()
    );
}

#[test]
fn forged_replayed_and_wrong_audience_logout_tokens_change_nothing() {
    let backend = Backend::app();
    let (op, gate) = start(&backend);
    let (alice, _) = sign_in(&gate, &op, "alice");
    for (query, why) in [
        (
            "sub=alice&key=unknown",
            "signed by a key the provider does not have",
        ),
        ("sub=alice&aud=another-client", "for another client"),
        ("sub=alice&nonce=n", "with a nonce: an ID token's shape"),
        ("sub=alice&events=none", "without the back-channel event"),
        ("sub=alice&iat=3600", "expired"),
        ("jti=x", "naming neither sub nor sid"),
    ] {
        let resp = post(&gate, &token(&op, query));
        assert_eq!(resp.status, 400, "{why}: {resp:#?}");
        assert_eq!(resp.json()["error"], "invalid_request");
        assert_eq!(me(&gate, &alice), 200, "{why}: the session stays");
    }
    assert_eq!(post(&gate, "not.a.jwt").status, 400);
    assert_eq!(post(&gate, "").status, 400);
    // A good token for someone else ends nothing of alice's.
    assert_eq!(post(&gate, &token(&op, "sub=bob")).status, 200);
    assert_eq!(me(&gate, &alice), 200);
    // A good token for alice ends her sessions, once.
    let good = token(&op, "sub=alice&jti=once");
    let ok = post(&gate, &good);
    assert_eq!(ok.status, 200, "{ok:#?}");
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert_eq!(me(&gate, &alice), 401);
    let (again, _) = sign_in(&gate, &op, "alice");
    assert_eq!(post(&gate, &good).status, 400, "replayed");
    assert_eq!(me(&gate, &again), 200, "a replay ends nothing");
}

#[test]
fn check_refuses_back_channel_logout_without_a_credential_store() {
    let backend = Backend::app();
    let op = Op::start(&[], CALLBACK, POST_LOGOUT);
    let dir = scratch_dir();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
        standard_config(
            backend.addr,
            &format!(
                "\n[auth]\n{}",
                provider_config_at(&op, CALLBACK, "backchannel_logout = true")
            )
        )
    );
    std::fs::write(dir.join("proxy.toml"), text).unwrap();
    let out = sessiongate(&["check"], &dir.join("proxy.toml"))
        .env("TEST_SECRET", "oidc-test-secret-0123456789abcdef0123456789")
        .env("TEST_OIDC_SECRET", CLIENT_SECRET)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("auth.oidc[op].backchannel_logout: needs a credential store"),
        "{err}"
    );
}
