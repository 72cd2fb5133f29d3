//! notify's routes and message handler, for any [`Host`]: payment results and refunds from the
//! broker become notifications, "sent" to the log once and stored; `GET /List[?user=]` shows them.
//! `GET /OrderStatus?order_id=` tells where an order stands, from the order as its stream keeps it
//! and its notification; dead letters from the broker are recorded for `GET /DeadLetters`. A user
//! key is taken only while it is the user's current one.

use orders_domain::batch::answer_each_by_outcome;
use orders_domain::ports::decode_message;
use orders_domain::service::{Answer, Handled, Host, Message, Method, Reply, Request};
use orders_wire::proto::{PaymentResult, RefundResult};
use orders_wire::subjects;

use crate::{Delivery, Notify, NotifyError, Settled};

/// The endpoints, as `/` lists them.
pub const ENDPOINTS: &[&str] = &[
    "GET /List?limit=&after=",
    "GET /List?user=&limit=&after=",
    "GET /OrderStatus?order_id=",
    "GET /DeadLetters",
];

/// notify on `host`: its bucket, its clock, and the broker's stream of placed orders.
pub(crate) fn notify<H: Host>(host: &H) -> Notify<'_, H::Store, H::Clock, H::Broker> {
    Notify {
        store: host.store(),
        clock: host.clock(),
        orders: host.broker(),
    }
}

pub fn route<H: Host>(request: &Request, host: &H) -> Handled {
    let notify = notify(host);
    match request.path.as_str() {
        // The seed's Postman request sends a JSON body with GET /List; the body is ignored.
        "/List" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(host)?;
            let user = request.param("user");
            let page = request.page().map_err(NotifyError::from)?;
            Ok(Reply::json(
                200,
                &notify.list(&caller, user.as_deref(), page)?,
            ))
        }
        "/DeadLetters" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(host)?;
            Ok(Reply::json(200, &notify.dead_letters(&caller)?))
        }
        "/OrderStatus" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(host)?;
            let order_id = request.required_param("order_id")?;
            Ok(Reply::json(200, &notify.order_status(&caller, &order_id)?))
        }
        other => Reply::unrouted("notify", ENDPOINTS, other),
    }
}

/// Dead letters (recorded), payment results and refunds (notified), by subject; the
/// notifications of a batch with one write. notify publishes nothing, so every answer is `Ok` with
/// no messages, or the `Err` that has the message delivered again.
pub fn handle_messages<H: Host>(host: &H, messages: Vec<Message>) -> Vec<Answer> {
    let notify = notify(host);
    answer_each_by_outcome(
        messages,
        |message| match message.subject.strip_prefix(subjects::DEAD_LETTER_PREFIX) {
            Some(consumer) => Err(record_dead_letter(host, &notify, consumer, &message.body)),
            None if message.subject == subjects::PAYMENT_REFUNDED => {
                decode_message::<RefundResult>(&message.subject, &message.body, "RefundResult")
                    .map(Settled::Refund)
                    .map_err(Err)
            }
            None => {
                decode_message::<PaymentResult>(&message.subject, &message.body, "PaymentResult")
                    .map(Settled::Payment)
                    .map_err(Err)
            }
        },
        |results| notify.deliver_all(results),
        |delivery, result| notified(host, delivery, result),
    )
    .into_iter()
    .map(|answer| answer.map(|()| Vec::new()))
    .collect()
}

/// What delivering one result did, logged; an `Err` has it delivered again.
fn notified(
    host: &impl Host,
    delivery: Result<Delivery, NotifyError>,
    result: &Settled,
) -> Result<(), String> {
    match delivery {
        Ok(Delivery::Sent(sent)) => {
            host.log(&format!(
                "notification sent to {}: {}",
                sent.user, sent.message
            ));
            Ok(())
        }
        Ok(Delivery::AlreadySent(_)) => {
            host.log(&format!(
                "order {} was notified of this before; not sent again",
                result.order_id()
            ));
            Ok(())
        }
        Err(e) => Err(format!(
            "no notification for order {}: {e}",
            result.order_id()
        )),
    }
}

fn record_dead_letter<H: Host>(
    host: &H,
    notify: &Notify<'_, H::Store, H::Clock, H::Broker>,
    consumer: &str,
    payload: &[u8],
) -> Result<(), String> {
    if notify
        .record_dead_letter(consumer, payload)
        .map_err(|e| format!("dead letter of {consumer} not recorded: {e}"))?
    {
        host.log(&format!("{consumer} gave up on a message: recorded"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orders_domain::memory::{MemoryHost, ADMIN_TOKEN};
    use orders_domain::service::{Message, Method};
    use orders_wire::proto::{PaymentOutcome, PaymentResult};
    use orders_wire::subjects;
    use prost::Message as _;

    use super::{handle_messages, route};

    #[test]
    fn a_payment_result_from_the_broker_is_notified_once_and_listed() {
        let host = MemoryHost::default();
        let result = PaymentResult {
            order_id: "0b7e3c8e-6c2a-4d4e-9a57-1c3f0e2d4b5a".into(),
            user: "Pavel".into(),
            sum: 10,
            outcome: PaymentOutcome::Paid as i32,
            ..Default::default()
        };
        let delivered = Message {
            subject: subjects::PAYMENT_SETTLED.into(),
            body: result.encode_to_vec(),
        };
        for _ in 0..2 {
            let answers = handle_messages(&host, vec![delivered.clone()]);
            assert_eq!(
                answers,
                vec![Ok(Vec::new())],
                "acknowledged, nothing to publish"
            );
        }
        let sent = host
            .environment
            .log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("notification sent"))
            .count();
        assert_eq!(sent, 1, "a redelivery is not sent again");

        let request = MemoryHost::request(Method::GET, "/List?user=Pavel", Some(ADMIN_TOKEN), "");
        let listed = orders_domain::service::answer(&request, |request| route(request, &host));
        assert_eq!(listed.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
        assert_eq!(
            body["notifications"].as_array().map(Vec::len),
            Some(1),
            "{body}"
        );
    }
}
