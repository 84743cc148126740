use http::Method;

use super::super::testing::{assert_refused, minimal, problems, valid};
use crate::auth::names;
use crate::proxy::routes::{Credentials, Decision};

#[test]
fn every_problem_names_its_key() {
    let text = minimal(
        r#"
[[route]]
path = "admin"
access = "public"
[[route]]
path = "/a//b"
[[route]]
path = "/x"
access = "everyone"
upstream = "nope"
[[route]]
path = "/y"
methods = ["get"]
match = "glob"
[[route]]
path = "/z"
roles = ["", "a,b"]
"#,
    );
    let p = problems(&text);
    let want = [
        "route[0].path: must start with '/' (got \"admin\")",
        "route[1].path: not in normal form",
        "route[2].access: must be public, authenticated or deny",
        "route[2].upstream: no [upstream.nope]",
        "route[3].match: must be prefix or exact",
        "route[3].methods[0]: not an upper-case HTTP method",
        "route[4].roles[0]: must be 1-256 bytes without `,`, control characters or surrounding spaces (got \"\")",
        "route[4].roles[1]: must be 1-256 bytes without `,`, control characters or surrounding spaces (got \"a,b\")",
    ];
    for w in want {
        assert!(
            p.iter().any(|x| x.starts_with(w)),
            "missing {w:?} in {p:#?}"
        );
    }
}

#[test]
fn unsafe_route_settings_are_refused() {
    let cases = [
        (
            minimal("[[route]]\npath = \"/a\"\n[[route]]\npath = \"/a\"\n"),
            "route[1]: same host, path",
        ),
        (
            minimal("[routes]\ndefault_access = \"public\"\n"),
            "routes.default_access: must be authenticated or deny",
        ),
    ];
    for (text, want) in cases {
        assert_refused(&text, want);
    }
}

/// The minimal config with one `[[route]]` of `lines`.
fn route(lines: &str) -> String {
    minimal(&format!("[[route]]\n{lines}\n"))
}

/// A second upstream, `api`, beside `app` (`api` sorts first: index 0).
const API: &str = "[upstream.api]\naddrs = [\"127.0.0.1:10\"]\n";

#[test]
fn route_defaults_apply_when_unset() {
    // Unmatched paths need a session; the one upstream serves them.
    let rules = valid(&minimal("")).rules;
    assert_eq!(
        rules.decide(&Method::GET, "/x", None),
        Decision::Unauthenticated
    );
    // A rule matches by prefix, for every method, and needs a session.
    let rules = valid(&route("path = \"/static\"")).rules;
    assert!(rules
        .find_rule(&Method::DELETE, None, "/static/a.css")
        .is_some());
    assert_eq!(
        rules.decide(&Method::GET, "/static/a.css", None),
        Decision::Unauthenticated
    );
}

#[test]
fn routes_are_taken_as_written() {
    let text = minimal(&format!(
        "{API}[routes]\ndefault_upstream = \"app\"\ndefault_access = \"deny\"\n\
         [[route]]\npath = \"/health\"\nmatch = \"exact\"\nmethods = [\"GET\", \"HEAD\"]\naccess = \"public\"\n\
         [[route]]\npath = \"/api\"\naccess = \"public\"\nupstream = \"api\"\n\
         [[route]]\npath = \"/admin\"\nroles = [\"admin\"]\n"
    ));
    let rules = valid(&text).rules;
    let decide = |m: &Method, p: &str| rules.decide(m, p, None);
    assert_eq!(
        decide(&Method::GET, "/health"),
        Decision::Allow { upstream: 1 }
    );
    assert_eq!(decide(&Method::GET, "/health/x"), Decision::NotFound);
    assert_eq!(decide(&Method::POST, "/health"), Decision::NotFound);
    assert_eq!(
        decide(&Method::POST, "/api/v1"),
        Decision::Allow { upstream: 0 }
    );
    assert_eq!(decide(&Method::GET, "/admin"), Decision::Unauthenticated);
    assert_eq!(decide(&Method::GET, "/elsewhere"), Decision::NotFound);
}

