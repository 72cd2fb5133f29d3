//! Our HTTP server capability provider for wasmCloud 1.x (`wasi:http/incoming-handler` toward the
//! components), in path mode: one listener, and each link from the provider to a component names
//! the exact path it serves (link config `path`).
//!
//! It stands where the upstream provider (`wasmcloud-provider-http-server`) stood, for what a public
//! endpoint in front of a money-moving service needs and the upstream one lacks:
//! - a request takes one of a component's `instances` places only once it is complete: the body
//!   is read (bounded, within a deadline: 413, 408) before the component is invoked, headers must
//!   arrive within a deadline too, and one IP address holds a bounded number of connections, so
//!   idle or slow clients cannot stall a service;
//! - rate limits per client address and per credential (429 with `Retry-After`);
//! - every answer of its own is the API's JSON error (`orders_conventions::http`), including a component
//!   that cannot be invoked (503 `service_unavailable`, never the transport's internals);
//! - a call runs in its own task, so a client that goes away never leaves a call half-sent on the
//!   host (which would hold a component place until the host's execution timeout);
//! - its links are kept in step with the lattice like our other providers' (a link the host's one
//!   fire-and-forget publication did not deliver is taken from the lattice).
//!
//! It runs in the host's process (our host serves `wasmcloud+builtin://http-server` with it,
//! [`serve_in_host`]), where a request reaches its component as a function call, or as a provider
//! process of its own ([`run`]), where every request is a wRPC call over NATS. The difference is
//! one trait, [`Components`].
//!
//! Settings: [`config`].

pub mod config;
mod limits;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use orders_conventions::http::{ApiError, RequestError};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument as _};
use wasmcloud_provider_sdk::core::HostData;
use wasmcloud_provider_sdk::provider::{ProviderCommandReceivers, WrpcClient};
use wasmcloud_provider_sdk::{
    get_connection, LinkConfig, LinkDeleteInfo, Provider, ProviderConnection,
};
use wrpc_interface_http::InvokeIncomingHandler as _;

use config::ServerConfig;
use limits::{Admitted, Buckets, Connections};
use orders_provider_support::links::{End, ServesLinks};
use orders_provider_support::LinkKey;

orders_provider_support::define_run!(
    /// The provider process: starts the listener and serves until the host stops it, calling
    /// components over wRPC.
    "http-server-provider",
    |host_data| {
        let config = ServerConfig::from_map(&host_data.config)?;
        HttpServer::start(config, Arc::new(OverWrpc::of_this_process())).await?
    }
);

/// Serves in the host's process, with the host data and the SDK's connection and commands the host
/// gives an embedded provider, calling components through `components`. The tasks end when the
/// host aborts them.
pub async fn serve_in_host(
    host_data: HostData,
    connection: ProviderConnection,
    commands: ProviderCommandReceivers,
    quit: tokio::sync::broadcast::Sender<()>,
    components: Arc<dyn Components>,
) -> anyhow::Result<tokio::task::JoinSet<()>> {
    let config = ServerConfig::from_map(&host_data.config)?;
    let provider = HttpServer::start(config, components).await?;
    Ok(orders_provider_support::serve_in_host(
        provider,
        host_data.link_definitions,
        connection,
        commands,
        quit,
    )
    .await)
}

/// How the server reaches the components its paths are linked to.
pub trait Components: Send + Sync + 'static {
    /// `id`, ready to be called: asked once, when a link to it is put.
    fn reach(&self, id: &str) -> BoxFuture<'_, anyhow::Result<Arc<dyn Component>>>;
}

/// A component's `wasi:http/incoming-handler`.
pub trait Component: Send + Sync + 'static {
    /// Calls the handler with a complete request and reads its whole answer, at most
    /// [`MAX_RESPONSE_BYTES`]. Called inside the request's span: the call continues its trace.
    fn handle(
        &self,
        request: hyper::Request<Bytes>,
    ) -> BoxFuture<'static, anyhow::Result<hyper::Response<Bytes>>>;
}

