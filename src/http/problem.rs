//! The one JSON error body every listener answers with: `{"error": "<what>"}`,
//! one wording per status, no detail (no upstream address, no reason a cookie
//! failed, no store error). Each body is a `&'static str`: the request path
//! never formats one.

/// What went wrong, as a client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// 400: a request sessiongate cannot read or forward faithfully.
    BadRequest,
    /// 401: no live session where one is needed.
    Unauthenticated,
    /// 401 on the admin listener: no valid admin token.
    Unauthorized,
    /// 401: a session, but the route asks for a (recent) second factor.
    SecondFactor,
    /// 403: logged in, but not allowed here.
    Forbidden,
    /// 403: a state-changing request from another origin (CSRF).
    CrossOrigin,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 421: a host this gate serves no rules for.
    Misdirected,
    /// 413: a login form past its size limit.
    FormTooLarge,
    /// 429: too many failed passwords from this client or for this user.
    TooManyRequests,
    /// 500.
    Internal,
    /// 502: the upstream refused or broke the connection.
    BadGateway,
    /// 503: the session store (or the login's password hashing) cannot answer now.
    Unavailable,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
    /// Any other 4xx/5xx, with its status.
    Other(u16),
}

impl Problem {
    /// The problem for an error status, in the one wording for it.
    pub(crate) fn of_status(status: u16) -> Problem {
        match status {
            400 => Problem::BadRequest,
            401 => Problem::Unauthenticated,
            403 => Problem::Forbidden,
            404 => Problem::NotFound,
            405 => Problem::MethodNotAllowed,
            421 => Problem::Misdirected,
            413 => Problem::FormTooLarge,
            429 => Problem::TooManyRequests,
            500 => Problem::Internal,
            502 => Problem::BadGateway,
            503 => Problem::Unavailable,
            504 => Problem::GatewayTimeout,
            other => Problem::Other(other),
        }
    }

    /// The HTTP status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Problem::BadRequest => 400,
            Problem::Unauthenticated | Problem::Unauthorized | Problem::SecondFactor => 401,
            Problem::Forbidden | Problem::CrossOrigin => 403,
            Problem::NotFound => 404,
            Problem::MethodNotAllowed => 405,
            Problem::Misdirected => 421,
            Problem::FormTooLarge => 413,
            Problem::TooManyRequests => 429,
            Problem::Internal => 500,
            Problem::BadGateway => 502,
            Problem::Unavailable => 503,
            Problem::GatewayTimeout => 504,
            Problem::Other(status) => status,
        }
    }

    /// The JSON body.
    /// The body with the request's id: `{"error":"…","request_id":"…"}`.
    /// The id is from `proxy::request_id`, whose alphabet needs no escaping.
    pub(crate) fn body_with_id(self, id: &str) -> String {
        with_request_id(self.body(), id)
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Problem::BadRequest => r#"{"error":"bad request"}"#,
            Problem::Unauthenticated => r#"{"error":"unauthenticated"}"#,
            Problem::Unauthorized => r#"{"error":"unauthorized"}"#,
            Problem::SecondFactor => r#"{"error":"second factor required"}"#,
            Problem::Forbidden => r#"{"error":"forbidden"}"#,
            Problem::CrossOrigin => r#"{"error":"cross-origin request"}"#,
            Problem::NotFound => r#"{"error":"not found"}"#,
            Problem::MethodNotAllowed => r#"{"error":"method not allowed"}"#,
            Problem::Misdirected => r#"{"error":"misdirected request"}"#,
            Problem::FormTooLarge => r#"{"error":"form too large"}"#,
            Problem::TooManyRequests => r#"{"error":"too many requests"}"#,
            Problem::Internal => r#"{"error":"internal error"}"#,
            Problem::BadGateway => r#"{"error":"bad gateway"}"#,
            Problem::Unavailable => r#"{"error":"service unavailable"}"#,
            Problem::GatewayTimeout => r#"{"error":"gateway timeout"}"#,
            Problem::Other(_) => r#"{"error":"error"}"#,
        }
    }
}

/// A JSON object body `{…}` with `"request_id"` added as its last member;
/// any other body as it is.
pub(crate) fn with_request_id(body: &str, id: &str) -> String {
    match body.strip_suffix('}') {
        Some(open) if body.starts_with('{') => {
            let sep = if open.len() > 1 { "," } else { "" };
            format!("{open}{sep}\"request_id\":\"{id}\"}}")
        }
        _ => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_is_json_and_statuses_round_trip() {
        for status in [400, 401, 403, 404, 405, 413, 500, 502, 503, 504, 418] {
            let p = Problem::of_status(status);
            assert_eq!(p.status(), status);
            let v: serde_json::Value = serde_json::from_str(p.body()).unwrap();
            assert!(v["error"].is_string(), "{status}");
        }
        assert_eq!(Problem::CrossOrigin.status(), 403);
        assert_eq!(Problem::Unauthorized.status(), 401);
    }
}
