//! `GET /List?user=` as the notify bucket grows: one reader's notifications listed while the
//! bucket holds 1,000 notifications, then again at 100,000. The reader's own notifications come
//! through the lattice (real orders); the others are written straight into the bucket, exactly as
//! notify stores them (a [`Notification`] under `notification␟<user>␟<order id>`, through the key
//! encoding of our key-value provider), since the pipeline would need minutes to settle 100,000.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use orders_e2e::Lattice;
use orders_wire::keys;
use orders_wire::proto::Notification;
use prost::Message as _;
use serde::Serialize;

use crate::pipeline::percentile_ms;

/// notify's bucket, as `wadm.yaml` links it.
const NOTIFY_BUCKET: &str = "notify";
/// Puts in flight while filling the bucket.
const FILL_CONCURRENCY: usize = 256;

/// Latency of `GET /List?user=` for one reader at one bucket size.
#[derive(Serialize, Clone)]
pub struct ListLatency {
    pub stored_notifications: usize,
    pub readers_notifications: usize,
    pub requests: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
}

/// The reader's list at each bucket size, smallest first.
#[derive(Serialize)]
pub struct ListFigures {
    pub sizes: Vec<ListLatency>,
    /// Median latency at the largest size over the median at the smallest.
    pub largest_to_smallest: f64,
}

pub struct Listing<'a> {
    pub lattice: &'a Lattice,
    pub reader: String,
    pub readers_orders: usize,
    pub requests: usize,
}

impl Listing<'_> {
    /// Measures at each of `sizes` (notifications stored in all, ascending).
    pub async fn run(&self, sizes: &[usize]) -> Result<ListFigures> {
        self.lattice.create_user(&self.reader, 1_000_000).await;
        for _ in 0..self.readers_orders {
            let id = self.lattice.order(&self.reader, 1).await;
            self.lattice.await_settled(&self.reader, &id).await;
        }
        let bucket = async_nats::jetstream::new(self.lattice.nats().await)
            .get_key_value(NOTIFY_BUCKET)
            .await
            .context("the notify bucket")?;
        let mut stored = count_notifications(&bucket).await?;
        let mut measured = Vec::new();
        for &size in sizes {
            if size > stored {
                eprintln!(
                    "    storing {} more notifications of other users",
                    size - stored
                );
                fill(&bucket, stored, size).await?;
                stored = size;
            }
            measured.push(self.measure(stored).await?);
            let last = measured.last().expect("just pushed");
            println!(
                "    GET /List?user= of a user with {} notifications among {}: median {:.2} ms, p99 {:.2} ms ({} requests)",
                last.readers_notifications, last.stored_notifications, last.median_ms, last.p99_ms, last.requests
            );
        }
        let largest_to_smallest = match (measured.first(), measured.last()) {
            (Some(small), Some(large)) => large.median_ms / small.median_ms,
            _ => f64::NAN,
        };
        Ok(ListFigures {
            sizes: measured,
            largest_to_smallest,
        })
    }

    async fn measure(&self, stored: usize) -> Result<ListLatency> {
        let path = format!("/List?user={}", orders_e2e::encode(&self.reader));
        let mut times = Vec::with_capacity(self.requests);
        for _ in 0..self.requests {
            let started = Instant::now();
            let answer = self.lattice.get_as(&self.reader, &path).await;
            times.push(started.elapsed());
            let listed = answer.body["notifications"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                answer.status == 200 && listed == self.readers_orders,
                "GET {path}: {} with {listed} notifications",
                answer.status
            );
        }
        Ok(ListLatency {
            stored_notifications: stored,
            readers_notifications: self.readers_orders,
            requests: times.len(),
            median_ms: percentile_ms(&mut times, 0.5),
            p99_ms: percentile_ms(&mut times, 0.99),
        })
    }
}

/// Notifications stored now (the bucket's keys of that group).
async fn count_notifications(bucket: &async_nats::jetstream::kv::Store) -> Result<usize> {
    Ok(bucket
        .keys()
        .await?
        .try_filter(|key| futures::future::ready(key.starts_with("notification.")))
        .count()
        .await)
}

/// Stores notifications number `from` to `to` of filler users (a hundred orders each), as notify
/// records orders of users billing does not know: refused, nothing debited, so the books stay
/// true for the audit that ends the benchmark.
async fn fill(bucket: &async_nats::jetstream::kv::Store, from: usize, to: usize) -> Result<()> {
    futures::stream::iter(from..to)
        .map(|n| async move {
            let user = format!("filler-{}", n / 100);
            let order_id = format!("filler-order-{n}");
            let notification = Notification {
                order_id: order_id.clone(),
                user: user.clone(),
                sum: 1,
                paid: false,
                reason: "unknown_user".into(),
                balance: None,
                message: format!(
                    "{user}, your order {order_id} for 1 could not be paid: there is no account for you."
                ),
                sent_at_ms: 0,
                refund_id: None,
            };
            let key = keys::stored::encode(&keys::of(&["notification", &user, &order_id]))
                .map_err(|why| anyhow::anyhow!("{}", why.0))?;
            bucket
                .put(key, notification.encode_to_vec().into())
                .await
                .context("storing a notification")?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    // Let the server settle its writes before timing reads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}
