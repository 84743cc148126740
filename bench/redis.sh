#!/usr/bin/env bash
# Issue 6's benchmark: protected-route latency with the Redis store against the
# memory store, for local-cache hits and for misses, in one run.
#
#     bash bench/redis.sh            ~2 minutes: bench/results/redis.md
#     bash bench/redis.sh --smoke    a few seconds: only checks every row has numbers
#     bash bench/redis.sh --pinned   issue 16: the proxy alone on core 1 (threads = 1), Redis,
#                                    the backend and wrk on core 0, and BENCH_ROUNDS (5) rounds
#                                    of the memory and hit rows in alternating order, so the
#                                    noise is stated: bench/results/redis-pinned.md
#     bash bench/redis.sh --cluster  issue 16: a Redis Cluster (three primaries; the local cache
#                                    with a tracking connection per primary) against one server
#                                    with local-cache hits and with misses, BENCH_ROUNDS (3)
#                                    rounds in rotated order: bench/results/redis-cluster.md
#
# Three sessiongate configurations behind the same nginx backend, each with its
# own freshly minted sessions, measured with wrk at low concurrency so latency
# (not throughput) is what differs:
#   memory      [store] kind = "memory"
#   redis-hit   kind = "redis": a small hot set of sessions, so nearly every load
#               is answered by the local cache (the counters in /metrics say how many)
#   redis-miss  kind = "redis" with local_capacity = 1 and local_ttl = "1ms", so nearly every load goes
#               to Redis (one round trip: the load script)
# The added latency is the Redis row's p50/p99 minus the memory row's, in µs.
# Targets (issue 6): a hit adds at most 5 µs p99; a miss at most 1 ms p99.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SMOKE=0
PINNED=0
CLUSTER=0
[ "${1:-}" = --smoke ] && SMOKE=1
[ "${1:-}" = --pinned ] && PINNED=1
[ "${1:-}" = --cluster ] && CLUSTER=1
# --pinned: the proxy on one core, everything else on the other.
SG_CPUS=${BENCH_SG_CPUS:-$([ $PINNED = 1 ] && echo 1 || echo 0,1)}
OTHER_CPUS=${BENCH_OTHER_CPUS:-$([ $PINNED = 1 ] && echo 0 || echo 0,1)}
SG_THREADS=$([ $PINNED = 1 ] && echo 1 || echo 2)
ROUNDS=${BENCH_ROUNDS:-$([ $PINNED = 1 ] && echo 5 || { [ $CLUSTER = 1 ] && echo 3; } || echo 1)}
DURATION=${BENCH_DURATION:-$([ $SMOKE = 1 ] && echo 2s || echo 10s)}
REPEATS=${BENCH_REPEATS:-$([ $SMOKE = 1 ] && echo 1 || echo 3)}
CONNS=${BENCH_CONNS:-8}
HOT=${BENCH_HOT_SESSIONS:-100}
OUT=$ROOT/bench/results/$([ $SMOKE = 1 ] && echo smoke/ || true)redis$([ $PINNED = 1 ] && echo -pinned || true)$([ $CLUSTER = 1 ] && echo -cluster || true).md

for tool in nginx redis-server wrk python3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
        { echo "bench: missing $tool (Debian: apt-get install -y nginx redis-server wrk)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin sessiongate
cargo build --release --quiet -p sessiongate-bench --bin bench_mint
SG=$ROOT/target/release/sessiongate
MINT=${CARGO_TARGET_DIR:-$ROOT/target}/release/bench_mint

TMP=$(mktemp -d /tmp/sessiongate-redis-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on $1" >&2
    exit 1
}

# The backend: nginx return 200, and /mint logs a new user in.
BACKEND_PORT=$(free_port)
mkdir -p "$TMP/backend/logs"
cat >"$TMP/backend/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / { return 200 "ok\n"; }
        location = /mint { add_header X-Session-Login "u\$request_id"; return 200 "minted\n"; }
    }
}
EOF
taskset -c "$OTHER_CPUS" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/logs/error.log" -c "$TMP/backend/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$BACKEND_PORT"

REDIS_PORT=$(free_port)
taskset -c "$OTHER_CPUS" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"

export BENCH_SG_SECRET=bench-secret-0123456789abcdef0123456789abcdef
export BENCH_SG_ADMIN_TOKEN=bench-admin-token-0123456789abcdef0123456789

