//! The rule table's unit tests: specificity, hosts, access, conflicts.

use super::*;

fn rule(index: usize, path: &str, kind: PathMatch, methods: &[Method], access: Access) -> Rule {
    Rule {
        path: path.into(),
        kind,
        methods: methods.to_vec(),
        access,
        credentials: Credentials::SESSION,
        step_up: None,
        upstream: index,
        index,
        host: None,
        networks: crate::proxy::forwarded::Networks::default(),
    }
}

fn from(networks: &[&str], r: Rule) -> Rule {
    let nets = networks
        .iter()
        .map(|n| crate::proxy::forwarded::parse_range(n).unwrap())
        .collect();
    Rule {
        networks: crate::proxy::forwarded::Networks::new(nets),
        ..r
    }
}

/// A rule naming networks decides for the clients in them, and only for
/// them: public from the office, a login elsewhere; an admin path from the
/// VPN only, nobody elsewhere; a client without an address is in none.
#[test]
fn a_rule_naming_networks_decides_for_its_clients_only() {
    use PathMatch::Prefix;
    let t = Rules::new(
        vec![
            from(&["10.1.0.0/16"], rule(0, "/", Prefix, &[], Access::Public)),
            rule(1, "/", Prefix, &[], Access::Authenticated),
            from(
                &["10.8.0.0/16", "fd00::/8"],
                rule(2, "/admin", Prefix, &[], Access::Authenticated),
            ),
            rule(3, "/admin", Prefix, &[], Access::Deny),
        ],
        Access::Authenticated,
        9,
    )
    .unwrap();
    let at = |ip: Option<&str>, path| {
        t.find_rule_from(&Method::GET, None, path, ip.map(|i| i.parse().unwrap()))
            .map(|r| r.index)
    };
    assert_eq!(at(Some("10.1.2.3"), "/x"), Some(0));
    assert_eq!(at(Some("10.2.2.3"), "/x"), Some(1));
    assert_eq!(at(None, "/x"), Some(1));
    assert_eq!(at(Some("10.8.0.9"), "/admin/x"), Some(2));
    assert_eq!(at(Some("fd00::1"), "/admin"), Some(2));
    // An IPv4 client on a dual-stack listener is still IPv4.
    assert_eq!(at(Some("::ffff:10.8.0.9"), "/admin"), Some(2));
    assert_eq!(at(Some("10.1.2.3"), "/admin"), Some(3));
    assert_eq!(at(None, "/admin"), Some(3));
    // Two rules for one path that both name networks are refused.
    let clash = Rules::new(
        vec![
            from(&["10.1.0.0/16"], rule(0, "/", Prefix, &[], Access::Public)),
            from(&["10.2.0.0/16"], rule(1, "/", Prefix, &[], Access::Public)),
        ],
        Access::Authenticated,
        9,
    );
    assert_eq!(
        clash.unwrap_err(),
        vec![Conflict {
            first: 0,
            second: 1
        }]
    );
}

fn on(host: &str, r: Rule) -> Rule {
    let host = match host.strip_prefix("*.") {
        Some(s) => HostPattern::Wildcard(s.into()),
        None => HostPattern::Exact(host.into()),
    };
    Rule {
        host: Some(host),
        ..r
    }
}

