//! A wasmCloud 1.x messaging provider on NATS JetStream, for messages that must not be lost.
//!
//! The stock messaging provider is core NATS: a message published while nobody listens is gone,
//! and a handler's failure is only logged. Here, for the same `wasmcloud:messaging@0.2.0` contract:
//! - `publish` stores the message in a JetStream stream and returns only after the stream's
//!   acknowledgement; a failure reaches the component as an error;
//! - each provider → component link is a durable pull consumer whose messages reach the component
//!   in batches (`orders:lattice/batch-handler`): every message ready when a handler is free, in
//!   one call, so that under load the component's work per call (reads, writes) is shared by many
//!   messages. The component answers each message on its own: `Ok` with the replies to publish,
//!   which are stored before the message is acknowledged, or `Err`, which means redelivery with
//!   backoff, and after `max_attempts` deliveries the dead-letter subject. While the component
//!   cannot be reached at all, messages wait (redelivered with backoff, never dead-lettered for
//!   that), so a stopped consumer misses nothing.
//! - a component may publish, and reply, only on the subjects its link's `publish` names (see
//!   [`config`]): order cannot forge a payment result, billing cannot forge an order;
//! - `orders:lattice/stream-reader` reads a stored message back from the stream's leader, on the
//!   subjects the link's `read` names: notify finds a placed order by its id.

pub mod config;
pub mod in_turn;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt as _;
use orders_conventions::broker::redelivery_backoff as backoff;
use orders_conventions::subjects;
use tokio::sync::{RwLock, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info, warn, Instrument as _};
use wasmcloud_provider_sdk::core::HostData;
use wasmcloud_provider_sdk::provider::WrpcClient;
use wasmcloud_provider_sdk::{
    get_connection, Context, LinkConfig, LinkDeleteInfo, Provider, ProviderConnection,
};

use config::{Access, ConsumerConfig, Keeps, LinkPolicy, ProviderConfig, StreamSpec};
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

use bindings::exports::orders::lattice::stream_reader;
use bindings::exports::wasmcloud::messaging::consumer;
use bindings::orders::lattice::batch_handler;
pub use bindings::wasmcloud::messaging::types::BrokerMessage;

orders_provider_support::define_run!(
    /// The provider process: connects, ensures the configured streams, serves `consumer` and
    /// `stream-reader` over NATS and runs one durable consumer per handler link until the host
    /// stops it.
    "messaging-jetstream-provider",
    |host_data| JetStreamMessaging::start(host_data, None, over_wrpc()).await?,
    bindings::serve
);

orders_provider_support::define_serve_in_host!(
    /// Serves in the host's process, with the host data and the SDK's connection and commands the host
    /// gives an embedded provider: the components of that host publish and read on `exports` (in
    /// process), those of other hosts over NATS (`connection`); batches reach a component through
    /// what `reach` makes of the wRPC client to it (the host's: in process when the component runs
    /// there). The tasks end when the host aborts them.
    |host_data, connection, reach: ReachComponent| {
        JetStreamMessaging::start(host_data, Some(connection.clone()), reach).await?
    },
    bindings::serve
);

/// A component's answer to one message of a batch: the replies to publish, or why it was not
/// handled.
pub type Answer = Result<Vec<BrokerMessage>, String>;

/// A component's batch handler (`orders:lattice/batch-handler`) as the provider calls it.
pub trait BatchHandler: Send + Sync {
    /// Hands `messages` to the component in one call, continuing the trace in `trace_context`.
    fn handle_messages<'a>(
        &'a self,
        trace_context: async_nats::HeaderMap,
        messages: &'a [BrokerMessage],
    ) -> BoxFuture<'a, anyhow::Result<Vec<Answer>>>;
}

impl<C> BatchHandler for C
where
    C: wrpc_transport::Invoke<Context = Option<async_nats::HeaderMap>>,
{
    fn handle_messages<'a>(
        &'a self,
        trace_context: async_nats::HeaderMap,
        messages: &'a [BrokerMessage],
    ) -> BoxFuture<'a, anyhow::Result<Vec<Answer>>> {
        Box::pin(batch_handler::handle_messages(
            self,
            Some(trace_context),
            messages,
        ))
    }
}

