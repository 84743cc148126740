//! The users file of the built-in login, and password hashing.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"   # sessiongate hash-password
//! roles = ["admin"]
//! disabled = false
//! ```
//!
//! Hashes are argon2id PHC strings; bcrypt (`$2b$`, `$2y$`) is accepted so an
//! htpasswd file can be migrated. New hashes use at least OWASP's argon2id
//! parameters (m = 19 MiB, t = 2, p = 1: Password Storage Cheat Sheet).
//! User names are compared in a canonical form (Unicode NFKC, trimmed, lower
//! case) so `Alice`, ` alice ` and `ａｌｉｃｅ` are one account, for login and
//! for throttling alike.
//!
//! This module does not know about sessions or HTTP.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::names;

/// OWASP Password Storage Cheat Sheet, argon2id: m = 19 MiB, t = 2, p = 1.
pub(crate) const ARGON2_M_KIB: u32 = 19 * 1024;
pub(crate) const ARGON2_T: u32 = 2;
pub(crate) const ARGON2_P: u32 = 1;
/// How every hash made with the default parameters begins.
const DEFAULT_PHC_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";
/// Passwords longer than this are refused before hashing (a 1 MB password would
/// cost a hash of 1 MB of input on every attempt).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a users file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The users file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The users file.
        path: String,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The users file is not valid TOML, or not of the expected shape.
    #[error("{path}: {message}")]
    Syntax {
        /// The users file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The users file parses, but some entries are wrong.
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The users file.
        path: String,
        /// One line per problem.
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

/// One account.
#[derive(Clone)]
pub(crate) struct User {
    /// The name as written in the file (what `X-User` carries).
    pub name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    password_hash: String,
}

impl User {
    /// What a verified password is remembered by (`auth::basic`): an HMAC,
    /// under a key only this process knows, of the user's name, their stored
    /// hash and the password. A new password in the users file is a new
    /// stored hash, so nothing remembered for the old one matches it.
    pub(crate) fn proof(&self, key: &[u8; 32], password: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
        for part in [self.name.as_bytes(), self.password_hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Which password a half-finished sign-in was proved with: 16 hex digits
    /// of a hash of the stored hash (the pending second factor carries it, so
    /// a new password in the users file voids a sign-in started with the old).
    pub(crate) fn password_stamp(&self) -> String {
        use sha2::Digest as _;
        let h = sha2::Sha256::new()
            .chain_update(b"sessiongate password stamp v1\0")
            .chain_update(self.password_hash.as_bytes())
            .finalize();
        hex::encode(&h[..8])
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// A loaded users file, keyed by canonical name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Users {
    by_name: HashMap<String, User>,
}

impl Users {
    /// Read and validate a users file.
    ///
    /// # Errors
    /// An unreadable file, a TOML error, or every invalid entry, each named
    /// `user[i].field`.
    pub(crate) fn load(path: &Path) -> Result<Users, Error> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: shown.clone(),
            source,
        })?;
        Users::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => Error::Syntax {
                path: shown,
                message,
            },
            ParseError::Invalid(problems) => Error::Invalid {
                path: shown,
                problems,
            },
        })
    }

    pub(crate) fn parse(text: &str) -> Result<Users, ParseError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let mut problems = Vec::new();
        let mut by_name = HashMap::new();
        for (i, u) in raw.user.into_iter().enumerate() {
            let canonical = canonical_name(&u.name);
            if let Err(rule) = names::check_user(&u.name) {
                problems.push(format!("user[{i}].name: {rule} (got {:?})", u.name));
                continue;
            }
            if canonical.is_empty() {
                problems.push(format!(
                    "user[{i}].name: nothing left once normalised (got {:?})",
                    u.name
                ));
                continue;
            }
            if let Some((j, bad)) = u
                .roles
                .iter()
                .enumerate()
                .find(|(_, r)| names::check_role(r).is_err())
            {
                problems.push(format!(
                    "user[{i}].roles[{j}]: {} (got {bad:?})",
                    names::RULE
                ));
                continue;
            }
            if !is_supported_hash(&u.password_hash) {
                problems.push(format!(
                    "user[{i}].password_hash: not an argon2id PHC string or bcrypt $2b$/$2y$ hash (make one with `sessiongate hash-password`)"
                ));
                continue;
            }
            let user = User {
                name: u.name.trim().to_owned(),
                roles: u.roles,
                disabled: u.disabled,
                password_hash: u.password_hash,
            };
            if by_name.insert(canonical, user).is_some() {
                problems.push(format!("user[{i}].name: {:?} is listed twice (names compare case- and width-insensitively)", u.name));
            }
        }
        if problems.is_empty() {
            Ok(Users { by_name })
        } else {
            Err(ParseError::Invalid(problems))
        }
    }

    /// The account for a name as typed (canonicalised here).
    pub(crate) fn get(&self, typed: &str) -> Option<&User> {
        self.by_name.get(&canonical_name(typed))
    }

    /// Names of accounts whose sessions must end when `next` replaces this
    /// file: removed, disabled or renamed; or with a new password (a stolen
    /// session must not outlive a reset) or other roles (no stale privileges).
    pub(crate) fn revoked_in(&self, next: &Users) -> Vec<String> {
        self.by_name
            .iter()
            .filter(|(_, u)| !u.disabled)
            .filter(|(k, u)| {
                next.by_name.get(*k).is_none_or(|n| {
                    n.disabled
                        || n.name != u.name
                        || n.password_hash != u.password_hash
                        || n.roles != u.roles
                })
            })
            .map(|(_, u)| u.name.clone())
            .collect()
    }
}

