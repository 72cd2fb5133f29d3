//! Our providers' own NATS connections (JetStream), authenticated as the lattice's data plane.
//!
//! The host hands every provider it starts the credentials of its RPC connection (host data
//! `lattice_rpc_user_jwt` / `lattice_rpc_user_seed`); the SDK's wRPC connection uses them, and so
//! do the JetStream connections our providers open, so a provider has one identity on the broker
//! with the permissions the lattice gives its data plane (README, Security).

use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use wasmcloud_provider_sdk::load_host_data;

/// A user JWT and its seed; both empty on a lattice whose NATS is anonymous.
#[derive(Clone, Default)]
pub struct NatsCredentials {
    jwt: String,
    seed: String,
}

/// Never prints the seed.
impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsCredentials")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl NatsCredentials {
    /// The credentials the host gave this provider.
    pub fn of_host() -> anyhow::Result<Self> {
        let host_data = load_host_data().context("failed to load host data")?;
        Ok(Self {
            jwt: host_data.lattice_rpc_user_jwt.trim().to_string(),
            seed: host_data.lattice_rpc_user_seed.trim().to_string(),
        })
    }

    /// Connects to `url` as `name` (shown in NATS's connection list), with these credentials.
    pub async fn connect(&self, url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
        let options = if self.jwt.is_empty() {
            async_nats::ConnectOptions::new()
        } else {
            let key = Arc::new(
                nkeys::KeyPair::from_seed(&self.seed)
                    .context("the host's RPC seed is not a seed")?,
            );
            async_nats::ConnectOptions::with_jwt(self.jwt.clone(), move |nonce| {
                let key = Arc::clone(&key);
                async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
            })
        };
        options
            .name(name)
            .connect(url)
            .await
            .with_context(|| format!("failed to connect to {url}"))
    }
}
