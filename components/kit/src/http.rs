//! HTTP in, JSON out (and the web component's documents). One component serves several exact paths
//! (the HTTP server provider routes by path); [`serve`] reads the request and turns any error into
//! the JSON error body.

use orders_common::api::{ApiError, MalformedIdempotencyKey, RequestError, MAX_BODY_BYTES};
use orders_common::auth::{AuthError, Authenticator, Caller};
use serde::Serialize;
use std::io::Read as _;
use wasmcloud_component::http::{
    self as wasi_http, HeaderValue, IncomingRequest, Method, Response, StatusCode,
};

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

/// A request read into memory.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: wasi_http::HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// Who sent the request, from its `Authorization` header.
    pub fn caller(&self, auth: &Authenticator) -> Result<Caller, AuthError> {
        let header = self
            .headers
            .get("authorization")
            .map(|value| value.to_str().map_err(|_| AuthError::MalformedCredentials))
            .transpose()?;
        auth.caller(header)
    }

    /// [`Self::caller`], refusing a user key that is no longer its user's current one, as billing
    /// last announced it (order and notify; billing checks keys in the account it reads anyway).
    /// One read of the `KEYS` stream for a user key, none for the admin token.
    pub fn current_caller(&self, auth: &Authenticator) -> Result<Caller, AuthError> {
        let caller = self.caller(auth)?;
        caller.require_current(&crate::ports::AnnouncedKeys)?;
        Ok(caller)
    }

    /// The request's `Idempotency-Key` header, if it has one; its value is checked by
    /// [`orders_common::api::IdempotencyKey::parse`].
    pub fn idempotency_key(&self) -> Result<Option<&str>, MalformedIdempotencyKey> {
        self.headers
            .get("idempotency-key")
            .map(|value| value.to_str().map_err(|_| MalformedIdempotencyKey))
            .transpose()
    }

    /// Refuses every method but `allowed` (405).
    pub fn require(&self, allowed: Method) -> Result<(), RequestError> {
        if self.method == allowed {
            Ok(())
        } else {
            Err(RequestError::MethodNotAllowed {
                method: self.method.to_string(),
                allowed: if allowed == Method::GET {
                    "GET"
                } else {
                    "POST"
                },
            })
        }
    }
}

/// A reply: a status, a body and its content type (JSON unless said otherwise), and any further
/// headers.
pub struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &impl Serialize) -> Self {
        let body = serde_json::to_vec(body).expect("our response types always serialise");
        Self {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A document built into the component, answered 200.
    pub fn document(content_type: &'static str, body: &'static str) -> Self {
        Self {
            status: 200,
            content_type,
            headers: vec![("x-content-type-options", "nosniff".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn error(error: &dyn ApiError) -> Self {
        Self {
            headers: error
                .headers()
                .into_iter()
                .map(|(name, value)| (name, value.to_string()))
                .collect(),
            ..Self::json(error.status(), &error.to_body())
        }
    }

    /// What a component answers on `/`: its name and endpoints. No HTTP route leads there; it is
    /// for `wash call <component> wasi:http/incoming-handler.handle`, which always asks for `/`.
    pub fn index(service: &str, endpoints: &[&str]) -> Self {
        Self::json(
            200,
            &serde_json::json!({ "status": true, "service": service, "endpoints": endpoints }),
        )
    }
}

/// A handler's outcome: `Err` carries the error reply, so handlers use `?` on any [`ApiError`].
pub type Handled = Result<Reply, Reply>;

impl<E: ApiError> From<E> for Reply {
    fn from(error: E) -> Self {
        Self::error(&error)
    }
}

/// Reads the request (bounded), runs `route` on it, and writes the JSON response.
pub fn serve(
    request: IncomingRequest,
    route: impl FnOnce(&Request) -> Handled,
) -> Response<Vec<u8>> {
    let reply = match read(request) {
        Ok(request) => route(&request).unwrap_or_else(|error_reply| error_reply),
        Err(error) => Reply::error(&error),
    };
    let mut response = Response::new(reply.body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(reply.content_type));
    for (name, value) in reply.headers {
        // Our values are ASCII we wrote ourselves (an order id is a UUID); anything else is dropped.
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    if reply.status == 401 {
        // RFC 9110: a 401 names the scheme that would be accepted.
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"orders\""),
        );
    }
    response
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
