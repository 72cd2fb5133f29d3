//! One JetStream KV bucket, with the operations `wasi:keyvalue` and our compare-and-swap need:
//! the key-value provider serves it to components, and `make bench`'s native build uses it
//! directly. Keys are the services' keys; encoding them for JetStream happens here and nowhere
//! else.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use async_nats::jetstream;
use orders_conventions::keys::stored as key;

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

impl From<key::InvalidKey> for BucketError {
    fn from(key::InvalidKey(why): key::InvalidKey) -> Self {
        Self::InvalidKey(why)
    }
}

fn encode(k: &str) -> Result<String, BucketError> {
    Ok(key::encode(k)?)
}

/// A stored value and the revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    pub revision: u64,
}

/// A key with its value and revision, as a scan returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Bytes,
    pub revision: u64,
}

/// One page of a scan: its entries in the order they were written, and the revision to scan
/// after for the next page (`None`: nothing more matched when the page was read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next: Option<u64>,
}

/// The most entries one scan returns; a caller asking for more gets this many and a `next`.
pub const MAX_SCAN: u32 = 1000;

/// How a scan finds its entries (`scan-by` in `wit/orders.wit`); the page is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanBy {
    /// A short-lived consumer filtered on the keys, from the cursor on: JetStream reads the
    /// stream from there until the page is full (to its end, when few keys match).
    WriteOrder,
    /// The stream's subject index names the matching keys (no message is read for it); then each
    /// is read, and the page is cut from them in write order.
    KeyIndex,
}

/// Reads of one key-index scan in flight at once.
const KEY_INDEX_READS_IN_FLIGHT: usize = 64;

/// Tries of one scan, 10 ms after the first failure and twice as long after each further one
/// (about 2.5 s in all): what a cluster takes to carry a new consumer's interest over its routes.
const SCAN_ATTEMPTS: u32 = 9;

#[derive(Clone, Debug)]
pub struct Bucket {
    store: kv::Store,
}

