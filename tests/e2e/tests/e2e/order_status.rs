//! `GET /OrderStatus?order_id=`: where an order stands, from the order as stream `ORDERS` keeps it
//! and notify's records, for its user and the admin only.

use orders_e2e::{lattice_test, publish_order, unique, Lattice};
use orders_wire::proto::OrderPlaced;
use serde_json::json;

#[lattice_test]
async fn an_accepted_order_ends_paid_or_refused_with_the_balance_after_it(lattice: Lattice) {
    let user = lattice.new_user("Status", 100).await;

    let affordable = lattice.order(&user, 10).await;
    let paid = lattice.await_settled(&user, &affordable).await;
    let unaffordable = lattice.order(&user, 1000).await;
    let refused = lattice.await_settled(&user, &unaffordable).await;

    assert_eq!(
        (
            &paid["state"],
            &paid["reason"],
            &paid["balance"],
            &paid["sum"]
        ),
        (&json!("paid"), &json!("paid"), &json!(90), &json!(10))
    );
    assert_eq!(
        (&refused["state"], &refused["reason"], &refused["balance"]),
        (&json!("refused"), &json!("insufficient_funds"), &json!(90))
    );
    for status in [&paid, &refused] {
        assert_eq!(status["user"], json!(user));
        assert!(
            status["placed_at_ms"].as_u64().unwrap() <= status["notified_at_ms"].as_u64().unwrap()
        );
    }
    let listed = lattice.await_notifications(&user, 2).await;
    assert_eq!(
        (&listed[0]["order_id"], &listed[1]["order_id"]),
        (&json!(affordable), &json!(unaffordable)),
        "the status and the notifications tell the same story"
    );
}

#[lattice_test]
async fn an_order_for_an_unknown_user_is_shown_to_the_admin_as_refused(lattice: Lattice) {
    let ghost = unique("Ghost");
    let order = OrderPlaced {
        order_id: unique("o"),
        user: ghost.clone(),
        sum: 5,
        placed_at_ms: 1,
        key_sha256: vec![],
    };
    publish_order(&lattice, &order).await;
    let status = lattice.await_settled(&ghost, &order.order_id).await;
    assert_eq!(
        (&status["state"], &status["reason"], &status["balance"]),
        (&json!("refused"), &json!("unknown_user"), &json!(null))
    );
}

#[lattice_test]
async fn an_order_is_visible_to_its_user_and_the_admin_only(lattice: Lattice) {
    let owner = lattice.new_user("Owner", 100).await;
    let stranger = lattice.new_user("Stranger", 0).await;
    let id = lattice.order(&owner, 10).await;
    lattice.await_settled(&owner, &id).await;

    let path = format!("/OrderStatus?order_id={id}");
    let as_stranger = lattice.get_as(&stranger, &path).await;
    assert_eq!(
        (as_stranger.status, as_stranger.error_code()),
        (404, "unknown_order"),
        "another user's order is as unknown as one that does not exist: {as_stranger:?}"
    );
    let as_admin = lattice.get_as_admin(&path).await;
    assert_eq!(
        (as_admin.status, &as_admin.body["state"]),
        (200, &json!("paid"))
    );
    let without_key = lattice.get(&path).await;
    assert_eq!(
        (without_key.status, without_key.error_code()),
        (401, "unauthorized")
    );
}

#[lattice_test]
async fn asking_for_an_order_wrongly_gets_a_clear_error(lattice: Lattice) {
    let never_placed = "0f6c5a10-0000-4000-8000-000000000000";
    for (path, status, code) in [
        (
            format!("/OrderStatus?order_id={never_placed}"),
            404,
            "unknown_order",
        ),
        (
            "/OrderStatus?order_id=not%20an%20id".to_string(),
            422,
            "invalid_order_id",
        ),
        ("/OrderStatus".to_string(), 400, "missing_parameter"),
    ] {
        let answer = lattice.get_as_admin(&path).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (status, code),
            "{path}: {answer:?}"
        );
        assert_eq!(answer.body["status"], json!(false));
    }
    let posted = lattice
        .request(reqwest::Method::POST, "/OrderStatus?order_id=x")
        .await;
    assert_eq!(
        (posted.status, posted.error_code()),
        (405, "method_not_allowed")
    );
}
