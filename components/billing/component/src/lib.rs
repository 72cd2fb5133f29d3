//! billing as a wasmCloud component: `billing_core::service`'s routes over `wasi:http`, and its
//! message handler as `orders:lattice/batch-handler`: placed orders and its own refund requests
//! from the broker in batches, each answered with the result the messaging provider publishes
//! before it acknowledges the message.

use orders_common::service::{Handled, Request};
use orders_component_kit::ports::{answer_batch, WasiHost};

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
    billing_core::service::route(request, &WasiHost::default())
}

impl BatchHandler for BillingComponent {
    fn handle_messages(messages: Vec<BrokerMessage>) -> Vec<Result<Vec<BrokerMessage>, String>> {
        answer_batch(messages, billing_core::service::handle_messages)
    }
}
