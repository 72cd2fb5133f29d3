//! Provider and link configuration.
//!
//! Provider config (wadm.yaml, the provider's `config`):
//! - `cluster_uri` (default `nats://127.0.0.1:4222`), `js_domain` (optional);
//! - `replicas` (default 1): NATS servers keeping each stream it creates;
//! - `streams`: streams to ensure at start, `NAME:subject[ subject…],NAME2:…`, e.g.
//!   `ORDERS:orders.placed,PAYMENTS:payments.settled`. Publishing to a subject no stream captures
//!   fails, so every subject components publish to must be listed. A stream keeps its messages for
//!   a week;
//! - `last_value_streams` (optional): names of configured streams that keep instead the newest
//!   message of each subject, for ever (a value per subject, such as the API key in force for
//!   each user), separated by commas or spaces.
//!
//! Link config, provider → component (`orders:lattice/batch-handler`), one durable consumer each:
//! - `stream` (required), `durable` (required): the consumer's name; it survives restarts;
//! - `filter_subject` (optional): only these subjects of the stream;
//! - `max_attempts` (default 5): handler failures before a message goes to the dead-letter subject;
//! - `dead_letter_subject` (default `deadletter.<durable>`);
//! - `concurrency` (default 8): batches handled at once. A batch gathers the messages that
//!   arrive while every handler is busy: at low rates each message goes alone and at once, under
//!   load many share one call. Fewer handlers make batches form at lower rates, at the price of
//!   waiting (with 2, an order took 21 ms to its notification at 200 orders/s where 8 took 7);
//! - `max_batch` (default 64): the most messages in one batch;
//! - `one_at_a_time_per_subject_tokens` (optional, a number N): messages whose subjects share
//!   their first N tokens are handled one after another, in the order they arrive, while other
//!   messages go on beside them (billing's link, 3: one account's orders share the partition
//!   `orders.placed.<partition>` and would otherwise race for its balance). Several such messages
//!   can be in one batch, in order. A batch keeps its turn for at most 2 s: a call whose answer
//!   was lost holds the others up that long, not for the whole `ack_wait`;
//! - `ack_wait_ms` (default 30000): redelivery if the provider itself dies mid-message; also how
//!   long the provider awaits the component's answer before it offers the message again.
//!
//! Link config, component → provider (`wasmcloud:messaging/consumer`, `orders:lattice/stream-reader`),
//! the link's target config:
//! - `publish`: the subjects the component may publish to (and send requests on), separated by
//!   commas or spaces; NATS wildcards `*` (one token) and `>` (the rest) are allowed. Without it the
//!   component may publish nothing: a component that is compromised or buggy cannot forge another
//!   service's messages;
//! - `read`: likewise, the subjects whose stored messages it may read back (`stream-reader`);
//!   without it, none.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use orders_conventions::subjects;

pub const DEFAULT_CLUSTER_URI: &str = "nats://127.0.0.1:4222";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    pub cluster_uri: String,
    pub js_domain: Option<String>,
    pub replicas: usize,
    pub streams: Vec<StreamSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub keeps: Keeps,
}

/// Which messages a stream keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// Every message, for a week, consumed or not.
    LastWeek,
    /// The newest message of each subject, for ever.
    LastValuePerSubject,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub stream: String,
    pub durable: String,
    pub filter_subject: Option<String>,
    pub max_attempts: u64,
    pub dead_letter_subject: String,
    pub concurrency: usize,
    pub max_batch: usize,
    /// `one_at_a_time_per_subject_tokens`: how many leading tokens of a subject make the key
    /// whose messages are handled in turn; `None`: all side by side.
    pub in_turn_tokens: Option<usize>,
    pub ack_wait: Duration,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ProviderConfig {
    pub fn from_map(config: &HashMap<String, String>) -> anyhow::Result<Self> {
        let mut streams: Vec<StreamSpec> = config
            .get("streams")
            .map(|s| {
                s.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(parse_stream)
                    .collect::<anyhow::Result<_>>()
            })
            .transpose()?
            .unwrap_or_default();
        let last_value = config.get("last_value_streams").map(String::as_str);
        for name in last_value.unwrap_or_default().split([',', ' ']) {
            if name.is_empty() {
                continue;
            }
            let Some(spec) = streams.iter_mut().find(|spec| spec.name == name) else {
                bail!("last_value_streams names `{name}`, which `streams` does not configure");
            };
            spec.keeps = Keeps::LastValuePerSubject;
        }
        Ok(Self {
            cluster_uri: config
                .get("cluster_uri")
                .cloned()
                .unwrap_or_else(|| DEFAULT_CLUSTER_URI.into()),
            js_domain: config.get("js_domain").filter(|d| !d.is_empty()).cloned(),
            replicas: orders_provider_support::replicas(
                config.get("replicas").map(String::as_str),
            )?,
            streams,
        })
    }
}

