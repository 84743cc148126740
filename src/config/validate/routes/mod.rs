//! `[routes]` and `[[route]]`: the defaults for unmatched paths and each
//! rule's path, match, methods, access and upstream, compiled into the rule
//! table. Unmatched paths are never public, and two rules that would tie are
//! refused.
//!
//! Deciding a request against the table is `proxy::routes`'s.

use http::Method;

use super::Validator;
use crate::auth::names;
use crate::config::raw::{RawRoute, RawRoutes};
use crate::proxy::path;
use crate::proxy::routes::{Access, Credentials, HostPattern, PathMatch, Rule, Rules, StepUp};
use crate::proxy::UpstreamOptions;

/// Where the credentials routes may take come from: a route cannot take one
/// nothing can prove.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sources {
    /// `auth.users_file`: Basic.
    pub users_file: bool,
    /// `[[auth.jwt]]`: bearer tokens.
    pub jwt: bool,
    /// A credential store (Redis, or `store.credentials_file`): API keys.
    pub credential_store: bool,
    /// `[auth.second_factor]`, or a provider whose sign-ins can count as one:
    /// step-up routes.
    pub second_factor: bool,
}

impl Validator {
    pub(super) fn rules(
        &mut self,
        defaults: RawRoutes,
        raw: Vec<RawRoute>,
        ups: &[UpstreamOptions],
        sources: Sources,
    ) -> Option<Rules> {
        let find_upstream = |name: &str| ups.iter().position(|u| u.name == name);
        let default_upstream = match defaults.default_upstream.as_deref() {
            Some(name) => match find_upstream(name) {
                Some(i) => Some(i),
                None => {
                    self.problem(
                        "routes.default_upstream",
                        format!("no [upstream.{name}] (got {name:?})"),
                    );
                    None
                }
            },
            None if ups.len() == 1 => Some(0),
            None if ups.is_empty() => None,
            None => {
                self.problem(
                    "routes.default_upstream",
                    "required when there is more than one upstream",
                );
                None
            }
        };
        // Unmatched paths are never public by accident: only authenticated or deny.
        let default_access = match defaults
            .default_access
            .as_deref()
            .unwrap_or("authenticated")
        {
            "authenticated" => Some(Access::Authenticated),
            "deny" => Some(Access::Deny),
            other => {
                self.problem(
                    "routes.default_access",
                    format!("must be authenticated or deny (got {other:?}); make public paths explicit with [[route]]"),
                );
                None
            }
        };
        // A rule naming several hosts is one rule per host.
        let rules = raw
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.route(i, r, ups, default_upstream, sources))
            .flat_map(|(rule, hosts)| {
                if hosts.is_empty() {
                    return vec![rule];
                }
                hosts
                    .into_iter()
                    .map(|h| Rule {
                        host: Some(h),
                        ..rule.clone()
                    })
                    .collect()
            })
            .collect::<Vec<Rule>>();
        // A rule naming networks says nothing of other clients: a rule for the
        // same host and path that names none must, or they would fall through
        // to whatever a shorter path allows.
        for r in rules.iter().filter(|r| !r.networks.is_empty()) {
            let covered = rules.iter().any(|o| {
                o.networks.is_empty() && o.host == r.host && o.path == r.path && o.kind == r.kind
            });
            if !covered {
                self.problem(
                    &format!("route[{}].networks", r.index),
                    format!("needs a rule for the same hosts and path {:?} without networks, to decide for every other client (access = \"deny\" to refuse them)", r.path),
                );
            }
        }
        let (default_access, default_upstream) = (default_access?, default_upstream?);
        match Rules::new(rules, default_access, default_upstream) {
            Ok(r) => Some(r),
            Err(conflicts) => {
                for c in conflicts {
                    self.problem(
                        &format!("route[{}]", c.second),
                        format!(
                            "same host, path, match and methods as route[{}]: neither would win",
                            c.first
                        ),
                    );
                }
                None
            }
        }
    }

    /// One `[[route]]`; `None` if any part of it is wrong (each problem noted).
    fn route(
        &mut self,
        i: usize,
        r: RawRoute,
        ups: &[UpstreamOptions],
        default_upstream: Option<usize>,
        sources: Sources,
    ) -> Option<(Rule, Vec<HostPattern>)> {
        let key = |field: &str| format!("route[{i}].{field}");
        self.route_path(&key("path"), &r.path);
        let (mut hosts, mut hosts_ok) = (Vec::new(), true);
        for (j, h) in r.hosts.iter().enumerate() {
            match self.host_pattern(&key(&format!("hosts[{j}]")), h) {
                // The same host twice (`App.example.com` and `app.example.com`) is once.
                Some(p) if !hosts.contains(&p) => hosts.push(p),
                Some(_) => {}
                None => hosts_ok = false,
            }
        }
        let mut networks = Vec::new();
        for (j, n) in r.networks.iter().enumerate() {
            match crate::proxy::forwarded::parse_range(n) {
                Some(net) => networks.push(net),
                None => self.problem(
                    &key(&format!("networks[{j}]")),
                    format!("must be a CIDR range like \"10.0.0.0/8\" or an address (got {n:?})"),
                ),
            }
        }
        let networks_ok = networks.len() == r.networks.len();
        let kind = match r.kind.as_str() {
            "prefix" => Some(PathMatch::Prefix),
            "exact" => Some(PathMatch::Exact),
            other => {
                self.problem(
                    &key("match"),
                    format!("must be prefix or exact (got {other:?})"),
                );
                None
            }
        };
        let mut methods = Vec::new();
        for (j, m) in r.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => methods.push(method),
                _ => self.problem(
                    &format!("route[{i}].methods[{j}]"),
                    format!("not an upper-case HTTP method (got {m:?})"),
                ),
            }
        }
        // Rules name roles and users in the one identity alphabet: a rule for a
        // name no login can carry would never match.
        for (j, role) in r.roles.iter().enumerate() {
            if let Err(rule) = names::check_role(role) {
                self.problem(
                    &format!("route[{i}].roles[{j}]"),
                    format!("{rule} (got {role:?})"),
                );
            }
        }
        for (j, user) in r.users.iter().enumerate() {
            if let Err(rule) = names::check_user(user) {
                self.problem(
                    &format!("route[{i}].users[{j}]"),
                    format!("{rule} (got {user:?})"),
                );
            }
        }
        let credentials = self.route_credentials(&key("credentials"), r.credentials.as_deref());
        let step_up = self.step_up(&key, &r, credentials, sources);
        let access = self.route_access(&key("access"), r.access.as_deref(), r.roles, r.users);
        if credentials.is_some_and(|c| c.basic) && !sources.users_file {
            self.problem(&key("credentials"), "basic needs auth.users_file");
        }
        if credentials.is_some_and(|c| c.bearer) && !sources.jwt {
            self.problem(&key("credentials"), "bearer needs an [[auth.jwt]] issuer");
        }
        if credentials.is_some_and(|c| c.api_key) && !sources.credential_store {
            self.problem(
                &key("credentials"),
                "api_key needs a credential store: store.kind = \"redis\", or store.credentials_file",
            );
        }
        if credentials.is_some_and(|c| c.api_key) && !sources.users_file {
            self.problem(
                &key("credentials"),
                "api_key needs auth.users_file (keys act as its users)",
            );
        }
        let upstream = match r.upstream.as_deref() {
            Some(name) => ups.iter().position(|u| u.name == name).or_else(|| {
                self.problem(
                    &key("upstream"),
                    format!("no [upstream.{name}] (got {name:?})"),
                );
                None
            }),
            None => default_upstream,
        };
        Some(Rule {
            path: r.path,
            kind: kind?,
            methods,
            access: access?,
            credentials: credentials?,
            step_up: step_up?,
            upstream: upstream?,
            index: i,
            host: None,
            networks: crate::proxy::forwarded::Networks::new(networks),
        })
        .filter(|_| hosts_ok && networks_ok)
        .map(|rule| (rule, hosts))
    }

    /// One of a rule's `hosts`: a host name or address, or `*.` and a domain
    /// of two labels or more, canonicalised as a request's host is (lower
    /// case, punycode, no trailing dot). No port: rules match names.
    fn host_pattern(&mut self, key: &str, text: &str) -> Option<HostPattern> {
        let (wild, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let bad = |v: &mut Self, why: &str| {
            v.problem(key, format!("{why} (got {text:?})"));
            None
        };
        if name.contains(['*', ':']) && !name.starts_with('[') {
            return bad(
                self,
                "a host name without a port; a wildcard only as a leading \"*.\"",
            );
        }
        let canonical = match crate::proxy::host::canonical(name, false) {
            Ok(h) if h.port.is_none() => h.name.into_owned(),
            _ => return bad(self, "not a host name or address"),
        };
        if wild {
            let domain = canonical.contains('.')
                && !canonical.starts_with('[')
                && canonical.parse::<std::net::Ipv4Addr>().is_err();
            if !domain {
                return bad(
                    self,
                    "a wildcard needs a domain of two labels or more, as \"*.example.com\"",
                );
            }
            return Some(HostPattern::Wildcard(canonical));
        }
        Some(HostPattern::Exact(canonical))
    }

    /// `second_factor` and `second_factor_within`: a step-up route. Only a
    /// session can carry a passed factor, so such a route takes sessions only.
    fn step_up(
        &mut self,
        key: &dyn Fn(&str) -> String,
        r: &RawRoute,
        credentials: Option<Credentials>,
        sources: Sources,
    ) -> Option<Option<StepUp>> {
        let within = match &r.second_factor_within {
            Some(w) => Some(self.duration(&key("second_factor_within"), w)?),
            None => None,
        };
        if !r.second_factor && within.is_none() {
            return Some(None);
        }
        if !sources.second_factor {
            self.problem(
                &key("second_factor"),
                "needs [auth.second_factor], or a provider with second_factor_amr or second_factor_acr",
            );
        }
        if credentials.is_some_and(|c| c != Credentials::SESSION) {
            self.problem(
                &key("second_factor"),
                "takes sessions only (credentials = [\"session\"]): no other credential carries a second factor",
            );
        }
        if r.access.as_deref() == Some("public") {
            self.problem(&key("second_factor"), "makes no sense on a public route");
        }
        Some(Some(StepUp { within }))
    }

    /// A rule's credentials: a non-empty list of `session`, `basic`, `bearer`
    /// and `api_key`.
    fn route_credentials(&mut self, key: &str, names: Option<&[String]>) -> Option<Credentials> {
        let Some(names) = names else {
            return Some(Credentials::SESSION);
        };
        if names.is_empty() {
            self.problem(key, "lists no credential; leave it out for [\"session\"]");
            return None;
        }
        let mut taken = Credentials {
            session: false,
            basic: false,
            bearer: false,
            api_key: false,
        };
        let mut ok = true;
        for name in names {
            match name.as_str() {
                "session" => taken.session = true,
                "basic" => taken.basic = true,
                "bearer" => taken.bearer = true,
                "api_key" => taken.api_key = true,
                other => {
                    self.problem(
                        key,
                        format!("each must be session, basic, bearer or api_key (got {other:?})"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(taken)
    }

    /// A rule's path: absolute and already in the normal form requests are
    /// compared in, so what the rule says is what it matches.
    fn route_path(&mut self, key: &str, path: &str) {
        if !path.starts_with('/') {
            self.problem(key, format!("must start with '/' (got {path:?})"));
            return;
        }
        match path::normalize(path) {
            Ok(n) if n == path => {}
            Ok(n) => self.problem(
                key,
                format!("not in normal form (got {path:?}, normal form {n:?})"),
            ),
            Err(e) => self.problem(key, format!("{e} (got {path:?})")),
        }
    }

    /// A rule's access: public, authenticated, or restricted to roles or users.
    fn route_access(
        &mut self,
        key: &str,
        access: Option<&str>,
        roles: Vec<String>,
        users: Vec<String>,
    ) -> Option<Access> {
        let restricted = !roles.is_empty() || !users.is_empty();
        match (access.unwrap_or("authenticated"), restricted) {
            ("public", false) => Some(Access::Public),
            ("authenticated", false) => Some(Access::Authenticated),
            ("authenticated", true) => Some(Access::Restricted { roles, users }),
            // Nobody: 404 (with `networks` elsewhere, a path for some clients only).
            ("deny", false) => Some(Access::Deny),
            ("public" | "deny", true) => {
                self.problem(key, "a public or deny route cannot name roles or users");
                None
            }
            (other, _) => {
                self.problem(
                    key,
                    format!("must be public, authenticated or deny (got {other:?})"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
