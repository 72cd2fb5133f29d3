//! `orders-native <billing|order|notify> --listen … --nats … --creds … --secrets …`: one service
//! of `make bench`'s native build (see the library).

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let args = orders_native::Args::parse();
    tokio::runtime::Runtime::new()?.block_on(orders_native::run(args))
}
