//! orders-admin: what an operator does with a lattice's broker, from outside, as the admin NATS
//! identity. Messages are protobuf on the wire and JSON here.
//!
//! - `dlq list`, `dlq show <seq>`, `dlq replay <seq>`: the messages consumers gave up on (stream
//!   DEADLETTER). A replay publishes the payload again where it was first published, waits for the
//!   stream's acknowledgement, then removes the dead letter; billing charges an order at most once,
//!   so replaying one that was paid after all changes nothing.
//! - `streams`: each stream and durable consumer: messages, waiting, being handled, redelivered.
//! - `tail <subject>`: messages as they are published (NATS wildcards allowed), decoded.
//! - `kv export <bucket>`, `kv import <bucket>`: a key-value bucket as JSON lines (key, value in
//!   base64), to standard output and from standard input; an import writes every key it reads.
//! - `ready`: whether the application answers through every link ([`ready`]); HTTP only.
//! - `audit`: every balance against its ledger, and the ledger against the notifications
//!   ([`audit`]); exits non-zero on any mismatch.

mod audit;
mod ready;

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, stream::Stream, ErrorCode};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use orders_wire::proto::{OrderPlaced, PaymentResult};
use orders_wire::subjects;
use prost::Message as _;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The lattice's NATS (`make test`'s: nats://127.0.0.1:14222), or a comma-separated list of
    /// a cluster's servers.
    #[arg(long, env = "ORDERS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// A creds file allowed everywhere: the `admin` identity of the instance.
    #[arg(
        long,
        env = "ORDERS_NATS_CREDS",
        default_value = ".state/run/nats/admin.creds"
    )]
    creds: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Broker(BrokerCommand),
    /// Exits 0 once the application answers through every link of its providers, as `make run`
    /// waits for; otherwise says which request got which answer. HTTP only, no NATS.
    Ready {
        /// Each host's HTTP listener, comma-separated.
        #[arg(long)]
        listeners: String,
        /// The file holding the lattice's admin token.
        #[arg(long)]
        admin_token_file: PathBuf,
        /// The file holding the lattice's API key secret (to make a key billing never announced).
        #[arg(long)]
        api_key_secret_file: PathBuf,
        /// A probe of a path only this lattice serves, `METHOD PATH STATUS`; may be repeated.
        #[arg(long = "also")]
        also: Vec<String>,
    },
}

/// What is done through the lattice's NATS.
#[derive(Subcommand)]
enum BrokerCommand {
    /// Dead letters: messages a consumer gave up on after its attempts.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// Streams and their durable consumers: counts, backlog, replicas and each stream's leader.
    Streams,
    /// Removes durable consumer NAME of STREAM, one no link reads any more (its subscription left
    /// the manifest, and its backlog only grows). The stream's messages stay.
    RemoveConsumer { stream: String, name: String },
    /// Keeps REPLICAS copies of every stream and bucket on a NATS cluster: raises those with fewer
    /// (wadm and the host create theirs with one, whatever the cluster).
    Replicate {
        replicas: usize,
        /// Also creates the buckets hosts of this lattice keep (LATTICEDATA_, CONFIGDATA_) with
        /// REPLICAS, when missing: run before the first host starts, no host ever needs a restart
        /// for its buckets to be replicated (a host uses a bucket it finds as it is).
        #[arg(long)]
        host_buckets_of: Option<String>,
        /// Creates an empty stream again with REPLICAS instead of raising it. For the streams
        /// wadm made moments before, alone: a stream that sources another (wadm's event intake)
        /// stops receiving when the stream it sources is raised from one replica to three.
        #[arg(long)]
        recreate_empty: bool,
    },
    /// Checks every account: its balance against its ledger, each debit once and against the
    /// notifications (or dead letters). Prints each mismatch and a summary; fails on a mismatch.
    Audit {
        /// billing's key-value bucket.
        #[arg(long, default_value = "billing")]
        billing_bucket: String,
        /// notify's key-value bucket.
        #[arg(long, default_value = "notify")]
        notify_bucket: String,
        /// Audits again, once a second, until nothing is found or this many seconds passed: right
        /// after orders were placed a debit's notification may still be on its way, and a stream
        /// just restored may not answer yet (a mismatch of money never mends).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Prints each message published on SUBJECT (wildcards allowed) until interrupted.
    Tail { subject: String },
    /// Key-value buckets as JSON lines.
    Kv {
        #[command(subcommand)]
        command: Kv,
    },
}

#[derive(Subcommand)]
enum Kv {
    /// Every key of BUCKET and its value, one JSON object a line, sorted by key.
    Export { bucket: String },
    /// Writes every line of an export (standard input) into BUCKET, creating it if missing.
    Import { bucket: String },
}

#[derive(Subcommand)]
enum Dlq {
    /// Every dead letter, oldest first, one JSON object a line.
    List,
    /// One dead letter by its sequence number in DEADLETTER.
    Show { seq: u64 },
    /// Publishes a dead letter again where it was first published, then removes it.
    Replay { seq: u64 },
}

const DEAD_LETTER_STREAM: &str = "DEADLETTER";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ready {
            listeners,
            admin_token_file,
            api_key_secret_file,
            also,
        } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
            };
            ready::check(
                &listeners,
                &read(&admin_token_file)?,
                &read(&api_key_secret_file)?,
                &also,
            )
            .await
        }
        Command::Broker(command) => {
            let client = async_nats::ConnectOptions::with_credentials_file(&cli.creds)
                .await
                .with_context(|| format!("reading {}", cli.creds.display()))?
                .name("orders-admin")
                .connect(orders_wire::broker::servers(&cli.nats))
                .await
                .with_context(|| format!("connecting to {}", cli.nats))?;
            on_broker(client, command).await
        }
    }
}