# start NAME STORE_SECTION: sets PORT, ADMIN_PORT
start() {
    PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    mkdir -p "$TMP/$1"
    cat >"$TMP/$1/proxy.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
threads = $SG_THREADS
grace_period = "1s"
shutdown_timeout = "1s"
[session]
secrets = [{ env = "BENCH_SG_SECRET" }]
idle_timeout = "4h"
[session.cookie]
name = "sid"
secure = false
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token = { env = "BENCH_SG_ADMIN_TOKEN" }
[log]
access_log = false
$2
[upstream.backend]
addrs = ["127.0.0.1:$BACKEND_PORT"]
[upstream.mint]
addrs = ["127.0.0.1:$BACKEND_PORT"]
session_commands = true
[routes]
default_upstream = "backend"
[[route]]
path = "/mint"
match = "exact"
access = "public"
upstream = "mint"
EOF
    taskset -c "$SG_CPUS" "$SG" --config "$TMP/$1/proxy.toml" >"$TMP/$1/out.log" 2>&1 &
    PIDS+=($!)
    wait_port "$PORT"
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz")" = 200 ] && return 0
        sleep 0.1
    done
    echo "bench: $1 never became ready: $(tail -5 "$TMP/$1/out.log")" >&2
    exit 1
}

# run NAME: wrk over the hot set; prints the RESULT json of the median run by p99
run() {
    local results=()
    for _ in $(seq "$REPEATS"); do
        results+=("$(taskset -c "$OTHER_CPUS" wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s -s "$ROOT/bench/cookies.lua" \
            "http://127.0.0.1:$PORT/app" -- "$TMP/$1/cookies.txt" | sed -n 's/^RESULT //p')")
    done
    printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
rows = sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda r: r["p99_us"])
print(json.dumps(rows[len(rows) // 2]))'
}

metric() { # metric NAME: a counter from /metrics
    curl -s -H "Authorization: Bearer $BENCH_SG_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk -v n="$1" '$1 == n { print $2 }'
}

if [ $PINNED = 1 ]; then
    # All gates up at once, then rounds in alternating order: a change in the
    # machine's load lands on both rows, and the spread across rounds is the noise.
    declare -A P A
    for name in memory redis-hit; do
        if [ $name = memory ]; then store='[store]
kind = "memory"'; else store="[store]
kind = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
prefix = \"$name:\""; fi
        echo "== $name" >&2
        start "$name" "$store"
        P[$name]=$PORT A[$name]=$ADMIN_PORT
        "$MINT" "127.0.0.1:$PORT" "$HOT" "$TMP/$name/cookies.txt" --path /mint --cookie sid --conns 8 2>/dev/null
        taskset -c "$OTHER_CPUS" wrk -t1 -c"$CONNS" -d1s -s "$ROOT/bench/cookies.lua" "http://127.0.0.1:$PORT/app" -- "$TMP/$name/cookies.txt" >/dev/null
    done
    ADMIN_PORT=${A[redis-hit]}
    h0=$(metric sessiongate_store_local_hits_total)
    m0=$(metric sessiongate_store_local_misses_total)
    : >"$TMP/rounds.jsonl"
    for round in $(seq "$ROUNDS"); do
        order="memory redis-hit"
        [ $((round % 2)) = 0 ] && order="redis-hit memory"
        for name in $order; do
            PORT=${P[$name]}
            echo "== round $round: $name" >&2
            printf '{"round":%s,"name":"%s","result":%s}\n' "$round" "$name" "$(run "$name")" >>"$TMP/rounds.jsonl"
        done
    done
    hits=$(($(metric sessiongate_store_local_hits_total) - h0))
    misses=$(($(metric sessiongate_store_local_misses_total) - m0))
    mkdir -p "$(dirname "$OUT")"
    python3 - "$OUT" "$TMP/rounds.jsonl" "$CONNS" "$DURATION" "$REPEATS" "$HOT" "$hits" "$misses" "$SG_CPUS" "$OTHER_CPUS" <<'PY'
import json, sys, datetime, statistics
out, rounds_path, conns, duration, repeats, hot, hits, misses, sg_cpus, other_cpus = sys.argv[1:11]
rows = [json.loads(l) for l in open(rounds_path) if l.strip()]
by = {n: [r["result"] for r in rows if r["name"] == n] for n in ("memory", "redis-hit")}
rounds = sorted({r["round"] for r in rows})
def res(n, k): return [r["round"] for r in rows if r["name"] == n]
pair = {k: {r["name"]: r["result"] for r in rows if r["round"] == k} for k in rounds}
added50 = [pair[k]["redis-hit"]["p50_us"] - pair[k]["memory"]["p50_us"] for k in rounds]
added99 = [pair[k]["redis-hit"]["p99_us"] - pair[k]["memory"]["p99_us"] for k in rounds]
m50 = [r["p50_us"] for r in by["memory"]]
m99 = [r["p99_us"] for r in by["memory"]]
hits, misses = int(hits), int(misses)
lines = [
    "# The Redis store's local-cache hit on pinned cores (issue 16)",
    "",
    f"Written by `bash bench/redis.sh --pinned` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC. sessiongate",
    f"(threads = 1) on core {sg_cpus}; redis-server, the nginx backend and wrk on core {other_cpus}; wrk -t1",
    f"-c{conns} -d{duration}, the median of {repeats} run(s) by p99 per row and round, {hot} live sessions",
    f"drawn at random per request. {len(rounds)} rounds, the two rows in alternating order.",
    f"Local-cache hits on the Redis row: {hits / max(hits + misses, 1):.1%} ({hits:,} of {hits + misses:,} loads).",
    "",
    "| round | memory p50 µs | memory p99 µs | Redis hit p50 µs | Redis hit p99 µs | added p50 µs | added p99 µs |",
    "|---:|---:|---:|---:|---:|---:|---:|",
]
for k, a50, a99 in zip(rounds, added50, added99):
    m, h = pair[k]["memory"], pair[k]["redis-hit"]
    lines.append(f"| {k} | {m['p50_us']} | {m['p99_us']} | {h['p50_us']} | {h['p99_us']} | {a50:+d} | {a99:+d} |")
med = statistics.median
lines += [
    "",
    f"- added by a local-cache hit, median of the rounds: **p50 {med(added50):+.0f} µs**, **p99 {med(added99):+.0f} µs**",
    f"- noise: the memory row alone moved by {max(m50) - min(m50)} µs (p50) and {max(m99) - min(m99)} µs (p99) across rounds;",
    f"  the added p50 ranged {min(added50):+d} to {max(added50):+d} µs",
    f"- target ≤ 5 µs p50: {'met' if med(added50) <= 5 else '**not met**'}"
    + (" (inside the noise)" if abs(med(added50)) <= (max(m50) - min(m50)) else ""),
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
for r in by["memory"] + by["redis-hit"]:
    assert r["requests"] > 0 and r["err_status"] == 0, r
PY
    exit 0
fi

# store_for NAME: the [store] section of each row
store_for() {
    case $1 in
        memory) printf '[store]\nkind = "memory"\n' ;;
        redis-hit) printf '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/0"\nprefix = "%s:"\n' "$REDIS_PORT" "$1" ;;
        redis-miss) printf '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/0"\nprefix = "%s:"\nlocal_capacity = 1\nlocal_ttl = "1ms"\n' "$REDIS_PORT" "$1" ;;
        cluster) printf '[store]\nkind = "redis"\nprefix = "%s:"\n[store.cluster]\nnodes = ["127.0.0.1:%s"]\n' "$1" "${CLUSTER_PORTS[0]}" ;;
    esac
}

