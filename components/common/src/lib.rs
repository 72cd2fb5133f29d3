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

/// Broker subjects.
pub mod subjects {
    /// order -> billing and notify: [`crate::proto::OrderPlaced`].
    pub const ORDER_PLACED: &str = "orders.placed";
    /// billing -> notify: [`crate::proto::PaymentResult`].
    pub const PAYMENT_SETTLED: &str = "payments.settled";
    /// The messaging provider -> notify: `deadletter.<consumer>`, a message that consumer gave up
    /// on, its payload as published.
    pub const DEAD_LETTER_PREFIX: &str = "deadletter.";
    /// A dead letter's header: the subject its message was first published on.
    pub const ORIGINAL_SUBJECT_HEADER: &str = "Orders-Original-Subject";
    /// A dead letter's header: the handler's last error.
    pub const FAILURE_HEADER: &str = "Orders-Failure";
}
