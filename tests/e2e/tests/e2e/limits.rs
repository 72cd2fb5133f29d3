//! Limits the HTTP server provider keeps before any component runs: requests per client address and
//! per credential. The hammering clients use their own loopback addresses (127.0.0.x), so the
//! other tests, on 127.0.0.1, are not slowed.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt as _;
use orders_e2e::{encode, lattice_test, Lattice};

fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(address))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What a burst of requests was answered: how many were limited, and the first 429's
/// `Retry-After` (seconds) and body.
struct Limited {
    count: usize,
    retry_after: u64,
    body: serde_json::Value,
}

/// Sends `count` GETs of `url` (128 at a time), and checks that some were limited (429) and every
/// other one answered `served`.
async fn hammer(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    count: usize,
    served: u16,
) -> Limited {
    let requests = (0..count).map(|_| {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("an answer") }
    });
    let responses: Vec<reqwest::Response> = futures::stream::iter(requests)
        .buffer_unordered(128)
        .collect()
        .await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|status| [served, 429].contains(status)),
        "{statuses:?}"
    );
    let Some(first_429) = responses.into_iter().find(|r| r.status() == 429) else {
        panic!("{count} requests at once to {url} were never limited");
    };
    Limited {
        count: statuses.iter().filter(|status| **status == 429).count(),
        retry_after: first_429.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap(),
        body: first_429.json().await.unwrap(),
    }
}

const REQUESTS_FROM_ONE_ADDRESS: usize = 12_000;

#[lattice_test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_other_clients_do_not(
    lattice: Lattice,
) {
    let url = format!("{}/NoSuchThing", lattice.base_url);
    let greedy = client_from([127, 0, 0, 2]);
    // The address may send 1,000 at once and 1,000 a second (the test lattice's limits): 12,000
    // are limited whenever they go faster than about 1,100 a second. 4,000 needed 1,340 a
    // second, which the HTTP server, sharing the host's two cores with the other tests'
    // components, did not always reach.
    let Limited {
        count: limited,
        retry_after,
        body,
    } = hammer(&greedy, &url, None, REQUESTS_FROM_ONE_ADDRESS, 404).await;
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(body["error"], "rate_limited");

    let other = lattice.get("/NoSuchThing").await;
    assert_eq!(
        other.status, 404,
        "another address is not limited: {other:?}"
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = greedy.get(&url).send().await.unwrap();
    assert_eq!(
        again.status(),
        404,
        "after Retry-After the client is served again"
    );
    println!("rate per client: {limited} of {REQUESTS_FROM_ONE_ADDRESS} requests from 127.0.0.2 limited (429, Retry-After {retry_after} s)");
}

#[lattice_test]
async fn one_api_key_cannot_take_more_than_its_rate(lattice: Lattice) {
    let user = lattice.new_user("Greedy", 100).await;
    let url = format!("{}/Balance?user={}", lattice.base_url, encode(&user));
    let client = client_from([127, 0, 0, 3]);
    let Limited {
        count: limited,
        retry_after,
        body,
    } = hammer(&client, &url, Some(&lattice.key(&user)), 600, 200).await;
    assert_eq!(body["error"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("credential"));

    let other = lattice.new_user("Patient", 5).await;
    assert_eq!(
        lattice.balance(&other).await,
        5,
        "another key is not limited"
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(lattice.balance(&user).await, 100);
    println!("rate per credential: {limited} of 600 requests with one key limited");
}
