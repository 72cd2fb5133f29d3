//! A wasmCloud 1.x messaging provider on NATS JetStream, for messages that must not be lost.
//!
//! The stock messaging provider is core NATS: a message published while nobody listens is gone,
//! and a handler's failure is only logged. Here, for the same `wasmcloud:messaging@0.2.0` contract:
//! - `publish` stores the message in a JetStream stream and returns only after the stream's
//!   acknowledgement; a failure reaches the component as an error;
//! - each provider → component link is a durable pull consumer; a message is acknowledged only
//!   after the component's `handle-message` returned `Ok`. An `Err` means redelivery with backoff,
//!   and after `max_attempts` deliveries the message moves to a dead-letter subject. While the
//!   component cannot be reached at all, messages wait (redelivered with backoff, never
//!   dead-lettered for that), so a stopped consumer misses nothing.
//! - a component may publish only the subjects its link's `publish` names (see [`config`]): order
//!   cannot forge a payment result, billing cannot forge an order.

pub mod config;
pub mod in_turn;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use bytes::Bytes;
use futures::StreamExt as _;
use orders_common::subjects;
use tokio::sync::{RwLock, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info, warn, Instrument as _};
use wasmcloud_provider_sdk::{
    get_connection, load_host_data, Context, LinkConfig, LinkDeleteInfo, Provider,
};

use config::{backoff, ConsumerConfig, ProviderConfig, PublishPolicy, StreamSpec};
use in_turn::InTurn;
use orders_provider_support::links::{End, ServesLinks};
use orders_provider_support::{LinkKey, NatsCredentials};

mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit",
        world: "orders:lattice/messaging-jetstream-provider",
        generate_all,
    });
}

use bindings::exports::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::handler;
use bindings::wasmcloud::messaging::types::BrokerMessage;

/// Starts the provider: connects, ensures the configured streams, serves `consumer` and runs one
/// durable consumer per handler link until the host stops it.
pub async fn run() -> anyhow::Result<()> {
    let _observability =
        orders_provider_support::init_observability("messaging-jetstream-provider")?;
    let host_data = load_host_data().context("failed to load host data")?;
    let config = ProviderConfig::from_map(&host_data.config)?;
    let client = NatsCredentials::of_host()?
        .connect(&config.cluster_uri, "orders messaging-jetstream provider")
        .await?;
    let js = match &config.js_domain {
        Some(domain) => jetstream::with_domain(client.clone(), domain),
        None => jetstream::new(client.clone()),
    };
    for spec in &config.streams {
        ensure_stream(&js, spec, config.replicas).await?;
    }
    let provider = JetStreamMessaging {
        client,
        js,
        consumers: Arc::default(),
        publishers: Arc::default(),
    };
    orders_provider_support::serve_until_stopped!(
        provider,
        "messaging-jetstream-provider",
        bindings::serve
    )
}

/// Streams keep messages on disk for a week whether or not they were consumed, so a consumer
/// created later (or a person debugging) still finds them.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Creates the stream unless it exists. An existing stream keeps its settings, replicas included,
/// but captures the configured subjects it lacks: a lattice deployed before orders were published
/// on partition subjects has `ORDERS` on `orders.placed` alone, and a publication no stream
/// captures fails. A subject is never taken away, so messages kept under it stay reachable.
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    replicas: usize,
) -> anyhow::Result<()> {
    let (name, subjects) = (&spec.name, &spec.subjects);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: subjects.clone(),
            storage: jetstream::stream::StorageType::File,
            max_age: STREAM_MAX_AGE,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .with_context(|| format!("failed to create stream {name}"))?;
    let mut kept = stream.cached_info().config.clone();
    let missing: Vec<String> = subjects
        .iter()
        .filter(|subject| !kept.subjects.contains(subject))
        .cloned()
        .collect();
    if !missing.is_empty() {
        kept.subjects.extend(missing.iter().cloned());
        js.update_stream(kept)
            .await
            .with_context(|| format!("failed to add subjects {missing:?} to stream {name}"))?;
        info!(stream = %name, added = ?missing, "stream captures more subjects");
    }
    info!(stream = %name, ?subjects, replicas, "stream ready");
    Ok(())
}

#[derive(Clone)]
struct JetStreamMessaging {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Consumer tasks by (component id, link name).
    consumers: Arc<RwLock<HashMap<LinkKey, JoinHandle<()>>>>,
    /// What each linked component may publish, by (component id, link name).
    publishers: Arc<RwLock<HashMap<LinkKey, PublishPolicy>>>,
}

