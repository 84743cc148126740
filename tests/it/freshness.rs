//! Claims stay fresh (`recheck_every`): sessions signed in through a real
//! provider (node-oidc-provider with refresh tokens, `--refresh`) are asked
//! about again with their refresh token. A group removed there removes the
//! role here; a user disabled there loses the session; a provider that is
//! down keeps or ends sessions as configured; userinfo's claims are read.
//! The provider is driven through its test-only controls (`/test/account`,
//! `/test/outage`), and each wait is for a condition, bounded.

use std::time::Duration;

use crate::oidc::{begin, provider_config_at, Op, CALLBACK, CLIENT_SECRET};
use crate::support::*;

const CONFIRMED: &str = "sessiongate_provider_rechecks_total{result=\"confirmed\"}";
const REFUSED: &str = "sessiongate_provider_rechecks_total{result=\"refused\"}";
const KEPT: &str = "sessiongate_provider_rechecks_total{result=\"unreachable_kept\"}";
const ENDED: &str = "sessiongate_provider_rechecks_total{result=\"unreachable_ended\"}";

/// A gate signing in with `op` whose provider has `keys` (the re-check settings).
fn gate(backend: &Backend, op: &Op, keys: &str) -> Gate {
    gate_with_store(backend, op, keys, "")
}

/// [`gate`] with a `[store]` section of its own.
fn gate_with_store(backend: &Backend, op: &Op, keys: &str, store: &str) -> Gate {
    let config = standard_config(
        backend.addr,
        &format!(
            "\n[auth]\n{}\n{store}",
            provider_config_at(op, CALLBACK, keys)
        ),
    );
    Gate::start_with_env(
        &config,
        &[
            (
                "TEST_SECRET",
                "fresh-test-secret-0123456789abcdef0123456789",
            ),
            ("TEST_OIDC_SECRET", CLIENT_SECRET),
        ],
    )
}

/// Sign `hint` in through `op`: the session cookie.
fn sign_in(gate: &Gate, op: &Op, hint: &str) -> String {
    let done = begin(gate, op, "/dashboard", hint).finish(gate);
    assert_eq!(done.status, 303, "{}\n{}", done.body, gate.output());
    done.session_cookie().expect("a session cookie")
}

/// One of the provider's test controls.
fn control(op: &Op, target: &str) {
    ask(op, target);
}

/// What one of the provider's test controls answers.
fn ask(op: &Op, target: &str) -> String {
    let resp = Req::new(op.addr, "GET", target)
        .host(op.issuer.trim_start_matches("http://"))
        .send();
    assert_eq!(resp.status, 200, "{target}: {}", resp.body);
    resp.body
}

/// How many refresh grants the provider granted.
fn refreshes(op: &Op) -> u64 {
    ask(op, "/test/refreshes").trim().parse().unwrap()
}

/// The roles the backend sees with `cookie`; `None` when the request is not
/// let through (the session ended).
fn roles(gate: &Gate, backend: &Backend, cookie: &str) -> Option<String> {
    let resp = gate.get("/dashboard").cookie(cookie).api().send();
    match resp.status {
        200 => Some(
            backend
                .last()
                .one("x-user-roles")
                .unwrap_or_default()
                .to_owned(),
        ),
        401 => None,
        other => panic!("{other}: {}\n{}", resp.body, gate.output()),
    }
}

#[test]
fn a_group_removed_at_the_provider_removes_the_role_at_the_next_check() {
    let op = Op::simple(&["--refresh"]);
    let backend = Backend::app();
    let gate = gate(
        &backend,
        &op,
        "recheck_every = \"1s\"\nif_unreachable = \"end\"",
    );
    let cookie = sign_in(&gate, &op, "alice");
    assert_eq!(
        roles(&gate, &backend, &cookie).as_deref(),
        Some("staff,admin")
    );
    // The refresh token the sign-in got never reaches the backend.
    let token = ask(&op, "/test/last-refresh-token");
    assert!(token.len() >= 20, "a refresh token: {token:?}");
    let seen = format!("{:?}", backend.last());
    assert!(!seen.contains(&token), "{seen}");

    control(&op, "/test/account?user=alice&groups=staff");
    wait_for(Duration::from_secs(20), "the role to go", || {
        roles(&gate, &backend, &cookie).as_deref() == Some("staff")
    });
    assert_eq!(gate.get("/admin").cookie(&cookie).api().send().status, 403);
    // The provider rotates the refresh token at each use: the session keeps
    // the new one, or its second re-check would be refused.
    let before = refreshes(&op);
    wait_for(Duration::from_secs(20), "two more re-checks", || {
        roles(&gate, &backend, &cookie).is_some() && refreshes(&op) >= before + 2
    });
    assert_eq!(roles(&gate, &backend, &cookie).as_deref(), Some("staff"));
    assert!(gate.metric(CONFIRMED) >= 3, "{}", gate.output());
    assert_eq!(gate.metric(REFUSED), 0, "{}", gate.output());
    // A group given back gives the role back.
    control(&op, "/test/account?user=alice&groups=staff,admins");
    wait_for(Duration::from_secs(20), "the role to come back", || {
        roles(&gate, &backend, &cookie).as_deref() == Some("staff,admin")
    });
    // The log names the user, never a token: neither the first nor the
    // latest (rotated) one.
    let log = gate.output();
    assert!(log.contains("session re-checked at the provider"), "{log}");
    let latest = ask(&op, "/test/last-refresh-token");
    assert_ne!(latest, token, "rotated");
    for t in [&token, &latest] {
        assert!(!log.contains(t.as_str()), "a token in the log");
    }
}

