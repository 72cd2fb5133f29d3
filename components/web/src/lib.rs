//! web as a wasmCloud component: the console, one self-contained page, at `/`, and the API's
//! contract at `/openapi.json`. Both are built into the component (build.rs), so the lattice
//! serves them with nothing fetched from anywhere; the page talks to the API on the same origin.

use orders_domain::api::RequestError;
use orders_domain::service::{Handled, Method, Reply, Request};

const CONSOLE: &str = include_str!(concat!(env!("OUT_DIR"), "/console.html"));
/// Allows exactly the page's own style and script, and requests to its own origin.
const CONSOLE_POLICY: &str = include_str!(concat!(env!("OUT_DIR"), "/console.csp"));
const OPENAPI: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

orders_component_kit::export_http_routes!(WebComponent, route);

fn route(request: &Request) -> Handled {
    match request.path.as_str() {
        "/" => {
            request.require(Method::GET)?;
            Ok(Reply::document("text/html; charset=utf-8", CONSOLE)
                .with_header("content-security-policy", CONSOLE_POLICY)
                .with_header("referrer-policy", "no-referrer"))
        }
        "/openapi.json" => {
            request.require(Method::GET)?;
            Ok(Reply::document("application/json", OPENAPI))
        }
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}
