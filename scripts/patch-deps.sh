#!/usr/bin/env bash
# Prepares patched copies of upstream crates and a cargo config that substitutes them. The
# copies are made from cargo's registry (the crate is our dependency anyway) into
# $ORDERS_CACHE/patches, outside the checkout; nothing of them is committed. `make` passes the
# generated config to cargo with `--config`. The patches are ours, applied below.
#
# wrpc-transport-nats 0.29.0 (the wRPC NATS transport of the wasmCloud 1.9 host and
# the provider SDKs). Its client routes incoming NATS messages to in-flight calls in one task
# that `select!`s, at random, between "a message arrived" and "register a new call's
# subscriptions". A call enqueues its registration and then publishes; under a burst of
# concurrent calls the reply can be taken first, finds no subscriber, and is dropped: the caller
# sees "unexpected end of file" (or waits forever). Seen on the first burst after a deployment.
# The patch makes the select `biased` toward registrations, which are always enqueued before
# their replies can arrive.
#
# wasmcloud-host 0.27.1 (wasmCloud 1.9's host library). For every call a component makes (to a
# provider or another component) it builds a new wRPC client: a wildcard subscription to a fresh
# inbox, a demultiplexing task, and an unsubscription when the call ends, i.e. two extra NATS
# protocol operations per call and a walk of NATS's subscription structures for each. The patch
# keeps one client per target (lattice and target id) and shares it among all calls, as the
# provider SDK does for a provider's calls; replies are told apart by their subjects inside it.
#
# wasmcloud-runtime 0.12.0 (the host's component runtime). A component's execution runs in a span
# of the runtime's (`handle` for HTTP, `handle_message` for messaging) made at debug level, so at
# the usual info level it does not exist; and where it does, it is linked to the invocation's
# span by `set_parent` after it was entered, which tracing-opentelemetry 0.32 ignores. Either way
# every invocation's work starts a trace of its own (README, Traces). The patch makes those two
# spans info level and children of the invocation's span from the start: one order, one trace.
# Also: every invocation gets a fresh instance in a slot of wasmtime's pooling allocator, and when
# the instance ends the runtime kept only the first 10 KiB of its linear memory resident: the rest
# was given back to the kernel (`madvise`) and every page the next instance touched faulted in
# again, 8-9 page faults per HTTP request (docs/performance.md). Where Linux has the PAGEMAP_SCAN
# ioctl (6.7 and later), the patch keeps up to 2 MiB resident and lets wasmtime find the pages an
# instance dirtied and reset just those; elsewhere the runtime keeps its setting.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PATCHES=$ORDERS_CACHE/patches
CONFIG=$PATCHES/config.toml
# Bumped whenever a patch below changes, so caches made by an earlier version are redone.
PATCH_SET=7
STAMP=$PATCHES/patch-set
TRANSPORT_VERSIONS=(0.29.0)
HOST_VERSION=0.27.1
RUNTIME_VERSION=0.12.0
[[ -f $CONFIG && $(cat "$STAMP" 2>/dev/null) == "$PATCH_SET" ]] && exit 0
mkdir -p "$PATCHES"
registry_copy() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$2" 2>/dev/null | head -1; }
if [[ -z $(registry_copy wrpc-transport-nats 0.29.0) || -z $(registry_copy wasmcloud-host "$HOST_VERSION") ||
      -z $(registry_copy wasmcloud-runtime "$RUNTIME_VERSION") ]]; then
  # Fetch the exact versions through a throwaway manifest (the workspace may not resolve yet).
  fetcher=$(mktemp -d)
  mkdir -p "$fetcher/src" && touch "$fetcher/src/lib.rs"
  cat > "$fetcher/Cargo.toml" <<TOML
[package]
name = "fetch-patched"
version = "0.0.0"
edition = "2021"
[dependencies]
a = { package = "wrpc-transport-nats", version = "=0.29.0" }
b = { package = "wasmcloud-host", version = "=$HOST_VERSION" }
c = { package = "wasmcloud-runtime", version = "=$RUNTIME_VERSION" }
TOML
  (cd "$fetcher" && cargo fetch --quiet)
  rm -rf "$fetcher"
fi

