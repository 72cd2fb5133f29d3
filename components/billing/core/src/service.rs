//! billing's routes and message handler, for any [`Host`]: `POST /CreateUser`, `POST /DepositCash`,
//! `GET /Balance?user=`, `GET /Statement?user=`, `POST /RotateKey`, `POST /Refund` (each key it
//! issues announced on `keys.<user digest>`, each refund published on `refunds.requested.…`), and
//! from the broker in batches: placed orders, settled and each answered with its payment result
//! for `payments.settled`; and its own refund requests, each applied (once) and answered with its
//! result for `payments.refunded`.

use orders_domain::api::{parse_json, ApiError as _};
use orders_domain::batch::answer_each_by_outcome;
use orders_domain::ports::decode_message;
use orders_domain::service::{Answer, Handled, Host, Message, Method, Reply, Request};
use orders_wire::proto::{
    CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentResult, RefundRequest,
    RefundRequested, RotateKeyRequest,
};
use orders_wire::subjects;

use crate::{Billing, BillingError};

/// The endpoints, as `/` lists them.
pub const ENDPOINTS: &[&str] = &[
    "POST /CreateUser",
    "POST /DepositCash",
    "GET /Balance?user=",
    "GET /Statement?user=&limit=&after=",
    "POST /RotateKey",
    "POST /Refund",
];

fn billing<H: Host>(host: &H) -> Billing<'_, H::Store, H::Clock, H::Broker> {
    Billing {
        store: host.store(),
        clock: host.clock(),
        broker: host.broker(),
    }
}

pub fn route<H: Host>(request: &Request, host: &H) -> Handled {
    let billing = billing(host);
    match request.path.as_str() {
        "/CreateUser" => {
            request.require(Method::POST)?;
            let auth = host.authenticator()?;
            let body: CreateUserRequest = parse_json(&request.body)?;
            let created = billing.create_user(&body, &auth.keys, host.random_16())?;
            Ok(Reply::json(201, &created))
        }
        "/DepositCash" => {
            request.require(Method::POST)?;
            let caller = request.caller(&host.authenticator()?)?;
            let body: DepositCashRequest = parse_json(&request.body)?;
            Ok(Reply::json(200, &billing.deposit(&caller, &body)?))
        }
        "/Balance" => {
            request.require(Method::GET)?;
            let caller = request.caller(&host.authenticator()?)?;
            let user = request.required_param("user")?;
            Ok(Reply::json(200, &billing.balance(&caller, &user)?))
        }
        "/Statement" => {
            request.require(Method::GET)?;
            let caller = request.caller(&host.authenticator()?)?;
            let user = request.required_param("user")?;
            let page = request.page().map_err(BillingError::from)?;
            Ok(Reply::json(200, &billing.statement(&caller, &user, page)?))
        }
        "/RotateKey" => {
            request.require(Method::POST)?;
            let auth = host.authenticator()?;
            let caller = request.caller(&auth)?;
            let body: RotateKeyRequest = parse_json(&request.body)?;
            let rotated = billing.rotate_key(&caller, &body, &auth.keys, host.random_16())?;
            Ok(Reply::json(200, &rotated))
        }
        "/Refund" => {
            request.require(Method::POST)?;
            let caller = request.caller(&host.authenticator()?)?;
            let key = request.idempotency_key().map_err(BillingError::from)?;
            let body: RefundRequest = parse_json(&request.body)?;
            let refund = billing.refund(&caller, &body, key, host.random_16())?;
            Ok(Reply::json(200, &refund))
        }
        other => Reply::unrouted("billing", ENDPOINTS, other),
    }
}

/// Settles the placed orders of a batch with one read and one write of their accounts, and
/// answers each with its payment result, published on `payments.settled` before the order is
/// acknowledged; applies each refund request of the batch on its own.
pub fn handle_messages<H: Host>(host: &H, messages: Vec<Message>) -> Vec<Answer> {
    let billing = billing(host);
    answer_each_by_outcome(
        messages,
        |message| {
            if subjects::matches(subjects::REFUND_REQUESTED_SUBJECTS, &message.subject) {
                return Err(refund_reply(host, &billing, &message));
            }
            decode_message(&message.subject, &message.body, "OrderPlaced").map_err(Err)
        },
        |orders| billing.settle_all(orders),
        |settled, order| payment_reply(host, settled, order),
    )
}

/// The answer to one placed order: its payment result, for `payments.settled`, or why it was
/// not settled (delivered again).
fn payment_reply(
    host: &impl Host,
    settled: Result<PaymentResult, BillingError>,
    order: &OrderPlaced,
) -> Answer {
    let result = settled.map_err(|e| format!("order {} not settled: {e}", order.order_id))?;
    let line = format!(
        "order {} of {} for {}: outcome {}, balance {:?}",
        result.order_id, result.user, result.sum, result.outcome, result.balance
    );
    publish(host, &line, subjects::PAYMENT_SETTLED, &result)
}

