//! Fault tests on the real lattice: duplicated deliveries, a consumer stopped while orders pile up,
//! and a handler that fails until its store comes back. They stop parts of the application through
//! wadm, so `make test` runs them alone, after the other end-to-end tests.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use orders_common::proto::OrderPlaced;
use orders_common::subjects;
use orders_e2e::{unique, Lattice, Operator};
use prost::Message as _;
use serde_json::json;

#[tokio::test]
#[ignore = "stops parts of a running lattice: `make test` runs these alone"]
async fn every_order_delivered_twice_is_charged_once() {
    let lattice = Lattice::from_env();
    let user = lattice.new_user("Twice", 100).await;
    let js = async_nats::jetstream::new(lattice.nats().await);
    for i in 0..10 {
        let order = OrderPlaced {
            order_id: unique("dup").replace('_', "-") + &format!("-{i}"),
            user: user.clone(),
            sum: 10,
            placed_at_ms: 1,
        };
        for _ in 0..2 {
            js.publish(subjects::ORDER_PLACED, order.encode_to_vec().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    let listed = lattice.await_notifications(&user, 10).await;
    assert!(listed.iter().all(|n| n["paid"] == json!(true)));
    assert_eq!(
        lattice.balance(&user).await,
        0,
        "20 deliveries of 10 orders of 10 charged 100"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lattice.notifications(&user).await.len(),
        10,
        "one notification per order, not per delivery"
    );
    println!(
        "duplicates: 10 orders delivered twice (20 deliveries): 10 charged, 0 doubled, 0 lost"
    );
}

#[tokio::test]
#[ignore = "stops parts of a running lattice: `make test` runs these alone"]
async fn orders_accepted_while_billing_is_stopped_are_all_paid_once_it_is_back() {
    let lattice = Lattice::from_env();
    let operator = Operator::from_env();
    let user = lattice.new_user("Outage", 1000).await;

    operator
        .deploy_scaled("billing-stopped", &[("billing", 0)])
        .await;
    let orders = (0..100).map(|_| lattice.order(&user, 10));
    let accepted = futures::future::join_all(orders).await;
    assert_eq!(accepted.len(), 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        lattice.notifications(&user).await.is_empty(),
        "nothing is paid while billing is stopped"
    );

    let restarted = Instant::now();
    operator.restore().await;
    let listed = lattice.await_notifications(&user, 100).await;
    let drained = restarted.elapsed();
    assert!(listed.iter().all(|n| n["paid"] == json!(true)));
    assert_eq!(
        lattice.balance(&user).await,
        0,
        "100 orders of 10 charged exactly 1000"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lattice.notifications(&user).await.len(), 100);
    println!("outage: 100 orders accepted while billing was stopped: 100 paid, 0 lost, 0 doubled; backlog drained {drained:?} after the redeploy began");
}

#[tokio::test]
#[ignore = "stops parts of a running lattice: `make test` runs these alone"]
async fn a_handler_that_fails_is_retried_and_the_order_is_paid_once() {
    let lattice = Lattice::from_env();
    let operator = Operator::from_env();
    let nats = lattice.nats().await;
    let mut dead_letters = nats.subscribe("deadletter.>").await.unwrap();
    nats.flush().await.unwrap();
    let user = lattice.new_user("Flaky", 100).await;

    // Without its key-value store, billing's handler fails on every delivery of the order.
    operator
        .deploy_scaled("keyvalue-stopped", &[("keyvalue", 0)])
        .await;
    let order_id = lattice.order(&user, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.restore().await;

    let listed = lattice.await_notifications(&user, 1).await;
    assert_eq!(
        (listed[0]["order_id"].clone(), listed[0]["paid"].clone()),
        (json!(order_id), json!(true))
    );
    assert_eq!(lattice.balance(&user).await, 90);
    let dead = tokio::time::timeout(Duration::from_millis(500), dead_letters.next()).await;
    assert!(dead.is_err(), "nothing was dead-lettered: {dead:?}");
    println!("failing handler: 1 order redelivered until billing could settle it: paid once, 0 dead letters");
}
