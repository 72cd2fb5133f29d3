#!/usr/bin/env bash
# NATS messages per fully processed order, on the `make run` lattice: NATS's own counters
# (monitoring endpoint /varz, in_msgs and out_msgs) before and after N orders, then a check that
# every order was paid and notified. Three traffic shapes:
#   spread    N orders for N different users, one at a time
#   one user  N orders for one user, one at a time
#   hot       N orders for one user from 4 concurrent clients (a busy account)
# With --by-kind, the spread shape's messages are also recorded as a subscriber of `>` sees them
# (`orders-admin tail '>'`) and told apart by kind: wRPC calls, JetStream, the application's subjects.
#   bench/messages-per-order.sh [N] [--by-kind]      (default 200)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/env.sh"
N=${1:-200}; BY_KIND=${2:-}; BASE=http://127.0.0.1:8000; MON=http://127.0.0.1:8222
export BASE

varz() { curl -s $MON/varz | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["in_msgs"], d["out_msgs"])'; }

# Prints "<user> <key>" of a new user funded with 1,000,000.
new_user() {
  local user=probe$RANDOM$RANDOM key
  key=$(curl -s -X POST $BASE/CreateUser -d "{\"user\":\"$user\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  curl -s -o /dev/null -X POST $BASE/DepositCash -H "Authorization: Bearer $key" -d "{\"user\":\"$user\",\"sum\":1000000}"
  echo "$user $key"
}

# Reads "<user> <key>" lines and places one order of 1 for each, with $1 clients at once.
place() {
  xargs -P "$1" -L 1 sh -c 'curl -s -o /dev/null -X POST $BASE/Order -H "Authorization: Bearer $1" -d "{\"user\":\"$0\",\"sum\":1}"'
}

# How many of the users' orders were paid: their balances' shortfall from 1,000,000.
paid() {
  sort -u | while read -r user key; do
    curl -s "$BASE/Balance?user=$user" -H "Authorization: Bearer $key" | python3 -c 'import json,sys; print(1000000 - json.load(sys.stdin)["balance"])'
  done | python3 -c 'import sys; print(sum(int(l) for l in sys.stdin))'
}

measure() {
  local name=$1 clients=$2 orders=$3 tail_pid=
  sleep 3
  if [[ $name == spread* && $BY_KIND == --by-kind ]]; then
    (cd "$ROOT" && exec "$RELEASE/orders-admin" tail '>') > "$work/tail" &
    tail_pid=$!
    sleep 1
  fi
  read -r in0 out0 < <(varz)
  place "$clients" < "$orders"
  # Until billing's and notify's consumers have nothing waiting or in hand (at most 60 s).
  for _ in $(seq 120); do sleep 0.5; "$RELEASE/orders-nats-monitor" $MON drained && break; done
  read -r in1 out1 < <(varz)
  # Stopped before the balances are read, which are requests of their own.
  [[ -z $tail_pid ]] || { kill "$tail_pid"; wait "$tail_pid" 2>/dev/null || true; }
  python3 -c "print(f'$name: {$N} orders, $(paid < "$orders") paid; NATS messages per order: {($in1-$in0)/$N:.1f} in, {($out1-$out0)/$N:.1f} out')"
  if [[ -n $tail_pid ]]; then
    echo "  the same orders' messages by kind, per order, as a subscriber of '>' sees them"
    echo "  (that subscriber is itself a receiver: it doubles this shape's 'out' figure):"
    "$ROOT/bench/messages-by-kind.py" "$N" < "$work/tail" | sed 's/^/  /'
  fi
}

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for _ in $(seq "$N"); do new_user; done > "$work/spread"
measure "spread (one order per user)" 1 "$work/spread"
one=$(new_user); for _ in $(seq "$N"); do echo "$one"; done > "$work/one"
measure "one user, one at a time" 1 "$work/one"
hot=$(new_user); for _ in $(seq "$N"); do echo "$hot"; done > "$work/hot"
measure "one user, 4 clients at once" 4 "$work/hot"
