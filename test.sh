#!/usr/bin/env bash
# The test command: installs what is missing, then runs every check CI runs.
#   ./test.sh
# Needs Rust (cargo with rustfmt and clippy) and, for the browser test, Node.js
# 20+ with npm. On Debian/Ubuntu it installs the system packages it needs with
# apt-get when run as root (or with sudo); otherwise it stops and names the
# package to install. npm packages come from the npm registry (npm ci).
set -euo pipefail
cd "$(dirname "$0")"

need_pkg() { # need_pkg <command> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -x "/usr/sbin/$1" ] && return 0   # nginx lives there, outside a user's PATH
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "missing '$1': install it with: sudo apt-get install -y $2" >&2; exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing '$1': install the package that provides it ($2 on Debian/Ubuntu)" >&2; exit 1
  fi
  echo "installing $2 (for '$1')"
  if [ -z "${APT_UPDATED:-}" ]; then $sudo apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

command -v cargo >/dev/null || { echo "missing cargo: install Rust from rustup" >&2; exit 1; }
# One build from scratch: incremental state would only cost time and disk.
export CARGO_INCREMENTAL=0
need_pkg cmake cmake   # pingora's zlib-ng build needs it
need_pkg cc gcc
# webauthn-rs (passkeys) links the system OpenSSL: pkg-config finds its headers.
need_pkg pkg-config pkg-config
pkg-config --exists openssl || need_pkg libssl-dev-headers libssl-dev
# The browser test (tests/browser.rs): headless Chromium driven by playwright-core.
need_pkg chromium chromium
command -v npm >/dev/null || { echo "missing npm: install Node.js 20 or later" >&2; exit 1; }
# The import tests (tests/it/import.rs) run a real Express app with express-session
# and connect-redis from the same folder.
[ -d tests/browser/node_modules/oidc-provider ] && [ -d tests/browser/node_modules/connect-redis ] ||
    npm ci --prefix tests/browser --no-audit --no-fund
# The Redis store's tests start their own redis-server on ephemeral ports.
need_pkg redis-server redis-server
# The [auth.ldap] tests start their own slapd (OpenLDAP) and fill it with ldapadd.
need_pkg slapd slapd
need_pkg ldapadd ldap-utils
# nginx: the benchmark's backend and peer, and a front proxy in the forward-auth tests;
# wrk: the benchmark's load.
need_pkg nginx nginx
# The forward-auth tests (tests/it/forward_auth.rs) run Caddy as a front proxy too.
need_pkg caddy caddy
need_pkg wrk wrk
need_pkg curl curl   # bench/soak.sh samples the admin API
need_pkg systemd-analyze systemd   # deploy/check.sh verifies the unit

echo "== cargo fmt --check";        cargo fmt --all -- --check
echo "== cargo clippy";             cargo clippy --workspace --all-targets --quiet -- -D warnings
# The browser test runs the demo backend, a package of its own (demo/backend).
echo "== cargo build -p sessiongate-demo"; cargo build -p sessiongate-demo --quiet
echo "== cargo test";               cargo test --all-targets --quiet
echo "== black-box tests again, against the Redis store"
SESSIONGATE_TEST_STORE=redis cargo test --tests --quiet
echo "== cargo deny: licences and duplicate versions (deny.toml), offline"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (once; a few minutes)"
  cargo install --locked --quiet cargo-deny
fi
# Every platform's dependencies (cargo deny reads the whole graph; a build fetches only this one's).
cargo fetch --quiet
cargo deny --offline check licenses bans
echo "== sessiongate check proxy.toml"
SESSIONGATE_SECRET="${SESSIONGATE_SECRET:-ci-only-secret-not-for-production-0123456789}" \
  cargo run --quiet --bin sessiongate -- check --config proxy.toml
echo "== deploy files, checked offline"
bash deploy/check.sh
echo "== fuzz targets, 20 s each from the seeds"
bash fuzz/smoke.sh 20
echo "== benchmark smoke run (every scenario produces numbers; not a measurement)"
bash bench/run.sh --smoke
echo "== soak, 30 s (no request may fail)"
bash bench/soak.sh --ci
echo "all checks passed"
