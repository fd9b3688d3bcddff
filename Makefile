# The two commands the README promises: `make run` and `make test`.
# Both install whatever is missing first (scripts/setup.sh), so they work on a
# fresh machine of this kind. Builds go through `cargo xtask build` (xtask/): the
# server, the dashboard's wasm and target/site, with no tool to install first.

SITE ?= examples/site
DATABASE_URL ?= sqlite://data/marain.db
ADDR ?= 127.0.0.1:3000
BIN := target/release/marain

.PHONY: setup setup-test build release run test test-rust test-e2e lint fuzz bench bench-legacy bench-online measure-dashboard

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

# Builds the server binary (target/debug/marain) and the hydrated dashboard (target/site).
build: setup
	cargo xtask build

# What users run: the optimised server and the size-optimised wasm (`make test`
# keeps the debug build, which is quicker to build).
release: setup
	cargo xtask build --release

run: release
	@echo "Serving $(SITE) on http://$(ADDR)/  (database $(DATABASE_URL))"
	$(BIN) serve --site $(SITE) --database $(DATABASE_URL) --addr $(ADDR)

# The browser tests run on the size-optimised wasm users get (with the debug
# server): a broken optimiser fails them, and the release wasm builds faster
# than the debug one.
test: setup-test
	cargo xtask build --release-wasm
	$(MAKE) test-rust
	$(MAKE) test-e2e

test-rust:
	cargo test --workspace --no-fail-fast
	cargo test --quiet --manifest-path xtask/Cargo.toml --target-dir target/xtask

# The suite runs once per backend (Playwright projects `sqlite` and `postgres`);
# the PostgreSQL project uses a throw-away server started here and stopped after.
test-e2e:
	@pg=$$(mktemp -d /tmp/marain-e2e-pg.XXXXXX); \
	url=$$(scripts/pg-local.sh start $$pg) || exit 1; \
	cd end2end && MARAIN_E2E_POSTGRES="$$url" npx playwright test; status=$$?; \
	cd .. && scripts/pg-local.sh stop $$pg >/dev/null; rm -rf $$pg; exit $$status

# Formatting, clippy on every target, and the build invariants ARCHITECTURE.md
# names: the pure core builds for wasm32 without its engine (no I/O).
lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path xtask/Cargo.toml -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path xtask/Cargo.toml --target-dir target/xtask -- -D warnings
	cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-lint -- -D warnings
	cargo clippy -p marain-app --features hydrate --target wasm32-unknown-unknown -- -D warnings
	cargo check -p marain --no-default-features --target wasm32-unknown-unknown

# libFuzzer on the pure core (nightly toolchain; not part of `make test`).
RUNS ?= 200000
fuzz:
	cargo xtask fuzz --runs $(RUNS)

# The speed benches (release): planning (criterion) and save → applied on the
# demo site and generated 2,000-file sites, on SQLite and PostgreSQL. The real
# binary is built first so start-up is measured on it, with its peak RSS.
bench:
	cargo build --release -p marain-server --bin marain
	cargo bench --bench plan
	cargo bench -p marain-server --bench reload_latency

# `marain legacy run` and `verify` on 1,000,000 generated legacy rows (ROWS=…).
bench-legacy:
	cargo bench -p marain-server --bench legacy_copy

# Schema changes to a big table while content traffic runs: apply time, cut-over,
# the longest waits of reads and writes (ROWS=1000000 by default; ROWS=10000000 too).
bench-online:
	cargo bench --bench online_changes

# The release dashboard as a browser gets it: bytes on the wire for a first and
# a second visit, and time to interactive on a 10 Mbit/s, 40 ms link (Chromium
# throttled over the DevTools protocol). Sizes are asserted, times printed;
# also written to target/measure-dashboard.txt.
measure-dashboard: release setup-test
	cd end2end && MARAIN_BIN=$(CURDIR)/target/release/marain npx playwright test -c measure.config.ts
