//! Who may use the lattice's NATS: nobody without credentials, and the data plane (the host's RPC
//! connection and every provider, `rpc.creds`) not for the control interface nor the host's state.

use std::time::Duration;

use orders_e2e::{lattice_test, Lattice};

/// The lattice as the data plane's credentials reach it, with a short patience for requests that
/// must go unanswered.
async fn as_data_plane(lattice: &Lattice) -> async_nats::Client {
    let creds = std::env::var("ORDERS_NATS_RPC_CREDS")
        .expect("ORDERS_NATS_RPC_CREDS is not set: run through `make test`");
    lattice.nats_as(&creds, Some(Duration::from_secs(2))).await
}

#[lattice_test]
async fn an_anonymous_nats_client_is_refused(lattice: Lattice) {
    let refused = async_nats::connect(&lattice.nats_url)
        .await
        .expect_err("NATS lets nobody in without credentials");
    assert_eq!(
        refused.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
}

#[lattice_test]
async fn the_data_plane_may_ask_for_links_but_not_command_the_lattice(lattice: Lattice) {
    let admin = lattice.nats().await;
    let rpc = as_data_plane(&lattice).await;
    let ping = "wasmbus.ctl.v1.default.host.ping";
    assert!(
        admin.request(ping, "".into()).await.is_ok(),
        "the host answers the admin"
    );
    assert!(
        rpc.request(ping, "".into()).await.is_err(),
        "the data plane reached the control interface"
    );
    // What the providers' link keeper asks: the links, and a link's config, but not the config
    // that holds the API key secret.
    let links = rpc
        .request("wasmbus.ctl.v1.default.link.get", "".into())
        .await
        .expect("the data plane may read the links");
    assert!(String::from_utf8_lossy(&links.payload).contains("keyvalue"));
    let path_config = rpc
        .request(
            "wasmbus.ctl.v1.default.config.get.orders-path_order",
            "".into(),
        )
        .await
        .expect("the data plane may read a link's config");
    assert!(String::from_utf8_lossy(&path_config.payload).contains("/Order"));
    assert!(
        rpc.request("wasmbus.ctl.v1.default.config.get.orders-auth", "".into())
            .await
            .is_err(),
        "the data plane read the key secret"
    );
}

#[lattice_test]
async fn the_data_plane_cannot_read_the_hosts_config_bucket(lattice: Lattice) {
    let admin = async_nats::jetstream::new(lattice.nats().await);
    assert!(admin.get_key_value("CONFIGDATA_default").await.is_ok());
    let mut rpc = async_nats::jetstream::new(as_data_plane(&lattice).await);
    rpc.set_timeout(Duration::from_secs(2));
    assert!(
        rpc.get_key_value("CONFIGDATA_default").await.is_err(),
        "the data plane opened the bucket that holds every named config"
    );
}
