# Helpers shared by the benchmark scripts (bench/run.sh, bench/soak.sh): a
# temporary directory cleaned up on exit, servers started pinned and stopped,
# the static backend, sessiongate's benchmark config, and minting sessions.
# Sourced, not run. Expects: ROOT, PIN_SERVERS, NGINX, SG, MINT, SG_THREADS.

say() { printf '\n== %s\n' "$*" >&2; }
die() {
    echo "bench: $*" >&2
    exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sessiongate-bench.XXXXXX")
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD... : run a server pinned to PIN_SERVERS, log in $TMP/NAME.log
start() {
    local name=$1
    shift
    taskset -c "$PIN_SERVERS" "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop() { # stop PID: TERM, then KILL after 5 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=()
    for i in "${PIDS[@]}"; do [ "$i" = "$pid" ] || kept+=("$i"); done
    PIDS=("${kept[@]}")
}

wait_port() { # wait_port PORT PID NAME
    local i
    for i in $(seq 100); do
        kill -0 "$2" 2>/dev/null || {
            cat "$TMP/$3.log" >&2
            die "$3 exited during start-up"
        }
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$3 did not listen on 127.0.0.1:$1 within 10 s"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# expect URL STATUS [COOKIE] [BODY]: a sanity check before measuring (https: the
# benchmark's own throwaway certificate, so not verified)
expect() {
    local url=$1 want=$2 cookie=${3:-} body=${4:-} out got
    out=$(curl -s -k -o "$TMP/curl.body" -w '%{http_code}' ${cookie:+-H "Cookie: $cookie"} "$url") || true
    got=$(cat "$TMP/curl.body" 2>/dev/null || true)
    [ "$out" = "$want" ] || die "sanity: $url gave $out, expected $want (body: ${got:0:200})"
    if [ -n "$body" ]; then
        [[ $got == $body ]] || die "sanity: $url body was '${got:0:200}', expected '$body'"
    fi
}

# start_backend: the static nginx backend; sets BACKEND_PORT, BACKEND_PID.
start_backend() {
    BACKEND_PORT=$(free_port)
    mkdir -p "$TMP/backend/logs"
    cat >"$TMP/backend/nginx.conf" <<EOF
# The backend: a static responder, one worker.
worker_processes 1;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "ok\n"; }
        # sessiongate's /mint route (session_commands = true): log a new user in.
        location = /mint { add_header X-Session-Login "u\$request_id"; return 200 "minted\n"; }
        # Sanity check: who the proxy says the user is.
        location = /whoami { return 200 "\$http_x_user\n"; }
    }
}
EOF
    start backend "$NGINX" -p "$TMP/backend" -e "$TMP/backend/logs/error.log" -c "$TMP/backend/nginx.conf" -g 'daemon off;'
    BACKEND_PID=$LAST_PID
    wait_port "$BACKEND_PORT" "$BACKEND_PID" backend
    expect "http://127.0.0.1:$BACKEND_PORT/app" 200 "" "ok"
}

# start_nginx_proxy: nginx as a plain reverse proxy in front of the backend;
# sets NGX_PORT, NGX_PID. NGX_EXTRA_LOCATIONS: more location blocks (the soak's).
start_nginx_proxy() {
    NGX_PORT=$(free_port)
    mkdir -p "$TMP/nginx-proxy/logs"
    cat >"$TMP/nginx-proxy/nginx.conf" <<EOF
# nginx as a plain reverse proxy: no auth, upstream keep-alive, as many
# workers as sessiongate has threads.
worker_processes $SG_THREADS;
worker_rlimit_nofile $((${NGX_WORKER_CONNECTIONS:-4096} + 1000));
pid $TMP/nginx-proxy/nginx.pid;
error_log $TMP/nginx-proxy/logs/error.log warn;
events { worker_connections ${NGX_WORKER_CONNECTIONS:-4096}; }
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
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {
            proxy_pass http://backend;
        }
${NGX_EXTRA_LOCATIONS:-}
    }
}
EOF
    start nginx-proxy "$NGINX" -p "$TMP/nginx-proxy" -e "$TMP/nginx-proxy/logs/error.log" -c "$TMP/nginx-proxy/nginx.conf" -g 'daemon off;'
    NGX_PID=$LAST_PID
    wait_port "$NGX_PORT" "$NGX_PID" nginx-proxy
    expect "http://127.0.0.1:$NGX_PORT/public/x" 200 "" "ok"
}

