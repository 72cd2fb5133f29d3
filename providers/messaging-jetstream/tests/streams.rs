//! The streams the provider ensures at start, against a real NATS server with JetStream
//! (orders-test-nats).

use async_nats::jetstream;
use messaging_jetstream_provider::config::StreamSpec;
use messaging_jetstream_provider::ensure_stream;
use orders_test_nats::NatsServer;

/// Publishes `body` on `subject` and waits for JetStream's acknowledgement: `Err` when no stream
/// captures the subject.
async fn stored(js: &jetstream::Context, subject: &str, body: &'static str) -> Result<(), String> {
    let ack = js
        .publish(subject.to_string(), body.into())
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map(drop).map_err(|e| e.to_string())
}

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
    stored(&js, "orders.placed", "before").await.unwrap();
    assert!(
        stored(&js, "orders.placed.a1", "refused").await.is_err(),
        "no stream captures a partition yet"
    );

    ensure_stream(&js, &orders_on(&["orders.placed", "orders.placed.*"]), 1)
        .await
        .unwrap();
    stored(&js, "orders.placed.a1", "after")
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
