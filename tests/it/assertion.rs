//! The signed identity (`X-User-Assertion`) through the binary, verified as a
//! backend would: with a standard JWT library (jsonwebtoken) against the JWKS
//! sessiongate publishes, and the cases such a verifier must reject.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

use crate::support::*;

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    roles: Vec<String>,
    iat: u64,
    exp: u64,
    sid: String,
}

fn ed25519_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem()
}

fn verify(token: &str, jwks: &JwkSet, audience: &str) -> jsonwebtoken::errors::Result<Claims> {
    let kid = decode_header(token)?.kid.unwrap_or_default();
    let jwk = jwks
        .find(&kid)
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[audience]);
    v.set_issuer(&["sessiongate"]);
    v.leeway = 0;
    Ok(decode::<Claims>(token, &DecodingKey::from_jwk(jwk)?, &v)?.claims)
}

#[test]
fn backends_verify_the_assertion_against_the_jwks_and_reject_bad_ones() {
    let backend = Backend::app();
    let (signing, published) = (ed25519_pem(), ed25519_pem());
    let config = standard_config(
        backend.addr,
        "\n[assertion]\nkeys = [{ file = \"signing.pem\" }, { file = \"published.pem\" }]\nttl = \"2s\"\n",
    )
    .replace("[upstream.app]\n", "[upstream.app]\nassertion_audience = \"app\"\n");
    let gate = Gate::start_with(
        &config,
        &[("signing.pem", &signing), ("published.pem", &published)],
        &[("TEST_SECRET", SECRET)],
    );
    let jwks_resp = gate.get("/.sessiongate/jwks.json").send();
    assert_eq!(jwks_resp.status, 200);
    let jwks: JwkSet = serde_json::from_str(&jwks_resp.body).unwrap();
    assert_eq!(jwks.keys.len(), 2, "both keys published");
    let admin_jwks = gate.admin_anonymous("GET", "/jwks.json").send();
    assert_eq!(admin_jwks.body, jwks_resp.body);

    // An anonymous request carries none, and a client's own never passes.
    gate.get("/public/x")
        .header("X-User-Assertion", "forged")
        .send();
    assert_eq!(backend.last().all("x-user-assertion"), Vec::<&str>::new());

    let alice = gate.login("alice", "user,admin");
    let resp = gate
        .get("/private")
        .cookie(&alice)
        .header("X-User-Assertion", "forged")
        .header("x_user_assertion", "forged")
        .send();
    assert_eq!(resp.status, 200);
    let seen = backend.last();
    let all = seen.all("x-user-assertion");
    assert_eq!(all.len(), 1, "{seen:?}");
    assert!(seen.all("x_user_assertion").is_empty());
    let token = all[0].to_owned();

    let claims = verify(&token, &jwks, "app").expect("verifies against the JWKS");
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str()),
        ("sessiongate", "alice")
    );
    assert_eq!(claims.roles, ["user", "admin"]);
    assert_eq!(claims.exp - claims.iat, 2);
    assert_eq!(claims.sid.len(), 64, "the session's key, not its id");
    assert!(!alice.contains(&claims.sid), "never the raw id");

    // Not signed per request: the next request carries the same assertion.
    gate.get("/private").cookie(&alice).send();
    assert_eq!(backend.last().one("x-user-assertion"), Some(token.as_str()));

    // Another audience.
    let e = verify(&token, &jwks, "other-app").unwrap_err();
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidAudience);

    // A token signed by a key that is not in the JWKS.
    let stranger = jsonwebtoken::EncodingKey::from_ed_pem(ed25519_pem().as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = decode_header(&token).unwrap().kid;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"iss": "sessiongate", "aud": "app", "sub": "mallory", "roles": ["admin"], "iat": now, "exp": now + 30, "sid": "x"}),
        &stranger,
    )
    .unwrap();
    let e = verify(&forged, &jwks, "app").unwrap_err();
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);

    // alg: none, unsigned.
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "kid": header.kid})),
        b64(
            serde_json::json!({"iss": "sessiongate", "aud": "app", "sub": "mallory", "iat": now, "exp": now + 30})
        )
    );
    assert!(
        verify(&none, &jwks, "app").is_err(),
        "alg none must not verify"
    );

    // Expired: once its exp has passed (a 2 s lifetime here).
    let wait = claims.exp + 1 - now.min(claims.exp + 1);
    std::thread::sleep(Duration::from_secs(wait));
    let e = verify(&token, &jwks, "app").unwrap_err();
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    // Meanwhile the gate hands out fresh ones.
    gate.get("/private").cookie(&alice).send();
    let fresh = backend.last().one("x-user-assertion").unwrap().to_owned();
    assert_ne!(fresh, token);
    verify(&fresh, &jwks, "app").expect("a fresh assertion verifies");
}

#[test]
fn an_audience_without_keys_and_a_non_ed25519_key_fail_check() {
    let backend = Backend::app();
    let dir = scratch_dir();
    let p256 = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.join("p256.pem"), p256).unwrap();
    for (extra, want) in [
        (
            "",
            "upstream.app.assertion_audience: \"app\" needs [assertion] keys",
        ),
        (
            "\n[assertion]\nkeys = [{ file = \"p256.pem\" }]\n",
            "assertion.keys[0]: ",
        ),
        (
            "\n[assertion]\nkeys = [{ file = \"p256.pem\" }]\nttl = \"5m\"\n",
            "assertion.ttl: must be 2s to 60s",
        ),
    ] {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n{}",
            standard_config(backend.addr, extra).replace(
                "[upstream.app]\n",
                "[upstream.app]\nassertion_audience = \"app\"\n"
            )
        );
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        let out = sessiongate(&["check"], &dir.join("proxy.toml"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{want}\n{err}");
    }
}