/// Components on any host of the lattice, each call a wRPC call over NATS.
pub struct OverWrpc {
    /// The connection the calls go through; `None` in the provider process, whose connection the
    /// SDK sets up only once the provider (and so this) exists, and keeps for the process.
    connection: Option<ProviderConnection>,
}

impl OverWrpc {
    /// Through `connection` (the one the host gives a provider it serves in its process).
    pub fn through(connection: ProviderConnection) -> Self {
        Self {
            connection: Some(connection),
        }
    }

    /// Through the provider process's own connection.
    fn of_this_process() -> Self {
        Self { connection: None }
    }
}

impl Components for OverWrpc {
    fn reach(&self, id: &str) -> BoxFuture<'_, anyhow::Result<Arc<dyn Component>>> {
        let id = id.to_string();
        Box::pin(async move {
            let connection = match &self.connection {
                Some(connection) => connection,
                None => get_connection(),
            };
            let wrpc = connection
                .get_wrpc_client(&id)
                .await
                .context("failed to create the wRPC client")?;
            Ok(Arc::new(WrpcComponent(Arc::new(wrpc))) as Arc<dyn Component>)
        })
    }
}

struct WrpcComponent(Arc<WrpcClient>);

impl Component for WrpcComponent {
    fn handle(
        &self,
        request: hyper::Request<Bytes>,
    ) -> BoxFuture<'static, anyhow::Result<hyper::Response<Bytes>>> {
        // Taken here, inside the request's span: the component's invocation becomes its child.
        let trace_context = orders_provider_support::trace_headers();
        let wrpc = Arc::clone(&self.0);
        Box::pin(async move {
            let (answer, body_errors, io) = wrpc
                .invoke_handle_http(Some(trace_context), request.map(Full::new))
                .await?;
            if let Some(io) = io {
                tokio::spawn(io);
            }
            let answer =
                answer.map_err(|code| anyhow::anyhow!("the component failed: {code:?}"))?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("its answer could not be read: {e}"))?
                .to_bytes();
            // Kept until the answer is read: it reports failures to send the request body.
            drop(body_errors);
            Ok(hyper::Response::from_parts(parts, body))
        })
    }
}

/// The largest answer a component may give; ours are small JSON documents.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How often buckets of clients that went quiet are dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// The component serving each path, and which path each link registered.
#[derive(Default)]
struct Routes {
    by_path: HashMap<String, (String, Arc<dyn Component>)>,
    by_link: HashMap<LinkKey, String>,
}

/// What every request needs.
struct Shared {
    config: ServerConfig,
    /// Changes (or closes) when the server stops: every open connection ends then.
    stopped: tokio::sync::watch::Receiver<()>,
    routes: RwLock<Routes>,
    per_client: Buckets<IpAddr>,
    per_credential: Buckets<[u8; 32]>,
}

#[derive(Clone)]
pub struct HttpServer {
    shared: Arc<Shared>,
    components: Arc<dyn Components>,
    tasks: Arc<Tasks>,
    /// Set once the start-up links are routed: connections are accepted from then on.
    routed: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The listener's tasks, ended with the provider: when it is shut down, or when the host drops the
/// last of its handles (in the host's process nothing else would end them). Dropping `stop` ends
/// every open connection too.
struct Tasks {
    running: [JoinHandle<()>; 2],
    stop: tokio::sync::watch::Sender<()>,
}

impl Tasks {
    fn end(&self) {
        for task in &self.running {
            task.abort();
        }
        self.stop.send_replace(());
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.end();
    }
}

impl HttpServer {
    /// Binds the listener at once (a port in use fails the start), but accepts connections only
    /// once the host's start-up links are routed ([`ServesLinks::start_up_links_taken`]): until
    /// then every path would be 404. Clients that connect meanwhile wait in the listen queue.
    async fn start(config: ServerConfig, components: Arc<dyn Components>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.address)
            .await
            .with_context(|| format!("cannot listen on {}", config.address))?;
        let (stop, stopped) = tokio::sync::watch::channel(());
        let shared = Arc::new(Shared {
            stopped,
            per_client: Buckets::new(config.per_client),
            per_credential: Buckets::new(config.per_credential),
            routes: RwLock::default(),
            config,
        });
        let (routed, start_up_links_routed) = tokio::sync::watch::channel(false);
        let accepting = tokio::spawn({
            let shared = Arc::clone(&shared);
            let mut start_up_links_routed = start_up_links_routed;
            async move {
                if start_up_links_routed
                    .wait_for(|routed| *routed)
                    .await
                    .is_ok()
                {
                    info!(address = %shared.config.address, "listening (path mode)");
                    accept(listener, shared).await;
                }
            }
        });
        let forgetting = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                loop {
                    tokio::time::sleep(FORGET_IDLE_EVERY).await;
                    shared.per_client.forget_idle();
                    shared.per_credential.forget_idle();
                }
            }
        });
        Ok(Self {
            shared,
            components,
            tasks: Arc::new(Tasks {
                running: [accepting, forgetting],
                stop,
            }),
            routed: Arc::new(routed),
        })
    }
}

