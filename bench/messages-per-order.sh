#!/usr/bin/env bash
# NATS messages per fully processed order, on the `make run` lattice: NATS's own counters
# (monitoring endpoint /varz, in_msgs and out_msgs) before and after N orders placed one at a
# time by a new, funded user, then a check that all N were paid and notified.
#   bench/messages-per-order.sh [N]      (default 200)
set -euo pipefail
N=${1:-200}; BASE=http://127.0.0.1:8000; MON=http://127.0.0.1:8222
user=probe$RANDOM$RANDOM
KEY=$(curl -s -X POST $BASE/CreateUser -d "{\"user\":\"$user\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
curl -s -X POST $BASE/DepositCash -H "Authorization: Bearer $KEY" -d "{\"user\":\"$user\",\"sum\":1000000}" >/dev/null
sleep 3
varz() { curl -s $MON/varz | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["in_msgs"], d["out_msgs"])'; }
read in0 out0 < <(varz)
for i in $(seq $N); do curl -s -o /dev/null -X POST $BASE/Order -H "Authorization: Bearer $KEY" -d "{\"user\":\"$user\",\"sum\":1}"; done
sleep 5
read in1 out1 < <(varz)
bal=$(curl -s "$BASE/Balance?user=$user" -H "Authorization: Bearer $KEY")
n=$(curl -s "$BASE/List?user=$user" -H "Authorization: Bearer $KEY" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["notifications"]))')
python3 -c "print(f'orders $N: messages into NATS per order {($in1-$in0)/$N:.1f}, out of NATS per order {($out1-$out0)/$N:.1f}')"
echo "balance: $bal; notifications: $n"
