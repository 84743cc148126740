//! Test support: the real `sessiongate` binary, a real recording backend and
//! a raw HTTP/1.1 client, all on ephemeral loopback ports, one module per
//! part (as linkerd2-proxy's `app/integration` has `client`, `server`,
//! `proxy`): [`backend`] records what reached it, [`gate`] runs the proxy,
//! [`config`] writes its config, [`client`] sends byte-exact requests,
//! [`redis`] runs a throwaway redis-server, [`ldap`] a throwaway slapd, [`node`] an OpenID provider, [`tls`] a throwaway CA and curl,
//! [`jar`] keeps a browser's cookies, [`process`] runs a child process with its log and hands out ports and
//! scratch directories, [`wait`] polls and loads. Tests import everything
//! with `use crate::support::*;`. No test lives here.
//!
//! Processes are killed on drop; when a test panics, the proxy's output is
//! printed.

mod backend;
mod client;
mod config;
mod gate;
mod http1;
mod jar;
mod ldap;
mod node;
mod process;
mod redis;
mod tls;
mod wait;

pub use backend::*;
pub use client::*;
pub use config::*;
pub use gate::*;
pub use jar::*;
pub use ldap::*;
pub use node::*;
pub use process::*;
pub use redis::*;
pub use tls::*;
pub use wait::*;
