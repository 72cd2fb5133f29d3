//! `Idempotency-Key` on `POST /Order`: a retried request never places a second order.

use orders_e2e::{lattice_test, unique, Lattice};
use serde_json::json;

async fn order_with_key(lattice: &Lattice, key: &str, user: &str, sum: i64) -> orders_e2e::Answer {
    let response = reqwest::Client::new()
        .post(format!("{}/Order", lattice.base_url))
        .bearer_auth(lattice.key(user))
        .header("Idempotency-Key", key)
        .body(json!({ "user": user, "sum": sum }).to_string())
        .send()
        .await
        .unwrap();
    orders_e2e::answer(response).await
}

#[lattice_test]
async fn a_retried_order_with_the_same_key_is_placed_and_charged_once(lattice: Lattice) {
    let user = lattice.new_user("Retry", 100).await;
    let key = unique("key");
    let first = order_with_key(&lattice, &key, &user, 10).await;
    let retry = order_with_key(&lattice, &key, &user, 10).await;
    assert_eq!((first.status, retry.status), (202, 202));
    assert_eq!(first.body["order_id"], retry.body["order_id"]);

    lattice.await_notifications(&user, 1).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(lattice.notifications(&user).await.len(), 1);
    assert_eq!(lattice.balance(&user).await, 90);
}

#[lattice_test]
async fn the_same_key_for_a_different_order_is_a_conflict(lattice: Lattice) {
    let user = lattice.new_user("Reuse", 100).await;
    let key = unique("key");
    assert_eq!(order_with_key(&lattice, &key, &user, 10).await.status, 202);
    let other = order_with_key(&lattice, &key, &user, 20).await;
    assert_eq!(
        (other.status, other.body["error"].clone()),
        (409, json!("idempotency_conflict"))
    );
    lattice.await_notifications(&user, 1).await;
    assert_eq!(lattice.balance(&user).await, 90);
}

#[lattice_test]
async fn a_malformed_key_is_400(lattice: Lattice) {
    let user = lattice.new_user("Key", 0).await;
    let answer = order_with_key(&lattice, "has space", &user, 10).await;
    assert_eq!(
        (answer.status, answer.body["error"].clone()),
        (400, json!("invalid_idempotency_key"))
    );
}
