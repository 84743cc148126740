//! Authenticator apps (TOTP, RFC 6238) through `totp-rs`: SHA-1, 6 digits,
//! 30-second steps, the step before and after accepted for clock drift: the
//! parameters every authenticator app supports and the RFC recommends.
//! Which step a code matched is returned, so the caller can refuse a second
//! use of it (RFC 6238 §5.2) on every instance.

use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};

/// Seconds per code.
pub(crate) const STEP: u64 = 30;
const DIGITS: usize = 6;
/// Bytes of a new secret: 160 bits, RFC 4226's recommendation.
pub(crate) const SECRET_LEN: usize = 20;

fn totp(secret: &[u8], issuer: &str, user: &str) -> TOTP {
    // `new_unchecked`: the label's rules (no ':') are the URL's business,
    // handled in `url`; the secret is always SECRET_LEN bytes of ours.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP,
        secret.to_vec(),
        Some(issuer.to_owned()),
        user.to_owned(),
    )
}

/// A new secret from the OS CSPRNG.
pub(crate) fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; SECRET_LEN];
    getrandom::getrandom(&mut s).expect("the OS CSPRNG must be available");
    s
}

/// Whether `code` looks like a TOTP code (6 ASCII digits).
pub(crate) fn looks_like_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The time step (`unix seconds / STEP`) whose code `code` is, among the
/// current one and its neighbours, compared in constant time.
pub(crate) fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    if !looks_like_code(code) {
        return None;
    }
    let t = totp(secret, "", "");
    let current = now / STEP;
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let ok = t.generate(step * STEP).as_bytes().ct_eq(code.as_bytes());
        if bool::from(ok) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The code for `secret` at `now` (the tests' authenticator).
#[cfg(test)]
pub(crate) fn code_at(secret: &[u8], now: u64) -> String {
    totp(secret, "", "").generate(now)
}

/// The `otpauth://` URL an authenticator app reads from the QR code.
/// Google's key-URI format forbids `:` in the issuer and the account name.
pub(crate) fn url(secret: &[u8], issuer: &str, user: &str) -> String {
    let clean = |s: &str| s.replace(':', "_");
    totp(secret, &clean(issuer), &clean(user)).get_url()
}

/// The secret as an authenticator app takes it typed in: base32, no padding.
pub(crate) fn base32(secret: &[u8]) -> String {
    totp(secret, "", "").get_secret_base32()
}

/// `text` as a QR code in SVG, to put inline in a page.
pub(crate) fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        // Too long for a QR code: only with an absurd issuer; the page still
        // shows the secret as text.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_its_neighbours_only() {
        // RFC 6238 appendix B's SHA-1 secret and its 8-digit vector at 59 s
        // (94287082) ends in the 6-digit code 287082.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + STEP), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 2 * STEP), None);
        for bad in ["", "28708", "2870822", "28708a", " 87082"] {
            assert_eq!(matching_step(secret, bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn the_url_carries_the_secret_and_a_clean_label() {
        let secret = [7u8; SECRET_LEN];
        let u = url(&secret, "Example: Inc", "a:b");
        assert!(u.starts_with("otpauth://totp/Example_%20Inc:a_b?"), "{u}");
        assert!(u.contains(&format!("secret={}", base32(&secret))), "{u}");
        assert!(qr_svg(&u).starts_with("<?xml"), "an SVG");
    }
}
