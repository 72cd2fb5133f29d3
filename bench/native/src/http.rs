//! The HTTP API on hyper: each request read whole (at most `MAX_BODY_BYTES`), answered by the
//! service's route on a blocking thread, as JSON. `GET /Hello` answers as the lattice's
//! hello-world component does: the floor of this build, as that is the lattice's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use orders_domain::api::{RequestError, MAX_BODY_BYTES};
use orders_domain::service::{Handled, Reply, Request};

use crate::NativeHost;

/// A service's routes.
pub type Route = fn(&Request, &NativeHost) -> Handled;

pub async fn serve(listen: SocketAddr, host: Arc<NativeHost>, route: Route) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("{}: listening on http://{listen}", host.environment.name);
    loop {
        let (connection, _) = listener.accept().await?;
        let _ = connection.set_nodelay(true);
        let host = Arc::clone(&host);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, Arc::clone(&host), route));
            // A client that goes away mid-request is its own business.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(connection), service)
                .await;
        });
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    host: Arc<NativeHost>,
    route: Route,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/Hello" {
        return Ok(hyper::Response::new(Full::new(Bytes::from_static(
            b"Hello from orders-lattice\n",
        ))));
    }
    let (parts, body) = request.into_parts();
    let reply = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Err(_) => Reply::error(&RequestError::BodyTooLarge),
        Ok(body) => {
            let request = Request {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                headers: parts.headers,
                body: body.to_bytes().to_vec(),
            };
            tokio::task::spawn_blocking(move || {
                orders_domain::service::answer(&request, |request| route(request, &host))
            })
            .await
            .unwrap_or_else(|panicked| {
                Reply::error(&RequestError::ServiceUnavailable(format!(
                    "the service failed: {panicked}"
                )))
            })
        }
    };
    Ok(reply
        .into_response()
        .map(|body| Full::new(Bytes::from(body))))
}
