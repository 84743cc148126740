//! The admin token: the explicit guard every non-health admin handler passes.
//!
//! The token is `Authorization: Bearer <token>`, or HTTP Basic with the token
//! as the password (so a browser can open the HTML page without the token ever
//! being in a URL). It is compared in constant time: SHA-256 of both, then
//! `subtle`, so neither its length nor a prefix leaks through timing.

use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::authorization::{self, Authorization};
use crate::session::signing::Secret;

/// The configured admin token, kept only as its digest.
pub(super) struct Token {
    digest: Option<[u8; 32]>,
}

impl Token {
    /// `None`: no token configured, so nothing but the health endpoints opens.
    pub(super) fn new(secret: Option<&Secret>) -> Token {
        Token {
            digest: secret.map(|t| Sha256::digest(t.expose()).into()),
        }
    }

    /// Whether `req` presents the token.
    pub(super) fn allows(&self, req: &RequestHeader) -> bool {
        let Some(expected) = &self.digest else {
            return false;
        };
        let Some(presented) = authorization::of(&req.headers).and_then(presented) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&presented).into();
        digest.ct_eq(expected).into()
    }
}

/// The token in an `Authorization` value: a bearer token, or the password of
/// Basic credentials.
fn presented(a: Authorization) -> Option<String> {
    match a {
        Authorization::Bearer(token) => Some(token),
        Authorization::Basic { password, .. } => Some(password),
        Authorization::Other | Authorization::Malformed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_token_is_allowed() {
        let secret = Secret::new(b"the-admin-token-0123456789abcdef0123".to_vec());
        let req = |auth: &str| {
            let mut r = RequestHeader::build("GET", b"/stats", None).unwrap();
            r.insert_header("Authorization", auth.to_owned()).unwrap();
            r
        };
        let token = Token::new(Some(&secret));
        assert!(token.allows(&req("Bearer the-admin-token-0123456789abcdef0123")));
        assert!(!token.allows(&req("Bearer the-admin-token-0123456789abcdef012")));
        assert!(!Token::new(None).allows(&req("Bearer ")));
        // The token as Basic's password, under any user name.
        // "admin:the-admin-token-0123456789abcdef0123"
        assert!(token.allows(&req(
            "Basic YWRtaW46dGhlLWFkbWluLXRva2VuLTAxMjM0NTY3ODlhYmNkZWYwMTIz"
        )));
        assert!(!token.allows(&req("Digest the-admin-token-0123456789abcdef0123")));
    }
}
