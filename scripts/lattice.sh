#!/usr/bin/env bash
# Starts, deploys, inspects and stops one lattice instance: NATS (JetStream), wadm, the wasmCloud
# host, and the orders application on it.
#
#   scripts/lattice.sh up|down|clean|status [run|test|bench|ha|bench-ha]
#   scripts/lattice.sh backup [instance] [archive]     (of a stopped instance)
#   scripts/lattice.sh restore [instance] <archive>    (into a stopped instance)
#   scripts/lattice.sh kill|revive <instance> <process>  (SIGKILL to the process and its supervisor,
#                                                      as a machine crash; start both again)
#   scripts/lattice.sh crash <instance> <process>      (SIGKILL to the process alone: its
#                                                      supervisor starts it again)
#   scripts/lattice.sh ready [instance]                (waits until every link is served)
#
# Processes are started in their own sessions, each under orders-supervisor (lattice/supervisor),
# which starts it again whenever it dies (ORDERS_SUPERVISE=off: bare, nothing restarts them), and
# stopped by the pids recorded in .state/<instance>: <name>.pid is the supervisor's, <name>.child-pid
# the process's (the host's providers are its children and stop with it); nothing else is ever
# signalled.
set -euo pipefail
source "$(dirname "$0")/env.sh"

action=${1:?usage: lattice.sh up|down|clean|status|backup|restore|nats [instance] [archive]}
instance=${2:-run}
instance_ports "$instance"
STATE=$ROOT/.state/$instance
LOGS=$STATE/logs
LATTICE=default
CTL=(--ctl-host 127.0.0.1 --ctl-port "$NATS_PORT")
# NATS credentials of this instance (docs/security.md): one creds file per identity, made by
# orders-nats-auth. Every wash command here speaks as the admin identity.
AUTH=$STATE/nats
export WASH_CTL_CREDS=$AUTH/admin.creds
# The instance's processes by name: one NATS server, wadm and one host; the `ha` instance runs
# nats-1..3, one wadm and host-1..2 (scripts/env.sh). One wadm: its state is in JetStream (3
# replicas), so it survives any one server, and a wadm restarted carries on from that state.
numbered() { if (($2 == 1)); then echo "$1"; else seq -f "$1-%g" "$2"; fi; }
mapfile -t NATS_NAMES < <(numbered nats "$NATS_SERVERS")
WADM_NAMES=(wadm)
mapfile -t HOST_NAMES < <(numbered host "$HOSTS")
PROCESSES=("${NATS_NAMES[@]}" "${WADM_NAMES[@]}" "${HOST_NAMES[@]}" telemetry)

