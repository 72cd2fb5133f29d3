//! What the application's data plane uses on the broker, read from the manifest, so the NATS
//! permissions of the data plane (orders-nats-auth) follow `wadm.yaml` and are never listed twice.
//!
//! Every named config of the manifest is looked at:
//! - a messaging provider's `streams` (`NAME:subject[ subject…],…`) gives streams and subjects;
//! - a key-value link's `bucket` gives a bucket;
//! - a config named without properties is managed outside the manifest because it holds secrets
//!   (README, Security): the data plane may not read it.

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use serde_yaml::Value;

use crate::oam::Application;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DataPlane {
    pub streams: BTreeSet<String>,
    pub subjects: BTreeSet<String>,
    pub buckets: BTreeSet<String>,
    pub secret_configs: BTreeSet<String>,
}

impl DataPlane {
    pub fn of(app: &Application) -> Result<Self> {
        let mut plane = Self::default();
        let mut configs = Vec::new();
        named_configs(app.root(), &mut configs);
        for config in configs {
            let name = config
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("a named config has no name"))?;
            let Some(properties) = config.get("properties") else {
                plane.secret_configs.insert(name.to_string());
                continue;
            };
            if let Some(streams) = properties.get("streams").and_then(Value::as_str) {
                for spec in streams.split(',').filter(|s| !s.trim().is_empty()) {
                    let (stream, subjects) = spec
                        .trim()
                        .split_once(':')
                        .ok_or_else(|| anyhow!("stream `{spec}` is not NAME:subjects"))?;
                    plane.streams.insert(stream.to_string());
                    plane
                        .subjects
                        .extend(subjects.split_whitespace().map(str::to_string));
                }
            }
            if let Some(bucket) = properties.get("bucket").and_then(Value::as_str) {
                plane.buckets.insert(bucket.to_string());
            }
        }
        Ok(plane)
    }

    /// The plane as `orders-nats-auth issue` takes it.
    pub fn to_args(&self) -> Vec<String> {
        let flag = |flag: &'static str, values: &BTreeSet<String>| {
            values
                .iter()
                .flat_map(move |v| [format!("--{flag}"), v.clone()])
                .collect::<Vec<_>>()
        };
        [
            flag("stream", &self.streams),
            flag("subject", &self.subjects),
            flag("bucket", &self.buckets),
            flag("secret-config", &self.secret_configs),
        ]
        .concat()
    }
}

/// Every entry of every `config:` list anywhere in the manifest.
fn named_configs<'v>(value: &'v Value, found: &mut Vec<&'v Value>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                match (key.as_str(), child.as_sequence()) {
                    (Some("config"), Some(entries)) => found.extend(entries),
                    _ => named_configs(child, found),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| named_configs(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_kept_manifest_names_its_streams_buckets_and_the_secret_config() {
        let app = Application::parse(include_str!("../../../wadm.yaml")).unwrap();
        let plane = DataPlane::of(&app).unwrap();
        assert_eq!(plane.streams, set(&["DEADLETTER", "ORDERS", "PAYMENTS"]));
        assert_eq!(
            plane.subjects,
            set(&["deadletter.>", "orders.placed", "payments.settled"])
        );
        assert_eq!(plane.buckets, set(&["billing", "notify", "order"]));
        assert_eq!(plane.secret_configs, set(&["orders-auth"]));
    }

    #[test]
    fn the_plane_becomes_the_issuers_flags() {
        let plane = DataPlane {
            streams: set(&["ORDERS"]),
            buckets: set(&["billing"]),
            ..Default::default()
        };
        assert_eq!(
            plane.to_args(),
            ["--stream", "ORDERS", "--bucket", "billing"]
        );
    }
}