impl JetStreamMessaging {
    /// Refuses a publication (or request) on `subject` unless the caller's link allows it.
    async fn authorize(&self, cx: &Option<Context>, subject: &str) -> Result<(), String> {
        let caller = cx.as_ref().and_then(|cx| {
            let component = cx.component.as_deref()?;
            Some((component.to_string(), cx.link_name().to_string()))
        });
        let Some(key) = caller else {
            return Err("a publication without a calling component is refused".into());
        };
        let publishers = self.publishers.read().await;
        let allowed = match publishers.get(&key) {
            Some(policy) if policy.allows(subject) => return Ok(()),
            Some(policy) => policy.describe(),
            None => "nothing (no link to this provider)".into(),
        };
        warn!(component = %key.0, link = %key.1, %subject, "publication refused: its link allows {allowed}");
        Err(format!(
            "{} may not publish to {subject}: its link allows {allowed}",
            key.0
        ))
    }
}

impl Provider for JetStreamMessaging {
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let config = ConsumerConfig::from_map(link.config)?;
        let consumer = durable_consumer(&self.js, &config).await?;
        let component = link.target_id.to_string();
        info!(%component, stream = %config.stream, durable = %config.durable, "consuming");
        let task = tokio::spawn(consume(
            self.js.clone(),
            consumer,
            config,
            component.clone(),
        ));
        let previous = self
            .consumers
            .write()
            .await
            .insert((component, link.link_name.to_string()), task);
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let policy = PublishPolicy::from_map(link.config)?;
        info!(component = link.source_id, link = link.link_name, may_publish = %policy.describe(), "publisher linked");
        self.publishers.write().await.insert(
            (link.source_id.to_string(), link.link_name.to_string()),
            policy,
        );
        Ok(())
    }

    async fn delete_link_as_target(&self, link: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = orders_provider_support::key_of_source(&link);
        self.publishers.write().await.remove(&key);
        Ok(())
    }

    async fn delete_link_as_source(&self, link: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = orders_provider_support::key_of_target(&link);
        if let Some(task) = self.consumers.write().await.remove(&key) {
            task.abort();
        }
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        for (_, task) in self.consumers.write().await.drain() {
            task.abort();
        }
        self.publishers.write().await.clear();
        Ok(())
    }
}

impl ServesLinks for JetStreamMessaging {
    const ENDS: &'static [End] = &[End::Source, End::Target];

    /// As the source: links whose consumer still runs (a consumer's task only ends when it is
    /// aborted). As the target: the components whose publications it checks.
    async fn served_links(&self, end: End) -> HashSet<LinkKey> {
        match end {
            End::Source => {
                let consumers = self.consumers.read().await;
                consumers
                    .iter()
                    .filter(|(_, task)| !task.is_finished())
                    .map(|(key, _)| key.clone())
                    .collect()
            }
            End::Target => self.publishers.read().await.keys().cloned().collect(),
        }
    }
}

