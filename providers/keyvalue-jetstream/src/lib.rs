//! A wasmCloud 1.x capability provider for key-value state on NATS JetStream KV.
//!
//! It serves `wasi:keyvalue@0.2.0-draft` (store, atomics, batch, which the host forwards to it as
//! `wrpc:keyvalue`) and `orders:lattice/keyvalue-cas`, the compare-and-swap that the draft lacks.
//! Each link from a component names its bucket in the link config (see [`config`]); the provider
//! opens it, creating it when missing, and routes the component's calls by (component, link name).

pub mod config;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::RwLock;
use tracing::Instrument as _;
use tracing::{info, warn};
use wasmcloud_provider_sdk::core::HostData;
use wasmcloud_provider_sdk::{Context, LinkConfig, LinkDeleteInfo, Provider};

use config::BucketConfig;
use orders_jetstream_kv::{self as bucket, Bucket, BucketError};
use orders_provider_support::links::{End, ServesLinks};
use orders_provider_support::{LinkKey, NatsCredentials};

mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit",
        world: "orders:lattice/keyvalue-jetstream-provider",
        generate_all,
    });
}

use bindings::exports::orders::lattice::keyvalue_cas;
use bindings::exports::wrpc::keyvalue::{atomics, batch, store};

orders_provider_support::define_run!(
    /// The provider process: serves its exports over NATS until the host stops it.
    "keyvalue-jetstream-provider",
    |host_data| KeyValueProvider::new(host_data),
    bindings::serve
);

orders_provider_support::define_serve_in_host!(
    /// Serves in the host's process, with the host data and the SDK's connection and commands the host
    /// gives an embedded provider: the components of that host call it on `exports` (in process), those
    /// of other hosts over NATS (`connection`). The tasks end when the host aborts them.
    |host_data, _connection| KeyValueProvider::new(host_data),
    bindings::serve
);

/// Identifiers a component may pass to `open`: the linked bucket's own name, or these aliases.
const LINKED_BUCKET_ALIASES: [&str; 2] = ["", "default"];

#[derive(Clone)]
struct KeyValueProvider {
    /// Provider-level config: defaults for every link.
    defaults: Arc<HashMap<String, String>>,
    /// The data plane's NATS credentials, which the host gave us, for the bucket connections.
    credentials: NatsCredentials,
    /// Open buckets by the link they serve.
    buckets: Arc<RwLock<HashMap<LinkKey, LinkedBucket>>>,
}

struct LinkedBucket {
    name: String,
    bucket: Bucket,
}

/// Why a call could not be routed to a bucket.
enum Unroutable {
    NoCaller,
    NotLinked,
}

impl KeyValueProvider {
    fn new(host_data: &HostData) -> Self {
        Self {
            defaults: Arc::new(host_data.config.clone()),
            credentials: NatsCredentials::of(host_data),
            buckets: Arc::default(),
        }
    }

    /// Connects with the data plane's credentials and opens the configured bucket.
    async fn open(&self, config: &BucketConfig) -> anyhow::Result<Bucket> {
        let client = self
            .credentials
            .connect(&config.cluster_uri, "orders keyvalue-jetstream provider")
            .await?;
        let js = match &config.js_domain {
            Some(domain) => async_nats::jetstream::with_domain(client, domain),
            None => async_nats::jetstream::new(client),
        };
        Bucket::open(&js, &config.bucket, config.history, config.replicas).await
    }

    /// The bucket a call is for: the caller's link, checked against the identifier it opened.
    async fn bucket(&self, cx: &Option<Context>, identifier: &str) -> Result<Bucket, Unroutable> {
        let cx = cx.as_ref().ok_or(Unroutable::NoCaller)?;
        let component = cx.component.as_deref().ok_or(Unroutable::NoCaller)?;
        let buckets = self.buckets.read().await;
        let linked = buckets
            .get(&(component.to_string(), cx.link_name().to_string()))
            .ok_or(Unroutable::NotLinked)?;
        if linked.name == identifier || LINKED_BUCKET_ALIASES.contains(&identifier) {
            Ok(linked.bucket.clone())
        } else {
            Err(Unroutable::NotLinked)
        }
    }
}

impl Provider for KeyValueProvider {
    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let config = BucketConfig::from_maps(&self.defaults, link.config)?;
        let bucket = self
            .open(&config)
            .await
            .with_context(|| format!("failed to open bucket `{}`", config.bucket))?;
        info!(component = link.source_id, link = link.link_name, bucket = %config.bucket, "bucket linked");
        self.buckets.write().await.insert(
            (link.source_id.to_string(), link.link_name.to_string()),
            LinkedBucket {
                name: config.bucket,
                bucket,
            },
        );
        Ok(())
    }

    async fn delete_link_as_target(&self, link: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = orders_provider_support::key_of_source(&link);
        if self.buckets.write().await.remove(&key).is_none() {
            warn!(
                component = key.0,
                link = key.1,
                "deleted a link that was not open"
            );
        }
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        self.buckets.write().await.clear();
        Ok(())
    }
}

