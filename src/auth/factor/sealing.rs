//! TOTP secrets at rest: sealed with ChaCha20-Poly1305 (ring's AEAD, already
//! in the build through rustls) under `[auth.second_factor] keys`, the first
//! of which seals and every one of which opens, so the keys rotate like the
//! cookie secrets: add a new key first, and a record sealed with an older one
//! is sealed again with the new one at its next successful use.
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

/// Keeps the derived keys apart from every other use of the same bytes.
const KEY_LABEL: &[u8] = b"sessiongate second factor key v1\0";
const ID_LABEL: &[u8] = b"sessiongate second factor key id v1\0";
/// A sealed value longer than this is not ours (a 20-byte secret seals to ~90).
const MAX_SEALED_LEN: usize = 1024;

/// The keys, derived once at start-up.
pub(crate) struct Sealer {
    keys: Vec<(String, LessSafeKey)>,
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
    pub(crate) fn new(secrets: &[Secret]) -> Sealer {
        assert!(!secrets.is_empty(), "at least one key");
        let keys = secrets
            .iter()
            .map(|s| {
                let key: [u8; 32] = Sha256::new()
                    .chain_update(KEY_LABEL)
                    .chain_update(s.expose())
                    .finalize()
                    .into();
                let id = Sha256::new()
                    .chain_update(ID_LABEL)
                    .chain_update(s.expose())
                    .finalize();
                let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key");
                (hex::encode(&id[..4]), LessSafeKey::new(unbound))
            })
            .collect();
        Sealer { keys }
    }

    /// `plain` sealed with the first key, bound to `context`.
    pub(crate) fn seal(&self, plain: &[u8], context: &str) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        // Random nonces: a user's secret is sealed a handful of times in its
        // life, far below the 2^32 messages a random 96-bit nonce allows.
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
        if sealed.len() > MAX_SEALED_LEN {
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
        let sealer = Sealer::new(std::slice::from_ref(&old));
        let sealed = sealer.seal(b"secret", "totp\0alice");
        assert!(!sealed.contains("secret"));
        let opened = sealer.open(&sealed, "totp\0alice").unwrap();
        assert_eq!(opened.plain, b"secret");
        assert!(!opened.stale);
        assert_eq!(sealer.open(&sealed, "totp\0bob"), None, "another user");
        // Rotation: the new key first, the old one still opens, and says so.
        let rotated = Sealer::new(&[new.clone(), old]);
        assert!(rotated.open(&sealed, "totp\0alice").unwrap().stale);
        assert_eq!(Sealer::new(&[new]).open(&sealed, "totp\0alice"), None);
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
