//! The seed's scenario and the API's answers, endpoint by endpoint.

use orders_e2e::{lattice_test, unique, Lattice};
use serde_json::json;

#[lattice_test]
async fn the_seed_scenario_pays_the_affordable_order_and_refuses_the_other(lattice: Lattice) {
    let pavel = unique("Pavel");

    let created = lattice.post("/CreateUser", json!({ "user": pavel })).await;
    assert_eq!(created.status, 201);
    let key = created.body["api_key"]
        .as_str()
        .expect("the user's API key");
    assert!(key.starts_with("olk_"), "{key}");
    assert_eq!(
        created.body,
        json!({ "status": true, "user": pavel, "balance": 0, "api_key": key })
    );
    lattice.remember_key(&pavel, key);

    let deposited = lattice.deposit(&pavel, 100).await;
    assert_eq!(deposited.status, 200);
    assert_eq!(
        deposited.body,
        json!({ "status": true, "user": pavel, "balance": 100 })
    );

    let affordable = lattice.order(&pavel, 10).await;
    let listed = lattice.await_notifications(&pavel, 1).await;
    let unaffordable = lattice.order(&pavel, 1000).await;
    let listed_after = lattice.await_notifications(&pavel, 2).await;
    assert_eq!(
        listed_after[0], listed[0],
        "the list is oldest first and earlier entries stay"
    );

    let paid = &listed_after[0];
    assert_eq!(paid["order_id"], json!(affordable));
    assert_eq!(
        (paid["paid"].clone(), paid["reason"].clone()),
        (json!(true), json!("paid"))
    );
    assert_eq!(
        (paid["sum"].clone(), paid["balance"].clone()),
        (json!(10), json!(90))
    );
    let refused = &listed_after[1];
    assert_eq!(refused["order_id"], json!(unaffordable));
    assert_eq!(
        (refused["paid"].clone(), refused["reason"].clone()),
        (json!(false), json!("insufficient_funds"))
    );
    assert_eq!(refused["user"], json!(pavel));
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("insufficient funds"));
    assert!(refused["sent_at_ms"].as_u64().unwrap() >= paid["sent_at_ms"].as_u64().unwrap());

    assert_eq!(lattice.balance(&pavel).await, 90);
}

#[lattice_test]
async fn the_order_endpoint_answers_202_with_a_fresh_order_id(lattice: Lattice) {
    let user = lattice.new_user("Anna", 100).await;
    let first = lattice
        .post_as(&user, "/Order", json!({ "user": user, "sum": 10 }))
        .await;
    let second = lattice
        .post_as(&user, "/Order", json!({ "user": user, "sum": 10 }))
        .await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.body["status"], json!(true));
    assert_eq!(
        (first.body["user"].clone(), first.body["sum"].clone()),
        (json!(user), json!(10))
    );
    assert_ne!(first.body["order_id"], second.body["order_id"]);
    lattice.await_notifications(&user, 2).await;
    assert_eq!(lattice.balance(&user).await, 80);
}

#[lattice_test]
async fn an_order_on_the_broker_for_an_unknown_user_is_notified_as_refused(lattice: Lattice) {
    // Over HTTP nobody can order for a user without that user's key, so only the broker can
    // carry such an order (NATS access is the operator's).
    let ghost = unique("Ghost");
    let order = orders_wire::proto::OrderPlaced {
        order_id: unique("ghost-order").replace('_', "-"),
        user: ghost.clone(),
        sum: 10,
        placed_at_ms: 1,
        key_sha256: vec![0; 32],
    };
    orders_e2e::publish_order(&lattice, &order).await;
    let listed = lattice.await_notifications(&ghost, 1).await;
    assert_eq!(
        (listed[0]["paid"].clone(), listed[0]["reason"].clone()),
        (json!(false), json!("unknown_user"))
    );
    assert_eq!(listed[0]["balance"], serde_json::Value::Null);
    assert_eq!(
        lattice
            .get_as_admin(&format!("/Balance?user={ghost}"))
            .await
            .status,
        404,
        "no account was made"
    );
}

#[lattice_test]
async fn creating_a_user_twice_is_a_conflict_that_keeps_the_balance(lattice: Lattice) {
    let user = lattice.new_user("Boris", 70).await;
    let again = lattice.post("/CreateUser", json!({ "user": user })).await;
    assert_eq!((again.status, again.error_code()), (409, "user_exists"));
    assert_eq!(again.body["status"], json!(false));
    assert_eq!(lattice.balance(&user).await, 70);
}

#[lattice_test]
async fn the_balance_of_an_unknown_user_is_not_found(lattice: Lattice) {
    let ghost = unique("Ghost");
    let answer = lattice
        .get_as_admin(&format!("/Balance?user={ghost}"))
        .await;
    assert_eq!((answer.status, answer.error_code()), (404, "unknown_user"));
}

#[lattice_test]
async fn a_user_name_in_any_script_works_end_to_end(lattice: Lattice) {
    let user = lattice.new_user("Павел", 50).await;
    assert!(user.starts_with("Павел-"));
    lattice.order(&user, 20).await;
    let listed = lattice.await_notifications(&user, 1).await;
    assert_eq!(listed[0]["user"], json!(user));
    assert_eq!(lattice.balance(&user).await, 30);
}

#[lattice_test]
async fn the_full_list_holds_every_users_notifications_each_once(lattice: Lattice) {
    let a = lattice.new_user("ListA", 10).await;
    let b = lattice.new_user("ListB", 10).await;
    let order_a = lattice.order(&a, 10).await;
    let order_b = lattice.order(&b, 10).await;
    lattice.await_notifications(&a, 1).await;
    lattice.await_notifications(&b, 1).await;
    let token = lattice.admin_token.clone();
    let all = lattice.every_page("/List?limit=1000", &token).await;
    let ids: Vec<_> = all.iter().map(|n| n["order_id"].clone()).collect();
    for order in [order_a, order_b] {
        assert_eq!(
            ids.iter().filter(|id| **id == json!(order)).count(),
            1,
            "{order} in {} notifications",
            ids.len()
        );
    }
}

#[lattice_test]
async fn a_users_notifications_come_page_by_page_oldest_first(lattice: Lattice) {
    let user = lattice.new_user("Paged", 100).await;
    let placed = lattice.settled_orders(&user, 5, 1).await;
    let path = format!("/List?user={}&limit=2", orders_e2e::encode(&user));
    let first = lattice.get_as(&user, &path).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["notifications"].as_array().unwrap().len(), 2);
    assert!(first.body["next_after"].is_u64(), "{first:?}");
    let key = lattice.key(&user);
    let listed: Vec<_> = lattice
        .every_page(&path, &key)
        .await
        .iter()
        .map(|n| n["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, placed);
}
