//! The host keeps component instances apart. Every request runs in a fresh instance in a slot of
//! wasmtime's pooling allocator, whose memory the host keeps resident and resets in place between
//! instances; the isolation probe (tests/probe, at `GET /Probe` on the test lattice only) reads
//! the memory a fresh instance must find zeroed and then dirties it for the slot's next instance.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt as _;
use orders_e2e::{lattice_test, Lattice};
use serde_json::Value;

/// How many probes run, and how many at once: enough that the probe's slots are used again
/// and again, many of them right after another instance of the probe dirtied them.
const PROBES: usize = 600;
const AT_ONCE: usize = 24;

#[lattice_test]
async fn every_instance_starts_from_clean_memory_and_no_filesystem(lattice: Lattice) {
    // From an address of its own, so that these requests leave the other tests' rate limit alone.
    let client = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 21]))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/Probe", lattice.base_url);
    // Orders placed meanwhile run billing, order and notify instances beside the probes.
    let user = lattice.new_user("isolation", 1_000).await;
    let orders = async {
        for _ in 0..20 {
            lattice.order(&user, 1).await;
        }
    };
    let probes = futures::stream::iter(0..PROBES)
        .map(|_| async {
            let response = client.get(&url).send().await.expect("the probe answers");
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.expect("a JSON answer")
        })
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<Value>>();
    let (found, ()) = tokio::join!(probes, orders);

    for answer in &found {
        assert_eq!(answer["static_nonzero_bytes"], 0, "{answer}");
        assert_eq!(answer["seeded_changed_bytes"], 0, "{answer}");
        assert_eq!(answer["grown_nonzero_bytes"], 0, "{answer}");
        assert_eq!(answer["preopened_directories"], 0, "{answer}");
        // 4 MiB: past the 10 KiB the host keeps resident between instances.
        assert_eq!(answer["grown_bytes"], 4 * 1024 * 1024, "{answer}");
    }
    assert_eq!(found.len(), PROBES);
}
