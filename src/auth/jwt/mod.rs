//! Bearer JWTs from identity providers the operator trusts (`[[auth.jwt]]`,
//! one per issuer), for the routes that take `bearer`: a CI job's or another
//! service's access token, got from the provider by client credentials.
//!
//! - The signature is `jsonwebtoken`'s (already here for the assertion), with
//!   the provider's public keys (its JWKS, found by OpenID discovery or named
//!   by `jwks_url`). Only the issuer's allow-listed asymmetric algorithms
//!   verify: `alg: none` does not parse, a JWKS's symmetric (`oct`) keys are
//!   never loaded, and a key only verifies its own family, so an HMAC token
//!   "signed" with a public key cannot pass.
//! - `iss`, `aud` and `exp` must be present; `iss` is one of ours, `aud` names
//!   one of the issuer's `audiences`, `exp` and `nbf` hold with [`LEEWAY`].
//!   sessiongate's own `X-User-Assertion` can never verify: `check` refuses an
//!   issuer equal to `[assertion] issuer`, and audiences an upstream's
//!   assertions are made for.
//! - Keys are fetched at start (and for an issuer a reload adds), off the
//!   request path ([`Bearer::warm_up`]), or at the first token if that
//!   failed; and again when a token names a `kid` we do not have, at most once per [`JWKS_REFETCH_EVERY`]. When the
//!   keys cannot be fetched, the keys already known still verify and a token
//!   under any other is refused (fail closed); before any key was ever
//!   fetched, a token gets 503 (try again), not a wrong 401.
//! - The claims become a [`Caller`] through the same [`ClaimRules`] as the
//!   OIDC login (the identity alphabet, roles map, allow-lists).
//! - A verified token is remembered (moka, per config generation), keyed by
//!   the SHA-256 of the whole token: the issuer and audience it was verified
//!   for are inside what is hashed. An entry expires with the token's `exp`
//!   and after [`REMEMBERED_FOR`] at most, so a key the provider withdraws
//!   stops working within that bound too. Only successes are remembered.
//!
//! A refusal's reason goes to the log at `debug` (never the token); the client
//! gets RFC 6750's `invalid_token` and nothing more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::reqwest;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::oidc::claims::ClaimRules;
use super::oidc::{JWKS_REFETCH_EVERY, LEEWAY};
use super::Caller;

/// A longer token is refused before it is parsed: room for a provider that
/// puts many groups in its tokens, under the `Authorization` header's cap.
pub(crate) const MAX_TOKEN_LEN: usize = 7 * 1024;
/// A verified token is remembered at most this long, whatever its `exp`.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(300);
/// Verified tokens remembered at most (all issuers).
const CAPACITY: u64 = 100_000;
/// A failed first fetch of the keys is tried again after this long.
const FETCH_RETRY: Duration = Duration::from_secs(5);
/// Each call to the provider (discovery, keys).
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document or key set larger than this is refused.
const MAX_DOCUMENT: usize = 1 << 20;
/// Keys taken from one key set at most.
const MAX_KEYS: usize = 32;

/// One `[[auth.jwt]]` issuer as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtOptions {
    /// Names the issuer in logs: `[a-z0-9-]`.
    pub id: String,
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// Where its keys are; `None`: from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// A token's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// Asymmetric only (checked by the config).
    pub algorithms: Vec<Algorithm>,
    pub claims: ClaimRules,
}

/// Why a bearer token proves no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerRefusal {
    /// Not a valid token of a trusted issuer: 401 `invalid_token`.
    Invalid,
    /// Its issuer's keys could never be fetched: 503, try again.
    KeysUnavailable,
}

