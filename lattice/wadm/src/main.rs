//! `orders-wadm`: wadm 0.21 (the wasmCloud 1.x application deployment manager) behind a small
//! launcher, because no wadm binary can be downloaded on our machines. Flags and `WADM_*`
//! variables are wadm's own (`orders-wadm --help`).

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wadm::config::WadmConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = WadmConfig::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if config.structured_logging {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let mut tasks = wadm::start_wadm(config)
        .await
        .context("failed to start wadm")?;
    tracing::info!("wadm started");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        finished = tasks.join_next() => match finished {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(error))) => Err(error).context("a wadm task failed"),
            Some(Err(error)) => Err(error).context("a wadm task panicked"),
        },
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
    }
}
