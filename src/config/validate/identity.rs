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
    use super::super::testing::{assert_refused, minimal};

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
}
