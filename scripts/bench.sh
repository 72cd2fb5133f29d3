#!/usr/bin/env bash
# make bench: the benchmark harness (bench/harness) against a private lattice with the application
# and the hello-world floor, then against the native build (the same services as plain processes,
# bench/native) on the same NATS set-up, then the two side by side: what the platform costs.
# Figures go to the terminal and to .state/bench-results/<time>-<instance>-<build>.json.
#   scripts/bench.sh [run]   the `bench` lattice: one NATS server (24222), one host (HTTP 28000);
#                            then the native build on one NATS server (HTTP 28101-28103)
#   scripts/bench.sh ha      the `bench-ha` lattice (3 NATS servers from 26222, 2 hosts, HTTP
#                            30000 and 30001), once per replica count in BENCH_REPLICAS ("1 3"),
#                            each on fresh state; then the runs side by side: what replication costs
#   Knobs: BENCH_ARGS="--orders 2000 --seconds 10 --connections 50" make bench
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
results=$ROOT/.state/bench-results  # outside .state/bench*, which every run wipes
mkdir -p "$results"

# One benchmark on fresh state of `instance` keeping `replicas` copies, of the lattice or, with
# build `native`, of the native build on the instance's NATS alone; prints the report's path.
bench() {
  local instance=$1 replicas=$2 build=$3 started out layout native=()
  instance_ports "$instance"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  out=$results/${started//:/}-$instance-r$replicas-$build.json
  scripts/lattice.sh clean "$instance" >/dev/null
  trap 'say "stopping the benchmark (logs kept in .state/'"$instance"'/logs)"; scripts/lattice.sh down '"$instance"' >/dev/null' EXIT
  if [[ $build == native ]]; then
    say "starting NATS alone for the native build ($NATS_PORT)" >&2
    scripts/lattice.sh nats "$instance" >&2
    native=(--native "$RELEASE/orders-native" --native-port $((HTTP_PORT + 101)))
    layout="native: billing, order and notify as processes, $NATS_SERVERS NATS server(s)"
  else
    say "starting a fresh benchmark lattice '$instance' ($NATS_SERVERS NATS server(s) from $NATS_PORT, $HOSTS host(s), $replicas replica(s); HTTP $HTTP_PORT)" >&2
    ORDERS_REPLICAS=$replicas scripts/lattice.sh up "$instance" >&2
    layout="$instance: $NATS_SERVERS NATS server(s), $HOSTS host(s), $replicas replica(s) of every stream and bucket"
  fi
  # The load enters through the first host's HTTP listener; every host's component instances
  # take their share of it, as wRPC subscribers of the same queue groups. The native build's
  # services each listen on their own port; the harness sends each path there.
  ORDERS_BASE_URL=http://127.0.0.1:$HTTP_PORT ORDERS_NATS_URL=$NATS_URLS ORDERS_MONITOR_URLS=$MONITOR_URLS \
  ORDERS_NATS_CREDS=$ROOT/.state/$instance/nats/admin.creds \
  ORDERS_ADMIN_TOKEN=$(tr -d '\n' < "$ROOT/.state/$instance/secrets/admin-token") \
  ORDERS_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) ORDERS_BENCH_STARTED=$started \
  ORDERS_BENCH_LATTICE="$layout" \
    "$RELEASE/orders-bench" run --state-dir "$ROOT/.state/$instance" --wrk-scripts "$ROOT/bench/wrk" \
    --out "$out" "${native[@]}" ${BENCH_ARGS:-} >&2
  say "the books after the run: each balance against its ledger, each debit against its notification" >&2
  ORDERS_NATS_URL=$NATS_URLS ORDERS_NATS_CREDS=$ROOT/.state/$instance/nats/admin.creds \
    "$RELEASE/orders-admin" audit --wait 30 >&2
  say "stopping the benchmark (logs kept in .state/$instance/logs)" >&2
  scripts/lattice.sh down "$instance" >/dev/null
  trap - EXIT
  echo "$out"
}

reports=()
case ${1:-run} in
  ha)
    for replicas in ${BENCH_REPLICAS:-1 3}; do reports+=("$(bench bench-ha "$replicas" lattice)"); done
    say "what replication costs: the runs side by side"
    ;;
  *)
    reports+=("$(bench bench 1 lattice)" "$(bench bench 1 native)")
    say "what the platform costs: the lattice against the native build"
    ;;
esac
"$RELEASE/orders-bench" compare "${reports[@]}"
cp "${reports[0]}" "$results/latest.json"