async fn on_broker(client: async_nats::Client, command: BrokerCommand) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    match command {
        BrokerCommand::Dlq { command } => {
            let mut stream = js
                .get_stream(DEAD_LETTER_STREAM)
                .await
                .context("stream DEADLETTER")?;
            match command {
                Dlq::List => {
                    let letters = dead_letters(&mut stream).await?;
                    // Said on stderr, so that an empty list reads as found empty, not as broken,
                    // while stdout stays one JSON value per line for scripts.
                    let plural = if letters.len() == 1 { "" } else { "s" };
                    eprintln!(
                        "{} dead letter{plural} in {DEAD_LETTER_STREAM}",
                        letters.len()
                    );
                    for letter in letters {
                        emit(letter);
                    }
                }
                Dlq::Show { seq } => {
                    emit(format!("{:#}", dead_letter(&stream, seq).await?));
                }
                Dlq::Replay { seq } => replay(&js, &stream, seq).await?,
            }
        }
        BrokerCommand::Streams => streams(&js).await?,
        BrokerCommand::RemoveConsumer { stream, name } => {
            js.get_stream(&stream)
                .await
                .with_context(|| format!("stream {stream}"))?
                .delete_consumer(&name)
                .await
                .with_context(|| format!("removing consumer {name} of {stream}"))?;
            emit(json!({ "stream": stream, "removed_consumer": name }));
        }
        BrokerCommand::Replicate {
            replicas,
            host_buckets_of,
            recreate_empty,
        } => {
            if let Some(lattice) = host_buckets_of {
                create_host_buckets(&js, &lattice, replicas).await?;
            }
            replicate(&js, replicas, recreate_empty).await?
        }
        BrokerCommand::Kv {
            command: Kv::Export { bucket },
        } => export(&js, &bucket).await?,
        BrokerCommand::Kv {
            command: Kv::Import { bucket },
        } => import(&js, &bucket).await?,
        BrokerCommand::Audit {
            billing_bucket,
            notify_bucket,
            wait,
        } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
            let report = loop {
                let read = async {
                    let billing = audit::read_bucket(&js, &billing_bucket).await?;
                    let notify = audit::read_bucket(&js, &notify_bucket).await?;
                    anyhow::Ok(audit::audit(&billing, &notify))
                };
                let waited_enough = std::time::Instant::now() >= deadline;
                match read.await {
                    Ok(report) if report.mismatches.is_empty() || waited_enough => break report,
                    Ok(_) => {}
                    Err(e) if waited_enough => return Err(e),
                    // A stream just restored, or whose leader moved, answers 503 for a moment.
                    Err(e) => eprintln!("reading the buckets: {e:#}; trying again"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            };
            for mismatch in &report.mismatches {
                emit(mismatch);
            }
            emit(json!({ "audited": report.summary() }));
            if !report.mismatches.is_empty() {
                bail!("{} mismatches", report.mismatches.len());
            }
        }
        BrokerCommand::Tail { subject } => {
            let mut messages = client.subscribe(subject).await?;
            while let Some(message) = messages.next().await {
                let origin = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(subjects::ORIGINAL_SUBJECT_HEADER))
                    .map(|v| v.as_str().to_string());
                let subject = message.subject.to_string();
                let decoded = decode(origin.as_deref().unwrap_or(&subject), &message.payload);
                emit(json!({ "subject": subject, "message": decoded }));
            }
        }
    }
    Ok(())
}

