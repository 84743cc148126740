//! Rules by host through the binary: two apps and a wildcard on one gate,
//! the most specific host first, a host no rule names answered 421, every
//! spelling of a host one name (case, trailing dot, default port, punycode),
//! and the upstream's `Host` the canonical name the rule was decided on.

use crate::support::*;

/// `app.test` is public under `/`; anything under `example.com` needs a
/// session, and its `/admin` the role admin; `bücher.example` (written in
/// Unicode) is public; `/static` is public on every host the rules name,
/// where that host's own rules do not cover it.
const HOST_ROUTES: &str = r#"
[[route]]
path = "/"
hosts = ["app.test"]
access = "public"

[[route]]
path = "/"
hosts = ["*.example.com"]

[[route]]
path = "/admin"
hosts = ["*.example.com"]
roles = ["admin"]

[[route]]
path = "/"
hosts = ["Bücher.Example"]
access = "public"

[[route]]
path = "/static"
access = "public"
"#;

fn gate(backend: &Backend) -> Gate {
    Gate::start(&standard_config(backend.addr, HOST_ROUTES))
}

#[test]
fn each_host_gets_its_own_rules_and_others_get_421() {
    let backend = Backend::app();
    let gate = gate(&backend);
    let get = |host: &str, path: &str| gate.get(path).host(host).api().send();

    // app.test: public.
    assert_eq!(get("app.test", "/anything").status, 200);
    // grafana.example.com: a session needed; and its /admin a role.
    assert_eq!(get("grafana.example.com", "/x").status, 401);
    let cookie = gate.login("alice", "staff");
    let with = |host: &str, path: &str| gate.get(path).host(host).cookie(&cookie).api().send();
    assert_eq!(with("grafana.example.com", "/x").status, 200);
    assert_eq!(with("grafana.example.com", "/admin").status, 403);
    // The host's own rules first: its `/` beats everyone's `/static`.
    assert_eq!(get("grafana.example.com", "/static/a.css").status, 401);
    // A host no rule names: 421, whatever the path; never another app's rules.
    for (host, path) in [
        ("other.test", "/static/a.css"),
        ("example.com", "/x"),
        ("notexample.com", "/x"),
        ("app.test.evil", "/"),
    ] {
        let resp = get(host, path);
        assert_eq!(resp.status, 421, "{host}{path}: {resp:#?}");
        assert_eq!(resp.json()["error"], "misdirected request");
    }
}

#[test]
fn every_spelling_of_a_host_is_one_name_for_the_rule_and_the_upstream() {
    let backend = Backend::app();
    let gate = gate(&backend);
    for host in ["app.test", "APP.Test", "app.test.", "App.Test.:80"] {
        let resp = gate.get("/page").host(host).api().send();
        assert_eq!(resp.status, 200, "{host}: {resp:#?}");
        assert_eq!(backend.last().one("host"), Some("app.test"), "{host}");
    }
    // A port other than the default is kept for the upstream.
    let resp = gate.get("/page").host("app.test:8443").api().send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("host"), Some("app.test:8443"));
    // An internationalised name: its punycode, or itself in any case.
    for host in ["xn--bcher-kva.example", "bücher.example", "BÜCHER.example"] {
        let resp = gate.get("/page").host(host).api().send();
        assert_eq!(resp.status, 200, "{host}: {resp:#?}");
        assert_eq!(backend.last().one("host"), Some("xn--bcher-kva.example"));
    }
    // Case does not smuggle a host past its rules.
    assert_eq!(
        gate.get("/x")
            .host("Grafana.EXAMPLE.com")
            .api()
            .send()
            .status,
        401
    );
}

