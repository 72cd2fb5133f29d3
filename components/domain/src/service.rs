//! A service as any host runs it: an HTTP request, read whole, answered by a [`Reply`]; a batch of
//! broker messages, each answered with the messages to publish before it is acknowledged. The
//! services' routes are written once against [`Host`]: the wasm components run them on wasmCloud
//! (`orders-component-kit`), and `make bench`'s native build (`bench/native`) runs the very same
//! routes as plain processes on async-nats, so that the comparison measures the platform only.

use serde::Serialize;

use crate::api::{ApiError, MalformedIdempotencyKey, RequestError};
use crate::auth::{AuthError, Authenticator, Caller, CurrentKeys};
use crate::ports::{CasStore, Clock, PlacedOrders, Publisher};

pub use http::{HeaderMap, Method};

/// What a service needs from whatever runs it.
pub trait Host: Environment {
    type Store: CasStore;
    /// The broker, and what its streams keep: placed orders, and each user's current key.
    type Broker: Publisher + PlacedOrders + CurrentKeys;
    type Clock: Clock;

    /// The service's key-value bucket.
    fn store(&self) -> &Self::Store;
    fn broker(&self) -> &Self::Broker;
    fn clock(&self) -> &Self::Clock;
}

/// What a host gives a service besides its ports.
pub trait Environment {
    /// The key configuration; without it every authenticated request is a 503, never an open
    /// door.
    fn authenticator(&self) -> Result<Authenticator, AuthError>;
    /// 16 bytes from a cryptographic random source.
    fn random_16(&self) -> [u8; 16];
    /// One line of the service's log.
    fn log(&self, line: &str);
}

/// Every host, made of its parts: the wasm components' (`orders-component-kit`), the native
/// build's (`bench/native`) and the unit tests' ([`crate::memory::MemoryHost`]).
#[derive(Default)]
pub struct HostParts<Store, Broker, Clock, Environment> {
    pub store: Store,
    pub broker: Broker,
    pub clock: Clock,
    pub environment: Environment,
}

impl<S, B, C, E> Host for HostParts<S, B, C, E>
where
    S: CasStore,
    B: Publisher + PlacedOrders + CurrentKeys,
    C: Clock,
    E: Environment,
{
    type Store = S;
    type Broker = B;
    type Clock = C;

    fn store(&self) -> &S {
        &self.store
    }

    fn broker(&self) -> &B {
        &self.broker
    }

    fn clock(&self) -> &C {
        &self.clock
    }
}

impl<S, B, C, E: Environment> Environment for HostParts<S, B, C, E> {
    fn authenticator(&self) -> Result<Authenticator, AuthError> {
        self.environment.authenticator()
    }

    fn random_16(&self) -> [u8; 16] {
        self.environment.random_16()
    }

    fn log(&self, line: &str) {
        self.environment.log(line)
    }
}

/// A broker message as a service receives and answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: Vec<u8>,
}

/// The answer to one delivered message: `Ok` with the messages to publish before it is
/// acknowledged, or `Err` with why it was not handled (it is delivered again).
pub type Answer = Result<Vec<Message>, String>;

/// A request read into memory.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
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

    /// [`Self::caller`] with `host`'s key configuration, refusing a user key that is no longer
    /// its user's current one, as billing last announced it on `host`'s broker (order and notify;
    /// billing checks keys in the account it reads anyway). One read of the `KEYS` stream for a
    /// user key, none for the admin token.
    pub fn current_caller(&self, host: &impl Host) -> Result<Caller, AuthError> {
        let caller = self.caller(&host.authenticator()?)?;
        caller.require_current(host.broker())?;
        Ok(caller)
    }

    /// The request's `Idempotency-Key` header, if it has one; its value is checked by
    /// [`crate::api::IdempotencyKey::parse`].
    pub fn idempotency_key(&self) -> Result<Option<&str>, MalformedIdempotencyKey> {
        self.headers
            .get("idempotency-key")
            .map(|value| value.to_str().map_err(|_| MalformedIdempotencyKey))
            .transpose()
    }

    /// The query parameter `name`, percent-decoded, if given.
    pub fn param(&self, name: &str) -> Option<String> {
        crate::api::query_param(&self.query, name)
    }

    /// The query parameter `name`; a 400 naming it when absent.
    pub fn required_param(&self, name: &'static str) -> Result<String, RequestError> {
        self.param(name).ok_or(RequestError::MissingParameter(name))
    }

    /// The page asked for by the query parameters `after` and `limit`.
    pub fn page(&self) -> Result<crate::PageRequest, crate::InvalidValue> {
        crate::PageRequest::parse(
            self.param("after").as_deref(),
            self.param("limit").as_deref(),
        )
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
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
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

    /// A document built into the service, answered 200.
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
        let mut reply = Self::json(error.status(), &error.to_body());
        reply.headers = error
            .headers()
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        if reply.status == 401 {
            // RFC 9110: a 401 names the scheme that would be accepted.
            reply
                .headers
                .push(("www-authenticate", "Bearer realm=\"orders\"".into()));
        }
        reply
    }

    /// The reply as an HTTP response.
    pub fn into_response(self) -> http::Response<Vec<u8>> {
        let mut response = http::Response::new(self.body);
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.content_type),
        );
        for (name, value) in self.headers {
            // Our values are ASCII we wrote ourselves (an order id is a UUID); anything else is
            // dropped.
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }

    /// What a service answers on a path none of its routes takes: on `/` its name and
    /// endpoints, elsewhere 404. No HTTP route leads to `/` on the lattice; it is for
    /// `wash call <component> wasi:http/incoming-handler.handle`, which always asks for `/`.
    pub fn unrouted(service: &str, endpoints: &[&str], path: &str) -> Handled {
        match path {
            "/" => Ok(Self::json(
                200,
                &serde_json::json!({ "status": true, "service": service, "endpoints": endpoints }),
            )),
            other => Err(RequestError::UnknownPath(other.to_string()).into()),
        }
    }
}

/// A handler's outcome: `Err` carries the error reply, so handlers use `?` on any [`ApiError`].
pub type Handled = Result<Reply, Reply>;

impl<E: ApiError> From<E> for Reply {
    fn from(error: E) -> Self {
        Self::error(&error)
    }
}

/// The reply to any request: the route's answer or its error.
pub fn answer(request: &Request, route: impl FnOnce(&Request) -> Handled) -> Reply {
    route(request).unwrap_or_else(|error_reply| error_reply)
}
