//! Against a real nats-server with its monitoring endpoint.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use orders_nats_monitor::read;
use orders_test_nats::NatsServer;

#[tokio::test]
async fn a_consumer_with_work_is_not_drained_and_one_being_pulled_is_pulling() {
    let nats = NatsServer::start_with(&["-m", "-1"]).await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let billing = orders
        .create_consumer(pull::Config {
            durable_name: Some("billing".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        read(nats.monitoring()).await.drained(),
        "nothing published yet"
    );

    js.publish("orders.1", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let report = read(nats.monitoring()).await;
    assert!(!report.drained(), "one order waits");
    assert_eq!(report.streams[0].messages, 1);
    assert_eq!(report.streams[0].consumers[0].pending, 1);
    assert!(report.pulling().is_empty(), "nobody pulls yet");

    let mut messages = billing.messages().await.unwrap();
    let message = futures::StreamExt::next(&mut messages)
        .await
        .unwrap()
        .unwrap();
    message.ack().await.unwrap();
    // The next pull request waits at the server for a message that does not come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = read(nats.monitoring()).await;
    assert_eq!(report.pulling(), ["billing"]);
    assert!(report.drained(), "the order was handled");
    assert_eq!(report.connections, 1);
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_left_out() {
    let nats = NatsServer::start_with(&["-m", "-1"]).await;
    let report = read(&format!("http://127.0.0.1:9,{}", nats.monitoring())).await;
    assert!(report.streams.is_empty());
    assert!(!report.drained());
}