/// Prints one line. A reader that went away (`orders-admin dlq list | head`) ends the program
/// quietly, as it does for any command-line tool.
fn emit(line: impl std::fmt::Display) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("cannot write to standard output: {e}");
    }
}

/// A payload as JSON, by the subject it was published on; unknown payloads as their bytes.
fn decode(subject: &str, payload: &[u8]) -> Value {
    let decoded = match subject {
        placed if subjects::matches(subjects::ORDER_PLACED_SUBJECTS, placed) => {
            OrderPlaced::decode(payload).map(|m| json!(m))
        }
        subjects::PAYMENT_SETTLED => PaymentResult::decode(payload).map(|m| json!(m)),
        _ => return json!({ "bytes": payload }),
    };
    decoded.unwrap_or_else(|e| json!({ "undecodable": e.to_string(), "bytes": payload }))
}

async fn dead_letter(stream: &Stream, seq: u64) -> anyhow::Result<Value> {
    let message = stream
        .get_raw_message(seq)
        .await
        .with_context(|| format!("no dead letter {seq}"))?;
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    let original = header(subjects::ORIGINAL_SUBJECT_HEADER);
    Ok(json!({
        "seq": seq,
        "subject": message.subject.as_str(),
        "original_subject": original,
        "failure": header(subjects::FAILURE_HEADER),
        "stored_at": message.time.to_string(),
        "message": decode(&original, &message.payload),
    }))
}

async fn dead_letters(stream: &mut Stream) -> anyhow::Result<Vec<Value>> {
    let state = &stream.info().await?.state;
    let (messages, first, last) = (state.messages, state.first_sequence, state.last_sequence);
    let mut letters = Vec::new();
    if messages == 0 {
        return Ok(letters);
    }
    for seq in first..=last {
        // Removed (replayed) messages leave gaps in the sequence.
        if let Ok(letter) = dead_letter(stream, seq).await {
            letters.push(letter);
        }
    }
    Ok(letters)
}

async fn replay(js: &jetstream::Context, stream: &Stream, seq: u64) -> anyhow::Result<()> {
    let message = stream
        .get_raw_message(seq)
        .await
        .with_context(|| format!("no dead letter {seq}"))?;
    let Some(original) = message.headers.get(subjects::ORIGINAL_SUBJECT_HEADER) else {
        bail!("dead letter {seq} does not say where it was first published");
    };
    let original = original.as_str().to_string();
    js.publish(original.clone(), message.payload.clone())
        .await?
        .await
        .with_context(|| format!("{original} did not store the replay"))?;
    stream.delete_message(seq).await?;
    emit(json!({ "replayed": seq, "to": original }));
    Ok(())
}

/// Every stream of the account (key-value buckets are streams `KV_<bucket>`), sorted.
async fn stream_names(js: &jetstream::Context) -> anyhow::Result<Vec<String>> {
    let mut names = js.stream_names();
    let mut all = Vec::new();
    while let Some(name) = names.next().await {
        all.push(name?);
    }
    all.sort();
    Ok(all)
}

/// The host's own buckets, as wasmcloud-host 0.27 creates them when missing (a default
/// configuration), but with `replicas`.
async fn create_host_buckets(
    js: &jetstream::Context,
    lattice: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    for bucket in [
        format!("LATTICEDATA_{lattice}"),
        format!("CONFIGDATA_{lattice}"),
    ] {
        if js.get_key_value(&bucket).await.is_ok() {
            continue;
        }
        let config = || jetstream::kv::Config {
            bucket: bucket.clone(),
            num_replicas: replicas,
            ..Default::default()
        };
        let what = format!("creating {bucket} with {replicas} replicas");
        until_the_cluster_agrees(&what, || js.create_key_value(config())).await?;
    }
    Ok(())
}

/// Tries `change` for 10 s until the cluster takes it. A cluster just started may still miss a
/// peer ("no suitable peers for placement"), and one that just deleted a stream applies the
/// deletion through its meta leader a moment after answering, refusing the name meanwhile
/// ("already in use").
async fn until_the_cluster_agrees<T, E, F>(
    what: &str,
    mut change: impl FnMut() -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match change().await {
            Ok(done) => return Ok(done),
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{what}: {e}; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context(what.to_string()),
        }
    }
}

