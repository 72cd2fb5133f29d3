//! Measures how long an order takes from `POST /Order` to its notification being listed, one order
//! at a time, and prints the median and p90 of N orders (default 100).
//!
//!   ORDERS_BASE_URL=http://127.0.0.1:8000 ORDERS_NATS_URL=nats://127.0.0.1:4222 \
//!   ORDERS_ADMIN_TOKEN=$(cat .state/run/secrets/admin-token) \
//!     cargo run --release -p orders-e2e --example order_latency -- 100

use std::time::{Duration, Instant};

use orders_e2e::Lattice;

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(100, |n| n.parse().expect("a count"));
    let lattice = Lattice::from_env();
    let user = lattice
        .new_user("Latency", i64::try_from(count).unwrap())
        .await;
    let mut samples = Vec::with_capacity(count);
    for done in 1..=count {
        let started = Instant::now();
        lattice.order(&user, 1).await;
        while lattice.notifications(&user).await.len() < done {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "POST /Order -> listed notification, {count} orders one at a time: median {:?}, p90 {:?}, max {:?}",
        at(0.5),
        at(0.9),
        samples[samples.len() - 1]
    );
}
