//! From a verified ID token's claims to a sessiongate identity: one mapping,
//! the identity alphabet of [`crate::auth::names`], and the allow-lists
//! (as oauth2-proxy's `--email-domain` and `--allowed-group`). Pure: the
//! callback in [`super`] calls it after the token's signature and claims
//! have been checked.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::auth::names;

/// Most roles one sign-in may carry into a session; the rest are dropped.
pub(crate) const MAX_ROLES: usize = 64;

/// How a provider's claims become a user and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimRules {
    /// The claim that names the user (`preferred_username`, `email`, `sub`...).
    pub user_claim: String,
    /// The claim that lists the user's groups or roles, if any.
    pub roles_claim: Option<String>,
    /// Renames a group to a role; groups not named are kept as they are.
    pub roles_map: BTreeMap<String, String>,
    /// When not empty, the verified email's domain must be one of these (lower case).
    pub allowed_email_domains: Vec<String>,
    /// When not empty, one of the user's groups (before renaming) must be one of these.
    pub allowed_groups: Vec<String>,
}

/// Why a sign-in with valid tokens is still refused. Logged, never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the ID token has no string claim {0:?}")]
    NoUser(String),
    #[error("the user claim {claim:?} {rule}")]
    BadUser { claim: String, rule: &'static str },
    #[error("the email address is not verified by the provider")]
    UnverifiedEmail,
    #[error("the email domain is not allowed")]
    EmailDomain,
    #[error("none of the user's groups is allowed")]
    Group,
}

/// The identity a sign-in gives: a user name and roles, both in the alphabet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub user: String,
    pub roles: Vec<String>,
    /// Groups that could not be roles (outside the alphabet, or past
    /// [`MAX_ROLES`]): logged by the caller, never a reason to refuse.
    pub dropped: usize,
    /// The provider says the user passed a second factor
    /// ([`super::FactorClaims`]); set by the sign-in, never by the mapping.
    pub second_factor: bool,
    /// The provider's session (`sub`, `sid`); set by the sign-in.
    pub session: Option<crate::session::ProviderSession>,
    /// Every claim of the ID token, for the ones handed to the backend; set
    /// by the sign-in.
    pub id_token: Map<String, Value>,
}

impl ClaimRules {
    /// Map `claims` to an identity, or say why not.
    ///
    /// # Errors
    /// A [`Refusal`] when the user claim is missing or outside the alphabet,
    /// an email is used but not verified, or an allow-list does not match.
    pub(crate) fn map(&self, claims: &Map<String, Value>) -> Result<Mapped, Refusal> {
        let user = claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::NoUser(self.user_claim.clone()))?;
        names::check_user(user).map_err(|rule| Refusal::BadUser {
            claim: self.user_claim.clone(),
            rule,
        })?;
        // An address the provider did not verify names nobody: it must not
        // become the user, nor pass a domain allow-list.
        let uses_email = self.user_claim == "email" || !self.allowed_email_domains.is_empty();
        if uses_email && claims.get("email_verified") != Some(&Value::Bool(true)) {
            return Err(Refusal::UnverifiedEmail);
        }
        if !self.allowed_email_domains.is_empty() {
            let domain = claims
                .get("email")
                .and_then(Value::as_str)
                .and_then(email_domain);
            if !domain.is_some_and(|d| self.allowed_email_domains.contains(&d)) {
                return Err(Refusal::EmailDomain);
            }
        }
        let groups = self.groups(claims);
        if !self.allowed_groups.is_empty()
            && !groups.iter().any(|g| self.allowed_groups.contains(g))
        {
            return Err(Refusal::Group);
        }
        let mut roles: Vec<String> = Vec::new();
        let mut dropped = 0;
        for g in &groups {
            let role = self.roles_map.get(g).unwrap_or(g);
            if roles.len() < MAX_ROLES && names::check_role(role).is_ok() {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            } else {
                dropped += 1;
            }
        }
        Ok(Mapped {
            user: user.to_owned(),
            roles,
            dropped,
            second_factor: false,
            session: None,
            id_token: Map::new(),
        })
    }

    /// The roles claim as a list: an array of strings, or one string of
    /// space-separated values (OAuth's `scope`, RFC 9068 §2.2.3).
    fn groups(&self, claims: &Map<String, Value>) -> Vec<String> {
        let Some(claim) = &self.roles_claim else {
            return Vec::new();
        };
        match claims.get(claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }
}

