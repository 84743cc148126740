//! The route rule table: pure functions, no I/O.
//!
//! The rule table ([`Rules`]) picks the most specific rule regardless of the
//! order rules were written in, and a path no rule covers gets the configured
//! default, which is never `public`. It is given the path [`super::path`]
//! normalised, the same path the upstream gets.
//!
//! This module does not know about cookies or sessions: it is given an
//! [`Identity`] (or none) and answers with a [`Decision`].

use std::fmt;

use http::Method;
/// Who is asking, as far as rules are concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    pub user: &'a str,
    /// When a second factor was last passed (unix ms; 0: never). Only a
    /// session carries one.
    pub factor_at: u64,
    /// The roles as sent upstream: joined with `,` (no role contains one).
    pub roles: &'a str,
}

/// Who may use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, with or without a session.
    Public,
    /// Any authenticated session.
    Authenticated,
    /// An authenticated session whose user is listed or that holds any listed role.
    Restricted {
        roles: Vec<String>,
        users: Vec<String>,
    },
    /// Nobody (only as the default for unmatched paths): 404.
    Deny,
}

/// The credentials a route takes an identity from (`credentials = [...]`).
/// A request's other credentials are ignored on it, as if absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The session cookie.
    pub session: bool,
    /// `Authorization: Basic` against the users file.
    pub basic: bool,
    /// `Authorization: Bearer` with a JWT of an `[[auth.jwt]]` issuer.
    pub bearer: bool,
    /// `Authorization: Bearer sgk_...`: an API key of the credential store.
    pub api_key: bool,
}

impl Credentials {
    /// What a route takes unless it says otherwise, and what unmatched paths take.
    pub(crate) const SESSION: Credentials = Credentials {
        session: true,
        basic: false,
        bearer: false,
        api_key: false,
    };
}

/// How a rule's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathMatch {
    /// The path equals the rule's path.
    Exact,
    /// The path equals the rule's path or continues it at a segment boundary:
    /// `/api` matches `/api` and `/api/x`, never `/apix`.
    Prefix,
}

/// A route's step-up: only a session that passed a second factor, and
/// within `within` when set (`second_factor_within`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepUp {
    pub within: Option<std::time::Duration>,
}

impl StepUp {
    /// Whether a factor passed at `factor_at` (unix ms; 0: never) will do.
    fn met(&self, factor_at: u64) -> bool {
        factor_at != 0
            && self.within.is_none_or(|w| {
                let age = crate::session::now_ms().saturating_sub(factor_at);
                u128::from(age) <= w.as_millis()
            })
    }
}

/// One compiled `[[route]]`.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub path: String,
    pub kind: PathMatch,
    /// Empty means every method.
    pub methods: Vec<Method>,
    pub access: Access,
    pub credentials: Credentials,
    /// Step-up (`second_factor`): the session must have passed a second factor.
    pub step_up: Option<StepUp>,
    /// Index into the configured upstreams.
    pub upstream: usize,
    /// The rule's position in the config (`route[i]`), for logs.
    pub index: usize,
}

impl Rule {
    fn matches_path(&self, path: &str) -> bool {
        match self.kind {
            PathMatch::Exact => path == self.path,
            PathMatch::Prefix => {
                path.starts_with(self.path.as_str())
                    && (self.path.ends_with('/')
                        || path.len() == self.path.len()
                        || path.as_bytes()[self.path.len()] == b'/')
            }
        }
    }

    /// A rule naming GET also covers HEAD: servers answer HEAD with the GET
    /// handler, so a HEAD must not slip past a GET rule to a weaker one.
    fn matches_method(&self, method: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET))
    }

    /// Larger is more specific: exact beats prefix, longer beats shorter, a rule
    /// naming methods beats one that does not.
    fn specificity(&self) -> (bool, usize, bool) {
        (
            self.kind == PathMatch::Exact,
            self.path.len(),
            !self.methods.is_empty(),
        )
    }
}

/// Two rules that could both decide the same request with equal specificity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub first: usize,
    pub second: usize,
}

/// What the rule table says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Proxy to this upstream.
    Allow { upstream: usize },
    /// No (live) session on a protected route: login redirect or 401.
    Unauthenticated,
    /// A session, but not one this route admits: 403.
    Forbidden,
    /// The default rule denies unmatched paths: 404.
    NotFound,
    /// A session this route admits, but without the (recent) second factor
    /// it asks for: to the factor prompt, and back.
    StepUp,
}

impl Decision {
    /// Short name for logs and metrics.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Forbidden => "forbidden",
            Decision::NotFound => "not_found",
            Decision::StepUp => "step_up",
        }
    }
}

