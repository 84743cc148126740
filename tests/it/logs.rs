//! The access log through the real binary: one event per request, JSON when
//! configured, and never a cookie value, a secret or a password.

use std::time::Duration;

use crate::support::*;

#[test]
fn json_access_log_has_one_event_per_request_without_secrets() {
    let backend = Backend::app();
    let users = users_file(&[("alice", "hunter2-password", "", false)]);
    let config = standard_config(backend.addr, "").replace(
        "[upstream.app]",
        "[auth]\nusers_file = \"users.toml\"\n[log]\nformat = \"json\"\n[upstream.app]",
    );
    let gate = Gate::start_with(
        &config,
        &[("users.toml", &users)],
        &[("TEST_SECRET", SECRET)],
    );
    let cookie = gate
        .login_form("alice", "hunter2-password", "/")
        .session_cookie()
        .unwrap();
    gate.get("/private/doc?token=abc123").cookie(&cookie).send();
    gate.get("/public/x").send();
    gate.get("/private").api().send();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let events = loop {
        let events: Vec<serde_json::Value> = gate
            .output()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["target"] == "access")
            .collect();
        if events.len() >= 4 || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(events.len(), 4, "one event per request:\n{}", gate.output());
    let private = events
        .iter()
        .find(|e| e["path"] == "/private/doc")
        .expect("the private request");
    assert_eq!(private["method"], "GET");
    assert_eq!(private["status"], 200);
    assert_eq!(private["user"], "alice");
    assert_eq!(private["upstream"], "app");
    assert_eq!(private["decision"], "allow");
    assert!(private["duration_ms"].is_f64());
    let denied = events.iter().find(|e| e["path"] == "/private").unwrap();
    assert_eq!(
        (
            denied["status"].as_u64(),
            denied["user"].as_str(),
            denied["decision"].as_str()
        ),
        (Some(401), Some("-"), Some("unauthenticated"))
    );
    let out = gate.output();
    let value = cookie.split_once('=').unwrap().1;
    for secret in [value, &value[..64], SECRET, "hunter2-password", "abc123"] {
        assert!(!out.contains(secret), "{secret:?} reached the log");
    }
}

/// `cookie` with its MAC's last digit changed.
fn tampered(cookie: &str) -> String {
    let (head, last) = cookie.split_at(cookie.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// Every event inside a request carries the request id of its access line:
/// a tampered cookie's `warn` (JSON: a `request_id` field, as the access
/// line has).
#[test]
fn a_warning_inside_a_request_names_its_request_id() {
    let backend = Backend::app();
    let config = standard_config(backend.addr, "")
        .replace("[upstream.app]", "[log]\nformat = \"json\"\n[upstream.app]");
    let gate = Gate::start(&config);
    let cookie = tampered(&gate.login("alice", "user"));
    let resp = gate.get("/private").api().cookie(&cookie).send();
    assert_eq!(resp.status, 401);
    let id = resp
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    let mut warning = None;
    wait_for(
        Duration::from_secs(3),
        "the warning and the access line",
        || {
            let events: Vec<serde_json::Value> = gate
                .output()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let access = events
                .iter()
                .any(|e| e["target"] == "access" && e["request_id"] == id.as_str());
            warning = events
                .iter()
                .find(|e| {
                    e["level"] == "WARN"
                        && e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("did not verify"))
                })
                .cloned();
            access && warning.is_some()
        },
    );
    let warning = warning.unwrap();
    assert_eq!(warning["request_id"], id.as_str(), "{warning}");
}

/// The same in the text format: the warning's line ends with the id.
#[test]
fn a_text_warning_inside_a_request_names_its_request_id() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = tampered(&gate.login("alice", "user"));
    let resp = gate.get("/private").api().cookie(&cookie).send();
    assert_eq!(resp.status, 401);
    let id = resp
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    let mut line = None;
    wait_for(Duration::from_secs(3), "the warning", || {
        line = gate
            .output()
            .lines()
            .find(|l| l.contains("WARN") && l.contains("did not verify"))
            .map(str::to_owned);
        line.is_some()
    });
    let line = line.unwrap();
    assert!(line.ends_with(&format!(" request_id={id}")), "{line}");
}
