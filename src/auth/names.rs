//! One alphabet for every identity sessiongate hands a backend: user names and
//! roles, whatever their source (the users file, a backend's `X-Session-Login`
//! and `X-Session-Roles`, and any later one such as SSO claims) go through
//! [`check_user`] and [`check_role`].
//!
//! They travel in `X-User` and, joined with `,`, in `X-User-Roles`. Many
//! backends split those headers on commas, so a name with a comma would read
//! as a list (`root, alice` → `root`); a control character could end a header
//! or a log line. So (ASVS 5.0 1.2.1, 4.2.4): not empty, at most
//! [`MAX_LEN`] bytes, no `,`, no control characters (C0, DEL, C1) and no
//! Unicode line or paragraph separator, and no space at either end.

/// Longest user name or role, in bytes.
pub(crate) const MAX_LEN: usize = 256;

/// What the alphabet asks, as a config error or a log line says it.
pub(crate) const RULE: &str =
    "must be 1-256 bytes without `,`, control characters or surrounding spaces";

/// Whether `name` may be a user name.
///
/// # Errors
/// [`RULE`], when it may not.
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub fn check_user(name: &str) -> Result<(), &'static str> {
    check(name)
}

/// Whether `role` may be a role.
///
/// # Errors
/// [`RULE`], when it may not.
#[allow(unreachable_pub)] // pub for the fuzz targets (lib.rs `fuzzing`)
pub fn check_role(role: &str) -> Result<(), &'static str> {
    check(role)
}

fn check(s: &str) -> Result<(), &'static str> {
    let bad_char = |c: char| c == ',' || c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if s.is_empty() || s.len() > MAX_LEN || s.trim() != s || s.chars().any(bad_char) {
        return Err(RULE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_refuses_lists_controls_and_padding() {
        for good in [
            "alice",
            "Ålice Smith",
            "ops-admin",
            "a.b@example.com",
            &"x".repeat(256),
        ] {
            assert_eq!(check_user(good), Ok(()), "{good:?}");
            assert_eq!(check_role(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "root, alice",
            "root,alice",
            " alice",
            "alice ",
            "al\tice",
            "al\nice",
            "al\u{7f}ice",
            "al\u{85}ice",
            "al\u{2028}ice",
            &"x".repeat(257),
        ] {
            assert_eq!(check_user(bad), Err(RULE), "{bad:?}");
            assert_eq!(check_role(bad), Err(RULE), "{bad:?}");
        }
    }
}
