//! Keys made of tokens, which a scan can select by group (`notification␟Pavel␟>`).
//!
//! U+001F (the ASCII unit separator) separates a key's tokens. The key-value provider stores it
//! as JetStream's subject token separator `.` ([`stored`]), so JetStream itself picks the keys of
//! a group without reading the others. A key's tokens must therefore never hold it: the
//! application refuses control characters in every value it puts into a key.

pub mod stored;

/// Separates a key's tokens.
pub const TOKEN_SEPARATOR: char = '\u{1f}';
/// In a scan's filter, a token that matches any one token.
pub const ANY_TOKEN: &str = "*";
/// In a scan's filter, a last token that matches one or more tokens.
pub const ALL_FOLLOWING: &str = ">";

/// The key (or filter) of these tokens.
pub fn of(tokens: &[&str]) -> String {
    tokens.join(&TOKEN_SEPARATOR.to_string())
}

/// A key as a person reads it (a span, a log line): its tokens separated by `␟` (U+241F, the
/// separator's visible symbol) where the separator itself prints as nothing.
pub fn readable(key: &str) -> String {
    key.replace(TOKEN_SEPARATOR, "␟")
}

/// Whether `key` matches `filter`, as JetStream matches subjects.
pub fn matches(filter: &str, key: &str) -> bool {
    let mut keys = key.split(TOKEN_SEPARATOR);
    let mut filters = filter.split(TOKEN_SEPARATOR).peekable();
    while let Some(wanted) = filters.next() {
        if wanted == ALL_FOLLOWING && filters.peek().is_none() {
            return keys.next().is_some();
        }
        match keys.next() {
            Some(token) if wanted == ANY_TOKEN || wanted == token => {}
            _ => return false,
        }
    }
    keys.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_key_shows_where_its_tokens_part() {
        assert_eq!(
            readable(&of(&["notification", "Pavel", "o-1"])),
            "notification␟Pavel␟o-1"
        );
    }

    #[test]
    fn a_filter_matches_as_jetstream_matches_subjects() {
        let key = of(&["notification", "Pavel", "o-1"]);
        assert!(matches(&of(&["notification", "Pavel", ">"]), &key));
        assert!(matches(&of(&["notification", ">"]), &key));
        assert!(matches(&of(&["notification", "*", "o-1"]), &key));
        assert!(matches(&key, &key));
        assert!(!matches(&of(&["notification", "Anna", ">"]), &key));
        assert!(!matches(&of(&["notification", "Pavel", "o-1", ">"]), &key));
        assert!(!matches(&of(&["notification", "*"]), &key));
        assert!(!matches(
            &of(&["notification", "Pavel"]),
            "notification/Pavel"
        ));
    }
}