/// Rules for two apps and every host: which rule (its index) decides.
#[test]
fn the_most_specific_host_wins_then_the_most_specific_path() {
    use PathMatch::Prefix;
    let p = |i, path| rule(i, path, Prefix, &[], Access::Public);
    let t = Rules::new(
        vec![
            p(0, "/static"),
            on("app.example.com", p(1, "/")),
            on("*.example.com", p(2, "/")),
            on("*.example.com", p(3, "/admin")),
            on("*.eu.example.com", p(4, "/")),
            on("api.example.org", p(5, "/v1")),
        ],
        Access::Authenticated,
        9,
    )
    .unwrap();
    let get = Method::GET;
    let cases = [
        ("app.example.com", "/x", Some(1)),
        // The exact host's `/` beats a wildcard's `/admin` and everyone's `/static`.
        ("app.example.com", "/admin", Some(1)),
        ("app.example.com", "/static/a.css", Some(1)),
        ("grafana.example.com", "/x", Some(2)),
        ("grafana.example.com", "/admin/x", Some(3)),
        ("a.b.example.com", "/x", Some(2)),
        ("x.eu.example.com", "/x", Some(4)),
        // The apex is not under its own wildcard; nor is a look-alike.
        ("example.com", "/x", None),
        ("badexample.com", "/x", None),
        // A host with rules that miss the path: everyone's rules, then the default.
        ("api.example.org", "/static/a.css", Some(0)),
        ("api.example.org", "/other", None),
    ];
    for (host, path, want) in cases {
        assert_eq!(
            t.find_rule(&get, Some(host), path).map(|r| r.index),
            want,
            "{host}{path}"
        );
    }
    // Hosts no rule names: 421, whatever the path; no host at all too.
    for host in [Some("example.com"), Some("evil.test"), None] {
        assert_eq!(
            t.matched(&get, host, "/static/a.css", None).decide(None),
            Decision::Misdirected,
            "{host:?}"
        );
    }
    assert_eq!(
        t.matched(&get, Some("api.example.org"), "/other", None)
            .decide(None),
        Decision::Unauthenticated,
        "a known host's unmatched path gets the default"
    );
    // Without any host in the rules, every host is served, as before.
    let plain = Rules::new(vec![p(0, "/")], Access::Authenticated, 9).unwrap();
    assert_eq!(
        plain
            .matched(&get, Some("anything.test"), "/", None)
            .decide(None),
        Decision::Allow { upstream: 0 }
    );
}

#[test]
fn rules_conflict_only_for_the_same_host() {
    use PathMatch::Prefix;
    let p = |i, path| rule(i, path, Prefix, &[], Access::Public);
    let ok = Rules::new(
        vec![
            on("a.example.com", p(0, "/")),
            on("b.example.com", p(1, "/")),
            p(2, "/"),
        ],
        Access::Authenticated,
        0,
    );
    assert!(ok.is_ok());
    let clash = Rules::new(
        vec![
            on("*.example.com", p(0, "/x")),
            on("*.example.com", p(1, "/x")),
            on("a.example.com", p(2, "/x")),
        ],
        Access::Authenticated,
        0,
    );
    assert_eq!(
        clash.unwrap_err(),
        vec![Conflict {
            first: 0,
            second: 1
        }]
    );
}

fn admin() -> Access {
    Access::Restricted {
        roles: vec!["admin".into()],
        users: vec!["root".into()],
    }
}

fn table() -> Rules {
    use PathMatch::*;
    Rules::new(
        vec![
            rule(0, "/", Prefix, &[], Access::Authenticated),
            rule(1, "/public", Prefix, &[], Access::Public),
            rule(2, "/public/admin", Prefix, &[], admin()),
            rule(3, "/public/admin/ping", Exact, &[], Access::Public),
            rule(4, "/api", Prefix, &[Method::GET], Access::Public),
            rule(5, "/api", Prefix, &[Method::POST, Method::DELETE], admin()),
        ],
        Access::Authenticated,
        0,
    )
    .unwrap()
}

