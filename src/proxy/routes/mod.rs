//! The route rule table: pure functions, no I/O.
//!
//! The rule table ([`Rules`]) picks the most specific rule regardless of the
//! order rules were written in: the most specific host first (an exact name,
//! then wildcards from the longest, then rules for every host), then the most
//! specific path. A path no rule covers gets the configured default, which is
//! never `public`. It is given the path [`super::path`] normalised and the
//! host [`super::host`] canonicalised, the same ones the upstream gets.
//!
//! Once any rule names a host, the gate serves only the hosts its rules name:
//! a request for any other host is [`Decision::Misdirected`] (421), so it can
//! never fall through to another site's rules; rules without a host apply to
//! every host served. Hosts are looked up in hash maps (an exact name, then
//! each parent domain for wildcards), so the decision does not grow with the
//! number of hosts.
//!
//! This module does not know about cookies or sessions: it is given an
//! [`Identity`] (or none) and answers with a [`Decision`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

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
    /// The user's claims for the backend (a session's; none for others).
    pub claims: &'a [(Box<str>, Box<str>)],
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

/// The host a rule applies to (`hosts = [...]`), canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostPattern {
    /// Exactly this name.
    Exact(String),
    /// `*.<suffix>`: any name under `suffix` (one label or more), not `suffix` itself.
    Wildcard(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
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
    /// The host it applies to; `None`: every host. A rule naming several
    /// hosts is compiled once per host.
    pub host: Option<HostPattern>,
    /// The clients it applies to (their address through trusted proxies);
    /// empty: every client.
    pub networks: crate::proxy::forwarded::Networks,
}

impl Rule {
    /// A rule naming networks applies only to a client from one of them; a
    /// request without a known address (a Unix socket) is from none.
    fn matches_client(&self, client: Option<IpAddr>) -> bool {
        self.networks.is_empty() || client.is_some_and(|ip| self.networks.contains(ip))
    }

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

    /// Larger is more specific: exact beats prefix, longer beats shorter, a
    /// rule naming networks beats one that does not (for the clients in
    /// them), and then a rule naming methods beats one that does not.
    fn specificity(&self) -> (bool, usize, bool, bool) {
        (
            self.kind == PathMatch::Exact,
            self.path.len(),
            !self.networks.is_empty(),
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
    /// The request's host is none the rules name: 421 Misdirected Request.
    Misdirected,
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
            Decision::Misdirected => "misdirected",
            Decision::StepUp => "step_up",
        }
    }
}

/// The compiled rule table: for each host pattern, and for every host, its
/// rules ordered most specific first.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Rules for every host.
    rules: Vec<Rule>,
    /// Rules by exact host name.
    exact: HashMap<String, Vec<Rule>>,
    /// Rules by wildcard suffix (`*.example.com` under `example.com`).
    wildcard: HashMap<String, Vec<Rule>>,
    default_access: Access,
    default_upstream: usize,
}

/// What the table has for a request.
enum Found<'r> {
    Rule(&'r Rule),
    /// No rule's path: the defaults.
    Default,
    /// A host no rule names, in a table that names hosts.
    UnknownHost,
}

