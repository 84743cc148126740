//! Recovery codes: ten single-use codes shown once at enrolment, for the day
//! the authenticator is lost. Each is 120 random bits written as six groups
//! of five hex digits (`3f9a1-0c2d4-...`); stored as its SHA-256 only. OWASP
//! ASVS 5.0 (6.5.2) allows a plain hash from 112 bits up, since such a secret
//! cannot be searched from a leaked hash; below that it asks for a salted
//! password hash. Codes made before the change are 80 bits (four groups) and
//! still work until they are used or renewed.

use sha2::{Digest, Sha256};

/// Codes made at a time.
pub(crate) const COUNT: usize = 10;
const BYTES: usize = 15;
/// The length of the 80-bit codes made before [`BYTES`] grew.
const OLD_BYTES: usize = 10;

/// `COUNT` new codes, as shown to the user.
pub(crate) fn new_codes() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut b = [0u8; BYTES];
            getrandom::getrandom(&mut b).expect("the OS CSPRNG must be available");
            let h = hex::encode(b);
            let groups: Vec<&str> = (0..h.len()).step_by(5).map(|i| &h[i..i + 5]).collect();
            groups.join("-")
        })
        .collect()
}

/// What a typed code is, whatever its case, dashes or spaces: 30 hex digits
/// (or 20, a code made before they grew).
pub(crate) fn normalise(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let long_enough = s.len() == BYTES * 2 || s.len() == OLD_BYTES * 2;
    (long_enough && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
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
        assert_eq!(c.len(), 35);
        let n = normalise(c).unwrap();
        assert_eq!(
            normalise(&c.to_uppercase().replace('-', " ")),
            Some(n.clone())
        );
        assert_eq!(hash(&n).len(), 64);
        // An 80-bit code of before still reads.
        assert!(normalise("3f9a1-0c2d4-99aab-01234").is_some());
        for bad in ["", "123456", &c[..34], &c[..22], "zzzzz-zzzzz-zzzzz-zzzzz"] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }
}
