//! `POST /Refund`: a paid order's money back, once per refund however often it is asked, never
//! more than was paid, with its ledger entry, its notification and the order's status.

use std::time::Duration;

use orders_e2e::{
    encode, key_sha256, lattice_test, next_matching, publish_order, subscribed, unique, Answer,
    Lattice,
};
use orders_wire::proto::{OrderPlaced, RefundRequested};
use orders_wire::subjects;
use serde_json::json;

/// A user with `balance` who paid one order of `sum`; its id.
async fn paid_order(lattice: &Lattice, prefix: &str, balance: i64, sum: i64) -> (String, String) {
    let user = lattice.new_user(prefix, balance).await;
    let id = lattice.order(&user, sum).await;
    assert_eq!(lattice.await_settled(&user, &id).await["state"], "paid");
    (user, id)
}

/// The newest `limit` entries of `user`'s statement, as (kind, amount, balance after).
async fn newest_entries(lattice: &Lattice, user: &str, limit: u32) -> Vec<(String, u64, u64)> {
    let page = lattice
        .get_as(
            user,
            &format!("/Statement?user={}&limit={limit}", encode(user)),
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["amount"].as_u64().unwrap(),
                e["balance_after"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn refused(answer: &Answer) -> (u16, &str) {
    (answer.status, answer.error_code())
}

#[lattice_test]
async fn a_refund_asked_twice_with_one_key_credits_once_and_is_notified_once(lattice: Lattice) {
    let (user, id) = paid_order(&lattice, "Refund", 100, 30).await;
    let key = unique("refund");
    let first = lattice.refund(&user, &id, None, Some(&key)).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        (
            &first.body["sum"],
            &first.body["refunded"],
            &first.body["balance"]
        ),
        (&json!(30), &json!(30), &json!(100))
    );
    let again = lattice.refund(&user, &id, None, Some(&key)).await;
    assert_eq!(again.body, first.body, "the retry is answered as the first");
    assert_eq!(lattice.balance(&user).await, 100);

    let notifications = lattice.await_notifications(&user, 2).await;
    let refund = &notifications[1];
    assert_eq!(
        (&refund["reason"], &refund["sum"], &refund["refund_id"]),
        (&json!("refunded"), &json!(30), &first.body["refund_id"])
    );
    let status = lattice.order_status(&user, &id).await.body;
    assert_eq!(
        (&status["state"], &status["refunded"]),
        (&json!("refunded"), &json!(30))
    );
    assert_eq!(
        newest_entries(&lattice, &user, 2).await,
        [("refund".into(), 30, 100), ("payment".into(), 30, 70)]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lattice.notifications(&user).await.len(),
        2,
        "one refund notification"
    );
}

#[lattice_test]
async fn partial_refunds_give_back_up_to_the_paid_sum_and_never_more(lattice: Lattice) {
    let (user, id) = paid_order(&lattice, "Partial", 100, 30).await;
    assert_eq!(lattice.refund(&user, &id, Some(10), None).await.status, 200);
    assert_eq!(lattice.await_notifications(&user, 2).await.len(), 2);
    let status = lattice.order_status(&user, &id).await.body;
    assert_eq!(
        (&status["state"], &status["refunded"]),
        (&json!("partially_refunded"), &json!(10))
    );
    let over = lattice.refund(&user, &id, Some(21), None).await;
    assert_eq!(refused(&over), (422, "refund_exceeds_payment"));
    assert!(
        over.body["message"].as_str().unwrap().contains("20 left"),
        "{over:?}"
    );
    let rest = lattice.refund(&user, &id, None, None).await;
    assert_eq!((rest.status, &rest.body["sum"]), (200, &json!(20)));
    let nothing_left = lattice.refund(&user, &id, Some(1), None).await;
    assert_eq!(refused(&nothing_left), (422, "refund_exceeds_payment"));
    assert_eq!(lattice.balance(&user).await, 100);
    lattice.await_notifications(&user, 3).await;
    assert_eq!(
        lattice.order_status(&user, &id).await.body["state"],
        "refunded"
    );
}

#[lattice_test]
async fn a_refund_of_an_unpaid_unknown_or_other_users_order_is_refused_and_publishes_nothing(
    lattice: Lattice,
) {
    let (user, paid) = paid_order(&lattice, "Refused", 10, 10).await;
    let nats = lattice.nats().await;
    let mut requests = subscribed(&nats, format!("{}.>", subjects::REFUND_REQUESTED)).await;
    let unpaid = lattice.order(&user, 1_000).await;
    assert_eq!(
        lattice.await_settled(&user, &unpaid).await["state"],
        "refused"
    );
    let other = lattice.new_user("Other", 0).await;

    for (answer, expected) in [
        (
            lattice.refund(&user, &unpaid, None, None).await,
            (409, "order_not_paid"),
        ),
        (
            lattice
                .refund(&user, &unique("nobody-placed"), None, None)
                .await,
            (404, "unknown_payment"),
        ),
        (
            lattice.refund(&other, &paid, None, None).await,
            (404, "unknown_payment"),
        ),
        (
            lattice.refund(&user, &paid, Some(11), None).await,
            (422, "refund_exceeds_payment"),
        ),
        (
            lattice.refund(&user, &paid, Some(-1), None).await,
            (422, "invalid_sum"),
        ),
        (
            lattice.refund(&user, &paid, None, Some("has space")).await,
            (400, "invalid_idempotency_key"),
        ),
    ] {
        assert_eq!(refused(&answer), expected, "{answer:?}");
        assert_eq!(answer.body["status"], json!(false));
    }
    let mine = |m: &RefundRequested| m.user == user || m.user == other;
    let published = tokio::time::timeout(
        Duration::from_millis(500),
        next_matching(&mut requests, mine),
    )
    .await;
    assert!(
        published.is_err(),
        "a refused refund is never published: {published:?}"
    );
    assert_eq!(lattice.balance(&user).await, 0);
    assert_eq!(
        newest_entries(&lattice, &user, 5).await.len(),
        2,
        "a deposit and a payment"
    );
}

#[lattice_test]
async fn fifty_concurrent_refunds_of_one_order_credit_it_once(lattice: Lattice) {
    let (user, id) = paid_order(&lattice, "Concurrent", 100, 40).await;
    // Fifty retries of one refund, and fifty different refunds of everything, all at once.
    let key = unique("refund");
    let retries = (0..50).map(|_| lattice.refund(&user, &id, None, Some(&key)));
    let others = (0..50).map(|_| lattice.refund(&user, &id, None, None));
    let (retries, others) = tokio::join!(
        futures::future::join_all(retries),
        futures::future::join_all(others)
    );
    let applied: Vec<&Answer> = retries
        .iter()
        .chain(&others)
        .filter(|a| a.status == 200)
        .collect();
    let refund_ids: std::collections::HashSet<String> = applied
        .iter()
        .map(|a| a.body["refund_id"].to_string())
        .collect();
    assert_eq!(
        refund_ids.len(),
        1,
        "one refund was applied: {refund_ids:?}"
    );
    for answer in retries.iter().chain(&others).filter(|a| a.status != 200) {
        assert_eq!(
            refused(answer),
            (422, "refund_exceeds_payment"),
            "{answer:?}"
        );
    }
    assert_eq!(lattice.balance(&user).await, 100);
    lattice.await_notifications(&user, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lattice.notifications(&user).await.len(), 2);
    let kinds: Vec<String> = newest_entries(&lattice, &user, 10)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(kinds, ["refund", "payment", "deposit"]);
}

#[lattice_test]
async fn a_refund_racing_a_redelivery_of_its_order_leaves_one_payment_and_one_refund(
    lattice: Lattice,
) {
    let user = lattice.new_user("Race", 100).await;
    let order = OrderPlaced {
        order_id: unique("race"),
        user: user.clone(),
        sum: 25,
        placed_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        key_sha256: key_sha256(&lattice.key(&user)),
    };
    publish_order(&lattice, &order).await;
    assert_eq!(
        lattice.await_settled(&user, &order.order_id).await["state"],
        "paid"
    );
    let redeliveries = async {
        for _ in 0..5 {
            publish_order(&lattice, &order).await;
        }
    };
    let (refund, ()) = tokio::join!(
        lattice.refund(&user, &order.order_id, None, None),
        redeliveries
    );
    assert_eq!(refund.status, 200, "{refund:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lattice.balance(&user).await, 100);
    assert_eq!(
        newest_entries(&lattice, &user, 10).await,
        [
            ("refund".into(), 25, 100),
            ("payment".into(), 25, 75),
            ("deposit".into(), 100, 100)
        ]
    );
    assert_eq!(lattice.await_notifications(&user, 2).await.len(), 2);
}