impl ServesLinks for KeyValueProvider {
    const ENDS: &'static [End] = &[End::Target];

    async fn served_links(&self, _end: End) -> HashSet<LinkKey> {
        self.buckets.read().await.keys().cloned().collect()
    }
}

// The generated `error` variants of `wrpc:keyvalue/store` and of our CAS interface have the same
// shape; one macro maps our errors onto either instead of two copies of the same match.
macro_rules! impl_error_mapping {
    ($error:ty) => {
        impl From<BucketError> for $error {
            fn from(error: BucketError) -> Self {
                Self::Other(error.to_string())
            }
        }
        impl From<Unroutable> for $error {
            fn from(why: Unroutable) -> Self {
                match why {
                    Unroutable::NoCaller => Self::AccessDenied,
                    Unroutable::NotLinked => Self::NoSuchStore,
                }
            }
        }
    };
}
impl_error_mapping!(store::Error);
impl_error_mapping!(keyvalue_cas::Error);

type StoreResult<T> = anyhow::Result<Result<T, store::Error>>;

/// The keys of a batch as a span shows them: the first few, and how many there were.
fn keys_summary<'k>(keys: impl ExactSizeIterator<Item = &'k str>) -> String {
    let count = keys.len();
    let shown: Vec<String> = keys
        .take(4)
        .map(orders_conventions::keys::readable)
        .collect();
    match count {
        0..=4 => shown.join(","),
        _ => format!("{},... ({count} keys)", shown.join(",")),
    }
}

/// One span per operation, a child of the calling component's span (the host sends its trace
/// context with the call); the key names the account, order or payment it touched.
fn operation_span(cx: &Option<Context>, operation: &str, bucket: &str, key: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "keyvalue",
        otel.name = %format!("keyvalue {operation}"),
        otel.kind = "server",
        db.operation.name = %operation,
        // What the component named; empty for the bucket its link configures.
        db.namespace = %bucket,
        key = %orders_conventions::keys::readable(key),
        // Compare-and-swap writes that lost to another writer: a caller that settles one
        // account's orders in turn never loses one.
        lost = tracing::field::Empty,
    );
    orders_provider_support::continue_callers_trace(&span, cx);
    span
}

impl KeyValueProvider {
    /// What every operation below does around its own work: in the operation's span (`key` as it
    /// shows there), finds the bucket the caller's link names and runs `work` on it; the errors as
    /// the operation's interface words them.
    async fn on_bucket<T, E, Work>(
        &self,
        cx: &Option<Context>,
        operation: &str,
        bucket: &str,
        key: &str,
        work: impl FnOnce(Bucket) -> Work,
    ) -> anyhow::Result<Result<T, E>>
    where
        Work: std::future::Future<Output = Result<T, BucketError>>,
        E: From<BucketError> + From<Unroutable>,
    {
        let span = operation_span(cx, operation, bucket, key);
        Ok(async { Ok(work(self.bucket(cx, bucket).await?).await?) }
            .instrument(span)
            .await)
    }
}

impl store::Handler<Option<Context>> for KeyValueProvider {
    async fn get(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
    ) -> StoreResult<Option<Bytes>> {
        let key = key.as_str();
        self.on_bucket(
            &cx,
            "get",
            &bucket,
            key,
            |b| async move { b.get(key).await },
        )
        .await
    }

    async fn set(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
        value: Bytes,
    ) -> StoreResult<()> {
        let key = key.as_str();
        self.on_bucket(&cx, "set", &bucket, key, |b| async move {
            b.set(key, value).await
        })
        .await
    }

    async fn delete(&self, cx: Option<Context>, bucket: String, key: String) -> StoreResult<()> {
        let key = key.as_str();
        self.on_bucket(&cx, "delete", &bucket, key, |b| async move {
            b.delete(key).await
        })
        .await
    }

    async fn exists(&self, cx: Option<Context>, bucket: String, key: String) -> StoreResult<bool> {
        let key = key.as_str();
        self.on_bucket(&cx, "exists", &bucket, key, |b| async move {
            b.exists(key).await
        })
        .await
    }

    /// All keys in one page: JetStream lists keys as a stream without a stable cursor.
    async fn list_keys(
        &self,
        cx: Option<Context>,
        bucket: String,
        _cursor: Option<u64>,
    ) -> StoreResult<store::KeyResponse> {
        self.on_bucket(&cx, "list_keys", &bucket, "", |b| async move {
            let keys = b.keys().await?;
            Ok(store::KeyResponse { keys, cursor: None })
        })
        .await
    }
}

impl atomics::Handler<Option<Context>> for KeyValueProvider {
    async fn increment(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
        delta: u64,
    ) -> StoreResult<u64> {
        let key = key.as_str();
        self.on_bucket(&cx, "increment", &bucket, key, |b| async move {
            b.increment(key, delta).await
        })
        .await
    }
}

