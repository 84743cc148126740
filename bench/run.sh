#!/usr/bin/env bash
# The benchmark of issue 5: sessiongate against nginx and express-session, in one
# run on this machine. See bench/README.md.
#
#     bash bench/run.sh            full run (30-40 minutes): bench/results/report.md + plot.svg
#     bash bench/run.sh --smoke    a few seconds per scenario, few sessions: only checks
#                                  that every scenario produced numbers
#                                  (bench/results/smoke/, not committed)
#     bash bench/run.sh --perf     full run plus a perf profile of sessiongate on the
#                                  protected route (bench/results/perf.md)
#     bash bench/run.sh --slow     the public route with and without BENCH_SLOW_CONNS
#                                  slowloris connections held open, alternating runs
#                                  (BENCH_AB_PAIRS, 5; 15 s runs): bench/results/slowloris.md
#     bash bench/run.sh --tls      TLS: sessiongate and nginx with the same certificate,
#                                  alternating pairs (BENCH_AB_PAIRS, 3): keep-alive req/s
#                                  (sessiongate's protected route; nginx a plain proxy) and
#                                  new handshakes per second: bench/results/tls.md
#     bash bench/run.sh --stack    nginx alone, sessiongate inline, nginx auth_request ->
#                                  sessiongate, and sessiongate with X-User-Assertion, in
#                                  rotated rounds (BENCH_AB_PAIRS, 3): bench/results/stack.md
#     bash bench/run.sh --conns    many connections: sessiongate and nginx each, alternating
#                                  pairs (BENCH_AB_PAIRS, 3) of the public route under a
#                                  steady load on BENCH_CONNS (8) connections, alone and with
#                                  BENCH_IDLE_CONNS (10000) idle keep-alive connections held
#                                  open: RSS per idle connection and the active p99 with
#                                  them: bench/results/conns.md (BENCH_SG_READ_BUFFER sets
#                                  sessiongate's server.read_buffer)
#     bash bench/run.sh --credentials   the protected route with the session cookie, HTTP
#                                  Basic (remembered after its first hash), a bearer JWT
#                                  (remembered after its first check) and an API key, in
#                                  rotated rounds (BENCH_AB_PAIRS, 3); then the first
#                                  check of new JWTs per algorithm (BENCH_JWT_TOKENS,
#                                  40000 each, for BENCH_JWT_DURATION, 3s):
#                                  bench/results/credentials.md
#     BENCH_BASELINE=path/to/other/sessiongate bash bench/run.sh --ab
#                                  A/B of this build (or BENCH_SG) against another
#                                  sessiongate binary, both with BENCH_SESSIONS_LARGE
#                                  sessions, alternating runs (BENCH_AB_PAIRS, 4) of the
#                                  protected and the public route: bench/results/ab.md.
#                                  Side a starts and is filled first, which costs it a few
#                                  % on the protected route: run it both ways round.
#     bash bench/run.sh --hosts    A/B of this build with two configs side by side: the
#                                  same 10 host rules for the request's host, and a
#                                  1,000 hosts of 10 rules each (BENCH_HOSTS) against 1
#                                  host, BENCH_SESSIONS sessions each, alternating runs
#                                  (BENCH_AB_PAIRS, 4): bench/results/hosts.md
#     bash bench/run.sh --factor   A/B of this build with two configs side by side: a
#                                  second factor on (optional, with a credential file)
#                                  against off, BENCH_SESSIONS sessions each, alternating
#                                  runs (BENCH_AB_PAIRS, 4): bench/results/factor.md
#
# Everything listens on 127.0.0.1 on ephemeral ports, runs from a temporary
# directory, and is stopped at the end (or on Ctrl-C). Tunables (environment):
#   BENCH_DURATION (10s) BENCH_WARMUP (2s) BENCH_REPEATS (5) BENCH_CONNS (64)
#   BENCH_WRK_THREADS (1) BENCH_SESSIONS (100000) BENCH_SESSIONS_LARGE (1000000)
#   BENCH_EXPRESS_SESSIONS (100000) BENCH_PIN_SERVERS (0,1) BENCH_PIN_WRK (0,1)
#   BENCH_QUIET_WAIT (120 s; 0 in smoke) BENCH_NOISE_LIMIT (0.15 cores)
#   BENCH_MAX_DISCARDS (6; 0 in smoke) BENCH_EXPERIMENTS (1: also the rows that try
#   threads = 1, which is not the default configuration)
#   BENCH_SLOW_CONNS (1000; 50 in smoke): slowloris connections for the sg-public-slow rows
#   BENCH_KEEP=1 keeps the temporary directory (configs, logs, cookie files).
#   BENCH_PROFILE (release; dev in smoke): the cargo profile of the binaries.
#   BENCH_PREBUILT=<dir>: take sessiongate, bench_mint and bench_memory from there, build nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

MODE=full
PERF=0
for arg in "$@"; do
    case $arg in
        --smoke) MODE=smoke ;;
        --perf) PERF=1 ;;
        --ab) MODE=ab ;;
        --hosts) MODE=hosts ;;
        --factor) MODE=factor ;;
        --slow) MODE=slow ;;
        --tls) MODE=tls ;;
        --stack) MODE=stack ;;
        --credentials) MODE=credentials ;;
        --conns) MODE=conns ;;
        -h | --help)
            sed -n '2,52p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

if [ "$MODE" = smoke ]; then
    DURATION=${BENCH_DURATION:-2s}
    WARMUP=${BENCH_WARMUP:-0s}
    REPEATS=${BENCH_REPEATS:-1}
    SESSIONS=${BENCH_SESSIONS:-1000}
    SESSIONS_LARGE=${BENCH_SESSIONS_LARGE:-5000}
    EXPRESS_SESSIONS=${BENCH_EXPRESS_SESSIONS:-1000}
    RESULTS=$ROOT/bench/results/smoke
else
    DURATION=${BENCH_DURATION:-10s}
    WARMUP=${BENCH_WARMUP:-2s}
    REPEATS=${BENCH_REPEATS:-5}
    SESSIONS=${BENCH_SESSIONS:-100000}
    SESSIONS_LARGE=${BENCH_SESSIONS_LARGE:-1000000}
    EXPRESS_SESSIONS=${BENCH_EXPRESS_SESSIONS:-100000}
    RESULTS=$ROOT/bench/results
fi
if [ "$MODE" = slow ]; then
    # Longer than the 10 s head deadline, so every run sees each slow
    # connection cut and opened again.
    DURATION=${BENCH_DURATION:-15s}
    REPEATS=${BENCH_REPEATS:-1}
    WARMUP=${BENCH_WARMUP:-2s}
    AB_PAIRS=${BENCH_AB_PAIRS:-5}
fi

