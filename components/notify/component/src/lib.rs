//! notify as a wasmCloud component: payment results from the broker (`wasmcloud:messaging/handler`)
//! become notifications, "sent" to the log once and stored; `GET /List[?user=]` shows them.

use notify_core::{Delivery, Notify};
use orders_common::api::{query_param, RequestError};
use orders_common::proto::PaymentResult;
use orders_component_kit::http::{serve, Handled, Reply, Request};
use orders_component_kit::ports::{authenticator, KeyValue, WallClock};
use prost::Message as _;
use wasmcloud_component::http::{self, Method};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "orders:lattice/message-handler",
        with: { "wasmcloud:messaging/types@0.2.0": wasmcloud_component::wasmcloud::messaging::types },
        generate_all,
    });
}
use bindings::exports::wasmcloud::messaging::handler::{BrokerMessage, Guest as MessageHandler};

struct NotifyComponent;

http::export!(NotifyComponent);
bindings::export!(NotifyComponent with_types_in bindings);

impl http::Server for NotifyComponent {
    fn handle(
        request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        Ok(serve(request, route))
    }
}

fn route(request: &Request) -> Handled {
    match request.path.as_str() {
        // The seed's Postman request sends a JSON body with GET /List; the body is ignored.
        "/List" => {
            request.require(Method::GET)?;
            let caller = request.caller(&authenticator()?)?;
            let store = KeyValue::new();
            let user = query_param(&request.query, "user");
            let notify = Notify {
                store: &store,
                clock: &WallClock,
            };
            Ok(Reply::json(200, &notify.list(&caller, user.as_deref())?))
        }
        "/" => Ok(Reply::index("notify", &["GET /List", "GET /List?user="])),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}

impl MessageHandler for NotifyComponent {
    fn handle_message(message: BrokerMessage) -> Result<(), String> {
        let result = PaymentResult::decode(message.body.as_slice())
            .map_err(|e| format!("{} carried no PaymentResult: {e}", message.subject))?;
        let store = KeyValue::new();
        let delivery = Notify {
            store: &store,
            clock: &WallClock,
        }
        .deliver(&result)
        .map_err(|e| format!("no notification for order {}: {e}", result.order_id))?;
        match delivery {
            Delivery::Sent(sent) => {
                orders_component_kit::info!("notification sent to {}: {}", sent.user, sent.message)
            }
            Delivery::AlreadySent(_) => {
                orders_component_kit::info!(
                    "order {} was notified before; not sent again",
                    result.order_id
                )
            }
        }
        Ok(())
    }
}
