//! What crosses the wire between billing, order, notify and whoever reads their messages: the
//! protobuf messages of `schema/` (also the services' JSON bodies), the broker subjects they travel
//! on, and the lattice conventions for server lists and stored keys. No domain rules here: the
//! operator's tools, the benchmark and the tests read the application's messages through this
//! crate alone.

/// The messages of `schema/*.proto` (package `orders.v1`).
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/orders.v1.rs"));
}

/// What the lattice's parts agree on: NATS server lists, keys of tokens (every key of a group is
/// found by one scan).
pub use orders_conventions::{broker, keys};

/// Broker subjects.
pub mod subjects {
    pub use orders_conventions::subjects::{
        matches, DEAD_LETTER_PREFIX, FAILURE_HEADER, ORIGINAL_SUBJECT_HEADER,
    };
    use sha2::{Digest as _, Sha256};

    /// order -> billing: [`crate::proto::OrderPlaced`], on `orders.placed.<partition>.<order id>`
    /// ([`order_placed`]).
    pub const ORDER_PLACED: &str = "orders.placed";
    /// Every placed order's subject, as a NATS subscription, or a link's `publish`, names them.
    pub const ORDER_PLACED_SUBJECTS: &str = "orders.placed.*.*";
    /// How many tokens of a placed order's subject name its partition (`orders.placed.<partition>`):
    /// billing's link delivers the orders that share them one after another.
    pub const ORDER_PARTITION_TOKENS: usize = 3;
    /// billing -> notify: [`crate::proto::PaymentResult`].
    pub const PAYMENT_SETTLED: &str = "payments.settled";
    /// The subject of order `id` placed by `user`: `orders.placed.`, two hex digits of the
    /// SHA-256 of the name (one of 256 partitions), and the order's id.
    /// - billing's link delivers the orders of one partition one after another, so one account's
    ///   orders never race for its balance while other accounts' orders are settled beside them.
    ///   A name is hashed rather than written into the subject because names may hold any
    ///   character, `.`, `*` and `>` included.
    /// - The id makes the order findable in its stream ([`placed_order`]): notify reads an
    ///   order's status from it rather than keeping a copy of every order.
    pub fn order_placed(user: &str, id: impl std::fmt::Display) -> String {
        format!("{ORDER_PLACED}.{}.{id}", partition(user))
    }

    /// billing -> billing: [`crate::proto::RefundRequested`], on
    /// `refunds.requested.<partition>.<order id>` ([`refund_requested`]).
    pub const REFUND_REQUESTED: &str = "refunds.requested";
    /// Every refund request's subject.
    pub const REFUND_REQUESTED_SUBJECTS: &str = "refunds.requested.*.*";
    /// billing -> notify: [`crate::proto::RefundResult`].
    pub const PAYMENT_REFUNDED: &str = "payments.refunded";

    /// The subject of a refund of `user`'s order `id`: the order's partition, so billing's link
    /// applies one account's refunds one after another, as its orders.
    pub fn refund_requested(user: &str, id: impl std::fmt::Display) -> String {
        format!("{REFUND_REQUESTED}.{}.{id}", partition(user))
    }

    /// Two hex digits of the SHA-256 of the user's name: one of 256 partitions.
    fn partition(user: &str) -> String {
        format!("{:02x}", Sha256::digest(user.as_bytes())[0])
    }

    /// The subject filter that finds order `id` in its stream, whoever placed it. Order ids are
    /// letters, digits and `-`, so the id is one literal token.
    pub fn placed_order(id: impl std::fmt::Display) -> String {
        format!("{ORDER_PLACED}.*.{id}")
    }

    /// billing -> order, notify: [`crate::proto::CurrentApiKey`], on `keys.<user digest>`
    /// ([`current_api_key`]).
    pub const CURRENT_API_KEYS: &str = "keys.*";

    /// The subject on which billing announces `user`'s current API key: `keys.` and the SHA-256
    /// of the name in hex, one literal token whatever characters the name holds. The newest
    /// message on it names the key in force.
    pub fn current_api_key(user: &str) -> String {
        format!("keys.{}", hex::encode(Sha256::digest(user.as_bytes())))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_users_current_key_is_announced_on_a_subject_of_its_own_whatever_the_name() {
            let subject = current_api_key;
            let dotted = subject("Pa.vel >*");
            assert!(matches(CURRENT_API_KEYS, &dotted), "{dotted}");
            assert_eq!(dotted.len(), "keys.".len() + 64);
            assert_ne!(subject("Pavel"), subject("Павел"));
            assert_eq!(subject("Pavel"), subject("Pavel"));
        }

        #[test]
        fn one_users_orders_share_a_partition_of_two_hex_digits_and_each_has_its_own_subject() {
            let first = order_placed("Павел", "o-1");
            let second = order_placed("Павел", "o-2");
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
            let odd = order_placed("a.b >*", "o-1");
            assert_eq!(odd.split('.').count(), 4);
            assert!(!odd.contains(['>', '*', ' ']));
        }

        #[test]
        fn users_spread_over_the_partitions() {
            let partitions: std::collections::HashSet<String> = (0..1000)
                .map(|i| order_placed(&format!("user-{i}"), "o"))
                .collect();
            assert!(partitions.len() > 200, "{} partitions", partitions.len());
        }

        #[test]
        fn an_order_is_found_by_its_id_whatever_its_partition() {
            let filter = placed_order("o-1");
            assert_eq!(filter, "orders.placed.*.o-1");
            assert!(matches(&filter, &order_placed("Pavel", "o-1")));
            assert!(matches(&filter, &order_placed("Anna", "o-1")));
            assert!(!matches(&filter, &order_placed("Pavel", "o-2")));
            assert!(
                matches(ORDER_PLACED_SUBJECTS, &filter),
                "a link may read it"
            );
        }
    }
}
