//! Hello world over `wasi:http`, as in wasmCloud's own benchmark: no body read, no state, no
//! broker. `make bench` measures it beside `POST /Order` so the orders' cost is a ratio to the
//! platform's floor on the same machine.

use wasmcloud_component::http;

struct Hello;

http::export!(Hello);

impl http::Server for Hello {
    fn handle(
        _request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        Ok(http::Response::new("Hello from orders-lattice\n"))
    }
}
