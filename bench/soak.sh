#!/usr/bin/env bash
# The soak: sessiongate under a steady mixed load for a long while, to show that
# nothing leaks or drifts. See bench/README.md ("The soak").
#
#     bash bench/soak.sh         10 minutes at half the measured peak, 100k live
#                                sessions, then nginx as a plain proxy on the same
#                                schedule (the machine's baseline):
#                                bench/results/soak.md + soak.svg
#     bash bench/soak.sh --ci    30 s, 10k sessions, the debug build; fails on any
#                                error (what CI runs; writes nothing to bench/results)
#
# The load (bench/tools bench_soak) is a fixed rate of protected, public and
# anonymous requests, backend logins and logouts (live sessions stay level) and
# one built-in password login a second. Every few seconds the script samples
# sessiongate's RSS, open file descriptors and live sessions. Tunables
# (environment): SOAK_SECONDS, SOAK_SESSIONS, SOAK_RATE (default: half of the
# peak of the same mix and client over 10 s, 3 s in CI), SOAK_CONNS (32),
# SOAK_NGINX=1 (the nginx baseline in CI mode too), SOAK_PASSWORD=0 (no
# built-in password login, to see what argon2id costs the tail).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MODE=full
for arg in "$@"; do
    case $arg in
        --ci) MODE=ci ;;
        -h | --help)
            sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done
if [ "$MODE" = ci ]; then
    SECONDS_=${SOAK_SECONDS:-30}
    SESSIONS=${SOAK_SESSIONS:-10000}
    INTERVAL=5
    SAMPLE=1
    PEAK_SECONDS=3
    PROFILE=dev
else
    SECONDS_=${SOAK_SECONDS:-600}
    SESSIONS=${SOAK_SESSIONS:-100000}
    INTERVAL=60
    SAMPLE=5
    PEAK_SECONDS=10
    PROFILE=release
fi
CONNS=${SOAK_CONNS:-32}
PIN_SERVERS=0,1
SG_THREADS=2

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
for c in nginx:nginx python3:python3 taskset:util-linux curl:curl; do
    command -v "${c%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${c%%:*}" ] ||
        die "missing ${c%%:*} (Debian: sudo apt-get install -y ${c#*:})"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building ($PROFILE profile)"
cargo build --profile "$PROFILE" --quiet --bin sessiongate
cargo build --profile "$PROFILE" --quiet -p sessiongate-bench
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
SG=$BIN_DIR/sessiongate
MINT=$BIN_DIR/bench_mint
LOAD=$BIN_DIR/bench_soak

export BENCH_SG_SECRET BENCH_SG_ADMIN_TOKEN
BENCH_SG_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
BENCH_SG_ADMIN_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '\n')

start_backend
PASSWORD=soak-password-$RANDOM
mkdir -p "$TMP/sg"
printf '[[user]]\nname = "soak"\npassword_hash = "%s"\n' \
    "$(printf '%s\n' "$PASSWORD" | "$SG" hash-password)" >"$TMP/sg/users.toml"
PASSWORD_ARGS=(--password "soak:$PASSWORD")
[ "${SOAK_PASSWORD:-1}" = 0 ] && PASSWORD_ARGS=()
SG_EXTRA_CONFIG=$'[auth]\nusers_file = "users.toml"'
start_sg sg false
BASE=127.0.0.1:$SG_PORT

say "minting $SESSIONS sessions"
"$MINT" "$BASE" "$SESSIONS" "$TMP/cookies.txt" --path /mint --cookie sid --conns 32 2>/dev/null ||
    die "minting failed"
expect "http://$BASE/app" 200 "$(head -1 "$TMP/cookies.txt")" "ok"

if [ -z "${SOAK_RATE:-}" ]; then
    # The peak of this very mix and client: bench_soak asked for more than the
    # machine can do reports what it achieved.
    say "peak: ${PEAK_SECONDS} s of the soak's mix, as fast as it goes"
    "$LOAD" "$BASE" "$TMP/cookies.txt" --seconds "$PEAK_SECONDS" --rate 1000000 --conns "$CONNS" \
        --interval "$PEAK_SECONDS" "${PASSWORD_ARGS[@]}" >"$TMP/peak.jsonl" ||
        die "the peak run saw errors: $(cat "$TMP/peak.jsonl")"
    PEAK=$(python3 -c 'import json,sys; print(int(json.loads(open(sys.argv[1]).readline())["rate"]))' "$TMP/peak.jsonl")
    SOAK_RATE=$((PEAK / 2))
