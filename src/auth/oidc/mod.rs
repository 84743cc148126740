//! Sign-in with an OpenID Connect provider (`[[auth.oidc]]`): the
//! authorization code flow with PKCE (S256), on sessiongate's own sessions.
//!
//! | endpoint                      | does                                                  |
//! |-------------------------------|-------------------------------------------------------|
//! | `GET <p>/oidc/<id>/start`     | sets the pre-login cookie, 302 to the provider        |
//! | `GET <p>/oidc/<id>/callback`  | checks `state`, redeems the code, checks the ID token, new session, 303 to `next` |
//!
//! The protocol is the `openidconnect` crate's (discovery, the code exchange,
//! ID token signature and claims: `iss`, `aud`, `azp`, `exp`, `nonce`), chosen
//! because it is the maintained, spec-following OIDC relying party for Rust: it
//! types every step, refuses `alg: none` unless asked, and has an allow-list of
//! signing algorithms. sessiongate adds what it leaves to the caller: the
//! pre-login record ([`prelogin`]), a leeway and a freshness window for
//! `exp`/`iat`, keys refetched when an unknown `kid` appears (at most once per
//! [`JWKS_REFETCH_EVERY`]), and the claims mapping ([`claims`]).
//!
//! Every failure ends on the login page with one generic message; the reason
//! goes to the log at `warn`, without tokens or codes.

pub(crate) mod backchannel;
pub(crate) mod claims;
pub(crate) mod flow;
pub(crate) mod fresh;
pub(crate) mod prelogin;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    reqwest, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, NonceVerifier, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadataWithLogout, RedirectUrl, RefreshToken, Scope, SignatureVerificationError,
};
use serde_json::{Map, Value};
use std::sync::Arc;

use self::claims::{ClaimRules, Mapped};
use self::prelogin::PreLogin;

/// Clock difference allowed between the provider and us, for `exp` and `iat`.
pub(crate) const LEEWAY: Duration = Duration::from_secs(60);
/// An ID token issued longer ago than this is refused, whatever its `exp`.
pub(crate) const MAX_TOKEN_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the provider's keys at most this often, so a
/// stream of forged tokens cannot make us hammer the provider.
pub(crate) const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(30);
/// A failed discovery is retried at the next sign-in after this long.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);
/// Each call to the provider (discovery, keys, the code exchange).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[auth.oidc]]` provider as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OidcOptions {
    /// In the endpoint paths: `[a-z0-9-]`.
    pub id: String,
    /// On the button: "Sign in with <name>".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Absolute: `<origin><prefix>/oidc/<id>/callback`, as registered at the provider.
    pub redirect_url: String,
    /// `openid` first, always.
    pub scopes: Vec<String>,
    /// Signing algorithms accepted for the ID token (never `none` or HMAC).
    pub algorithms: Vec<String>,
    pub claims: ClaimRules,
    /// RP-initiated logout: send the browser to the provider's
    /// `end_session_endpoint` after the local logout.
    pub end_session: bool,
    /// Back-Channel Logout: `POST <p>/oidc/<id>/backchannel-logout` takes
    /// the provider's logout tokens ([`backchannel`]).
    pub backchannel_logout: bool,
    /// Which `amr`/`acr` claims of the ID token count as a second factor.
    pub factor_claims: FactorClaims,
    /// Re-check each session's user at the provider ([`fresh`]).
    pub recheck: Option<Recheck>,
    /// Read claims from the userinfo endpoint too, at sign-in and re-checks.
    pub userinfo: bool,
}

/// `recheck_every` and `if_unreachable`: how often a session's user is asked
/// about again at the provider with its refresh token ([`fresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recheck {
    pub every: Duration,
    /// A provider that cannot be reached keeps the session until the next
    /// check (`"keep"`) or ends it (`"end"`).
    pub keep_if_unreachable: bool,
}

/// `second_factor_amr` and `second_factor_acr`: the ID token claims by which
/// the provider says the user passed more than a password (RFC 8176 names
/// `amr` values such as `mfa`, `otp`, `hwk`). None configured: a sign-in
/// here never counts as a second factor, whatever the token says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FactorClaims {
    pub amr: Vec<String>,
    pub acr: Vec<String>,
}