# start_forward_auth: sessiongate (trusting 127.0.0.1) with SESSIONS sessions
# and nginx in front of the backend with auth_request to its /auth/nginx; sets
# NGX_FA_PORT, NGX_FA_PID, SG_FA_PID and $TMP/sg_fa_cookies.txt.
start_forward_auth() {
    SG_TRUSTED_PROXIES='["127.0.0.1"]' start_sg sg-fa false
    SG_FA_PID=$SG_PID
    mint "127.0.0.1:$SG_PORT" "$SESSIONS" "$TMP/sg_fa_cookies.txt" /mint sid >/dev/null
    NGX_FA_PORT=$(free_port)
    mkdir -p "$TMP/nginx-fa/logs"
    cat >"$TMP/nginx-fa/nginx.conf" <<EOF
worker_processes $SG_THREADS;
pid $TMP/nginx-fa/nginx.pid;
error_log $TMP/nginx-fa/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 1000000; }
    upstream sessiongate { server 127.0.0.1:$SG_PORT; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGX_FA_PORT backlog=4096;
        location = /_sessiongate_auth {
            internal;
            proxy_pass http://sessiongate/.sessiongate/auth/nginx;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method \$request_method;
            proxy_set_header X-Original-URI \$request_uri;
        }
        location @sessiongate_login {
            if (\$sessiongate_login) { return 302 \$sessiongate_login; }
            return 401;
        }
        location / {
            auth_request /_sessiongate_auth;
            auth_request_set \$sessiongate_user \$upstream_http_x_user;
            auth_request_set \$sessiongate_login \$upstream_http_location;
            error_page 401 = @sessiongate_login;
            proxy_set_header X-User \$sessiongate_user;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start nginx-fa "$NGINX" -p "$TMP/nginx-fa" -e "$TMP/nginx-fa/logs/error.log" -c "$TMP/nginx-fa/nginx.conf" -g 'daemon off;'
    NGX_FA_PID=$LAST_PID
    wait_port "$NGX_FA_PORT" "$NGX_FA_PID" nginx-fa
    expect "http://127.0.0.1:$NGX_FA_PORT/app" 401
    expect "http://127.0.0.1:$NGX_FA_PORT/whoami" 200 "$(head -1 "$TMP/sg_fa_cookies.txt")" "u*"
}

# start_sg_assertion: sessiongate with X-User-Assertion on for the backend and
# SESSIONS sessions; sets SG_PORT, SG_PID and $TMP/sg_as_cookies.txt.
start_sg_assertion() {
    openssl genpkey -algorithm ed25519 -out "$TMP/assertion.pem" 2>"$TMP/openssl.log" ||
        die "openssl failed: $(cat "$TMP/openssl.log")"
    SG_EXTRA_CONFIG=$(printf '[assertion]\nkeys = [{ file = "%s" }]\n' "$TMP/assertion.pem") \
        SG_UPSTREAM_EXTRA='assertion_audience = "backend"' start_sg sg-assertion false
    mint "127.0.0.1:$SG_PORT" "$SESSIONS" "$TMP/sg_as_cookies.txt" /mint sid >/dev/null
    expect "http://127.0.0.1:$SG_PORT/app" 200 "$(head -1 "$TMP/sg_as_cookies.txt")" "ok"
}


if [ "$MODE" = tls ] || [ "$MODE" = stack ] || [ "$MODE" = credentials ]; then
    DURATION=${BENCH_DURATION:-10s}
    REPEATS=${BENCH_REPEATS:-1}
    WARMUP=${BENCH_WARMUP:-2s}
    AB_PAIRS=${BENCH_AB_PAIRS:-3}
fi
SLOW_CONNS=${BENCH_SLOW_CONNS:-$([ "$MODE" = smoke ] && echo 50 || echo 1000)}
if [ "$MODE" = conns ]; then
    DURATION=${BENCH_DURATION:-10s}
    REPEATS=${BENCH_REPEATS:-3}
    WARMUP=${BENCH_WARMUP:-2s}
    AB_PAIRS=${BENCH_AB_PAIRS:-3}
    BENCH_CONNS=${BENCH_CONNS:-8}
fi
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
if [ "$MODE" = ab ] || [ "$MODE" = hosts ] || [ "$MODE" = factor ]; then
    [ "$MODE" != ab ] || [ -x "${BENCH_BASELINE:-}" ] || {
        echo "bench: --ab needs BENCH_BASELINE=<path of the other sessiongate binary>" >&2
        exit 2
    }
    DURATION=${BENCH_DURATION:-5s}
    REPEATS=${BENCH_REPEATS:-1}
    WARMUP=${BENCH_WARMUP:-1s}
    AB_PAIRS=${BENCH_AB_PAIRS:-4}
fi
CONNS=${BENCH_CONNS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
PIN_SERVERS=${BENCH_PIN_SERVERS:-0,1}
PIN_WRK=${BENCH_PIN_WRK:-0,1}
SG_THREADS=2
LOGIN_HASHES=${BENCH_LOGIN_HASHES:-10}
# Before each measured run, wait up to this long for the machine to be < 15% busy.
QUIET_WAIT=${BENCH_QUIET_WAIT:-$([ "$MODE" = smoke ] && echo 0 || echo 120)}
# A run during which other processes used more cores than this is repeated.
NOISE_LIMIT=${BENCH_NOISE_LIMIT:-0.15}
MAX_DISCARDS=${BENCH_MAX_DISCARDS:-$([ "$MODE" = smoke ] && echo 0 || echo 6)}
EXPERIMENTS=${BENCH_EXPERIMENTS:-$([ "$MODE" = smoke ] && echo 0 || echo 1)}

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# The slowloris rows hold BENCH_SLOW_CONNS connections on each side, --conns
# BENCH_IDLE_CONNS: each needs a descriptor in the client and one in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$MODE" = conns ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "bench: --conns needs ulimit -n >= $((IDLE_CONNS + 1000)) (hard limit $(ulimit -Hn))" >&2
    exit 2
fi

# ---------------------------------------------------------------- prerequisites
missing=()
for c in nginx:nginx wrk:wrk node:nodejs npm:npm python3:python3 taskset:util-linux cargo:rustup; do
    command -v "${c%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${c%%:*}" ] || missing+=("${c#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]} (Debian: sudo apt-get install -y ${missing[*]/rustup/})"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null 2>&1; then
    die "--perf needs perf (Debian: sudo apt-get install -y linux-perf)"
fi
[ "$(nproc)" -ge 2 ] || echo "bench: only $(nproc) CPU; the pinning assumes 2" >&2

# The smoke run only checks that every scenario produces numbers, so it uses the
# debug build CI already has; measurements use the release build.
PROFILE=${BENCH_PROFILE:-$([ "$MODE" = smoke ] && echo dev || echo release)}
if [ -n "${BENCH_PREBUILT:-}" ]; then
    # Binaries built before (sessiongate, bench_mint, bench_memory): a run
    # while the tree changes, without building it.
    BIN_DIR=$BENCH_PREBUILT
else
    say "building ($PROFILE profile; a cold release build takes ~5 minutes)"
    cargo build --profile "$PROFILE" --quiet --bin sessiongate
    cargo build --profile "$PROFILE" --quiet -p sessiongate-bench
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
fi
SG=${BENCH_SG:-$BIN_DIR/sessiongate}
MINT=$BIN_DIR/bench_mint
MEMORY=$BIN_DIR/bench_memory
if [ ! -d bench/peers/express/node_modules ]; then
    say "installing the express peer (npm ci)"
    (cd bench/peers/express && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---------------------------------------------------------------- facts
FACTS=$TMP/facts.jsonl
: >"$FACTS"
fact() { printf '%s\n' "$1" >>"$FACTS"; }

# measure ID TITLE URL COOKIE_FILE EXPECT_STATUS PROXY_PIDS BACKEND_PIDS
# A warm-up run, then REPEATS runs of wrk at fixed concurrency, each through
# bench/measure.py, which also accounts the CPU time of the proxy, the backend,
# wrk and everything else on the machine, and first waits for a quiet machine.
# A run during which other processes used more than NOISE_LIMIT cores is
# discarded and repeated (at most MAX_DISCARDS times per scenario; then kept).
# Every kept run's numbers are recorded (the report uses the median by req/s).
measure() {
    local id=$1 title=$2 url=$3 cookies=$4 expect_status=$5 proxy=$6 backend=$7
    local runs="" line kept=0 discarded=0
    say "$id: $title"
    # WRK_EXTRA: more wrk arguments for one row (a Connection: close header).
    local wrk=(taskset -c "$PIN_WRK" wrk -t"$WRK_THREADS" -c"$CONNS" --timeout 5s -s "$ROOT/bench/cookies.lua" ${WRK_EXTRA[@]+"${WRK_EXTRA[@]}"})
    if [ "$WARMUP" != 0s ]; then
        "${wrk[@]}" -d"$WARMUP" "$url" -- "$cookies" >"$TMP/wrk-$id-warmup.txt" 2>&1 ||
            die "wrk failed: $(cat "$TMP/wrk-$id-warmup.txt")"
    fi
    while [ "$kept" -lt "$REPEATS" ]; do
        line=$(python3 "$ROOT/bench/measure.py" --proxy "$proxy" --backend "$backend" \
            --quiet-wait "$QUIET_WAIT" -- "${wrk[@]}" -d"$DURATION" "$url" -- "$cookies" ${LUA_ORDER:-}) ||
            die "measuring $id failed"
        if [ "$discarded" -lt "$MAX_DISCARDS" ] && python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["other_cpu_s"] / (r["duration_us"] / 1e6) > float(sys.argv[2]) else 1)' "$line" "$NOISE_LIMIT"; then
            discarded=$((discarded + 1))
            echo "   (discarded: other processes were busy during that run; repeating)" >&2
            continue
        fi
        runs+="${runs:+,}$line"
        kept=$((kept + 1))
    done
    fact "{\"kind\":\"scenario\",\"id\":\"$id\",\"title\":\"$title\",\"expect\":$expect_status,\"discarded\":$discarded,\"runs\":[$runs]}"
}

# ---------------------------------------------------------------- environment
fact "{\"kind\":\"param\",\"mode\":\"$MODE\",\"duration\":\"$DURATION\",\"warmup\":\"$WARMUP\",\"repeats\":$REPEATS,\"conns\":$CONNS,\"wrk_threads\":$WRK_THREADS,\"pin_servers\":\"$PIN_SERVERS\",\"pin_wrk\":\"$PIN_WRK\",\"sg_threads\":$SG_THREADS,\"sessions\":$SESSIONS,\"sessions_large\":$SESSIONS_LARGE,\"express_sessions\":$EXPRESS_SESSIONS}"
{
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) CPUs)"
    echo "kernel=$(uname -sr)"
    echo "memory=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "sessiongate=$("$SG" --version) (commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', with uncommitted changes in src/ or Cargo.*'))"
    echo "rustc=$(rustc --version)"
    echo "pingora=$(cargo tree -p pingora --depth 0 --quiet 2>/dev/null | head -1 | awk '{ print $2 }')"
    echo "nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
    echo "node=$(node --version)"
    for p in express express-session http-proxy-middleware; do
        echo "$p=$(node -p "require('./bench/peers/express/node_modules/$p/package.json').version")"
    done
} >"$TMP/env.txt"

SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export BENCH_SG_SECRET=$SECRET
export BENCH_SG_ADMIN_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
export SESSION_SECRET=$SECRET

# Look-alike cookies (the same length as sessiongate's, under another name) for
# the scenarios that need no session, so wrk sends the same bytes everywhere.
python3 - "$TMP/anon_cookies.txt" <<'PY'
import os, sys
with open(sys.argv[1], "w") as f:
    for _ in range(10000):
        f.write("xid=%s.%s\n" % (os.urandom(32).hex(), os.urandom(32).hex()))
PY

# ---------------------------------------------------------------- the backend
start_backend

# ---------------------------------------------------------------- TLS
# The same throwaway certificate (ECDSA P-256, for 127.0.0.1) for both.
tls_cert() {
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>"$TMP/openssl.log" ||
        die "openssl failed: $(cat "$TMP/openssl.log")"
}

# start_nginx_tls: nginx as a TLS-terminating reverse proxy (no auth) with that
# certificate, TLS 1.2/1.3, as many workers as sessiongate has threads; sets
# NGX_TLS_PORT, NGX_TLS_PID.
start_nginx_tls() {
    NGX_TLS_PORT=$(free_port)
    mkdir -p "$TMP/nginx-tls/logs"
    cat >"$TMP/nginx-tls/nginx.conf" <<EOF
worker_processes $SG_THREADS;
pid $TMP/nginx-tls/nginx.pid;
error_log $TMP/nginx-tls/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGX_TLS_PORT ssl backlog=4096;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    start nginx-tls "$NGINX" -p "$TMP/nginx-tls" -e "$TMP/nginx-tls/logs/error.log" -c "$TMP/nginx-tls/nginx.conf" -g 'daemon off;'
    NGX_TLS_PID=$LAST_PID
    wait_port "$NGX_TLS_PORT" "$NGX_TLS_PID" nginx-tls
}