/// Makes the batch handler of a component (its id) from the provider's wRPC client to it: a
/// provider process calls that client; a host serving the provider may call its own components
/// in process instead.
pub type ReachComponent = Arc<dyn Fn(WrpcClient, &str) -> Arc<dyn BatchHandler> + Send + Sync>;

/// Every component over the provider's wRPC client (the provider process).
fn over_wrpc() -> ReachComponent {
    Arc::new(|client, _| Arc::new(client) as Arc<dyn BatchHandler>)
}

/// Streams keep messages on disk for a week whether or not they were consumed, so a consumer
/// created later (or a person debugging) still finds them.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Creates the stream unless it exists. An existing stream keeps its settings, replicas included,
/// but captures the configured subjects it lacks (a subject is never taken away, so messages kept
/// under it stay reachable).
///
/// Answers whether a read may be a direct get: only on a stream one server keeps, which then
/// allows them. A direct get is answered by the stream itself rather than through the JetStream
/// API's request to its leader, for less work per read; on a stream of more replicas any replica
/// may answer one, possibly before it has a write its leader acknowledged, so there reads go to
/// the leader (STREAM.MSG.GET).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    replicas: usize,
) -> anyhow::Result<bool> {
    let (name, subjects) = (&spec.name, &spec.subjects);
    let (max_age, max_messages_per_subject) = match spec.keeps {
        Keeps::LastWeek => (STREAM_MAX_AGE, -1),
        Keeps::LastValuePerSubject => (Duration::ZERO, 1),
    };
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: subjects.clone(),
            storage: jetstream::stream::StorageType::File,
            max_age,
            max_messages_per_subject,
            num_replicas: replicas,
            allow_direct: replicas == 1,
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
    let one_server = kept.num_replicas <= 1;
    if !missing.is_empty() || (one_server && !kept.allow_direct) {
        kept.subjects.extend(missing.iter().cloned());
        kept.allow_direct |= one_server;
        js.update_stream(&kept)
            .await
            .with_context(|| format!("failed to update stream {name}"))?;
        info!(stream = %name, added = ?missing, direct_gets = kept.allow_direct, "stream updated");
    }
    info!(stream = %name, ?subjects, replicas = kept.num_replicas, "stream ready");
    Ok(one_server)
}

#[derive(Clone)]
struct JetStreamMessaging {
    /// The SDK's connection, through which batches reach the components: the host's for a
    /// provider served in its process; `None` in the provider process, whose connection the SDK
    /// keeps once the provider runs.
    connection: Option<ProviderConnection>,
    /// How a batch reaches a component from the wRPC client to it.
    reach: ReachComponent,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The configured streams, to find the one a read is for.
    streams: Arc<Vec<StreamSpec>>,
    /// The streams one server keeps, read with a direct get ([`ensure_stream`]).
    read_directly: Arc<HashSet<String>>,
    /// Consumer tasks by (component id, link name).
    consumers: Arc<RwLock<HashMap<LinkKey, JoinHandle<()>>>>,
    /// What each linked component may publish and read, by (component id, link name).
    publishers: Arc<RwLock<HashMap<LinkKey, LinkPolicy>>>,
}

impl JetStreamMessaging {
    /// Connects with the data plane's credentials and ensures the configured streams.
    async fn start(
        host_data: &HostData,
        connection: Option<ProviderConnection>,
        reach: ReachComponent,
    ) -> anyhow::Result<Self> {
        let config = ProviderConfig::from_map(&host_data.config)?;
        let client = NatsCredentials::of(host_data)
            .connect(&config.cluster_uri, "orders messaging-jetstream provider")
            .await?;
        let js = match &config.js_domain {
            Some(domain) => jetstream::with_domain(client.clone(), domain),
            None => jetstream::new(client.clone()),
        };
        let mut read_directly = HashSet::new();
        for spec in &config.streams {
            if ensure_stream(&js, spec, config.replicas).await? {
                read_directly.insert(spec.name.clone());
            }
        }
        Ok(Self {
            connection,
            reach,
            client,
            js,
            streams: Arc::new(config.streams),
            read_directly: Arc::new(read_directly),
            consumers: Arc::default(),
            publishers: Arc::default(),
        })
    }

