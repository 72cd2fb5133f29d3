//! `orders-telemetry`: an OpenTelemetry trace receiver for a lattice with no collector around.
//!
//! The host and our providers export their spans over OTLP/HTTP (protobuf) to `POST /v1/traces`,
//! the standard path, so any real collector (OpenTelemetry Collector, Jaeger, Tempo) can take its
//! place by pointing `OTEL_EXPORTER_OTLP_ENDPOINT` at it. This one keeps the most recent traces in
//! memory and answers, on 127.0.0.1 only:
//! - `GET /traces?order_id=<id>`: the traces in which the order appears (JSON; `&format=tree` for
//!   an indented tree a person reads);
//! - `GET /traces/<trace id>`, `GET /traces` (the newest 20);
//! - `GET /metrics`: Prometheus's text format (see [`metrics`]);
//! - `GET /healthz`.

mod metrics;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use metrics::Metrics;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use orders_wire::proto::{PaymentOutcome, PaymentResult};
use prost::Message as _;
use store::{render_tree, TraceStore};

#[derive(Debug, Parser)]
#[command(name = "orders-telemetry", version, about)]
struct Args {
    /// Where to listen (OTLP/HTTP's usual port is 4318).
    #[arg(
        long,
        env = "ORDERS_TELEMETRY_LISTEN",
        default_value = "127.0.0.1:4318"
    )]
    listen: SocketAddr,
    /// How many traces to keep; the oldest is forgotten first.
    #[arg(long, env = "ORDERS_TELEMETRY_TRACES", default_value_t = 5000)]
    traces: usize,
    /// NATS's monitoring endpoint, read at each scrape of /metrics for streams and consumer lag.
    #[arg(long, env = "ORDERS_TELEMETRY_NATS_MONITOR")]
    nats_monitor: Option<String>,
    /// The lattice's NATS (one server, or a cluster's comma-separated), to count the orders
    /// billing settles (payments.settled).
    #[arg(long, env = "ORDERS_TELEMETRY_NATS", requires = "creds")]
    nats: Option<String>,
    /// A creds file allowed to subscribe to payments.settled (the admin identity's).
    #[arg(long, env = "ORDERS_TELEMETRY_CREDS")]
    creds: Option<std::path::PathBuf>,
}

/// What the receiver keeps, shared by its connections.
struct State {
    traces: Mutex<TraceStore>,
    metrics: Mutex<Metrics>,
    nats_monitor: Option<String>,
    http: reqwest::Client,
}

/// The largest export accepted: the host's batches are far smaller.
const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;

type Answer = Response<Full<Bytes>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = Arc::new(State {
        traces: Mutex::new(TraceStore::new(args.traces)),
        metrics: Mutex::new(Metrics::default()),
        nats_monitor: args.nats_monitor.clone(),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()?,
    });
    if let (Some(nats), Some(creds)) = (&args.nats, &args.creds) {
        let client = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .with_context(|| format!("cannot read {}", creds.display()))?
            .name("orders-telemetry")
            .retry_on_initial_connect()
            .connect(orders_wire::broker::servers(nats))
            .await?;
        tokio::spawn(count_settled_orders(client, Arc::clone(&state)));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "orders-telemetry: OTLP/HTTP traces on http://{}/v1/traces",
        args.listen
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(answer(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Counts each order billing announces as settled, by outcome (`paid`, `insufficient_funds`, ...).
async fn count_settled_orders(client: async_nats::Client, state: Arc<State>) {
    use futures::StreamExt as _;
    let Ok(mut results) = client
        .subscribe(orders_wire::subjects::PAYMENT_SETTLED)
        .await
    else {
        eprintln!("orders-telemetry: cannot subscribe to payment results; orders_settled_total stays empty");
        return;
    };
    while let Some(message) = results.next().await {
        let Ok(result) = PaymentResult::decode(message.payload) else {
            continue;
        };
        let outcome = PaymentOutcome::try_from(result.outcome)
            .map(|o| {
                o.as_str_name()
                    .trim_start_matches("PAYMENT_OUTCOME_")
                    .to_lowercase()
            })
            .unwrap_or_else(|_| "unknown".into());
        state
            .metrics
            .lock()
            .unwrap()
            .settled(&result.order_id, &outcome);
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Answer {
    let store = &state.traces;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (&method, path.as_str()) {
        (&Method::POST, "/v1/traces") => {
            let body = match Limited::new(request.into_body(), MAX_EXPORT_BYTES).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
            };
            match ExportTraceServiceRequest::decode(body) {
                Ok(export) => {
                    let spans = store.lock().unwrap().ingest(export);
                    let mut metrics = state.metrics.lock().unwrap();
                    spans.iter().for_each(|span| metrics.observe(span));
                    drop(metrics);
                    Response::builder()
                        .header("content-type", "application/x-protobuf")
                        .body(Full::new(ExportTraceServiceResponse::default().encode_to_vec().into()))
                        .unwrap()
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("not an OTLP trace export: {e}\n")),
            }
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/metrics") => {
            let jsz = match &state.nats_monitor {
                Some(monitor) => read_jsz(&state.http, monitor).await,
                None => None,
            };
            let kept = store.lock().unwrap().len();
            let body = state.metrics.lock().unwrap().render(kept, jsz.as_ref());
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(body.into()))
                .unwrap()
        }
        (&Method::GET, "/traces") => {
            let store = store.lock().unwrap();
            let traces = match param("order_id") {
                Some(order_id) if !order_id.is_empty() => store.find(&order_id),
                _ => store.recent(20),
            };
            if param("format").as_deref() == Some("tree") {
                text(StatusCode::OK, traces.iter().map(render_tree).collect::<Vec<_>>().join("\n"))
            } else {
                json(StatusCode::OK, &traces)
            }
        }
        (&Method::GET, path) if path.starts_with("/traces/") => {
            match store.lock().unwrap().trace(&path["/traces/".len()..]) {
                Some(trace) if param("format").as_deref() == Some("tree") => {
                    text(StatusCode::OK, render_tree(&trace))
                }
                Some(trace) => json(StatusCode::OK, &trace),
                None => text(StatusCode::NOT_FOUND, "no such trace (forgotten or never seen)\n".into()),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "POST /v1/traces, GET /traces?order_id=, GET /traces/<id>, GET /metrics, GET /healthz\n".into()),
    }
}

/// NATS's JetStream report with every stream and consumer; `None` while NATS does not answer.
async fn read_jsz(http: &reqwest::Client, monitor: &str) -> Option<serde_json::Value> {
    let url = format!("{monitor}/jsz?accounts=true&streams=true&consumers=true&config=true");
    http.get(url).send().await.ok()?.json().await.ok()
}

fn text(status: StatusCode, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .unwrap()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(serde_json::to_vec(value).unwrap().into()))
        .unwrap()
}
