//! Key encoding: JetStream KV keys allow only `[-/_=.A-Za-z0-9]` with no empty `.` tokens, while
//! `wasi:keyvalue` keys are any string (user names may be Cyrillic). We keep `[-/_A-Za-z0-9]` as
//! they are, so keys stay readable in `nats kv ls`, and write every other byte as `=XX` (hex).

use std::fmt::Write as _;

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
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
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
    fn an_empty_key_is_refused() {
        assert!(encode("").is_err());
    }

    #[test]
    fn keys_written_by_someone_else_are_not_decoded() {
        assert_eq!(decode("a.b"), None);
        assert_eq!(decode("=G1"), None);
        assert_eq!(decode("=4"), None);
    }
}
