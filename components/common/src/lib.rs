//! What billing, order and notify share, so it exists once: the protobuf messages of `schema/`,
//! the domain newtypes every service parses its input into, the ports (storage, broker, clock) the
//! cores are written against, who may call what (API keys, the admin token), and the JSON error
//! shape of the HTTP APIs.
//!
//! No wit-bindgen here: this crate builds and tests natively and for `wasm32-wasip2`.

pub mod api;
pub mod auth;
pub mod domain;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod ports;

/// The messages of `schema/*.proto` (package `orders.v1`).
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/orders.v1.rs"));
}

/// Where the broker is.
pub mod broker {
    /// The servers of a NATS URL list as every part of the lattice is given it
    /// (`nats://127.0.0.1:25222,nats://127.0.0.1:25223`): a client tries them in turn, so it
    /// connects while any one server of a cluster is up (and then learns the others from it).
    pub fn servers(urls: &str) -> Vec<&str> {
        urls.split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_url_list_names_each_server_once_and_one_url_names_one() {
            assert_eq!(
                super::servers("nats://a:1, nats://b:2,"),
                ["nats://a:1", "nats://b:2"]
            );
            assert_eq!(super::servers("nats://a:1"), ["nats://a:1"]);
        }
    }
}

/// Keys made of tokens, which a scan can select by group ([`crate::ports::CasStore::scan`]).
///
/// U+001F (the ASCII unit separator) separates a key's tokens. Our key-value provider stores it
/// as JetStream's subject token separator `.`, so JetStream itself picks the keys of a group
/// (`notification␟Pavel␟>`) without reading the others. No user name, order id or other key part
/// holds it: [`crate::domain`] refuses control characters.
pub mod keys {
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
}

/// Broker subjects.
pub mod subjects {
    use sha2::{Digest as _, Sha256};

    /// order -> billing and notify: [`crate::proto::OrderPlaced`], on `orders.placed.<partition>`
    /// ([`order_placed`]). Orders published before partitioning, and their dead letters, are on
    /// this subject itself.
    pub const ORDER_PLACED: &str = "orders.placed";
    /// Every placed order's subject, as a NATS subscription names them.
    pub const ORDER_PLACED_PARTITIONS: &str = "orders.placed.*";
    /// billing -> notify: [`crate::proto::PaymentResult`].
    pub const PAYMENT_SETTLED: &str = "payments.settled";
    /// The messaging provider -> notify: `deadletter.<consumer>`, a message that consumer gave up
    /// on, its payload as published.
    pub const DEAD_LETTER_PREFIX: &str = "deadletter.";
    /// A dead letter's header: the subject its message was first published on.
    pub const ORIGINAL_SUBJECT_HEADER: &str = "Orders-Original-Subject";
    /// A dead letter's header: the handler's last error.
    pub const FAILURE_HEADER: &str = "Orders-Failure";

    /// The subject of an order placed by `user`: `orders.placed.` and two hex digits of the
    /// SHA-256 of the name, one of 256 partitions. billing's messaging link delivers the orders
    /// of one subject one after another, so one account's orders never race for its balance
    /// while other accounts' orders are settled beside them. A name is hashed rather than written
    /// into the subject because names may hold any character, `.`, `*` and `>` included.
    pub fn order_placed(user: &str) -> String {
        let digest = Sha256::digest(user.as_bytes());
        format!("{ORDER_PLACED}.{:02x}", digest[0])
    }

    /// Whether `subject` carries a placed order (partitioned, or from before partitioning).
    pub fn is_order_placed(subject: &str) -> bool {
        match subject.strip_prefix(ORDER_PLACED) {
            Some("") => true,
            Some(partition) => partition
                .strip_prefix('.')
                .is_some_and(|token| !token.is_empty() && !token.contains('.')),
            None => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_users_orders_share_one_subject_of_two_hex_digits() {
            let subject = order_placed("Павел");
            assert_eq!(subject, order_placed("Павел"));
            let partition = subject.strip_prefix("orders.placed.").unwrap();
            assert_eq!(partition.len(), 2);
            assert!(partition.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(order_placed("a.b >*"), order_placed("a.b >*"));
            assert!(!order_placed("a.b >*")["orders.placed.".len()..].contains(['.', '>', '*']));
        }

        #[test]
        fn users_spread_over_the_partitions() {
            let partitions: std::collections::HashSet<String> = (0..1000)
                .map(|i| order_placed(&format!("user-{i}")))
                .collect();
            assert!(partitions.len() > 200, "{} partitions", partitions.len());
        }

        #[test]
        fn placed_orders_are_told_by_subject() {
            assert!(is_order_placed(&order_placed("Pavel")));
            assert!(is_order_placed("orders.placed"));
            assert!(!is_order_placed("orders.placed."));
            assert!(!is_order_placed("orders.placed.ab.cd"));
            assert!(!is_order_placed("orders.placedx"));
            assert!(!is_order_placed(PAYMENT_SETTLED));
        }
    }
}
