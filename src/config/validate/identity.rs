//! `[identity]`: the names of the headers that hand the user and their roles
//! to a backend, refusing any header that HTTP or sessiongate already uses.

use super::Validator;
use crate::config::raw::RawIdentity;
use crate::http::headers::IdentityNames;

impl Validator {
    /// `[identity]`: header names a backend reads. Not a header that frames
    /// or routes the request, carries credentials, or is another of ours.
    pub(super) fn identity(&mut self, raw: &RawIdentity) -> Option<IdentityNames> {
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
        let mut name = |key: &str, value: &str| match http::HeaderName::from_bytes(value.as_bytes())
        {
            Ok(n) if FORBIDDEN.contains(&n.as_str()) || n.as_str().starts_with("x-session-") => {
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
        };
        let user = name("identity.user_header", &raw.user_header);
        let roles = name("identity.roles_header", &raw.roles_header);
        let (user, roles) = (user?, roles?);
        if user == roles {
            self.problem(
                "identity.roles_header",
                "must differ from identity.user_header",
            );
            return None;
        }
        Some(IdentityNames { user, roles })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal, valid};

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
