//! NATS's own count of the messages it received (`in_msgs` of its monitoring endpoint's `/varz`),
//! summed over every server of the lattice: what a phase cost in broker traffic. On a cluster a
//! message forwarded over a route is received again by the next server, so there the count
//! includes replication and routing, which is part of what the cluster costs.

use anyhow::{Context, Result};

pub struct NatsCounters {
    http: reqwest::Client,
    monitors: Vec<String>,
}

impl NatsCounters {
    /// `monitors`: comma-separated monitoring URLs, e.g. `http://127.0.0.1:8222`.
    pub fn new(monitors: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            // The same comma-separated form as the lattice's NATS URLs.
            monitors: orders_wire::broker::servers(monitors)
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }

    /// Messages received so far by all servers together.
    pub async fn messages_in(&self) -> Result<u64> {
        let mut total = 0;
        for monitor in &self.monitors {
            let varz: serde_json::Value = self
                .http
                .get(format!("{monitor}/varz"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("NATS monitoring at {monitor}"))?
                .json()
                .await?;
            total += varz["in_msgs"]
                .as_u64()
                .with_context(|| format!("{monitor}/varz has no in_msgs"))?;
        }
        Ok(total)
    }
}
