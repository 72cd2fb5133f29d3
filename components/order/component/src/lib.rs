//! order as a wasmCloud component: `POST /Order` over `wasi:http`, published to the broker as
//! `OrderPlaced` on `orders.placed` (`wasmcloud:messaging/consumer`). Its bucket holds only the
//! `Idempotency-Key`s clients sent. A key is taken only while it is its user's current one, as
//! billing announced it (`orders:lattice/stream-reader`).

use order_core::{Order, OrderError};
use orders_common::api::{parse_json, RequestError};
use orders_common::proto::CreateOrderRequest;
use orders_component_kit::http::{Handled, Reply, Request};
use orders_component_kit::ports::{authenticator, random_16, Broker, KeyValue, WallClock};
use wasmcloud_component::http::Method;

orders_component_kit::export_http_routes!(OrderComponent, route);

fn route(request: &Request) -> Handled {
    match request.path.as_str() {
        "/Order" => {
            request.require(Method::POST)?;
            let caller = request.current_caller(&authenticator()?)?;
            let body: CreateOrderRequest = parse_json(&request.body)?;
            let key = request.idempotency_key().map_err(OrderError::from)?;
            let store = KeyValue::new();
            let order = Order {
                store: &store,
                clock: &WallClock,
                broker: &Broker,
            };
            let placed = order.place_order(&caller, &body, key, random_16())?;
            // 202: the order is accepted; billing settles it asynchronously. Location says
            // where its outcome will be (and lets its trace be found by the order id).
            let status = format!("/OrderStatus?order_id={}", placed.order_id);
            Ok(Reply::json(202, &placed).with_header("location", status))
        }
        "/" => Ok(Reply::index("order", &["POST /Order"])),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}