#[test]
fn most_specific_rule_wins_regardless_of_order() {
    let t = table();
    let get = Method::GET;
    let cases = [
        ("/public", Some(1)),
        ("/public/x", Some(1)),
        ("/publicity", Some(0)),
        ("/public/admin/x", Some(2)),
        ("/public/admin/ping", Some(3)),
        ("/public/admin/ping/x", Some(2)),
        ("/api/items", Some(4)),
        ("/other", Some(0)),
    ];
    for (path, want) in cases {
        assert_eq!(
            t.find_rule(&get, None, path).map(|r| r.index),
            want,
            "{path}"
        );
    }
    assert_eq!(
        t.find_rule(&Method::POST, None, "/api/items")
            .map(|r| r.index),
        Some(5)
    );
    assert_eq!(
        t.find_rule(&Method::PUT, None, "/api/items")
            .map(|r| r.index),
        Some(0)
    );
    // HEAD is served by GET handlers: a GET rule covers it.
    assert_eq!(
        t.find_rule(&Method::HEAD, None, "/api/items")
            .map(|r| r.index),
        Some(4)
    );
}

#[test]
fn decisions_follow_access() {
    let t = table();
    let alice = Identity {
        user: "alice",
        roles: "",
        factor_at: 0,
        claims: &[],
    };
    let boss = Identity {
        user: "bob",
        roles: "ops,admin",
        factor_at: 0,
        claims: &[],
    };
    let root = Identity {
        user: "root",
        roles: "",
        factor_at: 0,
        claims: &[],
    };
    let g = Method::GET;
    assert_eq!(
        t.decide(&g, "/public/x", None),
        Decision::Allow { upstream: 1 }
    );
    assert_eq!(t.decide(&g, "/private", None), Decision::Unauthenticated);
    assert_eq!(
        t.decide(&g, "/private", Some(alice)),
        Decision::Allow { upstream: 0 }
    );
    assert_eq!(
        t.decide(&g, "/public/admin/x", None),
        Decision::Unauthenticated
    );
    assert_eq!(
        t.decide(&g, "/public/admin/x", Some(alice)),
        Decision::Forbidden
    );
    assert_eq!(
        t.decide(&g, "/public/admin/x", Some(boss)),
        Decision::Allow { upstream: 2 }
    );
    assert_eq!(
        t.decide(&g, "/public/admin/x", Some(root)),
        Decision::Allow { upstream: 2 }
    );
}

#[test]
fn a_user_without_roles_never_matches_a_role_even_an_empty_one() {
    let empty_role = Access::Restricted {
        roles: vec![String::new()],
        users: vec![],
    };
    let t = Rules::new(
        vec![rule(0, "/r", PathMatch::Prefix, &[], empty_role)],
        Access::Authenticated,
        0,
    )
    .unwrap();
    let nobody = Identity {
        user: "n",
        roles: "",
        factor_at: 0,
        claims: &[],
    };
    assert_eq!(
        t.decide(&Method::GET, "/r", Some(nobody)),
        Decision::Forbidden
    );
}

#[test]
fn unmatched_paths_get_the_default_which_can_deny() {
    let t = Rules::new(
        vec![rule(0, "/pub", PathMatch::Prefix, &[], Access::Public)],
        Access::Deny,
        0,
    )
    .unwrap();
    assert_eq!(t.decide(&Method::GET, "/x", None), Decision::NotFound);
    let t = Rules::new(vec![], Access::Authenticated, 0).unwrap();
    assert_eq!(
        t.decide(&Method::GET, "/x", None),
        Decision::Unauthenticated
    );
}

#[test]
fn conflicting_rules_are_reported() {
    use PathMatch::*;
    let err = Rules::new(
        vec![
            rule(0, "/a", Prefix, &[], Access::Public),
            rule(1, "/a", Prefix, &[], Access::Authenticated),
            rule(2, "/b", Prefix, &[Method::GET], Access::Public),
            rule(3, "/b", Prefix, &[Method::GET, Method::PUT], Access::Public),
            rule(4, "/c", Prefix, &[Method::GET], Access::Public),
            rule(5, "/c", Prefix, &[Method::PUT], Access::Public),
            rule(6, "/c", Exact, &[], Access::Public),
        ],
        Access::Authenticated,
        0,
    )
    .unwrap_err();
    assert_eq!(
        err,
        vec![
            Conflict {
                first: 0,
                second: 1
            },
            Conflict {
                first: 2,
                second: 3
            }
        ]
    );
}

