//! notify as a wasmCloud component: payment results and refunds from the broker
//! (`orders:lattice/batch-handler`) become notifications, "sent" to the log once and stored; `GET /List[?user=]` shows them.
//! `GET /OrderStatus?order_id=` tells where an order stands, from the order as its stream keeps it
//! (`orders:lattice/stream-reader`) and its notification; dead letters from the broker are
//! recorded for `GET /DeadLetters`. A user key is taken only while it is the user's current one.

use notify_core::{Delivery, Notify, NotifyError, Settled};
use orders_common::api::{query_param, RequestError};
use orders_common::batch::answer_each;
use orders_common::domain::PageRequest;
use orders_common::ports::{decode_message, CasStore, Clock, PlacedOrders};
use orders_common::proto::{PaymentResult, RefundResult};
use orders_common::subjects;
use orders_component_kit::http::{Handled, Reply, Request};
use orders_component_kit::ports::{authenticator, KeyValue, OrdersStream, WallClock};
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

orders_component_kit::export_http_routes!(NotifyComponent, route);
bindings::export!(NotifyComponent with_types_in bindings);

fn route(request: &Request) -> Handled {
    let store = KeyValue::new();
    let notify = Notify {
        store: &store,
        clock: &WallClock,
        orders: &OrdersStream,
    };
    match request.path.as_str() {
        // The seed's Postman request sends a JSON body with GET /List; the body is ignored.
        "/List" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(&authenticator()?)?;
            let user = query_param(&request.query, "user");
            let page = PageRequest::parse(
                query_param(&request.query, "after").as_deref(),
                query_param(&request.query, "limit").as_deref(),
            )
            .map_err(NotifyError::from)?;
            Ok(Reply::json(
                200,
                &notify.list(&caller, user.as_deref(), page)?,
            ))
        }
        "/DeadLetters" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(&authenticator()?)?;
            Ok(Reply::json(200, &notify.dead_letters(&caller)?))
        }
        "/OrderStatus" => {
            request.require(Method::GET)?;
            let caller = request.current_caller(&authenticator()?)?;
            let order_id = query_param(&request.query, "order_id")
                .ok_or(RequestError::MissingParameter("order_id"))?;
            Ok(Reply::json(200, &notify.order_status(&caller, &order_id)?))
        }
        "/" => Ok(Reply::index(
            "notify",
            &[
                "GET /List?limit=&after=",
                "GET /List?user=&limit=&after=",
                "GET /OrderStatus?order_id=",
                "GET /DeadLetters",
            ],
        )),
        other => Err(RequestError::UnknownPath(other.to_string()).into()),
    }
}

impl BatchHandler for NotifyComponent {
    /// Dead letters (recorded), payment results and refunds (notified), by subject; the
    /// notifications of a batch with one write. notify publishes nothing, so every answer is `Ok` with no replies,
    /// or the `Err` that has the provider deliver that message again.
    fn handle_messages(messages: Vec<BrokerMessage>) -> Vec<Result<Vec<BrokerMessage>, String>> {
        let store = KeyValue::new();
        let notify = Notify {
            store: &store,
            clock: &WallClock,
            orders: &OrdersStream,
        };
        answer_each(
            messages,
            |message| match message.subject.strip_prefix(subjects::DEAD_LETTER_PREFIX) {
                Some(consumer) => Err(record_dead_letter(&notify, consumer, &message.body)),
                None if message.subject == subjects::PAYMENT_REFUNDED => {
                    decode_message::<RefundResult>(&message.subject, &message.body, "RefundResult")
                        .map(Settled::Refund)
                        .map_err(Err)
                }
                None => decode_message::<PaymentResult>(
                    &message.subject,
                    &message.body,
                    "PaymentResult",
                )
                .map(Settled::Payment)
                .map_err(Err),
            },
            |results| {
                let delivered = notify.deliver_all(&results);
                delivered.into_iter().zip(&results).map(notified).collect()
            },
        )
        .into_iter()
        .map(|answer| answer.map(|()| Vec::new()))
        .collect()
    }
}

/// What delivering one result did, logged; an `Err` has the provider deliver it again.
fn notified((delivery, result): (Result<Delivery, NotifyError>, &Settled)) -> Result<(), String> {
    match delivery {
        Ok(Delivery::Sent(sent)) => {
            orders_component_kit::info!("notification sent to {}: {}", sent.user, sent.message);
            Ok(())
        }
        Ok(Delivery::AlreadySent(_)) => {
            orders_component_kit::info!(
                "order {} was notified of this before; not sent again",
                result.order_id()
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "no notification for order {}: {e}",
            result.order_id()
        )),
    }
}

fn record_dead_letter<S: CasStore + ?Sized, C: Clock + ?Sized, P: PlacedOrders + ?Sized>(
    notify: &Notify<'_, S, C, P>,
    consumer: &str,
    payload: &[u8],
) -> Result<(), String> {
    if notify
        .record_dead_letter(consumer, payload)
        .map_err(|e| format!("dead letter of {consumer} not recorded: {e}"))?
    {
        orders_component_kit::info!("{consumer} gave up on a message: recorded");
    }
    Ok(())
}
