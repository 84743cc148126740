//! Small HTTP helpers shared by the auth endpoints, the admin page and the
//! proxy: replies, the same-origin check, safe redirects, HTML pages, and the
//! connection cap and head deadline both listeners sit behind, and the TLS
//! certificates of the client listeners. They know
//! nothing about sessions.

pub mod connections;
pub mod device;
pub mod headers;
pub mod html;
pub mod origin;
pub mod problem;
pub mod redirect;
pub mod reply;
pub mod tls;
