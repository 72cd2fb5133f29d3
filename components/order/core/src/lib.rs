//! order's rules, free of any host. order is stateless and knows nothing of users or balances: it
//! checks the request's shape, gives the order an id and publishes [`OrderPlaced`] for billing.

use orders_common::api::ApiError;
use orders_common::domain::{Amount, InvalidValue, OrderId, UserName};
use orders_common::ports::{Clock, PublishError, Publisher};
use orders_common::proto::{CreateOrderRequest, CreateOrderResponse, OrderPlaced};
use orders_common::subjects;

/// order's errors. HTTP statuses: `Invalid` 422, `Broker` 503.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Broker(#[from] PublishError),
}

impl ApiError for OrderError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::Broker(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::Broker(_) => "broker_unavailable",
        }
    }
}

/// Places an order: valid input is published under a fresh id made from `random`; invalid input
/// publishes nothing.
pub fn place_order(
    request: &CreateOrderRequest,
    random: [u8; 16],
    clock: &impl Clock,
    broker: &impl Publisher,
) -> Result<CreateOrderResponse, OrderError> {
    let user = UserName::parse(&request.user)?;
    let sum = Amount::parse(request.sum)?;
    let order = OrderPlaced {
        order_id: OrderId::from_random(random).to_string(),
        user: user.to_string(),
        sum: sum.get(),
        placed_at_ms: clock.now_ms(),
    };
    broker.publish_message(subjects::ORDER_PLACED, &order)?;
    Ok(CreateOrderResponse { status: true, order_id: order.order_id, user: order.user, sum: order.sum })
}

#[cfg(test)]
mod tests {
    use orders_common::memory::{FixedClock, MemoryPublisher};
    use prost::Message as _;

    use super::*;

    fn order(user: &str, sum: i64) -> CreateOrderRequest {
        CreateOrderRequest { user: user.into(), sum }
    }

    #[test]
    fn a_valid_order_is_published_with_a_fresh_id() {
        let broker = MemoryPublisher::default();
        let response = place_order(&order(" Pavel ", 10), [7; 16], &FixedClock::at(42), &broker).unwrap();
        assert!(response.status);
        assert_eq!((response.user.as_str(), response.sum), ("Pavel", 10));

        let published = broker.published.borrow();
        let (subject, payload) = &published[0];
        assert_eq!(subject, subjects::ORDER_PLACED);
        let placed = OrderPlaced::decode(payload.as_slice()).unwrap();
        assert_eq!(placed.order_id, response.order_id);
        assert_eq!((placed.user.as_str(), placed.sum, placed.placed_at_ms), ("Pavel", 10, 42));
    }

    #[test]
    fn different_random_bytes_give_different_ids() {
        let broker = MemoryPublisher::default();
        let clock = FixedClock::at(0);
        let a = place_order(&order("Pavel", 10), [1; 16], &clock, &broker).unwrap();
        let b = place_order(&order("Pavel", 10), [2; 16], &clock, &broker).unwrap();
        assert_ne!(a.order_id, b.order_id);
    }

    #[test]
    fn invalid_orders_publish_nothing() {
        let broker = MemoryPublisher::default();
        for (user, sum) in [("Pavel", 0), ("Pavel", -1), ("Pavel", 1_000_000_001), ("", 10)] {
            let error = place_order(&order(user, sum), [0; 16], &FixedClock::at(0), &broker).unwrap_err();
            assert_eq!(error.status(), 422, "{user} {sum}");
        }
        assert!(broker.published.borrow().is_empty());
    }

    #[test]
    fn an_unreachable_broker_is_reported_as_unavailable() {
        let broker = MemoryPublisher::default();
        broker.broken.set(true);
        let error = place_order(&order("Pavel", 10), [0; 16], &FixedClock::at(0), &broker).unwrap_err();
        assert_eq!((error.status(), error.code()), (503, "broker_unavailable"));
    }
}
