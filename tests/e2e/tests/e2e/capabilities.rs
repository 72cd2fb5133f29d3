//! Where the capabilities run: the host serves key-value and messaging in its own process, so a
//! component's calls to them cross no NATS; only the messaging provider's batches reach a
//! component over wRPC.

use std::time::Duration;

use futures::StreamExt as _;
use orders_e2e::{lattice_test, subscribed, Lattice};

/// How many wRPC calls to `target` (a provider or a component) NATS carries while `work` runs.
async fn calls_over_nats_to(
    lattice: &Lattice,
    target: &str,
    work: impl std::future::Future<Output = ()>,
) -> usize {
    let nats = lattice.nats().await;
    // wRPC names a call `<lattice>.<target id>.wrpc.<version>.<instance>.<function>`.
    let mut calls = subscribed(&nats, format!("default.orders-{target}.wrpc.>")).await;
    work.await;
    let mut seen = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), calls.next()).await {
        seen += 1;
    }
    seen
}

#[lattice_test]
async fn an_orders_calls_to_key_value_and_the_broker_stay_in_the_hosts_process(lattice: Lattice) {
    let user = lattice.new_user("InProcess", 100).await;
    let settle_an_order = || async {
        let order_id = lattice.order(&user, 10).await;
        lattice.await_settled(&user, &order_id).await;
    };
    // Watched apart, one after the other, each over an order of its own; the batches to a
    // component, which still travel over wRPC, show that the watch sees calls.
    let key_value = calls_over_nats_to(&lattice, "keyvalue", settle_an_order()).await;
    let messaging = calls_over_nats_to(&lattice, "messaging", settle_an_order()).await;
    let to_billing = calls_over_nats_to(&lattice, "billing", settle_an_order()).await;
    assert!(
        to_billing > 0,
        "the order's batch reaches billing over wRPC"
    );
    assert_eq!(
        (key_value, messaging),
        (0, 0),
        "every call of order, billing and notify to key-value and the broker stayed in the host's process"
    );
    assert_eq!(lattice.balance(&user).await, 70);
}
