//! The streams the provider ensures at start, against a real NATS server with JetStream
//! (orders-test-nats).

use async_nats::jetstream;
use messaging_jetstream_provider::config::{Keeps, StreamSpec};
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

/// The stream's configuration as the server holds it now.
async fn config_of(js: &jetstream::Context, stream: &str) -> jetstream::stream::Config {
    let mut stream = js.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().config.clone()
}

fn orders_on(subjects: &[&str]) -> StreamSpec {
    StreamSpec {
        name: "ORDERS".into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        keeps: Keeps::LastWeek,
    }
}

#[tokio::test]
async fn a_stream_given_more_subjects_captures_them_and_keeps_what_it_stored() {
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
    assert_eq!(info.state.messages, 2, "what it stored before is kept");

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

#[tokio::test]
async fn a_last_value_stream_keeps_the_newest_message_of_each_subject_for_ever() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let keys = StreamSpec {
        name: "KEYS".into(),
        subjects: vec!["keys.*".into()],
        keeps: Keeps::LastValuePerSubject,
    };
    ensure_stream(&js, &keys, 1).await.unwrap();
    for (subject, body) in [("keys.a", "a1"), ("keys.b", "b1"), ("keys.a", "a2")] {
        stored(&js, subject, body).await.unwrap();
    }
    let mut stream = js.get_stream("KEYS").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 2, "one message per subject");
    assert_eq!(
        info.config.max_age,
        std::time::Duration::ZERO,
        "kept for ever"
    );
    let newest = stream
        .get_last_raw_message_by_subject("keys.a")
        .await
        .unwrap();
    assert_eq!(&newest.payload[..], b"a2");
}

#[tokio::test]
async fn a_stream_one_server_keeps_is_read_directly_and_one_of_three_from_its_leader() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    // A stream made before reads could be direct.
    js.create_stream(jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(ensure_stream(&js, &orders_on(&["orders.>"]), 1)
        .await
        .unwrap());
    let config = config_of(&js, "ORDERS").await;
    assert!(config.allow_direct, "now allows direct gets");
    stored(&js, "orders.1", "one").await.unwrap();
    let stream = js.get_stream_no_info("ORDERS").await.unwrap();
    let newest = stream
        .direct_get_last_for_subject("orders.1")
        .await
        .unwrap();
    assert_eq!(&newest.payload[..], b"one");

    let cluster = orders_test_nats::NatsCluster::start().await;
    let js = jetstream::new(async_nats::connect(&cluster.servers[0].url).await.unwrap());
    assert!(
        !ensure_stream(&js, &orders_on(&["orders.>"]), 3)
            .await
            .unwrap(),
        "three replicas: read from the leader"
    );
    let config = config_of(&js, "ORDERS").await;
    assert!(!config.allow_direct, "no replica answers a read on its own");
}
