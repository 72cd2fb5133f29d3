//! `make bench`'s native build: billing, order and notify as the plain native processes a team
//! would otherwise write, on the same NATS: hyper for HTTP, async-nats for JetStream. Each runs
//! its service's own routes and message handler (`<service>_core::service`), the very code the
//! wasm components run, against the same streams, subjects, buckets, protobuf messages, API keys
//! and batches; what differs is only what the platform adds (the wasm sandbox, wRPC, the provider
//! processes and their NATS hops). So `make bench` measures the platform's price and nothing else.
//!
//! Not a product: no traces, metrics, rate limits or link policies (the lattice's HTTP server and
//! messaging providers add those), and it trusts its NATS identity to hold the data plane's
//! permissions. `orders-ops bench` starts one process per service with the data plane's identity.

mod broker;
mod http;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use async_nats::jetstream;
use clap::{Parser, ValueEnum};
use orders_domain::auth::{config_keys, AuthError, Authenticator};
use orders_domain::ports::WallClock;
use orders_domain::service::{Environment, HostParts};
use sha2::Digest as _;

use crate::broker::{Broker, Consumer};
use crate::store::Bucket;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Billing,
    Order,
    Notify,
}

#[derive(Parser)]
#[command(about = "billing, order or notify as a native process (make bench's comparison)")]
pub struct Args {
    #[arg(value_enum)]
    pub service: Service,
    /// Where the service's HTTP API listens.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The NATS servers, comma-separated.
    #[arg(long)]
    pub nats: String,
    /// The data plane's NATS credentials (what the lattice's providers use); none for a server
    /// without authorization.
    #[arg(long)]
    pub creds: Option<PathBuf>,
    /// The instance's secrets folder: `api-key-secret` and `admin-token`, as the lattice's
    /// `orders-auth` config is made from them.
    #[arg(long)]
    pub secrets: PathBuf,
}

/// Runs one service until it fails.
pub async fn run(args: Args) -> Result<()> {
    let (name, bucket) = match args.service {
        Service::Billing => ("billing", "billing"),
        Service::Order => ("order", "order"),
        Service::Notify => ("notify", "notify"),
    };
    let options = match &args.creds {
        Some(creds) => async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .with_context(|| format!("cannot read {}", creds.display()))?,
        None => async_nats::ConnectOptions::new(),
    };
    let client = options
        .name(format!("orders native {name}"))
        .connect(orders_conventions::broker::servers(&args.nats))
        .await?;
    let js = jetstream::new(client);
    broker::ensure_streams(&js).await?;
    let host = Arc::new(NativeHost {
        store: Bucket::open(&js, bucket).await?,
        broker: Broker::open(js.clone()).await?,
        clock: WallClock,
        environment: NativeEnvironment {
            authenticator: read_authenticator(&args.secrets)?,
            name,
        },
    });
    match args.service {
        Service::Billing => {
            Consumer::new("ORDERS", "billing")
                .start(&js, &host, billing_core::service::handle_messages)
                .await?;
            Consumer::new("REFUNDS", "billing-refunds")
                .start(&js, &host, billing_core::service::handle_messages)
                .await?;
            http::serve(args.listen, host, billing_core::service::route).await
        }
        Service::Order => http::serve(args.listen, host, order_core::service::route).await,
        Service::Notify => {
            Consumer::new("PAYMENTS", "notify")
                .start(&js, &host, notify_core::service::handle_messages)
                .await?;
            Consumer::new("DEADLETTER", "notify-deadletters")
                .filtered("deadletter.*", "deadletter.unrecorded.notify-deadletters")
                .start(&js, &host, notify_core::service::handle_messages)
                .await?;
            http::serve(args.listen, host, notify_core::service::route).await
        }
    }
}

/// The key configuration from the instance's secrets, as `make` makes the lattice's
/// `orders-auth` config from them; read and parsed once, at start.
fn read_authenticator(secrets: &std::path::Path) -> Result<Authenticator> {
    let read = |file: &str| {
        std::fs::read_to_string(secrets.join(file))
            .map(|value| value.trim().to_string())
            .with_context(|| format!("cannot read {}", secrets.join(file).display()))
    };
    let api_key_secret = read("api-key-secret")?;
    let admin_token_sha256 = hex::encode(sha2::Sha256::digest(read("admin-token")?));
    Ok(Authenticator::from_config(|name| match name {
        config_keys::API_KEY_SECRET => Some(api_key_secret.clone()),
        config_keys::ADMIN_TOKEN_SHA256 => Some(admin_token_sha256.clone()),
        _ => None,
    })?)
}

/// What a service runs on here: a JetStream KV bucket, JetStream, the system clock and a
/// [`NativeEnvironment`].
pub type NativeHost = HostParts<Bucket, Broker, WallClock, NativeEnvironment>;

/// The key configuration read at start, the system's random source, and stderr for the log.
pub struct NativeEnvironment {
    authenticator: Authenticator,
    name: &'static str,
}

impl Environment for NativeEnvironment {
    fn authenticator(&self) -> Result<Authenticator, AuthError> {
        Ok(self.authenticator.clone())
    }

    fn random_16(&self) -> [u8; 16] {
        rand::random()
    }

    fn log(&self, line: &str) {
        eprintln!("{}: {line}", self.name);
    }
}
