//! Recovery codes: ten single-use codes shown once at enrolment, for the day
//! the authenticator is lost. Each is 80 random bits written as four groups
//! of five hex digits (`3f9a1-0c2d4-...`); stored as its SHA-256 only. 80
//! bits cannot be searched from a leaked hash, so a slow hash would protect
//! nothing more (the same reasoning as API keys, `session::credentials`).

use sha2::{Digest, Sha256};

/// Codes made at a time.
pub(crate) const COUNT: usize = 10;
const BYTES: usize = 10;

/// `COUNT` new codes, as shown to the user.
pub(crate) fn new_codes() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut b = [0u8; BYTES];
            getrandom::getrandom(&mut b).expect("the OS CSPRNG must be available");
            let h = hex::encode(b);
            format!("{}-{}-{}-{}", &h[..5], &h[5..10], &h[10..15], &h[15..])
        })
        .collect()
}

/// What a typed code is, whatever its case, dashes or spaces: 20 hex digits.
pub(crate) fn normalise(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == BYTES * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// The stored form of a code (normalised first).
pub(crate) fn hash(normalised: &str) -> String {
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_typed_loosely() {
        let codes = new_codes();
        assert_eq!(codes.len(), COUNT);
        let mut seen = codes.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), COUNT);
        let c = &codes[0];
        assert_eq!(c.len(), 23);
        let n = normalise(c).unwrap();
        assert_eq!(
            normalise(&c.to_uppercase().replace('-', " ")),
            Some(n.clone())
        );
        assert_eq!(hash(&n).len(), 64);
        for bad in ["", "123456", &c[..22], "zzzzz-zzzzz-zzzzz-zzzzz"] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }
}
