//! order's rules, free of any host. order knows nothing of users or balances: it checks the
//! request's shape, gives the order an id and publishes [`OrderPlaced`] for billing.
//!
//! It takes orders only from the user's own API key, checked without state (the key's MAC,
//! [`orders_domain::auth`]); the order carries the key's hash, so billing pays it only if that key
//! was still the user's when the order was placed.
//!
//! Its only state is idempotency: a request carrying an `Idempotency-Key` is remembered per user
//! under `idempotency/<key> <user>` ([`StoredIdempotency`]; a key has no spaces, so the first space
//! ends it), so a retry returns the same order (published again, which billing and notify absorb)
//! instead of placing a second one, and one user's keys never collide with another's.

pub mod service;

use orders_domain::api::{ApiError, IdempotencyKey, MalformedIdempotencyKey};
use orders_domain::auth::{AuthError, Caller};
use orders_domain::ports::{
    CasStore, Clock, PublishError, Publisher, RecordStore, StoreError, Update,
};
use orders_domain::{Amount, InvalidValue, OrderId, UserName};
use orders_wire::proto::{CreateOrderRequest, CreateOrderResponse, OrderPlaced, StoredIdempotency};
use orders_wire::subjects;

/// order's errors. HTTP statuses: `Invalid` 422, `Auth` 401/403/503 (see
/// [`orders_domain::auth`]), `InvalidIdempotencyKey` 400, `IdempotencyConflict` 409, `Broker` 503,
/// `Store` 503.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    InvalidIdempotencyKey(#[from] MalformedIdempotencyKey),
    #[error("Idempotency-Key `{0}` was already used for a different order")]
    IdempotencyConflict(String),
    #[error(transparent)]
    Broker(#[from] PublishError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError for OrderError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::Auth(auth) => auth.status(),
            Self::InvalidIdempotencyKey(malformed) => malformed.status(),
            Self::IdempotencyConflict(_) => 409,
            Self::Broker(_) | Self::Store(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::Auth(auth) => auth.code(),
            Self::InvalidIdempotencyKey(malformed) => malformed.code(),
            Self::IdempotencyConflict(_) => "idempotency_conflict",
            Self::Broker(_) => "broker_unavailable",
            Self::Store(_) => "store_unavailable",
        }
    }
}

/// order's use case over a store, a clock and the broker.
pub struct Order<'a, S: ?Sized, C: ?Sized, P: ?Sized> {
    pub store: &'a S,
    pub clock: &'a C,
    pub broker: &'a P,
}

impl<S: CasStore + ?Sized, C: Clock + ?Sized, P: Publisher + ?Sized> Order<'_, S, C, P> {
    /// Places an order for the caller's own user under a fresh id made from `random`; invalid or
    /// unauthorised input publishes nothing. With an idempotency key, a repeat of the same request
    /// answers with the first order.
    pub fn place_order(
        &self,
        caller: &Caller,
        request: &CreateOrderRequest,
        idempotency_key: Option<&str>,
        random: [u8; 16],
    ) -> Result<CreateOrderResponse, OrderError> {
        let user = UserName::parse(&request.user)?;
        let sum = Amount::parse(request.sum)?;
        let api_key = caller.require_user(&user)?;
        let key = idempotency_key.map(IdempotencyKey::parse).transpose()?;
        let key = key.as_ref().map(IdempotencyKey::as_str);
        let fresh = OrderPlaced {
            order_id: OrderId::from_random(random).to_string(),
            user: user.to_string(),
            sum: sum.get(),
            placed_at_ms: self.clock.now_ms(),
            key_sha256: api_key.hash.as_bytes().to_vec(),
        };
        let order = match key {
            None => fresh,
            Some(key) => {
                let fingerprint = format!("{}\n{}", user, sum.get());
                self.store.update_record(
                    &format!("idempotency/{key} {user}"),
                    |stored: Option<StoredIdempotency>| match stored {
                        None => Ok(Update::Write(
                            StoredIdempotency {
                                request_fingerprint: fingerprint.clone(),
                                order: Some(fresh.clone()),
                            },
                            fresh.clone(),
                        )),
                        Some(StoredIdempotency {
                            request_fingerprint,
                            order: Some(first),
                        }) if request_fingerprint == fingerprint => Ok(Update::Keep(first)),
                        Some(_) => Err(OrderError::IdempotencyConflict(key.to_string())),
                    },
                )?
            }
        };
        // Published again on a retry: the first attempt may have failed after remembering the key,
        // and billing handles each order id once however often it arrives. The subject names the
        // account's partition, so billing settles one account's orders in turn, and the order's
        // id, so notify finds the order in its stream.
        let id = OrderId::parse(&order.order_id)?;
        self.broker
            .publish_message(&subjects::order_placed(&order.user, &id), &order)?;
        Ok(CreateOrderResponse {
            status: true,
            order_id: order.order_id,
            user: order.user,
            sum: order.sum,
        })
    }
}

#[cfg(test)]
mod tests {
    use orders_domain::memory::{self, MemoryHost, ADMIN_TOKEN};
    use prost::Message as _;

    use super::*;

    struct World {
        host: MemoryHost,
    }

    impl World {
        fn new() -> Self {
            Self {
                host: MemoryHost::at(42),
            }
        }

        /// Places an order with the API key of the user named in the order (trimmed, as issued).
        fn place(
            &self,
            user: &str,
            sum: i64,
            key: Option<&str>,
            random: u8,
        ) -> Result<CreateOrderResponse, OrderError> {
            let owner = UserName::parse(user).unwrap_or_else(|_| UserName::parse("x").unwrap());
            self.place_as(&Self::key_of(owner.as_str()), user, sum, key, random)
        }