    fn connection(&self) -> ProviderConnection {
        self.connection
            .clone()
            .unwrap_or_else(|| get_connection().clone())
    }

    /// Refuses `access` to `subject` unless the caller's link allows it.
    async fn authorize(
        &self,
        cx: &Option<Context>,
        access: Access,
        subject: &str,
    ) -> Result<(), String> {
        let Some(component) = cx.as_ref().and_then(|cx| cx.component.as_deref()) else {
            return Err(format!(
                "a request to {} {subject} without a calling component is refused",
                access.verb()
            ));
        };
        let link = cx.as_ref().map(Context::link_name);
        authorize(&self.publishers, component, link, access, subject).await
    }
}

impl Provider for JetStreamMessaging {
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let config = ConsumerConfig::from_map(link.config)?;
        let consumer = durable_consumer(&self.js, &config).await?;
        let component = link.target_id.to_string();
        info!(%component, stream = %config.stream, durable = %config.durable, "consuming");
        let task = tokio::spawn(consume(
            self.connection(),
            Arc::clone(&self.reach),
            self.js.clone(),
            consumer,
            config,
            component.clone(),
            Arc::clone(&self.publishers),
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
        let policy = LinkPolicy::from_map(link.config)?;
        info!(component = link.source_id, link = link.link_name, may_publish = %policy.publish.describe(), may_read = %policy.read.describe(), "publisher linked");
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
    // Messages held by the provider and not yet acknowledged: a full batch for each of the
    // `concurrency` handlers and as many again, so the next batches are at hand when a handler
    // ends. A link that handles each subject's messages in turn holds twice that: when one
    // subject (a busy account) fills its batches, the messages of other subjects behind them
    // still arrive. A message waiting counts against `ack_wait`, which at these sizes is
    // reached only if one batch takes seconds.
    let per_handler = if config.in_turn_tokens.is_some() {
        4
    } else {
        2
    };
    let pending =
        i64::try_from(config.concurrency * config.max_batch * per_handler).unwrap_or(i64::MAX);
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

/// Delivers the consumer's messages to the component in batches, every message ready at once up
/// to `max_batch`, `concurrency` batches at a time, forever; with `in_turn_tokens`, the messages
/// of one turn (subjects sharing those tokens) are in one batch at a time.
async fn consume(
    connection: ProviderConnection,
    reach: ReachComponent,
    js: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    config: ConsumerConfig,
    component: String,
    publishers: Arc<RwLock<HashMap<LinkKey, LinkPolicy>>>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let in_turn: Arc<InTurn<jetstream::Message>> = Arc::default();
    loop {
        let handler = match connection.get_wrpc_client(&component).await {
            Ok(wrpc) => reach(wrpc, &component),
            Err(e) => {
                error!(%component, "no wRPC client: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                warn!(durable = %config.durable, "cannot pull messages: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // A batch is what arrived while every handler was busy: one message when the link is
        // idle, many under load, so a message never waits for others to fill a batch. A place
        // is taken before the batch is, so the batch is everything ready once one frees up.
        let mut ready = messages.ready_chunks(config.max_batch);
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Some(pulled) = ready.next().await else {
                break;
            };
            let pulled: Vec<jetstream::Message> = pulled
                .into_iter()
                .filter_map(|next| {
                    next.map_err(|e| warn!(durable = %config.durable, "pull failed: {e}"))
                        .ok()
                })
                .collect();
            let (batch, held) = if config.in_turn_tokens.is_some() {
                // Messages of a turn under way wait for its batch, which delivers them next.
                in_turn.admit_all(
                    pulled
                        .into_iter()
                        .map(|m| (config.turn_of(&m.subject).unwrap_or_default(), m))
                        .collect(),
                )
            } else {
                (pulled, Vec::new())
            };
            if batch.is_empty() {
                continue;
            }
            let link = Link {
                js: js.clone(),
                config: Arc::clone(&config),
                handler: Arc::clone(&handler),
                component: component.clone(),
                publishers: Arc::clone(&publishers),
            };
            let in_turn = Arc::clone(&in_turn);
            tokio::spawn(async move {
                let (mut batch, mut held) = (batch, held);
                while !batch.is_empty() {
                    if held.is_empty() {
                        link.clone().deliver(batch).await;
                        break;
                    }
                    // A delivery whose call was lost waits for its answer up to `ack_wait`;
                    // holding its subjects' turn all that time would stop them, and once their
                    // queues fill the consumer's pending window, every subject. So it keeps the
                    // turn for `TURN_HELD_AT_MOST` and then finishes on its own.
                    let mut delivery = tokio::spawn(link.clone().deliver(batch));
                    if tokio::time::timeout(TURN_HELD_AT_MOST, &mut delivery)
                        .await
                        .is_err()
                    {
                        warn!(component = %link.component, subjects = ?held, "a delivery still runs after {TURN_HELD_AT_MOST:?}: the subjects' next messages go on");
                    }
                    (batch, held) = in_turn.next_after_all(&held, link.config.max_batch);
                }
                drop(slot);
            });
        }
    }
}

/// How long a batch keeps its turn (`one_at_a_time_per_subject_tokens`). billing settles a
/// batch in about 10 ms, and in well under a second under load.
const TURN_HELD_AT_MOST: Duration = Duration::from_secs(2);

/// One span per delivery, a child of the span that published the message (its W3C trace context
/// travels in the message's headers): an order stays one trace across the broker.
fn delivery_span(
    message: &jetstream::Message,
    config: &ConsumerConfig,
    component: &str,
    batch_size: usize,
) -> tracing::Span {
    let span = tracing::info_span!(
        "deliver",
        otel.name = %format!("{} process", message.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = %config.durable,
        messaging.batch.message_count = batch_size,
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

/// What one consumer task needs to deliver a batch to its component.
#[derive(Clone)]
struct Link {
    js: jetstream::Context,
    config: Arc<ConsumerConfig>,
    handler: Arc<dyn BatchHandler>,
    component: String,
    publishers: Arc<RwLock<HashMap<LinkKey, LinkPolicy>>>,
}

impl Link {
    /// Hands the batch to the component in one call, then settles each message on its own:
    /// publishes its replies and acknowledges it, or has it delivered again.
    async fn deliver(self, batch: Vec<jetstream::Message>) {
        let spans: Vec<tracing::Span> = batch
            .iter()
            .map(|m| delivery_span(m, &self.config, &self.component, batch.len()))
            .collect();
        let broker_messages: Vec<BrokerMessage> = batch
            .iter()
            .map(|message| BrokerMessage {
                subject: message.subject.to_string(),
                body: message.payload.clone(),
                reply_to: None,
            })
            .collect();
        // The call continues the first message's trace: the component's work for the whole batch
        // shows there (for a lone message, its own trace holds everything).
        let trace_context = spans[0].in_scope(orders_provider_support::trace_headers);
        // The wRPC call has no deadline of its own once the host took it: if the host, or the
        // NATS server between us, dies before the answer, the call waits forever, holding the
        // messages and one of the link's `concurrency` places. Past `ack_wait` the server offers
        // the messages again anyway, so the call is given up then and the messages handed back
        // at once; handlers are idempotent, so a call that was only slow and still finishes is
        // harmless.
        let answers = tokio::time::timeout(
            self.config.ack_wait,
            self.handler
                .handle_messages(trace_context, &broker_messages)
                .instrument(spans[0].clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "no answer within {:?} (the call or its answer was lost)",
                self.config.ack_wait
            ))
        });
        let answers: Vec<Result<Answer, String>> = match answers {
            Ok(answers) if answers.len() == batch.len() => answers.into_iter().map(Ok).collect(),
            Ok(answers) => {
                let wrong = format!("{} answers to {} messages", answers.len(), batch.len());
                batch.iter().map(|_| Ok(Err(wrong.clone()))).collect()
            }
            Err(unreachable) => {
                let unreachable = format!("{unreachable:#}");
                batch.iter().map(|_| Err(unreachable.clone())).collect()
            }
        };
        let settled = batch
            .into_iter()
            .zip(broker_messages)
            .zip(answers)
            .zip(spans)
            .map(|(((message, delivered), answer), span)| {
                self.settle(message, delivered, answer).instrument(span)
            });
        futures::future::join_all(settled).await;
    }

    /// Acknowledges a handled message once its replies are stored; has a failed one delivered
    /// again after a backoff, or dead-lettered after `max_attempts`.
    async fn settle(
        &self,
        message: jetstream::Message,
        delivered: BrokerMessage,
        answer: Result<Answer, String>,
    ) {
        let (config, component) = (&self.config, &self.component);
        let attempt = message
            .info()
            .map(|info| u64::try_from(info.delivered).unwrap_or(1))
            .unwrap_or(1);
        let span = tracing::Span::current();
        let answer = match answer {
            Ok(Ok(replies)) => match self.publish_replies(replies).await {
                Ok(()) => Ok(Ok(())),
                // The handler's work is kept (it is idempotent); its replies are published when
                // the message is handled again.
                Err(reason) => Ok(Err(format!(
                    "handled, but its replies were not published: {reason}"
                ))),
            },
            Ok(Err(reason)) => Ok(Err(reason)),
            Err(unreachable) => Err(unreachable),
        };
        let settled = match answer {
            Ok(Ok(())) => {
                span.record("outcome", "acked");
                // Not confirmed by the server (no double ack): a lost acknowledgement only means
                // the message is delivered again after `ack_wait`, which handlers take as a
                // redelivery, and confirming each one would cost a round trip per message.
                message.ack().await
            }
            Ok(Err(reason)) if attempt >= config.max_attempts => {
                warn!(%component, subject = %delivered.subject, attempt, %reason, "handler failed for the last time: dead-lettering");
                span.record("outcome", "dead_lettered");
                match dead_letter(&self.js, config, &delivered, &reason).await {
                    Ok(()) => message.ack_with(AckKind::Term).await,
                    Err(e) => {
                        error!(%component, "dead-lettering failed, keeping the message: {e:#}");
                        message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await
                    }
                }
            }
            Ok(Err(reason)) => {
                warn!(%component, subject = %delivered.subject, attempt, %reason, "handler failed: redelivering");
                span.record("outcome", "retried");
                message.ack_with(AckKind::Nak(Some(backoff(attempt)))).await
            }
            Err(unreachable) => {
                // Not the message's fault: retry soon, so a restarted component drains its
                // backlog at once instead of after each message's growing backoff.
                warn!(%component, attempt, "component unreachable, message waits: {unreachable}");
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

    /// Stores a handled message's replies, each where the component's links let it publish.
    async fn publish_replies(&self, replies: Vec<BrokerMessage>) -> Result<(), String> {
        for reply in &replies {
            authorize(
                &self.publishers,
                &self.component,
                None,
                Access::Publish,
                &reply.subject,
            )
            .await?;
        }
        let stored = replies.into_iter().map(|reply| {
            let span = publish_span(&reply.subject);
            store_message(&self.js, reply.subject, reply.body).instrument(span)
        });
        futures::future::try_join_all(stored).await?;
        Ok(())
    }
}

/// Stores `body` in the stream that captures `subject`, with the current span's trace context,
/// and returns once the stream acknowledged it.
async fn store_message(
    js: &jetstream::Context,
    subject: String,
    body: Bytes,
) -> Result<(), String> {
    let stored = async {
        let headers = orders_provider_support::trace_headers();
        js.publish_with_headers(subject.clone(), headers, body)
            .await?
            .await?;
        Ok::<_, async_nats::Error>(())
    };
    stored
        .await
        .map_err(|e| format!("message to {subject} not stored by JetStream: {e}"))
}

/// Refuses `access` to `subject` unless a link of `component` (`link`, or any of its links to
/// this provider when `None`: a handler's replies) allows it.
async fn authorize(
    publishers: &RwLock<HashMap<LinkKey, LinkPolicy>>,
    component: &str,
    link: Option<&str>,
    access: Access,
    subject: &str,
) -> Result<(), String> {
    let publishers = publishers.read().await;
    let policies: Vec<&LinkPolicy> = publishers
        .iter()
        .filter(|((c, l), _)| c == component && link.is_none_or(|link| l == link))
        .map(|(_, policy)| policy)
        .collect();
    if policies
        .iter()
        .any(|policy| policy.of(access).allows(subject))
    {
        return Ok(());
    }
    let allowed = if policies.is_empty() {
        "nothing (no link to this provider)".to_string()
    } else {
        policies
            .iter()
            .map(|policy| policy.of(access).describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verb = access.verb();
    warn!(%component, %subject, "refused to {verb} it: its links allow {allowed}");
    Err(format!(
        "{component} may not {verb} {subject}: its link allows {allowed}"
    ))
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
        if let Err(refused) = self.authorize(&cx, Access::Publish, &subject).await {
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
        if let Err(refused) = self.authorize(&cx, Access::Publish, &subject).await {
            return Ok(Err(refused));
        }
        if let Some(reply_to) = reply_to {
            return Ok(self
                .client
                .publish_with_reply(subject, reply_to, body)
                .await
                .map_err(|e| format!("publish failed: {e}")));
        }
        Ok(store_message(&self.js, subject, body).await)
    }
}

impl stream_reader::Handler<Option<Context>> for JetStreamMessaging {
    async fn last_on_subject(
        &self,
        cx: Option<Context>,
        subject: String,
    ) -> anyhow::Result<Result<Option<BrokerMessage>, String>> {
        let span = tracing::info_span!(
            "read",
            otel.name = %format!("{subject} read"),
            otel.kind = "client",
            messaging.system = "nats",
            messaging.destination.name = %subject,
            found = tracing::field::Empty,
        );
        orders_provider_support::continue_callers_trace(&span, &cx);
        Ok(self.read_last(&cx, &subject).instrument(span).await)
    }
}

impl JetStreamMessaging {
    /// The newest message stored on a subject matching `subject`, from the configured stream
    /// that captures them: by a direct get where one server keeps it, else from its leader
    /// (STREAM.MSG.GET), never from a replica that may not have it yet.
    async fn read_last(
        &self,
        cx: &Option<Context>,
        subject: &str,
    ) -> Result<Option<BrokerMessage>, String> {
        self.authorize(cx, Access::Read, subject).await?;
        let spec = self
            .streams
            .iter()
            .find(|spec| spec.subjects.iter().any(|p| subjects::matches(p, subject)))
            .ok_or_else(|| format!("no configured stream captures {subject}"))?;
        let stream = self
            .js
            .get_stream_no_info(&spec.name)
            .await
            .map_err(|e| format!("stream {}: {e}", spec.name))?;
        let failed = |e: &dyn std::fmt::Display| {
            format!("reading {subject} from stream {} failed: {e}", spec.name)
        };
        let found = if self.read_directly.contains(&spec.name) {
            match stream.direct_get_last_for_subject(subject).await {
                Ok(message) => Some((message.subject, message.payload)),
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(failed(&e)),
            }
        } else {
            match stream.get_last_raw_message_by_subject(subject).await {
                Ok(message) => Some((message.subject, message.payload)),
                Err(e)
                    if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    None
                }
                Err(e) => return Err(failed(&e)),
            }
        };
        let found = found.map(|(subject, body)| BrokerMessage {
            subject: subject.to_string(),
            body,
            reply_to: None,
        });
        tracing::Span::current().record("found", found.is_some());
        Ok(found)
    }
}
