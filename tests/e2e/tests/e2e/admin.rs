//! orders-admin against the running lattice: streams, a live tail, and a bucket exported and
//! imported. (Its dead-letter replay stops parts of the lattice: tests/e2e/tests/faults.)

use std::time::Duration;

use orders_domain::OrderId;
use orders_e2e::{lattice_test, orders_admin, orders_admin_command, unique, Lattice};
use orders_wire::subjects;
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

#[lattice_test]
async fn streams_lists_every_stream_of_the_application_with_its_consumers() {
    let listed = orders_admin(&["streams"]).await;
    let consumers_of = |name: &str| -> Vec<String> {
        let stream = listed
            .iter()
            .find(|s| s["stream"] == json!(name))
            .unwrap_or_else(|| panic!("no stream {name} in {listed:?}"));
        let mut names: Vec<String> = stream["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(consumers_of("ORDERS"), ["billing"]);
    assert_eq!(consumers_of("REFUNDS"), ["billing-refunds"]);
    assert_eq!(consumers_of("PAYMENTS"), ["notify"]);
    assert_eq!(consumers_of("DEADLETTER"), ["notify-deadletters"]);
    assert!(
        consumers_of("KEYS").is_empty(),
        "order and notify read it, nobody consumes it"
    );
}

#[lattice_test]
async fn a_consumer_no_link_reads_is_removed_and_the_stream_keeps_its_messages(lattice: Lattice) {
    // A stream of its own, so that the application's streams keep exactly their consumers for
    // the tests beside this one.
    let js = async_nats::jetstream::new(lattice.nats().await);
    let (stream_name, name) = (unique("RETIRED"), unique("retired"));
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{stream_name}.kept")],
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish(format!("{stream_name}.kept"), "kept".into())
        .await
        .unwrap()
        .await
        .unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let removed = orders_admin(&["remove-consumer", &stream_name, &name]).await;
    assert_eq!(removed[0]["removed_consumer"], json!(name));
    assert!(stream.consumer_info(&name).await.is_err(), "{name} is gone");
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    js.delete_stream(&stream_name).await.unwrap();
}

#[lattice_test]
async fn tail_shows_an_order_as_it_is_placed_decoded(lattice: Lattice) {
    let user = lattice.new_user("Tailed", 100).await;
    let mut tail = orders_admin_command(&["tail", subjects::ORDER_PLACED_SUBJECTS])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    // The subscription is up once tail has connected; an order placed before would be missed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let order_id = lattice.order(&user, 10).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("tail runs");
            let message: serde_json::Value = serde_json::from_str(&line).unwrap();
            if message["message"]["order_id"] == json!(order_id) {
                return message;
            }
        }
    })
    .await
    .expect("the order in the tail within 10 s");
    let id = OrderId::parse(&order_id).unwrap();
    assert_eq!(seen["subject"], json!(subjects::order_placed(&user, &id)));
    assert_eq!(
        (&seen["message"]["user"], &seen["message"]["sum"]),
        (&json!(user), &json!(10))
    );
}

#[lattice_test]
async fn a_bucket_exported_and_imported_elsewhere_holds_the_same_keys_and_values(lattice: Lattice) {
    let user = lattice.new_user("Exported", 70).await;
    let exported = orders_admin(&["kv", "export", "billing"]).await;
    assert!(
        exported
            .iter()
            .any(|e| e["key"].as_str().unwrap().contains(&user)),
        "the new account is exported"
    );

    let copy = unique("billing-copy");
    let mut import = orders_admin_command(&["kv", "import", &copy])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = exported.iter().map(|e| format!("{e}\n")).collect();
    tokio::io::AsyncWriteExt::write_all(&mut import.stdin.take().unwrap(), lines.as_bytes())
        .await
        .unwrap();
    assert!(import.wait().await.unwrap().success());

    assert_eq!(orders_admin(&["kv", "export", &copy]).await, exported);
    async_nats::jetstream::new(lattice.nats().await)
        .delete_key_value(&copy)
        .await
        .unwrap();
}

#[lattice_test]
async fn the_dead_letter_list_says_how_many_it_found_even_none() {
    let output = orders_admin_command(&["dlq", "list"])
        .output()
        .await
        .expect("orders-admin runs");
    assert!(output.status.success());
    let listed = String::from_utf8(output.stdout).unwrap().lines().count();
    let said = String::from_utf8(output.stderr).unwrap();
    let plural = if listed == 1 { "" } else { "s" };
    assert!(
        said.contains(&format!("{listed} dead letter{plural} in DEADLETTER")),
        "{listed} listed, and said: {said}"
    );
}
