//! billing as a wasmCloud component: `billing_core::service`'s routes over `wasi:http`, and its
//! message handler as `orders:lattice/batch-handler`: placed orders and its own refund requests
//! from the broker in batches, each answered with the result the messaging provider publishes
//! before it acknowledges the message.

use orders_component_kit::ports::WasiHost;
use orders_domain::service::{Handled, Request};

orders_component_kit::export_http_routes!(BillingComponent, route);
orders_component_kit::export_batch_handler!(
    BillingComponent,
    billing_core::service::handle_messages
);

fn route(request: &Request) -> Handled {
    billing_core::service::route(request, &WasiHost::default())
}
