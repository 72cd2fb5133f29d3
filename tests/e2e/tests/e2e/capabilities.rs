//! Where the capabilities run: the host serves key-value and messaging in its own process, so a
//! component's calls to them cross no NATS, nor do the messaging provider's batches to a
//! component of the same host. A person's `wash call` still reaches a component over wRPC.

use std::time::Duration;

use futures::StreamExt as _;
use orders_e2e::{lattice_test, subscribed, Lattice, Operator};

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
async fn an_order_crosses_no_nats_between_its_components_and_their_capabilities(lattice: Lattice) {
    let user = lattice.new_user("InProcess", 100).await;
    let settle_an_order = || async {
        let order_id = lattice.order(&user, 10).await;
        lattice.await_settled(&user, &order_id).await;
    };
    // Watched apart, one after the other, each over an order of its own.
    let mut calls = Vec::new();
    for target in ["keyvalue", "messaging", "billing", "notify"] {
        calls.push((
            target,
            calls_over_nats_to(&lattice, target, settle_an_order()).await,
        ));
    }
    assert_eq!(
        calls,
        [
            ("keyvalue", 0),
            ("messaging", 0),
            ("billing", 0),
            ("notify", 0)
        ],
        "every call of order, billing and notify to key-value and the broker, and every batch \
         the broker handed billing and notify, stayed in the host's process"
    );
    assert_eq!(lattice.balance(&user).await, 60);
}

#[lattice_test]
async fn a_wash_call_reaches_a_component_over_the_lattice(lattice: Lattice) {
    let operator = Operator::from_env();
    let mut answer = String::new();
    let seen = calls_over_nats_to(&lattice, "billing", async {
        answer = operator
            .call("orders-billing", "wasi:http/incoming-handler.handle")
            .await;
    })
    .await;
    assert!(
        seen > 0,
        "the watch on billing's wRPC subjects saw the call"
    );
    assert!(
        answer.contains(r#"\"service\":\"billing\""#),
        "billing described itself: {answer}"
    );
}