# start_tls_peers: the certificate, nginx TLS, and sessiongate with a TLS
# listener and SESSIONS sessions (minted on its plain listener).
start_tls_peers() {
    tls_cert
    start_nginx_tls
    expect "https://127.0.0.1:$NGX_TLS_PORT/app" 200 "" "ok"
    SG_TLS_PORT=$(free_port)
    SG_EXTRA_CONFIG=$(printf '[[server.tls]]\nlisten = ["127.0.0.1:%s"]\ncert_file = "%s"\nkey_file = "%s"\n' \
        "$SG_TLS_PORT" "$TMP/tls/cert.pem" "$TMP/tls/key.pem")
    SG_EXTRA_CONFIG=$SG_EXTRA_CONFIG start_sg sg-tls false
    wait_port "$SG_TLS_PORT" "$SG_PID" sg-tls
    mint "127.0.0.1:$SG_PORT" "$SESSIONS" "$TMP/sg_tls_cookies.txt" /mint sid >/dev/null
    expect "https://127.0.0.1:$SG_TLS_PORT/app" 200 "$(head -1 "$TMP/sg_tls_cookies.txt")" "ok"
}

# tls_rows SUFFIX PEERS: the keep-alive and the handshake row of each peer
# ("nginx sg" or "sg nginx": pairs alternate the order).
tls_rows() {
    local suffix=$1 peer
    for peer in $2; do
        if [ "$peer" = nginx ]; then
            measure "nginx-tls-keepalive$suffix" "nginx TLS reverse proxy, keep-alive (no auth)" \
                "https://127.0.0.1:$NGX_TLS_PORT/app" "$TMP/anon_cookies.txt" 200 "$NGX_TLS_PID" "$BACKEND_PID"
            WRK_EXTRA=(-H "Connection: close")
            measure "nginx-tls-handshake$suffix" "nginx TLS, a new connection and full handshake per request" \
                "https://127.0.0.1:$NGX_TLS_PORT/app" "$TMP/anon_cookies.txt" 200 "$NGX_TLS_PID" "$BACKEND_PID"
            unset WRK_EXTRA
        else
            measure "sg-tls-protected$suffix" "sessiongate TLS, protected route, $SESSIONS sessions, keep-alive" \
                "https://127.0.0.1:$SG_TLS_PORT/app" "$TMP/sg_tls_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
            WRK_EXTRA=(-H "Connection: close")
            measure "sg-tls-handshake$suffix" "sessiongate TLS, public route, a new connection and full handshake per request" \
                "https://127.0.0.1:$SG_TLS_PORT/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
            unset WRK_EXTRA
        fi
    done
}

if [ "$MODE" = stack ]; then
    # Everything runs at once; each round measures the four in a rotated order,
    # so a change in the machine's load lands on all of them.
    say "stack: nginx alone, sessiongate inline, nginx auth_request -> sessiongate, and sessiongate with X-User-Assertion; $AB_PAIRS rounds"
    start_nginx_proxy
    start_sg sg false
    SG_INLINE_PID=$SG_PID
    SG_INLINE_PORT=$SG_PORT
    mint "127.0.0.1:$SG_PORT" "$SESSIONS" "$TMP/sg_cookies_small.txt" /mint sid >/dev/null
    start_forward_auth
    start_sg_assertion
    rows=(nginx-proxy sg-protected-small nginx-auth-request sg-protected-assertion)
    for pair in $(seq "$AB_PAIRS"); do
        for k in 0 1 2 3; do
            row=${rows[$(((k + pair - 1) % 4))]}
            case $row in
                nginx-proxy) measure "$row-$pair" "nginx plain reverse proxy" \
                    "http://127.0.0.1:$NGX_PORT/app" "$TMP/anon_cookies.txt" 200 "$NGX_PID" "$BACKEND_PID" ;;
                sg-protected-small) measure "$row-$pair" "sessiongate inline, protected route, $SESSIONS sessions" \
                    "http://127.0.0.1:$SG_INLINE_PORT/app" "$TMP/sg_cookies_small.txt" 200 "$SG_INLINE_PID" "$BACKEND_PID" ;;
                nginx-auth-request) measure "$row-$pair" "nginx auth_request -> sessiongate, protected route" \
                    "http://127.0.0.1:$NGX_FA_PORT/app" "$TMP/sg_fa_cookies.txt" 200 "$NGX_FA_PID,$SG_FA_PID" "$BACKEND_PID" ;;
                sg-protected-assertion) measure "$row-$pair" "sessiongate inline, protected route, X-User-Assertion on" \
                    "http://127.0.0.1:$SG_PORT/app" "$TMP/sg_as_cookies.txt" 200 "$SG_PID" "$BACKEND_PID" ;;
            esac
        done
    done
    mkdir -p "$RESULTS"
    cp "$FACTS" "$RESULTS/stack.jsonl"
    python3 bench/report.py --stack "$FACTS" "$TMP/env.txt" >"$RESULTS/stack.md"
    cat "$RESULTS/stack.md"
    exit 0
fi

if [ "$MODE" = credentials ]; then
    # One gate; each round measures the session cookie, HTTP Basic, a bearer
    # JWT and an API key on the same kind of protected route, in rotated order.
    say "credentials: the session cookie, HTTP Basic, a bearer JWT, an API key; $AB_PAIRS rounds"
    [ -d tests/browser/node_modules/jose ] ||
        die "the bearer rows need jose: run ./test.sh once (or npm ci in tests/browser)"
    printf '[[user]]\nname = "bench"\npassword_hash = "%s"\nroles = ["bench"]\n' \
        "$(printf 'bench-password-1\n' | "$SG" hash-password)" >"$TMP/users.toml"
    # An issuer with one key per algorithm (bench/jwt_tokens.mjs): its tokens,
    # an hour long, for the remembered row and the first-check rows.
    JWT_TOKENS=${BENCH_JWT_TOKENS:-40000}
    say "minting $JWT_TOKENS JWTs per algorithm (RS256, PS256, ES256, EdDSA)"
    mkfifo "$TMP/algs.in"
    node bench/jwt_tokens.mjs "$TMP" "$JWT_TOKENS" <"$TMP/algs.in" >"$TMP/algs.out" 2>"$TMP/algs.err" &
    PIDS+=("$!")
    exec 8>"$TMP/algs.in"
    for _ in $(seq 600); do
        grep -q '^issuer ' "$TMP/algs.out" && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || die "the issuer did not start: $(cat "$TMP/algs.err")"
        sleep 0.5
    done
    ALGS_ISSUER=$(sed -n 's/^issuer //p' "$TMP/algs.out")
    [ -n "$ALGS_ISSUER" ] || die "the issuer did not start in 5 minutes"
    SG_EXTRA_CONFIG="[store]
kind = \"memory\"
credentials_file = \"$TMP/credentials.json\"

[auth]
users_file = \"$TMP/users.toml\"