fn parse_stream(spec: &str) -> anyhow::Result<StreamSpec> {
    let Some((name, subjects)) = spec.trim().split_once(':') else {
        bail!("stream `{spec}` must be NAME:subject[ subject…]");
    };
    if !valid_name(name) {
        bail!("stream name `{name}` must use only letters, digits, - and _");
    }
    let subjects: Vec<String> = subjects.split_whitespace().map(str::to_string).collect();
    if subjects.is_empty() {
        bail!("stream `{name}` needs at least one subject");
    }
    Ok(StreamSpec {
        name: name.to_string(),
        subjects,
        keeps: Keeps::LastWeek,
    })
}

impl ConsumerConfig {
    pub fn from_map(config: &HashMap<String, String>) -> anyhow::Result<Self> {
        let required = |key: &str| {
            config
                .get(key)
                .filter(|v| valid_name(v))
                .cloned()
                .with_context(|| format!("link config needs `{key}` (letters, digits, - and _)"))
        };
        let number = |key: &str, default: u64| -> anyhow::Result<u64> {
            config
                .get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .with_context(|| format!("`{key}` must be a whole number"))
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let stream = required("stream")?;
        let durable = required("durable")?;
        let max_attempts = number("max_attempts", 5)?;
        let concurrency = number("concurrency", 8)?;
        let max_batch = number("max_batch", 64)?;
        if max_attempts == 0 || concurrency == 0 || max_batch == 0 {
            bail!("`max_attempts`, `concurrency` and `max_batch` must be at least 1");
        }
        let in_turn_tokens = match config.get("one_at_a_time_per_subject_tokens") {
            None => None,
            Some(tokens) => match tokens.parse::<usize>() {
                Ok(tokens) if tokens > 0 => Some(tokens),
                _ => bail!("`one_at_a_time_per_subject_tokens` must be a whole number from 1, not `{tokens}`"),
            },
        };
        Ok(Self {
            dead_letter_subject: config
                .get("dead_letter_subject")
                .cloned()
                .unwrap_or_else(|| format!("deadletter.{durable}")),
            filter_subject: config.get("filter_subject").cloned(),
            max_attempts,
            concurrency: usize::try_from(concurrency)?,
            max_batch: usize::try_from(max_batch)?,
            in_turn_tokens,
            ack_wait: Duration::from_millis(number("ack_wait_ms", 30_000)?),
            stream,
            durable,
        })
    }
}

impl ConsumerConfig {
    /// The key of `subject` whose messages are handled one after another: its first
    /// `in_turn_tokens` tokens; `None` when the link handles every message side by side.
    pub fn turn_of(&self, subject: &str) -> Option<String> {
        let tokens = self.in_turn_tokens?;
        Some(
            subject
                .split('.')
                .take(tokens)
                .collect::<Vec<_>>()
                .join("."),
        )
    }
}

/// What one component may do with subjects, from its link's `publish` and `read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    pub publish: SubjectPatterns,
    pub read: SubjectPatterns,
}

impl LinkPolicy {
    pub fn from_map(config: &HashMap<String, String>) -> anyhow::Result<Self> {
        Ok(Self {
            publish: SubjectPatterns::from_config(config, "publish")?,
            read: SubjectPatterns::from_config(config, "read")?,
        })
    }

    /// The patterns that govern `access`.
    pub fn of(&self, access: Access) -> &SubjectPatterns {
        match access {
            Access::Publish => &self.publish,
            Access::Read => &self.read,
        }
    }
}

/// What a component asks to do with a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Publish to it (or send a request on it).
    Publish,
    /// Read back messages stored on subjects it matches.
    Read,
}

impl Access {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Publish => "publish to",
            Self::Read => "read",
        }
    }
}

/// NATS subject patterns from one link config key, separated by commas or spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectPatterns {
    patterns: Vec<String>,
}

