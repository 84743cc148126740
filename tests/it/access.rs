//! Route decisions through the real binary: who gets in, who is redirected, and
//! that the path decided on is the path the backend receives.

use crate::support::*;

#[test]
fn public_route_without_cookie_reaches_backend_without_x_user() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/public/page").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    let seen = backend.last();
    assert_eq!(seen.path(), "/public/page");
    assert_eq!(seen.one("x-user"), None, "{seen:#?}");
    assert_eq!(seen.one("x-user-roles"), None, "{seen:#?}");
}

#[test]
fn protected_route_browser_is_redirected_to_login_with_relative_next() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let resp = gate.get("/private/x?a=1&b=2").browser().send();
    assert_eq!(resp.status, 302, "{resp:#?}");
    assert_eq!(
        resp.header("location"),
        Some("/.sessiongate/login?next=/private/x%3Fa%3D1%26b%3D2")
    );
    // Without Sec-Fetch-Mode, a GET accepting HTML is a navigation too.
    let resp = gate.get("/private").header("Accept", "text/html").send();
    assert_eq!(resp.status, 302, "{resp:#?}");
    assert_eq!(backend.count(), 0, "the backend must see no denied request");
}

#[test]
fn protected_route_api_client_gets_401_json() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    for req in [
        gate.get("/private").api(),
        gate.req("POST", "/private").header("Accept", "text/html"),
    ] {
        let resp = req.send();
        assert_eq!(resp.status, 401, "{resp:#?}");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.body, problem_body(&resp, "unauthenticated"));
    }
    assert_eq!(backend.count(), 0, "the backend must see no denied request");
}

#[test]
fn missing_role_is_forbidden_and_role_or_user_is_allowed() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let alice = gate.login("alice", "user");
    let boss = gate.login("bob", "user,admin");
    let before = backend.count();
    let resp = gate.get("/admin/panel").cookie(&alice).send();
    assert_eq!(resp.status, 403, "{resp:#?}");
    assert_eq!(resp.body, problem_body(&resp, "forbidden"));
    assert_eq!(
        backend.count(),
        before,
        "the backend must not see a forbidden request"
    );
    let resp = gate.get("/admin/panel").cookie(&boss).send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().one("x-user"), Some("bob"));
    assert_eq!(backend.last().one("x-user-roles"), Some("user,admin"));
}

#[test]
fn traversal_paths_decide_and_forward_as_their_normal_form() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    // Anonymous: each must be denied as the private path it normalises to.
    for path in [
        "/public/../private",
        "/public/%2e%2e/private",
        "//private",
        "/private/./x",
        "/public/..%2F..%2Fprivate",
    ] {
        let resp = gate.get(path).api().send();
        let expected = if path.contains("%2F") { 400 } else { 401 };
        assert_eq!(resp.status, expected, "{path}: {resp:#?}");
    }
    assert_eq!(backend.count(), 0);
    // Logged in: the backend receives exactly the normal form, query kept.
    let cookie = gate.login("alice", "");
    for (path, want) in [
        ("/public/../private", "/private"),
        ("/public/%2e%2e/private?q=1", "/private?q=1"),
        ("//private", "/private"),
        ("/private/./x", "/private/x"),
        ("/%70ublic/a", "/public/a"),
    ] {
        let resp = gate.get(path).cookie(&cookie).send();
        assert_eq!(resp.status, 200, "{path}: {resp:#?}");
        assert_eq!(backend.last().target, want, "{path}");
    }
}

#[test]
fn encoded_separators_backslash_and_control_characters_get_400() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    let cookie = gate.login("alice", "");
    let before = backend.count();
    for path in [
        "/private%2fx",
        "/public/..%5cprivate",
        "/public/%5c..%5cprivate",
        "/public/a%00",
        "/public/%0d%0aX-User:%20root",
        "/public/a\\b",
        "/public/..;/private",
        "/private;x=1",
        "/public/%3b",
    ] {
        let resp = gate.get(path).cookie(&cookie).send();
        assert_eq!(resp.status, 400, "{path}: {resp:#?}");
    }
    assert_eq!(
        backend.count(),
        before,
        "the backend must not see a refused path"
    );
}

#[test]
fn absolute_form_target_is_forwarded_as_origin_form() {
    let backend = Backend::app();
    let gate = Gate::start(&standard_config(backend.addr, ""));
    // The authority agrees with Host: forwarded, as origin-form and normalised.
    let resp = gate.get("http://app.test/public/../public/x").send();
    assert_eq!(resp.status, 200, "{resp:#?}");
    assert_eq!(backend.last().target, "/public/x");
    // An authority that disagrees with Host is refused (pingora checks this).
    let resp = gate.get("http://evil.test/public/x").send();
    assert_eq!(resp.status, 400, "{resp:#?}");
    assert_eq!(backend.count(), 1);
}
