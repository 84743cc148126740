//! sessiongate: an authenticating reverse proxy on pingora.
//!
//! It sits in front of an existing web application, owns sessions and access
//! rules, and hands the application a trusted `X-User` header. A request goes
//! through:
//!
//! ```text
//! client ──► request_filter
//!              1. normalise the path (one canonical form for the rule AND the upstream)   routes
//!              2. session cookie → verify HMAC (constant time, every secret) → load     cookie, session
//!              3. route rule for path + method → allow | 302 login | 401 | 403 | 404     routes
//!        ──► upstream_peer            the route's upstream, round robin, explicit timeouts
//!        ──► upstream_request_filter  strip client identity headers in every spelling,  identity
//!                                     drop the session cookie, set X-User, X-User-Roles,
//!                                     X-Forwarded-For/-Proto/-Host
//!        ──► backend
//! client ◄── response_filter          apply and remove the backend's X-Session-* commands, identity
//!                                     drop its Set-Cookie for our cookie, add ours
//!        ◄── logging                  one access event
//! ```
//!
//! Bad client input is an outcome, not an error: a missing, malformed, tampered,
//! unknown or expired cookie means "anonymous". Only proxy faults are errors.
//!
//! Modules, one noun each: [`config`] (proxy.toml → validated `Config`),
//! [`cookie`] (the only crypto), [`session`] (sessions and the store trait),
//! [`memory_store`] (the embedded store), [`redis_store`] (the shared store) and
//! [`redis_tracking`] (its invalidation connection),
//! [`lifecycle`] (a session across one request: create, resave, rolling, login,
//! logout), [`routes`] (path normalisation and rules), [`identity`] (identity
//! headers and backend session commands), [`login`] (the built-in endpoints),
//! [`users`] (the users file and password hashes), [`throttle`] (login
//! throttling), [`redirect`] (safe `next` targets), [`proxy`] (the pingora
//! glue), [`server`] (wiring the services together).

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod cookie;
pub mod html;
pub mod identity;
pub mod lifecycle;
pub mod login;
pub mod memory_store;
pub mod metrics;
pub mod own_sessions;
pub mod proxy;
pub mod redirect;
pub mod redis_store;
pub mod redis_tracking;
pub mod routes;
pub mod server;
pub mod session;
pub mod throttle;
pub mod users;
