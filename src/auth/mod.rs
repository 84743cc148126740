//! Who the user is: the built-in endpoints under the auth prefix (login,
//! logout, me, check, a user's own sessions), the users file (read again
//! at every config reload, `server::reload`), and login throttling.
//!
//! It builds replies ([`crate::http::reply::Reply`]); the proxy writes them.
//! It reaches sessions only through the session manager.

pub mod endpoints;
pub mod names;
pub mod oidc;
pub mod own_sessions;
pub mod throttle;
pub mod users;
