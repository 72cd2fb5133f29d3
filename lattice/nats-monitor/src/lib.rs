//! A lattice's streams and durable consumers as its NATS servers' monitoring endpoints report
//! them (`/jsz`, `/connz`): reading them costs no NATS message and needs no credentials (the
//! endpoints listen on 127.0.0.1 only), so a benchmark that counts NATS's messages can wait on
//! them without changing the count.
//!
//! On a cluster every server reports every stream it holds a replica of; only a stream's leader
//! knows who pulls from its consumers, and each consumer has a leader of its own. So each stream
//! and each consumer is taken from the server that leads it; a server that does not answer is
//! skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// A durable consumer's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    /// Messages not delivered yet.
    pub pending: u64,
    /// Messages delivered and not acknowledged yet.
    pub in_hand: u64,
    pub redelivered: u64,
    /// Pull requests waiting for messages: someone is reading it.
    pub pulls_waiting: u64,
}

/// A stream and its durable consumers (watchers and other ephemeral readers left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    pub messages: u64,
    pub consumers: Vec<Consumer>,
}

/// What the monitoring endpoints report.
#[derive(Debug, Default)]
pub struct Report {
    pub connections: u64,
    /// By name.
    pub streams: Vec<Stream>,
}

impl Report {
    /// Whether every durable consumer has nothing waiting and nothing in hand (and there is one).
    pub fn drained(&self) -> bool {
        let mut consumers = self.streams.iter().flat_map(|s| &s.consumers).peekable();
        consumers.peek().is_some() && consumers.all(|c| c.pending + c.in_hand == 0)
    }

    /// The durable consumers someone is pulling from, by name.
    pub fn pulling(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .streams
            .iter()
            .flat_map(|s| &s.consumers)
            .filter(|c| c.pulls_waiting > 0)
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }
}

/// One server's answers: its name, `/jsz` with every account's streams and consumers, and how
/// many clients it has.
#[derive(Debug, Clone)]
pub struct ServerReport {
    pub server: String,
    pub jsz: Value,
    pub connections: u64,
}

/// Reads every endpoint of `monitors` (comma-separated `http://host:port`); those that do not
/// answer are left out.
pub async fn read(monitors: &str) -> Report {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client with a timeout builds");
    let mut answers = Vec::new();
    for monitor in monitors.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let get = |path: &str| {
            let request = http.get(format!("{monitor}{path}"));
            async move {
                request
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Value>()
                    .await
            }
        };
        let (Ok(varz), Ok(jsz), Ok(connz)) = (
            get("/varz").await,
            get("/jsz?accounts=true&streams=true&consumers=true&config=true").await,
            get("/connz").await,
        ) else {
            continue;
        };
        answers.push(ServerReport {
            server: varz["server_name"].as_str().unwrap_or_default().to_string(),
            jsz,
            connections: connz["num_connections"].as_u64().unwrap_or_default(),
        });
    }
    merge(&answers)
}

/// A value as one server reported it, and whether that server leads what it describes.
struct Reported<T> {
    by_leader: bool,
    value: T,
}

impl<T> Reported<T> {
    /// Keeps `value` unless what is kept came from the leader already.
    fn offer(kept: &mut Option<Self>, by_leader: bool, value: T) {
        if kept
            .as_ref()
            .is_none_or(|kept| !kept.by_leader && by_leader)
        {
            *kept = Some(Self { by_leader, value });
        }
    }
}

/// One stream as the reports read so far describe it.
#[derive(Default)]
struct StreamSoFar {
    messages: Option<Reported<u64>>,
    consumers: BTreeMap<String, Option<Reported<Consumer>>>,
}

/// The streams and consumers of several servers' reports, each from the server that leads it.
pub fn merge(reports: &[ServerReport]) -> Report {
    let mut streams: BTreeMap<String, StreamSoFar> = BTreeMap::new();
    for report in reports {
        let accounts = report.jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten();
        let details = accounts.flat_map(|a| a["stream_detail"].as_array().into_iter().flatten());
        for stream in details {
            let name = stream["name"].as_str().unwrap_or_default().to_string();
            let so_far = streams.entry(name).or_default();
            let messages = stream["state"]["messages"].as_u64().unwrap_or_default();
            Reported::offer(
                &mut so_far.messages,
                led_by(stream, &report.server),
                messages,
            );
            for consumer in stream["consumer_detail"].as_array().into_iter().flatten() {
                // Key-value watchers and other ephemeral readers have no durable name.
                if consumer["config"]["durable_name"]
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    continue;
                }
                let counted = |field: &str| consumer[field].as_u64().unwrap_or_default();
                let name = consumer["name"].as_str().unwrap_or_default().to_string();
                let counts = Consumer {
                    name: name.clone(),
                    pending: counted("num_pending"),
                    in_hand: counted("num_ack_pending"),
                    redelivered: counted("num_redelivered"),
                    pulls_waiting: counted("num_waiting"),
                };
                let kept = so_far.consumers.entry(name).or_default();
                Reported::offer(kept, led_by(consumer, &report.server), counts);
            }
        }
    }
    Report {
        connections: reports.iter().map(|r| r.connections).sum(),
        streams: streams
            .into_iter()
            .map(|(name, so_far)| Stream {
                name,
                messages: so_far.messages.map(|m| m.value).unwrap_or_default(),
                consumers: so_far
                    .consumers
                    .into_values()
                    .flatten()
                    .map(|c| c.value)
                    .collect(),
            })
            .collect(),
    }
}

/// Whether `server` leads `asset` (a stream or a consumer). A single server's assets carry no
/// cluster information: that server leads them all.
fn led_by(asset: &Value, server: &str) -> bool {
    asset["cluster"]["leader"]
        .as_str()
        .is_none_or(|leader| leader == server)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn server(name: &str, leader: &str, pending: u64, waiting: u64) -> ServerReport {
        ServerReport {
            server: name.into(),
            connections: 2,
            jsz: json!({"account_details": [{"stream_detail": [{
                "name": "ORDERS",
                "cluster": {"leader": leader},
                "state": {"messages": pending + 10},
                "consumer_detail": [
                    {"name": "billing", "config": {"durable_name": "billing"}, "cluster": {"leader": leader},
                     "num_pending": pending, "num_ack_pending": 0, "num_redelivered": 0, "num_waiting": waiting},
                    {"name": "watcher", "config": {}, "num_pending": 5}
                ]
            }]}]}),
        }
    }

    #[test]
    fn each_stream_and_consumer_is_taken_from_the_server_that_leads_it() {
        let report = merge(&[server("n1", "n2", 7, 0), server("n2", "n2", 3, 1)]);
        assert_eq!(report.connections, 4);
        assert_eq!(report.streams.len(), 1);
        assert_eq!(report.streams[0].messages, 13);
        assert_eq!(
            report.streams[0].consumers,
            [Consumer {
                name: "billing".into(),
                pending: 3,
                in_hand: 0,
                redelivered: 0,
                pulls_waiting: 1,
            }],
            "the leader's counts, and no ephemeral watcher"
        );
        assert_eq!(report.pulling(), ["billing"]);
        assert!(!report.drained());
    }

    #[test]
    fn a_lattice_without_durable_consumers_is_not_drained() {
        assert!(!merge(&[]).drained());
        assert!(merge(&[server("n1", "n1", 0, 0)]).drained());
    }
}
