//! Ports: what the cores need from the outside world, as traits. The components implement them over
//! our `keyvalue-cas` interface and `wasmcloud:messaging`, `make bench`'s native build over
//! JetStream directly; unit tests use [`crate::memory`].

use prost::Message;

use crate::domain::OrderId;
use orders_wire::proto::OrderPlaced;

/// The revision a key was written at; compare-and-swap writes name the revision they expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key-value store failed: {0}")]
    Unavailable(String),
    #[error("record `{key}` cannot be decoded: {why}")]
    Corrupt { key: String, why: String },
    #[error("reading the broker's stored messages failed: {0}")]
    BrokerUnavailable(String),
}

/// A stored value and the revision it was written at.
pub type Versioned = (Vec<u8>, Revision);

/// A key-value bucket with compare-and-swap. A store implements the batch forms, each in one
/// round trip where it can; one key's read and write are batches of one.
pub trait CasStore {
    /// Each key's value and revision, in the keys' order; `None` where a key does not exist.
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError>;

    /// Each write only if its key is still at its `expected` revision (`None`: only if the key
    /// does not exist); each succeeds or loses on its own. The new revisions in the writes'
    /// order, `None` where another writer got there first. A key may appear once.
    fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError>;

    /// One page of the entries [`Scan`] asks for, oldest first.
    fn scan(&self, scan: Scan<'_>) -> Result<ScanPage, StoreError>;

    /// Waits before the retry that follows the `conflicts`-th lost compare-and-swap of one
    /// update, so that writers racing for one hot key spread out instead of colliding again in
    /// lockstep (a busy account's orders, settled by many instances at once).
    fn wait_after_conflict(&self, conflicts: u32);

    /// The value and its revision; `None` when the key does not exist.
    fn read(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let found = self.read_many(&[key.to_string()])?;
        Ok(found.into_iter().next().flatten())
    }

    /// Writes only if the key is still at `expected` (`None`: only if it does not exist); returns
    /// the new revision, or `None` when another writer got there first.
    fn write(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let write = CasWrite {
            key: key.to_string(),
            value: value.to_vec(),
            expected,
        };
        let written = self.write_many(std::slice::from_ref(&write))?;
        Ok(written.into_iter().next().flatten())
    }

    /// The values of `keys`, in order; `None` for a key that does not exist.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let found = self.read_many(keys)?;
        Ok(found
            .into_iter()
            .map(|entry| entry.map(|(value, _)| value))
            .collect())
    }
}

/// What one [`CasStore::scan`] asks for: up to `limit` entries whose keys match `filter` (see
/// [`orders_wire::keys`]), written after `after` (`None`: from the first), found as `by` says.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub filter: &'a str,
    pub by: ScanBy,
    pub after: Option<Revision>,
    pub limit: u32,
}

/// One write of [`CasStore::write_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasWrite {
    pub key: String,
    pub value: Vec<u8>,
    /// As [`CasStore::write`]'s `expected`.
    pub expected: Option<Revision>,
}

impl CasWrite {
    /// A protobuf record written over `expected`.
    pub fn record<M: Message>(key: String, record: &M, expected: Option<Revision>) -> Self {
        Self {
            key,
            value: record.encode_to_vec(),
            expected,
        }
    }
}

/// How [`CasStore::scan`] finds its entries. The page is the same either way; the cost is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanBy {
    /// Walks the bucket in write order from the cursor: the cost grows with what was written
    /// after it until the page is full. For filters most keys match.
    WriteOrder,
    /// Looks the matching keys up in JetStream's subject index, then reads them: the cost grows
    /// with the matching keys only, whatever the bucket holds. For filters few keys match.
    KeyIndex,
}

/// A key with its value and the revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: Revision,
}

/// One page of [`CasStore::scan`]: `next`, when present, is the `after` of the page that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub entries: Vec<Entry>,
    pub next: Option<Revision>,
}

impl ScanPage {
    /// A page from a store's own scan: its entries as (key, value, revision), and the revision
    /// the next page starts after.
    pub fn of(
        entries: impl IntoIterator<Item = (String, Vec<u8>, u64)>,
        next: Option<u64>,
    ) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|(key, value, revision)| Entry {
                    key,
                    value,
                    revision: Revision(revision),
                })
                .collect(),
            next: next.map(Revision),
        }
    }
}

/// How long [`CasStore::wait_after_conflict`] waits: "full jitter", a uniformly random wait up to
/// a cap of 2 ms after the first conflict, doubling with each further one, at most 64 ms. `random`
/// is any uniformly distributed number.
pub fn conflict_wait_ms(conflicts: u32, random: u64) -> u64 {
    let cap = 1u64 << conflicts.min(6);
    random % (cap + 1)
}

