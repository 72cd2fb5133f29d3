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
