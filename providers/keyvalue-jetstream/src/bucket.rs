//! One JetStream KV bucket, with the operations `wasi:keyvalue` and our compare-and-swap need.
//! Keys are the components' keys; encoding them for JetStream happens here and nowhere else.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures::TryStreamExt as _;

use crate::config::BucketConfig;
use crate::key;
use orders_provider_support::NatsCredentials;

/// What went wrong, in the terms of `wasi:keyvalue`'s `error` variant.
#[derive(Debug)]
pub enum BucketError {
    InvalidKey(&'static str),
    NotANumber,
    Nats(String),
}

impl std::fmt::Display for BucketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidKey(why) => write!(f, "invalid key: {why}"),
            Self::NotANumber => f.write_str("the value is not a decimal unsigned number"),
            Self::Nats(why) => write!(f, "NATS JetStream: {why}"),
        }
    }
}

fn nats(error: impl std::fmt::Display) -> BucketError {
    BucketError::Nats(error.to_string())
}

fn encode(k: &str) -> Result<String, BucketError> {
    key::encode(k).map_err(|key::InvalidKey(why)| BucketError::InvalidKey(why))
}

/// A stored value and the revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    pub revision: u64,
}

#[derive(Clone, Debug)]
pub struct Bucket {
    store: kv::Store,
}

impl Bucket {
    /// Connects with `credentials` and opens the configured bucket, creating it (file storage)
    /// when missing.
    pub async fn open(
        config: &BucketConfig,
        credentials: &NatsCredentials,
    ) -> anyhow::Result<Self> {
        let client = credentials
            .connect(&config.cluster_uri, "orders keyvalue-jetstream provider")
            .await?;
        let js = match &config.js_domain {
            Some(domain) => async_nats::jetstream::with_domain(client, domain),
            None => async_nats::jetstream::new(client),
        };
        let store = match js.get_key_value(&config.bucket).await {
            Ok(store) => store,
            Err(_) => {
                js.create_key_value(kv::Config {
                    bucket: config.bucket.clone(),
                    history: config.history,
                    num_replicas: config.replicas,
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await?
            }
        };
        Ok(Self { store })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BucketError> {
        Ok(self.read(key).await?.map(|v| v.value))
    }

    pub async fn set(&self, key: &str, value: Bytes) -> Result<(), BucketError> {
        self.store.put(encode(key)?, value).await.map_err(nats)?;
        Ok(())
    }

    /// Removes the key and its history (deleting a missing key is not an error).
    pub async fn delete(&self, key: &str) -> Result<(), BucketError> {
        self.store.purge(encode(key)?).await.map_err(nats)
    }

    pub async fn exists(&self, key: &str) -> Result<bool, BucketError> {
        Ok(self.read(key).await?.is_some())
    }

    /// Every live key, decoded; keys written by other tools that we cannot decode are skipped.
    pub async fn keys(&self) -> Result<Vec<String>, BucketError> {
        let stored: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(nats)?
            .try_collect()
            .await
            .map_err(nats)?;
        Ok(stored.iter().filter_map(|k| key::decode(k)).collect())
    }

    /// The current value and revision; `None` when the key was never written or was deleted.
    pub async fn read(&self, key: &str) -> Result<Option<Versioned>, BucketError> {
        let entry = self.store.entry(encode(key)?).await.map_err(nats)?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| Versioned {
                value: e.value,
                revision: e.revision,
            }))
    }

    /// Writes only if the key is still at `expected` (`None`: only if it does not exist).
    /// Returns the new revision, or `None` when another writer got there first.
    pub async fn write(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<Option<u64>, BucketError> {
        let stored_key = encode(key)?;
        let Some(expected) = expected else {
            // An optimistic create: one JetStream request when the key is new (notify's
            // notifications, billing's payment records, order's idempotency keys); a read only
            // after a conflict, to tell a live key from a deleted one's tombstone, which is
            // created again over.
            return match self.store.create(stored_key, value).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(nats(e)),
            };
        };
        match self.store.update(stored_key, value, expected).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats(e)),
        }
    }

    /// Adds `delta` to a decimal counter (missing counts as 0), retrying on concurrent writers,
    /// so no increment is ever lost.
    pub async fn increment(&self, key: &str, delta: u64) -> Result<u64, BucketError> {
        let mut backoff = Duration::from_millis(1);
        loop {
            let current = self.read(key).await?;
            let (value, expected) = match &current {
                Some(v) => (parse_counter(&v.value)?, Some(v.revision)),
                None => (0, None),
            };
            let next = value.checked_add(delta).ok_or(BucketError::NotANumber)?;
            if self
                .write(key, next.to_string().into(), expected)
                .await?
                .is_some()
            {
                return Ok(next);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }
}

fn parse_counter(value: &[u8]) -> Result<u64, BucketError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(BucketError::NotANumber)
}
