#!/usr/bin/env bash
# Prepares patched copies of two upstream crates and a cargo config that substitutes them. The
# copies are made from cargo's registry (the crates are our dependencies anyway) into
# $ORDERS_CACHE/patches, outside the checkout; nothing of them is committed. `make` passes the
# generated config to cargo with `--config`. Both patches are ours, applied below.
#
# 1. wrpc-transport-nats 0.28.1 and 0.29.0 (the wRPC NATS transport of the wasmCloud 1.9 host and
#    the provider SDKs). Its client routes incoming NATS messages to in-flight calls in one task
#    that `select!`s, at random, between "a message arrived" and "register a new call's
#    subscriptions". A call enqueues its registration and then publishes; under a burst of
#    concurrent calls the reply can be taken first, finds no subscriber, and is dropped: the caller
#    sees "unexpected end of file" (or waits forever). Seen on the first burst after a deployment.
#    The patch makes the select `biased` toward registrations, which are always enqueued before
#    their replies can arrive.
#
# 2. wasmcloud-provider-http-server 0.27.1 (the HTTP server provider), path mode:
#    - A client that went away (a closed connection, a client timeout) dropped the wRPC call
#      half-way. The host had accepted the call and waited for the rest of it until its
#      max_execution_time, holding one of the component's `instances` places; 50 such calls left
#      the component unanswerable (README, Troubleshooting). The call now runs in its own task and
#      is completed whatever the client does.
#    - A path nobody serves was answered with plain text; it is now the API's JSON error
#      (404 `unknown_path`), like every other error.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PATCHES=$ORDERS_CACHE/patches
CONFIG=$PATCHES/config.toml
# Bumped whenever a patch below changes, so caches made by an earlier version are redone.
PATCH_SET=2
STAMP=$PATCHES/patch-set
TRANSPORT_VERSIONS=(0.28.1 0.29.0)
HTTP_SERVER_VERSION=0.27.1
[[ -f $CONFIG && $(cat "$STAMP" 2>/dev/null) == "$PATCH_SET" ]] && exit 0
mkdir -p "$PATCHES"
registry_copy() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$2" 2>/dev/null | head -1; }
if [[ -z $(registry_copy wrpc-transport-nats 0.29.0) || -z $(registry_copy wrpc-transport-nats 0.28.1) ||
      -z $(registry_copy wasmcloud-provider-http-server "$HTTP_SERVER_VERSION") ]]; then
  # Fetch the exact versions through a throwaway manifest (the workspace may not resolve yet).
  fetcher=$(mktemp -d)
  mkdir -p "$fetcher/src" && touch "$fetcher/src/lib.rs"
  cat > "$fetcher/Cargo.toml" <<TOML
[package]
name = "fetch-patched"
version = "0.0.0"
edition = "2021"
[dependencies]
a = { package = "wrpc-transport-nats", version = "=0.28.1" }
b = { package = "wrpc-transport-nats", version = "=0.29.0" }
c = { package = "wasmcloud-provider-http-server", version = "=$HTTP_SERVER_VERSION" }
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
# crate -> (file, what it is, upstream text, our text)
EDITS = {
    "wrpc-transport-nats": ("src/lib.rs", "the demultiplexer loop", """                    select! {
                        Some(msg) = sub.next() => handle_message(&mut subs, msg).await,
                        Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),""", """                    select! {
                        biased;
                        Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),
                        Some(msg) = sub.next() => handle_message(&mut subs, msg).await,"""),
    "wasmcloud-provider-http-server": ("src/path.rs", "handle_request", """    let path = req.uri().path();
    let Some((target_component, wrpc)) = router.read().await.paths.get(path).cloned() else {
        Err((http::StatusCode::NOT_FOUND, "path not found"))?
    };
    axum::response::Result::<_, axum::response::ErrorResponse>::Ok(
        invoke_component(
            &wrpc,
            &target_component,
            req,
            timeout,
            settings.cache_control.as_ref(),
        )
        .await,
    )
}""", """    let path = req.uri().path().to_string();
    let Some((target_component, wrpc)) = router.read().await.paths.get(path.as_str()).cloned() else {
        let error = serde_json::json!({
            "status": false,
            "error": "unknown_path",
            "message": format!("nothing is served at {path} (paths are exact and case-sensitive)"),
        });
        Err((
            http::StatusCode::NOT_FOUND,
            [(http::header::CONTENT_TYPE, "application/json")],
            error.to_string(),
        ))?
    };
    // Its own task: a client that goes away must not abandon the wRPC call half-way.
    let cache_control = settings.cache_control.clone();
    let call = tokio::spawn(async move {
        axum::response::IntoResponse::into_response(
            invoke_component(&wrpc, &target_component, req, timeout, cache_control.as_ref()).await,
        )
    });
    axum::response::Result::<_, axum::response::ErrorResponse>::Ok(call.await.map_err(|err| {
        (http::StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    })?)
}"""),
}
file, what, upstream, ours = EDITS[crate]
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
patch_crate wasmcloud-provider-http-server "$HTTP_SERVER_VERSION"

mv "$CONFIG.tmp" "$CONFIG"
echo "$PATCH_SET" > "$STAMP"
say "patched wrpc-transport-nats ${TRANSPORT_VERSIONS[*]} and wasmcloud-provider-http-server $HTTP_SERVER_VERSION into $PATCHES"
