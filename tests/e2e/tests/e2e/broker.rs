//! What crosses the broker: binary protobuf on `orders.placed` and `payments.settled`.

use std::collections::HashMap;

use orders_common::proto::{OrderPlaced, PaymentOutcome, PaymentResult};
use orders_common::subjects;
use orders_e2e::{next_matching, Lattice};
use serde_json::json;

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn an_order_crosses_the_broker_as_order_placed_and_comes_back_as_a_payment_result() {
    let lattice = Lattice::from_env();
    let nats = lattice.nats().await;
    let mut placed = nats.subscribe(subjects::ORDER_PLACED).await.unwrap();
    let mut settled = nats.subscribe(subjects::PAYMENT_SETTLED).await.unwrap();
    nats.flush().await.unwrap();

    let user = lattice.new_user("Broker", 100).await;
    let order_id = lattice.order(&user, 30).await;

    let order = next_matching(&mut placed, |m: &OrderPlaced| m.order_id == order_id).await;
    assert_eq!((order.user.as_str(), order.sum), (user.as_str(), 30));
    assert!(order.placed_at_ms > 0);
    assert_eq!(
        order.key_sha256,
        orders_e2e::key_sha256(&lattice.key(&user)),
        "the order names the key it was placed with, by hash only"
    );

    let result = next_matching(&mut settled, |m: &PaymentResult| m.order_id == order_id).await;
    assert_eq!(result.outcome(), PaymentOutcome::Paid);
    assert_eq!(
        (result.user.as_str(), result.sum, result.balance),
        (user.as_str(), 30, Some(70))
    );
}

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn refused_input_publishes_nothing() {
    let lattice = Lattice::from_env();
    let nats = lattice.nats().await;
    let mut placed = nats.subscribe(subjects::ORDER_PLACED).await.unwrap();
    nats.flush().await.unwrap();
    let user = lattice.new_user("Silent", 0).await;

    for body in [
        json!({ "user": user, "sum": 0 }),
        json!({ "user": user, "sum": "1" }),
        json!({ "user": "", "sum": 1 }),
    ] {
        assert!(lattice.post_as(&user, "/Order", body).await.status >= 400);
    }
    let marker = lattice.order(&user, 1).await;
    let first = next_matching(&mut placed, |m: &OrderPlaced| m.user == user).await;
    assert_eq!(
        first.order_id, marker,
        "the first order of this user on the broker is the valid one"
    );
}

/// The next `count` messages on `subscription` that decode as `M` and are `user`'s, by order id.
async fn of_user<M: prost::Message + Default>(
    subscription: &mut async_nats::Subscriber,
    user: &str,
    count: usize,
    user_and_id: impl Fn(&M) -> (&str, &str),
) -> HashMap<String, M> {
    let mut found = HashMap::new();
    while found.len() < count {
        let message = next_matching(subscription, |m: &M| user_and_id(m).0 == user).await;
        found.insert(user_and_id(&message).1.to_string(), message);
    }
    found
}

fn result_ids(result: &PaymentResult) -> (&str, &str) {
    (&result.user, &result.order_id)
}

#[tokio::test]
#[ignore = "drives a running lattice: `make test` starts one and runs these"]
async fn every_order_of_a_busy_account_delivered_again_gets_its_first_result_and_is_not_charged_again(
) {
    // More orders than an account keeps settlements of (billing-core MAX_REMEMBERED_SETTLEMENTS,
    // 32), so the oldest have moved to payment records of their own by the time they come again.
    const ORDERS: usize = 40;
    let lattice = Lattice::from_env();
    let nats = lattice.nats().await;
    let mut placed = nats.subscribe(subjects::ORDER_PLACED).await.unwrap();
    let mut settled = nats.subscribe(subjects::PAYMENT_SETTLED).await.unwrap();
    nats.flush().await.unwrap();
    let user = lattice.new_user("Busy", 1_000).await;

    futures::future::join_all((0..ORDERS).map(|_| lattice.order(&user, 1))).await;
    let orders = of_user(&mut placed, &user, ORDERS, |m: &OrderPlaced| {
        (&m.user, &m.order_id)
    })
    .await;
    let first = of_user(&mut settled, &user, ORDERS, result_ids).await;
    assert!(first.values().all(|r| r.outcome() == PaymentOutcome::Paid));
    assert_eq!(lattice.balance(&user).await, 1_000 - ORDERS as u64);

    for order in orders.values() {
        orders_e2e::publish_order(&lattice, order).await;
    }
    let again = of_user(&mut settled, &user, ORDERS, result_ids).await;
    assert_eq!(
        again, first,
        "the same results, settlement times and balances included"
    );
    assert_eq!(lattice.balance(&user).await, 1_000 - ORDERS as u64);
    assert_eq!(
        lattice.await_notifications(&user, ORDERS).await.len(),
        ORDERS
    );
}