impl FactorClaims {
    /// Whether `claims` (a verified ID token's) show one of the listed values.
    pub(crate) fn met(&self, claims: &serde_json::Map<String, serde_json::Value>) -> bool {
        let amr = claims.get("amr").and_then(|v| v.as_array());
        let by_amr = amr.is_some_and(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .any(|v| self.amr.iter().any(|w| w == v))
        });
        let acr = claims.get("acr").and_then(|v| v.as_str());
        by_amr || acr.is_some_and(|v| self.acr.iter().any(|w| w == v))
    }
}

/// Why a sign-in failed, for the log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("the provider is unreachable or its discovery document is invalid: {0}")]
    Discovery(String),
    #[error("no valid pre-login cookie (expired, missing, or not ours)")]
    NoPreLogin,
    #[error("the pre-login cookie is for another provider")]
    OtherProvider,
    #[error("state does not match the pre-login cookie")]
    State,
    #[error("the provider answered with an error: {0}")]
    ProviderError(String),
    #[error("no authorization code in the callback")]
    NoCode,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
    #[error("the provider gave no refresh token, which recheck_every needs (Entra ID and others give one only for the offline_access scope)")]
    NoRefreshToken,
    #[error("the userinfo endpoint failed: {0}")]
    UserInfo(String),
    #[error("sign-in refused: {0}")]
    Refused(#[from] claims::Refusal),
}

/// What the provider told us once, until the next reload.
struct Discovered {
    metadata: ProviderMetadataWithLogout,
    /// The keys: replaced when an unknown `kid` makes us fetch them again.
    jwks: ArcSwapOption<CoreJsonWebKeySet>,
}

/// A configured provider, its discovery document and keys once fetched.
pub(crate) struct Provider {
    pub options: OidcOptions,
    http: reqwest::Client,
    discovered: ArcSwapOption<Discovered>,
    /// When discovery last failed, and when keys were last refetched.
    last_discovery_failure: Mutex<Option<Instant>>,
    last_refetch: Mutex<Option<Instant>>,
    /// With `backchannel_logout`: its logout tokens' checks (the provider's
    /// keys, `iss`, this client as `aud`, `exp`), as for a bearer issuer.
    pub(crate) logout_tokens: Option<super::jwt::Issuer>,
    /// The sessions being re-checked by this process now ([`fresh`]): one
    /// re-check per session at a time.
    rechecking: moka::sync::Cache<crate::session::SessionKey, ()>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.options.id)
            .field("issuer", &self.options.issuer)
            .finish_non_exhaustive()
    }
}

/// A finished sign-in: the identity, and the refresh token when one was given
/// (its `Debug` is redacted).
pub(crate) struct SignedIn {
    pub mapped: Mapped,
    pub refresh_token: Option<RefreshToken>,
}

/// Where the browser goes to sign in, and the cookie that remembers it.
pub(crate) struct Started {
    pub location: String,
    pub record: PreLogin,
}

impl Provider {
    /// A provider; nothing is fetched until the first sign-in.
    ///
    /// # Errors
    /// If the HTTP client cannot be built (no TLS roots).
    pub(crate) fn new(options: OidcOptions) -> Result<Provider, String> {
        let http = http_client(HTTP_TIMEOUT)?;
        let logout_tokens = match options.backchannel_logout {
            true => Some(backchannel::verifier(&options)?),
            false => None,
        };
        Ok(Provider {
            logout_tokens,
            options,
            http,
            discovered: ArcSwapOption::empty(),
            last_discovery_failure: Mutex::new(None),
            last_refetch: Mutex::new(None),
            rechecking: fresh::in_flight(),
        })
    }

    /// Begin a sign-in: the provider's authorization URL with a fresh
    /// `state`, `nonce` and PKCE challenge, and the record to keep them.
    ///
    /// # Errors
    /// When discovery fails.
    pub(crate) async fn start(&self, next: &str, now: u64) -> Result<Started, Failure> {
        let d = self.discovered().await?;
        let client = self.client(&d)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.options.scopes.iter().skip(1) {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            location: url.to_string(),
            record: PreLogin {
                provider: self.options.id.clone(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next: next.to_owned(),
                expires: now + prelogin::LIFETIME.as_secs(),
            },
        })
    }

