//! The bucket layer against a real NATS server with JetStream: each test starts its own
//! `nats-server` (orders-test-nats).

use std::time::{Duration, Instant};

use orders_jetstream_kv::{Bucket, Page, ScanBy};
use orders_test_nats::{NatsCluster, NatsServer};

async fn bucket(nats: &NatsServer, name: &str) -> Bucket {
    bucket_with_replicas(nats, name, 1).await
}

/// The bucket `name` on `nats`, created with `replicas` copies when missing.
async fn bucket_with_replicas(nats: &NatsServer, name: &str, replicas: usize) -> Bucket {
    let client = async_nats::connect(nats.url.as_str())
        .await
        .expect("the test NATS server answers");
    Bucket::open(&async_nats::jetstream::new(client), name, 1, replicas)
        .await
        .expect("the bucket opens")
}

#[tokio::test]
async fn a_missing_bucket_is_created_and_keeps_what_is_set() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "fresh").await;
    assert_eq!(kv.get("k").await.unwrap(), None);
    kv.set("k", "v".into()).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(kv.exists("k").await.unwrap());
    let reopened = bucket(&nats, "fresh").await;
    assert_eq!(
        reopened.get("k").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "the bucket persists"
    );
}

#[tokio::test]
async fn deleted_keys_are_gone_and_can_be_created_again() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "deletes").await;
    kv.set("k", "v".into()).await.unwrap();
    kv.delete("k").await.unwrap();
    assert!(!kv.exists("k").await.unwrap());
    assert!(
        kv.write("k", "again".into(), None).await.unwrap().is_some(),
        "create-only succeeds after delete"
    );
    kv.delete("never-there").await.unwrap();
}

#[tokio::test]
async fn keys_in_any_script_round_trip_and_are_listed() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "unicode").await;
    for key in ["account/Павел", "account/a.b c", "notification/1"] {
        kv.set(key, key.as_bytes().to_vec().into()).await.unwrap();
        assert_eq!(kv.get(key).await.unwrap().as_deref(), Some(key.as_bytes()));
    }
    let mut keys = kv.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["account/a.b c", "account/Павел", "notification/1"]);
}

#[tokio::test]
async fn a_write_expecting_a_stale_revision_is_refused() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "cas").await;
    let first = kv
        .write("k", "1".into(), None)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        kv.write("k", "x".into(), None).await.unwrap(),
        None,
        "create-only on an existing key"
    );
    let second = kv
        .write("k", "2".into(), Some(first))
        .await
        .unwrap()
        .expect("updated");
    assert_eq!(
        kv.write("k", "3".into(), Some(first)).await.unwrap(),
        None,
        "stale revision"
    );
    let current = kv.read("k").await.unwrap().unwrap();
    assert_eq!(
        (current.value.as_ref(), current.revision),
        (&b"2"[..], second)
    );
}

#[tokio::test]
async fn concurrent_increments_are_never_lost() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "counters").await;
    let increments = (0..40).map(|_| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.increment("hits", 3).await.unwrap() })
    });
    let mut results: Vec<u64> = futures::future::try_join_all(increments).await.unwrap();
    results.sort_unstable();
    assert_eq!(
        results,
        (1..=40).map(|i| i * 3).collect::<Vec<_>>(),
        "each increment saw a distinct value"
    );
    assert_eq!(kv.get("hits").await.unwrap().as_deref(), Some(&b"120"[..]));
}

#[tokio::test]
async fn incrementing_a_non_number_is_an_error() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "nan").await;
    kv.set("k", "abc".into()).await.unwrap();
    assert!(kv.increment("k", 1).await.is_err());
}

/// A key of tokens separated by U+001F.
fn tokens(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

#[tokio::test]
async fn a_scan_reads_one_group_of_keys_oldest_first_page_by_page_either_way() {
    let nats = NatsServer::start().await;
    let kv = bucket(&nats, "scans").await;
    for n in 0..5 {
        for user in ["Павел", "Anna", "Anna.x"] {
            let key = tokens(&["notification", user, &format!("o-{n}")]);
            kv.write(&key, key.clone().into_bytes().into(), None)
                .await
                .unwrap();
        }
    }
    kv.set("notification/one-token", "not in the group".into())
        .await
        .unwrap();
    kv.delete(&tokens(&["notification", "Павел", "o-1"]))
        .await
        .unwrap();
    let keys =
        |page: &Page| -> Vec<String> { page.entries.iter().map(|e| e.key.clone()).collect() };
    let pavels = |orders: &[&str]| -> Vec<String> {
        orders
            .iter()
            .map(|order| tokens(&["notification", "Павел", order]))
            .collect()
    };

    for by in [ScanBy::WriteOrder, ScanBy::KeyIndex] {
        let filter = tokens(&["notification", "Павел", ">"]);
        let first = kv.scan(&filter, by, 0, 2).await.unwrap();
        assert_eq!(
            keys(&first),
            pavels(&["o-0", "o-2"]),
            "{by:?}: the deleted key is skipped and no other user's key is read"
        );
        assert_eq!(
            first.entries[0].value.as_ref(),
            first.entries[0].key.as_bytes()
        );
        let second = kv
            .scan(&filter, by, first.next.expect("more follow"), 2)
            .await
            .unwrap();
        assert_eq!(keys(&second), pavels(&["o-3", "o-4"]), "{by:?}");
        assert_eq!(
            second.next, None,
            "{by:?}: nothing is left after the last page"
        );

        let one_order = kv
            .scan(&tokens(&["notification", "*", "o-3"]), by, 0, 10)
            .await
            .unwrap();
        assert_eq!(one_order.entries.len(), 3, "{by:?}: `*` matches one token");
        let everyone = kv
            .scan(&tokens(&["notification", ">"]), by, 0, 1000)
            .await
            .unwrap();
        assert_eq!(
            everyone.entries.len(),
            14,
            "{by:?}: a key of one token is not in the group"
        );
        assert!(kv
            .scan(&tokens(&["notification", "", ">"]), by, 0, 1)
            .await
            .is_err());
    }
}

#[tokio::test]
async fn a_bucket_kept_by_three_servers_reads_every_write_at_once_from_any_of_them() {
    let cluster = NatsCluster::start().await;
    bucket_with_replicas(&cluster.servers[0], "replicated", 3).await;
    // Followers of a new stream start answering reads a few seconds after it is created (once
    // they have caught up). Before reads went to the leader, a follower's answer missed a write
    // just acknowledged about once in fifty here, from the third second on.
    let until = Instant::now() + Duration::from_secs(6);
    let writers = cluster
        .servers
        .iter()
        .enumerate()
        .map(|(index, server)| async move {
            let kv = bucket_with_replicas(server, "replicated", 3).await;
            let (mut written, mut stale) = (0, Vec::new());
            while Instant::now() < until {
                let key = format!("account/{index}-{written}");
                kv.write(&key, "created".into(), None).await.unwrap();
                written += 1;
                if kv.read(&key).await.unwrap().is_none() {
                    stale.push(key);
                }
            }
            (written, stale)
        });
    for (written, stale) in futures::future::join_all(writers).await {
        assert!(written > 100, "only {written} writes in 6 s");
        assert_eq!(
            stale,
            Vec::<String>::new(),
            "read as missing right after their write"
        );
    }
}
