//! End-to-end tests against a running lattice (real NATS, host, providers and components), driven
//! through HTTP and NATS exactly as a user would. `make test` starts the lattice and runs these
//! (`cargo test --test e2e -- --ignored`); a plain `cargo test` lists them as ignored.

mod admin;
mod auth;
mod bad_input;
mod broker;
mod capabilities;
mod concurrency;
mod contract;
mod idempotency;
mod isolation;
mod limits;
mod links;
mod nats_access;
mod order_status;
mod refunds;
mod scenario;
mod statement;
mod telemetry;
