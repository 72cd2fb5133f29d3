//! Concurrent requests on one account: never an overdraft, never a lost update.

use orders_e2e::{lattice_test, Lattice};
use serde_json::json;

#[lattice_test]
async fn fifty_concurrent_orders_of_10_on_a_balance_of_100_pay_exactly_ten(lattice: Lattice) {
    let user = lattice.new_user("Race", 100).await;
    let orders = (0..50).map(|_| lattice.order(&user, 10));
    let ids = futures::future::join_all(orders).await;
    assert_eq!(ids.len(), 50);

    let listed = lattice.await_notifications(&user, 50).await;
    let paid = listed.iter().filter(|n| n["paid"] == json!(true)).count();
    let refused = listed
        .iter()
        .filter(|n| n["reason"] == json!("insufficient_funds"))
        .count();
    assert_eq!((paid, refused), (10, 40));
    assert_eq!(lattice.balance(&user).await, 0);
}

#[lattice_test]
async fn concurrent_deposits_are_all_counted(lattice: Lattice) {
    let user = lattice.new_user("Deposits", 0).await;
    let deposits = (0..40).map(|_| lattice.deposit(&user, 5));
    for answer in futures::future::join_all(deposits).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(lattice.balance(&user).await, 200);
}

#[lattice_test]
async fn deposits_racing_orders_lose_nothing(lattice: Lattice) {
    let user = lattice.new_user("Mixed", 50).await;
    let deposits = (0..20).map(|_| lattice.deposit(&user, 10));
    let orders = (0..20).map(|_| lattice.order(&user, 5));
    let (deposited, _) = futures::join!(
        futures::future::join_all(deposits),
        futures::future::join_all(orders)
    );
    assert!(deposited.iter().all(|a| a.status == 200));

    let listed = lattice.await_notifications(&user, 20).await;
    let paid: u64 = listed
        .iter()
        .filter(|n| n["paid"] == json!(true))
        .map(|n| n["sum"].as_u64().unwrap())
        .sum();
    assert_eq!(
        lattice.balance(&user).await,
        50 + 200 - paid,
        "every deposit and every payment counted once"
    );
}
