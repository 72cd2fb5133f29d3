//! Puts wash, the wasmCloud 1.x CLI, into the workspace's dependency graph (see Cargo.toml): the
//! Makefile builds its binary with `cargo build -p wash --bin wash` together with the workspace,
//! so cargo resolves one set of features for every crate wash shares with the host.
pub use wash;
