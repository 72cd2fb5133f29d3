//! Link and provider configuration.
//!
//! Provider config (from `wadm.yaml`'s provider `config`) gives defaults; a link's target config
//! overrides them per component:
//! - `bucket` (required after merging): the JetStream KV bucket, created when missing;
//! - `cluster_uri` (default `nats://127.0.0.1:4222`);
//! - `js_domain` (optional): JetStream domain, e.g. the hub's `default` behind a leaf node;
//! - `history` (default 1): revisions JetStream keeps per key;
//! - `replicas` (default 1): NATS servers keeping each bucket it creates.

use std::collections::HashMap;

use anyhow::{bail, Context as _};

pub const DEFAULT_CLUSTER_URI: &str = "nats://127.0.0.1:4222";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketConfig {
    pub bucket: String,
    pub cluster_uri: String,
    pub js_domain: Option<String>,
    pub history: i64,
    pub replicas: usize,
}

impl BucketConfig {
    /// Merges a link's config over the provider's defaults.
    pub fn from_maps(
        defaults: &HashMap<String, String>,
        link: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let value = |key: &str| link.get(key).or_else(|| defaults.get(key)).cloned();
        let Some(bucket) = value("bucket") else {
            bail!("link config needs `bucket`, the JetStream KV bucket to use");
        };
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("bucket `{bucket}` must be non-empty and use only letters, digits, - and _");
        }
        let history = value("history")
            .map(|h| h.parse::<i64>())
            .transpose()
            .context("`history` must be a whole number")?
            .unwrap_or(1);
        if !(1..=64).contains(&history) {
            bail!("`history` must be between 1 and 64 (a JetStream limit)");
        }
        Ok(Self {
            bucket,
            cluster_uri: value("cluster_uri").unwrap_or_else(|| DEFAULT_CLUSTER_URI.to_string()),
            js_domain: value("js_domain").filter(|d| !d.is_empty()),
            history,
            replicas: orders_provider_support::replicas(value("replicas").as_deref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orders_provider_support::config_map as map;

    #[test]
    fn link_values_override_provider_defaults() {
        let defaults = map(&[
            ("cluster_uri", "nats://10.0.0.1:4222"),
            ("bucket", "fallback"),
        ]);
        let config = BucketConfig::from_maps(&defaults, &map(&[("bucket", "billing")])).unwrap();
        assert_eq!(config.bucket, "billing");
        assert_eq!(config.cluster_uri, "nats://10.0.0.1:4222");
        assert_eq!(config.js_domain, None);
        assert_eq!(config.history, 1);
    }

    #[test]
    fn a_link_without_a_bucket_is_refused() {
        assert!(BucketConfig::from_maps(&map(&[]), &map(&[])).is_err());
    }

    #[test]
    fn bucket_names_jetstream_cannot_hold_are_refused() {
        for bad in ["", "a.b", "a b", "x>"] {
            assert!(
                BucketConfig::from_maps(&map(&[]), &map(&[("bucket", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn history_must_be_within_jetstream_limits() {
        assert!(
            BucketConfig::from_maps(&map(&[]), &map(&[("bucket", "b"), ("history", "0")])).is_err()
        );
        assert!(
            BucketConfig::from_maps(&map(&[]), &map(&[("bucket", "b"), ("history", "65")]))
                .is_err()
        );
        let config =
            BucketConfig::from_maps(&map(&[]), &map(&[("bucket", "b"), ("history", "5")])).unwrap();
        assert_eq!(config.history, 5);
    }
}
