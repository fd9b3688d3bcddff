#!/usr/bin/env bash
# Installs what building and testing Marain needs, skipping what is already there.
# Safe to run again and again.
#   scripts/setup.sh          build tools: the wasm32 target and the pinned wasm-opt (the build itself is `cargo xtask build`)
#   scripts/setup.sh --test   also Debian's Chromium, PostgreSQL's server binaries, libfaketime, nginx, pgbouncer and the Playwright runner
#   scripts/setup.sh --leptos also cargo-leptos and the wasm-bindgen CLI, for `cargo leptos watch`
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
apt_install() {
  if [ "$(id -u)" = 0 ]; then APT=(apt-get); else APT=(sudo apt-get); fi
  "${APT[@]}" update
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y "$@"
}

# 1. The wasm32 target for the hydrate build.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 1b. wasm-opt: `cargo xtask build --release` size-optimises the dashboard's
#     wasm with it, and fails without it. binaryen is pinned in tools/binaryen
#     (npm's package): Debian 12's binaryen 108 breaks wasm-bindgen's externref
#     table, and the dashboard then never starts (xtask/src/optimise.rs).
if [ ! -x tools/binaryen/node_modules/.bin/wasm-opt ] || [ tools/binaryen/package-lock.json -nt tools/binaryen/node_modules/.package-lock.json ]; then
  say "installing binaryen (wasm-opt) from tools/binaryen/package-lock.json"
  (cd tools/binaryen && npm ci --no-audit --no-fund)
fi

if [ "${1:-}" = "--leptos" ]; then
  # Optional: live reload while developing the dashboard. cargo-leptos is
  # pinned (0.3.11 needs a newer rustc); no_downloads makes it take wasm-bindgen
  # from PATH, which must match the wasm-bindgen crate in Cargo.lock.
  if ! cargo leptos --version 2>/dev/null | grep -q " ${CARGO_LEPTOS_VERSION}\$"; then
    say "installing cargo-leptos ${CARGO_LEPTOS_VERSION} (about 20 minutes on 2 cores)"
    cargo install --locked "cargo-leptos@${CARGO_LEPTOS_VERSION}" --features no_downloads
  fi
  WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  if ! wasm-bindgen --version 2>/dev/null | grep -q " ${WBG_VERSION}\$"; then
    say "installing wasm-bindgen-cli ${WBG_VERSION} (about 5 minutes)"
    # Not --locked: its own lock file names a webpki-roots release the registry lacks.
    cargo install wasm-bindgen-cli --version "${WBG_VERSION}"
  fi
fi

if [ "${1:-}" = "--test" ]; then
  # 2. Debian's Chromium: Playwright must never download a browser here.
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium"
    apt_install chromium
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: FAILED: no chromium browser could be installed; browser tests cannot run" >&2
    exit 1
  fi
  # 3. PostgreSQL's server binaries (initdb, pg_ctl): the case table and the
  #    property tests start a throw-away server from them. No service is enabled.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing Debian's PostgreSQL server binaries"
    apt_install postgresql
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "setup: FAILED: no PostgreSQL initdb could be installed; the PostgreSQL tests cannot run" >&2
    exit 1
  fi
  # 4. libfaketime: the test of instances whose clocks differ runs a server
  #    whose clock is ten minutes slow. chattr (e2fsprogs) makes a file that
  #    even root cannot replace, for the test of a rollback's failed rewrite.
  if ! command -v faketime >/dev/null 2>&1 || ! command -v chattr >/dev/null 2>&1; then
    say "installing libfaketime and e2fsprogs"
    apt_install faketime e2fsprogs
  fi
  # 5. A real load balancer and a real connection pooler in front of several
  #    instances (server/tests/load_balancer.rs). Only the programs: no service is
  #    enabled, each test starts its own on loopback.
  if [ ! -x /usr/sbin/nginx ] || [ ! -x /usr/sbin/pgbouncer ]; then
    say "installing Debian's nginx and pgbouncer"
    apt_install nginx pgbouncer
  fi
  if [ ! -x /usr/sbin/nginx ] || [ ! -x /usr/sbin/pgbouncer ]; then
    echo "setup: FAILED: nginx or pgbouncer could not be installed; the proxy tests cannot run" >&2
    exit 1
  fi
  # 6. The Playwright runner, from the lock file, without its browser download.
  if [ ! -x end2end/node_modules/.bin/playwright ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing the Playwright test runner"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
say "ready"
