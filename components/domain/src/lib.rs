//! The application's domain, which billing, order and notify share so it exists once: the
//! newtypes every service parses its input into, the ports (storage, broker, clock) the cores are
//! written against, who may call what (API keys, the admin token), the decoding of HTTP requests,
//! and the host a service runs on ([`service`]). What crosses the wire (messages, subjects) is
//! `orders-wire`.
//!
//! No wit-bindgen here: this crate builds and tests natively and for `wasm32-wasip2`.

pub mod api;
pub mod auth;
pub mod batch;
mod domain;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod ports;
pub mod service;

pub use domain::*;
