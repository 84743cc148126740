//! The only cryptography in sessiongate: session ids, secrets, the signed
//! cookie value, and the signed records some flows keep in the browser
//! ([`seal_record`]: the OIDC pre-login, a sign-in waiting for its second factor).
//!
//! A cookie value is `<id>.<sig>` where `id` is 32 bytes from the OS CSPRNG in
//! lower-case hex and `sig = hex(HMAC-SHA256(secret, name "=" id))`.
//! Binding the cookie name into the MAC stops a value minted for one cookie from
//! being replayed under another. Parsing is strict (exact lengths, lower-case hex
//! only) and verification tries every configured secret in constant time, so
//! secrets can be rotated: the first signs, all verify.
//!
//! This module does not know about sessions, the store or cookie headers (that
//! is [`super::cookie`]): a valid signature only says "we minted this id";
//! whether the session is alive is the store's call.
//! Failures are a plain `None`: callers must not be able to tell a client *why*.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of entropy in a session id (256 bits; OWASP asks for at least 64).
pub(crate) const ID_BYTES: usize = 32;
/// Length of the id in lower-case hex.
pub(crate) const ID_HEX_LEN: usize = ID_BYTES * 2;
/// Length of the HMAC-SHA256 tag in lower-case hex.
pub(crate) const SIG_HEX_LEN: usize = 64;
/// Length of a whole cookie value: `<id>.<sig>`.
pub(crate) const VALUE_LEN: usize = ID_HEX_LEN + 1 + SIG_HEX_LEN;
/// Shortest secret accepted: as long as the HMAC output (RFC 2104 §3).
pub(crate) const MIN_SECRET_LEN: usize = 32;

const _: () = assert!(VALUE_LEN == 129);
const _: () = assert!(MIN_SECRET_LEN >= 32);

/// A raw session id. It exists only in the cookie: its `Debug` is redacted so it
/// cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; ID_BYTES]);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the OS has no entropy source: there is no safe way to go on.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_BYTES];
        getrandom::getrandom(&mut id).expect("the OS CSPRNG must be available");
        SessionId(id)
    }

    /// The id's bytes (hashed into the session key; never stored).
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// A secret as loaded from the environment or a file. Redacted in `Debug`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap secret bytes; the caller (config) has checked the length.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret's bytes, for the few places that compare or key with them.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

/// What a good cookie yields.
#[derive(Debug)]
pub struct Verified {
    /// The session id the cookie carries.
    pub id: SessionId,
    /// True when an older secret (not the first) verified it: the caller should
    /// send the cookie again, signed with the current secret.
    pub resign: bool,
}

/// Signs and verifies cookie values for one cookie name.
///
/// Each secret's HMAC state is keyed and fed `name=` once at start-up; verifying
/// clones that state, so the hot path does no key schedule and no allocation.
#[derive(Clone)]
pub struct Signer {
    keyed: Vec<HmacSha256>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer([redacted; {} secrets])", self.keyed.len())
    }
}

impl Signer {
    /// A signer for cookies named `name`. The first secret signs; all verify.
    ///
    /// # Panics
    /// If `secrets` is empty: config validation guarantees at least one.
    pub fn new(name: &str, secrets: &[Secret]) -> Self {
        assert!(!secrets.is_empty(), "at least one secret is required");
        let keyed = secrets
            .iter()
            .map(|s| {
                let mut mac =
                    HmacSha256::new_from_slice(&s.0).expect("HMAC takes keys of any length");
                mac.update(name.as_bytes());
                mac.update(b"=");
                mac
            })
            .collect();
        Signer { keyed }
    }

    /// The cookie value `<id>.<sig>` for `id`, signed with the first secret.
    pub fn sign(&self, id: &SessionId) -> String {
        let mut hex_id = [0u8; ID_HEX_LEN];
        hex::encode_to_slice(id.0, &mut hex_id).expect("buffer is exactly twice the id");
        let mut mac = self.keyed[0].clone();
        mac.update(&hex_id);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(VALUE_LEN);
        out.push_str(std::str::from_utf8(&hex_id).expect("hex is ASCII"));
        out.push('.');
        out.push_str(&hex::encode(tag));
        out
    }

    /// Verify a cookie value. `None` for anything that is not exactly a value this
    /// signer (with any of its secrets) produced for this cookie name.
    pub fn verify(&self, value: &str) -> Option<Verified> {
        let value = value.as_bytes();
        if value.len() != VALUE_LEN || value[ID_HEX_LEN] != b'.' {
            return None;
        }
        let (hex_id, rest) = value.split_at(ID_HEX_LEN);
        let hex_sig = &rest[1..];
        let id: [u8; ID_BYTES] = decode_lower_hex(hex_id)?;
        let sig: [u8; SIG_HEX_LEN / 2] = decode_lower_hex(hex_sig)?;
        // Try every secret, even after a match, so the time taken does not depend
        // on which secret matched. `verify_slice` compares in constant time.
        let mut matched: Option<usize> = None;
        for (i, keyed) in self.keyed.iter().enumerate() {
            let mut mac = keyed.clone();
            mac.update(hex_id);
            if mac.verify_slice(&sig).is_ok() && matched.is_none() {
                matched = Some(i);
            }
        }
        matched.map(|i| Verified {
            id: SessionId(id),
            resign: i != 0,
        })
    }
}

