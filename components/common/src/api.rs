//! The HTTP API's shared shapes: errors every service can answer with, the JSON error body, and
//! decoding of request bodies and query strings.
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

use serde::de::DeserializeOwned;

use crate::domain::InvalidValue;
use crate::proto::ErrorResponse;

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

    fn to_body(&self) -> ErrorResponse {
        ErrorResponse {
            status: false,
            error: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

/// 422 for values that parse as JSON but are not valid domain values.
impl ApiError for InvalidValue {
    fn status(&self) -> u16 {
        422
    }

    fn code(&self) -> &'static str {
        match self.field() {
            "user" => "invalid_user",
            "sum" => "invalid_sum",
            "after" => "invalid_cursor",
            "limit" => "invalid_limit",
            _ => "invalid_order_id",
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

/// Decodes a JSON request body, telling broken JSON apart from JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::BodyTooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RequestError::MalformedJson(e.to_string()))?;
    // serde would also fill a struct from a JSON array by position; our bodies are objects only.
    if !value.is_object() {
        return Err(RequestError::WrongType(
            "the body must be a JSON object".into(),
        ));
    }
    T::deserialize(value).map_err(|e| RequestError::WrongType(e.to_string()))
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space); `None` when the
/// parameter is absent. Undecodable escapes are kept literally rather than refused.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(raw: &str) -> String {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let escaped = (first == b'%')
            .then(|| tail.get(..2))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (first, escaped) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                rest = &tail[2..];
            }
            (b'+', _) => {
                bytes.push(b' ');
                rest = tail;
            }
            _ => {
                bytes.push(first);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::DepositCashRequest;

    #[test]
    fn broken_json_is_malformed() {
        for body in [&b""[..], b"{", b"{\"user\": }", b"not json"] {
            let error = parse_json::<DepositCashRequest>(body).unwrap_err();
            assert_eq!(error.code(), "malformed_json", "{body:?}");
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn json_of_the_wrong_shape_is_a_wrong_type() {
        for body in [
            &br#"{"user":"Pavel"}"#[..],
            br#"{"user":"Pavel","sum":"100"}"#,
            br#"{"user":"Pavel","sum":10.5}"#,
            br#"{"user":"Pavel","sum":1e30}"#,
            br#"{"user":"Pavel","sum":99999999999999999999}"#,
            br#"{"user":42,"sum":1}"#,
            br#"[1,2]"#,
        ] {
            let error = parse_json::<DepositCashRequest>(body).unwrap_err();
            assert_eq!(
                error.code(),
                "wrong_type",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_json::<DepositCashRequest>(&body),
            Err(RequestError::BodyTooLarge)
        );
    }

    #[test]
    fn a_well_formed_body_parses_and_extra_fields_are_ignored() {
        let request: DepositCashRequest =
            parse_json(br#"{"user":"Pavel","sum":100,"comment":"x"}"#).unwrap();
        assert_eq!((request.user.as_str(), request.sum), ("Pavel", 100));
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let query = "x=1&user=%D0%9F%D0%B0%D0%B2%D0%B5%D0%BB+I&y=2";
        assert_eq!(query_param(query, "user").as_deref(), Some("Павел I"));
        assert_eq!(query_param(query, "absent"), None);
        assert_eq!(query_param("user", "user").as_deref(), Some(""));
        assert_eq!(query_param("user=100%", "user").as_deref(), Some("100%"));
    }

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
        let body = RequestError::MissingParameter("user").to_body();
        assert!(!body.status);
        assert_eq!(body.error, "missing_parameter");
        assert_eq!(body.message, "query parameter `user` is required");
    }
}
