#!/usr/bin/env bash
# Pushes every artifact the cluster pulls to its pinned OCI ref: the four components
# (wasm32-wasip2, architecture-free), pulled by the hosts, and the host image
# (host-image.sh: our host with its built-in capabilities), pulled by the nodes for the host pods.
#
#   deploy/k8s/push.sh            build, package and push (run on a machine that reaches the registry)
#   deploy/k8s/push.sh --dry-run  build and package, print what would be pushed
#
# Needs: umoci (to build the host image) and skopeo (to push it), both Debian packages, and
# registry credentials in WASH_REG_USER / WASH_REG_PASSWORD when the registry asks for them. For a
# plain-HTTP in-cluster registry reached through a port-forward, set PUSH_REGISTRY=localhost:5000
# and PUSH_INSECURE=1: artifacts are then pushed there but keep the refs the cluster resolves
# (cluster.yaml `registry`). The host image is built for this machine's architecture: push from a
# machine of the nodes' architecture.
set -euo pipefail
K8S=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$K8S/../.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
dry_run=false
[[ ${1:-} == --dry-run ]] && dry_run=true
command -v skopeo >/dev/null || $dry_run || { echo "skopeo is missing: apt-get install skopeo" >&2; exit 1; }

say "building components and host tools (make build)"
make --no-print-directory build

# name, local artifact, OCI ref: one line per artifact, from the same derivation as app/wadm.yaml.
"$RELEASE/orders-manifest" refs --settings "$K8S/cluster.yaml" "$ROOT/wadm.yaml" |
while read -r name artifact ref; do
  push_ref=$ref
  [[ -n ${PUSH_REGISTRY:-} ]] && push_ref=$PUSH_REGISTRY/${ref#*/}
  if [[ $artifact == *.oci.tar ]]; then
    "$K8S/host-image.sh" "$artifact"
  fi
  if $dry_run; then
    echo "would push $artifact -> $push_ref"
    continue
  fi
  say "pushing $name -> $push_ref"
  if [[ $artifact == *.oci.tar ]]; then
    options=()
    [[ -n ${PUSH_INSECURE:-} ]] && options+=(--dest-tls-verify=false)
    [[ -n ${WASH_REG_USER:-} ]] && options+=(--dest-creds "$WASH_REG_USER:${WASH_REG_PASSWORD:-}")
    skopeo copy "${options[@]}" "oci-archive:$artifact" "docker://$push_ref"
  else
    insecure=()
    [[ -n ${PUSH_INSECURE:-} ]] && insecure=(--insecure)
    "$WASH" push "${insecure[@]}" "$push_ref" "$artifact"
  fi
done
