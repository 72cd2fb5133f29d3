#!/usr/bin/env bash
# make bench: a private lattice (NATS 24222, HTTP 28000) with the application and the hello-world
# floor, the benchmark harness (bench/harness) against it, then the lattice stopped. Figures go to
# the terminal and to .state/bench-results/<time>.json (latest.json is the last run).
#   Knobs: BENCH_ARGS="--orders 2000 --seconds 10 --connections 50" make bench
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
instance_ports bench
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
results=$ROOT/.state/bench-results  # outside .state/bench, which every run wipes

say "starting a fresh benchmark lattice (NATS $NATS_PORT, HTTP $HTTP_PORT)"
scripts/lattice.sh clean bench >/dev/null
trap 'say "stopping the benchmark lattice (logs kept in .state/bench/logs)"; scripts/lattice.sh down bench >/dev/null' EXIT
scripts/lattice.sh up bench

mkdir -p "$results"
out=$results/${started//:/}.json
ORDERS_BASE_URL=http://127.0.0.1:$HTTP_PORT ORDERS_NATS_URL=nats://127.0.0.1:$NATS_PORT \
ORDERS_NATS_CREDS=$ROOT/.state/bench/nats/admin.creds \
ORDERS_ADMIN_TOKEN=$(tr -d '\n' < "$ROOT/.state/bench/secrets/admin-token") \
ORDERS_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) ORDERS_BENCH_STARTED=$started \
  "$RELEASE/orders-bench" --state-dir "$ROOT/.state/bench" --wrk-scripts "$ROOT/bench/wrk" \
  --out "$out" ${BENCH_ARGS:-}
cp "$out" "$results/latest.json"