impl Rules {
    /// Compile rules; ordering by specificity happens here, once.
    ///
    /// # Errors
    /// Every pair of rules for the same host with the same path, match kind
    /// and an overlapping method set, since neither would be more specific
    /// than the other.
    pub(crate) fn new(
        rules: Vec<Rule>,
        default_access: Access,
        default_upstream: usize,
    ) -> Result<Self, Vec<Conflict>> {
        let mut groups: HashMap<Option<HostPattern>, Vec<Rule>> = HashMap::new();
        for r in rules {
            groups.entry(r.host.clone()).or_default().push(r);
        }
        let mut conflicts = Vec::new();
        let (mut every, mut exact, mut wildcard) = (Vec::new(), HashMap::new(), HashMap::new());
        for (host, mut group) in groups {
            conflicts.extend(conflicts_in(&group));
            group.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
            match host {
                None => every = group,
                Some(HostPattern::Exact(h)) => {
                    exact.insert(h, group);
                }
                Some(HostPattern::Wildcard(s)) => {
                    wildcard.insert(s, group);
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort_by_key(|c| (c.first, c.second));
            return Err(conflicts);
        }
        Ok(Rules {
            rules: every,
            exact,
            wildcard,
            default_access,
            default_upstream,
        })
    }

    /// The hosts the rules name, for the redirects after a sign-in.
    pub(crate) fn sites(&self) -> crate::http::redirect::Sites {
        crate::http::redirect::Sites::new(self.exact.keys().cloned(), self.wildcard.keys().cloned())
    }

    /// Whether any rule names a host.
    pub(crate) fn names_hosts(&self) -> bool {
        !self.exact.is_empty() || !self.wildcard.is_empty()
    }

    fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        client: Option<IpAddr>,
    ) -> Found<'_> {
        fn first<'r>(
            rules: &'r [Rule],
            method: &Method,
            path: &str,
            client: Option<IpAddr>,
        ) -> Option<&'r Rule> {
            rules.iter().find(|r| {
                r.matches_path(path) && r.matches_method(method) && r.matches_client(client)
            })
        }
        let first = |rules| first(rules, method, path, client);
        if self.names_hosts() {
            let Some(host) = host else {
                return Found::UnknownHost;
            };
            let mut known = false;
            if let Some(rules) = self.exact.get(host) {
                known = true;
                if let Some(r) = first(rules) {
                    return Found::Rule(r);
                }
            }
            // Each parent domain, the longest first: `a.b.example.com` looks
            // in `*.b.example.com`, then `*.example.com`, then `*.com`.
            let mut rest = host;
            while let Some((_, parent)) = rest.split_once('.') {
                if let Some(rules) = self.wildcard.get(parent) {
                    known = true;
                    if let Some(r) = first(rules) {
                        return Found::Rule(r);
                    }
                }
                rest = parent;
            }
            if !known {
                return Found::UnknownHost;
            }
        }
        match first(&self.rules) {
            Some(r) => Found::Rule(r),
            None => Found::Default,
        }
    }

    /// The rule a request falls under, if any (the tests' view of `find`).
    #[cfg(test)]
    pub(crate) fn find_rule(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Option<&Rule> {
        self.find_rule_from(method, host, path, None)
    }

    /// [`Rules::find_rule`] for a client at `client`.
    #[cfg(test)]
    pub(crate) fn find_rule_from(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        client: Option<IpAddr>,
    ) -> Option<&Rule> {
        match self.find(method, host, path, client) {
            Found::Rule(r) => Some(r),
            _ => None,
        }
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
        self.matched(method, None, path, None).decide(who)
    }

    /// What applies to a request: its rule's, or the defaults. `host` must
    /// come from [`super::host`] (the name, no port), `path` from
    /// [`super::path::normalize`], `client` from [`super::forwarded`] (the
    /// address through trusted proxies only).
    pub(crate) fn matched(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        client: Option<IpAddr>,
    ) -> Matched<'_> {
        match self.find(method, host, path, client) {
            Found::Rule(rule) => Matched {
                access: &rule.access,
                upstream: rule.upstream,
                credentials: rule.credentials,
                step_up: rule.step_up,
                misdirected: false,
            },
            Found::Default => Matched {
                access: &self.default_access,
                upstream: self.default_upstream,
                credentials: Credentials::SESSION,
                step_up: None,
                misdirected: false,
            },
            Found::UnknownHost => Matched {
                access: &self.default_access,
                upstream: self.default_upstream,
                credentials: Credentials::SESSION,
                step_up: None,
                misdirected: true,
            },
        }
    }
}

/// Pairs of rules of one host group that neither is more specific than.
fn conflicts_in(rules: &[Rule]) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            // Two rules naming networks for one path: which would win for a
            // client in both is not obvious; list every range in one rule.
            let same_target = a.path == b.path
                && a.kind == b.kind
                && a.networks.is_empty() == b.networks.is_empty();
            let overlap = (a.methods.is_empty() && b.methods.is_empty())
                || a.methods.iter().any(|m| b.methods.contains(m));
            if same_target && overlap {
                let (first, second) = (a.index.min(b.index), a.index.max(b.index));
                conflicts.push(Conflict { first, second });
            }
        }
    }
    conflicts
}

/// The rule (or the defaults) a request falls under: which credentials it
/// takes, then the decision on the identity they gave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matched<'r> {
    access: &'r Access,
    upstream: usize,
    pub credentials: Credentials,
    step_up: Option<StepUp>,
    /// A host none of the rules name.
    misdirected: bool,
}

impl Matched<'_> {
    /// Decide on `who`, the identity from a credential this route takes.
    pub(crate) fn decide(&self, who: Option<Identity<'_>>) -> Decision {
        if self.misdirected {
            return Decision::Misdirected;
        }
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
mod tests;
