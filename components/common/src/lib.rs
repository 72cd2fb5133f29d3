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

    use crate::domain::OrderId;

    /// order -> billing: [`crate::proto::OrderPlaced`], on `orders.placed.<partition>.<order id>`
    /// ([`order_placed`]). Orders published before their subject carried their id are on
    /// `orders.placed.<partition>`, and before partitioning (with their dead letters) on this
    /// subject itself.
    pub const ORDER_PLACED: &str = "orders.placed";
    /// Every placed order's subject, as a NATS subscription, or a link's `publish`, names them.
    pub const ORDER_PLACED_SUBJECTS: &str = "orders.placed.*.*";
    /// How many tokens of a placed order's subject name its partition (`orders.placed.<partition>`):
    /// billing's link delivers the orders that share them one after another.
    pub const ORDER_PARTITION_TOKENS: usize = 3;
    /// billing -> notify: [`crate::proto::PaymentResult`].
    pub const PAYMENT_SETTLED: &str = "payments.settled";
    /// The messaging provider -> notify: `deadletter.<consumer>`, a message that consumer gave up
    /// on, its payload as published.
    pub const DEAD_LETTER_PREFIX: &str = "deadletter.";
    /// A dead letter's header: the subject its message was first published on.
    pub const ORIGINAL_SUBJECT_HEADER: &str = "Orders-Original-Subject";
    /// A dead letter's header: the handler's last error.
    pub const FAILURE_HEADER: &str = "Orders-Failure";

    /// The subject of order `id` placed by `user`: `orders.placed.`, two hex digits of the
    /// SHA-256 of the name (one of 256 partitions), and the order's id.
    /// - billing's link delivers the orders of one partition one after another, so one account's
    ///   orders never race for its balance while other accounts' orders are settled beside them.
    ///   A name is hashed rather than written into the subject because names may hold any
    ///   character, `.`, `*` and `>` included.
    /// - The id makes the order findable in its stream ([`placed_order`]): notify reads an
    ///   order's status from it rather than keeping a copy of every order.
    pub fn order_placed(user: &str, id: &OrderId) -> String {
        let digest = Sha256::digest(user.as_bytes());
        format!("{ORDER_PLACED}.{:02x}.{id}", digest[0])
    }

    /// The subject filter that finds order `id` in its stream, whoever placed it. Order ids are
    /// letters, digits and `-`, so the id is one literal token.
    pub fn placed_order(id: &OrderId) -> String {
        format!("{ORDER_PLACED}.*.{id}")
    }

    /// Whether `pattern` (NATS wildcards: `*` one token, a last `>` the rest) matches `subject`.
    /// `subject` may be a filter with wildcards itself: it matches only if the pattern covers
    /// every subject the filter does (a `>` in it is matched only by a `>` in the pattern).
    pub fn matches(pattern: &str, subject: &str) -> bool {
        let mut subject_tokens = subject.split('.');
        for expected in pattern.split('.') {
            match (expected, subject_tokens.next()) {
                (_, None | Some("")) => return false,
                (">", Some(_)) => return true,
                (_, Some(">")) => return false,
                ("*", Some(_)) => {}
                (literal, Some(token)) if literal == token => {}
                _ => return false,
            }
        }
        subject_tokens.next().is_none()
    }

    /// billing -> order, notify: [`crate::proto::CurrentApiKey`], on `keys.<user digest>`
    /// ([`current_api_key`]).
    pub const CURRENT_API_KEYS: &str = "keys.*";

    /// The subject on which billing announces `user`'s current API key: `keys.` and the SHA-256
    /// of the name in hex, one literal token whatever characters the name holds. The newest
    /// message on it names the key in force.
    pub fn current_api_key(user: &crate::domain::UserName) -> String {
        format!(
            "keys.{}",
            hex::encode(Sha256::digest(user.as_str().as_bytes()))
        )
    }

    /// Whether `subject` carries a placed order (with its id, on its partition only, or from
    /// before partitioning).
    pub fn is_order_placed(subject: &str) -> bool {
        match subject.strip_prefix(ORDER_PLACED) {
            Some("") => true,
            Some(rest) => rest.strip_prefix('.').is_some_and(|rest| {
                let tokens: Vec<&str> = rest.split('.').collect();
                tokens.len() <= 2 && tokens.iter().all(|token| !token.is_empty())
            }),
            None => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn id(raw: &str) -> OrderId {
            OrderId::parse(raw).unwrap()
        }

        #[test]
        fn a_users_current_key_is_announced_on_a_subject_of_its_own_whatever_the_name() {
            let subject = |name| current_api_key(&crate::domain::UserName::parse(name).unwrap());
            let dotted = subject("Pa.vel >*");
            assert!(matches(CURRENT_API_KEYS, &dotted), "{dotted}");
            assert_eq!(dotted.len(), "keys.".len() + 64);
            assert_ne!(subject("Pavel"), subject("Павел"));
            assert_eq!(subject("Pavel"), subject("Pavel"));
        }

        #[test]
        fn one_users_orders_share_a_partition_of_two_hex_digits_and_each_has_its_own_subject() {
            let first = order_placed("Павел", &id("o-1"));
            let second = order_placed("Павел", &id("o-2"));
            assert_ne!(first, second);
            let partition = |subject: &str| {
                subject
                    .split('.')
                    .take(ORDER_PARTITION_TOKENS)
                    .collect::<Vec<_>>()
                    .join(".")
            };
            assert_eq!(partition(&first), partition(&second));
            let token = first.split('.').nth(2).unwrap();
            assert_eq!(token.len(), 2);
            assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(first.ends_with(".o-1"));
            let odd = order_placed("a.b >*", &id("o-1"));
            assert_eq!(odd.split('.').count(), 4);
            assert!(!odd.contains(['>', '*', ' ']));
        }

        #[test]
        fn users_spread_over_the_partitions() {
            let partitions: std::collections::HashSet<String> = (0..1000)
                .map(|i| order_placed(&format!("user-{i}"), &id("o")))
                .collect();
            assert!(partitions.len() > 200, "{} partitions", partitions.len());
        }

        #[test]
        fn an_order_is_found_by_its_id_whatever_its_partition() {
            let filter = placed_order(&id("o-1"));
            assert_eq!(filter, "orders.placed.*.o-1");
            assert!(matches(&filter, &order_placed("Pavel", &id("o-1"))));
            assert!(matches(&filter, &order_placed("Anna", &id("o-1"))));
            assert!(!matches(&filter, &order_placed("Pavel", &id("o-2"))));
            assert!(
                matches(ORDER_PLACED_SUBJECTS, &filter),
                "a link may read it"
            );
        }

        #[test]
        fn placed_orders_are_told_by_subject() {
            assert!(is_order_placed(&order_placed("Pavel", &id("o-1"))));
            assert!(is_order_placed("orders.placed.ab"));
            assert!(is_order_placed("orders.placed"));
            assert!(!is_order_placed("orders.placed."));
            assert!(!is_order_placed("orders.placed.ab."));
            assert!(!is_order_placed("orders.placed.ab.cd.ef"));
            assert!(!is_order_placed("orders.placedx"));
            assert!(!is_order_placed(PAYMENT_SETTLED));
        }
    }
}
