//! The whole pipeline under load: orders posted over HTTP, their payment results watched on the
//! broker (`payments.settled`) and their notifications watched where `/List` reads them (the
//! notify bucket's JetStream KV subject `$KV.notify.notification.<user>.<order id>`). Every time is
//! taken by this process on one monotonic clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use orders_wire::proto::{PaymentOutcome, PaymentResult};
use orders_wire::subjects::PAYMENT_SETTLED;
use prost::Message;
use serde::Serialize;

/// A notification's key is `notification␟<user>␟<order id>`, stored as these subject tokens.
const NOTIFICATION_SUBJECTS: &str = "$KV.notify.notification.*.*";
/// How long after the last order was accepted every notification must have appeared.
const COMPLETION_PATIENCE: Duration = Duration::from_secs(120);

/// How orders are pushed.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// `concurrency` clients, each posting its next order as soon as the last was accepted.
    MaxRate { concurrency: usize },
    /// One order every 1/`per_second` s whatever the answers (open loop: a slow pipeline shows
    /// as latency, not as a lower offered rate).
    FixedRate { per_second: f64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineFigures {
    pub pace: String,
    pub orders: usize,
    /// Orders fully processed (paid and notified) per second, from the first POST to the last
    /// notification.
    pub processed_per_s: f64,
    pub offered_per_s: f64,
    pub post_p50_ms: f64,
    pub post_p99_ms: f64,
    pub paid_p50_ms: f64,
    pub paid_p99_ms: f64,
    pub notified_p50_ms: f64,
    pub notified_p99_ms: f64,
    pub notified_max_ms: f64,
    /// Answers other than 202, results other than PAID, orders with no notification in time:
    /// each must be 0.
    pub refused: usize,
    pub refusals: BTreeMap<String, usize>,
    pub not_paid: usize,
    pub unfinished: usize,
}

impl PipelineFigures {
    pub fn in_words(&self) -> String {
        format!(
            "{} orders, {:.0} settled/s; POST -> paid p50 {:.1} ms, p99 {:.1} ms; \
             POST -> notified p50 {:.1} ms, p99 {:.1} ms; {} refused, {} not paid, {} unfinished",
            self.orders,
            self.processed_per_s,
            self.paid_p50_ms,
            self.paid_p99_ms,
            self.notified_p50_ms,
            self.notified_p99_ms,
            self.refused,
            self.not_paid,
            self.unfinished
        )
    }
}

#[derive(Default)]
struct Observed {
    posted: HashMap<String, (Instant, Instant)>,
    paid: HashMap<String, (Instant, bool)>,
    notified: HashMap<String, Instant>,
    /// Why POSTs were not accepted: an HTTP status or a client error, with how often.
    refusals: BTreeMap<String, usize>,
}

#[derive(Clone)]
pub struct Pipeline {
    /// Where `POST /Order` goes.
    pub order_url: String,
    pub nats: async_nats::Client,
    pub user_prefix: String,
    /// The API key of user `<user_prefix>-<n>` at index n.
    pub keys: Vec<String>,
}

impl Pipeline {
    pub async fn run(&self, pace: Pace, orders: usize) -> Result<PipelineFigures> {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let watchers = self.watch(&observed).await?;
        let http = orders_e2e::http_client(Duration::from_secs(30));
        let started = Instant::now();
        let sent = Arc::new(AtomicUsize::new(0));
        let progress = tokio::spawn(show_progress(observed.clone(), sent.clone(), orders));
        let url = self.order_url.clone();
        let (prefix, keys, on_answer) = (
            self.user_prefix.clone(),
            self.keys.clone(),
            observed.clone(),
        );
        let sent_counter = sent.clone();
        let post = move |n: usize| {
            let (http, observed, sent, url) = (
                http.clone(),
                on_answer.clone(),
                sent_counter.clone(),
                url.clone(),
            );
            let user = n % keys.len();
            let body = format!(r#"{{"user":"{prefix}-{user}","sum":1}}"#);
            let key = keys[user].clone();
            async move {
                let posted = Instant::now();
                sent.fetch_add(1, Ordering::Relaxed);
                let answer = http
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let accepted = Instant::now();
                let order_id = match answer {
                    Ok(response) if response.status().as_u16() == 202 => response
                        .json::<serde_json::Value>()
                        .await
                        .map_err(|e| format!("unreadable 202: {e}"))
                        .and_then(|b| {
                            b["order_id"]
                                .as_str()
                                .map(str::to_string)
                                .ok_or_else(|| "202 without order_id".to_string())
                        }),
                    Ok(response) => Err(format!("HTTP {}", response.status())),
                    Err(error) => Err(format!("client error: {}", with_causes(&error))),
                };
                let mut observed = observed.lock().unwrap();
                match order_id {
                    Ok(id) => {
                        observed.posted.insert(id, (posted, accepted));
                    }
                    Err(reason) => *observed.refusals.entry(reason).or_default() += 1,
                }
            }
        };
        match pace {
            Pace::MaxRate { concurrency } => {
                let next = Arc::new(AtomicUsize::new(0));
                let clients: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let (next, post) = (next.clone(), post.clone());
                        tokio::spawn(async move {
                            loop {
                                let n = next.fetch_add(1, Ordering::Relaxed);
                                if n >= orders {
                                    break;
                                }
                                post(n).await;
                            }
                        })
                    })
                    .collect();
                futures::future::try_join_all(clients).await?;
            }
            Pace::FixedRate { per_second } => {
                let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut in_flight = Vec::with_capacity(orders);
                for n in 0..orders {
                    ticks.tick().await;
                    in_flight.push(tokio::spawn(post(n)));
                }
                futures::future::try_join_all(in_flight).await?;
            }
        }
        let sending = started.elapsed();
        let deadline = Instant::now() + COMPLETION_PATIENCE;
        while !all_notified(&observed) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        progress.abort();
        for watcher in watchers {
            watcher.abort();
        }
        let observed = observed.lock().unwrap();
        figures(&observed, pace, orders, started, sending)
    }

    /// Records when each payment result and each notification is seen.
    async fn watch(
        &self,
        observed: &Arc<Mutex<Observed>>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut payments = self.nats.subscribe(PAYMENT_SETTLED).await?;
        let mut notifications = self.nats.subscribe(NOTIFICATION_SUBJECTS).await?;
        // Both subscriptions are registered before the first order is posted.
        self.nats.flush().await.context("NATS flush")?;
        let on_payment = observed.clone();
        let on_notification = observed.clone();
        Ok(vec![
            tokio::spawn(async move {
                while let Some(message) = payments.next().await {
                    let seen = Instant::now();
                    if let Ok(result) = PaymentResult::decode(message.payload) {
                        let paid = result.outcome == PaymentOutcome::Paid as i32;
                        on_payment
                            .lock()
                            .unwrap()
                            .paid
                            .entry(result.order_id)
                            .or_insert((seen, paid));
                    }
                }
            }),
            tokio::spawn(async move {
                while let Some(message) = notifications.next().await {
                    let seen = Instant::now();
                    // Order ids are letters, digits and dashes: stored as they are.
                    if let Some((_, order_id)) = message.subject.rsplit_once('.') {
                        on_notification
                            .lock()
                            .unwrap()
                            .notified
                            .entry(order_id.to_string())
                            .or_insert(seen);
                    }
                }
            }),
        ])
    }
}

