//! The only cryptography in sessiongate: session ids, the signed cookie value, and
//! the `Set-Cookie` strings that carry it.
//!
//! A cookie value is `<id>.<sig>` where `id` is 32 bytes from the OS CSPRNG in
//! lower-case hex and `sig = hex(HMAC-SHA256(secret, name "=" id))` (DESIGN.md §2).
//! Binding the cookie name into the MAC stops a value minted for one cookie from
//! being replayed under another. Parsing is strict (exact lengths, lower-case hex
//! only) and verification tries every configured secret in constant time, so
//! secrets can be rotated: the first signs, all verify.
//!
//! This module does not know about sessions or the store: a valid signature only
//! says "we minted this id"; whether the session is alive is `session`'s call.
//! Failures are a plain `None`: callers must not be able to tell a client *why*.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of entropy in a session id (256 bits; OWASP asks for at least 64).
pub const ID_BYTES: usize = 32;
/// Length of the id in lower-case hex.
pub const ID_HEX_LEN: usize = ID_BYTES * 2;
/// Length of the HMAC-SHA256 tag in lower-case hex.
pub const SIG_HEX_LEN: usize = 64;
/// Length of a whole cookie value: `<id>.<sig>`.
pub const VALUE_LEN: usize = ID_HEX_LEN + 1 + SIG_HEX_LEN;
/// Shortest secret accepted: as long as the HMAC output (RFC 2104 §3).
pub const MIN_SECRET_LEN: usize = 32;

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

    /// Number of bytes in the secret (never the bytes themselves).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

/// Find the value of cookie `name` in a `Cookie` header value (RFC 6265 §5.4:
/// `name=value` pairs separated by `; `). Returns every match, in order, so the
/// caller can skip a tossed duplicate that does not verify.
pub fn find<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Remove every `name=…` pair from a `Cookie` header value; `None` when nothing
/// else is left. Other cookies pass through byte for byte.
pub fn strip(header: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(header.len());
    for pair in header.split(';') {
        let trimmed = pair.trim();
        let is_ours = trimmed.split_once('=').is_some_and(|(k, _)| k == name);
        if is_ours || trimmed.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(trimmed);
    }
    (!out.is_empty()).then_some(out)
}

/// The `SameSite` attribute (RFC 6265bis §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// When the cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    Always,
    Never,
    /// Only when the request came over HTTPS (as told by a trusted proxy).
    Auto,
}

/// Everything that goes into `Set-Cookie` besides the value.
#[derive(Debug, Clone)]
pub struct CookieAttrs {
    pub name: String,
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: Secure,
    pub same_site: SameSite,
    /// `Max-Age` for a persistent cookie; `None` for a browser-session cookie.
    pub max_age: Option<Duration>,
}

impl CookieAttrs {
    /// `Set-Cookie` for a new or refreshed session cookie; `https` says whether
    /// the request came over HTTPS (it matters for [`Secure::Auto`]).
    pub fn set_cookie(&self, value: &str, https: bool) -> String {
        let mut out = format!("{}={}", self.name, value);
        if let Some(age) = self.max_age {
            let secs = age.as_secs();
            let expires = std::time::SystemTime::now() + Duration::from_secs(secs);
            out.push_str(&format!("; Max-Age={secs}; Expires={}", httpdate(expires)));
        }
        self.push_common(&mut out, https);
        out
    }

    /// `Set-Cookie` that makes the browser forget the cookie: same name, path,
    /// domain, secure and samesite as when it was set, or the browser keeps it.
    pub fn clear_cookie(&self, https: bool) -> String {
        let mut out = format!(
            "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            self.name
        );
        self.push_common(&mut out, https);
        out
    }

    fn push_common(&self, out: &mut String, https: bool) {
        out.push_str("; Path=");
        out.push_str(&self.path);
        if let Some(domain) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        let secure = match self.secure {
            Secure::Always => true,
            Secure::Never => false,
            Secure::Auto => https,
        };
        if secure {
            out.push_str("; Secure");
        }
        out.push_str("; SameSite=");
        out.push_str(self.same_site.as_str());
    }
}

/// An IMF-fixdate of a unix time in milliseconds (the admin page shows times so).
pub fn httpdate_ms(ms: u64) -> String {
    httpdate(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// An IMF-fixdate (RFC 9110 §5.6.7) for the `Expires` attribute.
fn httpdate(t: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
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

    #[test]
    fn find_and_strip_cookie_pairs() {
        let h = "a=1; sid=xyz;b=2 ; sid=second";
        assert_eq!(find(h, "sid").collect::<Vec<_>>(), vec!["xyz", "second"]);
        assert_eq!(find(h, "si").count(), 0);
        assert_eq!(strip(h, "sid").as_deref(), Some("a=1; b=2"));
        assert_eq!(strip("sid=1", "sid"), None);
        assert_eq!(
            strip("xsid=1; sidx=2", "sid").as_deref(),
            Some("xsid=1; sidx=2")
        );
    }

    #[test]
    fn set_and_clear_cookie_carry_the_same_scope() {
        let attrs = CookieAttrs {
            name: "sid".into(),
            path: "/app".into(),
            domain: Some("example.com".into()),
            http_only: true,
            secure: Secure::Always,
            same_site: SameSite::Strict,
            max_age: Some(Duration::from_secs(60)),
        };
        let set = attrs.set_cookie("v", false);
        assert!(set.starts_with("sid=v; Max-Age=60; Expires="), "{set}");
        assert!(set.ends_with("; Path=/app; Domain=example.com; HttpOnly; Secure; SameSite=Strict"));
        let clear = attrs.clear_cookie(false);
        assert!(clear.starts_with("sid=; Max-Age=0; "), "{clear}");
        assert!(
            clear.ends_with("; Path=/app; Domain=example.com; HttpOnly; Secure; SameSite=Strict")
        );
        let session_cookie = CookieAttrs {
            max_age: None,
            ..attrs.clone()
        }
        .set_cookie("v", false);
        assert!(!session_cookie.contains("Max-Age") && !session_cookie.contains("Expires"));
        let auto = CookieAttrs {
            secure: Secure::Auto,
            ..attrs
        };
        assert!(auto.set_cookie("v", true).contains("; Secure"));
        assert!(!auto.set_cookie("v", false).contains("; Secure"));
        assert!(!auto.clear_cookie(false).contains("; Secure"));
    }

    #[test]
    fn httpdate_formats_known_instants() {
        let t = |s| std::time::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(httpdate(t(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(httpdate(t(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(httpdate(t(1_709_164_800)), "Thu, 29 Feb 2024 00:00:00 GMT");
    }
}