running() { [[ -f $STATE/$1.pid ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

SUPERVISE=${ORDERS_SUPERVISE:-on}
[[ $SUPERVISE == on || $SUPERVISE == off ]] || { echo "ORDERS_SUPERVISE=$SUPERVISE: on or off" >&2; exit 2; }

# Starts `name` unless it is running, under its supervisor; its whole process group gets the pid
# file's number. `--wasmcloud-host` tells the supervisor the process is a host (a key of its own
# at each start; a dead one announced to wadm as stopped).
start() {
  local supervisor_flags=()
  [[ $1 == --wasmcloud-host ]] && { supervisor_flags=("$1"); shift; }
  local name=$1; shift
  if running "$name"; then
    say "$name already running (pid $(cat "$STATE/$name.pid"))"
    return
  fi
  local command=("$@")
  [[ $SUPERVISE == on ]] && command=("$RELEASE/orders-supervisor" --name "$name" \
    --pid-file "$STATE/$name.child-pid" "${supervisor_flags[@]}" -- "$@")
  setsid "${command[@]}" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
  say "$name started (pid $!, log $LOGS/$name.log$([[ $SUPERVISE == on ]] && echo ', restarted whenever it dies'))"
}

stop() {
  local name=$1
  running "$name" || { rm -f "$STATE/$name.pid"; return 0; }
  local pid; pid=$(cat "$STATE/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # Whatever of the group is still there after 10 s (a provider that ignored the host) is killed.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$STATE/$name.pid" "$STATE/$name.child-pid"
  say "$name stopped"
}

# True once the command succeeds, tried every quarter second until `seconds` have passed. The
# deadline is the clock's, not a count of tries: one try can itself take seconds (a wash query
# waits for every host's answer), which would stretch a 60-second wait to ten minutes.
within() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

wait_for() {
  local what=$1 seconds=$2; shift 2
  within "$seconds" "$@" && return 0
  echo "timed out after ${seconds}s waiting for $what; logs in $LOGS" >&2
  return 1
}

nats_listening() {
  local port
  for port in $(seq "$NATS_PORT" $((NATS_PORT + NATS_SERVERS - 1))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
  done
}
# A cluster takes JetStream requests once its servers have elected a meta leader.
jetstream_clustered() {
  curl -sf "http://127.0.0.1:$MONITOR_PORT/jsz" | json_field "d['meta_cluster'].get('leader') and d['meta_cluster']['cluster_size'] == $NATS_SERVERS or sys.exit(1)"
}
hosts_up() { [[ $("$WASH" get hosts "${CTL[@]}" -o json | json_field 'len(d["hosts"])') -ge $HOSTS ]]; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
app_status() { "$WASH" app status orders "${CTL[@]}" -o json 2>/dev/null | json_field 'd["status"]["status"]["type"]'; }
app_deployed() { [[ $(app_status) == deployed ]]; }
app_live() { app_deployed && links_live; }

# The instance's key configuration (docs/security.md): an HMAC secret for API keys and an admin
# token, made on first start from the OS's random source, kept in $STATE/secrets (0700, files 0600)
# and never printed. Only the token's SHA-256 reaches the lattice.
SECRETS=$STATE/secrets
ensure_secrets() {
  (umask 077 && mkdir -p "$SECRETS")
  [[ -s $SECRETS/api-key-secret ]] ||
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$SECRETS/api-key-secret")
  [[ -s $SECRETS/admin-token ]] ||
    (umask 077 && python3 -c 'import secrets; print("ola_" + secrets.token_urlsafe(32))' > "$SECRETS/admin-token")
}
admin_token() { tr -d '\n' < "$SECRETS/admin-token"; }

# The named config `orders-auth` that billing, order and notify read (wadm.yaml names it without
# properties, so it never lands in the manifest).
put_auth_config() {
  local admin_hash; admin_hash=$(admin_token | sha256sum | cut -c1-64)
  "$WASH" config put orders-auth "api_key_secret=$(tr -d '\n' < "$SECRETS/api-key-secret")" \
    "admin_token_sha256=$admin_hash" "${CTL[@]}" >/dev/null
}

# The instance's NATS credentials: the authority (operator, accounts) made once, users issued
# anew on every start with the permissions the current manifest implies (orders-manifest
# data-plane: its streams, subjects, buckets and secret configs).
issue_credentials() {
  local plane
  mapfile -t plane < <("$RELEASE/orders-manifest" data-plane "$ROOT/wadm.yaml")
  "$RELEASE/orders-nats-auth" issue --dir "$AUTH" --lattice "$LATTICE" "${plane[@]}"
}

# One NATS server, or the `ha` instance's cluster: each server with its own store, routes to the
# others on loopback, and JetStream clustered (a stream or bucket of 3 replicas lives on all three).
start_nats() {
  # wRPC subscribes and unsubscribes a reply subject for every call; with NATS's subscription
  # cache on, each of those walks the whole cache (profile in docs/benchmark.md), so it is off.
  # The included file makes NATS trust only our operator's accounts: no anonymous connection.
  printf 'disable_sublist_cache: true\ninclude "nats/server.conf"\n' > "$STATE/nats.conf"
  local i
  for i in "${!NATS_NAMES[@]}"; do start_nats_server "$i"; done
  wait_for "NATS on ports $NATS_PORT-$((NATS_PORT + NATS_SERVERS - 1))" 20 nats_listening
  ((NATS_SERVERS == 1)) || wait_for "the NATS cluster to elect its JetStream leader" 60 jetstream_clustered
  # One client's JetStream request answered in the lattice account before the trace receiver,
  # wadm and the hosts connect at once. A server enables JetStream for an account when the
  # account's first client connects, and takes that account's requests from other clients before
  # it has finished: with a new store it then checks that it can write there by creating the
  # account's streams directory and removing it again (nats-server, Account.EnableJetStream, in
  # every release to this day), so a stream another client creates in that moment fails ("could
  # not create storage directory ... no such file or directory") and wadm, which creates its
  # buckets at start, exited with it. Once one client has been answered, the set-up is over.
  # On a restarted cluster the same request also waits until every stream's replicas have
  # elected a leader; before that, the host and wadm would take their buckets for missing and
  # fail to create them ("stream name already in use with a different configuration").
  wait_for "JetStream in the lattice account (and every stream's leader)" 60 \
    "$RELEASE/orders-admin" --nats "$NATS_URLS" --creds "$AUTH/admin.creds" streams
}

start_nats_server() {
  local i=$1
  if ((NATS_SERVERS == 1)); then
    start nats "$NATS_SERVER" -c "$STATE/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" -m "$MONITOR_PORT" \
      -js -sd "$STATE/jetstream" -n "orders-$instance"
    return
  fi
  local routes
  routes=$(seq -s, -f 'nats-route://127.0.0.1:%g' $((NATS_PORT + 10)) $((NATS_PORT + 9 + NATS_SERVERS)))
  start "${NATS_NAMES[i]}" "$NATS_SERVER" -c "$STATE/nats.conf" -a 127.0.0.1 -p $((NATS_PORT + i)) \
    -m $((MONITOR_PORT + i)) -js -sd "$STATE/jetstream/$((i + 1))" -n "orders-$instance-$((i + 1))" \
    --cluster_name "orders-$instance" --cluster "nats://127.0.0.1:$((NATS_PORT + 10 + i))" --routes "$routes"
}

# wadm and the host create their streams and buckets with one replica whatever the cluster (ours
# are created with the instance's REPLICAS: `replicas` in the providers' config). So on a cluster's
# first start, before any host exists, wadm starts alone, creates its streams and stops; they are
# raised to REPLICAS and the hosts' buckets are created with REPLICAS (a host uses the buckets it
# finds). No host is ever restarted behind wadm's back: wadm would keep commanding the hosts it saw
# go until it gave them up, a minute later, and place nothing meanwhile. wadm's streams, still
# empty, are created again with REPLICAS rather than raised: its event intake (a stream sourcing
# the hosts' events) stops receiving when the stream it sources is raised, and wadm, hearing no
# heartbeat, would drop every live host a minute later.
replicate_lattice_state() {
  ((REPLICAS > 1)) || return 0
  local admin=("$RELEASE/orders-admin" --nats "$NATS_URLS" --creds "$AUTH/admin.creds") name
  "${admin[@]}" streams | python3 -c "
import json, sys
streams = [json.loads(line) for line in sys.stdin]
names = {s['stream'] for s in streams}
sys.exit(not ('KV_LATTICEDATA_$LATTICE' in names and all(s['replicas'] >= $REPLICAS for s in streams)))" && return
  say "creating wadm's streams and the hosts' buckets with $REPLICAS replicas (they make theirs with one)"
  start_wadm 0
  wait_for "wadm to create its streams" 60 wadm_answers
  for name in "${WADM_NAMES[@]}"; do stop "$name"; done
  "${admin[@]}" replicate "$REPLICAS" --host-buckets-of "$LATTICE" --recreate-empty >/dev/null
}
wadm_answers() { "$WASH" app list "${CTL[@]}" -o json; }

# LOG_FORMAT=json: wadm, the host and our providers log one JSON object a line (NATS has no such
# format and keeps its own).
JSON_LOGS=false
[[ ${LOG_FORMAT:-text} == json ]] && JSON_LOGS=true
# Traces (docs/operations.md, Traces): the host and our providers export their spans over OTLP/HTTP, to our
# receiver unless OTEL_EXPORTER_OTLP_ENDPOINT names a collector of the user's; ORDERS_TRACES=off
# exports nothing (the benchmark's default, so its figures are the application's alone).
TRACES=${ORDERS_TRACES:-on}
[[ $instance == bench* ]] && TRACES=${ORDERS_TRACES:-off}
OTLP_ENDPOINT=${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:$TELEMETRY_PORT}

# Our receiver also serves /metrics: NATS's monitoring endpoint for the streams' lag, and payment
# results read as the admin identity (the one identity that may subscribe to them besides notify).
start_telemetry() {
  [[ $TRACES == on && -z ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]] || return 0
  start telemetry "$RELEASE/orders-telemetry" --listen "127.0.0.1:$TELEMETRY_PORT" \
    --nats-monitor "http://127.0.0.1:$MONITOR_PORT" --nats "$NATS_URLS" --creds "$AUTH/admin.creds"
}

# The i-th wadm, or host, speaks to the i-th server of a cluster (and moves to another if that one
# goes).
start_wadm() {
  local i=$1
  start "${WADM_NAMES[i]}" env RUST_LOG=info WADM_STRUCTURED_LOGGING="$JSON_LOGS" "$RELEASE/orders-wadm" \
    --nats-server "127.0.0.1:$((NATS_PORT + i % NATS_SERVERS))" --nats-creds-file "$AUTH/wadm.creds"
}

# The host's control connection is the host identity; its RPC connection, which it also hands to
# every provider, is the data plane (rpc). Label `host` tells the hosts apart, for what is placed
# on one of them (the `ha` instance's HTTP listeners).
start_host() {
  local i=$1 tmp=$STATE/tmp/${HOST_NAMES[$1]}
  # The host unpacks every provider archive into $TMPDIR/wasmcloudcache/<host id>/, and a host has
  # a new id at each start: in /tmp that piled up 60 MB a start, never removed. Here each host
  # has its own directory, emptied before it starts, never while it runs (it starts a provider
  # that died again from there); its supervisor removes a dead host's part.
  running "${HOST_NAMES[i]}" || { rm -rf "$tmp" && mkdir -p "$tmp"; }
  # The settings are the environment of the supervisor too, which reaches the lattice as the host
  # does to announce a dead host.
  TMPDIR="$tmp" WASMCLOUD_NATS_HOST=127.0.0.1 WASMCLOUD_NATS_PORT="$((NATS_PORT + i % NATS_SERVERS))" \
    WASMCLOUD_CTL_CREDS="$AUTH/host.creds" WASMCLOUD_RPC_CREDS="$AUTH/rpc.creds" \
    WASMCLOUD_LATTICE="$LATTICE" WASMCLOUD_ALLOW_FILE_LOAD=true \
    WASMCLOUD_STRUCTURED_LOGGING_ENABLED="$JSON_LOGS" \
    WASMCLOUD_OBSERVABILITY_ENABLED="$([[ $TRACES == on ]] && echo true || echo false)" \
    WASMCLOUD_METRICS_ENABLED=false WASMCLOUD_LOGS_ENABLED=false OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP_ENDPOINT" \
    WASMCLOUD_LABEL_instance="$instance" WASMCLOUD_LABEL_host="$((i + 1))" \
    start --wasmcloud-host "${HOST_NAMES[i]}" "$RELEASE/orders-host"
}

up() {
  mkdir -p "$LOGS" "$STATE/jetstream"
  issue_credentials
  start_nats
  start_telemetry
  replicate_lattice_state
  local i
  for i in "${!WADM_NAMES[@]}"; do start_wadm "$i"; done
  for i in "${!HOST_NAMES[@]}"; do start_host "$i"; done
  wait_for "the hosts to join the lattice" 60 hosts_up
  ensure_secrets
  put_auth_config
  deploy
  local every_host="" make_lattice=""
  [[ $instance == run ]] || make_lattice=" LATTICE=$instance"
  ((HOSTS == 1)) || every_host=$'\n'"    every host    $HTTP_URLS   (each host's own HTTP listener: any one serves the whole API)"
  cat <<TXT

  orders is up ($instance)
    console       http://127.0.0.1:$HTTP_PORT/   (open it in a browser)
    base URL      http://127.0.0.1:$HTTP_PORT   (POST /CreateUser /DepositCash /Order /Refund /RotateKey, GET /Balance?user= /Statement?user= /List /OrderStatus?order_id=)
    contract      http://127.0.0.1:$HTTP_PORT/openapi.json   (OpenAPI 3.1)$every_host
    quick start   README.md, Quick start: a fresh user, a deposit, orders paid and refused
    API keys      POST /CreateUser answers the user's key once; send it as  Authorization: Bearer <key>
                    curl -s -X POST 127.0.0.1:$HTTP_PORT/CreateUser -d "{\"user\":\"Pavel-\$RANDOM\"}"
    admin token   in $SECRETS/admin-token (GET /List of everyone, any user's balance, key recovery)
                    curl -s 127.0.0.1:$HTTP_PORT/List -H "Authorization: Bearer \$(cat $SECRETS/admin-token)"
    NATS          $NATS_URLS   (subjects orders.placed.<partition>.<order id>, refunds.requested.<partition>.<order id>, payments.settled, payments.refunded)
                  no anonymous clients: creds files per identity in $AUTH (admin.creds for people)
    traces        $(trace_hint)
    logs          $LOGS
    look inside   export WASH_CTL_CREDS=$AUTH/admin.creds
                  $WASH get hosts ${CTL[*]}
                  $WASH get inventory ${CTL[*]}
                  $WASH app list ${CTL[*]}
    stop          make down$make_lattice   (keeps state)   |   make clean (wipes it)
TXT
}

trace_hint() {
  if running telemetry; then
    echo "curl -s 'http://127.0.0.1:$TELEMETRY_PORT/traces?order_id=<id>&format=tree'   (orders-telemetry)"
  elif [[ ${ORDERS_TRACES:-on} == on && -n ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]]; then
    echo "exported to $OTEL_EXPORTER_OTLP_ENDPOINT"
  else
    echo "off (ORDERS_TRACES=off)"
  fi
}

# Deploys the manifest rendered for this instance, unless that exact manifest and those exact
# artifacts are already deployed; a changed build replaces the running application.
deploy() {
  local manifest=$STATE/wadm.yaml overlay=()
  # The benchmark's lattice also serves the hello-world floor behind the same HTTP provider, and
  # the tests' lattice the isolation probe (tests/probe).
  [[ $instance == bench* ]] && overlay=(--overlay "$ROOT/bench/hello.wadm.yaml")
  [[ $instance == test ]] && overlay=(--overlay "$ROOT/tests/probe/probe.wadm.yaml")
  # ORDERS_PROVIDERS=processes: the HTTP server as a provider process of its own, not in the host.
  case ${ORDERS_PROVIDERS:-in-host} in
    in-host) ;;
    processes) overlay+=(--providers-as-processes) ;;
    *) echo "ORDERS_PROVIDERS=$ORDERS_PROVIDERS: in-host or processes" >&2; exit 2 ;;
  esac
  "$RELEASE/orders-manifest" render --nats-port "$NATS_PORT" --http-port "$HTTP_PORT" \
    --nats-servers "$NATS_SERVERS" --replicas "$REPLICAS" --hosts "$HOSTS" "${overlay[@]}" \
    "$ROOT/wadm.yaml" > "$manifest"
  local fingerprint; fingerprint=$(cat "$manifest" "$BUILD"/components/*.wasm "$BUILD"/providers/*.par.gz | sha256sum | cut -c1-16)
  # A lattice started again redeploys what wadm kept: give it a moment before replacing anything.
  if [[ -f $STATE/deployed && $(cat "$STATE/deployed") == "$fingerprint" ]] && within 30 app_live; then
    say "application unchanged and deployed"
    return
  fi
  if "$WASH" app get orders "${CTL[@]}" >/dev/null 2>&1; then
    # wadm is still placing what it kept on hosts that just started (a restored lattice has no
    # record of what was deployed): let it finish, so that its undeploy knows every part it placed.
    within 30 app_deployed || true
    say "replacing the deployed application"
    remove_app "$manifest"
  fi
  for attempt in 1 2 3; do
    say "deploying $manifest"
    "$WASH" app deploy "$manifest" "${CTL[@]}"
    if ! wait_for "the application to be Deployed" 180 app_deployed; then
      "$WASH" app status orders "${CTL[@]}" >&2
      ((attempt < 3)) || exit 1
      say "deploying again (attempt $attempt)"
      remove_app "$manifest"
      continue
    fi
    # wadm reports Deployed once the lattice holds the links, not once the providers took them;
    # a provider that missed one takes it from the lattice within seconds (providers/support,
    # links.rs). Calls through every provider link prove them.
    if wait_for "the providers to serve every link" 40 links_live; then
      echo "$fingerprint" > "$STATE/deployed"
      say "application deployed"
      return
    fi
    say "a link is still not served (attempt $attempt: $(links_live 2>&1 | tail -1)): deploying again"
    remove_app "$manifest"
  done
  echo "the providers never served every link; see $LOGS/host.log" >&2
  exit 1
}

# Every link a provider serves, exercised: each path through the HTTP provider reaches its
# component and each component its buckets and streams (orders-admin ready says how), and the
# messaging provider pulls for every durable consumer.
links_live() {
  local also=()
  [[ $instance == bench* ]] && also+=(--also "GET /Hello 200")
  [[ $instance == test ]] && also+=(--also "GET /Probe 200")
  "$RELEASE/orders-admin" ready --listeners "$HTTP_URLS" --admin-token-file "$SECRETS/admin-token" \
    --api-key-secret-file "$SECRETS/api-key-secret" "${also[@]}" || return 1
  "$RELEASE/orders-nats-monitor" "$MONITOR_URLS" pulling billing billing-refunds notify notify-deadletters
}

# A lattice started from kept (or restored) state has wadm placing the application again while it
# is being replaced: a provider whose start was under way when the application was undeployed
# keeps running with nobody to stop it. Those are stopped by hand.
stop_leftover_providers() {
  say "stopping providers started while the application was undeployed"
  # As long as the other wait for providers to stop: in one restore of `make test`'s replicated
  # lattice they stopped just after 30 s, and everything after it failed. Repeated until none
  # runs: wadm may still start one of the replaced application after a first round of stops
  # (seen once in a restore of the replicated lattice).
  wait_for "the old providers to stop" 60 stop_every_provider
}

# Stops every provider the hosts run; true once none runs any more.
stop_every_provider() {
  "$WASH" get inventory "${CTL[@]}" -o json | python3 -c '
import json, sys
for inventory in json.load(sys.stdin)["inventories"]:
    for provider in inventory.get("providers", []):
        print(inventory["host_id"], provider["id"])' |
    while read -r host provider; do
      "$WASH" stop provider "$provider" --host-id "$host" "${CTL[@]}" >/dev/null || true
    done
  sleep 1
  no_providers
}

# Undeploys and deletes the application, and waits until its providers have stopped and wadm has
# removed its named configurations (`orders-<name>`, `-` as `_`, as in `manifest`). wadm removes
# those in the background: a deploy racing the removal loses configurations it has just put, and
# its providers then wait for them forever ("Config orders-messaging_jetstream does not exist").
remove_app() {
  "$WASH" app undeploy orders "${CTL[@]}" >/dev/null || true
  within 60 no_providers || stop_leftover_providers
  "$WASH" app delete orders "${CTL[@]}" >/dev/null || true
  wait_for "wadm to remove the application's configurations" 30 app_configs_gone "$1" || true
}

app_configs_gone() {
  local name
  for name in $(awk '/^ *config:$/ { getline; if ($1 == "-" && $2 == "name:") print $3 }' "$1" | sort -u); do
    ! RUST_BACKTRACE=0 "$WASH" config get "orders-${name//-/_}" "${CTL[@]}" >/dev/null 2>&1 || return 1
  done
}

no_providers() {
  [[ $("$WASH" get inventory "${CTL[@]}" -o json | json_field 'sum(len(i.get("providers", [])) for i in d["inventories"])') == 0 ]]
}

# What runs, what NATS holds (its monitoring endpoint: connections, streams, and each durable
# consumer's backlog), and the application's state as wadm sees it.
status() {
  local name
  for name in "${PROCESSES[@]}"; do
    if ! running "$name"; then
      echo "$name: stopped"
    elif [[ -f $STATE/$name.child-pid ]]; then
      echo "$name: running (pid $(cat "$STATE/$name.child-pid"), under its supervisor, pid $(cat "$STATE/$name.pid"))"
    else
      echo "$name: running (pid $(cat "$STATE/$name.pid"))"
    fi
  done
  if running "${NATS_NAMES[0]}"; then
    "$RELEASE/orders-nats-monitor" "$MONITOR_URLS" show || true
  fi
  if running "${HOST_NAMES[0]}"; then "$WASH" app status orders "${CTL[@]}" || true; fi
}

# A backup is what a restart keeps: JetStream's store (streams, key-value buckets, wadm's and the
# host's state), the authority whose account names that store, and the API key secret and admin
# token (without them every user's key would stop working). Credentials are issued anew at every
# start and logs are not state, so neither is kept. NATS must be stopped: its store is only
# consistent on disk when no server writes it.
BACKUPS=$ROOT/.state/backups
STATE_PARTS=(jetstream nats/authority.json secrets)
refuse_if_running() {
  local name
  for name in "${PROCESSES[@]}"; do
    if running "$name"; then
      echo "the '$instance' lattice is running ($name, pid $(cat "$STATE/$name.pid")): stop it first (make down)" >&2
      exit 1
    fi
  done
}

backup() {
  local archive=${1:-$BACKUPS/orders-$instance-$(date -u +%Y%m%dT%H%M%SZ).tar.gz}
  refuse_if_running
  [[ -d $STATE/jetstream && -f $STATE/nats/authority.json ]] || { echo "'$instance' has no state to back up ($STATE)" >&2; exit 1; }
  mkdir -p "$(dirname "$archive")"
  # A description first, so `tar -xOf <archive> orders-backup.json` tells what an archive holds.
  local about; about=$(mktemp -d)
  python3 - "$instance" "$("$NATS_SERVER" --version)" > "$about/orders-backup.json" <<'PY'
import datetime, json, sys
print(json.dumps({"instance": sys.argv[1], "nats_server": sys.argv[2],
                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}))
PY
  (umask 077 && tar -czf "$archive.partial" -C "$about" orders-backup.json -C "$STATE" "${STATE_PARTS[@]}")
  rm -rf "$about"
  mv "$archive.partial" "$archive"
  say "backed up '$instance' to $archive ($(du -h "$archive" | cut -f1))"
}

restore() {
  local archive=${1:?usage: lattice.sh restore <instance> <archive>}
  refuse_if_running
  [[ -f $archive ]] || { echo "no such backup: $archive" >&2; exit 1; }
  local unpacked; unpacked=$(mktemp -d)
  trap 'rm -rf "$unpacked"' RETURN
  tar -xzf "$archive" -C "$unpacked" 2>/dev/null || { echo "$archive is not an orders backup (not a readable .tar.gz)" >&2; exit 1; }
  local part
  for part in orders-backup.json "${STATE_PARTS[@]}"; do
    [[ -e $unpacked/$part ]] || { echo "$archive is not an orders backup (it lacks $part)" >&2; exit 1; }
  done
  # The state being replaced is backed up first, so a restore can itself be undone.
  if [[ -d $STATE/jetstream && -f $STATE/nats/authority.json ]]; then
    backup "$BACKUPS/orders-$instance-before-restore-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
  fi
  rm -rf "$STATE/jetstream" "$STATE/secrets" "$STATE/nats" "$STATE/deployed"
  mkdir -p "$STATE/nats"
  mv "$unpacked/jetstream" "$unpacked/secrets" "$STATE/"
  mv "$unpacked/nats/authority.json" "$STATE/nats/"
  say "restored '$instance' from $archive ($(tr -d '\n' < "$unpacked/orders-backup.json")); start it with make run"
}

# Hosts first (their providers stop with them), then wadm, NATS and the trace receiver.
# The layout's processes, hosts first; then any other process a pid file of the instance names, so
# that nothing started for the instance outlives `down`.
stop_all() {
  local name file
  for name in "${HOST_NAMES[@]}" "${WADM_NAMES[@]}" "${NATS_NAMES[@]}" telemetry; do stop "$name"; done
  for file in "$STATE"/*.pid; do
    [[ -e $file ]] && stop "$(basename "$file" .pid)"
  done
  return 0
}

# A machine crash, for the fault tests: the process, everything it started (a host's providers)
# and its supervisor are killed at once, without a chance to clean up; it stays down until
# `revive`.
kill_with_supervisor() {
  local name=${1:?usage: lattice.sh kill <instance> <process>}
  running "$name" || { echo "'$name' of '$instance' is not running (${PROCESSES[*]})" >&2; exit 1; }
  # The process first: killed before its supervisor, it gets no parent-death SIGTERM (a clean
  # stop's first steps), and the supervisor, killed a moment later, restarts nothing.
  local groups=()
  [[ -f $STATE/$name.child-pid ]] && groups+=("-$(cat "$STATE/$name.child-pid")")
  groups+=("-$(cat "$STATE/$name.pid")")
  kill -KILL -- "${groups[@]}" 2>/dev/null || true
  rm -f "$STATE/$name.pid" "$STATE/$name.child-pid"
  say "$name killed"
}

# A process crash: the process and everything it started are killed at once; its supervisor
# starts it again.
crash() {
  local name=${1:?usage: lattice.sh crash <instance> <process>}
  [[ -f $STATE/$name.child-pid ]] && running "$name" ||
    { echo "'$name' of '$instance' is not running under a supervisor (${PROCESSES[*]})" >&2; exit 1; }
  kill -KILL -- "-$(cat "$STATE/$name.child-pid")"
  say "$name (pid $(cat "$STATE/$name.child-pid")) killed; its supervisor starts it again"
}

# Starts one crashed process again, as it was started (`kill` above; the fault tests).
revive() {
  local name=${1:?usage: lattice.sh revive <instance> <process>} i
  for i in "${!NATS_NAMES[@]}"; do [[ ${NATS_NAMES[i]} == "$name" ]] && { start_nats_server "$i"; return; }; done
  for i in "${!WADM_NAMES[@]}"; do [[ ${WADM_NAMES[i]} == "$name" ]] && { start_wadm "$i"; return; }; done
  for i in "${!HOST_NAMES[@]}"; do [[ ${HOST_NAMES[i]} == "$name" ]] && { start_host "$i"; return; }; done
  echo "'$instance' has no process '$name' (${PROCESSES[*]})" >&2
  exit 1
}

case $action in
  up) up ;;
  down) stop_all ;;
  clean) stop_all; rm -rf "$STATE"; say "state of '$instance' wiped" ;;
  status) status ;;
  backup) backup "${3:-}" ;;
  restore) restore "${3:-}" ;;
  kill) kill_with_supervisor "${3:-}" ;;
  crash) crash "${3:-}" ;;
  revive) revive "${3:-}" ;;
  ready) wait_for "the providers to serve every link" 60 links_live ;;
  # The instance's NATS server(s) alone, with its identities and secrets: what `make bench`'s
  # native build runs on.
  nats) mkdir -p "$LOGS" "$STATE/jetstream"; issue_credentials; start_nats; ensure_secrets ;;
  *) echo "unknown action '$action'" >&2; exit 2 ;;
esac
