//! Pausing the durable consumer that settles orders (billing's on `ORDERS`) with
//! JetStream's own consumer pause (NATS >= 2.11, `$JS.API.CONSUMER.PAUSE.<stream>.<consumer>`):
//! a paused consumer delivers nothing and keeps every message, so `POST /Order` can be measured
//! alone, without billing and notify settling beside it, and nothing is lost or skipped.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_nats::jetstream;
use serde_json::{json, Value};

/// The consumers that take placed orders from `ORDERS`.
const SETTLING: [&str; 1] = ["billing"];

/// Pauses them for at most `at_most` (should the benchmark stop before it resumes them).
pub async fn pause_settling(js: &jetstream::Context, at_most: Duration) -> Result<()> {
    let until = time::OffsetDateTime::now_utc() + at_most;
    let until = until.format(&time::format_description::well_known::Rfc3339)?;
    for consumer in SETTLING {
        pause(js, consumer, json!({ "pause_until": until })).await?;
    }
    Ok(())
}

pub async fn resume_settling(js: &jetstream::Context) -> Result<()> {
    for consumer in SETTLING {
        pause(js, consumer, json!({})).await?;
    }
    Ok(())
}

async fn pause(js: &jetstream::Context, consumer: &str, request: Value) -> Result<()> {
    let answer: Value = js
        .request(format!("CONSUMER.PAUSE.ORDERS.{consumer}"), &request)
        .await
        .with_context(|| format!("pausing or resuming consumer {consumer}"))?;
    if let Some(error) = answer.get("error") {
        bail!("consumer {consumer}: JetStream refused to pause or resume it: {error}");
    }
    Ok(())
}
