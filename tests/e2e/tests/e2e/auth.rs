//! Who may do what: every endpoint but `POST /CreateUser` needs the user's API key (or, for views
//! and key recovery, the admin token); everything refused changes nothing and publishes nothing.

use orders_e2e::{
    encode, key_sha256, lattice_test, next_matching, publish_order, subscribed, unique, Answer,
    Lattice,
};
use orders_wire::proto::{OrderPlaced, PaymentOutcome, PaymentResult};
use orders_wire::subjects;
use reqwest::Method;
use serde_json::json;

/// Every authenticated endpoint, asked about `user` with `token` (or none).
async fn every_endpoint(
    lattice: &Lattice,
    user: &str,
    token: Option<&str>,
) -> Vec<(String, Answer)> {
    let query = encode(user);
    let calls = [
        (
            Method::POST,
            "/DepositCash".to_string(),
            Some(json!({ "user": user, "sum": 5 })),
        ),
        (
            Method::POST,
            "/Order".to_string(),
            Some(json!({ "user": user, "sum": 5 })),
        ),
        (
            Method::POST,
            "/RotateKey".to_string(),
            Some(json!({ "user": user })),
        ),
        (
            Method::POST,
            "/Refund".to_string(),
            Some(json!({ "user": user, "order_id": "any-order" })),
        ),
        (Method::GET, format!("/Balance?user={query}"), None),
        (Method::GET, format!("/Statement?user={query}"), None),
        (Method::GET, format!("/List?user={query}"), None),
    ];
    let mut answers = Vec::new();
    for (method, path, body) in calls {
        let body = body.map(|b| reqwest::Body::from(b.to_string()));
        let answer = lattice.send(method.clone(), &path, token, body).await;
        answers.push((format!("{method} {path}"), answer));
    }
    answers
}

/// Nothing happened to `user`: the balance is `balance` and no order reached the broker.
async fn assert_untouched(lattice: &Lattice, user: &str, balance: u64) {
    assert_eq!(lattice.balance(user).await, balance);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        lattice.notifications(user).await.is_empty(),
        "no order was settled"
    );
}

#[lattice_test]
async fn every_endpoint_without_a_key_is_401_and_changes_nothing(lattice: Lattice) {
    let user = lattice.new_user("NoKey", 100).await;
    let mut answers = every_endpoint(&lattice, &user, None).await;
    answers.push(("GET /List".into(), lattice.get("/List").await));
    for (call, answer) in answers {
        assert_eq!(
            (answer.status, answer.error_code()),
            (401, "unauthorized"),
            "{call}"
        );
        assert_eq!(answer.body["status"], json!(false), "{call}");
    }
    assert_untouched(&lattice, &user, 100).await;
}

#[lattice_test]
async fn a_401_names_the_bearer_scheme(lattice: Lattice) {
    let answer = lattice.get("/List").await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"].to_str().unwrap(),
        r#"Bearer realm="orders""#
    );
}

#[lattice_test]
async fn another_users_key_is_403_everywhere_and_changes_nothing(lattice: Lattice) {
    let pavel = lattice.new_user("Pavel", 100).await;
    let anna = lattice.new_user("Anna", 0).await;
    let annas_key = lattice.key(&anna);
    for (call, answer) in every_endpoint(&lattice, &pavel, Some(&annas_key)).await {
        assert_eq!(
            (answer.status, answer.error_code()),
            (403, "forbidden"),
            "{call}"
        );
    }
    assert_untouched(&lattice, &pavel, 100).await;
}

#[lattice_test]
async fn a_forged_or_garbled_key_is_401(lattice: Lattice) {
    let user = lattice.new_user("Forged", 100).await;
    let key = lattice.key(&user);
    let last = key.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    for token in [
        flipped.as_str(),
        "olk_x.y.z",
        "not-a-key",
        &key[..key.len() - 3],
    ] {
        for (call, answer) in every_endpoint(&lattice, &user, Some(token)).await {
            assert_eq!(
                (answer.status, answer.error_code()),
                (401, "unauthorized"),
                "{call} {token}"
            );
        }
    }
    let basic = reqwest::Client::new()
        .get(format!("{}/List?user={}", lattice.base_url, encode(&user)))
        .header("authorization", "Basic dXNlcjpwYXNzd29yZA==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "only the Bearer scheme is accepted");
    assert_untouched(&lattice, &user, 100).await;
}

#[lattice_test]
async fn the_admin_token_sees_everyone_but_cannot_move_anyones_money(lattice: Lattice) {
    let user = lattice.new_user("Watched", 100).await;
    lattice.order(&user, 10).await;
    lattice.await_notifications(&user, 1).await;

    let admin = lattice.admin_token.clone();
    let all = lattice.every_page("/List?limit=1000", &admin).await;
    assert!(all.iter().any(|n| n["user"] == json!(user)));
    let balance = lattice
        .get_as_admin(&format!("/Balance?user={}", encode(&user)))
        .await;
    assert_eq!(
        (balance.status, balance.body["balance"].clone()),
        (200, json!(90))
    );

    for path in ["/DepositCash", "/Order"] {
        let body = json!({ "user": user, "sum": 5 }).to_string();
        let answer = lattice
            .send(Method::POST, path, Some(&admin), Some(body.into()))
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (403, "forbidden"),
            "{path}"
        );
    }
    let as_user = lattice.get_as(&user, "/List").await;
    assert_eq!(
        (as_user.status, as_user.error_code()),
        (403, "forbidden"),
        "a user's key is not the admin token"
    );
    assert_eq!(lattice.balance(&user).await, 90);
    assert_eq!(lattice.notifications(&user).await.len(), 1);
}

