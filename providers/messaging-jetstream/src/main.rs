#[tokio::main]
async fn main() -> anyhow::Result<()> {
    messaging_jetstream_provider::run().await
}
