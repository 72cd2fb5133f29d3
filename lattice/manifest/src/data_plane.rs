//! What the application's data plane uses on the broker, read from the manifest, so the NATS
//! permissions of the data plane (orders-nats-auth) follow `wadm.yaml` and are never listed twice.
//!
//! Every named config of the manifest is looked at:
//! - a messaging provider's `streams` (`NAME:subject[ subject…],…`) gives streams and subjects;
//! - a key-value link's `bucket` gives a bucket;
//! - a config named without properties is managed outside the manifest because it holds secrets
//!   (docs/security.md): the data plane may not read it.

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use orders_nats_auth::DataPlane;
use serde_yaml::Value;

use crate::oam::Application;

/// The data plane `app` uses, each name once, sorted; on the default lattice (the caller names
/// the lattice it issues for).
pub fn of(app: &Application) -> Result<DataPlane> {
    let mut streams = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    let mut buckets = BTreeSet::new();
    let mut secret_configs = BTreeSet::new();
    let mut configs = Vec::new();
    named_configs(app.root(), &mut configs);
    for config in configs {
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a named config has no name"))?;
        let Some(properties) = config.get("properties") else {
            secret_configs.insert(name.to_string());
            continue;
        };
        if let Some(specs) = properties.get("streams").and_then(Value::as_str) {
            for spec in specs.split(',').filter(|s| !s.trim().is_empty()) {
                let (stream, names) = spec
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| anyhow!("stream `{spec}` is not NAME:subjects"))?;
                streams.insert(stream.to_string());
                subjects.extend(names.split_whitespace().map(str::to_string));
            }
        }
        if let Some(bucket) = properties.get("bucket").and_then(Value::as_str) {
            buckets.insert(bucket.to_string());
        }
    }
    Ok(DataPlane {
        lattice: "default".to_string(),
        streams: streams.into_iter().collect(),
        subjects: subjects.into_iter().collect(),
        buckets: buckets.into_iter().collect(),
        secret_configs: secret_configs.into_iter().collect(),
    })
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

    #[test]
    fn the_kept_manifest_names_its_streams_buckets_and_the_secret_config() {
        let app = Application::parse(include_str!("../../../wadm.yaml")).unwrap();
        let plane = of(&app).unwrap();
        assert_eq!(
            plane.streams,
            ["DEADLETTER", "KEYS", "ORDERS", "PAYMENTS", "REFUNDS"]
        );
        assert_eq!(
            plane.subjects,
            [
                "deadletter.>",
                "keys.*",
                "orders.placed.*.*",
                "payments.refunded",
                "payments.settled",
                "refunds.requested.*.*"
            ]
        );
        assert_eq!(plane.buckets, ["billing", "notify", "order"]);
        assert_eq!(plane.secret_configs, ["orders-auth"]);
    }

    /// Our providers keep one link configuration per component and link name: a component linked
    /// to one provider for two interfaces (order: messaging's `consumer` and `stream-reader`)
    /// must give both links the same properties, or whichever arrives last would be its policy.
    #[test]
    fn links_of_one_component_to_one_provider_carry_the_same_properties() {
        let app: Value = serde_yaml::from_str(include_str!("../../../wadm.yaml")).unwrap();
        let mut seen: std::collections::HashMap<(String, String, String), Value> =
            Default::default();
        for component in app["spec"]["components"].as_sequence().unwrap() {
            let traits = component["traits"].as_sequence().into_iter().flatten();
            for link in traits.filter(|t| t["type"] == "link") {
                let properties = &link["properties"];
                let Some(target) = properties["target"]["name"].as_str() else {
                    continue;
                };
                let name = properties["name"].as_str().unwrap_or("default");
                let key = (
                    component["name"].as_str().unwrap().to_string(),
                    target.to_string(),
                    name.to_string(),
                );
                let config: Vec<&Value> = properties["target"]["config"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["properties"])
                    .collect();
                let config = serde_yaml::to_value(config).unwrap();
                if let Some(earlier) = seen.insert(key.clone(), config.clone()) {
                    assert_eq!(earlier, config, "{key:?}");
                }
            }
        }
        let order_to_messaging = ("order".into(), "messaging".into(), "default".into());
        assert!(seen.contains_key(&order_to_messaging));
    }
}
