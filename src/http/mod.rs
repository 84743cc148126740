//! Small HTTP helpers shared by the auth endpoints, the admin page and the
//! proxy: replies, the same-origin check, safe redirects, HTML pages. They know
//! nothing about sessions.

pub mod headers;
pub mod html;
pub mod origin;
pub mod problem;
pub mod redirect;
pub mod reply;
