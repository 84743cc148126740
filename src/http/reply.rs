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

    /// On to `location` after a sign-in: a local path is a `303`; another
    /// host is [`Reply::onward_page`]. A redirect would not do: the chain may
    /// have begun with one of our forms, and browsers hold every step of it
    /// to the page's CSP `form-action 'self'`, so a cross-origin 303 is blocked.
    pub(crate) fn onward(location: &str) -> Reply {
        if location.starts_with('/') {
            return Reply::see_other(location);
        }
        Reply::onward_page(location, "Signed in")
    }

    /// A page that goes on to `location` by itself (`<meta
    /// http-equiv="refresh">`, and a link): a navigation of its own, which
    /// starts a new chain. `heading` says what is happening.
    pub(crate) fn onward_page(location: &str, heading: &str) -> Reply {
        let (to, heading) = (super::html::escape(location), super::html::escape(heading));
        Reply::html(
            StatusCode::OK,
            super::html::page(
                &heading,
                &format!(
                    r#"<meta http-equiv="refresh" content="0;url={to}"><h1>{heading}</h1><p><a class="button" href="{to}">Continue</a></p>"#
                ),
            ),
        )
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
