//! The services' key-value port on a JetStream KV bucket (`orders-jetstream-kv`, the one the
//! lattice's key-value provider serves), called directly. The services' cores are synchronous,
//! as components are, so each call waits on the runtime from the blocking thread its request or
//! batch runs on.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use orders_domain::ports::{
    conflict_wait_ms, CasStore, CasWrite, Revision, Scan, ScanBy, ScanPage, StoreError, Versioned,
};
use orders_jetstream_kv as kv;
use tokio::runtime::Handle;

pub struct Bucket {
    bucket: kv::Bucket,
    runtime: Handle,
}

fn unavailable(error: kv::BucketError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl Bucket {
    /// Opens `name` as the lattice's key-value provider does: one revision per key, one server.
    pub async fn open(js: &jetstream::Context, name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            bucket: kv::Bucket::open(js, name, 1, 1).await?,
            runtime: Handle::current(),
        })
    }

    fn wait<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    async fn read_one(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let found = self.bucket.read(key).await.map_err(unavailable)?;
        Ok(found.map(|v| (v.value.to_vec(), Revision(v.revision))))
    }

    async fn write_one(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let value = bytes::Bytes::copy_from_slice(value);
        let written = self.bucket.write(key, value, expected.map(|r| r.0)).await;
        Ok(written.map_err(unavailable)?.map(Revision))
    }
}

impl CasStore for Bucket {
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let reads = keys.iter().map(|key| self.read_one(key));
        self.wait(futures::future::try_join_all(reads))
    }

    fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError> {
        let writes = writes
            .iter()
            .map(|w| self.write_one(&w.key, &w.value, w.expected));
        self.wait(futures::future::try_join_all(writes))
    }

    fn scan(&self, scan: Scan<'_>) -> Result<ScanPage, StoreError> {
        let by = match scan.by {
            ScanBy::WriteOrder => kv::ScanBy::WriteOrder,
            ScanBy::KeyIndex => kv::ScanBy::KeyIndex,
        };
        let after = scan.after.map_or(0, |r| r.0);
        let page = self
            .wait(self.bucket.scan(scan.filter, by, after, scan.limit))
            .map_err(unavailable)?;
        let entries = page.entries.into_iter();
        Ok(ScanPage::of(
            entries.map(|entry| (entry.key, entry.value.to_vec(), entry.revision)),
            page.next,
        ))
    }

    fn wait_after_conflict(&self, conflicts: u32) {
        let wait = conflict_wait_ms(conflicts, rand::random());
        std::thread::sleep(Duration::from_millis(wait));
    }
}