#[lattice_test]
async fn a_rotated_key_is_refused_by_every_endpoint_at_once_reads_included(lattice: Lattice) {
    let user = lattice.new_user("Rotating", 100).await;
    let old = lattice.key(&user);
    let placed = lattice.order(&user, 10).await;
    lattice.await_settled(&user, &placed).await;
    let rotated = lattice
        .post_as(&user, "/RotateKey", json!({ "user": user }))
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let new = rotated.body["api_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    lattice.remember_key(&user, &new);

    // The very next request with the old key, to each service: nothing reads, nothing is placed.
    let status_path = format!("/OrderStatus?order_id={placed}");
    let mut answers = every_endpoint(&lattice, &user, Some(&old)).await;
    answers.push((
        format!("GET {status_path}"),
        lattice
            .send(Method::GET, &status_path, Some(&old), None)
            .await,
    ));
    for (call, answer) in &answers {
        assert_eq!(
            (answer.status, answer.error_code()),
            (401, "unauthorized"),
            "{call} with the replaced key: {answer:?}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        lattice.notifications(&user).await.len(),
        1,
        "no order was placed"
    );
    assert_eq!(
        lattice.balance(&user).await,
        90,
        "nothing deposited or charged"
    );

    // The new key does all of it.
    assert_eq!(lattice.get_as(&user, &status_path).await.status, 200);
    lattice.order(&user, 10).await;
    lattice.await_notifications(&user, 2).await;
    assert_eq!(
        lattice.balance(&user).await,
        80,
        "the account and its money stayed"
    );
}

#[lattice_test]
async fn an_order_carrying_a_key_replaced_before_it_was_placed_is_refused_by_billing(
    lattice: Lattice,
) {
    // order refuses such a key itself; this is an order that reached the broker anyway (in
    // flight while the key was replaced, or published by a client of the broker).
    let user = lattice.new_user("Replaced", 100).await;
    let old = lattice.key(&user);
    let rotated = lattice
        .post_as(&user, "/RotateKey", json!({ "user": user }))
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    lattice.remember_key(&user, rotated.body["api_key"].as_str().unwrap());
    let placed_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    publish_order(
        &lattice,
        &OrderPlaced {
            order_id: unique("stale").replace('_', "-"),
            user: user.clone(),
            sum: 10,
            placed_at_ms,
            key_sha256: key_sha256(&old),
        },
    )
    .await;
    let listed = lattice.await_notifications(&user, 1).await;
    assert_eq!(
        (listed[0]["paid"].clone(), listed[0]["reason"].clone()),
        (json!(false), json!("key_replaced"))
    );
    assert_eq!(lattice.balance(&user).await, 100, "nothing charged");
}

#[lattice_test]
async fn the_admin_gives_a_user_who_lost_the_key_a_new_one(lattice: Lattice) {
    let user = lattice.new_user("Forgetful", 100).await;
    let admin = lattice.admin_token.clone();
    let body = json!({ "user": user }).to_string();
    let rotated = lattice
        .send(Method::POST, "/RotateKey", Some(&admin), Some(body.into()))
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    lattice.remember_key(&user, rotated.body["api_key"].as_str().unwrap());
    assert_eq!(lattice.balance(&user).await, 100);
}

#[lattice_test]
async fn an_order_forged_on_the_broker_without_the_users_key_charges_nothing(lattice: Lattice) {
    let nats = lattice.nats().await;
    let mut settled = subscribed(&nats, subjects::PAYMENT_SETTLED).await;
    let victim = lattice.new_user("Victim", 100).await;
    let thief = lattice.new_user("Thief", 0).await;
    let forged = OrderPlaced {
        order_id: unique("forged").replace('_', "-"),
        user: victim.clone(),
        sum: 100,
        placed_at_ms: 1,
        key_sha256: key_sha256(&lattice.key(&thief)),
    };
    publish_order(&lattice, &forged).await;
    let result = next_matching(&mut settled, |m: &PaymentResult| {
        m.order_id == forged.order_id
    })
    .await;
    assert_eq!(result.outcome(), PaymentOutcome::KeyReplaced);
    assert_eq!(lattice.balance(&victim).await, 100);
}
