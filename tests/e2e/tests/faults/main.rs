//! Fault tests on the real lattice: duplicated deliveries, a consumer stopped while orders pile up,
//! a handler that fails until its store comes back, and one that fails long enough for its order to
//! become a dead letter, replayed with orders-admin; and crashes with orders flowing: every provider
//! killed after a warm `make run`, the host killed, the NATS server killed, each started again by
//! the lattice itself (the host, or the processes' supervisors), with every order accepted settled
//! once; and the host (billing with it) killed while refunds are asked, each applied once. They stop parts of the lattice, so `make test` runs them alone, after the other
//! end-to-end tests.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use orders_domain::OrderId;
use orders_e2e::{
    children_of, key_sha256, lattice_ops, lattice_test, load, orders_admin, placing_trace,
    publish_order, spans, subscribed, traits_of, unique, Lattice, Operator, Telemetry,
};
use orders_wire::proto::OrderPlaced;
use orders_wire::subjects;
use serde_json::{json, Value};

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn every_order_delivered_twice_is_charged_once(lattice: Lattice) {
    let user = lattice.new_user("Twice", 100).await;
    for i in 0..10 {
        let order = OrderPlaced {
            order_id: unique("dup").replace('_', "-") + &format!("-{i}"),
            user: user.clone(),
            sum: 10,
            placed_at_ms: 1,
            key_sha256: key_sha256(&lattice.key(&user)),
        };
        for _ in 0..2 {
            publish_order(&lattice, &order).await;
        }
    }
    let listed = lattice.await_notifications(&user, 10).await;
    assert!(listed.iter().all(|n| n["paid"] == json!(true)));
    assert_eq!(
        lattice.balance(&user).await,
        0,
        "20 deliveries of 10 orders of 10 charged 100"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lattice.notifications(&user).await.len(),
        10,
        "one notification per order, not per delivery"
    );
    println!(
        "duplicates: 10 orders delivered twice (20 deliveries): 10 charged, 0 doubled, 0 lost"
    );
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn orders_accepted_while_billing_is_stopped_are_pending_then_all_paid_once_it_is_back(
    lattice: Lattice,
    operator: Operator,
) {
    let user = lattice.new_user("Outage", 1000).await;

    operator
        .deploy_scaled("billing-stopped", &[("billing", 0)])
        .await;
    let balance_path = format!("/Balance?user={}", orders_e2e::encode(&user));
    let unreachable = lattice.get_as(&user, &balance_path).await;
    assert_eq!(
        (unreachable.status, unreachable.error_code()),
        (503, "service_unavailable"),
        "a stopped component is the API's JSON error: {unreachable:?}"
    );
    assert!(!unreachable.body["message"]
        .as_str()
        .unwrap()
        .contains("wrpc"));
    let orders = (0..100).map(|_| lattice.order(&user, 10));
    let accepted = futures::future::join_all(orders).await;
    assert_eq!(accepted.len(), 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        lattice.notifications(&user).await.is_empty(),
        "nothing is paid while billing is stopped"
    );
    for id in &accepted {
        let status = lattice.order_status(&user, id).await;
        assert_eq!(
            (status.status, &status.body["state"]),
            (200, &json!("pending")),
            "an accepted order waits as pending while billing is stopped: {status:?}"
        );
    }

    let restarted = Instant::now();
    operator.restore().await;
    let listed = lattice.await_notifications(&user, 100).await;
    let drained = restarted.elapsed();
    assert!(listed.iter().all(|n| n["paid"] == json!(true)));
    for id in &accepted {
        assert_eq!(
            lattice.await_settled(&user, id).await["state"],
            json!("paid")
        );
    }
    assert_eq!(
        lattice.balance(&user).await,
        0,
        "100 orders of 10 charged exactly 1000"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lattice.notifications(&user).await.len(), 100);
    println!("outage: 100 orders accepted while billing was stopped: 100 paid, 0 lost, 0 doubled; backlog drained {drained:?} after the redeploy began");
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn a_handler_that_fails_is_retried_and_the_order_is_paid_once(
    lattice: Lattice,
    operator: Operator,
) {
    let nats = lattice.nats().await;
    let mut dead_letters = subscribed(&nats, "deadletter.>").await;
    let user = lattice.new_user("Flaky", 100).await;

    // Without its key-value store, billing's handler fails on every delivery of the order.
    operator
        .deploy_scaled("keyvalue-stopped", &[("keyvalue", 0)])
        .await;
    let order_id = lattice.order(&user, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.restore().await;

    let listed = lattice.await_notifications(&user, 1).await;
    assert_eq!(
        (listed[0]["order_id"].clone(), listed[0]["paid"].clone()),
        (json!(order_id), json!(true))
    );
    assert_eq!(lattice.balance(&user).await, 90);
    let dead = tokio::time::timeout(Duration::from_millis(500), dead_letters.next()).await;
    assert!(dead.is_err(), "nothing was dead-lettered: {dead:?}");
    println!("failing handler: 1 order redelivered until billing could settle it: paid once, 0 dead letters");
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn an_order_paid_but_never_announced_becomes_a_dead_letter_replayed_with_orders_admin_and_charged_once(
    lattice: Lattice,
    operator: Operator,
) {
    let user = lattice.new_user("Replayed", 1000).await;

    // billing's link may no longer publish payment results: billing debits each order, then fails
    // to announce it, and after its 10 attempts (~20 s) the order becomes a dead letter.
    confine_publishing(&operator, "billing", "nothing.allowed").await;
    // Until the provider takes the new link, orders are paid and announced; the first one that
    // is not announced within 3 s is the one that will be dead-lettered.
    let (deadline, mut placed) = (Instant::now() + Duration::from_secs(60), Vec::new());
    let muted = loop {
        let order_id = lattice.order(&user, 10).await;
        placed.push(order_id.clone());
        tokio::time::sleep(Duration::from_secs(3)).await;
        if lattice.notifications(&user).await.len() < placed.len() {
            break order_id;
        }
        assert!(
            Instant::now() < deadline,
            "the provider never applied the new link"
        );
    };
    let of_muted = |letters: Vec<Value>| -> Vec<Value> {
        letters
            .into_iter()
            .filter(|l| l["message"]["order_id"] == json!(muted))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let dead = loop {
        let dead = of_muted(orders_admin(&["dlq", "list"]).await);
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter of {muted} after 90 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(dead.len(), 1, "only billing gave up: {dead:?}");
    assert_eq!(
        (&dead[0]["subject"], &dead[0]["original_subject"]),
        (
            &json!("deadletter.billing"),
            &json!(subjects::order_placed(
                &user,
                OrderId::parse(&muted).unwrap()
            ))
        )
    );
    assert!(dead[0]["failure"]
        .as_str()
        .unwrap()
        .contains("handled, but its replies were not published"));
    let charged = 1000 - 10 * placed.len() as u64;
    assert_eq!(
        lattice.balance(&user).await,
        charged,
        "the dead-lettered order was debited before its result could not be announced"
    );

    operator.restore().await;

    // The failed order is found by its id in one trace: the request that placed it, then each of
    // billing's deliveries, the last of which dead-lettered it. Each process exports its spans in
    // batches, so the trace is whole (connected) once the last batch with a part of it arrived.
    let traces = Telemetry::from_env()
        .await_traces(
            &muted,
            "whole, with its dead-lettering delivery",
            |traces| {
                placing_trace(traces).is_some_and(|t| {
                    t["connected"] == json!(true)
                        && spans(t).any(|s| s["attributes"]["outcome"] == json!("dead_lettered"))
                })
            },
        )
        .await;
    let trace = placing_trace(&traces).unwrap();
    let billing_outcomes: Vec<&str> = spans(trace)
        .filter(|s| s["attributes"]["messaging.consumer.group.name"] == json!("billing"))
        .filter_map(|s| s["attributes"]["outcome"].as_str())
        .collect();
    assert_eq!(
        billing_outcomes.last(),
        Some(&"dead_lettered"),
        "{billing_outcomes:?}"
    );
    assert_eq!(
        billing_outcomes.len(),
        10,
        "billing's 10 deliveries, in the order's trace: {billing_outcomes:?}"
    );
    assert!(
        spans(trace).any(|s| s["name"] == json!("deadletter.billing publish")),
        "the dead letter's publication is in the order's trace: {trace:#}"
    );

    // Replayed twice over: billing finds the order settled, announces the same result, and charges
    // nothing more.
    let seq = dead[0]["seq"].as_u64().unwrap().to_string();
    let replayed = orders_admin(&["dlq", "replay", &seq]).await;
    assert_eq!(
        replayed[0]["to"],
        json!(subjects::order_placed(
            &user,
            OrderId::parse(&muted).unwrap()
        ))
    );
    publish_order(
        &lattice,
        &OrderPlaced {
            order_id: muted.clone(),
            user: user.clone(),
            sum: 10,
            placed_at_ms: 0,
            key_sha256: vec![],
        },
    )
    .await;
    let listed = lattice.await_notifications(&user, placed.len()).await;
    assert!(listed.iter().all(|n| n["paid"] == json!(true)));
    assert_eq!(
        lattice.await_settled(&user, &muted).await["balance"],
        json!(charged)
    );
    assert_eq!(lattice.balance(&user).await, charged, "charged once");
    assert!(
        of_muted(orders_admin(&["dlq", "list"]).await).is_empty(),
        "a replayed dead letter is removed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lattice.notifications(&user).await.len(), placed.len());
    println!(
        "dead letter: 1 order of {} paid but not announced, dead-lettered (its trace: {}), replayed with orders-admin (and once more by hand): announced once, charged once",
        placed.len(),
        billing_outcomes.join(", ")
    );
    orders_e2e::the_books_add_up().await;
}

/// Deploys the application with `component`'s link to the messaging provider allowing only
/// `subjects` to be published.
async fn confine_publishing(operator: &Operator, component: &str, subjects: &str) {
    operator
        .deploy_edited(&format!("{component}-confined"), |manifest| {
            // Every link of the component to the provider (order has two: publishing and
            // reading back), as the provider keeps one policy per component and link name; what
            // the component may read stays as it was.
            let links: Vec<&mut serde_yaml::Value> = traits_of(manifest, component)
                .iter_mut()
                .filter(|t| t["properties"]["target"]["name"].as_str() == Some("messaging"))
                .collect();
            assert!(
                !links.is_empty(),
                "the component's links to the messaging provider"
            );
            for (n, link) in links.into_iter().enumerate() {
                let config = &mut link["properties"]["target"]["config"][0];
                config["name"] = format!("{component}-messaging-confined-{n}").into();
                config["properties"]["publish"] = subjects.into();
            }
        })
        .await;
}

/// What a provider hears when the host deletes a link: the provider forgets it. Sent by the test
/// directly to the provider, the lattice keeps the link, as when the host's publication of a new
/// link is lost (one fire-and-forget message, missed by a provider still starting).
async fn make_provider_forget(nats: &async_nats::Client, provider: &str, link: serde_json::Value) {
    // Ids as wadm names them: `<application>-<component>`, on the lattice `default`.
    let subject = format!("wasmbus.rpc.default.orders-{provider}.linkdefs.del");
    nats.publish(subject, serde_json::to_vec(&link).unwrap().into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn a_provider_that_missed_its_links_takes_them_back_from_the_lattice(lattice: Lattice) {
    let nats = lattice.nats().await;
    let user = lattice.new_user("Forgotten", 100).await;
    let balance_path = format!("/Balance?user={}", orders_e2e::encode(&user));

    // The key-value provider forgets billing's bucket: billing's calls fail as unlinked.
    let mut forgotten = false;
    for _attempt in 0..3 {
        make_provider_forget(
            &nats,
            "keyvalue",
            json!({"source_id": "orders-billing", "target": "orders-keyvalue", "name": "default",
                   "wit_namespace": "orders", "wit_package": "lattice", "interfaces": ["keyvalue-cas"]}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !forgotten {
            let answer = lattice.get_as(&user, &balance_path).await;
            forgotten = answer.status == 503 && answer.error_code() == "store_unavailable";
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if forgotten {
            break;
        }
    }
    assert!(
        forgotten,
        "the key-value provider never forgot billing's link"
    );
    let lost_at = Instant::now();
    // ... and the messaging provider forgets notify's consumer. Its loss is not observed here
    // (the durable consumer stays on the server), only that notify consumes afterwards.
    make_provider_forget(
        &nats,
        "messaging",
        json!({"source_id": "orders-messaging", "target": "orders-notify", "name": "notify-payments",
               "wit_namespace": "orders", "wit_package": "lattice", "interfaces": ["batch-handler"]}),
    )
    .await;

    // Both come back from the lattice's links without anyone redeploying.
    let deadline = Instant::now() + orders_e2e::PATIENCE;
    loop {
        let answer = lattice.get_as(&user, &balance_path).await;
        if answer.status == 200 {
            assert_eq!(answer.body["balance"], json!(100));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "billing's bucket never came back: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bucket_back = lost_at.elapsed();
    let order_id = lattice.order(&user, 10).await;
    let listed = lattice.await_notifications(&user, 1).await;
    assert_eq!(
        (listed[0]["order_id"].clone(), listed[0]["paid"].clone()),
        (json!(order_id), json!(true))
    );
    assert_eq!(lattice.balance(&user).await, 90);
    println!(
        "missed links: billing's bucket back after {bucket_back:?}; notify consumed again; the order paid once"
    );
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn requests_their_clients_abandon_leave_every_endpoint_answering(lattice: Lattice) {
    let user = lattice.new_user("Abandoned", 100).await;
    let balance_url = format!(
        "{}/Balance?user={}",
        lattice.base_url,
        orders_e2e::encode(&user)
    );
    let order_url = format!("{}/Order", lattice.base_url);
    let key = lattice.key(&user);
    // Clients that give up after a few milliseconds, 50 at a time, as a load generator's last
    // requests or impatient browsers do, on billing (a balance) and on order (a malformed body),
    // without a key: each still runs its component (refused 401 before anything is stored), and
    // no key's rate limit is used up before the patient client comes. Each component runs at most 50 calls at once, so 50
    // calls left half-done on the host would leave it unanswerable.
    for round in 0..4u64 {
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(2 + round * 3))
            .build()
            .unwrap();
        let calls = (0..200).map(|i| {
            let request = match i % 2 {
                0 => impatient.get(&balance_url),
                _ => impatient.post(&order_url).body("{"),
            };
            async move {
                let _ = request.send().await;
            }
        });
        futures::stream::iter(calls)
            .buffer_unordered(50)
            .collect::<Vec<_>>()
            .await;
    }
    // A patient client is answered within seconds, not after the host gives the abandoned calls
    // up (30 s).
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let balance = patient.get(&balance_url).bearer_auth(&key).send().await;
    assert!(
        matches!(&balance, Ok(response) if response.status() == 200),
        "GET /Balance after 800 abandoned requests: {balance:?}"
    );
    let order = patient
        .post(&order_url)
        .bearer_auth(&key)
        .body("{")
        .send()
        .await;
    assert!(
        matches!(&order, Ok(response) if response.status() == 400),
        "POST /Order after 800 abandoned requests: {order:?}"
    );
    assert_eq!(lattice.balance(&user).await, 100);
    println!("abandoned requests: 800 given up after 2-11 ms; billing and order answer at once");
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn a_component_may_publish_only_what_its_link_allows(lattice: Lattice, operator: Operator) {
    let user = lattice.new_user("Confined", 1000).await;

    // order's link now allows only payments.settled: as if order had been compromised and tried
    // to publish what its operator did not mean it to.
    confine_publishing(&operator, "order", "payments.settled").await;
    // Until the provider takes the new link, orders still go through; count them. wadm puts the
    // new version's links and then removes the old version's, which the host knows by the same
    // name: for a moment the provider holds no link of order's, until wadm or the provider's
    // link keeper puts it back. Order then can read nothing and publish nothing (503 naming
    // "no link"), which places nothing either.
    let (deadline, mut accepted) = (Instant::now() + orders_e2e::PATIENCE, 0);
    let refused = loop {
        let answer = lattice
            .post_as(&user, "/Order", json!({ "user": user, "sum": 1 }))
            .await;
        let message = answer.body["message"].as_str().unwrap_or_default();
        let unlinked = answer.status == 503 && message.contains("no link to this provider");
        if answer.status != 202 && !unlinked {
            break answer;
        }
        accepted += usize::from(answer.status == 202);
        assert!(
            Instant::now() < deadline,
            "the provider never applied the new link: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (refused.status, refused.error_code()),
        (503, "broker_unavailable"),
        "{refused:?}"
    );
    let refusal = refused.body["message"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("may not publish") && refusal.contains("payments.settled"),
        "refused by the confined link: {refused:?}"
    );
    operator.restore().await;

    let listed = lattice.await_notifications(&user, accepted).await;
    // Never more notifications than accepted orders (await_notifications checks that too).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lattice.notifications(&user).await.len(),
        listed.len(),
        "the refused order was never published"
    );
    assert_eq!(lattice.balance(&user).await, 1000 - accepted as u64);

    lattice.order(&user, 1).await;
    lattice.await_notifications(&user, accepted + 1).await;
    println!("publish policy: order's link changed to allow only payments.settled: {accepted} orders accepted before the provider took it, then POST /Order 503 broker_unavailable and nothing published; restored: paid");
    orders_e2e::the_books_add_up().await;
}

/// Opens a connection from `source` (a loopback address of its own) to the lattice's HTTP port.
async fn connect_from(lattice: &Lattice, source: [u8; 4]) -> tokio::net::TcpStream {
    let server: std::net::SocketAddr = lattice
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("the base URL is http://IP:port");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(server).await.expect("the HTTP port accepts")
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn stalled_bodies_and_slow_headers_do_not_stop_any_service(lattice: Lattice) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let user = lattice.new_user("Unstalled", 1000).await;

    // 300 requests whose headers promise a body that never comes, to billing and order, and 100
    // connections that send their headers a byte at a time: from three other addresses.
    let mut stalled = Vec::new();
    for (source, path) in [
        ([127, 0, 0, 11], "/DepositCash"),
        ([127, 0, 0, 12], "/Order"),
        ([127, 0, 0, 13], "/Order"),
    ] {
        for _ in 0..100 {
            let mut stream = connect_from(&lattice, source).await;
            let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{");
            stream.write_all(head.as_bytes()).await.unwrap();
            stalled.push(stream);
        }
    }
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut stream = connect_from(&lattice, [127, 0, 0, 14]).await;
        stream.write_all(b"GET /List HTTP/1.1\r\nHo").await.unwrap();
        slow.push(stream);
    }

    // Meanwhile every endpoint answers a normal client as usual.
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(4) {
        for call in 0..3 {
            let asked = std::time::Instant::now();
            let status = match call {
                0 => {
                    lattice
                        .get_as(
                            &user,
                            &format!("/Balance?user={}", orders_e2e::encode(&user)),
                        )
                        .await
                        .status
                }
                1 => {
                    lattice
                        .post_as(&user, "/Order", json!({ "user": user, "sum": 1 }))
                        .await
                        .status
                }
                _ => {
                    lattice
                        .get_as(&user, &format!("/List?user={}", orders_e2e::encode(&user)))
                        .await
                        .status
                }
            };
            assert!(status == 200 || status == 202, "call {call}: {status}");
            slowest = slowest.max(asked.elapsed());
        }
        // At a user's pace, well inside the per-key rate limit (which is not what this measures).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a call took {slowest:?} beside the stalled clients"
    );

    // The stalled requests are answered 408 once the body deadline passes; slow headers are cut.
    let mut answer = String::new();
    let first = &mut stalled[0];
    tokio::time::timeout(Duration::from_secs(10), first.read_to_string(&mut answer))
        .await
        .expect("the stalled request is answered within the body deadline")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), slow[0].read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a connection that never finishes its headers is closed"
    );
    println!("stalled clients: 300 bodies never sent + 100 slow headers; every endpoint answered, slowest {slowest:?}; stalled bodies answered 408");
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "stops parts of a running lattice: `make test` runs these alone")]
async fn a_lattice_backed_up_wiped_and_restored_keeps_every_account_order_and_key() {
    orders_e2e::backed_up_wiped_and_restored_keeps_everything(&Lattice::from_env(), "test").await;
    orders_e2e::the_books_add_up().await;
}

/// Waits until the API reads an account again (HTTP server, billing and its key-value store all
/// back) after a fault that began at `since`; returns how long that took.
async fn api_reads_again(lattice: &Lattice, user: &str, since: Instant) -> Duration {
    let path = format!("/Balance?user={}", orders_e2e::encode(user));
    let client = orders_e2e::http_client(Duration::from_secs(2));
    loop {
        let answer = client
            .get(format!("{}{path}", lattice.base_url))
            .bearer_auth(lattice.key(user))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < load::SETTLE_PATIENCE,
            "the API did not read {user}'s balance within {:?} of the fault",
            load::SETTLE_PATIENCE
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Orders flowing through the lattice's listener while `fault` runs; then the API must read
/// again and every accepted order be settled once. Prints the audit's line and the outage as the
/// API and the clients saw it.
async fn outage_under_load(fault: &str, act: impl FnOnce() + Send + 'static) {
    let lattice = Lattice::from_env();
    let reader = lattice.new_user("Reader", 0).await;
    let (seen, back) = load::under_load(
        &lattice,
        std::slice::from_ref(&lattice.base_url),
        || async {
            let began = Instant::now();
            tokio::task::spawn_blocking(act).await.unwrap();
            api_reads_again(&lattice, &reader, began).await
        },
    )
    .await;
    load::print_table_header();
    let back = back.as_secs_f64();
    load::every_order_settled_once(
        &lattice,
        fault,
        &seen,
        &format!("API reads again {back:.1} s after the kill"),
    )
    .await;
}

/// `orders-ops lattice <action> <instance> [process]`, which must succeed; what it printed.
fn on_lattice(args: &[&str]) -> String {
    let (succeeded, printed) = lattice_ops(args);
    assert!(succeeded, "orders-ops lattice {args:?}:\n{printed}");
    printed
}

#[lattice_test(ignore = "kills parts of a running lattice: `make test` runs these alone")]
async fn a_warm_make_run_changes_nothing_running_and_every_capability_stopped_afterwards_serves_again(
    operator: Operator,
) {
    let instance = operator.instance.clone();
    let host = orders_e2e::supervised_pid(&instance, "host");
    assert_eq!(
        children_of(host),
        Vec::<u32>::new(),
        "the host serves the HTTP server, messaging and key-value in its own process"
    );
    let printed = on_lattice(&["up", &instance]);
    assert!(
        printed.contains("application unchanged and deployed"),
        "a warm start redeploys nothing:\n{printed}"
    );
    assert_eq!(
        orders_e2e::supervised_pid(&instance, "host"),
        host,
        "nor restarts the host"
    );

    // A capability in the host's process cannot die apart from the host (whose crash the next
    // tests make): its equivalent of a crash is being stopped, after which wadm starts it again.
    // Every order accepted must still be settled once, so all three are back.
    let runtime = tokio::runtime::Handle::current();
    outage_under_load(
        "warm make run, then a stop of the host's HTTP server, messaging and key-value",
        move || {
            // wadm names a provider `<application>-<name>`, `-` in the name as `_`.
            for in_host in ["orders-http_server", "orders-messaging", "orders-keyvalue"] {
                runtime.block_on(operator.stop_provider(in_host));
            }
        },
    )
    .await;
    orders_e2e::the_books_add_up().await;
}

/// Kills `process` of the test lattice alone with orders flowing; its supervisor starts it again,
/// and a new process serves.
async fn crashed_and_started_again(process: &'static str, fault: &str) {
    let instance = Operator::from_env().instance;
    let before = orders_e2e::supervised_pid(&instance, process);
    let crashing = instance.clone();
    outage_under_load(fault, move || {
        on_lattice(&["crash", &crashing, process]);
    })
    .await;
    let after = orders_e2e::supervised_pid(&instance, process);
    assert_ne!(after, before, "a new {process} process serves");
}

#[lattice_test(ignore = "kills parts of a running lattice: `make test` runs these alone")]
async fn a_crashed_host_is_started_again_by_its_supervisor_and_every_order_accepted_is_settled_once(
) {
    crashed_and_started_again(
        "host",
        "kill -9 of the host and its providers (its supervisor starts it again)",
    )
    .await;
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "kills parts of a running lattice: `make test` runs these alone")]
async fn a_crashed_nats_server_is_started_again_with_its_store_and_every_order_accepted_is_settled_once(
) {
    crashed_and_started_again(
        "nats",
        "kill -9 of the NATS server (its supervisor starts it again on its store)",
    )
    .await;
    orders_e2e::the_books_add_up().await;
}

#[lattice_test(ignore = "kills parts of a running lattice: `make test` runs these alone")]
async fn refunds_asked_while_the_host_is_killed_are_each_applied_once_and_notified_once() {
    const ORDERS: usize = 20;
    let lattice = Lattice::from_env();
    let instance = Operator::from_env().instance;
    let user = lattice.new_user("RefundCrash", 10 * ORDERS as i64).await;
    let mut paid = Vec::new();
    for _ in 0..ORDERS {
        paid.push(lattice.order(&user, 10).await);
    }
    for id in &paid {
        assert_eq!(
            lattice.await_settled(&user, id).await["state"],
            json!("paid")
        );
    }
    let client = orders_e2e::http_client(Duration::from_secs(5));
    // Each refund asked under its own Idempotency-Key, spread over a second, and asked again as a
    // client would until it is answered 200; the host (billing, its providers) is killed among
    // them, so some are cut off after billing published them, or applied them, or not at all.
    let refunds = paid.iter().enumerate().map(|(i, id)| {
        let (lattice, user, client) = (&lattice, &user, &client);
        async move {
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let key = unique(&format!("crash-refund-{i}"));
            let began = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let request = lattice.refund_request(client, user, id, None, Some(&key));
                if let Ok(response) = request.send().await {
                    let answer = orders_e2e::answer(response).await;
                    if answer.status == 200 {
                        return (answer.body["refund_id"].clone(), attempts);
                    }
                    assert!(
                        answer.status >= 500,
                        "a refund cut off is retried, never refused: {answer:?}"
                    );
                }
                assert!(
                    began.elapsed() < load::SETTLE_PATIENCE,
                    "refund of {id} not answered within {:?}",
                    load::SETTLE_PATIENCE
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let crashing = instance.clone();
    let crash = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::spawn_blocking(move || on_lattice(&["crash", &crashing, "host"]))
            .await
            .unwrap();
    };
    let (answered, _) = tokio::join!(futures::future::join_all(refunds), crash);
    // billing answered again; notify and every consumer may still be coming back.
    tokio::task::spawn_blocking(move || on_lattice(&["ready", &instance]))
        .await
        .unwrap();
    let retried = answered
        .iter()
        .filter(|(_, attempts)| *attempts > 1)
        .count();
    let refund_ids: std::collections::HashSet<String> =
        answered.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(refund_ids.len(), ORDERS, "one refund per order");
    assert_eq!(
        lattice.balance(&user).await,
        10 * ORDERS as u64,
        "every order refunded once"
    );
    let notifications = lattice.await_notifications(&user, 2 * ORDERS).await;
    let refunded = notifications
        .iter()
        .filter(|n| n["reason"] == json!("refunded"))
        .count();
    assert_eq!(refunded, ORDERS, "one refund notification per refund");
    let statement = lattice
        .get_as(
            &user,
            &format!("/Statement?user={}&limit=100", orders_e2e::encode(&user)),
        )
        .await;
    let refund_entries = statement.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == json!("refund"))
        .count();
    assert_eq!(refund_entries, ORDERS, "one ledger entry per refund");
    println!(
        "refunds: {ORDERS} refunds asked around a kill -9 of the host: {retried} retried by their \
         clients, {ORDERS} applied, 0 doubled, {refunded} notified"
    );
    orders_e2e::the_books_add_up().await;
}
