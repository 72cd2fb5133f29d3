//! Orders placed under load while a fault runs, and the money audit afterwards: every order
//! accepted is settled exactly once. The fault tests of the single-host lattice (`faults`) and of
//! the replicated one (`ha`) share these.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Lattice;

/// Clients placing orders at once, each for its own user.
pub const CLIENTS: usize = 4;
/// Each user's deposit: far more than the orders of one test (1 each).
pub const FUNDS: u64 = 1_000_000;
/// How long settling may take after a crash: a message in the hands of a killed provider is
/// offered again after its consumer's ack_wait (30 s).
pub const SETTLE_PATIENCE: Duration = Duration::from_secs(120);

/// What one client saw while placing orders.
#[derive(Default)]
pub struct Seen {
    pub user: String,
    pub accepted: BTreeSet<String>,
    /// Requests that got no answer, or an answer other than 202, and were sent again.
    pub retried: u32,
    /// The longest time between two accepted orders: the outage this client lived through.
    pub longest_gap: Duration,
    /// For each accepted order: when its first request was sent, and when one was answered 202.
    pub sent_and_accepted: Vec<(Instant, Instant)>,
}

/// Places orders of 1 for `user` one after another until `stop`, each with its own
/// Idempotency-Key. A request that fails (no answer, 5xx, 429) is sent again with the same key
/// to the next listener until it is accepted, so each key is at most one order, and an order is
/// never left unknown.
async fn place_orders(
    listeners: Vec<String>,
    user: String,
    key: String,
    first: usize,
    stop: Arc<AtomicBool>,
) -> Seen {
    // A request in the hands of a killed host is given up after 2 s and sent to the other one.
    let http = crate::http_client(Duration::from_secs(2));
    let mut listener = first % listeners.len();
    let mut seen = Seen {
        user: user.clone(),
        ..Seen::default()
    };
    let mut last_accepted = Instant::now();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let idempotency_key = format!("{user}-{n}");
        let first_sent = Instant::now();
        let deadline = first_sent + SETTLE_PATIENCE;
        loop {
            let sent = http
                .post(format!("{}/Order", listeners[listener]))
                .bearer_auth(&key)
                .header("Idempotency-Key", &idempotency_key)
                .json(&json!({ "user": user, "sum": 1 }))
                .send()
                .await;
            let failure = match sent {
                Ok(answer) if answer.status() == 202 => {
                    let body: Value = answer.json().await.unwrap();
                    seen.accepted
                        .insert(body["order_id"].as_str().unwrap().to_string());
                    seen.longest_gap = seen.longest_gap.max(last_accepted.elapsed());
                    last_accepted = Instant::now();
                    seen.sent_and_accepted.push((first_sent, last_accepted));
                    break;
                }
                Ok(answer)
                    if answer.status().is_client_error()
                        && ![408, 429].contains(&answer.status().as_u16()) =>
                {
                    panic!(
                        "order {idempotency_key} refused: {} {}",
                        answer.status(),
                        answer.text().await.unwrap_or_default()
                    )
                }
                Ok(answer) => format!("{}", answer.status()),
                Err(e) => e.to_string(),
            };
            seen.retried += 1;
            assert!(
                Instant::now() < deadline,
                "order {idempotency_key} not accepted by any listener within {SETTLE_PATIENCE:?}: {failure}"
            );
            listener = (listener + 1) % listeners.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    seen
}

/// Orders flowing from `CLIENTS` clients through `listeners` (each client starting on the next) while `fault`
/// runs; returns what each client saw, and what the fault returned (e.g. the moment the killed
/// parts were started again).
pub async fn under_load<T, F: std::future::Future<Output = T>>(
    lattice: &Lattice,
    listeners: &[String],
    fault: impl FnOnce() -> F,
) -> (Vec<Seen>, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for first in 0..CLIENTS {
        let user = lattice.new_user("Replicated", FUNDS as i64).await;
        let key = lattice.key(&user);
        clients.push(tokio::spawn(place_orders(
            listeners.to_vec(),
            user,
            key,
            first,
            Arc::clone(&stop),
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ended = fault().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    (seen, ended)
}

/// Waits until every accepted order is settled: each user notified once per order, all paid,
/// and charged exactly once per order. Prints the fault's line of the table.
pub async fn every_order_settled_once(
    lattice: &Lattice,
    fault: &str,
    seen: &[Seen],
    catch_up: &str,
) {
    let deadline = Instant::now() + SETTLE_PATIENCE;
    let (mut accepted, mut settled, mut doubled) = (0, 0, 0);
    for client in seen {
        let notified = loop {
            let listed = lattice.notifications(&client.user).await;
            let ids: BTreeSet<String> = listed
                .iter()
                .map(|n| n["order_id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(ids.len(), listed.len(), "one notification per order");
            if ids == client.accepted || Instant::now() > deadline {
                assert!(
                    listed.iter().all(|n| n["paid"] == json!(true)),
                    "{listed:#?}"
                );
                break ids;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let charged = FUNDS - lattice.balance(&client.user).await;
        accepted += client.accepted.len();
        settled += notified.intersection(&client.accepted).count();
        doubled += (charged as usize).saturating_sub(client.accepted.len());
        assert_eq!(
            notified, client.accepted,
            "{}: every accepted order notified, none other",
            client.user
        );
        assert_eq!(
            charged,
            client.accepted.len() as u64,
            "{}: charged once per order",
            client.user
        );
    }
    let gap = seen.iter().map(|c| c.longest_gap).max().unwrap_or_default();
    let retried: u32 = seen.iter().map(|c| c.retried).sum();
    println!(
        "| {fault} | {accepted} | {settled} | {} | {doubled} | {:.1} s | {retried} | {catch_up} |",
        accepted - settled,
        gap.as_secs_f64()
    );
}

/// The header of the table `every_order_settled_once` prints a line of.
pub fn print_table_header() {
    println!("| fault | accepted | settled | lost | doubled | longest client gap | requests retried | back and caught up |");
}