async fn replicate(
    js: &jetstream::Context,
    replicas: usize,
    recreate_empty: bool,
) -> anyhow::Result<()> {
    for name in stream_names(js).await? {
        let stream = js.get_stream(&name).await?;
        let mut config = stream.cached_info().config.clone();
        let before = config.num_replicas;
        let empty = stream.cached_info().state.messages == 0;
        if before < replicas {
            config.num_replicas = replicas;
            // A replica may answer a direct get before it has a write its leader acknowledged:
            // reads of a replicated stream go to its leader (as our providers do).
            config.allow_direct = false;
            if recreate_empty && empty {
                js.delete_stream(&name)
                    .await
                    .with_context(|| format!("removing {name} to create it again"))?;
                let what = format!("creating {name} again");
                until_the_cluster_agrees(&what, || js.create_stream(config.clone())).await?;
            } else {
                let what = format!("raising {name} to {replicas} replicas");
                until_the_cluster_agrees(&what, || js.update_stream(&config)).await?;
            }
        }
        emit(json!({ "stream": name, "replicas": before.max(replicas), "before": before }));
    }
    Ok(())
}

async fn streams(js: &jetstream::Context) -> anyhow::Result<()> {
    for name in stream_names(js).await? {
        match describe_stream(js, &name).await {
            Ok(described) => emit(described),
            // Deleted since it was listed (between any two of the requests that describe it):
            // it is no longer there to show.
            Err(_) if !stream_exists(js, &name).await? => continue,
            Err(e) => return Err(e.context(format!("describing stream {name}"))),
        }
    }
    Ok(())
}

/// A stream with its durable consumers, as `streams` prints it.
async fn describe_stream(js: &jetstream::Context, name: &str) -> anyhow::Result<Value> {
    let stream = js.get_stream(name).await?;
    let info = stream.cached_info().clone();
    let mut consumers = Vec::new();
    let mut infos = stream.consumers();
    while let Some(consumer) = infos.next().await {
        let consumer = consumer?;
        if consumer.config.durable_name.is_none() {
            continue;
        }
        consumers.push(json!({
            "name": consumer.name,
            "waiting": consumer.num_pending,
            "being_handled": consumer.num_ack_pending,
            "redelivered": consumer.num_redelivered,
        }));
    }
    Ok(json!({
        "stream": name,
        "messages": info.state.messages,
        "subjects": info.config.subjects,
        "replicas": info.config.num_replicas,
        "leader": info.cluster.as_ref().and_then(|c| c.leader.clone()),
        "consumers": consumers,
    }))
}

async fn stream_exists(js: &jetstream::Context, name: &str) -> anyhow::Result<bool> {
    match js.get_stream(name).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref error) if error.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

async fn export(js: &jetstream::Context, bucket: &str) -> anyhow::Result<()> {
    let store = js
        .get_key_value(bucket)
        .await
        .with_context(|| format!("bucket {bucket}"))?;
    let mut keys = Vec::new();
    let mut listed = store.keys().await?;
    while let Some(key) = listed.next().await {
        keys.push(key?);
    }
    keys.sort();
    for key in keys {
        // A key deleted between listing and reading is simply not exported.
        if let Some(value) = store.get(&key).await? {
            let value = base64::engine::general_purpose::STANDARD.encode(value);
            emit(json!({ "key": key, "value": value }));
        }
    }
    Ok(())
}

async fn import(js: &jetstream::Context, bucket: &str) -> anyhow::Result<()> {
    let store = match js.get_key_value(bucket).await {
        Ok(store) => store,
        Err(_) => {
            js.create_key_value(jetstream::kv::Config {
                bucket: bucket.to_string(),
                history: 1,
                ..Default::default()
            })
            .await?
        }
    };
    let mut written = 0;
    for line in std::io::stdin().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value =
            serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
        let (Some(key), Some(value)) = (entry["key"].as_str(), entry["value"].as_str()) else {
            bail!("a line needs \"key\" and \"value\": {line}");
        };
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .with_context(|| format!("the value of {key} is not base64"))?;
        store.put(key, value.into()).await?;
        written += 1;
    }
    eprintln!("{written} keys written to {bucket}");
    Ok(())
}