/// One key of an issuer's set, parsed once when the set is fetched.
struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when the set names one: then only that verifies.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// A trusted issuer and its keys once fetched.
pub(crate) struct Issuer {
    pub options: JwtOptions,
    http: reqwest::Client,
    keys: ArcSwapOption<Vec<Key>>,
    /// One validation per allowed algorithm, built once (`Validation` holds sets).
    validations: Vec<(Algorithm, Validation)>,
    /// Fetches one at a time; the last failed first fetch, the last refetch.
    fetching: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<Instant>>,
    last_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("id", &self.options.id)
            .field("issuer", &self.options.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer; its keys are fetched by [`Bearer::warm_up`] or its first token.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub(crate) fn new(options: JwtOptions) -> Result<Issuer, String> {
        let http = super::oidc::http_client(HTTP_TIMEOUT)?;
        let validations = options
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = LEEWAY.as_secs();
                v.validate_nbf = true;
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.set_issuer(&[&options.issuer]);
                v.set_audience(&options.audiences);
                (alg, v)
            })
            .collect();
        Ok(Issuer {
            options,
            http,
            keys: ArcSwapOption::empty(),
            validations,
            fetching: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
            last_refetch: Mutex::new(None),
        })
    }

    /// The claims of `token` once its signature, `iss`, `aud`, `exp` and
    /// `nbf` are checked (an OpenID provider's logout tokens,
    /// `auth::oidc::backchannel`), or why not (for the log).
    pub(crate) async fn verified_claims(&self, token: &str) -> Result<Map<String, Value>, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("too long".to_owned());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        self.claims_of(token, &header)
            .await
            .map_err(|e| e.to_string())
    }

    /// The identity `token` proves, and until when (its `exp`), or why not.
    async fn verify(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<(Caller, u64), Refused> {
        let claims = self.claims_of(token, header).await?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let mapped = self
            .options
            .claims
            .map(&claims)
            .map_err(|e| Refused::Token(e.to_string()))?;
        let caller = Caller {
            user: mapped.user,
            roles: mapped.roles.join(","),
        };
        Ok((caller, exp))
    }

    /// The checked claims of `token`.
    async fn claims_of(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<Map<String, Value>, Refused> {
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
            .ok_or(Refused::Invalid("an algorithm the issuer is not allowed"))?;
        let keys = match self.keys.load_full() {
            Some(keys) => keys,
            None => self.fetch(false).await?,
        };
        let keys = if find(&keys, header).is_some() {
            keys
        } else {
            // A key the issuer rotated in since we fetched them, or a forgery.
            // Refetched at most every 30 s: else the keys as they are now
            // (another request may have just refetched them).
            match self.fetch(true).await {
                Ok(fresh) => fresh,
                Err(_) => self.keys.load_full().unwrap_or(keys),
            }
        };
        let key = find(&keys, header).ok_or(Refused::Invalid("no key with its kid"))?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(|e| Refused::Token(e.to_string()))?;
        Ok(data.claims)
    }

    /// Fetch the keys: the first time (`refetch` false; retried after
    /// [`FETCH_RETRY`] when it fails), or for an unknown `kid` (at most once
    /// per [`JWKS_REFETCH_EVERY`]). The keys to verify with.
    async fn fetch(&self, refetch: bool) -> Result<Arc<Vec<Key>>, Refused> {
        let _one_at_a_time = self.fetching.lock().await;
        let (clock, every) = if refetch {
            (&self.last_refetch, JWKS_REFETCH_EVERY)
        } else {
            if let Some(keys) = self.keys.load_full() {
                return Ok(keys); // fetched while we waited
            }
            (&self.last_failure, FETCH_RETRY)
        };
        {
            let mut last = clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < every) {
                return Err(Refused::NoKeys);
            }
            if refetch {
                *last = Some(Instant::now());
            }
        }
        match self.fetch_keys().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.keys.store(Some(keys.clone()));
                tracing::info!(target: "auth", issuer = %self.options.id, keys = keys.len(), refetch, "bearer token keys fetched");
                Ok(keys)
            }
            Err(e) => {
                if !refetch {
                    *self
                        .last_failure
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                }
                tracing::warn!(target: "auth", issuer = %self.options.id, reason = %e, "bearer token keys could not be fetched; the keys already known still verify");
                Err(Refused::NoKeys)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<Key>, String> {
        let url = match &self.options.jwks_url {
            Some(url) => url.clone(),
            None => {
                let base = self.options.issuer.trim_end_matches('/');
                let doc = self
                    .get_json(&format!("{base}/.well-known/openid-configuration"))
                    .await?;
                // The document must be the issuer's own (OpenID Discovery §4.3).
                if doc.get("issuer").and_then(Value::as_str) != Some(&self.options.issuer) {
                    return Err("the discovery document names another issuer".to_owned());
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?
                    .to_owned()
            }
        };
        let set = self.get_json(&url).await?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the key set has no keys")?;
        // Keys we cannot use (encryption keys, symmetric keys, unknown types)
        // are skipped, not a reason to refuse the set.
        Ok(keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter_map(|jwk| usable(&jwk))
            .take(MAX_KEYS)
            .collect())
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        if response.content_length().unwrap_or(0) > MAX_DOCUMENT as u64 {
            return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
        }
        let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }
}

/// A JWK we may verify with: a signing key (or of unstated use) of an
/// asymmetric type; `oct` keys never.
fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    let alg = match &jwk.common.key_algorithm {
        // Same names in both enums; an encryption algorithm is no signing key.
        Some(a) => Some(serde_json::from_value::<Algorithm>(serde_json::to_value(a).ok()?).ok()?),
        None => None,
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// The key a token's header names: by `kid`, or the only key when neither
/// the token nor the set has ids.
fn find<'k>(keys: &'k [Key], header: &jsonwebtoken::Header) -> Option<&'k DecodingKey> {
    let fits = |k: &&Key| k.alg.is_none_or(|a| a == header.alg);
    match &header.kid {
        Some(kid) => keys
            .iter()
            .filter(fits)
            .find(|k| k.kid.as_deref() == Some(kid)),
        None => match keys {
            [only] if only.kid.is_none() && fits(&only) => Some(only),
            _ => None,
        },
    }
    .map(|k| &k.key)
}

/// Why a token was refused, for the log.
#[derive(Debug)]
enum Refused {
    Invalid(&'static str),
    Token(String),
    NoKeys,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(why) => f.write_str(why),
            Refused::Token(why) => f.write_str(why),
            Refused::NoKeys => f.write_str("the issuer's keys could not be fetched"),
        }
    }
}