# start_cluster: three primaries (no replicas: this measures the request path,
# not a failover) made into a cluster; sets CLUSTER_PORTS.
start_cluster() {
    CLUSTER_PORTS=()
    for _ in 1 2 3; do
        local p bus
        p=$(free_port)
        bus=$(free_port)
        mkdir -p "$TMP/cluster-$p"
        taskset -c "$OTHER_CPUS" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
            --cluster-enabled yes --cluster-port "$bus" --dir "$TMP/cluster-$p" >"$TMP/cluster-$p/log" 2>&1 &
        PIDS+=($!)
        wait_port "$p"
        CLUSTER_PORTS+=("$p")
    done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER_PORTS[@]}") --cluster-yes >"$TMP/cluster-create.log"
    for _ in $(seq 200); do
        local ok=1
        for p in "${CLUSTER_PORTS[@]}"; do
            redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0
        done
        [ $ok = 1 ] && return 0
        sleep 0.1
    done
    echo "bench: the cluster never became ok" >&2
    exit 1
}

if [ $CLUSTER = 1 ]; then
    start_cluster
    NAMES="redis-hit redis-miss cluster"
    declare -A P A
    for name in $NAMES; do
        echo "== $name" >&2
        start "$name" "$(store_for "$name")"
        P[$name]=$PORT A[$name]=$ADMIN_PORT
        "$MINT" "127.0.0.1:$PORT" "$HOT" "$TMP/$name/cookies.txt" --path /mint --cookie sid --conns 8 2>/dev/null
        taskset -c "$OTHER_CPUS" wrk -t1 -c"$CONNS" -d1s -s "$ROOT/bench/cookies.lua" "http://127.0.0.1:$PORT/app" -- "$TMP/$name/cookies.txt" >/dev/null
    done
    : >"$TMP/rounds.jsonl"
    declare -A H0 M0
    for name in $NAMES; do
        ADMIN_PORT=${A[$name]}
        H0[$name]=$(metric sessiongate_store_local_hits_total)
        M0[$name]=$(metric sessiongate_store_local_misses_total)
    done
    for round in $(seq "$ROUNDS"); do
        # Rotate the order, so a change in the machine's load lands on every row.
        set -- $NAMES
        for _ in $(seq $(((round - 1) % 3))); do set -- "${@:2}" "$1"; done
        for name in "$@"; do
            PORT=${P[$name]}
            echo "== round $round: $name" >&2
            printf '{"round":%s,"name":"%s","result":%s}\n' "$round" "$name" "$(run "$name")" >>"$TMP/rounds.jsonl"
        done
    done
    : >"$TMP/hits.txt"
    for name in $NAMES; do
        ADMIN_PORT=${A[$name]}
        echo "$name $(($(metric sessiongate_store_local_hits_total) - H0[$name])) $(($(metric sessiongate_store_local_misses_total) - M0[$name]))" >>"$TMP/hits.txt"
    done
    mkdir -p "$(dirname "$OUT")"
    python3 - "$OUT" "$TMP/rounds.jsonl" "$CONNS" "$DURATION" "$REPEATS" "$HOT" "$TMP/hits.txt" <<'PY'
