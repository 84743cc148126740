//! What scripts and services send, and the credential store's file: the
//! `Authorization` header, an API key, a JWT's unverified issuer, the
//! credentials file and what the second factor reads (a typed code, a sealed
//! secret, a pending sign-in cookie) never panic; an API key accepted is
//! exactly of the key format, a recovery code is 30 hex digits (or 20, one
//! made before codes grew to 120 bits).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sessiongate::fuzzing::authorization(data);
    let _ = sessiongate::fuzzing::credentials_file(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sessiongate::fuzzing::jwt_issuer(text);
    if let Some(code) = sessiongate::fuzzing::second_factor(text) {
        let long_enough = code.len() == 30 || code.len() == 20;
        assert!(long_enough && code.bytes().all(|b| b.is_ascii_hexdigit()), "{text:?}");
    }
    if let Some((id, secret)) = sessiongate::fuzzing::api_key(text) {
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(id.len() == 16 && hex(id), "{text:?}");
        assert!(secret.len() == 64 && hex(secret), "{text:?}");
        assert_eq!(text, format!("sgk_{id}_{secret}"));
    }
});
