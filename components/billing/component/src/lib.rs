//! billing as a wasmCloud component: `POST /CreateUser`, `POST /DepositCash`, `GET /Balance?user=`,
//! `GET /Statement?user=`, `POST /RotateKey` over `wasi:http` (each key it issues announced on `keys.<user digest>`), and
//! placed orders from the broker in batches
//! (`orders:lattice/batch-handler`), settled by `billing-core` and each answered with its payment
//! result, for `payments.settled`.

use billing_core::{Billing, BillingError};
use orders_common::api::{parse_json, query_param, RequestError};
use orders_common::batch::answer_each;
use orders_common::domain::PageRequest;
use orders_common::ports::decode_message;
use orders_common::proto::{
    CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentResult, RotateKeyRequest,
};
use orders_common::subjects;
use orders_component_kit::http::{Handled, Reply, Request};
use orders_component_kit::ports::{authenticator, random_16, Broker, KeyValue, WallClock};
use prost::Message as _;
use wasmcloud_component::http::Method;

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "orders:lattice/message-handler",
        with: { "wasmcloud:messaging/types@0.2.0": wasmcloud_component::wasmcloud::messaging::types },
        generate_all,
    });
}
use bindings::exports::orders::lattice::batch_handler::{BrokerMessage, Guest as BatchHandler};

orders_component_kit::export_http_routes!(BillingComponent, route);
bindings::export!(BillingComponent with_types_in bindings);

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
            let created = billing.create_user(&body, &auth.keys, random_16(), &Broker)?;
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
        "/Statement" => {
            request.require(Method::GET)?;
            let caller = request.caller(&authenticator()?)?;
            let user = query_param(&request.query, "user")
                .ok_or(RequestError::MissingParameter("user"))?;
            let page = PageRequest::parse(
                query_param(&request.query, "after").as_deref(),
                query_param(&request.query, "limit").as_deref(),
            )
            .map_err(BillingError::from)?;
            Ok(Reply::json(200, &billing.statement(&caller, &user, page)?))
        }
        "/RotateKey" => {
            request.require(Method::POST)?;
            let auth = authenticator()?;
            let caller = request.caller(&auth)?;
            let body: RotateKeyRequest = parse_json(&request.body)?;
            let rotated = billing.rotate_key(&caller, &body, &auth.keys, random_16(), &Broker)?;
            Ok(Reply::json(200, &rotated))
        }
        "/" => Ok(Reply::index(
            "billing",
            &[
                "POST /CreateUser",
                "POST /DepositCash",
                "GET /Balance?user=",
                "GET /Statement?user=&limit=&after=",
                "POST /RotateKey",
            ],
        )),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}

impl BatchHandler for BillingComponent {
    /// Settles a batch of placed orders with one read and one write of their accounts, and answers
    /// each with its payment result, which the messaging provider publishes on `payments.settled`
    /// before it acknowledges the order. An `Err` tells the provider that order was not handled.
    fn handle_messages(messages: Vec<BrokerMessage>) -> Vec<Result<Vec<BrokerMessage>, String>> {
        let store = KeyValue::new();
        let billing = Billing {
            store: &store,
            clock: &WallClock,
        };
        answer_each(
            messages,
            |message| decode_message(&message.subject, &message.body, "OrderPlaced").map_err(Err),
            |orders| {
                let settled = billing.settle_all(&orders);
                settled
                    .into_iter()
                    .zip(&orders)
                    .map(payment_reply)
                    .collect()
            },
        )
    }
}

/// The answer to one placed order: its payment result, for `payments.settled`, or why it was
/// not settled (the provider delivers it again).
fn payment_reply(
    (settled, order): (Result<PaymentResult, BillingError>, &OrderPlaced),
) -> Result<Vec<BrokerMessage>, String> {
    let result = settled.map_err(|e| format!("order {} not settled: {e}", order.order_id))?;
    orders_component_kit::info!(
        "order {} of {} for {}: outcome {}, balance {:?}",
        result.order_id,
        result.user,
        result.sum,
        result.outcome,
        result.balance
    );
    Ok(vec![BrokerMessage {
        subject: subjects::PAYMENT_SETTLED.to_string(),
        body: result.encode_to_vec(),
        reply_to: None,
    }])
}