async fn durable_consumer(
    js: &jetstream::Context,
    config: &ConsumerConfig,
) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
    let stream = js.get_stream(&config.stream).await.with_context(|| {
        format!(
            "stream {} does not exist (list it in the provider's `streams`)",
            config.stream
        )
    })?;
    // Messages held by the provider and not yet acknowledged. Twice the handlers, so the next
    // messages are at hand when a handler ends. A link that handles each subject's messages in
    // turn holds more: when one subject (a busy account) fills the window, the messages of other
    // subjects behind them still arrive. A message waiting in its subject's queue counts against
    // `ack_wait`; at four per handler, a queue of one subject drains well within the default 30 s
    // unless one handling takes a quarter of a second.
    let per_handler = if config.one_at_a_time_per_subject {
        4
    } else {
        2
    };
    let pending = i64::try_from(config.concurrency * per_handler).unwrap_or(i64::MAX);
    stream
        .get_or_create_consumer(
            &config.durable,
            pull::Config {
                durable_name: Some(config.durable.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                // Unlimited at the server: we count attempts ourselves, so that deliveries to an
                // unreachable component never push a message into the dead-letter subject.
                max_deliver: -1,
                max_ack_pending: pending,
                filter_subject: config.filter_subject.clone().unwrap_or_default(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("failed to create consumer {}", config.durable))
}

/// Delivers the consumer's messages to the component, `concurrency` at a time, forever; with
/// `one_at_a_time_per_subject`, one message per subject at a time.
async fn consume(
    js: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    config: ConsumerConfig,
    component: String,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let in_turn: Arc<InTurn<jetstream::Message>> = Arc::default();
    loop {
        let wrpc = match get_connection().get_wrpc_client(&component).await {
            Ok(wrpc) => Arc::new(wrpc),
            Err(e) => {
                error!(%component, "no wRPC client: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                warn!(durable = %config.durable, "cannot pull messages: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(next) = messages.next().await {
            let message = match next {
                Ok(message) => message,
                Err(e) => {
                    warn!(durable = %config.durable, "pull failed: {e}");
                    continue;
                }
            };
            let turn = config
                .one_at_a_time_per_subject
                .then(|| message.subject.to_string());
            let message = match &turn {
                // Queued behind its subject's delivery, whose task delivers it next.
                Some(subject) => match in_turn.admit(subject, message) {
                    Some(message) => message,
                    None => continue,
                },
                None => message,
            };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (js, config, wrpc, component, in_turn) = (
                js.clone(),
                Arc::clone(&config),
                Arc::clone(&wrpc),
                component.clone(),
                Arc::clone(&in_turn),
            );
            tokio::spawn(async move {
                let mut next = Some(message);
                while let Some(message) = next {
                    let span = delivery_span(&message, &config, &component);
                    let Some(subject) = turn.as_deref() else {
                        deliver(&js, &config, &wrpc, &component, message)
                            .instrument(span)
                            .await;
                        break;
                    };
                    // A delivery whose call was lost waits for its answer up to `ack_wait`;
                    // holding its subject's turn all that time would stop the subject, and once
                    // its queue fills the consumer's pending window, every subject. So it keeps
                    // the turn for `TURN_HELD_AT_MOST` and then finishes on its own.
                    let mut delivery = tokio::spawn({
                        let (js, config, wrpc, component) = (
                            js.clone(),
                            Arc::clone(&config),
                            Arc::clone(&wrpc),
                            component.clone(),
                        );
                        async move { deliver(&js, &config, &wrpc, &component, message).await }
                            .instrument(span)
                    });
                    if tokio::time::timeout(TURN_HELD_AT_MOST, &mut delivery)
                        .await
                        .is_err()
                    {
                        warn!(%component, %subject, "a delivery still runs after {TURN_HELD_AT_MOST:?}: the subject's next message goes on");
                    }
                    next = in_turn.next_after(subject);
                }
                drop(slot);
            });
        }
    }
}

/// How long a delivery keeps its subject's turn (`one_at_a_time_per_subject`). billing settles an
/// order in about 10 ms, and in well under a second under load.
const TURN_HELD_AT_MOST: Duration = Duration::from_secs(2);

/// One span per delivery, a child of the span that published the message (its W3C trace context
/// travels in the message's headers): an order stays one trace across the broker.
fn delivery_span(
    message: &jetstream::Message,
    config: &ConsumerConfig,
    component: &str,
) -> tracing::Span {
    let span = tracing::info_span!(
        "deliver",
        otel.name = %format!("{} process", message.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = %config.durable,
        component = %component,
        outcome = tracing::field::Empty,
    );
    orders_provider_support::continue_trace(&span, |name| {
        message.headers.as_ref()?.get(name).map(|v| v.as_str())
    });
    span
}

/// How soon a message is offered again while its component cannot be reached.
const UNREACHABLE_RETRY: Duration = Duration::from_millis(500);

async fn deliver(
    js: &jetstream::Context,
    config: &ConsumerConfig,
    wrpc: &wasmcloud_provider_sdk::provider::WrpcClient,
    component: &str,
    message: jetstream::Message,
) {
    let attempt = message
        .info()
        .map(|info| u64::try_from(info.delivered).unwrap_or(1))
        .unwrap_or(1);
    let broker_message = BrokerMessage {
        subject: message.subject.to_string(),
        body: message.payload.clone(),
        reply_to: None,
    };
    let trace_context = orders_provider_support::trace_headers();
    // The wRPC call has no deadline of its own once the host took it: if the host, or the NATS
    // server between us, dies before the answer, the call waits forever, holding the message and
    // one of the link's `concurrency` places. Past `ack_wait` the server offers the message again
    // anyway, so the call is given up then and the message handed back at once; handlers are
    // idempotent, so a call that was only slow and still finishes is harmless.
    let outcome = tokio::time::timeout(
        config.ack_wait,
        handler::handle_message(wrpc, Some(trace_context), &broker_message),
    )
    .await
    .unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "no answer within {:?} (the call or its answer was lost)",
            config.ack_wait
        ))
    });
    let span = tracing::Span::current();
    let settled = match outcome {
        Ok(Ok(())) => {
            span.record("outcome", "acked");
            message.double_ack().await
        }
        Ok(Err(reason)) if attempt >= config.max_attempts => {
            warn!(%component, subject = %broker_message.subject, attempt, %reason, "handler failed for the last time: dead-lettering");
            span.record("outcome", "dead_lettered");
            match dead_letter(js, config, &broker_message, &reason).await {
                Ok(()) => message.ack_with(AckKind::Term).await,
                Err(e) => {
                    error!(%component, "dead-lettering failed, keeping the message: {e:#}");
                    message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await
                }
            }
        }
        Ok(Err(reason)) => {
            warn!(%component, subject = %broker_message.subject, attempt, %reason, "handler failed: redelivering");
            span.record("outcome", "retried");
            message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await
        }
        Err(unreachable) => {
            // Not the message's fault: retry soon, so a restarted component drains its backlog at
            // once instead of after each message's growing backoff.
            warn!(%component, attempt, "component unreachable, message waits: {unreachable:#}");
            span.record("outcome", "unreachable");
            message
                .ack_with(AckKind::Nak(Some(UNREACHABLE_RETRY)))
                .await
        }
    };
    if let Err(e) = settled {
        // The server redelivers after ack_wait; handlers are idempotent, so that is safe.
        warn!(%component, "acknowledgement failed: {e}");
    }
}

async fn dead_letter(
    js: &jetstream::Context,
    config: &ConsumerConfig,
    message: &BrokerMessage,
    reason: &str,
) -> anyhow::Result<()> {
    // A child of the last delivery: the order's trace shows where its message went, and the dead
    // letter's trace context points at the failed attempts.
    async {
        let mut headers = orders_provider_support::trace_headers();
        headers.insert(subjects::ORIGINAL_SUBJECT_HEADER, message.subject.as_str());
        headers.insert(
            subjects::FAILURE_HEADER,
            reason.replace(['\r', '\n'], " ").as_str(),
        );
        js.publish_with_headers(
            config.dead_letter_subject.clone(),
            headers,
            message.body.clone(),
        )
        .await?
        .await?;
        Ok(())
    }
    .instrument(publish_span(&config.dead_letter_subject))
    .await
}

/// The span of one publication to `subject` (OpenTelemetry's messaging conventions).
fn publish_span(subject: &str) -> tracing::Span {
    tracing::info_span!(
        "publish",
        otel.name = %format!("{subject} publish"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = %subject,
    )
}

impl consumer::Handler<Option<Context>> for JetStreamMessaging {
    /// Stores the message in its stream and returns once the stream acknowledged it. Replies to a
    /// request (`reply-to` set) go out on core NATS, as replies are not kept.
    async fn publish(
        &self,
        cx: Option<Context>,
        message: BrokerMessage,
    ) -> anyhow::Result<Result<(), String>> {
        let span = publish_span(&message.subject);
        orders_provider_support::continue_callers_trace(&span, &cx);
        self.publish_traced(cx, message).instrument(span).await
    }

    async fn request(
        &self,
        cx: Option<Context>,
        subject: String,
        body: Bytes,
        timeout_ms: u32,
    ) -> anyhow::Result<Result<BrokerMessage, String>> {
        if let Err(refused) = self.authorize(&cx, &subject).await {
            return Ok(Err(refused));
        }
        let request = self.client.request(subject.clone(), body);
        Ok(
            match tokio::time::timeout(Duration::from_millis(u64::from(timeout_ms)), request).await
            {
                Ok(Ok(reply)) => Ok(BrokerMessage {
                    subject: reply.subject.to_string(),
                    body: reply.payload,
                    reply_to: reply.reply.map(|r| r.to_string()),
                }),
                Ok(Err(e)) => Err(format!("request to {subject} failed: {e}")),
                Err(_) => Err(format!(
                    "request to {subject} timed out after {timeout_ms} ms"
                )),
            },
        )
    }
}

impl JetStreamMessaging {
    /// `publish`, inside its span: the message carries the span's trace context in its headers.
    async fn publish_traced(
        &self,
        cx: Option<Context>,
        message: BrokerMessage,
    ) -> anyhow::Result<Result<(), String>> {
        let BrokerMessage {
            subject,
            body,
            reply_to,
        } = message;
        if let Err(refused) = self.authorize(&cx, &subject).await {
            return Ok(Err(refused));
        }
        if let Some(reply_to) = reply_to {
            return Ok(self
                .client
                .publish_with_reply(subject, reply_to, body)
                .await
                .map_err(|e| format!("publish failed: {e}")));
        }
        let stored = async {
            let headers = orders_provider_support::trace_headers();
            self.js
                .publish_with_headers(subject.clone(), headers, body)
                .await?
                .await?;
            Ok::<_, async_nats::Error>(())
        };
        Ok(stored
            .await
            .map_err(|e| format!("message to {subject} not stored by JetStream: {e}")))
    }
}
