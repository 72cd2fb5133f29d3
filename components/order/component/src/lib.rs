//! order as a wasmCloud component: `order_core::service`'s `POST /Order` over `wasi:http`, its
//! placed orders published through `wasmcloud:messaging/consumer`, its idempotency keys in its
//! bucket, and each caller's current key read through `orders:lattice/stream-reader`.

use orders_component_kit::ports::WasiHost;
use orders_domain::service::{Handled, Request};

orders_component_kit::export_http_routes!(OrderComponent, route);

fn route(request: &Request) -> Handled {
    order_core::service::route(request, &WasiHost::default())
}