#[test]
fn a_user_disabled_at_the_provider_loses_the_session() {
    let op = Op::simple(&["--refresh"]);
    let backend = Backend::app();
    let gate = gate(
        &backend,
        &op,
        "recheck_every = \"1s\"\nif_unreachable = \"keep\"",
    );
    let alice = sign_in(&gate, &op, "alice");
    let bob = sign_in(&gate, &op, "bob");
    assert!(roles(&gate, &backend, &alice).is_some());

    control(&op, "/test/account?user=alice&disabled=1");
    wait_for(Duration::from_secs(20), "alice's session to end", || {
        roles(&gate, &backend, &alice).is_none()
    });
    assert_eq!(gate.metric(REFUSED), 1, "{}", gate.output());
    // Ended, not merely refused once: the admin's list has no alice.
    let listed = gate.admin("GET", "/sessions").send().body;
    assert!(!listed.contains("\"alice\""), "{listed}");
    // A browser is sent to sign in again, and its cookie is cleared.
    let resp = gate.get("/dashboard").cookie(&alice).browser().send();
    assert_eq!(resp.status, 302, "{}", resp.body);
    // Bob, still at the provider, keeps his through his next re-check.
    let confirmed = gate.metric(CONFIRMED);
    wait_for(Duration::from_secs(20), "a re-check of bob's", || {
        assert_eq!(roles(&gate, &backend, &bob).as_deref(), Some("contractors"));
        gate.metric(CONFIRMED) > confirmed
    });
}

