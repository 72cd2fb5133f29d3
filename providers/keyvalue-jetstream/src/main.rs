#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keyvalue_jetstream_provider::run().await
}
