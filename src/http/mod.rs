//! Small HTTP helpers shared by the auth endpoints, the admin page and the
//! proxy: replies, the same-origin check, safe redirects, HTML pages, and the
//! connection cap and head deadline both listeners sit behind, and the TLS
//! certificates of the client listeners. They know
//! nothing about sessions.

pub(crate) mod authorization;
pub(crate) mod connections;
pub(crate) mod device;
pub(crate) mod headers;
pub(crate) mod html;
pub(crate) mod origin;
pub(crate) mod problem;
pub(crate) mod redirect;
pub(crate) mod reply;
pub(crate) mod tls;
