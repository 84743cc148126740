#!/usr/bin/env bash
# Run the sessiongate demo: the demo application (demo/backend) on
# 127.0.0.1:3000 behind sessiongate on 127.0.0.1:8080 (demo/proxy.toml), with
# sessiongate's built-in login and its admin page on 127.0.0.1:9091.
#
#     bash demo/run.sh        then open http://127.0.0.1:8080/app
#
# SESSIONGATE_SECRET, SESSIONGATE_ADMIN_TOKEN and DEMO_PASSWORD are generated
# unless already set. demo/users.toml (the user `demo`) is rewritten each run.
# Ctrl-C stops both.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "install Rust (cargo): https://rustup.rs" >&2
    exit 1
fi
if ! command -v cmake >/dev/null 2>&1; then
    # pingora's build needs cmake.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update && apt-get install -y cmake
    else
        echo "install cmake: sudo apt-get install -y cmake" >&2
        exit 1
    fi
fi

if ! pkg-config --exists openssl 2>/dev/null; then
    # Passkeys (webauthn-rs) link the system OpenSSL.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update && apt-get install -y pkg-config libssl-dev
    else
        echo "install OpenSSL's headers: sudo apt-get install -y pkg-config libssl-dev" >&2
        exit 1
    fi
fi

echo "building (the first build takes a few minutes)..."
# The demo profile (Cargo.toml): optimised, without the release build's
# whole-program LTO, and without the test and benchmark crates.
cargo build --profile demo -p sessiongate --bin sessiongate -p sessiongate-demo --bin demo_backend
bin=target/demo

random() { # $1 random bytes, base64 without newlines
    head -c "$1" /dev/urandom | base64 | tr -d '\n'
}
alnum() { # $1 random letters and digits: easy to type, paste and use in curl -d
    random $(($1 * 2)) | tr -dc 'A-Za-z0-9' | cut -c1-"$1"
}
export SESSIONGATE_SECRET="${SESSIONGATE_SECRET:-$(random 48)}"
export SESSIONGATE_ADMIN_TOKEN="${SESSIONGATE_ADMIN_TOKEN:-$(alnum 40)}"
DEMO_PASSWORD="${DEMO_PASSWORD:-$(alnum 16)}"
# The key that seals authenticator-app secrets in demo/credentials.json: made
# once and kept, or the factors set up in an earlier run would not open.
if [ ! -s demo/factor.key ]; then
    (umask 077 && random 48 >demo/factor.key)
fi

# The users file of the built-in login (demo/proxy.toml: users_file).
hash="$(printf '%s\n' "$DEMO_PASSWORD" | "$bin/sessiongate" hash-password)"
(
    umask 077
    cat >demo/users.toml <<USERS
# Written by demo/run.sh; rewritten on every run.
[[user]]
name = "demo"
password_hash = "$hash"
roles = ["user", "admin"]
USERS
)

BACKEND_PID=""
PROXY_PID=""
cleanup() {
    trap - EXIT INT TERM
    # SIGINT is pingora's fast exit (SIGTERM would first let requests finish
    # for server.grace_period); the demo has nothing in flight worth waiting for.
    [ -n "$PROXY_PID" ] && kill -INT "$PROXY_PID" 2>/dev/null || true
    [ -n "$BACKEND_PID" ] && kill "$BACKEND_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$bin/demo_backend" 127.0.0.1:3000 &
BACKEND_PID=$!
# Wait until the backend accepts connections (or has died, e.g. port 3000 taken).
for _ in $(seq 50); do
    if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
        echo "the demo backend did not start (is 127.0.0.1:3000 already in use?)" >&2
        exit 1
    fi
    if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
        break
    fi
    sleep 0.1
done

cat <<BANNER

================================================================
  sessiongate demo

  open      http://127.0.0.1:8080/app
  user      demo
  password  ${DEMO_PASSWORD}

  script    curl -u demo:${DEMO_PASSWORD} http://127.0.0.1:8080/api/whoami

  API key   make one on http://127.0.0.1:8080/.sessiongate/sessions, or:
            curl -H 'Authorization: Bearer ${SESSIONGATE_ADMIN_TOKEN}' \
              -H 'Content-Type: application/json' \
              -d '{"owner":"demo","name":"script","expires_in":"30d"}' \
              http://127.0.0.1:9091/keys
            then: curl -H 'Authorization: Bearer <key>' http://127.0.0.1:8080/api/whoami

  2nd factor  passkeys or an authenticator app, on your sessions page
            (http://localhost:8080/.sessiongate/sessions; passkeys need the
            name localhost, not 127.0.0.1)

  admin     http://127.0.0.1:9091/
            the browser asks for a login: any user name, and as the
            password the admin token ${SESSIONGATE_ADMIN_TOKEN}

  Ctrl-C stops the proxy and the demo backend.
================================================================

BANNER

# In the background plus `wait`, so that a TERM sent to this script reaches the
# trap at once (bash defers traps until a foreground command has finished).
"$bin/sessiongate" --config demo/proxy.toml &
PROXY_PID=$!
status=0
wait "$PROXY_PID" || status=$?
PROXY_PID=""
exit "$status"
