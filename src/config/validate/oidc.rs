//! `[[auth.oidc]]`: the OpenID Connect providers, checked like the rest of the
//! config (one line per problem, never a secret's value).

use crate::auth::oidc::{FactorClaims, Recheck};
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

/// The claim mapping's keys, shared by `[[auth.oidc]]` and `[[auth.jwt]]`.
pub(super) struct RawClaims {
    pub(super) user_claim: String,
    pub(super) roles_claim: Option<String>,
    pub(super) roles_map: std::collections::BTreeMap<String, String>,
    pub(super) allowed_email_domains: Vec<String>,
    pub(super) allowed_groups: Vec<String>,
}

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
        self.short_id(key, &p.id);
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
        self.algorithms(key, &p.algorithms);
        let claims = self.claim_rules(
            key,
            RawClaims {
                user_claim: p.user_claim,
                roles_claim: p.roles_claim,
                roles_map: p.roles_map,
                allowed_email_domains: p.allowed_email_domains,
                allowed_groups: p.allowed_groups,
            },
        );
        let recheck = self.recheck(key, p.recheck_every.as_deref(), p.if_unreachable.as_deref());
        Some(OidcOptions {
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            client_secret,
            redirect_url: p.redirect_url,
            scopes,
            algorithms: p.algorithms,
            claims,
            end_session: p.end_session,
            backchannel_logout: p.backchannel_logout,
            factor_claims: FactorClaims {
                amr: p.second_factor_amr,
                acr: p.second_factor_acr,
            },
            recheck,
            userinfo: p.userinfo,
        })
    }

    /// `recheck_every` and `if_unreachable`: both or neither. What to do
    /// when the provider is down has no default: keeping a session may keep
    /// a disabled user in, ending it signs everyone out during an outage.
    fn recheck(
        &mut self,
        key: &str,
        every: Option<&str>,
        unreachable: Option<&str>,
    ) -> Option<Recheck> {
        let at = format!("{key}.if_unreachable");
        let keep = match unreachable {
            None => None,
            Some("keep") => Some(true),
            Some("end") => Some(false),
            Some(other) => {
                self.problem(&at, format!("must be \"keep\" or \"end\" (got {other:?})"));
                return None;
            }
        };
        let Some(every) = every else {
            if unreachable.is_some() {
                self.problem(&at, "needs recheck_every");
            }
            return None;
        };
        let every = self.duration(&format!("{key}.recheck_every"), every)?;
        if every < std::time::Duration::from_secs(1) {
            self.problem(&format!("{key}.recheck_every"), "must be at least 1s");
        }
        let Some(keep_if_unreachable) = keep else {
            self.problem(
                &at,
                "must be set with recheck_every: \"keep\" (the session stays until the next check) or \"end\"",
            );
            return None;
        };
        Some(Recheck {
            every,
            keep_if_unreachable,
        })
    }

    /// An `id` that names a provider or issuer in paths and logs.
    pub(super) fn short_id(&mut self, key: &str, id: &str) {
        let ok = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.problem(
                &format!("{key}.id"),
                format!("must be 1-32 of a-z, 0-9 and '-' (got {id:?})"),
            );
        }
    }

    /// How a token's claims become an identity (`[[auth.oidc]]` and
    /// `[[auth.jwt]]` alike).
    pub(super) fn claim_rules(&mut self, key: &str, p: RawClaims) -> ClaimRules {
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
        ClaimRules {
            user_claim: p.user_claim,
            roles_claim: p.roles_claim,
            roles_map: p.roles_map,
            allowed_email_domains: domains,
            allowed_groups: p.allowed_groups,
        }
    }

    /// The algorithms a token may be signed with: asymmetric only.
    pub(super) fn algorithms(&mut self, key: &str, algorithms: &[String]) {
        if algorithms.is_empty() {
            self.problem(&format!("{key}.algorithms"), "must name at least one");
        }
        for a in algorithms {
            if !ALGORITHMS.contains(&a.as_str()) {
                self.problem(
                    &format!("{key}.algorithms"),
                    format!("{a:?} is not allowed; one of {}", ALGORITHMS.join(", ")),
                );
            }
        }
    }

    /// An absolute URL a provider or its callback lives at: `https`, or
    /// `http` on a loopback host only (a provider started beside us).
    pub(super) fn provider_url(&mut self, key: &str, value: &str) -> Option<url::Url> {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal, valid, SECRET, SECRET_VAR, UNSET_VAR};
    use super::*;

    /// One `[[auth.oidc]]` that passes, with `changes` set (or added) in it.
    fn provider(changes: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("id", "\"corp\""),
            ("name", "\"Corp\""),
            ("issuer", "\"https://id.example.com\""),
            ("client_id", "\"sessiongate\""),
            (
                "redirect_url",
                "\"https://app.example.com/.sessiongate/oidc/corp/callback\"",
            ),
        ];
        for &(key, value) in changes {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(f) => f.1 = value,
                None => fields.push((key, value)),
            }
        }
        let lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[[auth.oidc]]\n{}\n", lines.join("\n"))
    }

    #[test]
    fn oidc_defaults_apply_when_unset() {
        let o = &valid(&minimal(&provider(&[]))).auth.oidc[0];
        assert_eq!(o.scopes, ["openid", "profile", "email"]);
        assert_eq!(o.algorithms, ["RS256", "ES256"]);
        assert_eq!(o.claims.user_claim, "preferred_username");
        assert_eq!(o.claims.roles_claim, None);
        assert!(o.claims.roles_map.is_empty() && o.claims.allowed_groups.is_empty());
        assert!(o.claims.allowed_email_domains.is_empty());
        assert_eq!(o.client_secret, None);
        assert!(!o.end_session);
    }

    #[test]
    fn provider_settings_are_taken_as_written() {
        let secret = format!("{{ env = \"{SECRET_VAR}\" }}");
        let text = minimal(&provider(&[
            ("issuer", "\"http://127.0.0.1:9000/realms/x\""),
            ("client_secret", &secret),
            ("scopes", "[\"email\", \"openid\", \"email\", \"groups\"]"),
            ("algorithms", "[\"EdDSA\"]"),
            ("roles_claim", "\"groups\""),
            ("roles_map", "{ Admins = \"admin\" }"),
            ("allowed_groups", "[\"Admins\"]"),
            ("allowed_email_domains", "[\"@Example.COM\"]"),
        ]));
        let o = &valid(&text).auth.oidc[0];
        assert_eq!(o.issuer, "http://127.0.0.1:9000/realms/x");
        assert_eq!(o.client_secret.as_deref(), Some(SECRET));
        // openid first, once; the others in order, once.
        assert_eq!(o.scopes, ["openid", "email", "groups"]);
        assert_eq!(o.claims.allowed_email_domains, ["example.com"]);
        assert_eq!(o.claims.roles_map["Admins"], "admin");
        // http only on a loopback host: a provider started beside us.
        for issuer in ["\"http://localhost:8080\"", "\"http://[::1]:8080\""] {
            valid(&minimal(&provider(&[("issuer", issuer)])));
        }
        // The callback follows auth.prefix.
        let sso = provider(&[(
            "redirect_url",
            "\"https://app.example.com/sso/oidc/corp/callback\"",
        )]);
        valid(&minimal(&format!("[auth]\nprefix = \"/sso\"\n{sso}")));
    }

    #[test]
    fn each_provider_refusal_names_its_key_and_value() {
        let url_rule = |key: &str, value: &str| {
            format!("auth.oidc[0].{key}: must be https:// (http:// only on a loopback host), without credentials (got {value:?})")
        };
        let unset = format!("{{ env = \"{UNSET_VAR}\" }}");
        let long_id = format!("\"{}\"", "a".repeat(33));
        let long_name = format!("\"{}\"", "n".repeat(65));
        let empty_role = names::check_role("").unwrap_err();
        let cases = [
            (
                provider(&[("id", "\"Corp\"")]),
                "auth.oidc[0].id: must be 1-32 of a-z, 0-9 and '-' (got \"Corp\")".to_owned(),
            ),
            (
                provider(&[("id", &long_id)]),
                format!("auth.oidc[0].id: must be 1-32 of a-z, 0-9 and '-' (got {long_id})"),
            ),
            (
                format!("{}{}", provider(&[]), provider(&[])),
                "auth.oidc[1].id: \"corp\" is used twice".to_owned(),
            ),
            (
                provider(&[("name", "\"  \"")]),
                "auth.oidc[0].name: must be 1-64 bytes of text".to_owned(),
            ),
            (
                provider(&[("name", &long_name)]),
                "auth.oidc[0].name: must be 1-64 bytes of text".to_owned(),
            ),
            (
                provider(&[("issuer", "\"id.example.com\"")]),
                "auth.oidc[0].issuer: must be an absolute URL (got \"id.example.com\")".to_owned(),
            ),
            (
                provider(&[("issuer", "\"http://id.example.com\"")]),
                url_rule("issuer", "http://id.example.com"),
            ),
            (
                provider(&[("issuer", "\"https://u:p@id.example.com\"")]),
                url_rule("issuer", "https://u:p@id.example.com"),
            ),
            (
                provider(&[("issuer", "\"https://id.example.com/\"")]),
                "auth.oidc[0].issuer: must not end with '/' (the provider's discovery document names it without)".to_owned(),
            ),
            (
                provider(&[("redirect_url", "\"http://app.example.com/.sessiongate/oidc/corp/callback\"")]),
                url_rule("redirect_url", "http://app.example.com/.sessiongate/oidc/corp/callback"),
            ),
            (
                provider(&[("redirect_url", "\"https://app.example.com/callback\"")]),
                "auth.oidc[0].redirect_url: must be this origin's /.sessiongate/oidc/corp/callback (got \"https://app.example.com/callback\")".to_owned(),
            ),
            (
                provider(&[("redirect_url", "\"https://app.example.com/.sessiongate/oidc/corp/callback?x=1\"")]),
                "auth.oidc[0].redirect_url: must be this origin's /.sessiongate/oidc/corp/callback (got \"https://app.example.com/.sessiongate/oidc/corp/callback?x=1\")".to_owned(),
            ),
            (
                provider(&[("client_id", "\"\"")]),
                "auth.oidc[0].client_id: must not be empty".to_owned(),
            ),
            (
                provider(&[("client_secret", &unset)]),
                format!("auth.oidc[0].client_secret: environment variable {UNSET_VAR} is not set"),
            ),
            (
                provider(&[("scopes", "[\"a b\"]")]),
                "auth.oidc[0].scopes: \"a b\" is not a scope".to_owned(),
            ),
            (
                provider(&[("scopes", "[\"\"]")]),
                "auth.oidc[0].scopes: \"\" is not a scope".to_owned(),
            ),
            (
                provider(&[("algorithms", "[]")]),
                "auth.oidc[0].algorithms: must name at least one".to_owned(),
            ),
            (
                provider(&[("algorithms", "[\"HS256\"]")]),
                "auth.oidc[0].algorithms: \"HS256\" is not allowed; one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA".to_owned(),
            ),
            (
                provider(&[("algorithms", "[\"none\"]")]),
                "auth.oidc[0].algorithms: \"none\" is not allowed; one of ".to_owned(),
            ),
            (
                provider(&[("user_claim", "\"\"")]),
                "auth.oidc[0].user_claim: must not be empty".to_owned(),
            ),
            (
                provider(&[("roles_claim", "\"groups\""), ("roles_map", "{ Admins = \"\" }")]),
                format!("auth.oidc[0].roles_map.Admins: \"\" {empty_role}"),
            ),
            (
                provider(&[("allowed_groups", "[\"staff\"]")]),
                "auth.oidc[0].allowed_groups: needs roles_claim (the claim that lists the groups)".to_owned(),
            ),
            (
                provider(&[("allowed_email_domains", "[\"a@example.com\"]")]),
                "auth.oidc[0].allowed_email_domains: must be domains such as \"example.com\"".to_owned(),
            ),
            (
                provider(&[("allowed_email_domains", "[\"@\"]")]),
                "auth.oidc[0].allowed_email_domains: must be domains such as \"example.com\"".to_owned(),
            ),
        ];
        for (p, want) in cases {
            assert_refused(&minimal(&p), &want);
        }
    }
}