impl batch::Handler<Option<Context>> for KeyValueProvider {
    async fn get_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<(String, Bytes)>>> {
        let shown = keys_summary(keys.iter().map(String::as_str));
        self.on_bucket(&cx, "get_many", &bucket, &shown, |b| async move {
            let reads = keys.into_iter().map(|key| {
                let b = b.clone();
                async move { Ok::<_, BucketError>(b.get(&key).await?.map(|value| (key, value))) }
            });
            futures::future::try_join_all(reads).await
        })
        .await
    }

    async fn set_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        items: Vec<(String, Bytes)>,
    ) -> StoreResult<()> {
        let shown = keys_summary(items.iter().map(|(k, _)| k.as_str()));
        self.on_bucket(&cx, "set_many", &bucket, &shown, |b| async move {
            let writes = items.into_iter().map(|(key, value)| {
                let b = b.clone();
                async move { b.set(&key, value).await }
            });
            futures::future::try_join_all(writes).await.map(drop)
        })
        .await
    }

    async fn delete_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        keys: Vec<String>,
    ) -> StoreResult<()> {
        let shown = keys_summary(keys.iter().map(String::as_str));
        self.on_bucket(&cx, "delete_many", &bucket, &shown, |b| async move {
            let deletes = keys.into_iter().map(|key| {
                let b = b.clone();
                async move { b.delete(&key).await }
            });
            futures::future::try_join_all(deletes).await.map(drop)
        })
        .await
    }
}

type CasResult<T> = anyhow::Result<Result<T, keyvalue_cas::Error>>;

fn versioned(found: bucket::Versioned) -> keyvalue_cas::Versioned {
    keyvalue_cas::Versioned {
        value: found.value,
        revision: found.revision,
    }
}

impl keyvalue_cas::Handler<Option<Context>> for KeyValueProvider {
    async fn read(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
    ) -> CasResult<Option<keyvalue_cas::Versioned>> {
        let key = key.as_str();
        self.on_bucket(&cx, "read", &bucket, key, |b| async move {
            Ok(b.read(key).await?.map(versioned))
        })
        .await
    }

    async fn write(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
        value: Bytes,
        expected: Option<u64>,
    ) -> CasResult<Option<u64>> {
        let key = key.as_str();
        self.on_bucket(&cx, "write", &bucket, key, |b| async move {
            let written = b.write(key, value, expected).await?;
            tracing::Span::current().record("lost", usize::from(written.is_none()));
            Ok(written)
        })
        .await
    }

    async fn scan(
        &self,
        cx: Option<Context>,
        bucket: String,
        filter: String,
        by: keyvalue_cas::ScanBy,
        after: u64,
        limit: u32,
    ) -> CasResult<keyvalue_cas::Page> {
        let by = match by {
            keyvalue_cas::ScanBy::WriteOrder => bucket::ScanBy::WriteOrder,
            keyvalue_cas::ScanBy::KeyIndex => bucket::ScanBy::KeyIndex,
        };
        let filter = filter.as_str();
        self.on_bucket(&cx, "scan", &bucket, filter, |b| async move {
            let page = b.scan(filter, by, after, limit).await?;
            Ok(keyvalue_cas::Page {
                entries: page
                    .entries
                    .into_iter()
                    .map(|entry| keyvalue_cas::Entry {
                        key: entry.key,
                        value: entry.value,
                        revision: entry.revision,
                    })
                    .collect(),
                next: page.next,
            })
        })
        .await
    }

    async fn read_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        keys: Vec<String>,
    ) -> CasResult<Vec<Option<keyvalue_cas::Versioned>>> {
        let shown = keys_summary(keys.iter().map(String::as_str));
        self.on_bucket(&cx, "read_many", &bucket, &shown, |b| async move {
            let found = futures::future::try_join_all(keys.iter().map(|key| b.read(key))).await?;
            Ok(found
                .into_iter()
                .map(|found| found.map(versioned))
                .collect())
        })
        .await
    }

    async fn write_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        writes: Vec<keyvalue_cas::CasWrite>,
    ) -> CasResult<Vec<Option<u64>>> {
        let mut keys = HashSet::new();
        if let Some(twice) = writes.iter().find(|w| !keys.insert(w.key.as_str())) {
            return Ok(Err(keyvalue_cas::Error::Other(format!(
                "`{}` is written twice in one write-many",
                twice.key
            ))));
        }
        let shown = keys_summary(writes.iter().map(|w| w.key.as_str()));
        self.on_bucket(&cx, "write_many", &bucket, &shown, |b| async move {
            let attempts = writes.into_iter().map(|w| {
                let b = b.clone();
                async move { b.write(&w.key, w.value, w.expected).await }
            });
            let written = futures::future::try_join_all(attempts).await?;
            let lost = written.iter().filter(|revision| revision.is_none()).count();
            tracing::Span::current().record("lost", lost);
            Ok(written)
        })
        .await
    }
}
