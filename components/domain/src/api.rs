//! The HTTP API's decoding of request bodies and query strings, and the status of an invalid
//! domain value. The errors and the error body are the lattice's ([`orders_conventions::http`]):
//! the HTTP server provider answers some of them itself, before any component runs.

pub use orders_conventions::http::{ApiError, RequestError, MAX_BODY_BYTES};
use serde::de::DeserializeOwned;

use crate::domain::InvalidValue;

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
            "refund_id" => "invalid_refund_id",
            _ => "invalid_order_id",
        }
    }
}

/// A client's `Idempotency-Key` header: 1 to 255 visible ASCII characters. A request repeated
/// under the same key is answered as the first was, and changes nothing a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// An `Idempotency-Key` that is empty, too long or not visible ASCII (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {max} visible ASCII characters", max = IdempotencyKey::MAX_LEN)]
pub struct MalformedIdempotencyKey;

impl ApiError for MalformedIdempotencyKey {
    fn status(&self) -> u16 {
        400
    }

    fn code(&self) -> &'static str {
        "invalid_idempotency_key"
    }
}

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, MalformedIdempotencyKey> {
        let valid =
            (1..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        valid
            .then(|| Self(raw.to_string()))
            .ok_or(MalformedIdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    use orders_wire::proto::DepositCashRequest;

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
}
