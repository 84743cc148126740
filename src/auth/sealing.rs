//! Secrets at rest, sealed with ChaCha20-Poly1305 (ring's AEAD, already in
//! the build through rustls): TOTP secrets under `[auth.second_factor] keys`,
//! a provider's refresh tokens under keys derived from the session secrets.
//! The first key seals and every one opens, so the keys rotate like the
//! cookie secrets: add a new key first, and a value sealed with an older one
//! is sealed again with the new one at its next successful use. Each
//! [`Purpose`] derives its own keys, so a value sealed for one never opens as
//! another even where the secrets are the same.
//!
//! Sealed form: `v1.<key id>.<base64url(nonce || ciphertext || tag)>`, where
//! the key id is 8 hex digits of a hash of the key (it says which key to try,
//! and nothing about the key). The associated data binds a sealed secret to
//! its user and purpose, so a record copied to another user does not open.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::{Digest, Sha256};

use crate::session::signing::Secret;

/// What a sealer's keys are for: labels that keep the derived keys apart
/// from every other use of the same bytes, and the longest sealed value.
pub(crate) struct Purpose {
    key_label: &'static [u8],
    id_label: &'static [u8],
    /// A sealed value longer than this is not ours.
    max_sealed_len: usize,
}

/// TOTP secrets (a 20-byte secret seals to ~90 bytes).
pub(crate) const SECOND_FACTOR: Purpose = Purpose {
    key_label: b"sessiongate second factor key v1\0",
    id_label: b"sessiongate second factor key id v1\0",
    max_sealed_len: 1024,
};

/// A provider's refresh tokens (`auth::oidc::fresh`): opaque strings or JWTs
/// of a few kilobytes (Entra ID's reach 2-3 KB), refused past 8 KB.
pub(crate) const REFRESH_TOKEN: Purpose = Purpose {
    key_label: b"sessiongate refresh token key v1\0",
    id_label: b"sessiongate refresh token key id v1\0",
    max_sealed_len: 11 * 1024,
};

/// The keys, derived once at start-up.
pub(crate) struct Sealer {
    keys: Vec<(String, LessSafeKey)>,
    max_sealed_len: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer([redacted; {} keys])", self.keys.len())
    }
}

/// What [`Sealer::open`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    pub plain: Vec<u8>,
    /// Sealed with a key other than the first: seal it again.
    pub stale: bool,
}

impl Sealer {
    /// # Panics
    /// If `secrets` is empty: config validation requires at least one.
    pub(crate) fn new(secrets: &[Secret], purpose: &Purpose) -> Sealer {
        assert!(!secrets.is_empty(), "at least one key");
        let keys = secrets
            .iter()
            .map(|s| {
                let key: [u8; 32] = Sha256::new()
                    .chain_update(purpose.key_label)
                    .chain_update(s.expose())
                    .finalize()
                    .into();
                let id = Sha256::new()
                    .chain_update(purpose.id_label)
                    .chain_update(s.expose())
                    .finalize();
                let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key");
                (hex::encode(&id[..4]), LessSafeKey::new(unbound))
            })
            .collect();
        Sealer {
            keys,
            max_sealed_len: purpose.max_sealed_len,
        }
    }

    /// `plain` sealed with the first key, bound to `context`.
    pub(crate) fn seal(&self, plain: &[u8], context: &str) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        // Random nonces: far below the 2^32 messages a random 96-bit nonce
        // allows per key (a secret is sealed at its enrolment, a refresh
        // token at each re-check; keys rotate with the secrets).
        getrandom::getrandom(&mut nonce).expect("the OS CSPRNG must be available");
        let mut buf = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )
        .expect("a short message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// What `sealed` holds, if one of the keys sealed it for `context`.
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Option<Opened> {
        if sealed.len() > self.max_sealed_len {
            return None;
        }
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let at = self.keys.iter().position(|(k, _)| k == id)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self.keys[at]
            .1
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .ok()?;
        Some(Opened {
            plain: plain.to_vec(),
            stale: at != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_for_their_context_only_and_keys_rotate() {
        let (old, new) = (Secret::new(vec![1; 32]), Secret::new(vec![2; 32]));
        let sealer = Sealer::new(std::slice::from_ref(&old), &SECOND_FACTOR);
        let sealed = sealer.seal(b"secret", "totp\0alice");
        assert!(!sealed.contains("secret"));
        let opened = sealer.open(&sealed, "totp\0alice").unwrap();
        assert_eq!(opened.plain, b"secret");
        assert!(!opened.stale);
        assert_eq!(sealer.open(&sealed, "totp\0bob"), None, "another user");
        // Rotation: the new key first, the old one still opens, and says so.
        let rotated = Sealer::new(&[new.clone(), old.clone()], &SECOND_FACTOR);
        assert!(rotated.open(&sealed, "totp\0alice").unwrap().stale);
        assert_eq!(
            Sealer::new(&[new], &SECOND_FACTOR).open(&sealed, "totp\0alice"),
            None
        );
        // Another purpose's keys, from the same secret, do not open it.
        let refresh = Sealer::new(std::slice::from_ref(&old), &REFRESH_TOKEN);
        assert_eq!(refresh.open(&sealed, "totp\0alice"), None);
        // Anything changed or malformed is refused, never a panic.
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            "",
            "v1",
            "v1..",
            "v2.00000000.AAAA",
            &sealed[..sealed.len() - 4],
        ] {
            assert_eq!(sealer.open(bad, "totp\0alice"), None, "{bad:?}");
        }
    }
}
