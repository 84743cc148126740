//! The names of the headers sessiongate sets for a backend (or, on `check`,
//! for a front proxy to copy). Written once, so the proxy and the auth
//! endpoints cannot spell one differently.

use http::HeaderName;

/// The names under which sessiongate hands over the identity (`[identity]`):
/// `X-User`/`X-User-Roles`, or what an app expects (`X-Forwarded-User`,
/// `Remote-User`, `X-WEBAUTH-USER`, …). Client copies of both are stripped
/// in every spelling, as for the defaults. The roles are joined with `,`.
#[derive(Debug, Clone)]
pub(crate) struct IdentityNames {
    pub user: HeaderName,
    pub roles: HeaderName,
    /// The user's claims a sign-in recorded (the email, the display name,
    /// named claims), each under its header: (header, claim).
    pub claims: Vec<(HeaderName, String)>,
}

impl Default for IdentityNames {
    fn default() -> Self {
        IdentityNames {
            user: HeaderName::from_static("x-user"),
            roles: HeaderName::from_static("x-user-roles"),
            claims: vec![
                (HeaderName::from_static("x-user-email"), "email".to_owned()),
                (HeaderName::from_static("x-user-name"), "name".to_owned()),
            ],
        }
    }
}

impl IdentityNames {
    /// The claims a sign-in records: those a header hands over.
    pub(crate) fn wanted(&self) -> impl Iterator<Item = &str> {
        self.claims.iter().map(|(_, c)| c.as_str())
    }
}
/// The session's data as compact JSON.
pub(crate) const X_SESSION_DATA: &str = "X-Session-Data";
/// The client address chain (RFC 7239's de-facto predecessor).
pub(crate) const X_FORWARDED_FOR: &str = "X-Forwarded-For";
/// `http` or `https`, as the client reached us.
pub(crate) const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
/// The `Host` the client sent.
pub(crate) const X_FORWARDED_HOST: &str = "X-Forwarded-Host";
