//! The key set and the refusals that need no issuer.

use super::*;
use std::collections::BTreeMap;

fn options(algorithms: Vec<Algorithm>) -> JwtOptions {
    JwtOptions {
        id: "t".into(),
        issuer: "https://idp.test".into(),
        jwks_url: Some("http://127.0.0.1:9/keys".into()),
        audiences: vec!["api".into()],
        algorithms,
        claims: ClaimRules {
            user_claim: "sub".into(),
            roles_claim: Some("scope".into()),
            roles_map: BTreeMap::new(),
            allowed_email_domains: Vec::new(),
            allowed_groups: Vec::new(),
        },
    }
}

#[test]
fn symmetric_and_encryption_keys_are_never_loaded() {
    let jwk = |v: Value| serde_json::from_value::<Jwk>(v).unwrap();
    let oct = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}));
    assert!(usable(&oct).is_none());
    let enc = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "enc"}));
    assert!(usable(&enc).is_none());
    let sig = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "e", "alg": "EdDSA"}));
    let k = usable(&sig).unwrap();
    assert_eq!(
        (k.kid.as_deref(), k.alg),
        (Some("e"), Some(Algorithm::EdDSA))
    );
}

#[test]
fn a_key_is_found_by_kid_and_its_own_algorithm() {
    let key = |kid: Option<&str>, alg| Key {
        kid: kid.map(str::to_owned),
        alg,
        key: DecodingKey::from_ed_components("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap(),
    };
    let header = |kid: Option<&str>, alg| {
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = kid.map(str::to_owned);
        h
    };
    let keys = [key(Some("a"), Some(Algorithm::EdDSA)), key(Some("b"), None)];
    assert!(find(&keys, &header(Some("a"), Algorithm::EdDSA)).is_some());
    assert!(find(&keys, &header(Some("a"), Algorithm::RS256)).is_none());
    assert!(find(&keys, &header(Some("b"), Algorithm::RS256)).is_some());
    assert!(find(&keys, &header(Some("c"), Algorithm::EdDSA)).is_none());
    assert!(find(&keys, &header(None, Algorithm::EdDSA)).is_none());
    let only = [key(None, None)];
    assert!(find(&only, &header(None, Algorithm::EdDSA)).is_some());
}

#[tokio::test]
async fn tokens_are_refused_before_any_key_is_fetched_for_what_they_say() {
    let bearer = Bearer::new(&[options(vec![Algorithm::RS256])], &[]).unwrap();
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let token = |h: Value, p: Value| format!("{}.{}.c2ln", b64(h), b64(p));
    let ok_claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "a"});
    for (why, t) in [
        (
            "none",
            token(serde_json::json!({"alg": "none"}), ok_claims.clone()),
        ),
        (
            "hmac",
            token(serde_json::json!({"alg": "HS256"}), ok_claims.clone()),
        ),
        (
            "not allowed",
            token(serde_json::json!({"alg": "ES256"}), ok_claims.clone()),
        ),
        (
            "other issuer",
            token(
                serde_json::json!({"alg": "RS256"}),
                serde_json::json!({"iss": "https://evil.test", "aud": "api"}),
            ),
        ),
        ("garbage", "not-a-token".to_owned()),
        ("too long", "a".repeat(MAX_TOKEN_LEN + 1)),
    ] {
        assert_eq!(
            bearer.check(&t).await.unwrap_err(),
            BearerRefusal::Invalid,
            "{why}"
        );
    }
    // A trusted issuer whose keys cannot be fetched: 503, not 401.
    let t = token(serde_json::json!({"alg": "RS256", "kid": "k"}), ok_claims);
    assert_eq!(
        bearer.check(&t).await.unwrap_err(),
        BearerRefusal::KeysUnavailable
    );
}
