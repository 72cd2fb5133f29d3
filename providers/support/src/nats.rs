//! Our providers' own NATS connections (JetStream), authenticated as the lattice's data plane.
//!
//! The host hands every provider it starts the credentials of its RPC connection (host data
//! `lattice_rpc_user_jwt` / `lattice_rpc_user_seed`); the SDK's wRPC connection uses them, and so
//! do the JetStream connections our providers open, so a provider has one identity on the broker
//! with the permissions the lattice gives its data plane (docs/security.md).

use std::sync::Arc;

use anyhow::Context as _;
use orders_nats_creds::Credentials;
use wasmcloud_provider_sdk::core::HostData;

/// The data plane's user JWT and seed as the host gave them; none on a lattice whose NATS is
/// anonymous. Never prints the seed.
#[derive(Clone, Debug, Default)]
pub struct NatsCredentials(Option<Credentials>);

impl NatsCredentials {
    /// The credentials the host gave the provider, in its host data.
    pub fn of(host_data: &HostData) -> Self {
        let jwt = host_data.lattice_rpc_user_jwt.trim();
        let seed = host_data.lattice_rpc_user_seed.trim();
        Self((!jwt.is_empty()).then(|| Credentials::new(jwt.to_string(), seed.to_string())))
    }

    /// Connects to `url` (one server, or a comma-separated list of a cluster's) as `name` (shown
    /// in NATS's connection list), with these credentials.
    pub async fn connect(&self, url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
        let options = match &self.0 {
            None => async_nats::ConnectOptions::new(),
            Some(credentials) => {
                let key = Arc::new(
                    credentials
                        .key_pair()
                        .context("the host's RPC credentials")?,
                );
                async_nats::ConnectOptions::with_jwt(credentials.jwt.clone(), move |nonce| {
                    let key = Arc::clone(&key);
                    async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
                })
            }
        };
        options
            .name(name)
            .connect(orders_conventions::broker::servers(url))
            .await
            .with_context(|| format!("failed to connect to {url}"))
    }
}