# write_sg_config DIR PORT ADMIN_PORT ACCESS_LOG THREADS
write_sg_config() {
    mkdir -p "$1"
    cat >"$1/proxy.toml" <<EOF
# sessiongate for the benchmark (written by bench/run.sh).
[server]
listen = ["127.0.0.1:$2"]
threads = $5
grace_period = "1s"
shutdown_timeout = "1s"
trusted_proxies = ${SG_TRUSTED_PROXIES:-[]}
${SG_SERVER_EXTRA:-}

[session]
secrets = [{ env = "BENCH_SG_SECRET" }]
# Long enough that no session expires during the run.
idle_timeout = "4h"
absolute_timeout = "12h"
capacity = 1100000

[session.cookie]
name = "sid"
secure = false

[admin]
listen = "127.0.0.1:$3"
token = { env = "BENCH_SG_ADMIN_TOKEN" }

[log]
level = "info"
access_log = $4

[upstream.backend]
addrs = ["127.0.0.1:$BACKEND_PORT"]
${SG_UPSTREAM_EXTRA:-}

# Only for minting sessions: the backend answers /mint with X-Session-Login.
[upstream.mint]
addrs = ["127.0.0.1:$BACKEND_PORT"]
session_commands = true

[routes]
default_access = "authenticated"
default_upstream = "backend"

[[route]]
path = "/public"
access = "public"

[[route]]
path = "/mint"
match = "exact"
access = "public"
upstream = "mint"
EOF
    # A caller's extra sections (bench/soak.sh: the users file).
    if [ -n "${SG_EXTRA_CONFIG:-}" ]; then printf '%s\n' "$SG_EXTRA_CONFIG" >>"$1/proxy.toml"; fi
    if [ -n "${SG_EXTRA_CONFIG_FILE:-}" ]; then cat "$SG_EXTRA_CONFIG_FILE" >>"$1/proxy.toml"; fi
}

# start_sg NAME ACCESS_LOG [THREADS] [LD_PRELOAD] [BINARY]: sets SG_PORT,
# SG_ADMIN_PORT, SG_PID
start_sg() {
    SG_PORT=$(free_port)
    SG_ADMIN_PORT=$(free_port)
    local bin=${5:-$SG}
    write_sg_config "$TMP/$1" "$SG_PORT" "$SG_ADMIN_PORT" "$2" "${3:-$SG_THREADS}"
    "$bin" check --config "$TMP/$1/proxy.toml" >/dev/null
    start "$1" env ${4:+LD_PRELOAD="$4"} "$bin" --config "$TMP/$1/proxy.toml"
    SG_PID=$LAST_PID
    wait_port "$SG_PORT" "$SG_PID" "$1"
}

# mint URL_BASE COUNT OUT PATH COOKIE_NAME
mint() {
    local start end
    start=$(date +%s.%N)
    "$MINT" "$1" "$2" "$3" --path "$4" --cookie "$5" --conns 64 2>"$TMP/mint.err" ||
        die "minting failed: $(cat "$TMP/mint.err")"
    end=$(date +%s.%N)
    cat "$TMP/mint.err" >&2
    [ "$(wc -l <"$3")" -eq "$2" ] || die "minted $(wc -l <"$3") cookies, wanted $2"
    python3 -c 'import sys; print("%.0f" % (int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))' "$2" "$start" "$end"
}

