//! notify as a wasmCloud component: `notify_core::service`'s routes over `wasi:http`, and its
//! message handler as `orders:lattice/batch-handler`: payment results, refunds and dead letters
//! from the broker in batches. Placed orders and current keys are read through
//! `orders:lattice/stream-reader`.

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

orders_component_kit::export_http_routes!(NotifyComponent, route);
bindings::export!(NotifyComponent with_types_in bindings);

fn route(request: &Request) -> Handled {
    notify_core::service::route(request, &WasiHost::default())
}

impl BatchHandler for NotifyComponent {
    fn handle_messages(messages: Vec<BrokerMessage>) -> Vec<Result<Vec<BrokerMessage>, String>> {
        answer_batch(messages, notify_core::service::handle_messages)
    }
}