        fn key_of(user: &str) -> String {
            memory::authenticator()
                .keys
                .issue(&UserName::parse(user).unwrap(), [3; 16])
                .key
        }

        fn place_as(
            &self,
            token: &str,
            user: &str,
            sum: i64,
            key: Option<&str>,
            random: u8,
        ) -> Result<CreateOrderResponse, OrderError> {
            crate::service::order(&self.host).place_order(
                &memory::caller(token),
                &CreateOrderRequest {
                    user: user.into(),
                    sum,
                },
                key,
                [random; 16],
            )
        }

        /// Whether order's bucket holds no idempotency key (nothing else is kept there).
        fn remembers_no_key(&self) -> bool {
            self.host.store.keys().is_empty()
        }

        fn published(&self) -> Vec<OrderPlaced> {
            self.host
                .broker
                .published
                .borrow()
                .iter()
                .map(|(_, p)| OrderPlaced::decode(p.as_slice()).unwrap())
                .collect()
        }
    }

    #[test]
    fn a_valid_order_is_published_with_a_fresh_id() {
        let world = World::new();
        let response = world.place(" Pavel ", 10, None, 7).unwrap();
        assert!(response.status);
        assert_eq!((response.user.as_str(), response.sum), ("Pavel", 10));
        let placed = &world.published()[0];
        assert_eq!(
            world.host.broker.published.borrow()[0].0,
            subjects::order_placed("Pavel", OrderId::parse(&placed.order_id).unwrap()),
            "published on the account's partition, under its id"
        );
        assert_eq!(placed.order_id, response.order_id);
        assert_eq!(
            (placed.user.as_str(), placed.sum, placed.placed_at_ms),
            ("Pavel", 10, 42)
        );
        let orders_domain::auth::Caller::User(key) = memory::caller(&World::key_of("Pavel")) else {
            unreachable!()
        };
        assert_eq!(
            placed.key_sha256,
            key.hash.as_bytes(),
            "bound to the key it was placed with"
        );
    }

    #[test]
    fn an_order_with_another_users_key_or_the_admin_token_is_forbidden_and_publishes_nothing() {
        let world = World::new();
        for token in [World::key_of("Anna"), ADMIN_TOKEN.to_string()] {
            let error = world
                .place_as(&token, "Pavel", 10, Some("k"), 1)
                .unwrap_err();
            assert_eq!((error.status(), error.code()), (403, "forbidden"));
        }
        assert!(world.published().is_empty());
        assert!(world.remembers_no_key(), "no idempotency key remembered");
    }

    #[test]
    fn two_users_may_use_the_same_idempotency_key() {
        let world = World::new();
        let pavel = world.place("Pavel", 10, Some("k"), 1).unwrap();
        let anna = world.place("Anna", 10, Some("k"), 2).unwrap();
        assert_ne!(pavel.order_id, anna.order_id);
        assert_eq!(world.published().len(), 2);
    }

    #[test]
    fn without_a_key_every_request_is_a_new_order() {
        let world = World::new();
        let a = world.place("Pavel", 10, None, 1).unwrap();
        let b = world.place("Pavel", 10, None, 2).unwrap();
        assert_ne!(a.order_id, b.order_id);
        assert!(
            world.remembers_no_key(),
            "nothing is remembered without a key"
        );
    }

    #[test]
    fn a_retry_with_the_same_key_returns_the_first_order() {
        let world = World::new();
        let first = world.place("Pavel", 10, Some("retry-1"), 1).unwrap();
        world.host.clock.advance(1000);
        let retry = world.place("Pavel", 10, Some("retry-1"), 2).unwrap();
        assert_eq!(retry, first);
        let published = world.published();
        assert_eq!(
            published.len(),
            2,
            "the retry publishes again in case the first publish was lost"
        );
        assert_eq!(
            published[0], published[1],
            "the very same order, id and time included"
        );
    }

    #[test]
    fn the_same_key_with_a_different_order_is_a_conflict_and_publishes_nothing_new() {
        let world = World::new();
        world.place("Pavel", 10, Some("k"), 1).unwrap();
        let error = world.place("Pavel", 11, Some("k"), 2).unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (409, "idempotency_conflict")
        );
        assert_eq!(world.published().len(), 1);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let world = World::new();
        for key in ["", "has space", "ключ", &"k".repeat(256)] {
            let error = world.place("Pavel", 10, Some(key), 1).unwrap_err();
            assert_eq!(
                (error.status(), error.code()),
                (400, "invalid_idempotency_key"),
                "{key:?}"
            );
        }
        assert!(world.published().is_empty());
    }

    #[test]
    fn invalid_orders_publish_nothing_and_remember_no_key() {
        let world = World::new();
        for (user, sum) in [
            ("Pavel", 0),
            ("Pavel", -1),
            ("Pavel", 1_000_000_001),
            ("", 10),
        ] {
            let error = world.place(user, sum, Some("k"), 0).unwrap_err();
            assert_eq!(error.status(), 422, "{user} {sum}");
        }
        assert!(world.published().is_empty());
        assert!(world.remembers_no_key());
    }

    #[test]
    fn an_unreachable_broker_is_reported_and_the_retry_publishes() {
        let world = World::new();
        world.host.broker.broken.set(true);
        let error = world.place("Pavel", 10, Some("k"), 1).unwrap_err();
        assert_eq!((error.status(), error.code()), (503, "broker_unavailable"));
        world.host.broker.broken.set(false);
        let retry = world.place("Pavel", 10, Some("k"), 2).unwrap();
        assert_eq!(world.published()[0].order_id, retry.order_id);
    }
}
