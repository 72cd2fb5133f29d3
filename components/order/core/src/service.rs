//! order's route, for any [`Host`]: `POST /Order`, published to the broker as `OrderPlaced` on
//! its account's partition. Its bucket holds only the `Idempotency-Key`s clients sent. A key is
//! taken only while it is its user's current one, as billing announced it.

use orders_domain::api::parse_json;
use orders_domain::service::{Handled, Host, Method, Reply, Request};
use orders_wire::proto::CreateOrderRequest;

use crate::{Order, OrderError};

/// The endpoints, as `/` lists them.
pub const ENDPOINTS: &[&str] = &["POST /Order"];

/// order on `host`: its bucket of idempotency keys, its clock, and the broker it publishes to.
pub(crate) fn order<H: Host>(host: &H) -> Order<'_, H::Store, H::Clock, H::Broker> {
    Order {
        store: host.store(),
        clock: host.clock(),
        broker: host.broker(),
    }
}

pub fn route<H: Host>(request: &Request, host: &H) -> Handled {
    match request.path.as_str() {
        "/Order" => {
            request.require(Method::POST)?;
            let caller = request.current_caller(host)?;
            let body: CreateOrderRequest = parse_json(&request.body)?;
            let key = request.idempotency_key().map_err(OrderError::from)?;
            let placed = order(host).place_order(&caller, &body, key, host.random_16())?;
            // 202: the order is accepted; billing settles it asynchronously. Location says
            // where its outcome will be (and lets its trace be found by the order id).
            let status = format!("/OrderStatus?order_id={}", placed.order_id);
            Ok(Reply::json(202, &placed).with_header("location", status))
        }
        other => Reply::unrouted("order", ENDPOINTS, other),
    }
}

#[cfg(test)]
mod tests {
    use orders_domain::memory::{self, MemoryHost};
    use orders_domain::ports::Publisher as _;
    use orders_domain::service::{Method, Reply};
    use orders_domain::UserName;
    use orders_wire::proto::CurrentApiKey;
    use orders_wire::subjects;

    use super::route;

    fn answer(host: &MemoryHost, method: Method, key: Option<&str>, body: &str) -> Reply {
        let request = MemoryHost::request(method, "/Order", key, body);
        orders_domain::service::answer(&request, |request| route(request, host))
    }

    /// A key issued to `user` and announced as the user's current one, as billing does.
    fn current_key(host: &MemoryHost, user: &str) -> String {
        let user = UserName::parse(user).unwrap();
        let issued = memory::authenticator().keys.issue(&user, [5; 16]);
        let announcement = CurrentApiKey {
            user: user.as_str().to_string(),
            key_sha256: issued.hash.as_bytes().to_vec(),
        };
        host.broker
            .publish_message(&subjects::current_api_key(user.as_str()), &announcement)
            .unwrap();
        issued.key
    }

    #[test]
    fn an_order_through_the_route_is_accepted_published_and_located() {
        let host = MemoryHost::default();
        let key = current_key(&host, "Pavel");
        let accepted = answer(
            &host,
            Method::POST,
            Some(&key),
            r#"{"user":"Pavel","sum":10}"#,
        );
        assert_eq!(accepted.status, 202);
        let body: serde_json::Value = serde_json::from_slice(&accepted.body).unwrap();
        let id = body["order_id"].as_str().unwrap();
        let location = format!("/OrderStatus?order_id={id}");
        assert!(accepted.headers.contains(&("location", location)));
        let published = host.broker.published.borrow();
        assert!(subjects::matches(
            subjects::ORDER_PLACED_SUBJECTS,
            &published.last().unwrap().0
        ));
    }

    #[test]
    fn an_invalid_order_is_refused_and_publishes_nothing() {
        let host = MemoryHost::default();
        let key = current_key(&host, "Pavel");
        let announced = host.broker.published.borrow().len();
        assert_eq!(
            answer(
                &host,
                Method::POST,
                Some(&key),
                r#"{"user":"Pavel","sum":0}"#
            )
            .status,
            422
        );
        assert_eq!(answer(&host, Method::GET, Some(&key), "").status, 405);
        assert_eq!(
            answer(&host, Method::POST, None, r#"{"user":"Pavel","sum":1}"#).status,
            401
        );
        assert_eq!(host.broker.published.borrow().len(), announced);
    }
}
