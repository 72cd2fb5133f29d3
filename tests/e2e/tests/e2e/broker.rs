//! What crosses the broker: binary protobuf on `orders.placed.<partition>.<order id>` and
//! `payments.settled`, and what becomes of a message no consumer can handle.

use std::collections::HashMap;
use std::time::Duration;

use orders_domain::OrderId;
use orders_e2e::{lattice_test, next_matching, publish_order, subscribed, unique, Lattice};
use orders_wire::proto::{OrderPlaced, PaymentOutcome, PaymentResult};
use orders_wire::subjects;
use serde_json::{json, Value};

#[lattice_test]
async fn an_order_crosses_the_broker_on_its_accounts_partition_and_comes_back_as_a_payment_result(
    lattice: Lattice,
) {
    let nats = lattice.nats().await;
    let user = lattice.new_user("Broker", 100).await;
    // The account's partition: every order of the user, whatever its id.
    let any_id = subjects::order_placed(&user, OrderId::parse("any").unwrap());
    let partition = any_id.rsplit_once('.').unwrap().0;
    let mut placed = subscribed(&nats, format!("{partition}.*")).await;
    let mut settled = subscribed(&nats, subjects::PAYMENT_SETTLED).await;

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

#[lattice_test]
async fn refused_input_publishes_nothing(lattice: Lattice) {
    let nats = lattice.nats().await;
    let mut placed = subscribed(&nats, subjects::ORDER_PLACED_SUBJECTS).await;
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

#[lattice_test]
async fn every_order_of_a_busy_account_delivered_again_gets_its_first_result_and_is_not_charged_again(
) {
    // More orders than an account keeps settlements of (billing-core MAX_REMEMBERED_SETTLEMENTS,
    // 32), so the oldest have moved to payment records of their own by the time they come again.
    const ORDERS: usize = 40;
    let lattice = Lattice::from_env();
    let nats = lattice.nats().await;
    let mut placed = subscribed(&nats, subjects::ORDER_PLACED_SUBJECTS).await;
    let mut settled = subscribed(&nats, subjects::PAYMENT_SETTLED).await;
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

#[lattice_test]
async fn an_order_no_consumer_can_handle_becomes_a_dead_letter_the_admin_sees_and_nothing_is_charged(
    lattice: Lattice,
) {
    // A user name billing refuses: it gives up on it after its 10 attempts (~20 s).
    let order = OrderPlaced {
        order_id: unique("dead"),
        user: " ".into(),
        sum: 5,
        placed_at_ms: 1,
        key_sha256: vec![],
    };
    publish_order(&lattice, &order).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mine = loop {
        let answer = lattice.get_as_admin("/DeadLetters").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let mine: Vec<Value> = answer.body["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["order_id"] == json!(order.order_id))
            .cloned()
            .collect();
        if !mine.is_empty() {
            break mine;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters of {} after 60 s: {mine:?}",
            order.order_id
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let consumers: Vec<_> = mine.iter().map(|d| d["consumer"].clone()).collect();
    assert_eq!(consumers, [json!("billing")]);
    assert!(mine
        .iter()
        .all(|d| d["settled"] == json!(false) && d["sum"] == json!(5)));
    let status = lattice
        .get_as_admin(&format!("/OrderStatus?order_id={}", order.order_id))
        .await;
    assert_eq!(
        (status.status, status.error_code()),
        (404, "unknown_order"),
        "an order nobody could handle has no status: {status:?}"
    );
    let someone = lattice.new_user("NotDead", 0).await;
    let refused = lattice.get_as(&someone, "/DeadLetters").await;
    assert_eq!((refused.status, refused.error_code()), (403, "forbidden"));
}
