//! In-memory ports for the cores' unit tests: the same contracts as the real adapters, including
//! compare-and-swap conflicts, held in one process; and a fixed key configuration to authenticate
//! with.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::auth::{config_keys, Authenticator, Caller, CurrentKeys, KeyHash};
use crate::domain::{OrderId, UserName};
use crate::ports::{
    decode_record, CasStore, CasWrite, Clock, Entry, PlacedOrders, PublishError, Publisher,
    Revision, Scan, ScanPage, StoreError, Versioned,
};
use crate::service::{Environment, HostParts};
use orders_wire::keys;
use orders_wire::proto::{CurrentApiKey, OrderPlaced};
use orders_wire::subjects;

/// The admin token of [`authenticator`].
pub const ADMIN_TOKEN: &str = "ola_test-admin-token";

/// Key configuration for tests: a fixed secret, and [`ADMIN_TOKEN`] as the admin token.
pub fn authenticator() -> Authenticator {
    Authenticator::from_config(|name| match name {
        config_keys::API_KEY_SECRET => Some("42".repeat(32)),
        // `printf %s ola_test-admin-token | sha256sum`
        config_keys::ADMIN_TOKEN_SHA256 => {
            Some("2532b1ac89d0e39372072ca2499e59f25357c0394e244b630343cf9a27937d48".into())
        }
        _ => None,
    })
    .expect("the test configuration is well-formed")
}

/// The caller presenting `token` (an API key or the admin token) to [`authenticator`].
pub fn caller(token: &str) -> Caller {
    authenticator()
        .caller(Some(&format!("Bearer {token}")))
        .expect("a token issued under the test configuration")
}

#[derive(Default)]
pub struct MemoryStore {
    entries: RefCell<BTreeMap<String, (Vec<u8>, u64)>>,
    last_revision: Cell<u64>,
    operations: Cell<StoreOperations>,
}

/// What a [`MemoryStore`] was asked to do, to show how many round trips a use case costs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreOperations {
    pub reads: u32,
    pub writes: u32,
    pub waits: u32,
}

impl MemoryStore {
    /// Every key stored, in order: what a test asserts was (or was not) written.
    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    /// The operations since the last call.
    pub fn take_operations(&self) -> StoreOperations {
        self.operations.take()
    }

    fn count(&self, operation: impl FnOnce(&mut StoreOperations)) {
        let mut operations = self.operations.get();
        operation(&mut operations);
        self.operations.set(operations);
    }
}

impl MemoryStore {
    fn lookup(&self, key: &str) -> Option<(Vec<u8>, Revision)> {
        self.entries
            .borrow()
            .get(key)
            .map(|(v, r)| (v.clone(), Revision(*r)))
    }

    fn compare_and_swap(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<Revision>,
    ) -> Option<Revision> {
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|(_, r)| Revision(*r));
        if current != expected {
            return None;
        }
        let revision = self.last_revision.get() + 1;
        self.last_revision.set(revision);
        entries.insert(key.to_string(), (value.to_vec(), revision));
        Some(Revision(revision))
    }
}

/// Counts round trips: a `read_many` or `write_many` is one, however many keys it carries.
impl CasStore for MemoryStore {
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.count(|o| o.reads += 1);
        Ok(keys.iter().map(|key| self.lookup(key)).collect())
    }

    fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError> {
        self.count(|o| o.writes += 1);
        let mut keys = std::collections::BTreeSet::new();
        if let Some(twice) = writes.iter().find(|w| !keys.insert(w.key.as_str())) {
            return Err(StoreError::Unavailable(format!(
                "`{}` is written twice in one write-many",
                twice.key
            )));
        }
        Ok(writes
            .iter()
            .map(|w| self.compare_and_swap(&w.key, &w.value, w.expected))
            .collect())
    }

    /// Both ways of finding entries answer the same here.
    fn scan(&self, scan: Scan<'_>) -> Result<ScanPage, StoreError> {
        self.count(|o| o.reads += 1);
        let (filter, after, limit) = (scan.filter, scan.after.map_or(0, |r| r.0), scan.limit);
        let mut matching: Vec<Entry> = self
            .entries
            .borrow()
            .iter()
            .filter(|(key, (_, revision))| *revision > after && keys::matches(filter, key))
            .map(|(key, (value, revision))| Entry {
                key: key.clone(),
                value: value.clone(),
                revision: Revision(*revision),
            })
            .collect();
        matching.sort_by_key(|entry| entry.revision.0);
        let limit = limit.max(1) as usize;
        let next = (matching.len() > limit).then(|| matching[limit - 1].revision);
        matching.truncate(limit);
        Ok(ScanPage {
            entries: matching,
            next,
        })
    }

    /// Counts the wait without sleeping: in one process nobody else writes meanwhile.
    fn wait_after_conflict(&self, _conflicts: u32) {
        self.count(|o| o.waits += 1);
    }
}

/// Records what was published, or fails every publish when `broken`.
#[derive(Default)]
pub struct MemoryPublisher {
    pub published: RefCell<Vec<(String, Vec<u8>)>>,
    pub broken: Cell<bool>,
}

impl Publisher for MemoryPublisher {
    fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        if self.broken.get() {
            return Err(PublishError("broker unreachable".into()));
        }
        self.published
            .borrow_mut()
            .push((subject.to_string(), payload));
        Ok(())
    }
}

/// The publisher as a stream that keeps everything published: an order is found by its subject,
/// as the messaging provider finds it in `ORDERS`.
impl PlacedOrders for MemoryPublisher {
    fn find(&self, id: &OrderId) -> Result<Option<OrderPlaced>, StoreError> {
        let wanted = subjects::placed_order(id);
        self.newest(|subject| subjects::matches(&wanted, subject))?
            .map(|(subject, body)| decode_record(&subject, &body))
            .transpose()
    }
}