impl HttpServer {
    /// Routes the `path` of a link's config to `component_id`.
    async fn serve_path(
        &self,
        component_id: &str,
        link_name: &str,
        config: &HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let Some(path) = config.get("path") else {
            bail!("the link to {component_id} needs `path` in its config");
        };
        let component = self.components.reach(component_id).await?;
        let key = (component_id.to_string(), link_name.to_string());
        let mut routes = self.shared.routes.write().await;
        match routes.by_path.get(path) {
            Some((serving, _)) if serving != component_id => {
                bail!("{path} is served by {serving} already")
            }
            _ => {}
        }
        if let Some(previous) = routes.by_link.insert(key, path.clone()) {
            routes.by_path.remove(&previous);
        }
        routes
            .by_path
            .insert(path.clone(), (component_id.to_string(), component));
        info!(%path, component = component_id, link = link_name, "serving path");
        Ok(())
    }
}

impl Provider for HttpServer {
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        self.serve_path(link.target_id, link.link_name, link.config)
            .await
    }

    async fn delete_link_as_source(&self, link: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = orders_provider_support::key_of_target(&link);
        let mut routes = self.shared.routes.write().await;
        if let Some(path) = routes.by_link.remove(&key) {
            routes.by_path.remove(&path);
            info!(%path, component = key.0, "no longer serving path");
        }
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        self.tasks.end();
        Ok(())
    }
}

impl ServesLinks for HttpServer {
    const ENDS: &'static [End] = &[End::Source];

    fn start_up_links_taken(&self) {
        self.routed.send_replace(true);
    }

    async fn served_links(&self, _end: End) -> HashSet<LinkKey> {
        self.shared
            .routes
            .read()
            .await
            .by_link
            .keys()
            .cloned()
            .collect()
    }
}

/// Accepts connections for as long as the provider runs, each client within its share.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let connections = Connections::new(shared.config.max_connections_per_client);
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or the like: pause rather than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = connections.admit(client.ip()) else {
            debug!(%client, "connection refused: the client holds its share of connections");
            continue;
        };
        tokio::spawn(serve_connection(stream, client, place, Arc::clone(&shared)));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    _place: Admitted,
    shared: Arc<Shared>,
) {
    let header_timeout = shared.config.header_timeout;
    let mut stopped = shared.stopped.clone();
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, client.ip(), request).await) }
    });
    let serving = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        served = serving => if let Err(e) = served {
            debug!(%client, "connection ended: {e}");
        },
        _ = stopped.changed() => debug!(%client, "connection closed: the server stopped"),
    }
}

type Response = hyper::Response<Full<Bytes>>;

/// One span per request (OpenTelemetry's HTTP names), continuing the client's trace when it sent a
/// W3C `traceparent`; its status and `Location` (where an accepted order's status is) are
/// recorded once answered, so an order's trace can be found by its id.
async fn handle(shared: &Shared, client: IpAddr, request: hyper::Request<Incoming>) -> Response {
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        http.response.header.location = tracing::field::Empty,
    );
    orders_provider_support::continue_trace(&span, |name| {
        request.headers().get(name).and_then(|v| v.to_str().ok())
    });
    let response = route(shared, client, request)
        .instrument(span.clone())
        .await
        .unwrap_or_else(|error| error_response(&error));
    span.record("http.response.status_code", response.status().as_u16());
    if let Some(location) = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        span.record("http.response.header.location", location);
    }
    response
}