import json, sys, datetime, statistics
out, rounds_path, conns, duration, repeats, hot, hits_path = sys.argv[1:8]
hits = {n: (int(h), int(m)) for n, h, m in (l.split() for l in open(hits_path) if l.strip())}
rows = [json.loads(l) for l in open(rounds_path) if l.strip()]
names = ["redis-hit", "redis-miss", "cluster"]
labels = {"redis-hit": "one server, local-cache hits", "redis-miss": "one server, every load to Redis",
          "cluster": "Redis Cluster, local cache"}
rounds = sorted({r["round"] for r in rows})
pair = {k: {r["name"]: r["result"] for r in rows if r["round"] == k} for k in rounds}
def rps(r): return r["requests"] / (r["duration_us"] / 1e6)
med = statistics.median
lines = [
    "# The Redis store on a Redis Cluster (issue 16)",
    "",
    f"Written by `bash bench/redis.sh --cluster` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; wrk -t1 -c{conns}",
    f"-d{duration}, the median of {repeats} run(s) by p99 per row and round, {hot} live sessions drawn at random",
    f"per request; one redis-server and a three-primary cluster on loopback; {len(rounds)} rounds in rotated order.",
    "",
    "| round | row | req/s | p50 µs | p99 µs |",
    "|---:|---|---:|---:|---:|",
]
for k in rounds:
    for n in names:
        r = pair[k][n]
        lines.append(f"| {k} | {labels[n]} | {rps(r):,.0f} | {r['p50_us']} | {r['p99_us']} |")
lines += ["", "Loads answered by the local cache over all rounds: " + ", ".join(
    f"{labels[n]} {h / max(h + m, 1):.1%} ({h:,} of {h + m:,})" for n, (h, m) in hits.items()) + "."]
