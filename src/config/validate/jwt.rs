//! `[[auth.jwt]]`: the issuers whose bearer tokens routes may take, checked
//! like `[[auth.oidc]]` (the same algorithms, URLs and claim mapping), and
//! kept apart from sessiongate's own assertions.

use std::collections::BTreeSet;

use jsonwebtoken::Algorithm;

use super::oidc::RawClaims;
use super::Validator;
use crate::auth::jwt::JwtOptions;
use crate::config::raw::RawJwt;
use crate::proxy::assertion::AssertionOptions;
use crate::proxy::UpstreamOptions;

impl Validator {
    pub(super) fn jwt(&mut self, raw: Vec<RawJwt>) -> Option<Vec<JwtOptions>> {
        let before = self.problems.len();
        let mut ids = BTreeSet::new();
        let mut out = Vec::new();
        for (i, j) in raw.into_iter().enumerate() {
            let key = format!("auth.jwt[{i}]");
            if !ids.insert(j.id.clone()) {
                self.problem(&format!("{key}.id"), format!("{:?} is used twice", j.id));
            }
            out.push(self.issuer(&key, j));
        }
        let mut issuers = BTreeSet::new();
        for (i, j) in out.iter().enumerate() {
            if !issuers.insert(j.issuer.as_str()) {
                let problem = format!("{:?} has another [[auth.jwt]] already", j.issuer);
                self.problem(&format!("auth.jwt[{i}].issuer"), problem);
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn issuer(&mut self, key: &str, j: RawJwt) -> JwtOptions {
        self.short_id(key, &j.id);
        self.provider_url(&format!("{key}.issuer"), &j.issuer);
        if let Some(url) = &j.jwks_url {
            self.provider_url(&format!("{key}.jwks_url"), url);
        }
        if j.audiences.is_empty() || j.audiences.iter().any(String::is_empty) {
            // Without an audience, a token the issuer made for any other
            // service would be taken here.
            self.problem(
                &format!("{key}.audiences"),
                "must name at least one audience (the `aud` its tokens carry for this gate)",
            );
        }
        self.algorithms(key, &j.algorithms);
        let algorithms = j
            .algorithms
            .iter()
            .filter_map(|a| serde_json::from_value::<Algorithm>(a.as_str().into()).ok())
            .collect();
        let claims = self.claim_rules(
            key,
            RawClaims {
                user_claim: j.user_claim,
                roles_claim: j.roles_claim,
                roles_map: j.roles_map,
                allowed_email_domains: j.allowed_email_domains,
                allowed_groups: j.allowed_groups,
            },
        );
        JwtOptions {
            id: j.id,
            issuer: j.issuer,
            jwks_url: j.jwks_url,
            audiences: j.audiences,
            algorithms,
            claims,
        }
    }

    /// sessiongate's own assertions must never pass as bearer tokens: no
    /// issuer may be the assertion's, nor take an audience it is made for.
    pub(super) fn jwt_apart_from_assertions(
        &mut self,
        jwt: &[JwtOptions],
        assertion: Option<&AssertionOptions>,
        ups: &[UpstreamOptions],
    ) {
        for (i, j) in jwt.iter().enumerate() {
            if assertion.is_some_and(|a| a.issuer == j.issuer) {
                self.problem(
                    &format!("auth.jwt[{i}].issuer"),
                    "is [assertion] issuer: sessiongate's own assertions are never bearer tokens",
                );
            }
            for u in ups {
                if let Some(aud) = u.assertion_audience.as_deref() {
                    if j.audiences.iter().any(|a| a == aud) {
                        self.problem(
                            &format!("auth.jwt[{i}].audiences"),
                            format!("{aud:?} is upstream.{}.assertion_audience: sessiongate's own assertions are never bearer tokens", u.name),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal, valid};

    fn issuer(lines: &str) -> String {
        minimal(&format!(
            "[[auth.jwt]]\nid = \"ci\"\nissuer = \"https://id.example.com\"\n{lines}\n"
        ))
    }

    #[test]
    fn an_issuer_with_audiences_is_taken_with_its_defaults() {
        let c = valid(&issuer("audiences = [\"gate\"]"));
        let j = &c.auth.jwt[0];
        assert_eq!(j.audiences, ["gate"]);
        assert_eq!(
            j.algorithms,
            [
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::ES256
            ]
        );
        assert_eq!(j.claims.user_claim, "sub");
    }

    #[test]
    fn unsafe_issuers_are_refused() {
        for (lines, want) in [
            ("", "auth.jwt[0].audiences: must name at least one audience"),
            (
                "audiences = [\"gate\"]\nalgorithms = [\"HS256\"]",
                "auth.jwt[0].algorithms: \"HS256\" is not allowed",
            ),
            (
                "audiences = [\"gate\"]\nalgorithms = [\"none\"]",
                "auth.jwt[0].algorithms: \"none\" is not allowed",
            ),
            (
                "audiences = [\"gate\"]\njwks_url = \"http://keys.example.com/\"",
                "auth.jwt[0].jwks_url: must be https://",
            ),
        ] {
            assert_refused(&issuer(lines), want);
        }
        let text = minimal("[[route]]\npath = \"/api\"\ncredentials = [\"bearer\"]\n");
        assert_refused(
            &text,
            "route[0].credentials: bearer needs an [[auth.jwt]] issuer",
        );
    }
}
