//! The upstream wasmCloud 1.9 http-server capability provider, built from its library crate because its
//! binary and OCI image cannot be downloaded on our machines.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wasmcloud_provider_http_server::run().await
}
