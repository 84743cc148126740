#!/usr/bin/env bash
# CI's short fuzz run (test.sh): every target for about 20 s from the committed
# seeds, in the dev profile (a cold build is ~3 minutes instead of ~6 in
# release; ~400k executions per target instead of ~1M). Fails on any crash.
# The long runs with their counts are in fuzz/README.md.
#
#     bash fuzz/smoke.sh [seconds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECS=${1:-20}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz smoke: no nightly toolchain (rustup toolchain install nightly): skipped" >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
cargo +nightly fuzz build --dev -s none
CORPUS=$(mktemp -d)
trap 'rm -rf "$CORPUS"' EXIT
for t in $(cargo +nightly fuzz list); do
    mkdir -p "$CORPUS/$t"
    # New inputs go to the first directory (a scratch one); the seeds are read only.
    out=$(cargo +nightly fuzz run --dev -s none "$t" "$CORPUS/$t" "seeds/$t" -- \
        -max_total_time="$SECS" 2>&1) || {
        printf '%s\n' "$out" | tail -40 >&2
        echo "fuzz smoke: $t crashed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    }
    echo "fuzz smoke: $t: $(printf '%s\n' "$out" | grep -o 'Done [0-9]* runs in [0-9]* second(s)' | tail -1), no crash"
done
