//! Traces and metrics: the host and our providers export their spans (OpenTelemetry, OTLP/HTTP) to
//! the test lattice's receiver, orders-telemetry; one order is one trace from the HTTP request to
//! the notification, across the broker, and its metrics count it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orders_e2e::{lattice_test, spans, Lattice, Telemetry};
use serde_json::Value;

/// The value of the series `series` (name and labels, exactly as exposed) in a scrape, 0 if absent.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The ids of the components whose invocations the trace holds.
fn invoked_components(trace: &Value) -> BTreeSet<String> {
    spans(trace)
        .filter(|s| s["name"] == "component_invocation")
        .filter_map(|s| s["attributes"]["id"].as_str().map(str::to_string))
        .collect()
}

#[lattice_test]
async fn an_order_is_one_connected_trace_from_its_request_through_order_billing_and_notify(
    lattice: Lattice,
) {
    let user = lattice.new_user("Traced", 100).await;
    let order_id = lattice.order(&user, 10).await;
    lattice.await_settled(&user, &order_id).await;

    let wanted = ["orders-billing", "orders-notify", "orders-order"];
    // The HTTP server, messaging and key-value run in the host's process: their spans are the
    // host's (the deliveries' spans, below, are the messaging provider's).
    let services = ["wasmcloud-host"];
    let traces = Telemetry::from_env()
        .await_traces(
            &order_id,
            &format!("through {wanted:?} from {services:?}"),
            |traces| {
                traces.iter().any(|t| {
                    let invoked = invoked_components(t);
                    let sent: BTreeSet<&str> =
                        spans(t).filter_map(|s| s["service"].as_str()).collect();
                    wanted.iter().all(|c| invoked.contains(*c))
                        && services.iter().all(|s| sent.contains(s))
                })
            },
        )
        .await;

    // Besides the order's own trace, each status query that read the order mentions it too.
    let placed: Vec<&Value> = traces
        .iter()
        .filter(|t| spans(t).any(|s| s["name"] == "POST /Order"))
        .collect();
    assert_eq!(
        placed.len(),
        1,
        "one order, one trace: {:#}",
        Value::from(traces.clone())
    );
    let trace = placed[0];
    assert_eq!(
        traces[0]["trace_id"], trace["trace_id"],
        "the order's trace comes first"
    );
    assert_eq!(
        trace["connected"], true,
        "every span hangs off the request: {trace:#}"
    );
    let root = spans(trace)
        .find(|s| s["parent_span_id"].is_null())
        .unwrap();
    assert_eq!(root["name"], "POST /Order");
    assert!(
        spans(trace).any(|s| s["name"] == "payments.settled process"),
        "the payment result's delivery to notify is in the order's trace"
    );
}

#[lattice_test]
async fn metrics_count_a_paid_order_its_request_and_show_every_consumers_lag(lattice: Lattice) {
    let paid = r#"orders_settled_total{outcome="paid"}"#;
    let accepted = r#"orders_http_requests_total{method="POST",path="/Order",status="202"}"#;
    let telemetry = Telemetry::from_env();
    let before = telemetry.scrape().await;
    let user = lattice.new_user("Measured", 100).await;
    let order_id = lattice.order(&user, 10).await;
    lattice.await_settled(&user, &order_id).await;

    // The request is counted once its span is exported (in batches, every few seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let after = telemetry.scrape().await;
        if sample(&after, accepted) > sample(&before, accepted) {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the order's request not counted within 30 s:\n{after}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(sample(&after, paid) > sample(&before, paid), "{after}");
    assert!(after
        .contains(r#"orders_http_request_duration_seconds_count{method="POST",path="/Order"}"#));
    for consumer in ["billing", "billing-refunds", "notify", "notify-deadletters"] {
        assert!(
            after.contains(&format!(
                "orders_consumer_waiting{{consumer=\"{consumer}\"}}"
            )),
            "no lag of {consumer}: {after}"
        );
    }
    assert!(after.contains(r#"orders_stream_messages{stream="DEADLETTER"}"#));
}

#[lattice_test]
async fn a_busy_accounts_orders_placed_at_once_are_settled_in_turn_and_no_write_of_its_account_loses(
) {
    // One account's orders share one partition subject, and billing's link hands them over in
    // turn: the orders that arrive together are settled in one batch, with one write of the
    // account, and no two batches of the account race for its balance. Batches that raced would
    // show a compare-and-swap write of the account that lost to another (`lost` > 0).
    const ORDERS: usize = 20;
    let lattice = Lattice::from_env();
    let user = lattice.new_user("InTurn", 1_000).await;
    futures::future::join_all((0..ORDERS).map(|_| lattice.order(&user, 1))).await;
    lattice.await_notifications(&user, ORDERS).await;
    assert_eq!(lattice.balance(&user).await, 1_000 - ORDERS as u64);

    let account = format!("account/{user}");
    let writes_account = |s: &&Value| {
        s["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("keyvalue write"))
            && s["attributes"]["key"]
                .as_str()
                .is_some_and(|k| k.contains(&account))
    };
    // Each batch's work is in the trace of its first order, beside that order's delivery span,
    // which says how many orders the batch held: once they add up to every order, every write of
    // the account has been exported.
    let settled_in = |trace: &Value| -> usize {
        spans(trace)
            .filter(|s| s["attributes"]["messaging.consumer.group.name"] == "billing")
            .filter_map(|s| {
                s["attributes"]["messaging.batch.message_count"]
                    .as_str()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    };
    let traces = Telemetry::from_env()
        .await_traces(&account, "for every order of the account", |traces| {
            traces
                .iter()
                .filter(|t| spans(t).any(|s| writes_account(&s)))
                .map(settled_in)
                .sum::<usize>()
                >= ORDERS
        })
        .await;
    let writes: Vec<&Value> = traces
        .iter()
        .flat_map(spans)
        .filter(writes_account)
        .collect();
    assert!(
        (1..=ORDERS).contains(&writes.len()),
        "{} writes of the account for {ORDERS} orders",
        writes.len()
    );
    for write in writes {
        assert_eq!(
            write["attributes"]["lost"], "0",
            "a write of the account lost to another: {write:#}"
        );
    }
}