/// Limits first (cheapest refusals first), then the whole body, then the component.
async fn route(
    shared: &Shared,
    client: IpAddr,
    request: hyper::Request<Incoming>,
) -> Result<Response, RequestError> {
    shared
        .per_client
        .take(&client)
        .map_err(|wait| rate_limited("from this address", wait))?;
    let path = request.uri().path().to_string();
    let (component_id, component) = shared
        .routes
        .read()
        .await
        .by_path
        .get(&path)
        .cloned()
        .ok_or_else(|| RequestError::UnknownPath(path.clone()))?;
    if let Some(credential) = request.headers().get(hyper::header::AUTHORIZATION) {
        let credential: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        shared
            .per_credential
            .take(&credential)
            .map_err(|wait| rate_limited("with this credential", wait))?;
    }
    let (mut parts, body) = request.into_parts();
    let body = read_body(body, &shared.config).await?;
    parts.uri = absolute_uri(&parts)?;
    let request = hyper::Request::from_parts(parts, body);
    invoke(
        &component_id,
        component,
        request,
        shared.config.invoke_timeout,
    )
    .await
    .map_err(|e| {
        warn!(component = %component_id, %path, "the component did not answer: {e:#}");
        RequestError::ServiceUnavailable(path)
    })
}

fn rate_limited(from: &'static str, wait: Duration) -> RequestError {
    RequestError::RateLimited {
        from,
        retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// The whole body, at most `max_body_bytes`, within `body_timeout`.
async fn read_body(body: Incoming, config: &ServerConfig) -> Result<Bytes, RequestError> {
    let reading = Limited::new(body, config.max_body_bytes).collect();
    match tokio::time::timeout(config.body_timeout, reading).await {
        Err(_) => Err(RequestError::Timeout {
            seconds: config.body_timeout.as_secs().max(1),
        }),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(RequestError::BodyTooLarge)
        }
        Ok(Err(e)) => Err(RequestError::MalformedJson(format!(
            "could not read the body: {e}"
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// `wasi:http` requests carry scheme and authority; the listener speaks plain HTTP.
fn absolute_uri(parts: &hyper::http::request::Parts) -> Result<hyper::Uri, RequestError> {
    let mut uri = hyper::Uri::builder().scheme("http");
    if let Some(host) = parts.headers.get(hyper::header::HOST) {
        let authority = host
            .to_str()
            .ok()
            .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok());
        if let Some(authority) = authority {
            uri = uri.authority(authority);
        }
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    uri.path_and_query(path_and_query)
        .build()
        .map_err(|e| RequestError::MalformedJson(format!("unusable request target: {e}")))
}

/// Calls the component and reads its whole answer. The call runs in its own task: should the
/// client go away or the deadline pass, the call still completes, so the host never holds a
/// component place for a call left half-sent.
async fn invoke(
    component_id: &str,
    component: Arc<dyn Component>,
    request: hyper::Request<Bytes>,
    deadline: Duration,
) -> anyhow::Result<Response> {
    let call = tokio::spawn(component.handle(request));
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(answered)) => answered.map(|answer| answer.map(Full::new)),
        Ok(Err(panicked)) => Err(anyhow::anyhow!(
            "the call to {component_id} failed: {panicked}"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "no answer from {component_id} within {deadline:?}"
        )),
    }
}

/// The API's JSON error body with its status (and `Retry-After` for a 429).
fn error_response(error: &RequestError) -> Response {
    let body = serde_json::to_vec(&error.to_body()).expect("the error body always serialises");
    let mut response = hyper::Response::builder()
        .status(error.status())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let RequestError::RateLimited { retry_after_s, .. } = error {
        response = response.header(hyper::header::RETRY_AFTER, retry_after_s.to_string());
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a status from our table and fixed headers make a valid response")
}

#[cfg(test)]
mod tests;
