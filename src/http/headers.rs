//! The names of the headers sessiongate sets for a backend (or, on `check`,
//! for a front proxy to copy). Written once, so the proxy and the auth
//! endpoints cannot spell one differently.

/// The logged-in user.
pub const X_USER: &str = "X-User";
/// The user's roles, joined with `,`.
pub const X_USER_ROLES: &str = "X-User-Roles";
/// The session's data as compact JSON.
pub const X_SESSION_DATA: &str = "X-Session-Data";
/// The client address chain (RFC 7239's de-facto predecessor).
pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
/// `http` or `https`, as the client reached us.
pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
/// The `Host` the client sent.
pub const X_FORWARDED_HOST: &str = "X-Forwarded-Host";
