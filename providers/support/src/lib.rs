//! What our capability providers share, so it is written once.

pub mod links;
mod nats;

pub use nats::NatsCredentials;

use std::collections::HashMap;

use wasmcloud_provider_sdk::LinkDeleteInfo;

/// (component id, link name): what identifies a component's link to a provider.
pub type LinkKey = (String, String);

/// The key of a deleted link whose source is the component (the provider is the target).
pub fn key_of_source(link: &impl LinkDeleteInfo) -> LinkKey {
    (
        link.get_source_id().to_string(),
        link.get_link_name().to_string(),
    )
}

/// The key of a deleted link whose target is the component (the provider is the source).
pub fn key_of_target(link: &impl LinkDeleteInfo) -> LinkKey {
    (
        link.get_target_id().to_string(),
        link.get_link_name().to_string(),
    )
}

/// A configuration map from pairs, as the host hands one to a provider (config tests use it).
pub fn config_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `replicas` of a provider's config: how many NATS servers keep each stream or bucket it creates
/// (1 on a single server; 3 on the Kubernetes cluster). JetStream allows 1 to 5.
pub fn replicas(value: Option<&str>) -> anyhow::Result<usize> {
    let Some(value) = value else {
        return Ok(1);
    };
    match value.parse::<usize>() {
        Ok(n) if (1..=5).contains(&n) => Ok(n),
        _ => anyhow::bail!("`replicas` must be a whole number from 1 to 5, got `{value}`"),
    }
}

/// Logs to stderr, which the host collects into its own log: one JSON object a line when the
/// host logs so (`WASMCLOUD_STRUCTURED_LOGGING_ENABLED`, which the host hands its providers in
/// the host data), else text; `RUST_LOG` overrides `info`.
pub fn init_logging() {
    let structured = wasmcloud_provider_sdk::load_host_data().is_ok_and(|d| d.structured_logging);
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    if structured {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

/// Registers `$provider` with the host under `$name`, keeps its links in step with the lattice
/// ([`links`]) and serves its exports (`$serve`, the `serve` function wit-bindgen-wrpc generated)
/// until the host stops it; without `$serve`, for a provider that only calls components. A macro
/// rather than a function because the SDK's serve bounds tie the wRPC client's lifetime to the
/// caller's frame.
#[macro_export]
macro_rules! serve_until_stopped {
    ($provider:expr, $name:expr) => {{
        use ::anyhow::Context as _;
        let provider = $provider;
        let shutdown = ::wasmcloud_provider_sdk::run_provider(provider.clone(), $name)
            .await
            .context("failed to run provider")?;
        $crate::links::keep_links_in_step(provider);
        shutdown.await;
        ::anyhow::Ok(())
    }};
    ($provider:expr, $name:expr, $serve:path) => {{
        use ::anyhow::Context as _;
        let provider = $provider;
        let shutdown = ::wasmcloud_provider_sdk::run_provider(provider.clone(), $name)
            .await
            .context("failed to run provider")?;
        $crate::links::keep_links_in_step(provider.clone());
        let connection = ::wasmcloud_provider_sdk::get_connection();
        let wrpc = connection
            .get_wrpc_client(connection.provider_key())
            .await
            .context("failed to create the wRPC client")?;
        ::wasmcloud_provider_sdk::serve_provider_exports(&wrpc, provider, shutdown, $serve)
            .await
            .context("failed to serve provider exports")
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_default_to_one_and_stay_within_jetstream_limits() {
        assert_eq!(replicas(None).unwrap(), 1);
        assert_eq!(replicas(Some("3")).unwrap(), 3);
        for bad in ["0", "6", "three", "-1"] {
            assert!(replicas(Some(bad)).is_err(), "{bad}");
        }
    }
}
