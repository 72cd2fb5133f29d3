//! billing as a wasmCloud component: `POST /CreateUser`, `POST /DepositCash`, `GET /Balance?user=`,
//! `GET /Statement?user=`, `POST /RotateKey`, `POST /Refund` over `wasi:http` (each key it issues
//! announced on `keys.<user digest>`, each refund published on `refunds.requested.…`), and from
//! the broker in batches (`orders:lattice/batch-handler`): placed orders, settled by
//! `billing-core` and each answered with its payment result, for `payments.settled`; and its own
//! refund requests, each applied (once) and answered with its result, for `payments.refunded`.

use billing_core::{Billing, BillingError};
use orders_common::api::{parse_json, query_param, ApiError as _, RequestError};
use orders_common::batch::answer_each;
use orders_common::domain::PageRequest;
use orders_common::ports::decode_message;
use orders_common::ports::{CasStore, Clock};
use orders_common::proto::{
    CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentResult, RefundRequest,
    RefundRequested, RotateKeyRequest,
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
        "/Refund" => {
            request.require(Method::POST)?;
            let caller = request.caller(&authenticator()?)?;
            let key = request.idempotency_key().map_err(BillingError::from)?;
            let body: RefundRequest = parse_json(&request.body)?;
            let refund = billing.refund(&caller, &body, key, random_16(), &Broker)?;
            Ok(Reply::json(200, &refund))
        }
        "/" => Ok(Reply::index(
            "billing",
            &[
                "POST /CreateUser",
                "POST /DepositCash",
                "GET /Balance?user=",
                "GET /Statement?user=&limit=&after=",
                "POST /RotateKey",
                "POST /Refund",
            ],
        )),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}

impl BatchHandler for BillingComponent {
    /// Settles a batch of placed orders with one read and one write of their accounts, and answers
    /// each with its payment result, which the messaging provider publishes on `payments.settled`
    /// before it acknowledges the order; applies each refund request of the batch on its own. An
    /// `Err` tells the provider that message was not handled.
    fn handle_messages(messages: Vec<BrokerMessage>) -> Vec<Result<Vec<BrokerMessage>, String>> {
        let store = KeyValue::new();
        let billing = Billing {
            store: &store,
            clock: &WallClock,
        };
        answer_each(
            messages,
            |message| {
                if subjects::matches(subjects::REFUND_REQUESTED_SUBJECTS, &message.subject) {
                    return Err(refund_reply(&billing, &message));
                }
                decode_message(&message.subject, &message.body, "OrderPlaced").map_err(Err)
            },
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

/// The answer to one refund request: its result, for `payments.refunded`; nothing when it was
/// refused (nothing changed, and its requester was told); or why it was not handled (the provider
/// delivers it again).
fn refund_reply<S: CasStore + ?Sized, C: Clock + ?Sized>(
    billing: &Billing<'_, S, C>,
    message: &BrokerMessage,
) -> Result<Vec<BrokerMessage>, String> {
    let requested: RefundRequested =
        decode_message(&message.subject, &message.body, "RefundRequested")?;
    match billing.apply_refund(&requested) {
        Ok(result) => {
            orders_component_kit::info!(
                "refund {} of order {}: {} back to {}, balance {}",
                result.refund_id,
                result.order_id,
                result.sum,
                result.user,
                result.balance
            );
            Ok(vec![BrokerMessage {
                subject: subjects::PAYMENT_REFUNDED.to_string(),
                body: result.encode_to_vec(),
                reply_to: None,
            }])
        }
        Err(refused) if refused.status() < 500 => {
            orders_component_kit::info!(
                "refund {} of order {} refused: {refused}",
                requested.refund_id,
                requested.order_id
            );
            Ok(Vec::new())
        }
        Err(failed) => Err(format!(
            "refund {} of order {} not applied: {failed}",
            requested.refund_id, requested.order_id
        )),
    }
}
