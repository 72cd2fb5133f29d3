//! notify as a wasmCloud component: `notify_core::service`'s routes over `wasi:http`, and its
//! message handler as `orders:lattice/batch-handler`: payment results, refunds and dead letters
//! from the broker in batches. Placed orders and current keys are read through
//! `orders:lattice/stream-reader`.

use orders_component_kit::ports::WasiHost;
use orders_domain::service::{Handled, Request};

orders_component_kit::export_http_routes!(NotifyComponent, route);
orders_component_kit::export_batch_handler!(NotifyComponent, notify_core::service::handle_messages);

fn route(request: &Request) -> Handled {
    notify_core::service::route(request, &WasiHost::default())
}
