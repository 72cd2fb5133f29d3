//! The broker on JetStream, as the lattice's messaging provider uses it: the same streams, a
//! publish that returns once the stream stored the message, reads of the newest message on a
//! subject, and durable pull consumers whose messages reach the service in batches, each message
//! acknowledged only after the messages it answered with are stored.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, stream, AckKind};
use futures::StreamExt as _;
use orders_conventions::broker::redelivery_backoff as backoff;
use orders_domain::auth::{CurrentKeys, KeyHash};
use orders_domain::ports::{decode_record, PlacedOrders, PublishError, Publisher, StoreError};
use orders_domain::service::{Answer, Message};
use orders_domain::{OrderId, UserName};
use orders_wire::proto::{CurrentApiKey, OrderPlaced};
use orders_wire::subjects;
use tokio::runtime::Handle;

use crate::NativeHost;

/// The streams `wadm.yaml` gives the messaging provider: name, subjects, whether it keeps only
/// the last message per subject.
const STREAMS: &[(&str, &[&str], bool)] = &[
    ("ORDERS", &[subjects::ORDER_PLACED_SUBJECTS], false),
    ("REFUNDS", &[subjects::REFUND_REQUESTED_SUBJECTS], false),
    (
        "PAYMENTS",
        &[subjects::PAYMENT_SETTLED, subjects::PAYMENT_REFUNDED],
        false,
    ),
    ("DEADLETTER", &["deadletter.>"], false),
    ("KEYS", &[subjects::CURRENT_API_KEYS], true),
];

/// How long the streams keep messages, as the messaging provider's.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Creates the streams when missing, as the messaging provider does on one server (file storage,
/// direct gets allowed).
pub async fn ensure_streams(js: &jetstream::Context) -> anyhow::Result<()> {
    for (name, stream_subjects, last_value) in STREAMS {
        let (max_age, max_messages_per_subject) = if *last_value {
            (Duration::ZERO, 1)
        } else {
            (STREAM_MAX_AGE, -1)
        };
        js.get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects: stream_subjects.iter().map(|s| s.to_string()).collect(),
            storage: stream::StorageType::File,
            max_age,
            max_messages_per_subject,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .with_context(|| format!("failed to create stream {name}"))?;
    }
    Ok(())
}

async fn store_message(
    js: &jetstream::Context,
    subject: String,
    body: Vec<u8>,
) -> Result<(), String> {
    let stored = async {
        js.publish(subject.clone(), body.into()).await?.await?;
        Ok::<_, async_nats::Error>(())
    };
    stored
        .await
        .map_err(|e| format!("message to {subject} not stored by JetStream: {e}"))
}

/// JetStream, and what its streams keep: placed orders in `ORDERS`, the API keys billing
/// announced in `KEYS`.
pub struct Broker {
    js: jetstream::Context,
    orders: stream::Stream<()>,
    keys: stream::Stream<()>,
    runtime: Handle,
}

impl Publisher for Broker {
    fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        self.runtime
            .block_on(store_message(&self.js, subject.to_string(), payload))
            .map_err(PublishError)
    }
}

impl Broker {
    pub async fn open(js: jetstream::Context) -> anyhow::Result<Self> {
        Ok(Self {
            orders: js.get_stream_no_info("ORDERS").await?,
            keys: js.get_stream_no_info("KEYS").await?,
            js,
            runtime: Handle::current(),
        })
    }

    fn last_on_subject<M: prost::Message + Default>(
        &self,
        stream: &stream::Stream<()>,
        subject: &str,
    ) -> Result<Option<M>, StoreError> {
        let found = self
            .runtime
            .block_on(stream.direct_get_last_for_subject(subject));
        match found {
            Ok(message) => Ok(Some(decode_record(subject, &message.payload)?)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::BrokerUnavailable(format!(
                "reading {subject}: {e}"
            ))),
        }
    }
}

impl PlacedOrders for Broker {
    fn find(&self, id: &OrderId) -> Result<Option<OrderPlaced>, StoreError> {
        self.last_on_subject(&self.orders, &subjects::placed_order(id))
    }
}

impl CurrentKeys for Broker {
    fn current_key(&self, user: &UserName) -> Result<Option<KeyHash>, StoreError> {
        let subject = subjects::current_api_key(user.as_str());
        self.last_on_subject::<CurrentApiKey>(&self.keys, &subject)?
            .map(|announced| KeyHash::announced(&subject, &announced))
            .transpose()
    }
}

/// A service's message handler: a batch in, one answer per message out.
pub type Handler = fn(&NativeHost, Vec<Message>) -> Vec<Answer>;