[[auth.jwt]]
id = \"algs\"
issuer = \"$ALGS_ISSUER\"
audiences = [\"bench\"]
algorithms = [\"RS256\", \"PS256\", \"ES256\", \"EdDSA\"]
roles_claim = \"scope\"

[[route]]
path = \"/basic\"
credentials = [\"basic\"]

[[route]]
path = \"/bearer\"
credentials = [\"bearer\"]

[[route]]
path = \"/key\"
credentials = [\"api_key\"]"
    start_sg sg false
    unset SG_EXTRA_CONFIG
    mint "127.0.0.1:$SG_PORT" "$SESSIONS" "$TMP/sg_cookies_small.txt" /mint sid >/dev/null
    BASIC="Authorization: Basic $(printf 'bench:bench-password-1' | base64)"
    # The remembered row's token: the RS256 file's last (the first-check rows
    # run out of time long before they reach it).
    BEARER=$(tail -1 "$TMP/tokens-RS256.txt")
    KEY=$(curl -s -H "Authorization: Bearer $BENCH_SG_ADMIN_TOKEN" \
        -d '{"owner":"bench","name":"bench"}' "http://127.0.0.1:$SG_ADMIN_PORT/keys" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])') ||
        die "no API key from the admin API"
    APIKEY="Authorization: Bearer $KEY"
    for check in "basic:$BASIC" "bearer:$BEARER" "key:$APIKEY"; do
        out=$(curl -s -o /dev/null -w '%{http_code}' -H "${check#*:}" "http://127.0.0.1:$SG_PORT/${check%%:*}")
        [ "$out" = 200 ] || die "${check%%:*} on /${check%%:*} answered $out"
    done
    for pair in $(seq "$AB_PAIRS"); do
        rows="session basic bearer apikey"
        for _ in $(seq $(((pair - 1) % 4))); do rows="${rows#* } ${rows%% *}"; done
        for row in $rows; do
            case $row in
                session) measure "sg-protected-session-$pair" "protected route, the session cookie, $SESSIONS sessions" \
                    "http://127.0.0.1:$SG_PORT/app" "$TMP/sg_cookies_small.txt" 200 "$SG_PID" "$BACKEND_PID" ;;
                basic) WRK_EXTRA=(-H "$BASIC")
                    measure "sg-protected-basic-$pair" "protected route, HTTP Basic (look-alike cookies beside it)" \
                        "http://127.0.0.1:$SG_PORT/basic" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
                    WRK_EXTRA=() ;;
                bearer) WRK_EXTRA=(-H "$BEARER")
                    measure "sg-protected-bearer-$pair" "protected route, a bearer JWT, remembered (look-alike cookies beside it)" \
                        "http://127.0.0.1:$SG_PORT/bearer" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
                    WRK_EXTRA=() ;;
                apikey) WRK_EXTRA=(-H "$APIKEY")
                    measure "sg-protected-apikey-$pair" "protected route, an API key (look-alike cookies beside it)" \
                        "http://127.0.0.1:$SG_PORT/key" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
                    WRK_EXTRA=() ;;
            esac
        done
    done
    # The first check of a JWT: every request a token the gate has not seen.
    # No warm-up (it would spend the tokens); the gate is warm from the rows above.
    for alg in RS256 PS256 ES256 EdDSA; do
        DURATION=${BENCH_JWT_DURATION:-3s} WARMUP=0s LUA_ORDER=sequential \
            measure "sg-jwt-first-$alg" "protected route, a new $alg JWT on every request ($JWT_TOKENS tokens)" \
            "http://127.0.0.1:$SG_PORT/bearer" "$TMP/tokens-$alg.txt" 200 "$SG_PID" "$BACKEND_PID"
    done
    fact "{\"kind\":\"param\",\"jwt_tokens\":$JWT_TOKENS}"
    exec 8>&-
    mkdir -p "$RESULTS"
    cp "$FACTS" "$RESULTS/credentials.jsonl"
    python3 bench/report.py --credentials "$FACTS" "$TMP/env.txt" >"$RESULTS/credentials.md"
    cat "$RESULTS/credentials.md"
    exit 0
fi

if [ "$MODE" = tls ]; then
    say "TLS: nginx and sessiongate with one certificate, $AB_PAIRS alternating pairs"
    start_tls_peers
    for pair in $(seq "$AB_PAIRS"); do
        tls_rows "-$pair" "$([ $((pair % 2)) = 1 ] && echo "nginx sg" || echo "sg nginx")"
    done
    mkdir -p "$RESULTS"
    cp "$FACTS" "$RESULTS/tls.jsonl"
    python3 bench/report.py --tls "$FACTS" "$TMP/env.txt" >"$RESULTS/tls.md"
    cat "$RESULTS/tls.md"
    exit 0
fi

if [ "$MODE" != ab ] && [ "$MODE" != hosts ] && [ "$MODE" != factor ] && [ "$MODE" != slow ]; then
# 1. direct
measure direct "direct to the backend (nginx return 200, 1 worker)" \
    "http://127.0.0.1:$BACKEND_PORT/app" "$TMP/anon_cookies.txt" 200 "" "$BACKEND_PID"

# ---------------------------------------------------------------- 2. nginx proxy
start_nginx_proxy
measure nginx-proxy "nginx plain reverse proxy ($SG_THREADS workers, upstream keepalive 64)" \
    "http://127.0.0.1:$NGX_PORT/app" "$TMP/anon_cookies.txt" 200 "$NGX_PID" "$BACKEND_PID"
stop "$NGX_PID"
fi

# ---------------------------------------------------------------- sessiongate
# slow_start URL_BASE: hold SLOW_CONNS slowloris connections; sets SLOW_PID
slow_start() {
    rm -f "$TMP/slow.ready"
    python3 "$ROOT/bench/slowloris.py" "$1" "$SLOW_CONNS" "$TMP/slow.ready" >"$TMP/slow.json" &
    SLOW_PID=$!
    PIDS+=("$SLOW_PID")
    local i
    for i in $(seq 300); do
        [ -f "$TMP/slow.ready" ] && return 0
        sleep 0.1
    done
    die "the slowloris client did not open $SLOW_CONNS connections within 30 s"
}
slow_stop() { # prints the client's counts
    stop "$SLOW_PID"
    cat "$TMP/slow.json"
}

# ---------------------------------------------------------------- slowloris, paired
if [ "$MODE" = slow ]; then
    say "slowloris: the public route without and with $SLOW_CONNS slow connections, $AB_PAIRS pairs"
    start_sg sg false
    SG_BASE=127.0.0.1:$SG_PORT
    expect "http://$SG_BASE/public/x" 200 "" "ok"
    for pair in $(seq "$AB_PAIRS"); do
        measure "sg-public-$pair" "public route" \
            "http://$SG_BASE/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
        slow_start "$SG_BASE"
        measure "sg-public-slow-$pair" "public route, $SLOW_CONNS slowloris connections held" \
            "http://$SG_BASE/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
        fact "{\"kind\":\"slowloris\",\"pair\":$pair,\"client\":$(slow_stop)}"
    done
    mkdir -p "$RESULTS"
    cp "$FACTS" "$RESULTS/slowloris.jsonl"
    python3 bench/report.py --slow "$FACTS" "$TMP/env.txt" >"$RESULTS/slowloris.md"
    cat "$RESULTS/slowloris.md"
    exit 0
