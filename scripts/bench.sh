#!/usr/bin/env bash
# make bench: a private lattice with the application and the hello-world floor, the benchmark
# harness (bench/harness) against it, then the lattice stopped. Figures go to the terminal and to
# .state/bench-results/<time>.json (latest.json is the last run).
#   scripts/bench.sh [run]   the `bench` lattice: one NATS server (24222), one host (HTTP 28000)
#   scripts/bench.sh ha      the `bench-ha` lattice (3 NATS servers from 26222, 2 hosts, HTTP
#                            30000 and 30001), once per replica count in BENCH_REPLICAS ("1 3"),
#                            each on fresh state; then the runs side by side: what replication costs
#   Knobs: BENCH_ARGS="--orders 2000 --seconds 10 --connections 50" make bench
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
results=$ROOT/.state/bench-results  # outside .state/bench*, which every run wipes
mkdir -p "$results"

# One benchmark on a fresh lattice `instance` keeping `replicas` copies; prints the report's path.
bench() {
  local instance=$1 replicas=$2 started out
  instance_ports "$instance"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  out=$results/${started//:/}-$instance-r$replicas.json
  say "starting a fresh benchmark lattice '$instance' ($NATS_SERVERS NATS server(s) from $NATS_PORT, $HOSTS host(s), $replicas replica(s); HTTP $HTTP_PORT)" >&2
  scripts/lattice.sh clean "$instance" >/dev/null
  trap 'say "stopping the benchmark lattice (logs kept in .state/'"$instance"'/logs)"; scripts/lattice.sh down '"$instance"' >/dev/null' EXIT
  ORDERS_REPLICAS=$replicas scripts/lattice.sh up "$instance" >&2
  # The load enters through the first host's HTTP listener; every host's component instances
  # take their share of it, as wRPC subscribers of the same queue groups.
  ORDERS_BASE_URL=http://127.0.0.1:$HTTP_PORT ORDERS_NATS_URL=$NATS_URLS ORDERS_MONITOR_URLS=$MONITOR_URLS \
  ORDERS_NATS_CREDS=$ROOT/.state/$instance/nats/admin.creds \
  ORDERS_ADMIN_TOKEN=$(tr -d '\n' < "$ROOT/.state/$instance/secrets/admin-token") \
  ORDERS_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) ORDERS_BENCH_STARTED=$started \
  ORDERS_BENCH_LATTICE="$instance: $NATS_SERVERS NATS server(s), $HOSTS host(s), $replicas replica(s) of every stream and bucket" \
    "$RELEASE/orders-bench" --state-dir "$ROOT/.state/$instance" --wrk-scripts "$ROOT/bench/wrk" \
    --out "$out" ${BENCH_ARGS:-} >&2
  cp "$out" "$results/latest.json"
  say "the benchmark lattice's books after the run: each balance against its ledger, each debit against its notification" >&2
  ORDERS_NATS_URL=$NATS_URLS ORDERS_NATS_CREDS=$ROOT/.state/$instance/nats/admin.creds \
    "$RELEASE/orders-admin" audit --wait 30 >&2
  say "stopping the benchmark lattice (logs kept in .state/$instance/logs)" >&2
  scripts/lattice.sh down "$instance" >/dev/null
  trap - EXIT
  echo "$out"
}

case ${1:-run} in
  ha)
    reports=()
    for replicas in ${BENCH_REPLICAS:-1 3}; do reports+=("$(bench bench-ha "$replicas")"); done
    say "what replication costs: the runs side by side"
    python3 - "${reports[@]}" <<'PY'
import json, sys
runs = [json.load(open(path)) for path in sys.argv[1:]]
rows = [
    ("GET /Hello per s", "hello_per_s", "{:.0f}"),
    ("POST /Order per s, alone", "order_posts_alone_per_s", "{:.0f}"),
    ("orders settled per s (max rate)", "orders_per_s", "{:.0f}"),
    ("busy account's orders per s", "busy_account_orders_per_s", "{:.0f}"),
    ("CPU ms per hello request", "cpu_ms_per_hello", "{:.2f}"),
    ("CPU ms per POST /Order alone", "cpu_ms_per_order_post_alone", "{:.2f}"),
    ("CPU ms per settled order", "cpu_ms_per_order", "{:.2f}"),
    ("NATS messages per settled order", "nats_messages_per_order", "{:.1f}"),
]
names = [r["settings"]["lattice"].split(", ")[-1].split(" of ")[0] for r in runs]
print(f"{'medians [min - max]':36}" + "".join(f"{n:>26}" for n in names))
for label, key, fmt in rows:
    cells = []
    for r in runs:
        s = r["summary"][key]
        cells.append(f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]")
    print(f"{label:36}" + "".join(f"{c:>26}" for c in cells))
print(f"{'p99 POST -> notified, half rate (ms)':36}" + "".join(f"{r['pipeline_fixed_rate']['notified_p99_ms']:>26.1f}" for r in runs))
print(f"{'orders refused, unpaid, unfinished':36}" + "".join(f"{r['summary']['lost_or_refused']:>26}" for r in runs))
print("reports: " + ", ".join(sys.argv[1:]))
PY
    ;;
  *) bench bench 1 >/dev/null ;;
esac
