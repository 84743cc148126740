//! The black-box tests: one integration-test crate with a module per area, so
//! the harness (`support`) compiles once. Every test runs the real
//! `sessiongate` binary on ephemeral loopback ports in front of a real
//! recording backend, and talks to it with real clients.
//!
//! `SESSIONGATE_TEST_STORE=redis` runs them all against a Redis store of
//! their own (`support::Gate`).

// A test crate has no public API: `pub` in its modules is for the test
// modules beside them, which `unreachable_pub` (Cargo.toml [lints]) would flag.
#![allow(unreachable_pub)]

mod access;
mod admin;
mod api_keys;
mod assertion;
mod backchannel;
mod basic;
mod bearer;
mod browser;
mod check;
mod cluster;
mod connections;
mod cross_domain;
mod factor;
mod forward_auth;
mod framing;
mod freshness;
mod hosts;
mod http2;
mod identity;
mod import;
mod ldap;
mod lifecycle;
mod login;
mod logs;
mod networks;
mod oidc;
mod redis;
mod reload;
mod request_id;
mod sentinel;
mod server;
mod sessions;
mod support;
mod tls;
mod upgrade;
mod upstreams;
