//! The issued credentials against a real nats-server started with the issued server config: who
//! gets in, and what the data plane can and cannot do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use orders_nats_auth::{Authority, DataPlane, Identity, SERVER_CONFIG_FILE};
use orders_test_nats::NatsServer;

struct Lattice {
    server: NatsServer,
    dir: PathBuf,
}

impl Drop for Lattice {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lattice {
    async fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nats-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        orders_nats_auth::create_private_dir(&dir).unwrap();
        let plane = DataPlane {
            lattice: "default".into(),
            streams: vec!["ORDERS".into()],
            buckets: vec!["billing".into()],
            subjects: vec!["orders.placed".into()],
            secret_configs: vec!["orders-auth".into()],
        };
        Authority::load_or_create(&dir)
            .unwrap()
            .issue(&dir, &plane)
            .unwrap();
        let config = dir.join(SERVER_CONFIG_FILE);
        let server = NatsServer::start_with(&[Path::new("-c"), &config]).await;
        Self { server, dir }
    }

    async fn connect_as(&self, identity: Identity) -> async_nats::Client {
        async_nats::ConnectOptions::with_credentials_file(self.dir.join(identity.creds_file()))
            .await
            .unwrap()
            .request_timeout(Some(Duration::from_secs(1)))
            .connect(&self.server.url)
            .await
            .unwrap_or_else(|e| panic!("{} connects: {e}", identity.name()))
    }
}

#[tokio::test]
async fn an_anonymous_client_is_refused_and_every_identity_gets_in() {
    let lattice = Lattice::start("who").await;
    let anonymous = async_nats::ConnectOptions::new()
        .connect(&lattice.server.url)
        .await;
    let error = anonymous.expect_err("an anonymous client is refused");
    assert_eq!(
        error.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
    for identity in Identity::ALL {
        lattice.connect_as(identity).await.flush().await.unwrap();
    }
}

#[tokio::test]
async fn the_data_plane_uses_the_applications_stream_and_bucket() {
    let lattice = Lattice::start("plane").await;
    let js = async_nats::jetstream::new(lattice.connect_as(Identity::Rpc).await);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.placed".into()],
        ..Default::default()
    })
    .await
    .expect("the stream is created");
    js.publish("orders.placed", "order".into())
        .await
        .unwrap()
        .await
        .expect("JetStream stores the order");
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "billing".into(),
            ..Default::default()
        })
        .await
        .expect("the bucket is created");
    kv.put("account", "100".into()).await.unwrap();
    assert_eq!(
        kv.get("account").await.unwrap().as_deref(),
        Some(&b"100"[..])
    );
}

#[tokio::test]
async fn the_data_plane_cannot_use_the_control_interface() {
    let lattice = Lattice::start("control").await;
    let admin = lattice.connect_as(Identity::Admin).await;
    let mut seen = admin.subscribe("wasmbus.ctl.>").await.unwrap();
    admin.flush().await.unwrap();
    let rpc = lattice.connect_as(Identity::Rpc).await;
    for forbidden in [
        "wasmbus.ctl.v1.default.host.stop",
        "wasmbus.ctl.v1.default.link.put",
        "wasmbus.ctl.v1.default.config.get.orders-auth",
    ] {
        rpc.publish(forbidden, "{}".into()).await.unwrap();
    }
    // Allowed, and published last: NATS keeps one connection's order, so once it arrives the
    // forbidden ones would have too.
    rpc.publish("wasmbus.ctl.v1.default.link.get", "".into())
        .await
        .unwrap();
    rpc.flush().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), seen.next())
        .await
        .expect("the allowed question arrives")
        .unwrap();
    assert_eq!(first.subject.as_str(), "wasmbus.ctl.v1.default.link.get");

    // Nor listen to it: the server refuses the subscription.
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let listener = async_nats::ConnectOptions::with_credentials_file(
        lattice.dir.join(Identity::Rpc.creds_file()),
    )
    .await
    .unwrap()
    .event_callback(move |event| {
        let errors_tx = errors_tx.clone();
        async move {
            if let async_nats::Event::ServerError(error) = event {
                let _ = errors_tx.send(error.to_string());
            }
        }
    })
    .connect(&lattice.server.url)
    .await
    .unwrap();
    let _control = listener.subscribe("wasmbus.ctl.>").await.unwrap();
    listener.flush().await.unwrap();
    let refusal = tokio::time::timeout(Duration::from_secs(5), errors.recv())
        .await
        .expect("the server answers the subscription")
        .unwrap();
    assert!(
        refusal.contains("Permissions Violation for Subscription"),
        "{refusal}"
    );
}

#[tokio::test]
async fn the_data_plane_cannot_read_another_bucket() {
    let lattice = Lattice::start("bucket").await;
    let admin = async_nats::jetstream::new(lattice.connect_as(Identity::Admin).await);
    let host_config = admin
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "CONFIGDATA_default".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    host_config
        .put("orders-auth", "secret".into())
        .await
        .unwrap();

    let mut rpc = async_nats::jetstream::new(lattice.connect_as(Identity::Rpc).await);
    rpc.set_timeout(Duration::from_secs(1));
    assert!(
        rpc.get_key_value("CONFIGDATA_default").await.is_err(),
        "the host's config bucket is not the data plane's"
    );
    assert!(rpc.get_stream("KV_CONFIGDATA_default").await.is_err());
}