def ratio(a, b, f): return med([f(pair[k][a]) / f(pair[k][b]) for k in rounds])
p50 = lambda r: r["p50_us"]
p99 = lambda r: r["p99_us"]
lines += [
    "",
    "Ratios, the median over rounds of each round's ratio:",
    "",
    f"- cluster against one server, both with local-cache hits: req/s **{ratio('cluster', 'redis-hit', rps):.2f}x**, p50 **{ratio('cluster', 'redis-hit', p50):.2f}x**, p99 {ratio('cluster', 'redis-hit', p99):.2f}x",
    f"- cluster against one server without the cache: req/s **{ratio('cluster', 'redis-miss', rps):.2f}x**, p50 **{ratio('cluster', 'redis-miss', p50):.2f}x**, p99 {ratio('cluster', 'redis-miss', p99):.2f}x",
    "",
    "On a cluster each instance keeps one invalidation connection per primary (README, Running",
    "several instances), so its local cache answers as on one server.",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
for r in rows:
    assert r["result"]["requests"] > 0 and r["result"]["err_status"] == 0, r
PY
    exit 0
fi

declare -A RESULT HITS MISSES
for name in memory redis-hit redis-miss; do
    case $name in
        memory) store='[store]
kind = "memory"' ;;
        redis-hit) store="[store]
kind = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
prefix = \"$name:\"" ;;
        redis-miss) store="[store]
kind = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
prefix = \"$name:\"
local_capacity = 1
local_ttl = \"1ms\"" ;;
    esac
    echo "== $name" >&2
    start "$name" "$store"
    "$MINT" "127.0.0.1:$PORT" "$HOT" "$TMP/$name/cookies.txt" --path /mint --cookie sid --conns 8 2>/dev/null
    # Warm up (fills the local cache where there is one), then measure.
    wrk -t1 -c"$CONNS" -d1s -s "$ROOT/bench/cookies.lua" "http://127.0.0.1:$PORT/app" -- "$TMP/$name/cookies.txt" >/dev/null
    h0=$(metric sessiongate_store_local_hits_total)
    m0=$(metric sessiongate_store_local_misses_total)
    RESULT[$name]=$(run "$name")
    HITS[$name]=$(($(metric sessiongate_store_local_hits_total) - h0))
    MISSES[$name]=$(($(metric sessiongate_store_local_misses_total) - m0))
done

mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$CONNS" "$DURATION" "$REPEATS" "$HOT" \
    "${RESULT[memory]}" "${RESULT[redis-hit]}" "${RESULT[redis-miss]}" \
    "${HITS[redis-hit]}" "${MISSES[redis-hit]}" "${HITS[redis-miss]}" "${MISSES[redis-miss]}" <<'PY'
import json, sys, datetime
out, conns, duration, repeats, hot = sys.argv[1:6]
mem, hit, miss = (json.loads(a) for a in sys.argv[6:9])
hh, hm, mh, mm = (int(a) for a in sys.argv[9:13])
def rps(r): return r["requests"] / (r["duration_us"] / 1e6)
rows = [("memory store", mem, "–"), ("Redis store, local-cache hits", hit, f"{hh / max(hh + hm, 1):.1%} hits"),
        ("Redis store, misses (local_capacity = 1)", miss, f"{mh / max(mh + mm, 1):.1%} hits")]
lines = [
    "# Redis store against the memory store (issue 6)",
    "",
    f"Written by `bash bench/redis.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; wrk -t1 -c{conns} -d{duration},"
    f" median of {repeats} run(s) by p99, {hot} live sessions drawn at random per request, redis-server on loopback.",
    "",
    "| store | req/s | p50 µs | p99 µs | p50 added µs | p99 added µs | local cache |",
    "|---|---:|---:|---:|---:|---:|---|",
]
for label, r, cache in rows:
    lines.append(f"| {label} | {rps(r):,.0f} | {r['p50_us']} | {r['p99_us']} | {r['p50_us'] - mem['p50_us']:+d} | {r['p99_us'] - mem['p99_us']:+d} | {cache} |")
hit_ok = hit["p99_us"] - mem["p99_us"] <= 5
miss_ok = miss["p99_us"] - mem["p99_us"] <= 1000
lines += ["", "| target | measured | met |", "|---|---:|:---:|",
          f"| a hit adds ≤ 5 µs p99 | {hit['p99_us'] - mem['p99_us']:+d} µs | {'yes' if hit_ok else '**no**'} |",
          f"| a miss adds ≤ 1 ms p99 | {miss['p99_us'] - mem['p99_us']:+d} µs | {'yes' if miss_ok else '**no**'} |",
          "", "p99 at this concurrency moves by tens of µs from run to run on this shared 2-core machine,",
          "so a difference of a few µs is inside the noise; the hit ratio column says what each row measured."]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
for r in (mem, hit, miss):
    assert r["requests"] > 0 and r["err_status"] == 0, r
PY
