//! The wasm side every component shares, so it exists once: HTTP requests in and JSON responses
//! out, and the ports of `orders-common` implemented over the host's interfaces.
//!
//! Only the components (`wasm32-wasip2`) use this crate; the cores never see it.

pub mod http;
pub mod ports;

pub use wasmcloud_component::{error, info, warn};

mod bindings {
    //! Bindings for our `keyvalue-cas` and `stream-reader` interfaces; every standard interface
    //! comes from `wasmcloud-component`.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "orders:lattice/component-kit",
        with: { "wasmcloud:messaging/types@0.2.0": wasmcloud_component::wasmcloud::messaging::types },
        generate_all,
    });
}