/// The publisher as the stream `KEYS`: a user's current key is the newest announced on the
/// user's subject, as the messaging provider reads it.
impl CurrentKeys for MemoryPublisher {
    fn current_key(&self, user: &UserName) -> Result<Option<KeyHash>, StoreError> {
        let wanted = subjects::current_api_key(user.as_str());
        let Some((subject, body)) = self.newest(|subject| subject == wanted)? else {
            return Ok(None);
        };
        let announced: CurrentApiKey = decode_record(&subject, &body)?;
        KeyHash::announced(&subject, &announced).map(Some)
    }
}

impl MemoryPublisher {
    /// The newest message published on a subject `wanted` accepts, as a stream reads it back
    /// (and fails as one does when the broker is unreachable).
    fn newest(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        if self.broken.get() {
            return Err(StoreError::BrokerUnavailable("broker unreachable".into()));
        }
        let published = self.published.borrow();
        Ok(published
            .iter()
            .rev()
            .find(|(subject, _)| wanted(subject))
            .cloned())
    }
}

/// A clock that stands still unless moved; by default at 2023-11-14T22:13:20Z.
pub struct FixedClock(pub Cell<u64>);

impl Default for FixedClock {
    fn default() -> Self {
        Self::at(1_700_000_000_000)
    }
}

impl FixedClock {
    pub fn at(ms: u64) -> Self {
        Self(Cell::new(ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// [`authenticator`]'s keys, counted random bytes, and the log kept.
#[derive(Default)]
pub struct MemoryEnvironment {
    pub log: RefCell<Vec<String>>,
    randoms: Cell<u8>,
}

impl Environment for MemoryEnvironment {
    fn authenticator(&self) -> Result<Authenticator, crate::auth::AuthError> {
        Ok(authenticator())
    }

    /// Different bytes on every call: the first byte counts the calls.
    fn random_16(&self) -> [u8; 16] {
        self.randoms.set(self.randoms.get().wrapping_add(1));
        let mut bytes = [7; 16];
        bytes[0] = self.randoms.get();
        bytes
    }

    fn log(&self, line: &str) {
        self.log.borrow_mut().push(line.to_string());
    }
}

/// A whole host in memory, for the services' routes and message handlers: a [`MemoryStore`], a
/// [`MemoryPublisher`] as broker and streams, a [`FixedClock`] and a [`MemoryEnvironment`].
pub type MemoryHost = HostParts<MemoryStore, MemoryPublisher, FixedClock, MemoryEnvironment>;

impl MemoryHost {
    /// An empty host whose clock reads `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        Self {
            clock: FixedClock::at(now_ms),
            ..Self::default()
        }
    }

    /// A request as a client sends it, with `token` as its bearer credentials when given.
    pub fn request(
        method: http::Method,
        path_and_query: &str,
        token: Option<&str>,
        body: &str,
    ) -> crate::service::Request {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                "authorization",
                http::HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid token"),
            );
        }
        crate::service::Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{conflict_wait_ms, RecordStore, Update};
    use orders_wire::proto::StoredAccount;

    #[test]
    fn a_write_expecting_an_old_revision_is_a_conflict_and_changes_nothing() {
        let store = MemoryStore::default();
        let first = store.write("k", b"1", None).unwrap().unwrap();
        assert_eq!(store.write("k", b"x", None).unwrap(), None);
        store.write("k", b"2", Some(first)).unwrap().unwrap();
        assert_eq!(store.write("k", b"3", Some(first)).unwrap(), None);
        assert_eq!(store.read("k").unwrap().unwrap().0, b"2");
    }

    /// A store whose first compare-and-swap write loses to another writer, like a parallel instance.
    struct RacedStore {
        inner: MemoryStore,
        raced: Cell<bool>,
    }

    impl CasStore for RacedStore {
        fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
            self.inner.read_many(keys)
        }
        fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError> {
            if !self.raced.replace(true) {
                let rival = StoredAccount {
                    user: "rival".into(),
                    balance: 1,
                    ..Default::default()
                };
                for write in writes {
                    self.inner
                        .write_record(&write.key, &rival, write.expected)?;
                }
            }
            self.inner.write_many(writes)
        }
        fn scan(&self, scan: Scan<'_>) -> Result<ScanPage, StoreError> {
            self.inner.scan(scan)
        }
        fn wait_after_conflict(&self, conflicts: u32) {
            self.inner.wait_after_conflict(conflicts)
        }
    }

    #[test]
    fn an_update_that_loses_a_race_runs_again_on_the_winners_record() {
        let store = RacedStore {
            inner: MemoryStore::default(),
            raced: Cell::new(false),
        };
        let mut seen = Vec::new();
        let balance = store
            .update_record("account", |current: Option<StoredAccount>| {
                seen.push(current.as_ref().map(|a| a.balance));
                let balance = current.map_or(0, |a| a.balance) + 10;
                Ok::<_, StoreError>(Update::Write(
                    StoredAccount {
                        balance,
                        ..Default::default()
                    },
                    balance,
                ))
            })
            .unwrap();
        assert_eq!(seen, [None, Some(1)]);
        assert_eq!(balance, 11);
        assert_eq!(
            store.inner.take_operations().waits,
            1,
            "the retry waited after losing the race"
        );
    }

    #[test]
    fn the_wait_after_a_conflict_is_random_and_its_cap_doubles_up_to_64_ms() {
        let longest = |conflicts| (0..200).map(|r| conflict_wait_ms(conflicts, r)).max();
        assert_eq!(
            [1, 2, 3, 6, 7, 50].map(longest),
            [2, 4, 8, 64, 64, 64].map(Some)
        );
        assert_eq!(conflict_wait_ms(3, 0), 0);
    }
}
