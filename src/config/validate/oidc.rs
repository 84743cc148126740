//! `[[auth.oidc]]`: the OpenID Connect providers, checked like the rest of the
//! config (one line per problem, never a secret's value).

use std::collections::BTreeSet;
use std::path::Path;

use super::Validator;
use crate::auth::names;
use crate::auth::oidc::claims::ClaimRules;
use crate::auth::oidc::OidcOptions;
use crate::config::raw::RawOidc;

/// The ID token algorithms one may allow: asymmetric only. `none` and the HMAC
/// family are never accepted, so a token "signed" with a public key or a
/// client secret cannot verify.
const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl Validator {
    pub(super) fn oidc(
        &mut self,
        raw: Vec<RawOidc>,
        prefix: &str,
        base: &Path,
    ) -> Option<Vec<OidcOptions>> {
        let mut out = Vec::new();
        let mut ids = BTreeSet::new();
        let before = self.problems.len();
        for (i, p) in raw.into_iter().enumerate() {
            let key = format!("auth.oidc[{i}]");
            if !ids.insert(p.id.clone()) {
                self.problem(&format!("{key}.id"), format!("{:?} is used twice", p.id));
            }
            if let Some(o) = self.provider(&key, p, prefix, base) {
                out.push(o);
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn provider(
        &mut self,
        key: &str,
        p: RawOidc,
        prefix: &str,
        base: &Path,
    ) -> Option<OidcOptions> {
        let id_ok = !p.id.is_empty()
            && p.id.len() <= 32
            && p.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            self.problem(
                &format!("{key}.id"),
                format!("must be 1-32 of a-z, 0-9 and '-' (got {:?})", p.id),
            );
        }
        if p.name.trim().is_empty() || p.name.len() > 64 {
            self.problem(&format!("{key}.name"), "must be 1-64 bytes of text");
        }
        self.provider_url(&format!("{key}.issuer"), &p.issuer);
        if p.issuer.ends_with('/') {
            // Discovery compares the document's issuer to this, byte for byte.
            self.problem(
                &format!("{key}.issuer"),
                "must not end with '/' (the provider's discovery document names it without)",
            );
        }
        let callback = format!("{prefix}/oidc/{}/callback", p.id);
        if let Some(u) = self.provider_url(&format!("{key}.redirect_url"), &p.redirect_url) {
            if u.path() != callback || u.query().is_some() || u.fragment().is_some() {
                self.problem(
                    &format!("{key}.redirect_url"),
                    format!(
                        "must be this origin's {callback} (got {:?})",
                        p.redirect_url
                    ),
                );
            }
        }
        if p.client_id.is_empty() {
            self.problem(&format!("{key}.client_id"), "must not be empty");
        }
        let client_secret = match &p.client_secret {
            Some(s) => Some(self.secret_text(&format!("{key}.client_secret"), s, base)?),
            None => None,
        };
        let mut scopes = vec!["openid".to_owned()];
        for s in p.scopes {
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control()) {
                self.problem(&format!("{key}.scopes"), format!("{s:?} is not a scope"));
            } else if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        if p.algorithms.is_empty() {
            self.problem(&format!("{key}.algorithms"), "must name at least one");
        }
        for a in &p.algorithms {
            if !ALGORITHMS.contains(&a.as_str()) {
                self.problem(
                    &format!("{key}.algorithms"),
                    format!("{a:?} is not allowed; one of {}", ALGORITHMS.join(", ")),
                );
            }
        }
        if p.user_claim.is_empty() {
            self.problem(&format!("{key}.user_claim"), "must not be empty");
        }
        for (from, to) in &p.roles_map {
            if let Err(rule) = names::check_role(to) {
                self.problem(&format!("{key}.roles_map.{from}"), format!("{to:?} {rule}"));
            }
        }
        if !p.allowed_groups.is_empty() && p.roles_claim.is_none() {
            self.problem(
                &format!("{key}.allowed_groups"),
                "needs roles_claim (the claim that lists the groups)",
            );
        }
        let domains: Vec<String> = p
            .allowed_email_domains
            .iter()
            .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
            .collect();
        if domains.iter().any(|d| d.is_empty() || d.contains('@')) {
            self.problem(
                &format!("{key}.allowed_email_domains"),
                "must be domains such as \"example.com\"",
            );
        }
        Some(OidcOptions {
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            client_secret,
            redirect_url: p.redirect_url,
            scopes,
            algorithms: p.algorithms,
            claims: ClaimRules {
                user_claim: p.user_claim,
                roles_claim: p.roles_claim,
                roles_map: p.roles_map,
                allowed_email_domains: domains,
                allowed_groups: p.allowed_groups,
            },
            end_session: p.end_session,
        })
    }

    /// An absolute URL a provider or its callback lives at: `https`, or
    /// `http` on a loopback host only (a provider started beside us).
    fn provider_url(&mut self, key: &str, value: &str) -> Option<url::Url> {
        let Ok(u) = url::Url::parse(value) else {
            self.problem(key, format!("must be an absolute URL (got {value:?})"));
            return None;
        };
        let loopback = match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        };
        let ok = u.scheme() == "https" || (u.scheme() == "http" && loopback);
        if !ok || !u.username().is_empty() || u.password().is_some() {
            self.problem(
                key,
                format!("must be https:// (http:// only on a loopback host), without credentials (got {value:?})"),
            );
            return None;
        }
        Some(u)
    }
}