fi

# ---------------------------------------------------------------- many connections
idle_start() { # idle_start HOST:PORT: BENCH_IDLE_CONNS idle keep-alive connections
    rm -f "$TMP/idle.ready"
    python3 "$ROOT/bench/idle.py" "$1" "$IDLE_CONNS" "$TMP/idle.ready" >"$TMP/idle.json" &
    IDLE_PID=$!
    PIDS+=("$IDLE_PID")
    local i
    for i in $(seq 1200); do
        [ -f "$TMP/idle.ready" ] && return 0
        sleep 0.1
    done
    die "the idle client did not open $IDLE_CONNS connections within 120 s"
}
idle_stop() { # prints the client's counts
    stop "$IDLE_PID"
    cat "$TMP/idle.json"
}

if [ "$MODE" = conns ]; then
    say "connections: the public route alone and with $IDLE_CONNS idle connections, sessiongate and nginx, $AB_PAIRS pairs"
    # The idle connections must outlive the rows: no idle timeout cuts them.
    SG_SERVER_EXTRA="client_idle_timeout = \"1h\"
max_connections = $((IDLE_CONNS + 1000))
${BENCH_SG_READ_BUFFER:+read_buffer = $BENCH_SG_READ_BUFFER}" start_sg sg false
    SG_BASE=127.0.0.1:$SG_PORT
    NGX_WORKER_CONNECTIONS=$((IDLE_CONNS + 1000)) start_nginx_proxy
    expect "http://$SG_BASE/public/x" 200 "" "ok"
    for pair in $(seq "$AB_PAIRS"); do
        for side in sg nginx; do
            if [ "$side" = sg ]; then base=$SG_BASE pid=$SG_PID; else base=127.0.0.1:$NGX_PORT pid=$NGX_PID; fi
            # nginx: the master and its workers.
            pids=$pid
            [ "$side" = nginx ] && pids="$pid $(pgrep -P "$pid" | tr '\n' ' ')"
            rss() { local t=0 p; for p in $pids; do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }
            measure "$side-active-$pair" "public route, $CONNS active connections" \
                "http://$base/public/x" "$TMP/anon_cookies.txt" 200 "$pid" "$BACKEND_PID"
            before=$(rss)
            idle_start "$base"
            held=$(rss)
            measure "$side-active-idle-$pair" "public route, $CONNS active and $IDLE_CONNS idle connections" \
                "http://$base/public/x" "$TMP/anon_cookies.txt" 200 "$pid" "$BACKEND_PID"
            after=$(rss)
            fact "{\"kind\":\"conns\",\"side\":\"$side\",\"pair\":$pair,\"idle\":$IDLE_CONNS,\"sg_read_buffer\":${BENCH_SG_READ_BUFFER:-4096},\"rss_before_kb\":$before,\"rss_held_kb\":$held,\"rss_after_kb\":$after,\"client\":$(idle_stop)}"
        done
    done
    mkdir -p "$RESULTS"
    cp "$FACTS" "$RESULTS/conns.jsonl"
    python3 bench/report.py --conns "$FACTS" "$TMP/env.txt" >"$RESULTS/conns.md"
    cat "$RESULTS/conns.md"
    exit 0
fi

# ---------------------------------------------------------------- A/B of two builds
if [ "$MODE" = ab ] || [ "$MODE" = hosts ] || [ "$MODE" = factor ]; then
    # Both gates hold the same number of sessions and run side by side; each
    # pair measures A then B (the order swaps every pair), so a change in the
    # machine's load lands on both.
    declare -A AB_BASE AB_PID AB_BIN AB_EXTRA
    if [ "$MODE" = hosts ]; then
        # The same binary twice: rules naming the request's host (127.0.0.1,
        # 10 rules) in both, and BENCH_HOSTS - 1 more hosts of 10 rules in a.
        AB_SESSIONS=$SESSIONS
        HOSTS=${BENCH_HOSTS:-1000}
        AB_BIN[a]=$SG AB_BIN[b]=$SG
        for side in a b; do
            n=$([ $side = a ] && echo "$HOSTS" || echo 1)
            # A file, not the environment: 10,000 rules pass the limit of one variable.
            AB_EXTRA[$side]=$TMP/hosts_$side.toml
            python3 - "$n" >"${AB_EXTRA[$side]}" <<'PY'
import sys
n = int(sys.argv[1])
hosts = ["127.0.0.1"] + [f"h{i}.bench.test" for i in range(1, n)]
for h in hosts:
    for j in range(10):
        print(f'[[route]]\npath = "/r{j}"\nhosts = ["{h}"]\naccess = "public"\n')
PY
        done
        AB_LABELS=("$HOSTS hosts of 10 rules" "1 host of 10 rules")
        say "A/B: $HOSTS hosts (a) against 1 host (b), $AB_SESSIONS sessions each"
    elif [ "$MODE" = factor ]; then
        # The same binary twice: a second factor on in a, off in b. The factor
        # state is a field of the session record the protected route loads
        # anyway, so a should cost what b does.
        AB_SESSIONS=$SESSIONS
        AB_BIN[a]=$SG AB_BIN[b]=$SG
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/factor.key"
        # Both have the built-in login (the factor's); only a has the factor.
        printf '[[user]]\nname = "bench"\npassword_hash = "%s"\n' \
            "$(printf 'bench-password\n' | "$SG" hash-password)" >"$TMP/users.toml"
        AB_EXTRA[a]=$TMP/factor_a.toml AB_EXTRA[b]=$TMP/factor_b.toml
        printf '[auth]\nusers_file = "%s"\n' "$TMP/users.toml" >"${AB_EXTRA[b]}"
        printf '[auth]\nusers_file = "%s"\n[auth.second_factor]\nmode = "optional"\nkeys = [{ file = "%s" }]\n\n[store]\nkind = "memory"\ncredentials_file = "%s"\n' \
            "$TMP/users.toml" "$TMP/factor.key" "$TMP/credentials.json" >"${AB_EXTRA[a]}"
        AB_LABELS=("second factor on" "second factor off")
        say "A/B: a second factor on (a) against off (b), $AB_SESSIONS sessions each"
    else
        AB_SESSIONS=$SESSIONS_LARGE
        AB_BIN[a]=$SG AB_BIN[b]=$BENCH_BASELINE AB_EXTRA[a]=/dev/null AB_EXTRA[b]=/dev/null
        AB_LABELS=("$SG" "$BENCH_BASELINE")
        say "A/B: this build (a) against $BENCH_BASELINE (b), $AB_SESSIONS sessions each"
    fi
    for side in a b; do
        SG_EXTRA_CONFIG_FILE=${AB_EXTRA[$side]} start_sg "sg-$side" false "$SG_THREADS" "" "${AB_BIN[$side]}"
        AB_BASE[$side]=127.0.0.1:$SG_PORT
        AB_PID[$side]=$SG_PID
        sleep 1
        rss0=$(rss_kb "$SG_PID")
        mint "${AB_BASE[$side]}" "$AB_SESSIONS" "$TMP/ab_cookies_$side.txt" /mint sid >/dev/null
        sleep 2
        expect "http://${AB_BASE[$side]}/app" 200 "$(head -1 "$TMP/ab_cookies_$side.txt")" "ok"
        fact "{\"kind\":\"rss\",\"peer\":\"sg-$side\",\"start_kb\":$rss0,\"points\":[[0,$rss0],[$AB_SESSIONS,$(rss_kb "$SG_PID")]]}"
    done
    for pair in $(seq "$AB_PAIRS"); do
        order="a b"
        [ $((pair % 2)) = 0 ] && order="b a"
        for side in $order; do
            measure "ab-$side-protected-$pair" "$side: protected route, $AB_SESSIONS sessions" \
                "http://${AB_BASE[$side]}/app" "$TMP/ab_cookies_$side.txt" 200 "${AB_PID[$side]}" "$BACKEND_PID"
            measure "ab-$side-public-$pair" "$side: public route, $AB_SESSIONS sessions in the store" \
                "http://${AB_BASE[$side]}/public/x" "$TMP/anon_cookies.txt" 200 "${AB_PID[$side]}" "$BACKEND_PID"
        done
    done
    mkdir -p "$RESULTS"
    name=$([ "$MODE" = ab ] && echo ab || echo "$MODE")
    cp "$FACTS" "$RESULTS/$name.jsonl"
    python3 bench/report.py --ab "$FACTS" "${AB_LABELS[@]}" >"$RESULTS/$name.md"
    cat "$RESULTS/$name.md"
    exit 0
