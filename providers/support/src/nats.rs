//! Our providers' own NATS connections (JetStream), authenticated as the lattice's data plane.
//!
//! The host hands every provider it starts the credentials of its RPC connection (host data
//! `lattice_rpc_user_jwt` / `lattice_rpc_user_seed`); the SDK's wRPC connection uses them, and so
//! do the JetStream connections our providers open, so a provider has one identity on the broker
//! with the permissions the lattice gives its data plane (docs/security.md).

use std::sync::Arc;

use anyhow::Context as _;
use wasmcloud_provider_sdk::load_host_data;

/// The data plane's user JWT and seed as the host gave them; none on a lattice whose NATS is
/// anonymous.
#[derive(Clone, Default)]
pub struct NatsCredentials(Option<UserCredentials>);

#[derive(Clone)]
struct UserCredentials {
    jwt: String,
    seed: String,
}

/// Never prints the seed.
impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NatsCredentials")
            .field(&self.0.as_ref().map(|user| &user.jwt))
            .finish()
    }
}

impl NatsCredentials {
    /// The credentials the host gave this provider.
    pub fn of_host() -> anyhow::Result<Self> {
        let host_data = load_host_data().context("failed to load host data")?;
        let jwt = host_data.lattice_rpc_user_jwt.trim();
        let seed = host_data.lattice_rpc_user_seed.trim();
        Ok(Self((!jwt.is_empty()).then(|| UserCredentials {
            jwt: jwt.to_string(),
            seed: seed.to_string(),
        })))
    }

    /// Connects to `url` (one server, or a comma-separated list of a cluster's) as `name` (shown
    /// in NATS's connection list), with these credentials.
    pub async fn connect(&self, url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
        let options = match &self.0 {
            None => async_nats::ConnectOptions::new(),
            Some(credentials) => {
                let key = Arc::new(
                    nkeys::KeyPair::from_seed(&credentials.seed)
                        .context("the host's RPC credentials: the user seed is not a seed")?,
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
