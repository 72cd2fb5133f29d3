//! The HTTP server capability provider's binary: see the library for what it does.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_server_provider::run().await
}