else
    PEAK=unmeasured
fi

# sample: every SAMPLE s, elapsed seconds, RSS kB, open fds, live sessions.
# Only shell builtins, awk and one curl: the sampler shares the two cores with
# the proxy, and a python start (~40 ms of CPU) every few seconds would compete
# with the tail it is there to watch.
sample() {
    local t0=$EPOCHREALTIME now live fds
    while kill -0 "$SG_PID" 2>/dev/null; do
        now=$EPOCHREALTIME
        live=$(curl -s -H "Authorization: Bearer $BENCH_SG_ADMIN_TOKEN" \
            "http://127.0.0.1:$SG_ADMIN_PORT/stats" | grep -o '"live":[0-9]*' | head -1)
        live=${live#*:}
        fds=(/proc/"$SG_PID"/fd/*)
        printf '{"t_s":%s,"rss_kb":%s,"fds":%s,"live":%s}\n' \
            "$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')" "$(rss_kb "$SG_PID")" \
            "${#fds[@]}" "${live:-null}"
        sleep "$SAMPLE"
    done
}
sample >"$TMP/samples.jsonl" 2>/dev/null &
SAMPLER=$!
PIDS+=("$SAMPLER")

say "soak: ${SECONDS_} s at $SOAK_RATE req/s (peak $PEAK), $SESSIONS live sessions, $CONNS connections"
STATUS=0
"$LOAD" "$BASE" "$TMP/cookies.txt" --seconds "$SECONDS_" --rate "$SOAK_RATE" --conns "$CONNS" \
    --interval "$INTERVAL" "${PASSWORD_ARGS[@]}" >"$TMP/load.jsonl" || STATUS=$?
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
kill -0 "$SG_PID" 2>/dev/null || die "sessiongate died during the soak: $(tail -5 "$TMP/sg.log")"
[ "$STATUS" = 0 ] || die "the load saw errors: $(grep -o '"error_samples":[^]]*' "$TMP/load.jsonl" | head -3)"

# The baseline for the machine and the load generator: nginx as a plain proxy
# in front of the same backend, the same schedule at the same rate, right
# after (sessiongate stopped). nginx answers what sessiongate answers itself
# (401 without a cookie, the logout's 303, a login's cookie), so every request
# of the mix gets the status the schedule expects.
NGX_LOAD=
if [ "$MODE" = full ] || [ -n "${SOAK_NGINX:-}" ]; then
    stop "$SG_PID"
    # shellcheck disable=SC2016 # nginx variables, not the shell's
    NGX_EXTRA_LOCATIONS='
        location = /app { if ($http_cookie = "") { return 401; } proxy_pass http://backend; }
        location = /mint { add_header Set-Cookie "sid=m$request_id"; proxy_pass http://backend; }
        location = /.sessiongate/logout { return 303; }
        location = /.sessiongate/login { add_header Set-Cookie "sid=p$request_id"; return 303; }'
    start_nginx_proxy
    say "baseline: nginx as a plain proxy, ${SECONDS_} s at $SOAK_RATE req/s"
    "$LOAD" "127.0.0.1:$NGX_PORT" "$TMP/cookies.txt" --seconds "$SECONDS_" --rate "$SOAK_RATE" \
        --conns "$CONNS" --interval "$INTERVAL" "${PASSWORD_ARGS[@]}" >"$TMP/load-nginx.jsonl" ||
        die "the nginx baseline saw errors: $(head -c 600 "$TMP/load-nginx.jsonl")"
    NGX_LOAD=$TMP/load-nginx.jsonl
fi

OUT=$TMP/report
[ "$MODE" = full ] && OUT=$ROOT/bench/results
mkdir -p "$OUT"
python3 bench/soak_report.py "$TMP/load.jsonl" "$TMP/samples.jsonl" "$OUT" \
    "$MODE" "$SOAK_RATE" "$PEAK" "$SESSIONS" "$SECONDS_" "$(git rev-parse --short HEAD)" $NGX_LOAD

