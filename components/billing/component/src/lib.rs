//! billing as a wasmCloud component: `POST /CreateUser`, `POST /DepositCash`, `GET /Balance?user=`,
//! `POST /RotateKey` over `wasi:http`, and placed orders from the broker (`wasmcloud:messaging/handler`), settled by
//! `billing-core` and answered with a payment result on `payments.settled`.

use billing_core::Billing;
use orders_common::api::{parse_json, query_param, RequestError};
use orders_common::ports::Publisher as _;
use orders_common::proto::{CreateUserRequest, DepositCashRequest, OrderPlaced, RotateKeyRequest};
use orders_common::subjects;
use orders_component_kit::http::{serve, Handled, Reply, Request};
use orders_component_kit::ports::{authenticator, random_16, Broker, KeyValue, WallClock};
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

struct BillingComponent;

http::export!(BillingComponent);
bindings::export!(BillingComponent with_types_in bindings);

impl http::Server for BillingComponent {
    fn handle(
        request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        Ok(serve(request, route))
    }
}

fn route(request: &Request) -> Handled {
    let store = KeyValue::new();
    let billing = Billing {
        store: &store,
        clock: &WallClock,
    };
    match request.path.as_str() {
        "/CreateUser" => {
            request.require(Method::POST)?;
            let auth = authenticator()?;
            let body: CreateUserRequest = parse_json(&request.body)?;
            let created = billing.create_user(&body, &auth.keys, random_16())?;
            Ok(Reply::json(201, &created))
        }
        "/DepositCash" => {
            request.require(Method::POST)?;
            let caller = request.caller(&authenticator()?)?;
            let body: DepositCashRequest = parse_json(&request.body)?;
            Ok(Reply::json(200, &billing.deposit(&caller, &body)?))
        }
        "/Balance" => {
            request.require(Method::GET)?;
            let caller = request.caller(&authenticator()?)?;
            let user = query_param(&request.query, "user")
                .ok_or(RequestError::MissingParameter("user"))?;
            Ok(Reply::json(200, &billing.balance(&caller, &user)?))
        }
        "/RotateKey" => {
            request.require(Method::POST)?;
            let auth = authenticator()?;
            let caller = request.caller(&auth)?;
            let body: RotateKeyRequest = parse_json(&request.body)?;
            let rotated = billing.rotate_key(&caller, &body, &auth.keys, random_16())?;
            Ok(Reply::json(200, &rotated))
        }
        "/" => Ok(Reply::index(
            "billing",
            &[
                "POST /CreateUser",
                "POST /DepositCash",
                "GET /Balance?user=",
                "POST /RotateKey",
            ],
        )),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}

impl MessageHandler for BillingComponent {
    /// Settles one placed order. An `Err` tells the messaging provider the order was not handled.
    fn handle_message(message: BrokerMessage) -> Result<(), String> {
        let order = OrderPlaced::decode(message.body.as_slice())
            .map_err(|e| format!("{} carried no OrderPlaced: {e}", message.subject))?;
        let store = KeyValue::new();
        let result = Billing {
            store: &store,
            clock: &WallClock,
        }
        .settle(&order)
        .map_err(|e| format!("order {} not settled: {e}", order.order_id))?;
        Broker
            .publish_message(subjects::PAYMENT_SETTLED, &result)
            .map_err(|e| format!("order {} settled but not announced: {e}", order.order_id))?;
        orders_component_kit::info!(
            "order {} of {} for {}: outcome {}, balance {:?}",
            result.order_id,
            result.user,
            result.sum,
            result.outcome,
            result.balance
        );
        Ok(())
    }
}
