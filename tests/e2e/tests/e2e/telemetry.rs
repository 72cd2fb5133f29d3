//! Traces and metrics: the host and our providers export their spans (OpenTelemetry, OTLP/HTTP) to
//! the test lattice's receiver, orders-telemetry; one order is one trace from the HTTP request to
//! the notification, across the broker, and its metrics count it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orders_e2e::{placing_trace, spans, Lattice, Telemetry};
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

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn an_order_is_one_connected_trace_from_its_request_through_order_billing_and_notify() {
    let lattice = Lattice::from_env();
    let user = lattice.new_user("Traced", 100).await;
    let order_id = lattice.order(&user, 10).await;
    lattice.await_settled(&user, &order_id).await;

    let wanted = ["orders-billing", "orders-notify", "orders-order"];
    let services = [
        "wasmcloud-host",
        "http-server-provider",
        "messaging-jetstream-provider",
        "keyvalue-jetstream-provider",
    ];
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

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn metrics_count_a_paid_order_its_request_and_show_every_consumers_lag() {
    let lattice = Lattice::from_env();
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
    for consumer in ["billing", "notify", "notify-orders", "notify-deadletters"] {
        assert!(
            after.contains(&format!(
                "orders_consumer_waiting{{consumer=\"{consumer}\"}}"
            )),
            "no lag of {consumer}: {after}"
        );
    }
    assert!(after.contains(r#"orders_stream_messages{stream="DEADLETTER"}"#));
}

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn a_busy_accounts_orders_placed_at_once_are_settled_in_turn_each_with_one_write() {
    // One account's orders share one partition subject, and billing's link hands them over one
    // after another: no order of the account races another for the balance, so each order's
    // trace holds exactly one write of the account. Orders that raced would show a second write
    // (a compare-and-swap lost, then retried) in some of their traces.
    const ORDERS: usize = 20;
    let lattice = Lattice::from_env();
    let user = lattice.new_user("InTurn", 1_000).await;
    let order_ids = futures::future::join_all((0..ORDERS).map(|_| lattice.order(&user, 1))).await;
    lattice.await_notifications(&user, ORDERS).await;
    assert_eq!(lattice.balance(&user).await, 1_000 - ORDERS as u64);

    let account = format!("account/{user}");
    let telemetry = Telemetry::from_env();
    let mut account_writes = Vec::new();
    for order_id in &order_ids {
        // The key-value provider exports its spans in the order they end, so once notify's
        // write of the notification is in, billing's earlier writes are too.
        let traces = telemetry
            .await_traces(order_id, "down to its notification's write", |traces| {
                placing_trace(traces).is_some_and(|t| {
                    spans(t).any(|s| {
                        s["name"] == "keyvalue write"
                            && s["attributes"]["key"]
                                .as_str()
                                .is_some_and(|key| key.starts_with("notification"))
                    })
                })
            })
            .await;
        let trace = placing_trace(&traces).unwrap();
        account_writes.push(
            spans(trace)
                .filter(|s| {
                    s["name"] == "keyvalue write" && s["attributes"]["key"] == account.as_str()
                })
                .count(),
        );
    }
    assert_eq!(
        account_writes,
        vec![1; ORDERS],
        "writes of the account in each order's trace"
    );
}
