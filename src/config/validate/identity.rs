//! `[identity]`: the names of the headers that hand the user and their roles
//! to a backend, refusing any header that HTTP or sessiongate already uses.

use super::Validator;
use crate::config::raw::RawIdentity;
use crate::http::headers::IdentityNames;

/// Headers a backend reads that HTTP or sessiongate uses for something else.
const FORBIDDEN: [&str; 16] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "cookie",
    "authorization",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// A claim or directory attribute name: what an ID token or a directory entry has.
fn is_claim_name(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Whether `claim` names a secret a directory keeps (`userPassword`,
/// `unicodePwd`, ...): never a header.
fn is_secret_attribute(claim: &str) -> bool {
    let c = claim.to_ascii_lowercase();
    c.contains("password") || c.contains("pwd") || c.contains("secret")
}

impl Validator {
    /// `[identity]`: header names a backend reads. Not a header that frames
    /// or routes the request, carries credentials, or is another of ours;
    /// no header named twice.
    pub(super) fn identity(&mut self, raw: &RawIdentity) -> Option<IdentityNames> {
        let user = self.identity_header("identity.user_header", &raw.user_header);
        let roles = self.identity_header("identity.roles_header", &raw.roles_header);
        let mut claims = Vec::new();
        let mut claims_ok = true;
        let named = [
            ("identity.email_header", &raw.email_header, "email"),
            ("identity.name_header", &raw.name_header, "name"),
        ];
        for (key, header, claim) in named.into_iter().filter(|(_, h, _)| !h.is_empty()) {
            match self.claim_header(key, header) {
                Some(h) => claims.push((h, claim.to_owned())),
                None => claims_ok = false,
            }
        }
        for (header, claim) in &raw.claim_headers {
            let key = format!("identity.claim_headers.{header:?}");
            if !is_claim_name(claim) {
                self.problem(
                    &key,
                    format!("not a claim or attribute name (got {claim:?})"),
                );
                claims_ok = false;
                continue;
            }
            if crate::proxy::assertion::RESERVED_CLAIMS.contains(&claim.as_str())
                || is_secret_attribute(claim)
            {
                self.problem(
                    &key,
                    format!("{claim:?} is a claim tokens and the assertion use for something else, or a secret"),
                );
                claims_ok = false;
                continue;
            }
            match self.claim_header(&key, header) {
                Some(h) => claims.push((h, claim.clone())),
                None => claims_ok = false,
            }
        }
        let (user, roles) = (user?, roles?);
        if user == roles {
            self.problem(
                "identity.roles_header",
                "must differ from identity.user_header",
            );
            return None;
        }
        let mut all: Vec<&http::HeaderName> = vec![&user, &roles];
        all.extend(claims.iter().map(|(h, _)| h));
        for (i, h) in all.iter().enumerate() {
            if all[..i].contains(h) {
                self.problem(
                    "identity",
                    format!("the header {:?} is named twice", h.as_str()),
                );
                return None;
            }
        }
        claims_ok.then_some(IdentityNames {
            user,
            roles,
            claims,
        })
    }

    fn identity_header(&mut self, key: &str, value: &str) -> Option<http::HeaderName> {
        self.named_header(key, value, false)
    }

    /// A header for a user's claim: also not one the proxy strips for
    /// another purpose (a client address, an override, the assertion).
    fn claim_header(&mut self, key: &str, value: &str) -> Option<http::HeaderName> {
        self.named_header(key, value, true)
    }

    fn named_header(&mut self, key: &str, value: &str, claim: bool) -> Option<http::HeaderName> {
        if value.contains('_') {
            // CGI-style servers read `_` as `-`: one name, two spellings.
            self.problem(key, format!("use '-', not '_' (got {value:?})"));
            return None;
        }
        // Another of ours, a client address or an override the proxy strips
        // (every X-User-* but the assertion is ours to name).
        let taken = |n: &str| {
            claim
                && (n == "x-user-assertion"
                    || (crate::proxy::identity::is_reserved(n.as_bytes())
                        && !n.starts_with("x-user")))
        };
        match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(n)
                if FORBIDDEN.contains(&n.as_str())
                    || n.as_str().starts_with("x-session-")
                    || taken(n.as_str()) =>
            {
                self.problem(
                    key,
                    format!("{value:?} is a header sessiongate or HTTP uses for something else"),
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(key, format!("not a header name (got {value:?})"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal, problems, valid};

    #[test]
    fn claim_headers_are_refused_where_they_could_pass_for_something_else() {
        for (lines, want) in [
            (
                "claim_headers = { \"X-User-Amr\" = \"amr\" }",
                "is a claim tokens and the assertion use",
            ),
            (
                "claim_headers = { \"X-User-Pw\" = \"userPassword\" }",
                "or a secret",
            ),
            (
                "claim_headers = { \"X-User-Assertion\" = \"mail\" }",
                "is a header sessiongate or HTTP uses",
            ),
            (
                "claim_headers = { \"X-Real-IP\" = \"mail\" }",
                "is a header sessiongate or HTTP uses",
            ),
            (
                "email_header = \"X-Forwarded-Email\"",
                "is a header sessiongate or HTTP uses",
            ),
            ("name_header = \"X_User_Name\"", "use '-', not '_'"),
            (
                "claim_headers = { \"X-User\" = \"mail\" }",
                "is named twice",
            ),
            (
                "claim_headers = { \"X-A\" = \"a b\" }",
                "not a claim or attribute name",
            ),
        ] {
            let p = problems(&minimal(&format!("[identity]\n{lines}\n")));
            assert!(p.iter().any(|l| l.contains(want)), "{lines}: {p:#?}");
        }
        // An app's own name for the user, as before.
        valid(&minimal("[identity]\nuser_header = \"X-Forwarded-User\"\n"));
    }

    #[test]
    fn unsafe_identity_headers_are_refused() {
        let cases = [
            (
                minimal("[identity]\nuser_header = \"Cookie\"\n"),
                "identity.user_header: \"Cookie\" is a header sessiongate or HTTP uses",
            ),
            (
                minimal("[identity]\nuser_header = \"X-Session-User\"\n"),
                "identity.user_header: \"X-Session-User\" is a header",
            ),
            (
                minimal("[identity]\nuser_header = \"bad name\"\n"),
                "identity.user_header: not a header name",
            ),
            (
                minimal(
                    "[identity]\nuser_header = \"Remote-User\"\nroles_header = \"remote-user\"\n",
                ),
                "identity.roles_header: must differ from identity.user_header",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }

    /// The minimal config with `lines` in `[identity]`.
    fn identity(lines: &str) -> String {
        minimal(&format!("[identity]\n{lines}\n"))
    }

    #[test]
    fn identity_defaults_and_the_login_endpoints_use_the_same_names() {
        let c = valid(&minimal(""));
        assert_eq!(
            (c.identity.user.as_str(), c.identity.roles.as_str()),
            ("x-user", "x-user-roles")
        );
        let c = valid(&identity(
            "user_header = \"Remote-User\"\nroles_header = \"Remote-Groups\"",
        ));
        assert_eq!(c.identity.user, "remote-user");
        assert_eq!(c.identity.roles, "remote-groups");
        // auth's /check answers with the same names.
        assert_eq!(c.auth.identity.user, c.identity.user);
        assert_eq!(c.auth.identity.roles, c.identity.roles);
    }

    #[test]
    fn headers_http_or_sessiongate_use_are_refused() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "TE",
            "Cookie",
            "Authorization",
            "X-Forwarded-For",
            "X-Forwarded-Host",
            "X-Request-Id",
            "X-Session-Login",
        ] {
            assert_refused(
                &identity(&format!("roles_header = \"{name}\"")),
                &format!("identity.roles_header: \"{name}\" is a header sessiongate or HTTP uses for something else"),
            );
        }
        assert_refused(
            &identity("roles_header = \"\""),
            "identity.roles_header: not a header name (got \"\")",
        );
        assert_refused(
            &identity("user_header = \"X-User:\""),
            "identity.user_header: not a header name (got \"X-User:\")",
        );
    }
}