/// Two instances on one Redis, a session used on both at once: one
/// re-check per interval, whoever's turn it is, so the rotating refresh
/// token is never presented twice (the provider would refuse the second,
/// and the session would end).
#[test]
fn instances_sharing_a_store_take_turns_at_a_session_s_recheck() {
    let redis = Redis::start();
    let op = Op::simple(&["--refresh"]);
    let backend = Backend::app();
    let store = format!("{}timeout = \"2s\"\n", redis.store_section());
    let keys = "recheck_every = \"1s\"\nif_unreachable = \"keep\"";
    let (a, b) = (
        gate_with_store(&backend, &op, keys, &store),
        gate_with_store(&backend, &op, keys, &store),
    );
    a.wait_ready(Duration::from_secs(10));
    b.wait_ready(Duration::from_secs(10));
    let cookie = sign_in(&a, &op, "alice");
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for gate in [&a, &b, &a, &b] {
            let cookie = &cookie;
            s.spawn(move || {
                while started.elapsed() < Duration::from_secs(4) {
                    let resp = gate.get("/dashboard").cookie(cookie).api().send();
                    assert_eq!(resp.status, 200, "{}", gate.output());
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs();
    let checks = a.metric(CONFIRMED) + b.metric(CONFIRMED);
    assert!(checks >= 2, "{checks} re-checks");
    // One per interval (1 s) at most, and each a grant the provider gave.
    assert!(checks <= elapsed + 2, "{checks} re-checks in {elapsed} s");
    assert_eq!(refreshes(&op), checks);
    assert_eq!(a.metric(REFUSED) + b.metric(REFUSED), 0);
}

#[test]
fn a_provider_that_cannot_be_reached_keeps_or_ends_sessions_as_configured() {
    let op = Op::simple(&["--refresh"]);
    let backend = Backend::app();
    let keep = gate(
        &backend,
        &op,
        "recheck_every = \"1s\"\nif_unreachable = \"keep\"",
    );
    let end = gate(
        &backend,
        &op,
        "recheck_every = \"1s\"\nif_unreachable = \"end\"",
    );
    let kept = sign_in(&keep, &op, "alice");
    let ended = sign_in(&end, &op, "alice");

    control(&op, "/test/outage?on=1");
    wait_for(Duration::from_secs(20), "a kept re-check", || {
        assert!(roles(&keep, &backend, &kept).is_some(), "{}", keep.output());
        keep.metric(KEPT) >= 1
    });
    wait_for(Duration::from_secs(20), "the other session to end", || {
        roles(&end, &backend, &ended).is_none()
    });
    assert_eq!(end.metric(ENDED), 1, "{}", end.output());
    assert_eq!(keep.metric(REFUSED), 0);

    // Back up: the kept session is confirmed again, with the token it had.
    control(&op, "/test/outage?on=0");
    let confirmed = keep.metric(CONFIRMED);
    wait_for(Duration::from_secs(20), "a confirmed re-check", || {
        assert!(roles(&keep, &backend, &kept).is_some(), "{}", keep.output());
        keep.metric(CONFIRMED) > confirmed
    });
}

#[test]
fn userinfo_claims_count_at_sign_in_and_at_each_check() {
    // A provider that puts only `sub` in its ID tokens (the certified default).
    let op = Op::simple(&["--refresh", "--conform"]);
    let backend = Backend::app();
    // Without userinfo, there is no user name to sign in with.
    let without = gate(&backend, &op, "");
    let done = begin(&without, &op, "/dashboard", "alice").finish(&without);
    assert_eq!(done.status, 401, "{}", done.body);
    assert!(
        without.output().contains("preferred_username"),
        "{}",
        without.output()
    );

    let gate = gate(
        &backend,
        &op,
        "userinfo = true\nrecheck_every = \"1s\"\nif_unreachable = \"end\"",
    );
    let cookie = sign_in(&gate, &op, "alice");
    assert_eq!(
        roles(&gate, &backend, &cookie).as_deref(),
        Some("staff,admin")
    );
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    control(&op, "/test/account?user=alice&groups=staff");
    wait_for(Duration::from_secs(20), "the role to go", || {
        roles(&gate, &backend, &cookie).as_deref() == Some("staff")
    });
}

#[test]
fn a_provider_that_gives_no_refresh_token_cannot_sign_in_with_rechecks() {
    // The client may not use refresh tokens: sign-ins would go unchecked.
    let op = Op::simple(&[]);
    let backend = Backend::app();
    let gate = gate(
        &backend,
        &op,
        "recheck_every = \"5m\"\nif_unreachable = \"keep\"",
    );
    let done = begin(&gate, &op, "/dashboard", "alice").finish(&gate);
    assert_eq!(done.status, 401, "{}", done.body);
    assert_eq!(done.session_cookie(), None);
    assert!(
        gate.output().contains("no refresh token"),
        "{}",
        gate.output()
    );
}

#[test]
fn check_refuses_rechecks_without_a_choice_for_an_unreachable_provider() {
    let dir = ScratchDir::create();
    let op = Op::simple(&[]);
    let check = |keys: &str| {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
            standard_config(
                "127.0.0.1:9".parse().unwrap(),
                &format!("\n[auth]\n{}", provider_config_at(&op, CALLBACK, keys)),
            )
        );
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let out = sessiongate(&["check"], &path)
            .env("TEST_OIDC_SECRET", CLIENT_SECRET)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), said)
    };
    // The base passes: each failure below is its one change.
    let (ok, said) = check("recheck_every = \"5m\"\nif_unreachable = \"keep\"\nuserinfo = true");
    assert!(ok, "{said}");
    for (keys, want) in [
        (
            "recheck_every = \"5m\"",
            "auth.oidc[0].if_unreachable: must be set with recheck_every",
        ),
        (
            "if_unreachable = \"keep\"",
            "auth.oidc[0].if_unreachable: needs recheck_every",
        ),
        (
            "recheck_every = \"5m\"\nif_unreachable = \"maybe\"",
            "auth.oidc[0].if_unreachable: must be \"keep\" or \"end\"",
        ),
        (
            "recheck_every = \"500ms\"\nif_unreachable = \"end\"",
            "auth.oidc[0].recheck_every: must be at least 1s",
        ),
    ] {
        let (ok, said) = check(keys);
        assert!(!ok && said.contains(want), "{keys}: {said}");
    }
}