/// The compiled rule table, ordered most specific first.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
    default_access: Access,
    default_upstream: usize,
}

impl Rules {
    /// Compile rules; ordering by specificity happens here, once.
    ///
    /// # Errors
    /// Every pair of rules with the same path, match kind and an overlapping
    /// method set, since neither would be more specific than the other.
    pub(crate) fn new(
        mut rules: Vec<Rule>,
        default_access: Access,
        default_upstream: usize,
    ) -> Result<Self, Vec<Conflict>> {
        let mut conflicts = Vec::new();
        for (i, a) in rules.iter().enumerate() {
            for b in &rules[i + 1..] {
                let same_target = a.path == b.path && a.kind == b.kind;
                let overlap = (a.methods.is_empty() && b.methods.is_empty())
                    || a.methods.iter().any(|m| b.methods.contains(m));
                if same_target && overlap {
                    conflicts.push(Conflict {
                        first: a.index,
                        second: b.index,
                    });
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Ok(Rules {
            rules,
            default_access,
            default_upstream,
        })
    }

    /// The most specific rule for this method and normalised path, if any.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.matches_path(path) && r.matches_method(method))
    }

    /// Decide a request on `who`, whatever credential it came from (the
    /// tests' shorthand for `matched(..).decide(..)`).
    #[cfg(test)]
    pub(crate) fn decide(
        &self,
        method: &Method,
        path: &str,
        who: Option<Identity<'_>>,
    ) -> Decision {
        self.matched(method, path).decide(who)
    }

    /// What applies to a request: its rule's, or the defaults. `path` must
    /// come from [`normalize`].
    pub(crate) fn matched(&self, method: &Method, path: &str) -> Matched<'_> {
        match self.find(method, path) {
            Some(rule) => Matched {
                access: &rule.access,
                upstream: rule.upstream,
                credentials: rule.credentials,
                step_up: rule.step_up,
            },
            None => Matched {
                access: &self.default_access,
                upstream: self.default_upstream,
                credentials: Credentials::SESSION,
                step_up: None,
            },
        }
    }
}

/// The rule (or the defaults) a request falls under: which credentials it
/// takes, then the decision on the identity they gave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matched<'r> {
    access: &'r Access,
    upstream: usize,
    pub credentials: Credentials,
    step_up: Option<StepUp>,
}

impl Matched<'_> {
    /// Decide on `who`, the identity from a credential this route takes.
    pub(crate) fn decide(&self, who: Option<Identity<'_>>) -> Decision {
        match (
            decide_access(self.access, self.upstream, who),
            self.step_up,
            who,
        ) {
            (Decision::Allow { .. }, Some(s), Some(w)) if !s.met(w.factor_at) => Decision::StepUp,
            (d, _, _) => d,
        }
    }
}

fn decide_access(access: &Access, upstream: usize, who: Option<Identity<'_>>) -> Decision {
    match (access, who) {
        (Access::Public, _) => Decision::Allow { upstream },
        (Access::Deny, _) => Decision::NotFound,
        (_, None) => Decision::Unauthenticated,
        (Access::Authenticated, Some(_)) => Decision::Allow { upstream },
        (Access::Restricted { roles, users }, Some(id)) => {
            let by_user = users.iter().any(|u| u == id.user);
            // An empty piece is no role (a user with none has roles ""), so it
            // can never match, whatever the rule lists.
            let by_role = id
                .roles
                .split(',')
                .filter(|r| !r.is_empty())
                .any(|r| roles.iter().any(|want| want == r));
            if by_user || by_role {
                Decision::Allow { upstream }
            } else {
                Decision::Forbidden
            }
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Restricted { .. } => f.write_str("restricted"),
            Access::Deny => f.write_str("deny"),
        }
    }
}

#[cfg(test)]
mod tests {
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
        }
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
            assert_eq!(t.find(&get, path).map(|r| r.index), want, "{path}");
        }
        assert_eq!(
            t.find(&Method::POST, "/api/items").map(|r| r.index),
            Some(5)
        );
        assert_eq!(t.find(&Method::PUT, "/api/items").map(|r| r.index), Some(0));
        // HEAD is served by GET handlers: a GET rule covers it.
        assert_eq!(
            t.find(&Method::HEAD, "/api/items").map(|r| r.index),
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
        };
        let boss = Identity {
            user: "bob",
            roles: "ops,admin",
            factor_at: 0,
        };
        let root = Identity {
            user: "root",
            roles: "",
            factor_at: 0,
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
}