fi

say "sessiongate ($SG_THREADS threads, access log off)"
start_sg sg false
SG_BASE=127.0.0.1:$SG_PORT
expect "http://$SG_BASE/public/x" 200 "" "ok"
expect "http://$SG_BASE/api/x" 401
RSS_START=$(rss_kb "$SG_PID")

# 3. public route, 6. the 401 path (no session exists yet)
measure sg-public "sessiongate, public route" \
    "http://$SG_BASE/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
slow_start "$SG_BASE"
measure sg-public-slow "sessiongate, public route, while $SLOW_CONNS slowloris connections are held open" \
    "http://$SG_BASE/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
fact "{\"kind\":\"slowloris\",\"pair\":0,\"client\":$(slow_stop)}"
measure sg-401 "sessiongate, anonymous API request (401)" \
    "http://$SG_BASE/api/x" "$TMP/anon_cookies.txt" 401 "$SG_PID" "$BACKEND_PID"
sleep 1
RSS_0=$(rss_kb "$SG_PID")

# 4. protected route with SESSIONS, then SESSIONS_LARGE live sessions
say "minting $SESSIONS sessions"
RATE=$(mint "$SG_BASE" "$SESSIONS" "$TMP/sg_cookies_small.txt" /mint sid)
fact "{\"kind\":\"mint\",\"peer\":\"sessiongate\",\"count\":$SESSIONS,\"per_s\":$RATE}"
sleep 2
RSS_SMALL=$(rss_kb "$SG_PID")
ONE=$(head -1 "$TMP/sg_cookies_small.txt")
expect "http://$SG_BASE/whoami" 200 "$ONE" "u*"
expect "http://$SG_BASE/app" 200 "$ONE" "ok"
measure sg-protected-small "sessiongate, protected route, $SESSIONS sessions" \
    "http://$SG_BASE/app" "$TMP/sg_cookies_small.txt" 200 "$SG_PID" "$BACKEND_PID"

say "minting $((SESSIONS_LARGE - SESSIONS)) more sessions"
RATE=$(mint "$SG_BASE" "$((SESSIONS_LARGE - SESSIONS))" "$TMP/sg_cookies_more.txt" /mint sid)
fact "{\"kind\":\"mint\",\"peer\":\"sessiongate\",\"count\":$((SESSIONS_LARGE - SESSIONS)),\"per_s\":$RATE}"
cat "$TMP/sg_cookies_small.txt" "$TMP/sg_cookies_more.txt" >"$TMP/sg_cookies_large.txt"
sleep 2
RSS_LARGE=$(rss_kb "$SG_PID")
measure sg-protected-large "sessiongate, protected route, $SESSIONS_LARGE sessions" \
    "http://$SG_BASE/app" "$TMP/sg_cookies_large.txt" 200 "$SG_PID" "$BACKEND_PID"
# The public route again with the large store present: the same process, the
# same memory, only the session check differs from the row above.
measure sg-public-large "sessiongate, public route, $SESSIONS_LARGE sessions in the store" \
    "http://$SG_BASE/public/x" "$TMP/anon_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
fact "{\"kind\":\"rss\",\"peer\":\"sessiongate\",\"start_kb\":$RSS_START,\"points\":[[0,$RSS_0],[$SESSIONS,$RSS_SMALL],[$SESSIONS_LARGE,$RSS_LARGE]]}"

if [ "$PERF" = 1 ]; then
    say "perf: profiling sessiongate on the protected route ($SESSIONS_LARGE sessions)"
    taskset -c "$PIN_WRK" wrk -t"$WRK_THREADS" -c"$CONNS" -d8s -s bench/cookies.lua \
        "http://$SG_BASE/app" -- "$TMP/sg_cookies_large.txt" >"$TMP/wrk-perf.txt" 2>&1 &
    WRK_PID=$!
    sleep 1
    perf record -F 999 -g -p "$SG_PID" -o "$TMP/perf.data" -- sleep 5 >"$TMP/perf.log" 2>&1 || true
    wait "$WRK_PID" || true
    {
        echo "# Where sessiongate's CPU time goes"
        echo
        echo "\`perf record -F 999 -g -p <sessiongate> -- sleep 5\` during the protected route with"
        echo "$SESSIONS_LARGE live sessions (wrk as in the benchmark; $(sed -n 's/^Requests\/sec: *//p' "$TMP/wrk-perf.txt") req/s while profiled)."
        echo
        python3 bench/perf_summary.py "$TMP/perf.data"
    } >"$TMP/perf.md" 2>&1 || true
    mkdir -p "$RESULTS"
    cp "$TMP/perf.md" "$RESULTS/perf.md"
fi
stop "$SG_PID"

# ---------------------------------------------------------------- TLS rows
say "TLS: nginx and sessiongate with one certificate"
start_tls_peers
tls_rows "" "nginx sg"
stop "$SG_PID"
stop "$NGX_TLS_PID"