#[test]
fn credentials_default_to_the_session_and_basic_needs_the_users_file() {
    let rules = valid(&route("path = \"/a\"")).rules;
    assert_eq!(
        rules.matched(&Method::GET, None, "/a", None).credentials,
        Credentials::SESSION
    );
    assert_eq!(
        rules
            .matched(&Method::GET, None, "/unmatched", None)
            .credentials,
        Credentials::SESSION
    );
    let cases = [
        (
            route("path = \"/a\"\ncredentials = [\"basic\"]"),
            "route[0].credentials: basic needs auth.users_file",
        ),
        (
            route("path = \"/a\"\ncredentials = []"),
            "route[0].credentials: lists no credential; leave it out for [\"session\"]",
        ),
        (
            route("path = \"/a\"\ncredentials = [\"session\", \"cookie\"]"),
            "route[0].credentials: each must be session, basic, bearer or api_key (got \"cookie\")",
        ),
    ];
    for (text, want) in cases {
        assert_refused(&text, want);
    }
}

#[test]
fn each_route_refusal_names_its_key_and_value() {
    let user_rule = names::check_user("").unwrap_err();
    let cases = [
        (
            minimal("[routes]\ndefault_upstream = \"nope\"\n"),
            "routes.default_upstream: no [upstream.nope] (got \"nope\")".to_owned(),
        ),
        (
            minimal(API),
            "routes.default_upstream: required when there is more than one upstream".to_owned(),
        ),
        (
            minimal("[routes]\ndefault_access = \"public\"\n"),
            "routes.default_access: must be authenticated or deny (got \"public\"); make public paths explicit with [[route]]".to_owned(),
        ),
        (
            route("path = \"/a/../b\""),
            "route[0].path: not in normal form (got \"/a/../b\", normal form \"/b\")".to_owned(),
        ),
        (
            route("path = \"/a%2fb\""),
            "route[0].path: encoded '/' or '\\' in a path segment (got \"/a%2fb\")".to_owned(),
        ),
        (
            route("path = \"/a\"\nmethods = [\"G ET\"]"),
            "route[0].methods[0]: not an upper-case HTTP method (got \"G ET\")".to_owned(),
        ),
        (
            route("path = \"/a\"\nusers = [\"\"]"),
            format!("route[0].users[0]: {user_rule} (got \"\")"),
        ),
        (
            route("path = \"/a\"\naccess = \"public\"\nusers = [\"alice\"]"),
            "route[0].access: a public or deny route cannot name roles or users".to_owned(),
        ),
        (
            route("path = \"/a\"\naccess = \"nobody\""),
            "route[0].access: must be public, authenticated or deny (got \"nobody\")".to_owned(),
        ),
        (
            route("path = \"/a\"\nnetworks = [\"10.0.0.0/8\"]"),
            "route[0].networks: needs a rule for the same hosts and path \"/a\" without networks, to decide for every other client (access = \"deny\" to refuse them)".to_owned(),
        ),
        (
            route("path = \"/a\"\nnetworks = [\"10.0.0.0/33\"]"),
            "route[0].networks[0]: must be a CIDR range like \"10.0.0.0/8\" or an address (got \"10.0.0.0/33\")".to_owned(),
        ),
        (
            route("path = \"/a\"\nupstream = \"nope\""),
            "route[0].upstream: no [upstream.nope] (got \"nope\")".to_owned(),
        ),
        (
            minimal("[[route]]\npath = \"/a\"\nmethods = [\"GET\"]\n[[route]]\npath = \"/a\"\nmethods = [\"GET\"]\n"),
            "route[1]: same host, path, match and methods as route[0]: neither would win".to_owned(),
        ),
    ];
    for (text, want) in cases {
        assert_refused(&text, &want);
    }
}
