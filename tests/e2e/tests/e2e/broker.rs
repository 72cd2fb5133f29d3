//! What crosses the broker: binary protobuf on `orders.placed` and `payments.settled`.

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