/// A remembered verification: who, and until when (unix seconds).
#[derive(Clone)]
struct Verified {
    caller: Arc<Caller>,
    exp: u64,
}

/// Remembered verifications expire with their token.
struct UntilExp;

impl moka::Expiry<[u8; 32], Verified> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verified,
        _now: Instant,
    ) -> Option<Duration> {
        let left = value.exp.saturating_sub(unix_now());
        Some(Duration::from_secs(left).min(REMEMBERED_FOR))
    }
}

/// The trusted issuers of one config generation and what they verified.
pub(crate) struct Bearer {
    issuers: Vec<Arc<Issuer>>,
    verified: moka::sync::Cache<[u8; 32], Verified>,
}

impl Bearer {
    /// `issuers` as configured; the previous generation's are kept (with the
    /// keys they fetched) where their options did not change.
    ///
    /// # Errors
    /// If an issuer's HTTP client cannot be built.
    pub(crate) fn new(options: &[JwtOptions], previous: &[Arc<Issuer>]) -> Result<Bearer, String> {
        let issuers = options
            .iter()
            .map(|o| match previous.iter().find(|p| p.options == *o) {
                Some(p) => Ok(p.clone()),
                None => Issuer::new(o.clone()).map(Arc::new),
            })
            .collect::<Result<_, _>>()?;
        Ok(Bearer {
            issuers,
            verified: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(UntilExp)
                .build(),
        })
    }

    pub(crate) fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Fetch the keys of every issuer that has none yet, on a thread of its
    /// own (start-up and reloads run outside pingora's runtimes), so the
    /// first token does not wait for them. A failure is logged, and the
    /// first token tries again.
    pub(crate) fn warm_up(&self) {
        let cold: Vec<Arc<Issuer>> = self
            .issuers
            .iter()
            .filter(|i| i.keys.load().is_none())
            .cloned()
            .collect();
        if cold.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("sg-jwt-keys".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(async {
                        futures::future::join_all(cold.iter().map(|i| i.fetch(false))).await;
                    }),
                    Err(e) => tracing::warn!(target: "auth", error = %e, "bearer token keys not fetched at start"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "auth", error = %e, "bearer token keys not fetched at start");
        }
    }

    /// The caller a bearer JWT proves, from memory or by its signature.
    pub(crate) async fn check(&self, token: &str) -> Result<Arc<Caller>, BearerRefusal> {
        if token.len() > MAX_TOKEN_LEN || self.issuers.is_empty() {
            return Err(BearerRefusal::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(v) = self.verified.get(&digest) {
            if v.exp > unix_now() {
                return Ok(v.caller);
            }
        }
        match self.verify(token).await {
            Ok((caller, exp)) => {
                let caller = Arc::new(caller);
                let remembered = Verified {
                    caller: caller.clone(),
                    exp,
                };
                self.verified.insert(digest, remembered);
                Ok(caller)
            }
            Err(refused) => {
                tracing::debug!(target: "auth", reason = %refused, "bearer token refused");
                match refused {
                    Refused::NoKeys => Err(BearerRefusal::KeysUnavailable),
                    Refused::Invalid(_) | Refused::Token(_) => Err(BearerRefusal::Invalid),
                }
            }
        }
    }

    async fn verify(&self, token: &str) -> Result<(Caller, u64), Refused> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refused::Token(e.to_string()))?;
        // The issuer decides the keys: read `iss` before the signature is
        // checked, only to choose whose keys check it.
        let iss = unverified_issuer(token).ok_or(Refused::Invalid("no iss"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.options.issuer == iss)
            .ok_or(Refused::Invalid("an issuer that is not trusted"))?;
        issuer.verify(token, &header).await
    }
}

/// The `iss` of a compact JWS, signature unchecked.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let part = token.split('.').nth(1)?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    let iss: Iss = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()?;
    Some(iss.iss)
}

/// Unix seconds, by the session layer's clock.
fn unix_now() -> u64 {
    crate::session::now_ms() / 1000
}

#[cfg(test)]
mod tests;