/// Protobuf records on top of any [`CasStore`].
pub trait RecordStore: CasStore {
    fn read_record<M: Message + Default>(
        &self,
        key: &str,
    ) -> Result<Option<(M, Revision)>, StoreError> {
        self.read(key)?
            .map(|(bytes, revision)| Ok((decode_record(key, &bytes)?, revision)))
            .transpose()
    }

    fn write_record<M: Message>(
        &self,
        key: &str,
        record: &M,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        self.write(key, &record.encode_to_vec(), expected)
    }

    /// Read-modify-write that never loses a concurrent update: `decide` sees the current record
    /// and says what to write; on a compare-and-swap conflict it runs again on the newer record.
    fn update_record<M, T, E>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<M>) -> Result<Update<M, T>, E>,
    ) -> Result<T, E>
    where
        M: Message + Default,
        E: From<StoreError>,
    {
        for conflicts in 0..MAX_CONFLICTS {
            if conflicts > 0 {
                self.wait_after_conflict(conflicts);
            }
            let (current, revision) = match self.read_record::<M>(key)? {
                Some((record, revision)) => (Some(record), Some(revision)),
                None => (None, None),
            };
            match decide(current)? {
                Update::Keep(outcome) => return Ok(outcome),
                Update::Write(record, outcome) => {
                    if self.write_record(key, &record, revision)?.is_some() {
                        return Ok(outcome);
                    }
                }
                Update::WriteAfter(first, record, outcome) => {
                    // Lost creates are records an earlier attempt wrote: immutable, so the same.
                    self.write_many(&first)?;
                    if self.write_record(key, &record, revision)?.is_some() {
                        return Ok(outcome);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "`{key}` kept changing: {MAX_CONFLICTS} conflicting writes"
        ))
        .into())
    }

    /// One page of the records [`Scan`] asks for, oldest first, and the `after` of the next page.
    fn scan_records<M: Message + Default>(
        &self,
        scan: Scan<'_>,
    ) -> Result<(Vec<M>, Option<Revision>), StoreError> {
        let page = self.scan(scan)?;
        let records = page
            .entries
            .iter()
            .map(|entry| decode_record(&entry.key, &entry.value))
            .collect::<Result<_, _>>()?;
        Ok((records, page.next))
    }

    /// [`Self::read_record`] of each key, in one round trip where the store can.
    #[allow(clippy::type_complexity)]
    fn read_records<M: Message + Default>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<(M, Revision)>>, StoreError> {
        keys.iter()
            .zip(self.read_many(keys)?)
            .map(|(key, found)| {
                found
                    .map(|(bytes, revision)| Ok((decode_record(key, &bytes)?, revision)))
                    .transpose()
            })
            .collect()
    }

    /// The records at `keys` that exist, in order, read in one batch.
    fn records<M: Message + Default>(&self, keys: &[String]) -> Result<Vec<M>, StoreError> {
        let values = self.get_many(keys)?;
        keys.iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|bytes| decode_record(key, &bytes)))
            .collect()
    }
}

impl<S: CasStore + ?Sized> RecordStore for S {}

/// How many compare-and-swap conflicts one update tolerates before giving up. Each conflict means
/// another writer succeeded, so this is only reached under pathological contention.
pub const MAX_CONFLICTS: u32 = 1000;

/// What [`RecordStore::update_record`]'s decision does.
pub enum Update<M, T> {
    /// Leave the record as it is and return `T`.
    Keep(T),
    /// Write `M` (if nobody wrote in between) and return `T`.
    Write(M, T),
    /// Create the immutable records first (each only if absent), then as [`Update::Write`]: for
    /// what leaves `M` into records of its own, so that there is no moment when neither has it.
    WriteAfter(Vec<CasWrite>, M, T),
}

/// A broker message's protobuf body, `name` being what the subject carries; the error says which
/// subject carried something else (the messaging provider logs it and redelivers the message).
pub fn decode_message<M: Message + Default>(
    subject: &str,
    body: &[u8],
    name: &str,
) -> Result<M, String> {
    M::decode(body).map_err(|e| format!("{subject} carried no {name}: {e}"))
}

/// A stored protobuf record; `Corrupt` when `bytes` are not one.
pub fn decode_record<M: Message + Default>(key: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        why: e.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing to the broker failed: {0}")]
pub struct PublishError(pub String);

/// The broker.
pub trait Publisher {
    fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), PublishError>;

    fn publish_message<M: Message>(&self, subject: &str, message: &M) -> Result<(), PublishError> {
        self.publish(subject, message.encode_to_vec())
    }
}

/// The placed orders as the broker's stream keeps them.
pub trait PlacedOrders {
    /// Order `id` as it was placed; `None` when the stream does not hold it (never placed, or
    /// older than the stream keeps).
    fn find(&self, id: &OrderId) -> Result<Option<OrderPlaced>, StoreError>;
}

/// Wall-clock time.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// The system's wall clock (`wasi:clocks` in a component).
#[derive(Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }
}