/// An error and every error beneath it ("error sending request" says little; its causes say
/// whether the connection was refused, reset or closed).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}

fn all_notified(observed: &Mutex<Observed>) -> bool {
    let observed = observed.lock().unwrap();
    observed
        .posted
        .keys()
        .all(|id| observed.notified.contains_key(id))
}

async fn show_progress(observed: Arc<Mutex<Observed>>, sent: Arc<AtomicUsize>, orders: usize) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    every.tick().await;
    loop {
        every.tick().await;
        let o = observed.lock().unwrap();
        eprintln!(
            "    sent {}/{orders}, accepted {}, paid {}, notified {}",
            sent.load(Ordering::Relaxed),
            o.posted.len(),
            o.paid.len(),
            o.notified.len()
        );
    }
}

fn figures(
    observed: &Observed,
    pace: Pace,
    orders: usize,
    started: Instant,
    sending: Duration,
) -> Result<PipelineFigures> {
    let mut post = Vec::new();
    let mut paid = Vec::new();
    let mut notified = Vec::new();
    let mut not_paid = 0;
    let mut unfinished = 0;
    let mut last_notification = started;
    for (id, (posted, accepted)) in &observed.posted {
        post.push(*accepted - *posted);
        match observed.paid.get(id) {
            Some((at, true)) => paid.push(*at - *posted),
            _ => not_paid += 1,
        }
        match observed.notified.get(id) {
            Some(at) => {
                notified.push(*at - *posted);
                last_notification = last_notification.max(*at);
            }
            None => unfinished += 1,
        }
    }
    if notified.is_empty() {
        bail!("no order was notified: is the pipeline running?");
    }
    let ms = |samples: &mut Vec<Duration>, q: f64| percentile_ms(samples, q);
    Ok(PipelineFigures {
        pace: match pace {
            Pace::MaxRate { concurrency } => format!("max rate ({concurrency} clients)"),
            Pace::FixedRate { per_second } => format!("fixed {per_second:.0}/s"),
        },
        orders,
        processed_per_s: notified.len() as f64 / (last_notification - started).as_secs_f64(),
        offered_per_s: orders as f64 / sending.as_secs_f64(),
        post_p50_ms: ms(&mut post, 0.50),
        post_p99_ms: ms(&mut post, 0.99),
        paid_p50_ms: ms(&mut paid, 0.50),
        paid_p99_ms: ms(&mut paid, 0.99),
        notified_p50_ms: ms(&mut notified, 0.50),
        notified_p99_ms: ms(&mut notified, 0.99),
        notified_max_ms: ms(&mut notified, 1.0),
        refused: observed.refusals.values().sum(),
        refusals: observed.refusals.clone(),
        not_paid,
        unfinished,
    })
}

/// The `q` quantile (nearest rank) in milliseconds; 0 for no samples.
pub fn percentile_ms(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1].as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut samples, 0.50), 50.0);
        assert_eq!(percentile_ms(&mut samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&mut samples, 1.0), 100.0);
        assert_eq!(percentile_ms(&mut [], 0.5), 0.0);
    }
}
