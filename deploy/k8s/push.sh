#!/usr/bin/env bash
# Pushes every artifact the cluster manifest (app/wadm.yaml) names to its pinned OCI ref:
# the three components (wasm32-wasip2, architecture-free) and the three providers as provider
# archives holding static musl binaries for x86_64 and aarch64 Linux (the host image runs them
# on either).
#
#   deploy/k8s/push.sh            build, package and push (run on a machine that reaches the registry)
#   deploy/k8s/push.sh --dry-run  build and package, print what would be pushed
#
# Needs: rustup targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl, a linker for
# aarch64 (e.g. `cargo install cargo-zigbuild` + zig, used when present), and registry credentials
# in WASH_REG_USER / WASH_REG_PASSWORD when the registry asks for them. For a plain-HTTP
# in-cluster registry reached through a port-forward, set PUSH_REGISTRY=localhost:5000: artifacts
# are then pushed there but keep the refs the host pods resolve (cluster.yaml `registry`).
set -euo pipefail
K8S=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$K8S/../.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
dry_run=false
[[ ${1:-} == --dry-run ]] && dry_run=true

MUSL_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
declare -A WASH_ARCH=([x86_64-unknown-linux-musl]=x86_64-linux [aarch64-unknown-linux-musl]=aarch64-linux)
declare -A PROVIDER_CRATE=([http-server]=http-server-provider [messaging]=messaging-jetstream-provider
  [keyvalue]=keyvalue-jetstream-provider)
CARGO=(cargo --config "$ORDERS_CACHE/patches/config.toml")

say "building components and host tools (make build)"
make --no-print-directory build

build_musl() {  # target crate
  if [[ $1 == x86_64-* ]] || ! command -v cargo-zigbuild >/dev/null; then
    "${CARGO[@]}" build --release --target "$1" -p "$2"
  else
    "${CARGO[@]}" zigbuild --release --target "$1" -p "$2"
  fi
}

out=$ROOT/build/k8s
mkdir -p "$out"
# name, local artifact, OCI ref: one line per artifact, from the same derivation as app/wadm.yaml.
"$RELEASE/orders-manifest" refs --settings "$K8S/cluster.yaml" "$ROOT/wadm.yaml" |
while read -r name artifact ref; do
  if [[ $artifact == *.par.gz ]]; then
    crate=${PROVIDER_CRATE[$name]:?no provider crate known for $name}
    archive=$out/$name.par.gz
    rm -f "$archive"
    for target in "${MUSL_TARGETS[@]}"; do
      build_musl "$target" "$crate"
      binary=$CARGO_TARGET_DIR/$target/release/$crate
      if [[ ! -f $archive ]]; then
        "$WASH" par create --binary "$binary" --arch "${WASH_ARCH[$target]}" --vendor orders-lattice \
          --name "$name" --version "${ref##*:}" --compress --destination "$archive" >/dev/null
      else
        "$WASH" par insert --binary "$binary" --arch "${WASH_ARCH[$target]}" "$archive" >/dev/null
      fi
    done
    artifact=$archive
  fi
  push_ref=$ref
  [[ -n ${PUSH_REGISTRY:-} ]] && push_ref=$PUSH_REGISTRY/${ref#*/}
  if $dry_run; then
    echo "would push $artifact -> $push_ref"
  else
    say "pushing $name -> $push_ref"
    insecure=()
    [[ -n ${PUSH_INSECURE:-} ]] && insecure=(--insecure)
    "$WASH" push "${insecure[@]}" "$push_ref" "$artifact"
  fi
done
