//! The value of an express-session cookie (`connect.sid`): `s:<id>.<sig>`,
//! URL-encoded, where `sig` is standard base64 without padding of
//! HMAC-SHA256 over the id, keyed with one of the app's secrets (the
//! `cookie-signature` package: `sign`, `unsign`). The first secret signs; each
//! is tried in turn. The app's secrets only verify here: sessiongate never
//! signs with them.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::session::signing::Secret;

/// A cookie value longer than this is not express-session's (its ids are
/// 32 characters; a signed value is under 100).
const MAX_VALUE_LEN: usize = 1024;
/// The ids looked up: base64url (uid-safe's alphabet, express-session's
/// default `genid`), 16 to 128 characters. Anything else is anonymous before
/// any lookup, so no id can carry a pattern, a path or a separator.
const ID_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// Why a cookie value is not a session id of the app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsigned {
    /// Not `s:<id>.<sig>`, or no secret made `sig`.
    BadSignature,
    /// Signed, but not an id of the strict pattern.
    BadId,
}

/// The session id `raw` (the cookie's value as sent) carries, when one of
/// `secrets` signed it. Every secret is tried, each in constant time.
pub(crate) fn unsign(raw: &str, secrets: &[Secret]) -> Result<String, Unsigned> {
    if raw.len() > MAX_VALUE_LEN {
        return Err(Unsigned::BadSignature);
    }
    // The `cookie` package decodes a value with decodeURIComponent.
    let value = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Unsigned::BadSignature)?;
    let signed = value.strip_prefix("s:").ok_or(Unsigned::BadSignature)?;
    let (id, sig) = signed.rsplit_once('.').ok_or(Unsigned::BadSignature)?;
    // Strict: canonical base64 of 32 bytes, as the app wrote it.
    let sig = STANDARD_NO_PAD
        .decode(sig)
        .map_err(|_| Unsigned::BadSignature)?;
    let mut matched = false;
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        // No early exit: the time does not say which secret matched.
        matched |= mac.verify_slice(&sig).is_ok();
    }
    if !matched {
        return Err(Unsigned::BadSignature);
    }
    let well_formed = ID_LEN.contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Unsigned::BadId);
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cookie-signature`'s `sign`, as the app computes it.
    fn sign(id: &str, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(id.as_bytes());
        let sig = STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
        // As the browser sends it: `s%3A…`, with `/` and `+` encoded too.
        let value = format!("s:{id}.{sig}");
        percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
    }

    fn secrets(s: &[&str]) -> Vec<Secret> {
        s.iter()
            .map(|s| Secret::new(s.as_bytes().to_vec()))
            .collect()
    }

    const ID: &str = "Xq3k9fZx_w-1aBcDeFgHiJkLmNoPqRsT";

    #[test]
    fn a_value_signed_with_any_of_the_secrets_gives_its_id() {
        let all = secrets(&["new secret", "keyboard cat"]);
        assert_eq!(unsign(&sign(ID, "keyboard cat"), &all).as_deref(), Ok(ID));
        assert_eq!(unsign(&sign(ID, "new secret"), &all).as_deref(), Ok(ID));
        // Unencoded, as some clients send it.
        let plain = percent_encoding::percent_decode_str(&sign(ID, "new secret"))
            .decode_utf8()
            .unwrap()
            .into_owned();
        assert_eq!(unsign(&plain, &all).as_deref(), Ok(ID));
    }

    #[test]
    fn anything_else_is_refused() {
        let all = secrets(&["keyboard cat"]);
        let good = sign(ID, "keyboard cat");
        let retired = sign(ID, "retired secret");
        let unsigned = ID.to_string();
        let tampered = good.replacen("Xq3k", "Yq3k", 1);
        let long = "a".repeat(2000);
        for bad in [
            retired.as_str(),
            unsigned.as_str(),
            tampered.as_str(),
            "",
            "s:",
            "s:.",
            &long,
            "s%3Aabc",
            "s:abc.%FF",
        ] {
            assert_eq!(unsign(bad, &all), Err(Unsigned::BadSignature), "{bad:?}");
        }
        // A signature cut short, or with padding, is not the app's.
        let padded = format!("{good}%3D");
        assert_eq!(unsign(&padded, &all), Err(Unsigned::BadSignature));
        // Signed, but not an id one may look up.
        for id in [
            "short",
            "has*star-and-more-chars-0123456789",
            "../../etc/passwd-0123456789",
        ] {
            assert_eq!(
                unsign(&sign(id, "keyboard cat"), &all),
                Err(Unsigned::BadId),
                "{id:?}"
            );
        }
    }
}
