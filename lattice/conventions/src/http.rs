//! The HTTP errors the HTTP server provider and the application's services both answer with, and
//! the JSON body they answer them in.
//!
//! Status mapping of [`RequestError`] (the services map their own errors the same way):
//! | error | status | code |
//! |---|---|---|
//! | body is not JSON | 400 | `malformed_json` |
//! | JSON of the wrong shape (missing field, wrong type, fraction or overflow in `sum`) | 400 | `wrong_type` |
//! | required query parameter missing | 400 | `missing_parameter` |
//! | body over [`MAX_BODY_BYTES`] | 413 | `body_too_large` |
//! | no such path | 404 | `unknown_path` |
//! | method not served on the path | 405 | `method_not_allowed` |
//! | the body did not arrive in time | 408 | `request_timeout` |
//! | too many requests from one client or with one credential | 429 | `rate_limited` |
//! | the service behind the path could not be reached or did not answer | 503 | `service_unavailable` |
//!
//! The last three, `unknown_path` and `body_too_large` are also answered by the HTTP server
//! provider itself, before any component runs.

/// Every failed request is answered with this body and a 4xx/5xx status (`Error` in the OpenAPI
/// document).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Always false.
    pub status: bool,
    /// Machine-readable code, e.g. `unknown_user`, `invalid_sum`, `malformed_json`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Requests are tiny JSON documents; anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An error the HTTP API answers with: a status, a machine code and (via Display) a message.
pub trait ApiError: std::fmt::Display {
    fn status(&self) -> u16;
    fn code(&self) -> &'static str;

    /// Response headers the status calls for (RFC 9110: a 405 lists the allowed methods).
    fn headers(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    fn to_body(&self) -> ErrorBody {
        ErrorBody {
            status: false,
            error: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

/// Errors in the request itself, before any service logic runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body has the wrong shape: {0}")]
    WrongType(String),
    #[error("query parameter `{0}` is required")]
    MissingParameter(&'static str),
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("no endpoint at {0}")]
    UnknownPath(String),
    #[error("{method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },
    #[error("the request body did not arrive within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("too many requests {from}; retry after {retry_after_s} s")]
    RateLimited {
        from: &'static str,
        retry_after_s: u64,
    },
    #[error("the service behind {0} did not answer; the request may or may not have taken effect: check, or retry (an order retried with the same Idempotency-Key is never placed twice)")]
    ServiceUnavailable(String),
}

impl ApiError for RequestError {
    fn status(&self) -> u16 {
        match self {
            Self::MalformedJson(_) | Self::WrongType(_) | Self::MissingParameter(_) => 400,
            Self::BodyTooLarge => 413,
            Self::UnknownPath(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Timeout { .. } => 408,
            Self::RateLimited { .. } => 429,
            Self::ServiceUnavailable(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::WrongType(_) => "wrong_type",
            Self::MissingParameter(_) => "missing_parameter",
            Self::BodyTooLarge => "body_too_large",
            Self::UnknownPath(_) => "unknown_path",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Timeout { .. } => "request_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::ServiceUnavailable(_) => "service_unavailable",
        }
    }

    fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::MethodNotAllowed { allowed, .. } => vec![("allow", allowed)],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_not_allowed_names_the_allowed_one() {
        let error = RequestError::MethodNotAllowed {
            method: "TRACE".into(),
            allowed: "GET",
        };
        assert_eq!(error.headers(), [("allow", "GET")]);
        assert!(RequestError::BodyTooLarge.headers().is_empty());
    }

    #[test]
    fn the_error_body_carries_status_false_code_and_message() {
        let body = serde_json::to_value(RequestError::MissingParameter("user").to_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "status": false,
                "error": "missing_parameter",
                "message": "query parameter `user` is required",
            })
        );
    }
}
