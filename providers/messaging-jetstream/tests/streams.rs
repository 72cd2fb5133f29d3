//! The streams the provider ensures at start, against a real NATS server with JetStream
//! (orders-test-nats).

use async_nats::jetstream;
use messaging_jetstream_provider::config::StreamSpec;
use messaging_jetstream_provider::ensure_stream;
use orders_test_nats::NatsServer;

fn orders_on(subjects: &[&str]) -> StreamSpec {
    StreamSpec {
        name: "ORDERS".into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_stream_from_before_partitioning_captures_the_partitions_and_keeps_its_messages() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    ensure_stream(&js, &orders_on(&["orders.placed"]), 1)
        .await
        .unwrap();
    js.publish("orders.placed", "before".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        js.publish("orders.placed.a1", "refused".into())
            .await
            .unwrap()
            .await
            .is_err(),
        "no stream captures a partition yet"
    );

    ensure_stream(&js, &orders_on(&["orders.placed", "orders.placed.*"]), 1)
        .await
        .unwrap();
    js.publish("orders.placed.a1", "after".into())
        .await
        .unwrap()
        .await
        .expect("the stream captures a partition now");
    let mut stream = js.get_stream("ORDERS").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.subjects, ["orders.placed", "orders.placed.*"]);
    assert_eq!(info.state.messages, 2, "the message from before is kept");

    ensure_stream(&js, &orders_on(&["orders.placed.*"]), 1)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.subjects,
        ["orders.placed", "orders.placed.*"],
        "a subject is never taken away"
    );
}
