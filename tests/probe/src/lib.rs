//! The isolation probe: a `wasi:http` component deployed only on the test lattice, at `GET /Probe`.
//! Each request runs in a fresh instance, in a slot of the host's pooling allocator that other
//! instances (of this and of every other component) used before, with memory the host kept
//! resident and reset in place. The probe reads the memory a fresh instance must find zeroed, then
//! dirties it for whoever gets the slot next, and answers what it found:
//!
//! - `static_nonzero_bytes`: non-zero bytes in a 64 KiB static that is zero-initialised (`.bss`,
//!   never part of the module's data image);
//! - `seeded_changed_bytes`: bytes that differ from their initial value in a 16 KiB static that
//!   is not zero-initialised (`.data`, part of the module's memory image, which the host maps
//!   back over the pages an instance wrote);
//! - `grown_nonzero_bytes` of `grown_bytes`: non-zero bytes in 4 MiB the instance adds to its
//!   linear memory (`memory.grow`), far past what the host keeps resident between instances. The
//!   probe dirties every other page of it, so that a reset that misses scattered pages shows;
//! - `preopened_directories`: the directories the host gave it (`wasi:filesystem/preopens`).
//!
//! The end-to-end test `every_instance_starts_from_clean_memory_and_no_filesystem` asks it many
//! times, concurrently, and every answer must be zeroes: a wasmtime bug like RUSTSEC-2026-0088
//! (data leaking between pooling allocator instances) would show here as non-zero bytes.
//!
//! It reads linear memory as only a WebAssembly instance has it, so it exists for wasm32 alone
//! (`cargo clippy --workspace` checks every member natively too).
#![cfg(target_arch = "wasm32")]

use std::ptr::addr_of_mut;

use wasmcloud_component::http;
use wasmcloud_component::wasi::filesystem::preopens;

const STATIC_BYTES: usize = 64 * 1024;
const WASM_PAGE_BYTES: usize = 64 * 1024;
const GROWN_PAGES: usize = 64;
const SEEDED_BYTES: usize = 16 * 1024;
const SEED: u8 = 0x5A;
/// The host's page size: the probe dirties every other one of the grown memory's.
const HOST_PAGE_BYTES: usize = 4096;
/// What the probe writes over everything it read, so that a slot that is not reset shows it.
const DIRT: u8 = 0xA5;

static mut UNTOUCHED: [u8; STATIC_BYTES] = [0; STATIC_BYTES];
static mut SEEDED: [u8; SEEDED_BYTES] = [SEED; SEEDED_BYTES];

struct Probe;

http::export!(Probe);

impl http::Server for Probe {
    fn handle(
        _request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        let body = match probe() {
            Ok(found) => found,
            Err(failure) => format!("{{\"error\":\"{failure}\"}}"),
        };
        Ok(http::Response::new(body))
    }
}

fn probe() -> Result<String, &'static str> {
    // SAFETY: an instance serves one request at a time; nothing else refers to the static.
    let untouched = unsafe { &mut *addr_of_mut!(UNTOUCHED) };
    let static_nonzero_bytes = bytes_other_than(0, untouched);
    untouched.fill(DIRT);

    // SAFETY: as above.
    let seeded = unsafe { &mut *addr_of_mut!(SEEDED) };
    let seeded_changed_bytes = bytes_other_than(SEED, seeded);
    seeded.fill(DIRT);

    let grown = grow_memory(GROWN_PAGES)?;
    let grown_nonzero_bytes = bytes_other_than(0, grown);
    for page in grown.chunks_mut(HOST_PAGE_BYTES).step_by(2) {
        page.fill(DIRT);
    }

    let preopened_directories = preopens::get_directories().len();
    Ok(format!(
        "{{\"static_nonzero_bytes\":{static_nonzero_bytes},\"seeded_changed_bytes\":{seeded_changed_bytes},\"grown_nonzero_bytes\":{grown_nonzero_bytes},\"grown_bytes\":{},\"preopened_directories\":{preopened_directories}}}",
        grown.len()
    ))
}

/// `pages` new pages of linear memory, as `memory.grow` hands them over. The allocator never
/// sees them, so nothing but the host has written them before the probe reads them.
fn grow_memory(pages: usize) -> Result<&'static mut [u8], &'static str> {
    let first_page = core::arch::wasm32::memory_grow(0, pages);
    if first_page == usize::MAX {
        return Err("memory.grow refused");
    }
    // SAFETY: the pages were just added to this instance's memory and belong to no allocation.
    Ok(unsafe {
        std::slice::from_raw_parts_mut(
            (first_page * WASM_PAGE_BYTES) as *mut u8,
            pages * WASM_PAGE_BYTES,
        )
    })
}

/// How many bytes of `memory` are not `expected`. Reads every byte through a volatile load, so
/// the compiler cannot assume what the memory holds.
fn bytes_other_than(expected: u8, memory: &[u8]) -> usize {
    memory
        .iter()
        .filter(|byte| unsafe { std::ptr::read_volatile(*byte) } != expected)
        .count()
}