impl SubjectPatterns {
    pub fn from_config(config: &HashMap<String, String>, key: &str) -> anyhow::Result<Self> {
        let patterns: Vec<String> = config
            .get(key)
            .map(|p| {
                p.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for pattern in &patterns {
            if !valid_pattern(pattern) {
                bail!("`{key}` pattern `{pattern}` is not a NATS subject");
            }
        }
        Ok(Self { patterns })
    }

    /// Whether `subject` matches one of the patterns, NATS-style. A subject holding wildcards
    /// (a filter) matches only a pattern that covers every subject the filter does.
    pub fn allows(&self, subject: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| subjects::matches(pattern, subject))
    }

    /// The patterns, for messages.
    pub fn describe(&self) -> String {
        if self.patterns.is_empty() {
            "nothing".into()
        } else {
            self.patterns.join(", ")
        }
    }
}

fn valid_pattern(pattern: &str) -> bool {
    let tokens: Vec<&str> = pattern.split('.').collect();
    let misplaced_rest = tokens[..tokens.len() - 1].contains(&">");
    !tokens.iter().any(|t| t.is_empty()) && !misplaced_rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use orders_provider_support::config_map as map;

    #[test]
    fn streams_are_read_from_one_line() {
        let config = ProviderConfig::from_map(&map(&[(
            "streams",
            "ORDERS:orders.placed, PAYMENTS:payments.settled payments.other",
        )]))
        .unwrap();
        assert_eq!(config.streams.len(), 2);
        assert_eq!(
            config.streams[1].subjects,
            ["payments.settled", "payments.other"]
        );
        assert_eq!(config.cluster_uri, DEFAULT_CLUSTER_URI);
    }

    #[test]
    fn a_stream_may_keep_the_last_value_of_each_subject() {
        let config = ProviderConfig::from_map(&map(&[
            ("streams", "ORDERS:orders.placed,KEYS:keys.*"),
            ("last_value_streams", "KEYS"),
        ]))
        .unwrap();
        let keeps: Vec<Keeps> = config.streams.iter().map(|s| s.keeps).collect();
        assert_eq!(keeps, [Keeps::LastWeek, Keeps::LastValuePerSubject]);
        let unknown = ProviderConfig::from_map(&map(&[
            ("streams", "ORDERS:orders.placed"),
            ("last_value_streams", "KEYS"),
        ]));
        assert!(unknown.is_err());
    }

    #[test]
    fn malformed_streams_are_refused() {
        for bad in ["ORDERS", "OR.DERS:x", "ORDERS:"] {
            assert!(
                ProviderConfig::from_map(&map(&[("streams", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_consumer_needs_a_stream_and_a_durable_name() {
        assert!(ConsumerConfig::from_map(&map(&[("stream", "ORDERS")])).is_err());
        let config =
            ConsumerConfig::from_map(&map(&[("stream", "ORDERS"), ("durable", "billing")]))
                .unwrap();
        assert_eq!(
            (config.max_attempts, config.concurrency, config.max_batch),
            (5, 8, 64)
        );
        assert_eq!(config.dead_letter_subject, "deadletter.billing");
        assert_eq!(config.turn_of("orders.placed.ab.o-1"), None);
    }

    #[test]
    fn messages_take_turns_by_the_leading_tokens_of_their_subjects() {
        let with = |value| {
            ConsumerConfig::from_map(&map(&[
                ("stream", "ORDERS"),
                ("durable", "billing"),
                ("one_at_a_time_per_subject_tokens", value),
            ]))
        };
        let billing = with("3").unwrap();
        assert_eq!(
            billing.turn_of("orders.placed.ab.o-1").as_deref(),
            Some("orders.placed.ab")
        );
        assert_eq!(
            billing.turn_of("orders.placed.ab.o-1"),
            billing.turn_of("orders.placed.ab.o-2")
        );
        assert_eq!(
            billing.turn_of("orders.placed.ab").as_deref(),
            Some("orders.placed.ab"),
            "a subject of as many tokens as a turn is its own turn"
        );
        assert_eq!(
            billing.turn_of("orders.placed").as_deref(),
            Some("orders.placed")
        );
        for bad in ["0", "true", "-1"] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_component_may_publish_exactly_what_its_link_names() {
        let policy =
            SubjectPatterns::from_config(&map(&[("publish", "orders.placed")]), "publish").unwrap();
        assert!(policy.allows("orders.placed"));
        for denied in [
            "payments.settled",
            "orders",
            "orders.placed.x",
            "orders.*",
            "",
        ] {
            assert!(!policy.allows(denied), "{denied}");
        }
    }

    #[test]
    fn wildcards_match_as_in_nats() {
        let policy =
            SubjectPatterns::from_config(&map(&[("publish", "replies.*, audit.> ,x")]), "publish")
                .unwrap();
        assert!(policy.allows("replies.a") && policy.allows("audit.a.b") && policy.allows("x"));
        for denied in ["replies", "replies.a.b", "audit", "audit.", "y"] {
            assert!(!policy.allows(denied), "{denied}");
        }
    }

    #[test]
    fn a_link_without_publish_or_read_allows_nothing() {
        let policy = LinkPolicy::from_map(&HashMap::new()).unwrap();
        assert!(!policy.of(Access::Publish).allows("orders.placed"));
        assert!(!policy.of(Access::Read).allows("orders.placed"));
        assert_eq!(policy.publish.describe(), "nothing");
    }

    #[test]
    fn a_component_may_read_a_filter_only_within_what_its_link_names() {
        let policy = LinkPolicy::from_map(&map(&[("read", "orders.placed.*.*")])).unwrap();
        let read = policy.of(Access::Read);
        assert!(read.allows("orders.placed.*.o-1") && read.allows("orders.placed.ab.o-1"));
        assert!(read.allows("orders.placed.*.*"));
        for denied in [
            "orders.placed.>",
            "orders.placed.*",
            "orders.*.*.*",
            "payments.settled",
        ] {
            assert!(!read.allows(denied), "{denied}");
        }
        assert!(!policy.of(Access::Publish).allows("orders.placed.ab.o-1"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["a..b", ">.a", ".a", "a."] {
            for key in ["publish", "read"] {
                assert!(
                    LinkPolicy::from_map(&map(&[(key, bad)])).is_err(),
                    "{key} {bad}"
                );
            }
        }
    }
}