/// A record kept in the browser:
/// `base64url(JSON) "." hex(HMAC-SHA256(secret, label || base64url(JSON)))`,
/// signed with `secret` (the first of the session secrets). `label` keeps each
/// kind of record apart from every other use of the secrets. The browser can
/// read it; it holds nothing secret from the browser that carries it.
pub(crate) fn seal_record<T: Serialize>(label: &[u8], secret: &Secret, record: &T) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(record).expect("plain records"));
    let tag = record_mac(label, secret, &body).finalize().into_bytes();
    format!("{body}.{}", hex::encode(tag))
}

/// The record in `value` if one of `secrets` signed it under `label`; every
/// secret is tried, so the time does not tell which one matched. Values past
/// `max_len` are refused before any work.
pub(crate) fn open_record<T: DeserializeOwned>(
    label: &[u8],
    secrets: &[Secret],
    value: &str,
    max_len: usize,
) -> Option<T> {
    if value.len() > max_len {
        return None;
    }
    let (body, tag) = value.rsplit_once('.')?;
    let tag = hex::decode(tag).ok()?;
    let mut ok = false;
    for s in secrets {
        ok |= record_mac(label, s, body).verify_slice(&tag).is_ok();
    }
    if !ok {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

fn record_mac(label: &[u8], secret: &Secret, body: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(&secret.0).expect("any key length");
    m.update(label);
    m.update(body.as_bytes());
    m
}

/// Decode lower-case hex of exactly `2 * N` characters; upper case is rejected so
/// that every id has one spelling only.
fn decode_lower_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> Secret {
        Secret::new(vec![b; 32])
    }

    fn signer() -> Signer {
        Signer::new("sid", &[secret(1), secret(2)])
    }

    #[test]
    fn signed_value_verifies_with_same_id() {
        let s = signer();
        let id = SessionId::generate();
        let v = s.sign(&id);
        assert_eq!(v.len(), VALUE_LEN);
        let got = s.verify(&v).expect("own cookie verifies");
        assert_eq!(got.id, id);
        assert!(!got.resign);
    }

    #[test]
    fn malformed_values_are_rejected() {
        let s = signer();
        let good = s.sign(&SessionId::generate());
        let flip = |i: usize| {
            let mut b = good.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        };
        let cases: Vec<(&str, String)> = vec![
            ("tampered id", flip(3)),
            ("tampered signature", flip(VALUE_LEN - 1)),
            ("too short", good[..VALUE_LEN - 1].to_string()),
            ("too long", format!("{good}0")),
            ("upper-case hex", good.to_uppercase()),
            ("empty", String::new()),
            (
                "extra dots",
                format!("{}.{}", &good[..ID_HEX_LEN], good.replace('.', "..")),
            ),
            (
                "dot moved",
                format!("{}{}", &good[1..ID_HEX_LEN + 1], &good[ID_HEX_LEN + 1..]) + "0",
            ),
            ("no dot", good.replace('.', "0")),
            ("non-hex", good.replacen(&good[..1], "g", 1)),
            ("whitespace", format!(" {}", &good[1..])),
        ];
        for (what, value) in cases {
            assert!(
                s.verify(&value).is_none(),
                "{what} must not verify: {value:?}"
            );
        }
    }

    #[test]
    fn older_secret_is_accepted_and_asks_for_resigning() {
        let old = Signer::new("sid", &[secret(2)]);
        let id = SessionId::generate();
        let got = signer()
            .verify(&old.sign(&id))
            .expect("older secret verifies");
        assert_eq!(got.id, id);
        assert!(got.resign);
    }

    #[test]
    fn unknown_secret_is_rejected() {
        let other = Signer::new("sid", &[secret(9)]);
        assert!(signer()
            .verify(&other.sign(&SessionId::generate()))
            .is_none());
    }

    #[test]
    fn value_signed_for_another_cookie_name_is_rejected() {
        let other = Signer::new("other", &[secret(1)]);
        assert!(signer()
            .verify(&other.sign(&SessionId::generate()))
            .is_none());
    }

    #[test]
    fn ids_are_distinct_and_debug_is_redacted() {
        let a = SessionId::generate();
        assert_ne!(a, SessionId::generate());
        assert_eq!(format!("{a:?}"), "SessionId([redacted])");
        assert!(!format!("{:?}", secret(b'x')).contains('x'));
    }
}
