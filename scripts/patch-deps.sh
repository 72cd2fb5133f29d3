#!/usr/bin/env bash
# Prepares patched copies of upstream crates and a cargo config that substitutes them. The
# copies are made from cargo's registry (the crate is our dependency anyway) into
# $ORDERS_CACHE/patches, outside the checkout; nothing of them is committed. `make` passes the
# generated config to cargo with `--config`. The patches are ours: scripts/patches/, one diff per
# crate. What each changes and why:
#
# wrpc-transport-nats 0.29.0 (the wRPC NATS transport of the wasmCloud 1.9 host and
# the provider SDKs). Its client routes incoming NATS messages to in-flight calls in one task
# that `select!`s, at random, between "a message arrived" and "register a new call's
# subscriptions". A call enqueues its registration and then publishes; under a burst of
# concurrent calls the reply can be taken first, finds no subscriber, and is dropped: the caller
# sees "unexpected end of file" (or waits forever). Seen on the first burst after a deployment.
# The patch makes the select `biased` toward registrations, which are always enqueued before
# their replies can arrive.
# It also adds a compact form of a call (`COMPACT_HEADER`), which every client uses when the
# parameters fit in the invocation message. A wRPC call was five NATS messages or more even when
# nothing streams: the invocation, the callee's handshake (telling its inbox), an empty "end of
# parameters" to that inbox, the results, an empty "end of results" (docs/performance.md: about
# 6.7 per call, 67 of an order's 82). In the compact form the invocation carries all of the root
# parameters, so the callee reads none after it; the callee sends its handshake only when the
# function has asynchronous parameters (streams, futures) to receive; and the results end
# without an end-of-stream message, as the caller reads exactly what it expects. A synchronous
# call is then the invocation and its results. The handshake and NATS's "no responders" come on
# the results' channel, so a call to nobody still fails at once. Calls without the header (other
# wRPC clients) are served as before; every client and server in this lattice is built with it.
#
# wrpc-transport 0.28.4 (wRPC's values and their encoding, under the transport). It sent every
# byte stream and every future as pending, on subjects of their own, even when it was complete
# when encoded ("TODO: Check if reader is resolved"): an HTTP request's body, read whole by our
# HTTP provider, cost its own messages and made the callee's handshake necessary. The patch sends
# a byte stream that has ended (up to 64 KiB) and a future that has resolved inline, in the form
# its decoders already read.
#
# wasmcloud-host 0.27.1 (wasmCloud 1.9's host library). For every call a component makes (to a
# provider or another component) it builds a new wRPC client: a wildcard subscription to a fresh
# inbox, a demultiplexing task, and an unsubscription when the call ends, i.e. two extra NATS
# protocol operations per call and a walk of NATS's subscription structures for each. The patch
# keeps one client per target (lattice and target id) and shares it among all calls, as the
# provider SDK does for a provider's calls; replies are told apart by their subjects inside it.
# It also lets the binary that embeds the host serve providers of its own in the host's process
# (`EmbeddedProviders` in the host's config, started for `wasmcloud+builtin://<name>` ahead of
# upstream's built-ins): such a provider gets its configuration, links and commands as a provider
# process would, on the host's RPC (data-plane) connection, and calls a component running on the
# host directly (`LocalComponents::handle_http`: one of its execution places, a fresh instance, as
# upstream's built-in HTTP server does), with no wRPC and no NATS. Our host serves our HTTP server
# so (lattice/host, embedded.rs).
# It also changes a component's specification (its links, in the lattice's LATTICEDATA bucket) by
# compare-and-swap on the entry's revision, retrying on a conflict. Upstream read the record,
# changed it and wrote it back; wadm puts a component's links at the same moment, so of 20 links
# put at once 16 to 19 were kept (tests/e2e links.rs), and a redeploy could leave a component
# without a link it declares, or with one still naming a deleted configuration.
#
# wadm 0.21.1 (wasmCloud's deployment manager). Its link scaler took a link as in place when any
# link from the same source to the same target under the same name was: of a component's two links
# to one provider for two packages (order to the messaging provider: wasmcloud:messaging and
# orders:lattice/stream-reader), the second was put only if both scalers happened to look before
# either link existed, and never again once lost. And a link whose configuration a new version of
# the manifest changed was never put again ("TODO(#88)"). The patch compares the interface package
# too, and puts a link again when its configuration differs.
#
# wasmcloud-runtime 0.12.0 (the host's component runtime). A component's execution runs in a span
# of the runtime's (`handle` for HTTP, `handle_message` for messaging) made at debug level, so at
# the usual info level it does not exist; and where it does, it is linked to the invocation's
# span by `set_parent` after it was entered, which tracing-opentelemetry 0.32 ignores. Either way
# every invocation's work starts a trace of its own (docs/operations.md, Traces). The patch makes those two
# spans info level and children of the invocation's span from the start: one order, one trace.
#
# Wasmtime 36 (docs/security-advisories.md). wasmCloud 1.x runs wasmtime 38.0.4, out of support
# with 19 advisories; the host moves to the supported 36.x line (48.x needs rustc 1.95, on which
# wasmcloud-host does not build). Every crate that names wasmtime, wasmtime-wasi or
# wasmtime-wasi-http asks for 36.0.20 in its diff: wasmcloud-host, wasmcloud-runtime,
# wasmcloud-core, wrpc-runtime-wasmtime, wrpc-interface-http, and wash (built beside the host, it
# would otherwise compile a second, vulnerable wasmtime). wasmcloud-runtime also passes 36's bound
# on a request's header memory, and asks `Send` store data where 36's bindgen wants it. wash drops
# wasmtime-wasi-http's `default-send-request` (its plugins may not make outgoing requests), which
# linked rustls 0.22 and webpki 0.102 into every binary built with it, the host's included.
#
# async-nats 0.39.0 (every NATS client here) names rustls-webpki 0.102 (four advisories) for two
# items that rustls's own 0.103 re-exports: the patch takes them from there. provider-archive
# 0.16.2 (the host reads provider archives with it) moves from astral-tokio-tar 0.5.6 (four
# advisories) to 0.6.4.
#
# wrpc-runtime-wasmtime 0.30.0 (how the host passes values between components and wRPC). A value
# crosses the host as a tree of wasmtime `Val`s, and a `list<u8>` (a message body, a key-value
# record) is one `Val::U8` per byte: the decoder read each byte through a boxed future of its own
# and the encoder gave each byte an encoder and a deferred slot; in a profile under load that was
# the largest single part of the host's time (docs/performance.md). The patch reads a `list<u8>`'s
# bytes in one read and writes them in one go; the wire format is the same.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PATCHES=$ORDERS_CACHE/patches
SOURCES=$(cd "$(dirname "$0")/patches" && pwd)
CONFIG=$PATCHES/config.toml
DIFFS=("$SOURCES"/*.diff)
# The copies are redone whenever a diff changes: the stamp is the diffs' own checksum.
PATCH_SET=$(cat "${DIFFS[@]}" | sha256sum | cut -d' ' -f1)
STAMP=$PATCHES/patch-set
[[ -f $CONFIG && $(cat "$STAMP" 2>/dev/null) == "$PATCH_SET" ]] && exit 0
mkdir -p "$PATCHES"
# What is patched, from the diffs' names: <crate>-<version>.diff.
CRATES=()
for diff in "${DIFFS[@]}"; do
  name=$(basename "$diff" .diff)
  CRATES+=("${name%-*}=${name##*-}")
done
registry_copy() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$2" 2>/dev/null | head -1; }
missing=()
for crate in "${CRATES[@]}"; do
  [[ -n $(registry_copy "${crate%=*}" "${crate#*=}") ]] || missing+=("$crate")
done
if ((${#missing[@]})); then
  # Fetch the exact versions through a throwaway manifest (the workspace may not resolve yet).
  fetcher=$(mktemp -d)
  mkdir -p "$fetcher/src" && touch "$fetcher/src/lib.rs"
  {
    printf '[package]\nname = "fetch-patched"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n'
    for crate in "${missing[@]}"; do
      echo "${crate%=*} = \"=${crate#*=}\""
    done
  } > "$fetcher/Cargo.toml"
  (cd "$fetcher" && cargo fetch --quiet)
  rm -rf "$fetcher"
fi

# patch_crate <crate> <version>: a fresh copy of the registry's sources with our patch
# (scripts/patches/<crate>-<version>.diff; `git apply` refuses it, and nothing is built from the
# copy, unless every hunk fits); adds it to the cargo config.
patch_crate() {
  local dest=$PATCHES/$1-$2
  rm -rf "$dest"
  cp -r "$(registry_copy "$1" "$2")" "$dest"
  # The ceiling keeps git from taking a repository around the cache for the copy's own.
  (cd "$dest" && GIT_CEILING_DIRECTORIES=$PATCHES git apply --whitespace=nowarn "$SOURCES/$1-$2.diff") ||
    { echo "scripts/patches/$1-$2.diff does not fit the registry's $1 $2; nothing patched" >&2; exit 1; }
  echo "$1-${2//./-} = { package = \"$1\", path = \"$dest\" }" >> "$CONFIG.tmp"
}

{
  echo "# Generated by scripts/patch-deps.sh: see the comment there."
  echo "[patch.crates-io]"
} > "$CONFIG.tmp"
for crate in "${CRATES[@]}"; do
  patch_crate "${crate%=*}" "${crate#*=}"
done

mv "$CONFIG.tmp" "$CONFIG"
echo "$PATCH_SET" > "$STAMP"
say "patched ${CRATES[*]//=/ } into $PATCHES"
