//! The native build end to end, as `make bench` runs it: billing, order and notify on a real
//! `nats-server` (orders-test-nats), driven over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use orders_native::{Args, Service};
use orders_test_nats::NatsServer;
use serde_json::{json, Value};

/// A free port on loopback, for a service to listen on.
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A secrets folder as `make` writes one: the API key secret and the admin token.
fn secrets() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orders-native-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("api-key-secret"), "42".repeat(32)).unwrap();
    std::fs::write(dir.join("admin-token"), "ola_native-test\n").unwrap();
    dir
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_on_the_native_build_is_paid_once_notified_and_refused_input_changes_nothing() {
    let nats = NatsServer::start().await;
    let secrets = secrets();
    let mut bases = Vec::new();
    for service in [Service::Billing, Service::Order, Service::Notify] {
        let listen = free_address();
        bases.push(format!("http://{listen}"));
        tokio::spawn(orders_native::run(Args {
            service,
            listen,
            nats: nats.url.clone(),
            creds: None,
            secrets: secrets.clone(),
        }));
    }
    let (billing, order, notify) = (&bases[0], &bases[1], &bases[2]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for base in &bases {
        while http.get(format!("{base}/")).send().await.is_err() {
            assert!(Instant::now() < deadline, "{base} never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let (status, created) = answer(
        http.post(format!("{billing}/CreateUser"))
            .json(&json!({"user": "Pavel"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_string();
    let deposit = json!({"user": "Pavel", "sum": 100});
    let (status, _) = answer(
        http.post(format!("{billing}/DepositCash"))
            .bearer_auth(&key)
            .json(&deposit),
    )
    .await;
    assert_eq!(status, 200);

    let (status, refused) = answer(
        http.post(format!("{order}/Order"))
            .bearer_auth(&key)
            .json(&json!({"user": "Pavel", "sum": -5})),
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (422, Some("invalid_sum"))
    );
    let order_request = || {
        http.post(format!("{order}/Order"))
            .bearer_auth(&key)
            .header("idempotency-key", "native-1")
            .json(&json!({"user": "Pavel", "sum": 30}))
    };
    let (status, placed) = answer(order_request()).await;
    assert_eq!(status, 202, "{placed}");
    let (_, repeated) = answer(order_request()).await;
    assert_eq!(
        repeated["order_id"], placed["order_id"],
        "a retry is the same order"
    );

    let list = format!("{notify}/List?user=Pavel");
    loop {
        let (_, listed) = answer(http.get(&list).bearer_auth(&key)).await;
        if let Some(notifications) = listed["notifications"].as_array().filter(|n| !n.is_empty()) {
            assert_eq!(notifications.len(), 1, "{listed}");
            break;
        }
        assert!(Instant::now() < deadline, "no notification: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, balance) = answer(
        http.get(format!("{billing}/Balance?user=Pavel"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(
        (status, balance["balance"].as_i64()),
        (200, Some(70)),
        "charged once"
    );
}
