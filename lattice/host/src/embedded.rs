//! The capabilities this host serves in its own process:
//! - `wasmcloud+builtin://http-server` is our HTTP server (providers/http-server), whose requests
//!   reach a component running on this host as a function call, with no wRPC and no NATS between
//!   them. A component this host does not run is still called over the lattice (wRPC), as the
//!   provider process would.
//! - `wasmcloud+builtin://keyvalue-jetstream` and `wasmcloud+builtin://messaging-jetstream` are
//!   our key-value and messaging providers (providers/keyvalue-jetstream, providers/messaging-
//!   jetstream): the calls of this host's components reach them in process, over pipes instead of
//!   NATS; those of other hosts' components over NATS, as the provider processes. The messaging
//!   provider's batches reach a component of this host the same way, over pipes, and a component
//!   of another host over wRPC.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use http_server_provider::{Component, Components, OverWrpc};
use messaging_jetstream_provider::{BatchHandler, ReachComponent};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use wasmcloud_core::HostData;
use wasmcloud_host::wasmbus::{
    EmbeddedProvider, EmbeddedProviders, EmbeddedStart, InProcessExports, InProcessFirst,
    LocalComponents,
};
use wasmcloud_provider_sdk::provider::ProviderCommandReceivers;
use wasmcloud_provider_sdk::ProviderConnection;

/// Every provider this host serves in its process, by builtin name.
pub fn providers() -> EmbeddedProviders {
    EmbeddedProviders::default()
        .with("http-server", HttpServer)
        .with(
            "keyvalue-jetstream",
            ServesInProcess(keyvalue_jetstream_provider::serve_in_host::<InProcessExports>),
        )
        .with(
            "messaging-jetstream",
            ServesInProcess(
                |host_data, connection, commands, quit, exports: InProcessExports| {
                    messaging_jetstream_provider::serve_in_host(
                        host_data,
                        connection,
                        commands,
                        quit,
                        exports,
                        components_here_first(),
                    )
                },
            ),
        )
}

/// The messaging provider's batches reach a component running on this host in process; one
/// elsewhere over wRPC.
fn components_here_first() -> ReachComponent {
    Arc::new(|over_the_lattice, component| {
        Arc::new(InProcessFirst::new(component, over_the_lattice)) as Arc<dyn BatchHandler>
    })
}

type Started = BoxFuture<'static, anyhow::Result<JoinSet<()>>>;

/// A provider whose exports this host's components call in process: its crate's `serve_in_host`.
struct ServesInProcess<F>(F);

impl<F, Serving> EmbeddedProvider for ServesInProcess<F>
where
    F: Fn(
            HostData,
            ProviderConnection,
            ProviderCommandReceivers,
            broadcast::Sender<()>,
            InProcessExports,
        ) -> Serving
        + Send
        + Sync
        + 'static,
    Serving: Future<Output = anyhow::Result<JoinSet<()>>> + Send + 'static,
{
    fn start(&self, start: EmbeddedStart) -> Started {
        let exports = start.exports_in_process();
        Box::pin((self.0)(
            start.host_data,
            start.connection,
            start.commands,
            start.quit,
            exports,
        ))
    }
}

struct HttpServer;

impl EmbeddedProvider for HttpServer {
    fn start(&self, start: EmbeddedStart) -> Started {
        let components = Arc::new(HereFirst {
            here: start.components,
            over_the_lattice: OverWrpc::through(start.connection.clone()),
        });
        Box::pin(http_server_provider::serve_in_host(
            start.host_data,
            start.connection,
            start.commands,
            start.quit,
            components,
        ))
    }
}

/// A component on this host is called in process; elsewhere, over the lattice.
struct HereFirst {
    here: LocalComponents,
    over_the_lattice: OverWrpc,
}

impl Components for HereFirst {
    fn reach(&self, id: &str) -> BoxFuture<'_, anyhow::Result<Arc<dyn Component>>> {
        let id = id.to_string();
        Box::pin(async move {
            Ok(Arc::new(HereOrThere {
                here: self.here.clone(),
                there: self.over_the_lattice.reach(&id).await?,
                id,
            }) as Arc<dyn Component>)
        })
    }
}

/// One component, looked up on this host at every call: wadm may place it here or move it away
/// at any time.
struct HereOrThere {
    id: String,
    here: LocalComponents,
    there: Arc<dyn Component>,
}

impl Component for HereOrThere {
    fn handle(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> BoxFuture<'static, anyhow::Result<http::Response<bytes::Bytes>>> {
        let (id, here, there) = (self.id.clone(), self.here.clone(), Arc::clone(&self.there));
        // Called inside the request's span: the call runs in it, so the component's invocation
        // continues the request's trace either way.
        let span = tracing::Span::current();
        Box::pin(
            async move {
                match here.get(&id).await {
                    Some(component) => {
                        component
                            .handle_http(request, http_server_provider::MAX_RESPONSE_BYTES)
                            .await
                    }
                    None => there.handle(request).await,
                }
            }
            .instrument(span),
        )
    }
}