pub(crate) enum ParseError {
    Syntax(String),
    Invalid(Vec<String>),
}

/// The form names are compared in: Unicode NFKC, surrounding whitespace
/// removed, lower case.
pub(crate) fn canonical_name(typed: &str) -> String {
    typed.nfkc().collect::<String>().trim().to_lowercase()
}

fn is_supported_hash(h: &str) -> bool {
    if h.starts_with("$2b$") || h.starts_with("$2y$") {
        return h.len() == 60;
    }
    PasswordHash::new(h).is_ok_and(|p| p.algorithm.as_str() == "argon2id")
}

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password with argon2id at OWASP's parameters and a random salt.
///
/// # Errors
/// Only if the OS random source fails.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2().hash_password(password, &salt)?.to_string())
}

/// Whether `password` matches `hash`. Slow on purpose; run it off the async
/// workers. The hash's own parameters are used, so old hashes keep working.
fn verify_hash(hash: &str, password: &[u8]) -> bool {
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password with the default parameters: unknown and
/// disabled users are checked against it so every failure costs the same time.
pub(crate) fn dummy_hash() -> String {
    let mut pw = [0u8; 32];
    getrandom::getrandom(&mut pw).expect("the OS CSPRNG must be available");
    hash_password(&pw).expect("hashing a random password")
}

/// Check a login. Unknown and disabled users verify against `dummy` so the
/// caller cannot tell them from a wrong password by time.
pub(crate) fn check<'u>(
    users: &'u Users,
    dummy: &str,
    typed_name: &str,
    password: &[u8],
) -> Option<&'u User> {
    match users.get(typed_name) {
        Some(u) if !u.disabled => {
            if verify_hash(&u.password_hash, password) {
                return Some(u);
            }
            // A migrated hash (bcrypt, other argon2 parameters) takes a different
            // time than the dummy: add the dummy's cost, so a failure for this
            // user takes at least as long as one for an unknown user.
            if !u.password_hash.starts_with(DEFAULT_PHC_PREFIX) {
                let _ = verify_hash(dummy, password);
            }
            None
        }
        _ => {
            let _ = verify_hash(dummy, password);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_for_one_user_one_stored_hash_and_one_key() {
        let user = |name: &str, hash: &str| User {
            name: name.into(),
            roles: Vec::new(),
            disabled: false,
            password_hash: hash.into(),
        };
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let alice = user("alice", "$argon2id$one");
        let proof = alice.proof(&k1, "pw");
        assert_eq!(proof, alice.proof(&k1, "pw"));
        assert_ne!(proof, alice.proof(&k1, "pw2"), "another password");
        assert_ne!(proof, alice.proof(&k2, "pw"), "another process");
        assert_ne!(
            proof,
            user("alice", "$argon2id$two").proof(&k1, "pw"),
            "a new hash"
        );
        assert_ne!(
            proof,
            user("bob", "$argon2id$one").proof(&k1, "pw"),
            "another user"
        );
        // Lengths are framed: moving bytes between name and hash changes it.
        assert_ne!(
            user("ab", "c").proof(&k1, "pw"),
            user("a", "bc").proof(&k1, "pw")
        );
    }

    fn file(users: &[(&str, &str, bool)]) -> String {
        users
            .iter()
            .map(|(n, h, d)| format!("[[user]]\nname = \"{n}\"\npassword_hash = '{h}'\nroles = [\"r\"]\ndisabled = {d}\n"))
            .collect()
    }

    #[test]
    fn hash_has_owasp_parameters_and_verifies() {
        let h = hash_password(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_hash(&h, b"correct horse"));
        assert!(!verify_hash(&h, b"wrong"));
        assert_ne!(h, hash_password(b"correct horse").unwrap(), "salted");
    }

    #[test]
    fn bcrypt_hashes_from_htpasswd_verify() {
        let h = bcrypt::hash("secret", 4).unwrap();
        let users = Users::parse(&file(&[("bob", &h.replacen("$2b$", "$2y$", 1), false)]))
            .ok()
            .unwrap();
        let dummy = dummy_hash();
        assert_eq!(
            check(&users, &dummy, "bob", b"secret").map(|u| u.name.as_str()),
            Some("bob")
        );
        assert!(check(&users, &dummy, "bob", b"nope").is_none());
    }

    #[test]
    fn names_are_canonical_and_disabled_users_fail() {
        let h = hash_password(b"pw").unwrap();
        let users = Users::parse(&file(&[("Alice", &h, false), ("carol", &h, true)]))
            .ok()
            .unwrap();
        let dummy = dummy_hash();
        for typed in ["alice", " ALICE ", "ａｌｉｃｅ"] {
            assert_eq!(
                check(&users, &dummy, typed, b"pw").map(|u| u.name.as_str()),
                Some("Alice"),
                "{typed:?}"
            );
        }
        assert!(check(&users, &dummy, "carol", b"pw").is_none());
        assert!(check(&users, &dummy, "nobody", b"pw").is_none());
    }

    #[test]
    fn invalid_files_name_each_entry() {
        let h = hash_password(b"pw").unwrap();
        let text = file(&[
            ("a", &h, false),
            ("A", &h, false),
            ("b", "plaintext", false),
            ("", &h, false),
        ]);
        let Err(ParseError::Invalid(p)) = Users::parse(&text) else {
            panic!("must fail")
        };
        assert!(
            p[0].starts_with("user[1].name: \"A\" is listed twice"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("user[2].password_hash: not an argon2id"),
            "{p:?}"
        );
        assert!(p[2].starts_with("user[3].name: must be"), "{p:?}");
        let comma = format!("[[user]]\nname = \"c\"\npassword_hash = '{h}'\nroles = [\"a,b\"]\n");
        let Err(ParseError::Invalid(p)) = Users::parse(&comma) else {
            panic!("a role with a comma must fail")
        };
        assert!(
            p[0].starts_with("user[0].roles[0]: must be") && p[0].ends_with("(got \"a,b\")"),
            "{p:?}"
        );
        // A name with a comma would reach a backend as a list identity.
        let listed = format!("[[user]]\nname = \"root, alice\"\npassword_hash = '{h}'\n");
        let Err(ParseError::Invalid(p)) = Users::parse(&listed) else {
            panic!("a name with a comma must fail")
        };
        assert!(p[0].starts_with("user[0].name: must be"), "{p:?}");
        assert!(matches!(
            Users::parse("[[user]]\nname = 1\n"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn revoked_lists_removed_and_newly_disabled_users() {
        let h = hash_password(b"pw").unwrap();
        let before = Users::parse(&file(&[
            ("a", &h, false),
            ("b", &h, false),
            ("c", &h, false),
            ("d", &h, true),
        ]))
        .ok()
        .unwrap();
        let after = Users::parse(&file(&[
            ("a", &h, false),
            ("c", &h, true),
            ("d", &h, false),
        ]))
        .ok()
        .unwrap();
        let mut revoked = before.revoked_in(&after);
        revoked.sort();
        assert_eq!(revoked, vec!["b", "c"]);
        let other = hash_password(b"other").unwrap();
        let reset = Users::parse(&file(&[
            ("a", &other, false),
            ("b", &h, false),
            ("c", &h, false),
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            before.revoked_in(&reset),
            vec!["a"],
            "a password reset ends the sessions"
        );
    }
}
