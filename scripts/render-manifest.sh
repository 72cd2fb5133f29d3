#!/usr/bin/env bash
# Prints wadm.yaml for a lattice on other ports, with artifact paths made absolute, so that every
# instance deploys the one manifest we keep.   usage: render-manifest.sh NATS_PORT HTTP_PORT
set -euo pipefail
source "$(dirname "$0")/env.sh"
nats_port=${1:?NATS port}
http_port=${2:?HTTP port}
sed -e "s#nats://127.0.0.1:4222#nats://127.0.0.1:${nats_port}#g" \
    -e "s#address: 127.0.0.1:8000#address: 127.0.0.1:${http_port}#" \
    -e "s#file://\./#file://${ROOT}/#g" \
    "$ROOT/wadm.yaml"