/// The one message that carries `result` on `subject`, told in the log first.
fn publish(host: &impl Host, line: &str, subject: &str, result: &impl prost::Message) -> Answer {
    host.log(line);
    Ok(vec![Message {
        subject: subject.to_string(),
        body: result.encode_to_vec(),
    }])
}

/// The answer to one refund request: its result, for `payments.refunded`; nothing when it was
/// refused (nothing changed, and its requester was told); or why it was not handled (delivered
/// again).
fn refund_reply<H: Host>(
    host: &H,
    billing: &Billing<'_, H::Store, H::Clock, H::Broker>,
    message: &Message,
) -> Answer {
    let requested: RefundRequested =
        decode_message(&message.subject, &message.body, "RefundRequested")?;
    match billing.apply_refund(&requested) {
        Ok(result) => {
            let line = format!(
                "refund {} of order {}: {} back to {}, balance {}",
                result.refund_id, result.order_id, result.sum, result.user, result.balance
            );
            publish(host, &line, subjects::PAYMENT_REFUNDED, &result)
        }
        Err(refused) if refused.status() < 500 => {
            host.log(&format!(
                "refund {} of order {} refused: {refused}",
                requested.refund_id, requested.order_id
            ));
            Ok(Vec::new())
        }
        Err(failed) => Err(format!(
            "refund {} of order {} not applied: {failed}",
            requested.refund_id, requested.order_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use orders_domain::auth::Caller;
    use orders_domain::memory::{self, MemoryHost};
    use orders_domain::ports::Clock as _;
    use orders_domain::service::{Message, Method};
    use orders_wire::proto::{OrderPlaced, PaymentOutcome, PaymentResult};
    use prost::Message as _;
    use serde_json::Value;

    use super::{handle_messages, route};

    fn json(reply: &orders_domain::service::Reply) -> Value {
        serde_json::from_slice(&reply.body).expect("a JSON body")
    }

    fn answer(
        host: &MemoryHost,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> orders_domain::service::Reply {
        let request = MemoryHost::request(method, path, key, body);
        orders_domain::service::answer(&request, |request| route(request, host))
    }

    #[test]
    fn a_user_created_and_funded_through_the_routes_can_pay_a_placed_order() {
        let host = MemoryHost::default();
        let created = answer(
            &host,
            Method::POST,
            "/CreateUser",
            None,
            r#"{"user":"Pavel"}"#,
        );
        assert_eq!(created.status, 201);
        let key = json(&created)["api_key"].as_str().unwrap().to_string();
        let deposited = answer(
            &host,
            Method::POST,
            "/DepositCash",
            Some(&key),
            r#"{"user":"Pavel","sum":100}"#,
        );
        assert_eq!(
            (deposited.status, json(&deposited)["balance"].as_i64()),
            (200, Some(100))
        );

        let Caller::User(verified) = memory::caller(&key) else {
            unreachable!("a user key");
        };
        let order = OrderPlaced {
            order_id: "0b7e3c8e-6c2a-4d4e-9a57-1c3f0e2d4b5a".into(),
            user: "Pavel".into(),
            sum: 30,
            placed_at_ms: host.clock.now_ms(),
            key_sha256: verified.hash.as_bytes().to_vec(),
        };
        let answers = handle_messages(
            &host,
            vec![
                Message {
                    subject: "orders.placed.ab.0b7e3c8e-6c2a-4d4e-9a57-1c3f0e2d4b5a".into(),
                    body: order.encode_to_vec(),
                },
                Message {
                    subject: "orders.placed.ab.x".into(),
                    body: b"not protobuf".to_vec(),
                },
            ],
        );
        let paid = answers[0].as_ref().expect("the order is settled");
        assert_eq!(paid[0].subject, orders_wire::subjects::PAYMENT_SETTLED);
        let result = PaymentResult::decode(paid[0].body.as_slice()).unwrap();
        assert_eq!(
            (result.outcome(), result.balance),
            (PaymentOutcome::Paid, Some(70))
        );
        assert!(
            answers[1].is_err(),
            "a message that is no order is not acknowledged"
        );
    }

    #[test]
    fn a_wrong_method_or_path_is_refused_with_its_status_and_nothing_is_stored() {
        let host = MemoryHost::default();
        let wrong_method = answer(&host, Method::GET, "/CreateUser", None, "");
        assert_eq!(wrong_method.status, 405);
        assert!(wrong_method
            .headers
            .contains(&("allow", "POST".to_string())));
        assert_eq!(
            answer(&host, Method::POST, "/Nowhere", None, "{}").status,
            404
        );
        let unauthenticated = answer(
            &host,
            Method::POST,
            "/DepositCash",
            None,
            r#"{"user":"Pavel","sum":1}"#,
        );
        assert_eq!(unauthenticated.status, 401);
        assert!(unauthenticated
            .headers
            .iter()
            .any(|(name, _)| *name == "www-authenticate"));
        assert!(host.store.keys().is_empty());
        assert!(host.broker.published.borrow().is_empty());
    }
}
