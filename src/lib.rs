//! sessiongate: an authenticating reverse proxy on pingora.
//!
//! It sits in front of an existing web application, owns sessions and access
//! rules, and hands the application a trusted `X-User` header. A request goes
//! through:
//!
//! ```text
//! client ──► request_filter
//!              1. normalise the path (one canonical form for the rule AND the upstream)   proxy/path
//!              2. session cookie → verify HMAC (constant time, every secret) → load     session/{cookie,signing,manager}
//!              3. route rule for path + method → allow | 302 login | 401 | 403 | 404     proxy/routes
//!        ──► upstream_peer            the route's upstream, round robin, explicit timeouts  proxy/upstream
//!        ──► upstream_request_filter  strip client identity headers in every spelling,  proxy/identity
//!                                     drop the session cookie, set X-User, X-User-Roles,
//!                                     X-Forwarded-For/-Proto/-Host, one Content-Length  proxy/framing
//!        ──► backend
//! client ◄── response_filter          a 101 only if asked for; apply and remove the     proxy/{framing,commands}
//!                                     backend's X-Session-* commands, drop its
//!                                     Set-Cookie for our cookie, add ours
//!        ◄── logging                  one access event
//! ```
//!
//! Bad client input is an outcome, not an error: a missing, malformed, tampered,
//! unknown or expired cookie means "anonymous". Only proxy faults are errors.
//!
//! The code is in folders by layer; dependencies point one way:
//! `server` → `config` → `proxy`, `admin` → `auth` → `session` → `http`,
//! `metrics`. See the README's layout section for one line per file.

//!
//! # The public contract
//!
//! Every module is private. What is public is the list of `pub use` below:
//! what `main.rs` needs (the config, the server, the password hasher, the
//! health check) and what the benchmarks drive directly (the session layer of
//! the request path). Everything else is `pub(crate)` or narrower, which the
//! `unreachable_pub` lint in `Cargo.toml` keeps so.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod auth;
mod config;
mod http;
mod metrics;
mod proxy;
mod server;
mod session;

// What `main.rs` needs: the config, the server, the password hasher. At the
// root there is no module to spell an error with, so the contract names them
// for their module: `ConfigError` is `config::Error`.
pub use crate::admin::healthcheck;
pub use crate::auth::users::{hash_password, Error as UsersError, MAX_PASSWORD_LEN};
pub use crate::auth::Error as AuthError;
pub use crate::config::{Config, Error as ConfigError, ParseError as ConfigParseError};
pub use crate::server::{build, init_logging, Built, Error as ServerError};
// What the benchmarks drive directly: the session layer of the request path,
// and the types its signatures name.
pub use crate::session::cookie::find as cookie_values;
pub use crate::session::cookie::{CookieAttrs, SameSite, Secure};
pub use crate::session::manager::{Client, RequestSession, SessionManager, SessionOptions};
pub use crate::session::signing::{Secret, SessionId, Signer, Verified};
pub use crate::session::{
    now_ms, MemoryOptions, MemoryStore, Session, SessionCount, SessionKey, SessionStore,
    StoreError, StoreStats,
};

/// The parsers the fuzz targets in `fuzz/` drive (feature `fuzzing` only):
/// not an API, and not built otherwise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod fuzzing {
    pub use crate::auth::names::{check_role, check_user};
    pub use crate::http::redirect::safe_next;
    pub use crate::proxy::commands::{take_commands, Command, Commands};
    pub use crate::proxy::path::{normalize, Refusal};
    pub use crate::session::cookie::find as cookie_values;

    /// Whether a users file parses (it must never panic, whatever the bytes).
    pub fn users_file(text: &str) -> bool {
        crate::auth::users::Users::parse(text).is_ok()
    }

    /// Whether an `Authorization` value reads as a credential.
    pub fn authorization(value: &[u8]) -> bool {
        let Ok(value) = http::HeaderValue::from_bytes(value) else {
            return false;
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        crate::http::authorization::of(&headers).is_some()
    }

    /// The id and secret of a well-formed API key.
    pub fn api_key(token: &str) -> Option<(&str, &str)> {
        crate::auth::api_keys::split(token)
    }

    /// The `iss` a JWT names, before its signature is checked.
    pub fn jwt_issuer(token: &str) -> Option<String> {
        crate::auth::jwt::unverified_issuer(token)
    }

    /// Whether a credentials file parses.
    pub fn credentials_file(bytes: &[u8]) -> bool {
        crate::session::credentials::file::parse(bytes).is_ok()
    }

    /// What the second factor reads from a client: a typed code (a TOTP
    /// code or a recovery code), a sealed secret from an enrolment form, a
    /// pending sign-in cookie. Returns the normalised recovery code, if any.
    pub fn second_factor(text: &str) -> Option<String> {
        use crate::auth::factor::{pending::Pending, recovery, totp};
        use crate::auth::sealing::{Sealer, SECOND_FACTOR};
        use crate::session::signing::Secret;
        let secret = [7u8; totp::SECRET_LEN];
        let _ = totp::matching_step(&secret, text, 1_700_000_000);
        let key = Secret::new(vec![1; 32]);
        let _ = Sealer::new(std::slice::from_ref(&key), &SECOND_FACTOR).open(text, "totp\0alice");
        let _ = Pending::open(text, std::slice::from_ref(&key), 0);
        recovery::normalise(text)
    }
}
