//! The wasm side every component shares, so it exists once: HTTP requests in and JSON responses
//! out, and the ports of `orders-domain` implemented over the host's interfaces.
//!
//! Only the components (`wasm32-wasip2`) use this crate; the cores never see it.

pub mod http;
pub mod ports;

pub use wasmcloud_component::{error, info, warn};

/// Exports `$component`'s `orders:lattice/batch-handler` (generating the `message-handler`
/// world's bindings in the calling crate): each batch of broker messages is answered by
/// `$handle` on the component's host through [`ports::answer_batch`].
#[macro_export]
macro_rules! export_batch_handler {
    ($component:ident, $handle:path) => {
        mod bindings {
            ::wit_bindgen::generate!({
                path: "../../../wit",
                world: "orders:lattice/message-handler",
                with: { "wasmcloud:messaging/types@0.2.0": ::wasmcloud_component::wasmcloud::messaging::types },
                generate_all,
            });
        }

        bindings::export!($component with_types_in bindings);

        impl bindings::exports::orders::lattice::batch_handler::Guest for $component {
            fn handle_messages(
                messages: ::std::vec::Vec<bindings::exports::orders::lattice::batch_handler::BrokerMessage>,
            ) -> ::std::vec::Vec<
                ::std::result::Result<
                    ::std::vec::Vec<bindings::exports::orders::lattice::batch_handler::BrokerMessage>,
                    ::std::string::String,
                >,
            > {
                $crate::ports::answer_batch(messages, $handle)
            }
        }
    };
}

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
