//! What our capability providers share, so it is written once.

pub mod links;
mod nats;
mod serve;

pub use nats::NatsCredentials;
pub use serve::serve_invocations;

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

/// Logs to stderr, which the host collects into its own log, and exports spans over OpenTelemetry
/// when the host does: the host hands its providers its settings (structured logging, log level,
/// `WASMCLOUD_OBSERVABILITY_ENABLED` and the OTLP endpoint) in the host data, and this is
/// wasmCloud's own set-up for them, as the host uses it. `RUST_LOG` adds per-crate directives.
/// Keep the returned guard for as long as the provider runs: dropping it stops the log writer.
pub fn init_observability(
    service: &str,
    host_data: &wasmcloud_provider_sdk::core::HostData,
) -> anyhow::Result<impl Sized> {
    use anyhow::Context as _;
    let (dispatch, guard) = wasmcloud_provider_sdk::wasmcloud_tracing::configure_observability(
        service,
        &host_data.otel_config,
        host_data.structured_logging,
        None::<&std::path::Path>,
        host_data.log_level.as_ref(),
        Some(&host_data.otel_config.trace_level),
    )?;
    wasmcloud_provider_sdk::tracing_subscriber::util::SubscriberInitExt::try_init(dispatch)
        .context("logging set up twice")?;
    Ok(guard)
}

/// The W3C trace context (`traceparent`, `tracestate`) of the current span, as NATS headers: what
/// a provider sends with a call to a component, or stores with a message, so the next span joins
/// the same trace.
pub fn trace_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in
        wasmcloud_provider_sdk::wasmcloud_tracing::context::TraceContextInjector::default_with_span(
        )
        .iter()
    {
        headers.insert(name.as_str(), value.as_str());
    }
    headers
}

/// Makes `span` a child of the W3C trace context `header` finds (in a stored message's headers,
/// an HTTP request's); without one it stays a root. Called before the span is first entered.
pub fn continue_trace<'h>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'h str>) {
    let context: Vec<(String, String)> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name.to_string(), header(name)?.to_string())))
        .collect();
    set_parent(span, context);
}

/// Makes `span` a child of the calling component's span: the host sends the trace context with
/// every call it makes to a provider.
pub fn continue_callers_trace(span: &tracing::Span, cx: &Option<wasmcloud_provider_sdk::Context>) {
    continue_trace(span, |name| {
        cx.as_ref()?.tracing.get(name).map(String::as_str)
    });
}

fn set_parent(span: &tracing::Span, context: Vec<(String, String)>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !context.is_empty() {
        let parent = wasmcloud_provider_sdk::wasmcloud_tracing::context::get_span_context(&context);
        let _ = span.set_parent(parent);
    }
}