    /// Finish a sign-in: `query` is the callback's query string, `record` the
    /// pre-login cookie's (already opened). The identity, or why not.
    ///
    /// # Errors
    /// Every way a sign-in can fail ([`Failure`]).
    pub(crate) async fn finish(&self, query: &str, record: &PreLogin) -> Result<SignedIn, Failure> {
        if record.provider != self.options.id {
            return Err(Failure::OtherProvider);
        }
        let (mut code, mut state, mut error) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "code" => code = Some(v.into_owned()),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                _ => {}
            }
        }
        let state_ok = state.is_some_and(|s| {
            use subtle::ConstantTimeEq as _;
            bool::from(s.as_bytes().ct_eq(record.state.as_bytes()))
        });
        if !state_ok {
            return Err(Failure::State);
        }
        if let Some(e) = error {
            // Only the registered error code: the description is the provider's prose.
            let e: String = e.chars().take(64).filter(char::is_ascii_graphic).collect();
            return Err(Failure::ProviderError(e));
        }
        let code = code.ok_or(Failure::NoCode)?;
        let d = self.discovered().await?;
        let client = self.client(&d)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Failure::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(record.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| Failure::Exchange(describe(&e)))?;
        use openidconnect::OAuth2TokenResponse as _;
        use openidconnect::TokenResponse as _;
        let id_token = response.id_token().ok_or(Failure::NoIdToken)?;
        let nonce = Nonce::new(record.nonce.clone());
        let mut claims = self.verified_claims(&d, id_token, &nonce).await?;
        if self.options.userinfo {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let info = self
                .userinfo(&d, response.access_token(), sub)
                .await
                .map_err(|e| Failure::UserInfo(e.to_string()))?;
            fresh::merge_userinfo(&mut claims, info);
        }
        let refresh_token = response.refresh_token().cloned();
        if self.options.recheck.is_some() && refresh_token.is_none() {
            return Err(Failure::NoRefreshToken);
        }
        let mut mapped = self.options.claims.map(&claims)?;
        mapped.second_factor = self.options.factor_claims.met(&claims);
        mapped.session = backchannel::provider_session(&self.options.id, &claims);
        mapped.id_token = claims;
        Ok(SignedIn {
            mapped,
            refresh_token,
        })
    }

    /// Every claim of `id_token` once its signature and claims verify (with
    /// the keys fetched again, at most once per [`JWKS_REFETCH_EVERY`], for
    /// an unknown `kid`), `nonce` checking its nonce.
    async fn verified_claims(
        &self,
        d: &Discovered,
        id_token: &CoreIdToken,
        nonce: impl NonceVerifier + Copy,
    ) -> Result<Map<String, Value>, Failure> {
        let jwks = d.jwks.load_full().unwrap_or_default();
        let verified = match id_token.claims(&self.verifier(&jwks), nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // A key the provider rotated in since we fetched them, or a forgery.
                let jwks = self.refetch_keys(d).await?;
                id_token.claims(&self.verifier(&jwks), nonce).map(|_| ())
            }
            other => other.map(|_| ()),
        };
        verified.map_err(|e| Failure::IdToken(e.to_string()))?;
        // The signature and claims are checked: read every claim (groups and
        // the like are not in the crate's standard set) from the same payload.
        payload(&id_token.to_string())
            .ok_or_else(|| Failure::IdToken("the payload is not a JSON object".to_owned()))
    }

    /// The provider's logout URL for a session that signed in here, when
    /// RP-initiated logout is on and the provider has an end-session endpoint.
    /// Discovers the provider first if this process has not yet (the session
    /// may predate a restart); if that fails, `None`: the local logout stands.
    pub(crate) async fn end_session_url(&self, post_logout: &str) -> Option<String> {
        if !self.options.end_session {
            return None;
        }
        let d = match self.discovered().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(target: "auth", provider = %self.options.id, reason = %e, "logout stays local: the provider's end-session endpoint is unknown");
                return None;
            }
        };
        let endpoint = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()?;
        let mut url = endpoint.url().clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.options.client_id)
            .append_pair("post_logout_redirect_uri", post_logout);
        Some(url.to_string())
    }

    /// `logout_redirect` on the origin of the callback: where the provider
    /// sends the browser back after its logout (registered at the provider).
    pub(crate) fn post_logout_url(&self, logout_redirect: &str) -> String {
        match url::Url::parse(&self.options.redirect_url) {
            Ok(mut u) => {
                u.set_path(logout_redirect);
                u.to_string()
            }
            Err(_) => logout_redirect.to_owned(),
        }
    }

    fn client(
        &self,
        d: &Discovered,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        Failure,
    > {
        let redirect = RedirectUrl::new(self.options.redirect_url.clone())
            .map_err(|e| Failure::Discovery(format!("redirect_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.options.client_id.clone()),
            self.options.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The ID token checks: the allow-listed algorithms with the provider's
    /// keys (no client secret: an HMAC token can never verify), the issuer,
    /// this client as audience, `exp` with [`LEEWAY`], and `iat` neither in
    /// the future nor older than [`MAX_TOKEN_AGE`].
    fn verifier<'a>(&self, jwks: &CoreJsonWebKeySet) -> CoreIdTokenVerifier<'a> {
        let algs: Vec<CoreJwsSigningAlgorithm> = self
            .options
            .algorithms
            .iter()
            .filter_map(|a| serde_json::from_value(Value::String(a.clone())).ok())
            .collect();
        let leeway = chrono::Duration::from_std(LEEWAY).expect("small");
        let max_age = chrono::Duration::from_std(MAX_TOKEN_AGE).expect("small");
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.options.client_id.clone()),
            IssuerUrl::new(self.options.issuer.clone()).expect("checked by config"),
            jwks.clone(),
        )
        .set_allowed_algs(algs)
        .set_time_fn(move || chrono::Utc::now() - leeway)
        .set_issue_time_verifier_fn(move |iat| {
            let now = chrono::Utc::now();
            if iat > now + leeway {
                Err("issued in the future".to_owned())
            } else if iat < now - max_age {
                Err("issued too long ago".to_owned())
            } else {
                Ok(())
            }
        })
    }

    /// The discovery document and keys, fetched at the first use.
    async fn discovered(&self) -> Result<Arc<Discovered>, Failure> {
        if let Some(d) = self.discovered.load_full() {
            return Ok(d);
        }
        let recent_failure = self
            .last_discovery_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < DISCOVERY_RETRY);
        if recent_failure {
            return Err(Failure::Discovery(
                "failed moments ago; not retried yet".into(),
            ));
        }
        match self.discover().await {
            Ok(d) => {
                let d = Arc::new(d);
                self.discovered.store(Some(d.clone()));
                Ok(d)
            }
            Err(e) => {
                *self
                    .last_discovery_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<Discovered, Failure> {
        let issuer = IssuerUrl::new(self.options.issuer.clone())
            .map_err(|e| Failure::Discovery(e.to_string()))?;
        // Checks that the document names this issuer.
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| Failure::Discovery(describe(&e)))?;
        let jwks = metadata.jwks().clone();
        Ok(Discovered {
            metadata,
            jwks: ArcSwapOption::from_pointee(jwks),
        })
    }

    /// Fetch the keys again, unless that was done less than
    /// [`JWKS_REFETCH_EVERY`] ago; the keys to verify with either way.
    async fn refetch_keys(&self, d: &Discovered) -> Result<Arc<CoreJsonWebKeySet>, Failure> {
        let current = d.jwks.load_full().unwrap_or_default();
        {
            let mut last = self
                .last_refetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_EVERY) {
                return Ok(current);
            }
            *last = Some(Instant::now());
        }
        let fresh = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| Failure::Discovery(format!("keys: {}", describe(&e))))?;
        let fresh = Arc::new(fresh);
        d.jwks.store(Some(fresh.clone()));
        tracing::info!(target: "auth", provider = %self.options.id, "provider keys fetched again for an unknown key id");
        Ok(fresh)
    }
}

/// The HTTP client for calls to a provider or issuer (discovery, keys, the
/// code exchange), each bounded by `timeout`.
///
/// # Errors
/// If it cannot be built (no TLS roots).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // Following redirects would let a provider point us anywhere (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        // Calls are rare; a pooled connection would be tied to the runtime
        // that opened it, and pingora runs several.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("the HTTP client for the provider: {e}"))
}

/// An error and its causes on one line (the crate's errors nest).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The claims of a compact JWS whose signature has been checked.
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let part = jwt.split('.').nth(1)?;
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_of_a_compact_token_is_read() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIiwiZ3JvdXBzIjpbIngiXX0.c2ln";
        let p = payload(jwt).unwrap();
        assert_eq!(p["sub"], "a");
        assert_eq!(p["groups"][0], "x");
        assert!(
            payload("a.WzFd.c").is_none(),
            "an array is not a claims set"
        );
        assert!(payload("only-one-part").is_none());
    }
}
