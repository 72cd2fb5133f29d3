//! Domain newtypes: parse, don't validate. A value of these types is valid by construction.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::api::IdempotencyKey;

/// Why an input value was refused (HTTP 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("user must not be empty")]
    EmptyUserName,
    #[error("user must be at most {max} characters", max = UserName::MAX_CHARS)]
    UserNameTooLong,
    #[error("user must not contain control characters")]
    UserNameHasControlCharacters,
    #[error("sum must be a whole number greater than 0")]
    SumNotPositive,
    #[error("sum must be at most {max}", max = Amount::MAX)]
    SumTooLarge,
    #[error("order id must be 1 to 64 letters, digits or dashes")]
    MalformedOrderId,
    #[error("refund id must be 32 lowercase hex digits")]
    MalformedRefundId,
    #[error("after must be the next_after of a page you were given (a whole number)")]
    MalformedCursor,
    #[error("limit must be a whole number from 1 to {max}", max = PageRequest::MAX_LIMIT)]
    LimitOutOfRange,
}

impl InvalidValue {
    /// The field the value was given for, for machine-readable error codes.
    pub fn field(&self) -> &'static str {
        match self {
            Self::EmptyUserName | Self::UserNameTooLong | Self::UserNameHasControlCharacters => {
                "user"
            }
            Self::SumNotPositive | Self::SumTooLarge => "sum",
            Self::MalformedOrderId => "order_id",
            Self::MalformedRefundId => "refund_id",
            Self::MalformedCursor => "after",
            Self::LimitOutOfRange => "limit",
        }
    }
}

/// A user's name: trimmed, 1 to 64 characters, no control characters; any script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue::EmptyUserName);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::UserNameTooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue::UserNameHasControlCharacters);
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive amount of money in whole currency units, at most [`Amount::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    /// One billion: far above any single order or deposit, far below overflow of a balance.
    pub const MAX: u64 = 1_000_000_000;

    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u64::try_from(raw) {
            Ok(0) | Err(_) => Err(InvalidValue::SumNotPositive),
            Ok(sum) if sum > Self::MAX => Err(InvalidValue::SumTooLarge),
            Ok(sum) => Ok(Self(sum)),
        }
    }

    /// For amounts that arrive unsigned, from the broker.
    pub fn parse_unsigned(raw: u64) -> Result<Self, InvalidValue> {
        i64::try_from(raw)
            .map_err(|_| InvalidValue::SumTooLarge)
            .and_then(Self::parse)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// An order's id: 1 to 64 ASCII letters, digits or dashes (order assigns UUIDs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let valid = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(InvalidValue::MalformedOrderId)
        }
    }

    /// Formats 16 random bytes as a version-4 UUID.
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many refunds one order may have: a refund in parts, and an order's refunds read in one
/// batch (billing, which refuses more, and notify, which reads them for the order's status).
pub const MAX_REFUNDS_PER_ORDER: u32 = 16;

/// A refund's id: 32 lowercase hex digits. A refund asked with an `Idempotency-Key` gets an id
/// made from its user, order and key, so every repeat of the request names the same refund and
/// is applied once; one asked without gets a random id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefundId(String);

impl RefundId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let valid = raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid
            .then(|| Self(raw.to_string()))
            .ok_or(InvalidValue::MalformedRefundId)
    }

    /// The id of the refund of `order` that `user` asks for under `key`: the first 16 bytes of
    /// the SHA-256 of the three (separated by U+001F, which none of them holds).
    pub fn for_key(user: &UserName, order: &OrderId, key: &IdempotencyKey) -> Self {
        let digest = Sha256::digest(format!("{user}\u{1f}{order}\u{1f}{}", key.as_str()));
        Self(hex::encode(&digest[..16]))
    }

    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which page of a list to read: the entries after the cursor `after` (a previous page's
/// `next_after`; absent: from the first), at most `limit` of them (1 to 1000, default 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<u64>,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 100;
    /// One page's bound: what the key-value provider returns from one scan at most.
    pub const MAX_LIMIT: u32 = 1000;

    pub fn parse(after: Option<&str>, limit: Option<&str>) -> Result<Self, InvalidValue> {
        let after = after
            .map(|raw| {
                raw.parse::<u64>()
                    .map_err(|_| InvalidValue::MalformedCursor)
            })
            .transpose()?;
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=Self::MAX_LIMIT).contains(limit))
                .ok_or(InvalidValue::LimitOutOfRange)?,
        };
        Ok(Self { after, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_request_defaults_to_the_first_hundred() {
        assert_eq!(
            PageRequest::parse(None, None),
            Ok(PageRequest {
                after: None,
                limit: 100
            })
        );
        assert_eq!(
            PageRequest::parse(Some("17"), Some("1000")),
            Ok(PageRequest {
                after: Some(17),
                limit: 1000
            })
        );
    }

    #[test]
    fn a_page_request_refuses_cursors_and_limits_it_cannot_serve() {
        for after in ["", "-1", "x", "1.5"] {
            assert_eq!(
                PageRequest::parse(Some(after), None),
                Err(InvalidValue::MalformedCursor),
                "{after:?}"
            );
        }
        for limit in ["0", "1001", "", "ten", "-5"] {
            assert_eq!(
                PageRequest::parse(None, Some(limit)),
                Err(InvalidValue::LimitOutOfRange),
                "{limit:?}"
            );
        }
    }

    #[test]
    fn a_user_name_is_trimmed() {
        assert_eq!(UserName::parse("  Pavel \n").unwrap().as_str(), "Pavel");
    }

    #[test]
    fn a_blank_user_name_is_refused() {
        assert_eq!(UserName::parse(" \t "), Err(InvalidValue::EmptyUserName));
    }

    #[test]
    fn a_user_name_of_64_characters_in_any_script_is_accepted_and_65_is_not() {
        assert!(UserName::parse(&"Ж".repeat(64)).is_ok());
        assert_eq!(
            UserName::parse(&"Ж".repeat(65)),
            Err(InvalidValue::UserNameTooLong)
        );
    }

    #[test]
    fn a_user_name_with_control_characters_is_refused() {
        assert_eq!(
            UserName::parse("Pa\u{0}vel"),
            Err(InvalidValue::UserNameHasControlCharacters)
        );
    }

    #[test]
    fn zero_and_negative_sums_are_refused() {
        assert_eq!(Amount::parse(0), Err(InvalidValue::SumNotPositive));
        assert_eq!(Amount::parse(-10), Err(InvalidValue::SumNotPositive));
        assert_eq!(Amount::parse(i64::MIN), Err(InvalidValue::SumNotPositive));
    }

    #[test]
    fn sums_up_to_the_maximum_are_accepted() {
        assert_eq!(Amount::parse(1).unwrap().get(), 1);
        assert_eq!(Amount::parse(1_000_000_000).unwrap().get(), Amount::MAX);
        assert_eq!(Amount::parse(1_000_000_001), Err(InvalidValue::SumTooLarge));
        assert_eq!(
            Amount::parse_unsigned(u64::MAX),
            Err(InvalidValue::SumTooLarge)
        );
    }

    #[test]
    fn order_ids_from_random_bytes_are_version_4_uuids() {
        let id = OrderId::from_random([0xff; 16]);
        assert_eq!(id.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(OrderId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn malformed_order_ids_are_refused() {
        for bad in ["", "a b", "a.b", &"a".repeat(65), "идентификатор"] {
            assert_eq!(
                OrderId::parse(bad),
                Err(InvalidValue::MalformedOrderId),
                "{bad}"
            );
        }
    }
}