#[test]
fn a_malformed_repeated_or_disagreeing_host_is_refused() {
    let backend = Backend::app();
    let gate = gate(&backend);
    let before = backend.count();
    for host in [
        "app test",
        "app..test",
        "user@app.test",
        "app.test:99999",
        "[::1",
    ] {
        let resp = gate.get("/page").host(host).api().send();
        assert_eq!(resp.status, 400, "{host}: {resp:#?}");
    }
    let resp = gate.get("/page").header("Host", "other.test").api().send();
    assert_eq!(resp.status, 400, "two Host headers: {resp:#?}");
    let resp = gate.get("http://other.test/page").api().send();
    assert_eq!(resp.status, 400, "the target disagrees: {resp:#?}");
    assert_eq!(backend.count(), before, "the backend saw none of them");
}

#[test]
fn check_refuses_bad_host_patterns_and_names_both_rules_of_a_clash() {
    let backend = Backend::app();
    let dir = ScratchDir::create();
    let with = |routes: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
            standard_config(backend.addr, routes)
        )
    };
    let cases = [
        ("[[route]]\npath = \"/\"\nhosts = [\"*.com.*\"]\n", "route[4].hosts[0]"),
        ("[[route]]\npath = \"/\"\nhosts = [\"app.test:8080\"]\n", "without a port"),
        ("[[route]]\npath = \"/\"\nhosts = [\"*.com\"]\n", "two labels or more"),
        ("[[route]]\npath = \"/\"\nhosts = [\"*.127.0.0.1\"]\n", "two labels or more"),
        ("[[route]]\npath = \"/\"\nhosts = [\"bad host\"]\n", "not a host name"),
        (
            "[[route]]\npath = \"/x\"\nhosts = [\"a.test\"]\n[[route]]\npath = \"/x\"\nhosts = [\"b.test\", \"A.Test\"]\n",
            "route[5]",
        ),
    ];
    for (routes, want) in cases {
        let (ok, out) = check_config(dir.path(), "proxy.toml", &with(routes));
        assert!(!ok && out.contains(want), "{want}:\n{out}");
    }
    let clash = check_config(
        dir.path(),
        "proxy.toml",
        &with("[[route]]\npath = \"/x\"\nhosts = [\"a.test\"]\n[[route]]\npath = \"/x\"\nhosts = [\"b.test\", \"A.Test\"]\n"),
    )
    .1;
    assert!(clash.contains("route[4]"), "both rules named: {clash}");
    let (ok, out) = check_config(
        dir.path(),
        "proxy.toml",
        &with("[[route]]\npath = \"/x\"\nhosts = [\"a.test\"]\n[[route]]\npath = \"/x\"\nhosts = [\"b.test\"]\n"),
    );
    assert!(ok, "different hosts do not clash: {out}");
}

/// One sign-in for every app under one parent domain: the session cookie
/// with `domain` (and a name without `__Host-`, which forbids one) is sent
/// by the browser to every host under it, and each host's rules decide.
#[test]
fn a_cookie_domain_signs_in_once_for_every_host_under_it() {
    let backend = Backend::app();
    let routes = r#"
[[route]]
path = "/"
hosts = ["app.example.test"]

[[route]]
path = "/_test"
hosts = ["app.example.test"]
access = "public"

[[route]]
path = "/"
hosts = ["*.example.test"]
roles = ["admin"]
"#;
    let config = with_keys(
        standard_config(backend.addr, routes),
        "[session.cookie]\nname = \"__Secure-sid\"\ndomain = \"example.test\"\nsecure = true",
    );
    let gate = Gate::start(&config);
    // The backend logs alice in on app.example.test (a public path for it).
    let resp = gate
        .get("/_test/login?user=alice&roles=admin")
        .host("app.example.test")
        .send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let set = resp
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Secure-sid="))
        .expect("a session cookie")
        .to_owned();
    assert!(set.contains("Domain=example.test"), "{set}");
    let pair = set.split(';').next().unwrap().to_owned();
    // The browser sends it to grafana.example.test too: signed in there.
    for host in ["app.example.test", "grafana.example.test"] {
        let resp = gate.get("/dashboard").host(host).cookie(&pair).api().send();
        assert_eq!(resp.status, 200, "{host}: {resp:#?}");
        assert_eq!(backend.last().one("x-user"), Some("alice"));
        assert_eq!(backend.last().one("host"), Some(host));
    }
}