/// Deliveries before a message goes to its dead-letter subject, as on the lattice.
const MAX_ATTEMPTS: u64 = 10;
/// The most messages in one batch, as the messaging provider's default.
const MAX_BATCH: usize = 64;
/// How long a message may stay unacknowledged before the server offers it again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// One durable pull consumer of a service.
pub struct Consumer {
    stream: &'static str,
    durable: &'static str,
    filter: Option<&'static str>,
    dead_letter_subject: String,
}

impl Consumer {
    pub fn new(stream: &'static str, durable: &'static str) -> Self {
        Self {
            stream,
            durable,
            filter: None,
            dead_letter_subject: format!("{}{durable}", subjects::DEAD_LETTER_PREFIX),
        }
    }

    /// Only the messages on `filter`; those it gives up on go to `dead_letter_subject`.
    pub fn filtered(mut self, filter: &'static str, dead_letter_subject: &str) -> Self {
        self.filter = Some(filter);
        self.dead_letter_subject = dead_letter_subject.to_string();
        self
    }

    /// Creates the durable consumer when missing and hands its messages to `handler` until the
    /// process ends.
    pub async fn start(
        self,
        js: &jetstream::Context,
        host: &Arc<NativeHost>,
        handler: Handler,
    ) -> anyhow::Result<()> {
        let consumer = js
            .get_stream(self.stream)
            .await?
            .get_or_create_consumer(
                self.durable,
                pull::Config {
                    durable_name: Some(self.durable.to_string()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: i64::try_from(MAX_BATCH * 2).unwrap_or(i64::MAX),
                    filter_subject: self.filter.unwrap_or_default().to_string(),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("failed to create consumer {}", self.durable))?;
        tokio::spawn(self.consume(js.clone(), consumer, Arc::clone(host), handler));
        Ok(())
    }

    /// One batch at a time: every message ready when the last batch is done, so one account's
    /// orders are settled in turn (never racing for the balance) and batches grow with the load.
    async fn consume(
        self,
        js: jetstream::Context,
        consumer: jetstream::consumer::Consumer<pull::Config>,
        host: Arc<NativeHost>,
        handler: Handler,
    ) {
        loop {
            let messages = match consumer.messages().await {
                Ok(messages) => messages,
                Err(e) => {
                    eprintln!("{}: cannot pull messages: {e}", self.durable);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut ready = messages.ready_chunks(MAX_BATCH);
            while let Some(pulled) = ready.next().await {
                let batch: Vec<jetstream::Message> = pulled.into_iter().flatten().collect();
                let delivered: Vec<Message> = batch
                    .iter()
                    .map(|m| Message {
                        subject: m.subject.to_string(),
                        body: m.payload.to_vec(),
                    })
                    .collect();
                let host = Arc::clone(&host);
                let answers =
                    match tokio::task::spawn_blocking(move || handler(&host, delivered)).await {
                        Ok(answers) => answers,
                        Err(panicked) => batch
                            .iter()
                            .map(|_| Err(format!("the handler panicked: {panicked}")))
                            .collect(),
                    };
                let settled = batch
                    .into_iter()
                    .zip(answers)
                    .map(|(message, answer)| self.settle(&js, message, answer));
                futures::future::join_all(settled).await;
            }
        }
    }

    /// Acknowledges a handled message once its answers are stored; has a failed one delivered
    /// again after a backoff, or dead-lettered after [`MAX_ATTEMPTS`].
    async fn settle(&self, js: &jetstream::Context, message: jetstream::Message, answer: Answer) {
        let attempt = message
            .info()
            .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
        let stored = match answer {
            Ok(replies) => {
                let stored = replies
                    .into_iter()
                    .map(|reply| store_message(js, reply.subject, reply.body));
                futures::future::try_join_all(stored).await.map(|_| ())
            }
            Err(reason) => Err(reason),
        };
        let settled = match stored {
            Ok(()) => message.ack().await,
            Err(reason) if attempt >= MAX_ATTEMPTS => {
                eprintln!(
                    "{}: giving up on {}: {reason}",
                    self.durable, message.subject
                );
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(subjects::ORIGINAL_SUBJECT_HEADER, message.subject.as_str());
                headers.insert(
                    subjects::FAILURE_HEADER,
                    reason.replace(['\r', '\n'], " ").as_str(),
                );
                let dead_lettered = async {
                    js.publish_with_headers(
                        self.dead_letter_subject.clone(),
                        headers,
                        message.payload.clone(),
                    )
                    .await?
                    .await?;
                    Ok::<_, async_nats::Error>(())
                };
                match dead_lettered.await {
                    Ok(()) => message.ack_with(AckKind::Term).await,
                    Err(_) => message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await,
                }
            }
            Err(reason) => {
                eprintln!(
                    "{}: {} failed, again later: {reason}",
                    self.durable, message.subject
                );
                message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await
            }
        };
        if let Err(e) = settled {
            eprintln!("{}: acknowledgement failed: {e}", self.durable);
        }
    }
}