/// The lower-case domain of a plain address (`local@domain`), or `None` for
/// anything else. Parsed by `email_address` (RFC 5322 addr-spec), with the
/// forms a domain allow-list must not guess at refused outright: a display
/// name (`Eve <eve@x>`), a domain literal (`a@[10.0.0.1]`), and a quoted
/// local part, which is the only way an address holds a second `@`
/// (`"eve@evil.com"@company.com`). Taking the text after the last `@` let
/// `attacker@evil.com@company.com` through (oauth2-proxy GHSA-c5c4-8r6x-56w3).
fn email_domain(address: &str) -> Option<String> {
    use email_address::{EmailAddress, Options};
    let options = Options::default()
        .without_display_text()
        .without_domain_literal();
    let parsed = EmailAddress::parse_with_options(address, options).ok()?;
    if parsed.local_part().starts_with('"') || address.matches('@').count() != 1 {
        return None;
    }
    Some(parsed.domain().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            user_claim: "preferred_username".into(),
            roles_claim: Some("groups".into()),
            roles_map: BTreeMap::from([("/admins".to_owned(), "admin".to_owned())]),
            allowed_email_domains: Vec::new(),
            allowed_groups: Vec::new(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_user_claim_and_renamed_groups_become_the_identity() {
        let m = rules()
            .map(&claims(json!({
                "preferred_username": "alice",
                "groups": ["/admins", "staff", "staff", "bad,role", 7],
            })))
            .unwrap();
        assert_eq!(m.user, "alice");
        assert_eq!(m.roles, vec!["admin", "staff"]);
        assert_eq!(m.dropped, 1);
        let one = rules()
            .map(&claims(
                json!({"preferred_username": "bob", "groups": "staff"}),
            ))
            .unwrap();
        assert_eq!(one.roles, vec!["staff"]);
        let scope = rules()
            .map(&claims(
                json!({"preferred_username": "ci", "groups": " read  deploy "}),
            ))
            .unwrap();
        assert_eq!(scope.roles, vec!["read", "deploy"], "OAuth's scope claim");
    }

    #[test]
    fn a_missing_or_malformed_user_is_refused() {
        let r = rules();
        assert!(matches!(r.map(&claims(json!({}))), Err(Refusal::NoUser(_))));
        assert!(matches!(
            r.map(&claims(json!({"preferred_username": 5}))),
            Err(Refusal::NoUser(_))
        ));
        for bad in ["root, alice", "a\nb", " alice", ""] {
            assert!(
                matches!(
                    r.map(&claims(json!({ "preferred_username": bad }))),
                    Err(Refusal::BadUser { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_email_user_must_be_verified() {
        let r = ClaimRules {
            user_claim: "email".into(),
            ..rules()
        };
        let ok = json!({"email": "a@example.com", "email_verified": true});
        assert_eq!(r.map(&claims(ok)).unwrap().user, "a@example.com");
        for bad in [
            json!({"email": "a@example.com"}),
            json!({"email": "a@example.com", "email_verified": false}),
            json!({"email": "a@example.com", "email_verified": "true"}),
        ] {
            assert_eq!(r.map(&claims(bad)), Err(Refusal::UnverifiedEmail));
        }
    }

    #[test]
    fn allow_lists_by_domain_and_group() {
        let r = ClaimRules {
            allowed_email_domains: vec!["example.com".into()],
            allowed_groups: vec!["staff".into()],
            ..rules()
        };
        let base = json!({"preferred_username": "a", "email_verified": true, "groups": ["staff"]});
        let with = |k: &str, v: Value| {
            let mut c = claims(base.clone());
            c.insert(k.into(), v);
            c
        };
        assert!(r.map(&with("email", json!("a@Example.COM"))).is_ok());
        assert_eq!(
            r.map(&with("email", json!("a@example.com.evil.test"))),
            Err(Refusal::EmailDomain)
        );
        assert_eq!(
            r.map(&with("email", json!("a@sub.example.com"))),
            Err(Refusal::EmailDomain)
        );
        let mut no_group = with("email", json!("a@example.com"));
        no_group.insert("groups".into(), json!(["contractors"]));
        assert_eq!(r.map(&no_group), Err(Refusal::Group));
        let mut unverified = with("email", json!("a@example.com"));
        unverified.remove("email_verified");
        assert_eq!(r.map(&unverified), Err(Refusal::UnverifiedEmail));
    }

    #[test]
    fn only_a_plain_address_has_a_domain() {
        let cases = [
            ("a@company.com", Some("company.com")),
            ("A.B+tag@Company.COM", Some("company.com")),
            // The advisory's case: the domain after the last '@' is not the address's.
            ("attacker@evil.com@company.com", None),
            ("\"attacker@evil.com\"@company.com", None),
            ("\"quoted\"@company.com", None),
            ("Eve <eve@company.com>", None),
            ("eve@[10.0.0.1]", None),
            ("company.com", None),
            ("@company.com", None),
            ("eve@", None),
            ("eve@company.com ", None),
            ("eve@company.com\n", None),
            ("", None),
        ];
        for (address, want) in cases {
            assert_eq!(email_domain(address).as_deref(), want, "{address:?}");
        }
    }

    #[test]
    fn a_second_at_sign_passes_no_domain_allow_list() {
        let r = ClaimRules {
            allowed_email_domains: vec!["company.com".into()],
            ..rules()
        };
        for email in [
            "attacker@evil.com@company.com",
            "\"attacker@evil.com\"@company.com",
        ] {
            let c = claims(json!({
                "preferred_username": "a", "email_verified": true, "email": email,
            }));
            assert_eq!(r.map(&c), Err(Refusal::EmailDomain), "{email}");
        }
    }

    #[test]
    fn roles_are_capped() {
        let many: Vec<String> = (0..100).map(|i| format!("g{i}")).collect();
        let m = rules()
            .map(&claims(json!({"preferred_username": "a", "groups": many})))
            .unwrap();
        assert_eq!(m.roles.len(), MAX_ROLES);
        assert_eq!(m.dropped, 100 - MAX_ROLES);
    }
}
