//! The API's contract as the lattice serves it (`GET /openapi.json`, from openapi/openapi.yaml) and
//! the console page: what a client discovers first. schemathesis then fuzzes the API against the
//! same document (`orders-ops test`).

use orders_e2e::{lattice_test, Lattice};
use std::collections::BTreeSet;

/// Every path the HTTP provider routes, from the deployed manifest's links.
fn routed_paths() -> BTreeSet<String> {
    let manifest: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(std::env::var("ORDERS_MANIFEST").expect("ORDERS_MANIFEST"))
            .unwrap(),
    )
    .unwrap();
    let mut paths = BTreeSet::new();
    for component in manifest["spec"]["components"].as_sequence().unwrap() {
        for t in component["traits"].as_sequence().into_iter().flatten() {
            for config in t["properties"]["source"]["config"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                if let Some(path) = config["properties"]["path"].as_str() {
                    paths.insert(path.to_string());
                }
            }
        }
    }
    paths
}

#[lattice_test]
async fn the_served_contract_describes_every_api_path_the_lattice_routes(lattice: Lattice) {
    let contract = lattice.get("/openapi.json").await;
    assert_eq!(contract.status, 200);
    assert_eq!(contract.headers["content-type"], "application/json");
    assert_eq!(contract.body["openapi"], "3.1.0");
    let documented: BTreeSet<String> = contract.body["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let mut api = routed_paths();
    // The two documents the web component serves are not part of the API, nor is the isolation
    // probe, which only the test lattice routes (tests/probe).
    for not_api in ["/", "/openapi.json", "/Probe"] {
        assert!(api.remove(not_api), "{not_api} is routed");
    }
    assert_eq!(documented, api);
}

#[lattice_test]
async fn the_console_is_one_page_that_may_load_nothing_from_elsewhere(lattice: Lattice) {
    let response = reqwest::get(format!("{}/", lattice.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let page = response.text().await.unwrap();
    assert!(page.contains("<title>orders-lattice console</title>"));
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(
            !page.contains(external),
            "the page refers elsewhere: {external}"
        );
    }
}
