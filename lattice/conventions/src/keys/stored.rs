//! How the key-value provider stores a key: JetStream KV keys allow only `[-/_=.A-Za-z0-9]` with
//! no empty `.` tokens, while `wasi:keyvalue` keys are any string (user names may be Cyrillic).
//! `[-/_A-Za-z0-9]` stays as it is, so keys stay readable in `nats kv ls`; every other byte is
//! written `=XX` (hex), and the token separator U+001F is written `.`.
//!
//! Anyone who reads or writes a bucket from outside the provider (an export, a benchmark's fill)
//! uses these functions, so the stored form exists once.

use std::fmt::Write as _;

use super::{ALL_FOLLOWING, ANY_TOKEN, TOKEN_SEPARATOR};

/// Why a key cannot be stored.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidKey(pub &'static str);

fn kept_as_is(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'/' | b'_')
}

/// Turns a component's key into a JetStream KV key.
pub fn encode(key: &str) -> Result<String, InvalidKey> {
    if key.is_empty() {
        return Err(InvalidKey("a key must not be empty"));
    }
    let tokens: Vec<String> = key
        .split(TOKEN_SEPARATOR)
        .map(encode_token)
        .collect::<Result<_, _>>()?;
    Ok(tokens.join("."))
}

/// Turns a scan's filter into a JetStream subject filter: tokens as in [`encode`], except that a
/// token `*` matches any one token and a last token `>` matches one or more.
pub fn encode_filter(filter: &str) -> Result<String, InvalidKey> {
    let tokens: Vec<&str> = filter.split(TOKEN_SEPARATOR).collect();
    let last = tokens.len() - 1;
    let mut encoded = Vec::with_capacity(tokens.len());
    for (position, token) in tokens.into_iter().enumerate() {
        encoded.push(match token {
            ANY_TOKEN => "*".to_string(),
            ALL_FOLLOWING if position == last => ">".to_string(),
            ALL_FOLLOWING => return Err(InvalidKey("`>` may only be a filter's last token")),
            literal => encode_token(literal)?,
        });
    }
    Ok(encoded.join("."))
}

fn encode_token(token: &str) -> Result<String, InvalidKey> {
    if token.is_empty() {
        return Err(InvalidKey(
            "a key must not be empty, nor any of its tokens (U+001F separates them)",
        ));
    }
    let mut encoded = String::with_capacity(token.len());
    for byte in token.bytes() {
        if kept_as_is(byte) {
            encoded.push(char::from(byte));
        } else {
            write!(encoded, "={byte:02X}").expect("writing to a String cannot fail");
        }
    }
    Ok(encoded)
}

/// Turns a JetStream KV key back into the component's key; `None` for keys we did not write.
pub fn decode(stored: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(stored.len());
    let mut rest = stored.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if first == b'.' {
            bytes.push(TOKEN_SEPARATOR as u8);
            rest = tail;
        } else if kept_as_is(first) {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_stored_as_they_are() {
        assert_eq!(encode("account/Pavel_1-x").unwrap(), "account/Pavel_1-x");
    }

    #[test]
    fn other_characters_are_escaped_and_come_back_unchanged() {
        for key in ["Павел", "a.b", "a b", "=", "*>", "..", "emoji 🦀"] {
            let stored = encode(key).unwrap();
            assert!(stored
                .bytes()
                .all(|b| kept_as_is(b) || b == b'=' || b.is_ascii_hexdigit()));
            assert_eq!(decode(&stored).as_deref(), Some(key));
        }
    }

    #[test]
    fn the_unit_separator_splits_a_key_into_jetstream_tokens() {
        let key = "notification\u{1f}Павел\u{1f}o-1";
        assert_eq!(
            encode(key).unwrap(),
            "notification.=D0=9F=D0=B0=D0=B2=D0=B5=D0=BB.o-1"
        );
        assert_eq!(decode(&encode(key).unwrap()).as_deref(), Some(key));
    }

    #[test]
    fn empty_keys_and_empty_tokens_are_refused() {
        for key in ["", "\u{1f}a", "a\u{1f}", "a\u{1f}\u{1f}b"] {
            assert!(encode(key).is_err(), "{key:?}");
        }
    }

    #[test]
    fn a_filter_keeps_its_wildcard_tokens_and_escapes_the_rest() {
        assert_eq!(
            encode_filter("notification\u{1f}a.b\u{1f}>").unwrap(),
            "notification.a=2Eb.>"
        );
        assert_eq!(encode_filter("n\u{1f}*\u{1f}o-1").unwrap(), "n.*.o-1");
        assert_eq!(encode_filter("n\u{1f}x*").unwrap(), "n.x=2A");
        assert!(encode_filter(">\u{1f}n").is_err());
        assert!(encode_filter("").is_err());
    }

    #[test]
    fn keys_written_by_someone_else_are_not_decoded() {
        assert_eq!(decode("a b"), None);
        assert_eq!(decode("=G1"), None);
        assert_eq!(decode("=4"), None);
    }
}
