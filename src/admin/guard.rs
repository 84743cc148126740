//! The admin token: the explicit guard every non-health admin handler passes.
//!
//! The token is `Authorization: Bearer <token>`, or HTTP Basic with the token
//! as the password (so a browser can open the HTML page without the token ever
//! being in a URL). It is compared in constant time: SHA-256 of both, then
//! `subtle`, so neither its length nor a prefix leaks through timing.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::session::signing::Secret;

/// Standard base64 (RFC 4648 §4) with or without padding: browsers send it
/// padded, hand-made `curl -H` headers sometimes not.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
        let Some(value) = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(presented) = presented(value) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&presented).into();
        digest.ct_eq(expected).into()
    }
}

/// The token in an `Authorization` value: a bearer token, or the password of
/// Basic credentials.
fn presented(value: &str) -> Option<Vec<u8>> {
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.trim().as_bytes().to_vec());
    }
    let creds = BASIC.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let colon = creds.iter().position(|&c| c == b':')?;
    Some(creds[colon + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_present_the_token() {
        assert_eq!(presented("Bearer  abc ").as_deref(), Some(&b"abc"[..]));
        // "admin:s3cr3t", padded and not.
        assert_eq!(
            presented("Basic YWRtaW46czNjcjN0").as_deref(),
            Some(&b"s3cr3t"[..])
        );
        assert_eq!(presented("Basic Og==").as_deref(), Some(&b""[..]));
        assert_eq!(presented("Basic Og").as_deref(), Some(&b""[..]));
        assert!(presented("Basic YQ").is_none(), "no colon");
        assert!(presented("Basic !!!!").is_none());
        assert!(presented("Token abc").is_none());
    }

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
    }
}