impl Bucket {
    /// Opens bucket `name`, creating it (file storage, `history` revisions per key, on
    /// `replicas` servers) when missing.
    pub async fn open(
        js: &jetstream::Context,
        name: &str,
        history: i64,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let store = match js.get_key_value(name).await {
            Ok(store) => store,
            Err(_) => {
                js.create_key_value(kv::Config {
                    bucket: name.to_string(),
                    history,
                    num_replicas: replicas,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await?
            }
        };
        let stream_config = &store.stream.cached_info().config;
        if stream_config.num_replicas <= 1 || !stream_config.allow_direct {
            return Ok(Self { store });
        }
        // A direct get may be answered by any replica, and a follower can answer before it has
        // applied a write the leader already acknowledged (nats-server#6557; NATS 2.12 added an
        // opt-in read-after-write get, which async-nats 0.39 and 0.41 do not offer): a user just
        // created would read as unknown. Without direct get, async-nats reads through the stream
        // leader, which answers only with what it has applied.
        let mut stream_config = stream_config.clone();
        stream_config.allow_direct = false;
        js.update_stream(&stream_config).await?;
        Ok(Self {
            store: js.get_key_value(name).await?,
        })
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

    /// Up to `limit` live entries whose keys match `filter` (see [`key::encode_filter`]) and were
    /// written after revision `after`, oldest first, found as `by` says. In write order, a bucket
    /// keeping more than one revision per key (`history` > 1) returns a key rewritten since
    /// `after` once per revision it still keeps; through the key index, once.
    pub async fn scan(
        &self,
        filter: &str,
        by: ScanBy,
        after: u64,
        limit: u32,
    ) -> Result<Page, BucketError> {
        let subject = format!("{}{}", self.store.prefix, key::encode_filter(filter)?);
        let limit = limit.clamp(1, MAX_SCAN) as usize;
        let scan_once = || async {
            match by {
                ScanBy::WriteOrder => {
                    self.scan_in_write_order(subject.clone(), after, limit)
                        .await
                }
                ScanBy::KeyIndex => self.scan_key_index(&subject, after, limit).await,
            }
        };
        // On a cluster, a consumer just created may not be reachable from this client's server
        // yet (its interest travels over the routes): the first pull is then answered 503 "no
        // responders". Such a scan is tried again after a short wait.
        let mut wait = Duration::from_millis(10);
        for _ in 1..SCAN_ATTEMPTS {
            match scan_once().await {
                Err(BucketError::Nats(why)) => {
                    tracing::debug!(%why, "scan failed, trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                done => return done,
            }
        }
        scan_once().await
    }

    async fn scan_key_index(
        &self,
        subject: &str,
        after: u64,
        limit: usize,
    ) -> Result<Page, BucketError> {
        // A set: the subject list comes in pages of a map the server iterates in no fixed
        // order, and async-nats asks for one more page after the last; a key written in between
        // can make that page repeat one already seen.
        let stored_keys: Vec<String> = self
            .store
            .stream
            .info_with_subjects(subject)
            .await
            .map_err(nats)?
            .map_ok(|(subject, _messages)| subject)
            .try_collect::<std::collections::BTreeSet<_>>()
            .await
            .map_err(nats)?
            .into_iter()
            .filter_map(|subject| {
                subject
                    .strip_prefix(self.store.prefix.as_str())
                    .map(str::to_string)
            })
            .collect();
        let mut entries: Vec<Entry> = futures::stream::iter(stored_keys)
            .map(|stored_key| async move { self.store.entry(stored_key).await })
            .buffer_unordered(KEY_INDEX_READS_IN_FLIGHT)
            .try_filter_map(|entry| async move {
                Ok(entry
                    .filter(|e| e.operation == Operation::Put && e.revision > after)
                    .and_then(|e| {
                        Some(Entry {
                            key: key::decode(&e.key)?,
                            value: e.value,
                            revision: e.revision,
                        })
                    }))
            })
            .try_collect()
            .await
            .map_err(nats)?;
        entries.sort_by_key(|entry| entry.revision);
        let next = (entries.len() > limit).then(|| entries[limit - 1].revision);
        entries.truncate(limit);
        Ok(Page { entries, next })
    }

    async fn scan_in_write_order(
        &self,
        subject: String,
        after: u64,
        limit: usize,
    ) -> Result<Page, BucketError> {
        let consumer = self
            .store
            .stream
            .create_consumer(pull::Config {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ack_policy: AckPolicy::None,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: Duration::from_secs(5),
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let consumer_name = consumer.cached_info().name.clone();
        let page = self.read_page(&consumer, limit).await;
        // The consumer would vanish on its own after `inactive_threshold`; deleting it at once
        // keeps the server's consumer count flat under a console polling every second.
        let _ = self.store.stream.delete_consumer(&consumer_name).await;
        page
    }

    async fn read_page(
        &self,
        consumer: &async_nats::jetstream::consumer::PullConsumer,
        limit: usize,
    ) -> Result<Page, BucketError> {
        // One live entry more than asked tells whether a next page exists. Deleted keys' markers
        // match the filter too, so after them the rest of the page is fetched again.
        let mut entries = Vec::with_capacity(limit);
        let mut next = None;
        'pages: loop {
            let wanted = limit + 1 - entries.len();
            let mut fetched = 0;
            let mut messages = consumer
                .fetch()
                .max_messages(wanted)
                .messages()
                .await
                .map_err(nats)?;
            while let Some(message) = messages.next().await {
                let message = message.map_err(nats)?;
                fetched += 1;
                let deleted = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_some_and(|op| op.as_str() != "PUT");
                let key = message
                    .subject
                    .strip_prefix(self.store.prefix.as_str())
                    .and_then(key::decode);
                if let (false, Some(key)) = (deleted, key) {
                    if entries.len() == limit {
                        next = entries.last().map(|e: &Entry| e.revision);
                        break 'pages;
                    }
                    entries.push(Entry {
                        key,
                        value: message.payload.clone(),
                        revision: message.info().map_err(nats)?.stream_sequence,
                    });
                }
            }
            if fetched < wanted {
                break;
            }
        }
        Ok(Page { entries, next })
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