/// Defines the provider crate's `run`, the provider process: logs and traces as the host says
/// ([`init_observability`]), makes `$provider` from the `HostData` the host passed, registers it
/// with the host under `$name` (which hands it its start-up links), tells it that it has them,
/// keeps its links in step with the lattice ([`links`]) and serves its exports (`$serve`, the
/// `serve` function wit-bindgen-wrpc generated; none for a provider that only calls components)
/// until the host stops it. A macro rather than a function because the SDK's serve bounds tie the
/// wRPC client's lifetime to the caller's frame.
#[macro_export]
macro_rules! define_run {
    ($(#[$doc:meta])* $name:literal, |$host_data:ident| $provider:expr $(, $serve:path)?) => {
        $(#[$doc])*
        pub async fn run() -> ::anyhow::Result<()> {
            use ::anyhow::Context as _;
            let $host_data = ::wasmcloud_provider_sdk::load_host_data()
                .context("failed to load host data")?;
            let _observability = $crate::init_observability($name, $host_data)?;
            let provider = $provider;
            let shutdown = ::wasmcloud_provider_sdk::run_provider(provider.clone(), $name)
                .await
                .context("failed to run provider")?;
            $crate::links::ServesLinks::start_up_links_taken(&provider);
            let connection = ::wasmcloud_provider_sdk::get_connection();
            ::tokio::spawn($crate::links::keep_links_in_step(
                provider.clone(),
                connection.clone(),
            ));
            $crate::define_run!(@serve provider, connection, shutdown $(, $serve)?);
            ::anyhow::Ok(())
        }
    };
    (@serve $provider:ident, $connection:ident, $shutdown:ident) => {
        $shutdown.await;
    };
    (@serve $provider:ident, $connection:ident, $shutdown:ident, $serve:path) => {
        let wrpc = $connection
            .get_wrpc_client($connection.provider_key())
            .await
            .context("failed to create the wRPC client")?;
        let invocations = $serve(&wrpc, $provider)
            .await
            .context("failed to serve provider exports")?;
        $crate::serve_invocations(invocations, $shutdown).await;
    };
}

/// Defines the provider crate's `serve_in_host`, which the host calls to run the provider in its
/// process: `$provider`, made from the host's `HostData` and the SDK's connection, is served as
/// [`serve_in_host`] serves a provider, and its exports (`$serve`, the `serve` function
/// wit-bindgen-wrpc generated) twice: to the host's components on the in-process `exports` the
/// host passes, to other hosts' components over NATS. A parameter after the connection
/// (`|host_data, connection, reach: Reach|`) becomes one more parameter of `serve_in_host`, for
/// what else the provider takes from the host. A macro because `$serve` is generic over the
/// transport and is called for both.
#[macro_export]
macro_rules! define_serve_in_host {
    ($(#[$doc:meta])* |$host_data:ident, $connection:ident $(, $extra:ident: $extra_type:ty)?| $provider:expr, $serve:path) => {
        $(#[$doc])*
        pub async fn serve_in_host<S>(
            host_data: ::wasmcloud_provider_sdk::core::HostData,
            connection: ::wasmcloud_provider_sdk::ProviderConnection,
            commands: ::wasmcloud_provider_sdk::provider::ProviderCommandReceivers,
            quit: ::tokio::sync::broadcast::Sender<()>,
            exports: S,
            $($extra: $extra_type,)?
        ) -> ::anyhow::Result<::tokio::task::JoinSet<()>>
        where
            S: ::wrpc_transport::Serve<Context = Option<::wasmcloud_provider_sdk::Context>>
                + Send
                + 'static,
        {
            use ::anyhow::Context as _;
            let provider = {
                let ($host_data, $connection) = (&host_data, &connection);
                $provider
            };
            // The links first, so that no call comes before the provider knows its links.
            let mut tasks = $crate::serve_in_host(
                provider.clone(),
                host_data.link_definitions,
                connection.clone(),
                commands,
                quit,
            )
            .await;
            let over_nats = connection
                .get_wrpc_client(connection.provider_key())
                .await
                .context("failed to create the wRPC client")?;
            for invocations in [
                $serve(&exports, provider.clone()).await?,
                $serve(&over_nats, provider).await?,
            ] {
                tasks.spawn(async move {
                    $crate::serve_invocations(invocations, ::std::future::pending()).await;
                });
            }
            ::anyhow::Ok(tasks)
        }
    };
}

/// Serves `provider` inside the host's process, as [`define_run!`]'s `run` serves a provider
/// process: it takes the links the host knew at its start (`start_up_links`), is told it has them,
/// keeps its links in step with the lattice, and follows the SDK's commands (links put and
/// deleted, shutdown) until the host stops it. Every task is in the returned set, which the host
/// aborts when it stops the provider.
pub async fn serve_in_host<P: links::ServesLinks>(
    provider: P,
    start_up_links: Vec<wasmcloud_provider_sdk::core::InterfaceLinkDefinition>,
    connection: wasmcloud_provider_sdk::ProviderConnection,
    commands: wasmcloud_provider_sdk::provider::ProviderCommandReceivers,
    quit: tokio::sync::broadcast::Sender<()>,
) -> tokio::task::JoinSet<()> {
    for link in start_up_links {
        if let Err(e) = wasmcloud_provider_sdk::provider::receive_link_for_provider(
            &provider,
            &connection,
            link,
        )
        .await
        {
            tracing::error!("failed to take a link at the provider's start: {e}");
        }
    }
    links::ServesLinks::start_up_links_taken(&provider);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(links::keep_links_in_step(
        provider.clone(),
        connection.clone(),
    ));
    let quit_rx = quit.subscribe();
    tasks.spawn(async move {
        wasmcloud_provider_sdk::provider::handle_provider_commands(
            provider,
            &connection,
            quit_rx,
            quit,
            commands,
        )
        .await
    });
    tasks
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