mod properties {
    //! Route decisions as properties (proptest): rule order never matters,
    //! the most specific rule always wins, and the query string and a second
    //! normalisation change nothing.

    use super::super::*;
    use crate::proxy::path::normalize;
    use proptest::prelude::*;

    /// Paths over a small alphabet, so that rules and requests overlap often.
    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c"]), 0..4)
            .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    fn rule() -> impl Strategy<Value = (String, bool, Vec<Method>)> {
        // (path, exact, methods)
        let methods = prop::sample::subsequence(vec![Method::GET, Method::POST], 0..=2);
        (path(), any::<bool>(), methods)
    }

    /// The rules, each sending to its own upstream (its index), or `None`
    /// when two of them conflict (the config refuses those).
    fn compile(raw: &[(String, bool, Vec<Method>)], order: &[usize]) -> Option<Rules> {
        let rules = order
            .iter()
            .map(|&i| {
                let (path, exact, methods) = &raw[i];
                Rule {
                    path: path.clone(),
                    kind: if *exact {
                        PathMatch::Exact
                    } else {
                        PathMatch::Prefix
                    },
                    methods: methods.clone(),
                    access: Access::Public,
                    credentials: Credentials::SESSION,
                    step_up: None,
                    upstream: i,
                    index: i,
                    host: None,
                    networks: crate::proxy::forwarded::Networks::default(),
                }
            })
            .collect();
        Rules::new(rules, Access::Authenticated, usize::MAX).ok()
    }

    proptest! {
        #[test]
        fn the_most_specific_rule_wins_whatever_the_order(
            raw in prop::collection::vec(rule(), 1..8),
            seed in any::<u64>(),
            req in path(),
            post in any::<bool>(),
        ) {
            let forward: Vec<usize> = (0..raw.len()).collect();
            let mut shuffled = forward.clone();
            // A seeded Fisher-Yates shuffle: proptest shrinks the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let (a, b) = (compile(&raw, &forward), compile(&raw, &shuffled));
            // Conflicting rules are refused by the config, in any order.
            prop_assert_eq!(a.is_some(), b.is_some());
            prop_assume!(a.is_some());
            let (a, b) = (a.unwrap(), b.unwrap());
            let method = if post { Method::POST } else { Method::GET };
            let da = a.decide(&method, &req, None);
            prop_assert_eq!(da, b.decide(&method, &req, None));
            // The winner is the most specific matching rule, found by brute force.
            let best = a
                .rules
                .iter()
                .filter(|r| r.matches_path(&req) && r.matches_method(&method))
                .max_by_key(|r| r.specificity())
                .map(|r| r.upstream);
            match best {
                Some(upstream) => prop_assert_eq!(da, Decision::Allow { upstream }),
                None => prop_assert_eq!(da, Decision::Unauthenticated),
            }
        }

        #[test]
        fn the_query_and_a_second_normalisation_change_nothing(
            raw in prop::collection::vec(rule(), 1..8),
            req in "(/(a|b|\\.|\\.\\.|%61|)){0,5}",
            query in "[a-z=&/.%]{0,12}",
        ) {
            let rules = compile(&raw, &(0..raw.len()).collect::<Vec<_>>());
            prop_assume!(rules.is_some());
            let rules = rules.unwrap();
            let target = format!("{}?{query}", if req.is_empty() { "/" } else { &req });
            let Ok(uri) = target.parse::<http::Uri>() else { return Ok(()) };
            let Ok(once) = normalize(uri.path()) else { return Ok(()) };
            let twice = normalize(&once).expect("a normalised path normalises");
            prop_assert_eq!(&once, &twice);
            let plain = normalize(if req.is_empty() { "/" } else { &req }).expect("same path");
            prop_assert_eq!(
                rules.decide(&Method::GET, &once, None),
                rules.decide(&Method::GET, &plain, None)
            );
        }
    }
}
