//! The signed identity: for an upstream with `assertion_audience`, every
//! request carries `X-User-Assertion: <JWT>`, so a backend that anything else
//! can also reach need not trust a bare `X-User`.
//!
//! - EdDSA (Ed25519) JWTs, signed by `jsonwebtoken`; header `kid` names the
//!   key. Claims: `iss` (`[assertion] issuer`), `aud` (the upstream's
//!   audience), `sub` (the user), `roles`, `iat`, `exp` (`iat` + `[assertion]
//!   ttl`, at most 60 s) and `sid`, the session's key (SHA-256 of its id, the
//!   handle the admin API shows; never the id).
//! - The keys come from files; the first signs, all are published in the JWKS
//!   (`<prefix>/jwks.json` and the admin listener's `/jwks.json`), so a key is
//!   rotated as the cookie secrets are: add the new one first, drop the old
//!   one once its assertions have expired. They reload with the config.
//! - Signing is not paid per request: an assertion is kept per session and
//!   upstream (moka) for half its lifetime, so every one handed out has at
//!   least half of it left.
//! - Client copies of `X-User-Assertion` are stripped on every route
//!   ([`super::identity`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moka::sync::Cache;
use serde::Serialize;

use crate::session::signing::Secret;
use crate::session::{Session, SessionKey};

/// The request header that carries the assertion.
pub(crate) const X_USER_ASSERTION: &str = "X-User-Assertion";

/// Assertions kept at most (sessions × upstreams that use them).
const CACHE_CAPACITY: u64 = 100_000;

/// One key of `[assertion] keys`: its id, its PKCS#8 PEM and its public key.
#[derive(Debug, Clone)]
pub(crate) struct AssertionKey {
    pub kid: String,
    pub pem: Secret,
    pub public: [u8; 32],
}

impl AssertionKey {
    /// Read an Ed25519 PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`).
    ///
    /// # Errors
    /// Not a PEM PKCS#8 Ed25519 key.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<AssertionKey, String> {
        let der = match rustls_pemfile::private_key(&mut &pem[..]) {
            Ok(Some(pingora::tls::PrivateKeyDer::Pkcs8(der))) => der,
            Ok(_) => return Err("no PKCS#8 private key in it".to_owned()),
            Err(e) => return Err(e.to_string()),
        };
        let pair =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
                .map_err(|_| {
                    "not an Ed25519 key (make one with: openssl genpkey -algorithm ed25519)"
                })?;
        let public: [u8; 32] = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes")?;
        EncodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?;
        // The id is the key's own digest: the same key, the same kid, everywhere.
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Ok(AssertionKey {
            kid,
            pem: Secret::new(pem.to_vec()),
            public,
        })
    }
}

/// `[assertion]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct AssertionOptions {
    pub issuer: String,
    pub ttl: Duration,
    /// The first signs; all are published.
    pub keys: Vec<AssertionKey>,
}

/// The signer of one config generation.
pub(crate) struct Assertions {
    issuer: String,
    ttl: Duration,
    kid: String,
    key: EncodingKey,
    jwks: String,
    cache: Cache<(SessionKey, usize), HeaderValue>,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    roles: Vec<&'a str>,
    iat: u64,
    exp: u64,
    sid: String,
    /// The user's claims the sign-in recorded (`email`, `name`, named
    /// claims), under their own names, but never one of the above.
    #[serde(flatten)]
    claims: std::collections::BTreeMap<&'a str, &'a str>,
}

/// Claims the assertion or a token already has a meaning for: a recorded
/// claim of one of these names could pass for it (an `amr` from a directory
/// attribute would fake a second factor). `config` refuses them as claim
/// names; the assertion leaves them out as a second line.
pub(crate) const RESERVED_CLAIMS: [&str; 22] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "roles",
    "acr",
    "amr",
    "azp",
    "auth_time",
    "nonce",
    "cnf",
    "scope",
    "client_id",
    "act",
    "typ",
    "at_hash",
    "c_hash",
    "events",
];

impl Assertions {
    /// The signer for `options` (its keys were checked by `config`).
    pub(crate) fn new(options: &AssertionOptions) -> Option<Arc<Assertions>> {
        let first = options.keys.first()?;
        let key = EncodingKey::from_ed_pem(first.pem.expose()).ok()?;
        let keys: Vec<serde_json::Value> = options
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.public),
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        Some(Arc::new(Assertions {
            issuer: options.issuer.clone(),
            ttl: options.ttl,
            kid: first.kid.clone(),
            key,
            jwks: serde_json::json!({ "keys": keys }).to_string(),
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(options.ttl / 2)
                .build(),
        }))
    }

    /// The JWKS document: every configured key's public half.
    pub(crate) fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The assertion of `session` for upstream number `upstream`, whose
    /// audience is `audience`: from the cache, or signed now.
    pub(crate) fn of(
        &self,
        session: &Session,
        upstream: usize,
        audience: &str,
    ) -> Option<HeaderValue> {
        let user = session.user()?;
        self.cache.optionally_get_with((session.key, upstream), || {
            self.sign(session, user, audience)
        })
    }

    fn sign(&self, session: &Session, user: &str, audience: &str) -> Option<HeaderValue> {
        let iat = crate::session::now_ms() / 1000;
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: user,
            roles: session.roles().collect(),
            iat,
            exp: iat + self.ttl.as_secs(),
            sid: session.key.to_hex(),
            claims: session
                .claims
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|(k, _)| !RESERVED_CLAIMS.contains(&&**k))
                .map(|(k, v)| (&**k, &**v))
                .collect(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        match jsonwebtoken::encode(&header, &claims, &self.key) {
            Ok(token) => HeaderValue::from_str(&token).ok(),
            Err(e) => {
                tracing::error!(error = %e, "identity assertion not signed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_load_from_pem_and_others_are_refused() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = AssertionKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
        assert_eq!(key.kid.len(), 16);
        let again = AssertionKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
        assert_eq!(key.kid, again.kid, "the kid is the key's");
        let p256 = rcgen::KeyPair::generate().unwrap();
        let e = AssertionKey::from_pem(p256.serialize_pem().as_bytes()).unwrap_err();
        assert!(e.contains("not an Ed25519 key"), "{e}");
        assert!(AssertionKey::from_pem(b"junk").is_err());
    }
}
