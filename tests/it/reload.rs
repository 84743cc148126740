//! Reload of the whole config through the binary: each kind of change, a
//! broken file (the last good config keeps serving), a change only a restart
//! can make (refused), and reloads under load (no failed request).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

/// The reload counters of `/stats`: (generation, applied, invalid, refused).
fn reloads(gate: &Gate) -> (u64, u64, u64, u64) {
    let s = gate.stats();
    let c = &s["config"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{s}"));
    (
        n(&c["generation"]),
        n(&c["reloads"]["applied"]),
        n(&c["reloads"]["invalid"]),
        n(&c["reloads"]["refused"]),
    )
}

/// Reloads the gate has logged, whatever their result.
fn attempts(gate: &Gate) -> usize {
    let out = gate.output();
    out.matches("config reloaded").count() + out.matches("config not reloaded").count()
}

/// Rewrite the gate's `proxy.toml` through `edit`, by rename (as an
/// operator's tooling should).
fn replace_config(gate: &Gate, edit: impl FnOnce(String) -> String) {
    let path = gate.dir().join("proxy.toml");
    let text = edit(std::fs::read_to_string(&path).unwrap());
    let tmp = gate.dir().join("proxy.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// [`replace_config`], then wait until the reload it causes has been logged.
fn rewrite(gate: &Gate, edit: impl FnOnce(String) -> String) {
    let before = attempts(gate);
    replace_config(gate, edit);
    wait_for(Duration::from_secs(10), "a reload", || {
        attempts(gate) != before
    });
}

/// [`replace_config`], then wait for the reload in the admin API's counters
/// (which a log level cannot hide); returns them.
fn edit(gate: &Gate, edit: impl FnOnce(String) -> String) -> (u64, u64, u64, u64) {
    let before = reloads(gate);
    replace_config(gate, edit);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = reloads(gate);
        if (now.1, now.2, now.3) != (before.1, before.2, before.3) {
            return now;
        }
        assert!(Instant::now() < deadline, "no reload:\n{}", gate.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn routes_upstreams_and_session_options_change_and_sessions_survive() {
    let backend = Backend::app();
    let second = Backend::start(|_| Reply::ok("second"));
    let gate = Gate::start(&standard_config(
        backend.addr,
        "[[route]]\npath = \"/soon-public\"\n",
    ));
    assert_eq!(reloads(&gate), (1, 0, 0, 0));
    let alice = gate.login("alice", "user");
    assert_eq!(gate.get("/soon-public").api().send().status, 401);

    // A rule: /soon-public becomes public.
    let r = edit(&gate, |t| {
        t.replace(
            "path = \"/soon-public\"\n",
            "path = \"/soon-public\"\naccess = \"public\"\n",
        )
    });
    assert_eq!((r.0, r.1), (2, 1), "{}", gate.output());
    assert_eq!(gate.get("/soon-public").api().send().status, 200);
    // The session from before the reload lives on.
    assert_eq!(gate.get("/private").cookie(&alice).send().status, 200);

    // An upstream: its address moves to the second backend.
    let before = second.count();
    edit(&gate, |t| {
        t.replace(&backend.addr.to_string(), &second.addr.to_string())
    });
    let resp = gate.get("/private").cookie(&alice).send();
    assert_eq!((resp.status, resp.body.as_str()), (200, "second"));
    assert_eq!(second.count(), before + 1);
    assert_eq!(second.last().one("x-user"), Some("alice"));

    // A session option: rolling re-sends the cookie on every response.
    assert!(gate
        .get("/private")
        .cookie(&alice)
        .send()
        .session_cookie()
        .is_none());
    edit(&gate, |t| with_keys(t, "rolling = true"));
    let rolled = gate.get("/private").cookie(&alice).send();
    assert!(rolled.session_cookie().is_some(), "{rolled:#?}");
    assert_eq!(reloads(&gate).0, 4);
}

#[test]
fn secrets_rotate_without_a_restart() {
    let backend = Backend::app();
    let old = "old-secret-from-a-file-0123456789abcdef";
    let new = "new-secret-from-a-file-0123456789abcdef";
    let config = standard_config(backend.addr, "")
        .replace("{ env = \"TEST_SECRET\" }", "{ file = \"old.secret\" }");
    let gate = Gate::start_with(
        &config,
        &[("old.secret", old), ("new.secret", new)],
        &[("TEST_SECRET", SECRET)],
    );
    let before = gate.login("alice", "user");
    // The new secret first: it signs, the old one still verifies.
    edit(&gate, |t| {
        t.replace(
            "{ file = \"old.secret\" }",
            "{ file = \"new.secret\" }, { file = \"old.secret\" }",
        )
    });
    assert_eq!(gate.get("/private").cookie(&before).send().status, 200);
    let after = gate.login("bob", "user");
    assert_eq!(gate.get("/private").cookie(&after).send().status, 200);
    // The old secret retired: its cookies stop verifying, the new ones work.
    edit(&gate, |t| t.replace(", { file = \"old.secret\" }", ""));
    assert_eq!(
        gate.get("/private").api().cookie(&before).send().status,
        401
    );
    assert_eq!(gate.get("/private").cookie(&after).send().status, 200);
    // A secret file changing in place is a reload too (no edit of proxy.toml).
    let generation = reloads(&gate).0;
    std::fs::write(
        gate.dir().join("new.secret"),
        "another-secret-0123456789abcdef-xyz",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(&gate).0 == generation {
        assert!(Instant::now() < deadline, "{}", gate.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gate.get("/private").api().cookie(&after).send().status, 401);
}

/// Regression: a reload refused because a named secret file was missing was
/// not retried when the file appeared (only the serving config's files were
/// watched), the usual order when a ConfigMap and a Secret update apart.
#[test]
fn a_secret_file_that_appears_after_the_config_is_picked_up() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let before = gate.login("alice", "user");
    let (generation, applied, invalid, _) = edit(&gate, |t| {
        t.replace(
            "{ env = \"TEST_SECRET\" }",
            "{ file = \"late.secret\" }, { env = \"TEST_SECRET\" }",
        )
    });
    assert_eq!(invalid, 1, "the missing file refuses the reload");
    assert!(gate.output().contains("late.secret"), "{}", gate.output());
    // The file appears; nothing else changes, and no SIGHUP is sent.
    let late = "a-secret-that-landed-late-0123456789abcdef";
    let tmp = gate.dir().join("late.secret.tmp");
    std::fs::write(&tmp, late).unwrap();
    std::fs::rename(&tmp, gate.dir().join("late.secret")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(&gate).1 == applied {
        assert!(
            Instant::now() < deadline,
            "the appeared file was not picked up:\n{}",
            gate.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reloads(&gate).0, generation + 1);
    // The new secret signs; the old one still verifies.
    assert_eq!(gate.get("/private").cookie(&before).send().status, 200);
    let after = gate.login("bob", "user");
    let (name, value) = after.split_once('=').expect("name=value");
    let (id, sig) = value.split_once('.').expect("id.sig");
    let want = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(late.as_bytes()).unwrap();
        mac.update(format!("{name}={id}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    assert_eq!(sig, want, "the late secret signs new cookies");
}

#[test]
fn the_admin_token_follows_the_file() {
    let backend = Backend::app();
    let gate = Gate::start_with(
        &standard_config(backend.addr, ""),
        &[("admin.token", "a-second-admin-token-0123456789abcdef")],
        &[("TEST_SECRET", SECRET)],
    );
    rewrite(&gate, |t| {
        t.replace(
            "token = { env = \"TEST_ADMIN_TOKEN\" }",
            "token = { file = \"admin.token\" }",
        )
    });
    assert_eq!(
        gate.admin("GET", "/stats").send().status,
        401,
        "old token refused"
    );
    let stats = gate
        .admin_anonymous("GET", "/stats")
        .header(
            "Authorization",
            "Bearer a-second-admin-token-0123456789abcdef",
        )
        .send();
    assert_eq!(stats.status, 200);
    assert_eq!(stats.json()["config"]["generation"], 2);
    rewrite(&gate, |t| {
        t.replace(
            "token = { file = \"admin.token\" }",
            "token = { env = \"TEST_ADMIN_TOKEN\" }",
        )
    });
    assert_eq!(
        gate.admin("GET", "/stats").send().status,
        200,
        "first token again"
    );
}

#[test]
fn log_level_and_format_follow_the_file() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    // JSON logs at warn: no access lines (the reload's own line is info too).
    edit(&gate, |t| {
        t + "\n[log]\nformat = \"json\"\nlevel = \"warn\"\n"
    });
    gate.get("/public/quiet").send();
    edit(&gate, |t| t.replace("level = \"warn\"", "level = \"info\""));
    gate.get("/public/loud").send();
    // The access line is written after the response has gone out.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gate.output().contains("/public/loud") {
        assert!(Instant::now() < deadline, "{}", gate.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = gate.output();
    assert!(!out.contains("/public/quiet"), "{out}");
    let loud = out
        .lines()
        .find(|l| l.contains("/public/loud"))
        .unwrap_or_else(|| panic!("{out}"));
    let event: serde_json::Value = serde_json::from_str(loud).expect("a JSON line");
    assert_eq!(event["target"], "access");
    assert_eq!(event["status"], 200);
}

#[test]
fn a_broken_file_changes_nothing_and_is_logged_as_check_prints_it() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let alice = gate.login("alice", "user");
    let path = gate.dir().join("proxy.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let bad = good.replace("path = \"/public\"", "path = \"public\"");
    std::fs::write(gate.dir().join("bad.toml"), &bad).unwrap();
    let check = sessiongate(&["check"], &gate.dir().join("bad.toml"))
        .output()
        .unwrap();
    assert!(!check.status.success());
    let printed = String::from_utf8_lossy(&check.stderr).into_owned();
    let key_line = printed
        .lines()
        .find(|l| l.contains("route[0].path"))
        .unwrap_or_else(|| panic!("{printed}"))
        .trim()
        .to_owned();

    let r = edit(&gate, |_| bad.clone());
    assert_eq!((r.0, r.2), (1, 1), "generation unchanged, one invalid");
    assert!(
        gate.output().contains(&key_line),
        "{key_line}\n{}",
        gate.output()
    );
    assert!(gate.output().contains("the last good config keeps serving"));
    // The old config serves on: /public is public, the session lives.
    assert_eq!(gate.get("/public").send().status, 200);
    assert_eq!(gate.get("/private").cookie(&alice).send().status, 200);
    // A TOML syntax error too.
    let r = edit(&gate, |t| t + "\n[[route]\n");
    assert_eq!((r.0, r.2), (1, 2));
    assert_eq!(gate.get("/private").cookie(&alice).send().status, 200);
    // SIGHUP on the broken file: still the old config; then fixed, it applies.
    gate.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(&gate).2 != 3 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not counted:\n{}",
            gate.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(reloads(&gate).0, 1);
    let r = edit(&gate, |_| {
        good.replace("path = \"/public\"", "path = \"/public2\"")
    });
    assert_eq!(r.0, 2, "{}", gate.output());
    assert_eq!(gate.get("/public").api().send().status, 401);
}

#[test]
fn a_change_that_needs_a_restart_is_refused_whole() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(
        backend.addr,
        "[[route]]\npath = \"/later\"\naccess = \"public\"\n",
    ));
    let other = free_addr();
    let r = edit(&gate, |t| {
        t.replace(&gate.addr.to_string(), &other.to_string())
            .replace("threads = 2", "threads = 3")
            .replace("path = \"/later\"", "path = \"/later2\"")
    });
    assert_eq!((r.0, r.3), (1, 1), "refused, generation unchanged");
    let out = gate.output();
    assert!(
        out.contains("server.listen, server.threads cannot change without a restart"),
        "{out}"
    );
    // Nothing of it applied, not even the route.
    assert_eq!(gate.get("/later").send().status, 200);
    let metrics = gate.admin("GET", "/metrics").send().body;
    assert!(
        metrics.contains("sessiongate_config_reloads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sessiongate_config_generation 1"),
        "{metrics}"
    );
}

#[test]
fn reloads_under_load_fail_no_request() {
    let backend = Backend::app();
    let gate = Arc::new(Gate::start(&standard_config(backend.addr, "")));
    let alice = gate.login("alice", "user");
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (gate, alice, stop) = (gate.clone(), alice.clone(), stop.clone());
            let (done, failed) = (done.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match gate.get("/private").cookie(&alice).try_send() {
                        Some(r) if r.status == 200 && r.body == "ok" => {}
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for i in 0..6 {
        let before = done.load(Ordering::Relaxed);
        edit(&gate, |t| {
            t + &format!("\n[[route]]\npath = \"/r{i}\"\naccess = \"public\"\n")
        });
        // Requests ran across each swap.
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::Relaxed) < before + 20 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(reloads(&gate).0, 7);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {}",
        done.load(Ordering::Relaxed)
    );
    assert_eq!(gate.get("/r5").send().status, 200);
}

/// A request in flight while `log.format` goes from text to JSON logs its
/// access line in JSON, with its request id. (With a span per request, the
/// JSON formatter met a span made under the text format and panicked, and
/// the line was lost.)
#[test]
fn a_request_across_a_log_format_reload_is_logged_in_the_new_format() {
    let (arrived, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (arriving, held) = (arrived.clone(), release.clone());
    let backend = Backend::start(move |r| {
        if r.path() == "/public/held" {
            arriving.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !held.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Reply::ok("ok")
    });
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let held_request = gate.get("/public/held");
    let client = std::thread::spawn(move || held_request.send());
    wait_for(Duration::from_secs(5), "the request at the backend", || {
        arrived.load(Ordering::SeqCst)
    });
    edit(&gate, |t| t + "\n[log]\nformat = \"json\"\n");
    release.store(true, Ordering::SeqCst);
    let resp = client.join().unwrap();
    assert_eq!(resp.status, 200);
    let id = resp
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    let mut line = None;
    wait_for(Duration::from_secs(5), "the access line", || {
        line = gate
            .output()
            .lines()
            .find(|l| l.contains("/public/held"))
            .map(str::to_owned);
        line.is_some()
    });
    let event: serde_json::Value =
        serde_json::from_str(&line.unwrap()).expect("the access line in JSON");
    assert_eq!(event["target"], "access");
    assert_eq!(event["request_id"], id.as_str());
    assert!(!gate.output().contains("panicked"), "{}", gate.output());
}
