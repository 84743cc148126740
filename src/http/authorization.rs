//! The client's `Authorization` header, parsed once: Basic credentials
//! (RFC 7617), a bearer token (RFC 6750), another scheme, or malformed.
//!
//! The scheme is case-insensitive (RFC 9110 §11.1). Basic's user-pass is
//! UTF-8 (the charset our challenge names) with the user before the first
//! `:`; the password may hold more. A value over [`MAX_LEN`], or a header
//! given twice, is malformed: no credential is taken from it.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::HeaderMap;

/// Longest `Authorization` value read. Basic credentials for the users file
/// are far shorter (names are short, passwords at most 1 KiB); a JWT with
/// many claims fits.
pub(crate) const MAX_LEN: usize = 8 * 1024;

/// Standard base64 (RFC 4648 §4) with or without padding: browsers send it
/// padded, hand-made `curl -H` headers sometimes not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a request's `Authorization` header presents.
#[derive(PartialEq, Eq)]
pub(crate) enum Authorization {
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
    /// Another scheme: not ours to read.
    Other,
    /// Unreadable, too long, or more than one header.
    Malformed,
}

// Never print a password or a token.
impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authorization::Basic { .. } => "Basic",
            Authorization::Bearer(_) => "Bearer",
            Authorization::Other => "Other",
            Authorization::Malformed => "Malformed",
        })
    }
}

/// The request's `Authorization`, or `None` when it has none.
pub(crate) fn of(headers: &HeaderMap) -> Option<Authorization> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = all.next()?;
    if all.next().is_some() || value.len() > MAX_LEN {
        return Some(Authorization::Malformed);
    }
    let Ok(value) = value.to_str() else {
        return Some(Authorization::Malformed);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    Some(if scheme.eq_ignore_ascii_case("basic") {
        basic(rest).unwrap_or(Authorization::Malformed)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        match rest {
            "" => Authorization::Malformed,
            token => Authorization::Bearer(token.to_owned()),
        }
    } else {
        Authorization::Other
    })
}

fn basic(encoded: &str) -> Option<Authorization> {
    let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Authorization::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Option<Authorization> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        of(&h)
    }

    fn basic(user: &str, password: &str) -> Option<Authorization> {
        Some(Authorization::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn basic_credentials_padded_or_not_any_case() {
        // "admin:s3cr3t"
        assert_eq!(parse(&["Basic YWRtaW46czNjcjN0"]), basic("admin", "s3cr3t"));
        assert_eq!(
            parse(&["basic  YWRtaW46czNjcjN0 "]),
            basic("admin", "s3cr3t")
        );
        // "a:b:c": the password keeps its colons; ":" is an empty user and password.
        assert_eq!(parse(&["Basic YTpiOmM="]), basic("a", "b:c"));
        assert_eq!(parse(&["Basic Og=="]), basic("", ""));
        assert_eq!(parse(&["Basic Og"]), basic("", ""));
        // "é:ü" in UTF-8
        assert_eq!(parse(&["Basic w6k6w7w="]), basic("é", "ü"));
    }

    #[test]
    fn unreadable_basic_is_malformed() {
        for bad in [
            "Basic YQ",   // "a": no colon
            "Basic !!!!", // not base64
            "Basic",      // nothing
            "Basic /w==", // 0xff: not UTF-8
        ] {
            assert_eq!(parse(&[bad]), Some(Authorization::Malformed), "{bad}");
        }
        let long = format!("Basic {}", "A".repeat(MAX_LEN));
        assert_eq!(parse(&[&long]), Some(Authorization::Malformed));
        assert_eq!(
            parse(&["Basic Og==", "Basic Og=="]),
            Some(Authorization::Malformed),
            "two headers"
        );
    }

    #[test]
    fn bearer_other_and_none() {
        assert_eq!(
            parse(&["Bearer  abc "]),
            Some(Authorization::Bearer("abc".into()))
        );
        assert_eq!(parse(&["Bearer"]), Some(Authorization::Malformed));
        assert_eq!(parse(&["Digest username=x"]), Some(Authorization::Other));
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let a = basic("alice", "hunter2").unwrap();
        assert_eq!(format!("{a:?}"), "Basic");
    }
}
