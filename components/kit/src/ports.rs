//! The ports of `orders-domain`, implemented over the host: key-value (our `keyvalue-cas`), the
//! broker (`wasmcloud:messaging`, and our `stream-reader` for what its
//! streams keep: placed orders, announced API keys), the clock, randomness, and the key
//! configuration (`wasi:config`).

use orders_domain::auth::{AuthError, Authenticator, CurrentKeys, KeyHash};
use orders_domain::ports::{
    conflict_wait_ms, decode_record, CasStore, CasWrite, PlacedOrders, PublishError, Publisher,
    Revision, Scan, ScanBy, ScanPage, StoreError, Versioned, WallClock,
};
use orders_domain::service::{Answer, Environment, HostParts, Message};
use orders_domain::{OrderId, UserName};
use orders_wire::proto::{CurrentApiKey, OrderPlaced};
use orders_wire::subjects;
use wasmcloud_component::wasi::config;
use wasmcloud_component::wasmcloud::messaging::{consumer, types::BrokerMessage};

use crate::bindings::orders::lattice::keyvalue_cas as cas;
use crate::bindings::orders::lattice::stream_reader;

/// The bucket our key-value provider linked to this component; `""` names "the linked bucket".
const LINKED_BUCKET: &str = "";

/// The component's key-value bucket, through our `keyvalue-cas` interface.
#[derive(Default)]
pub struct KeyValue;

fn unavailable(error: &impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{error:?}"))
}

impl CasStore for KeyValue {
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let found = cas::read_many(LINKED_BUCKET, keys).map_err(|e| unavailable(&e))?;
        Ok(found
            .into_iter()
            .map(|v| v.map(|v| (v.value, Revision(v.revision))))
            .collect())
    }

    fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError> {
        let writes: Vec<cas::CasWrite> = writes
            .iter()
            .map(|w| cas::CasWrite {
                key: w.key.clone(),
                value: w.value.clone(),
                expected: w.expected.map(|r| r.0),
            })
            .collect();
        let written = cas::write_many(LINKED_BUCKET, &writes).map_err(|e| unavailable(&e))?;
        Ok(written.into_iter().map(|r| r.map(Revision)).collect())
    }

    fn scan(&self, scan: Scan<'_>) -> Result<ScanPage, StoreError> {
        let by = match scan.by {
            ScanBy::WriteOrder => cas::ScanBy::WriteOrder,
            ScanBy::KeyIndex => cas::ScanBy::KeyIndex,
        };
        let after = scan.after.map_or(0, |r| r.0);
        let page = cas::scan(LINKED_BUCKET, scan.filter, by, after, scan.limit)
            .map_err(|e| unavailable(&e))?;
        let entries = page.entries.into_iter();
        Ok(ScanPage::of(
            entries.map(|entry| (entry.key, entry.value, entry.revision)),
            page.next,
        ))
    }

    /// Sleeps through `wasi:clocks` (std's sleep on wasm32-wasip2), which suspends only this
    /// instance.
    fn wait_after_conflict(&self, conflicts: u32) {
        let random = wasmcloud_component::wasi::random::random::get_random_u64();
        let wait = conflict_wait_ms(conflicts, random);
        std::thread::sleep(std::time::Duration::from_millis(wait));
    }
}

/// The NATS broker, through the messaging provider linked to this component; and what its
/// streams keep, read back through the provider: placed orders in `ORDERS`, the API keys billing
/// announced in `KEYS`.
#[derive(Default)]
pub struct Broker;

impl Publisher for Broker {
    fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        let message = BrokerMessage {
            subject: subject.to_string(),
            body: payload,
            reply_to: None,
        };
        consumer::publish(&message).map_err(PublishError)
    }
}

impl Broker {
    /// The newest message the streams keep on `subject`, decoded.
    fn last_on_subject<M: prost::Message + Default>(
        subject: &str,
    ) -> Result<Option<M>, StoreError> {
        let found =
            stream_reader::last_on_subject(subject).map_err(StoreError::BrokerUnavailable)?;
        found
            .map(|message| decode_record(&message.subject, &message.body))
            .transpose()
    }
}

impl PlacedOrders for Broker {
    fn find(&self, id: &OrderId) -> Result<Option<OrderPlaced>, StoreError> {
        Self::last_on_subject(&subjects::placed_order(id))
    }
}

impl CurrentKeys for Broker {
    fn current_key(&self, user: &UserName) -> Result<Option<KeyHash>, StoreError> {
        let subject = subjects::current_api_key(user.as_str());
        Self::last_on_subject::<CurrentApiKey>(&subject)?
            .map(|announced| KeyHash::announced(&subject, &announced))
            .transpose()
    }
}

/// The wasmCloud host under a component: its key-value bucket, broker, clock and
/// [`WasiEnvironment`].
pub type WasiHost = HostParts<KeyValue, Broker, WallClock, WasiEnvironment>;

/// The key configuration, randomness and log of `wasi:config`, `wasi:random` and
/// `wasi:logging`.
#[derive(Default)]
pub struct WasiEnvironment;

impl Environment for WasiEnvironment {
    /// The named config `orders-auth` that `wadm.yaml` links to the component (created by
    /// `make run` / `make test`, or by the operator), read in one host call for both values.
    fn authenticator(&self) -> Result<Authenticator, AuthError> {
        let config: std::collections::HashMap<String, String> = config::store::get_all()
            .map(|pairs| pairs.into_iter().collect())
            .unwrap_or_default();
        Authenticator::from_config(|name| config.get(name).cloned())
    }

    fn random_16(&self) -> [u8; 16] {
        let bytes = wasmcloud_component::wasi::random::random::get_random_bytes(16);
        bytes
            .try_into()
            .expect("the host returns exactly the bytes asked for")
    }

    fn log(&self, line: &str) {
        wasmcloud_component::info!("{line}");
    }
}

/// Answers a batch of broker messages with `handle` on the component's host: each message's
/// answer is the messages to publish before it is acknowledged, or why it was not handled.
pub fn answer_batch(
    messages: Vec<BrokerMessage>,
    handle: impl FnOnce(&WasiHost, Vec<Message>) -> Vec<Answer>,
) -> Vec<Result<Vec<BrokerMessage>, String>> {
    let messages = messages
        .into_iter()
        .map(|m| Message {
            subject: m.subject,
            body: m.body,
        })
        .collect();
    handle(&WasiHost::default(), messages)
        .into_iter()
        .map(|answer| {
            answer.map(|replies| {
                replies
                    .into_iter()
                    .map(|m| BrokerMessage {
                        subject: m.subject,
                        body: m.body,
                        reply_to: None,
                    })
                    .collect()
            })
        })
        .collect()
}