# ---------------------------------------------------------------- forward-auth
# nginx in front with auth_request to sessiongate's /auth/nginx, the backend
# served by nginx: the same protected route as sessiongate inline.
say "nginx auth_request -> sessiongate (forward-auth)"
start_forward_auth
# Proxy CPU here is nginx and sessiongate together.
measure nginx-auth-request "nginx auth_request -> sessiongate, protected route, $SESSIONS sessions" \
    "http://127.0.0.1:$NGX_FA_PORT/app" "$TMP/sg_fa_cookies.txt" 200 "$NGX_FA_PID,$SG_FA_PID" "$BACKEND_PID"
stop "$NGX_FA_PID"
stop "$SG_FA_PID"

# ---------------------------------------------------------------- the signed identity
# The same protected route with X-User-Assertion on (an EdDSA JWT per session,
# cached for half its lifetime): against sg-protected-small, same sessions count.
say "sessiongate with the signed identity (X-User-Assertion)"
start_sg_assertion
measure sg-protected-assertion "sessiongate, protected route, $SESSIONS sessions, X-User-Assertion on" \
    "http://127.0.0.1:$SG_PORT/app" "$TMP/sg_as_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
stop "$SG_PID"

# ---------------------------------------------------------------- 5. express
say "express-session peer (node, one process, same pinning)"
EX_PORT=$(free_port)
start express env NODE_ENV=production node bench/peers/express/server.js "$EX_PORT" "127.0.0.1:$BACKEND_PORT"
EX_PID=$LAST_PID
wait_port "$EX_PORT" "$EX_PID" express
expect "http://127.0.0.1:$EX_PORT/app" 401
EX_RSS_0=$(rss_kb "$EX_PID")
say "minting $EXPRESS_SESSIONS express sessions"
RATE=$(mint "127.0.0.1:$EX_PORT" "$EXPRESS_SESSIONS" "$TMP/ex_cookies.txt" /login connect.sid)
fact "{\"kind\":\"mint\",\"peer\":\"express\",\"count\":$EXPRESS_SESSIONS,\"per_s\":$RATE}"
sleep 2
EX_RSS_N=$(rss_kb "$EX_PID")
ONE=$(head -1 "$TMP/ex_cookies.txt")
expect "http://127.0.0.1:$EX_PORT/whoami" 200 "$ONE" "u*"
measure express "express + express-session + http-proxy-middleware, $EXPRESS_SESSIONS sessions" \
    "http://127.0.0.1:$EX_PORT/app" "$TMP/ex_cookies.txt" 200 "$EX_PID" "$BACKEND_PID"
fact "{\"kind\":\"rss\",\"peer\":\"express\",\"start_kb\":$EX_RSS_0,\"points\":[[0,$EX_RSS_0],[$EXPRESS_SESSIONS,$EX_RSS_N]]}"
stop "$EX_PID"

# ---------------------------------------------------------------- access log on
say "sessiongate with the access log on (stdout to a file)"
start_sg sg-log true
SG_BASE=127.0.0.1:$SG_PORT
RATE=$(mint "$SG_BASE" "$SESSIONS" "$TMP/sg_log_cookies.txt" /mint sid)
measure sg-protected-small-log "sessiongate, protected route, $SESSIONS sessions, access log on" \
    "http://$SG_BASE/app" "$TMP/sg_log_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
stop "$SG_PID"

# ---------------------------------------------------------------- experiments
# Not the product configuration: the same protected-route scenario with one
# knob changed from outside the code, to show where time goes (bench/README.md).
if [ "$EXPERIMENTS" = 1 ]; then
    say "experiment: sessiongate with threads = 1"
    start_sg sg-threads1 false 1
    SG_BASE=127.0.0.1:$SG_PORT
    mint "$SG_BASE" "$SESSIONS" "$TMP/sg_t1_cookies.txt" /mint sid >/dev/null
    measure sg-protected-small-threads1 "experiment: protected route, $SESSIONS sessions, threads = 1" \
        "http://$SG_BASE/app" "$TMP/sg_t1_cookies.txt" 200 "$SG_PID" "$BACKEND_PID"
    stop "$SG_PID"
fi
stop "$BACKEND_PID"

# ---------------------------------------------------------------- memory of the store alone
say "memory of the session store alone (bench_memory, $SESSIONS_LARGE sessions)"
for m in distinct shared one anonymous; do
    line=$("$MEMORY" "$SESSIONS_LARGE" "$m") || die "bench_memory $m failed"
    fact "{\"kind\":\"store_memory\",\"result\":$line}"
    echo "   $line" >&2
done

# ---------------------------------------------------------------- login cost
say "login cost: $LOGIN_HASHES x sessiongate hash-password (argon2id)"
python3 - "$SG" "$LOGIN_HASHES" >>"$FACTS" <<'PY'
import json, subprocess, sys, time
sg, n = sys.argv[1], int(sys.argv[2])
def timed(args, stdin):
    t = time.perf_counter()
    subprocess.run(args, input=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
startup = sorted(timed([sg, "--version"], b"") for _ in range(n))[n // 2]
hashes = sorted(timed([sg, "hash-password"], b"correct horse battery staple\n") for _ in range(n))
print(json.dumps({"kind": "login", "n": n, "median_ms": hashes[n // 2] * 1e3,
                  "min_ms": hashes[0] * 1e3, "startup_ms": startup * 1e3}))
PY

# ---------------------------------------------------------------- criterion
if [ "$MODE" = full ]; then
    say "criterion micro-benchmarks (cargo bench --bench hot_path)"
    CRIT_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/criterion
    touch "$TMP/criterion.start"
    sleep 1
    cargo bench --quiet --bench hot_path >"$TMP/criterion.txt" 2>&1 ||
        die "cargo bench failed: $(tail -20 "$TMP/criterion.txt")"
    python3 - "$CRIT_DIR" "$TMP/criterion.start" >>"$FACTS" <<'PY'
import json, os, sys
root, marker = sys.argv[1], os.path.getmtime(sys.argv[2])
for dirpath, _, files in os.walk(root):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    est = os.path.join(dirpath, "estimates.json")
    if os.path.getmtime(est) < marker:
        continue
    meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
    e = json.load(open(est))
    print(json.dumps({"kind": "criterion", "id": meta["full_id"],
                      "median_ns": e["median"]["point_estimate"],
                      "lo_ns": e["median"]["confidence_interval"]["lower_bound"],
                      "hi_ns": e["median"]["confidence_interval"]["upper_bound"]}))
PY
fi

# ---------------------------------------------------------------- report
mkdir -p "$RESULTS"
# The raw numbers too, so the report can be re-rendered:
#   python3 bench/report.py bench/results/facts.jsonl bench/results/env.txt bench/results
cp "$FACTS" "$RESULTS/facts.jsonl"
cp "$TMP/env.txt" "$RESULTS/env.txt"
python3 bench/report.py "$FACTS" "$TMP/env.txt" "$RESULTS"
# Fails (exit 1) unless every scenario produced numbers with the expected status.
python3 bench/report.py --check "$FACTS"
