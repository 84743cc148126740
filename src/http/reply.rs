//! The answers sessiongate writes itself (pages, JSON, redirects), as plain
//! values: the auth endpoints and the admin page build them; the proxy writes
//! them to the client.

use http::{header, HeaderName, StatusCode};

use super::problem::Problem;

/// A response built here, written by the proxy (which adds the session cookie).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn html(status: StatusCode, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    pub(crate) fn json(status: StatusCode, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// The JSON error body for `problem`, with its status.
    pub(crate) fn problem(problem: Problem) -> Reply {
        Reply {
            status: StatusCode::from_u16(problem.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: "application/json",
            headers: Vec::new(),
            body: problem.body().as_bytes().to_vec(),
        }
    }

    pub(crate) fn see_other(location: &str) -> Reply {
        Reply {
            status: StatusCode::SEE_OTHER,
            content_type: "text/plain; charset=utf-8",
            headers: vec![(header::LOCATION, location.to_owned())],
            body: Vec::new(),
        }
    }

    /// The same reply with one more header.
    pub(crate) fn with(mut self, name: HeaderName, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// Headers every built-in page carries: never cached, never framed, no scripts.
pub(crate) const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("Referrer-Policy", "same-origin"),
];
