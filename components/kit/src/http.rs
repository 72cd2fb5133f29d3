//! HTTP in, JSON out (and the web component's documents). One component serves several exact paths
//! (the HTTP server provider routes by path); [`serve`] reads the request and turns any error into
//! the JSON error body.

use orders_domain::api::{RequestError, MAX_BODY_BYTES};
use orders_domain::service::{Handled, Reply, Request};
use std::io::Read as _;
use wasmcloud_component::http::{IncomingRequest, Response};

/// Declares `$component` and exports it as the component's `wasi:http` handler: every request is
/// read whole and answered by `$route` through [`serve`].
#[macro_export]
macro_rules! export_http_routes {
    ($component:ident, $route:path) => {
        struct $component;

        ::wasmcloud_component::http::export!($component);

        impl ::wasmcloud_component::http::Server for $component {
            fn handle(
                request: ::wasmcloud_component::http::IncomingRequest,
            ) -> ::wasmcloud_component::http::Result<
                ::wasmcloud_component::http::Response<
                    impl ::wasmcloud_component::http::OutgoingBody,
                >,
            > {
                Ok($crate::http::serve(request, $route))
            }
        }
    };
}

/// Reads the request (bounded), runs `route` on it, and writes the JSON response.
pub fn serve(
    request: IncomingRequest,
    route: impl FnOnce(&Request) -> Handled,
) -> Response<Vec<u8>> {
    let reply = match read(request) {
        Ok(request) => orders_domain::service::answer(&request, route),
        Err(error) => Reply::error(&error),
    };
    reply.into_response()
}

fn read(request: IncomingRequest) -> Result<Request, RequestError> {
    let (parts, body) = request.into_parts();
    let mut bytes = Vec::new();
    // One byte past the limit tells "too large" apart from "exactly at the limit".
    body.take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RequestError::MalformedJson(format!("could not read the body: {e}")))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::BodyTooLarge);
    }
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body: bytes,
    })
}