# patch_crate <crate> <version>: a fresh copy of the registry's sources with our edit (each upstream
# text must occur exactly once, or nothing is built from the copy); adds it to the cargo config.
patch_crate() {
  local dest=$PATCHES/$1-$2
  rm -rf "$dest"
  cp -r "$(registry_copy "$1" "$2")" "$dest"
  python3 - "$1" "$dest" <<'PY'
import sys
crate, dest = sys.argv[1:]
# crate -> [(file, what it is, upstream text, our text)]
EDITS = {
    "wrpc-transport-nats": [("src/lib.rs", "the demultiplexer loop", """                    select! {
                        Some(msg) = sub.next() => handle_message(&mut subs, msg).await,
                        Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),""", """                    select! {
                        biased;
                        Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),
                        Some(msg) = sub.next() => handle_message(&mut subs, msg).await,""")],
    "wasmcloud-host": [("src/wasmbus/handler.rs", "the outgoing call's client", """        let nats = wrpc_transport_nats::Client::new(
            Arc::clone(&self.nats),
            format!("{}.{id}", &self.lattice),
            None,
        )
        .await
        .map_err(Error::Handler)?;""", """        // orders-lattice: one client per target, shared by every call (scripts/patch-deps.sh).
        static CLIENTS: std::sync::OnceLock<
            std::sync::Mutex<HashMap<String, wrpc_transport_nats::Client>>,
        > = std::sync::OnceLock::new();
        let clients = CLIENTS.get_or_init(Default::default);
        let prefix = format!("{}.{id}", &self.lattice);
        let cached = clients.lock().unwrap().get(&prefix).cloned();
        let nats = match cached {
            Some(client) => client,
            None => {
                let client =
                    wrpc_transport_nats::Client::new(Arc::clone(&self.nats), prefix.clone(), None)
                        .await
                        .map_err(Error::Handler)?;
                // A client made meanwhile by a concurrent first call wins; this one is dropped.
                clients.lock().unwrap().entry(prefix).or_insert(client).clone()
            }
        };""")],
    "wasmcloud-runtime": [
        ("src/component/http.rs", "the HTTP invocation's span", """    #[instrument(level = "debug", skip_all)]
    async fn handle(
        &self,
        cx: C,""", """    // orders-lattice: the invocation's span as parent, so its trace reaches the component.
    #[instrument(level = "info", skip_all, parent = cx.deref())]
    async fn handle(
        &self,
        cx: C,"""),
        ("src/component/messaging/mod.rs", "the message invocation's span", """    #[instrument(level = "debug", skip_all)]
    async fn handle_message(
        &self,
        cx: C,""", """    // orders-lattice: the invocation's span as parent, so its trace reaches the component.
    #[instrument(level = "info", skip_all, parent = cx.deref())]
    async fn handle_message(
        &self,
        cx: C,"""),
        ("src/runtime.rs", "the pooling allocator's resident memory", """            .linear_memory_keep_resident(10 * 1024)
            .table_keep_resident(10 * 1024);""", """            .linear_memory_keep_resident(10 * 1024)
            .table_keep_resident(10 * 1024);
        // orders-lattice: what an instance dirtied stays resident and is reset in place
        // (scripts/patch-deps.sh). Without the ioctl the first 2 MiB would be reset by `memset`
        // every time, dirty or not, so the old setting stays there.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pooling_config
                .linear_memory_keep_resident(2 * 1024 * 1024)
                .pagemap_scan(wasmtime::Enabled::Yes);
        }"""),
    ],
}
for file, what, upstream, ours in EDITS[crate]:
    path = f"{dest}/{file}"
    source = open(path).read()
    if source.count(upstream) != 1:
        sys.exit(f"{path}: {what} is not as expected; patch not applied")
    open(path, "w").write(source.replace(upstream, ours))
PY
  echo "$1-${2//./-} = { package = \"$1\", path = \"$dest\" }" >> "$CONFIG.tmp"
}

{
  echo "# Generated by scripts/patch-deps.sh: see the comment there."
  echo "[patch.crates-io]"
} > "$CONFIG.tmp"
for version in "${TRANSPORT_VERSIONS[@]}"; do
  patch_crate wrpc-transport-nats "$version"
done
patch_crate wasmcloud-host "$HOST_VERSION"
patch_crate wasmcloud-runtime "$RUNTIME_VERSION"

mv "$CONFIG.tmp" "$CONFIG"
echo "$PATCH_SET" > "$STAMP"
say "patched wrpc-transport-nats ${TRANSPORT_VERSIONS[*]}, wasmcloud-host $HOST_VERSION and wasmcloud-runtime $RUNTIME_VERSION into $PATCHES"
