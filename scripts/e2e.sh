#!/usr/bin/env bash
# End-to-end checks of `caudal run` serving the demo project, as a person and a program use it:
#   1. dashboard:   tests/e2e/dashboard.py drives the dashboard in headless Chromium (selenium)
#   2. schemathesis: requests generated from /api/v1/openapi.json; none may get a 5xx
#
# Usage: bash scripts/e2e.sh [path/to/caudal]
#   default binary: ${CARGO_TARGET_DIR:-~/.cache/caudal/target}/debug/caudal
#
# Installs what is missing: Debian's chromium and chromium-driver (apt-get; needs root or sudo)
# and a venv at ${CAUDAL_E2E_HOME:-~/.cache/caudal/e2e-venv} with tests/e2e/requirements.txt.
# Environment:
#   CAUDAL_E2E_KEEP=1          keep the temp dir (it is always kept when a check fails)
#   CAUDAL_E2E_EXAMPLES=N      schemathesis examples per operation (default 50)
#   CAUDAL_E2E_SEED=N          schemathesis seed (default fixed, so runs repeat)
#   CAUDAL_E2E_SCHEMATHESIS_ARGS="..."   more options for `schemathesis run` (split on spaces)
#   CAUDAL_E2E_ONLY=dashboard|schemathesis   run one check only
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
BIN=${1:-$TARGET/debug/caudal}
VENV=${CAUDAL_E2E_HOME:-$HOME/.cache/caudal/e2e-venv}
REQ=$ROOT/tests/e2e/requirements.txt
EXAMPLES=${CAUDAL_E2E_EXAMPLES:-50}
ONLY=${CAUDAL_E2E_ONLY:-}
START=$SECONDS

say() { printf 'e2e: %s\n' "$*" >&2; }
die() {
    printf 'e2e: FAILED: %s\n' "$*" >&2
    exit 1
}

case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
[ -x "$BIN" ] || die "no caudal binary at $BIN (build it with cargo build, or pass its path)"

# --- What the checks need, installed when missing -------------------------------------------

install_chromium() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "installing ${missing[*]} needs root (apt-get); run as root or install them"
        sudo=(sudo)
    fi
    local log
    log=$(mktemp -t caudal-e2e-apt.XXXXXX)
    say "installing ${missing[*]} (apt-get)"
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300)
    if ! "${apt[@]}" install "${missing[@]}" >"$log" 2>&1; then
        say "apt-get install failed; running apt-get update and trying again"
        if ! { "${apt[@]}" update && "${apt[@]}" install "${missing[@]}"; } >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            die "could not install ${missing[*]} with apt-get (log: $log)"
        fi
    fi
    rm -f "$log"
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
        die "apt-get installed ${missing[*]} but /usr/bin/chromium or /usr/bin/chromedriver is missing"
}

install_venv() {
    local stamp=$VENV/.caudal-requirements.txt
    if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$stamp" &&
        "$VENV/bin/python" -c 'import selenium, schemathesis' 2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is needed for the venv at $VENV"
    say "installing $(grep -v '^#' "$REQ" | xargs) into $VENV"
    local log
    log=$(mktemp -t caudal-e2e-pip.XXXXXX)
    if ! {
        { [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"; } &&
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "could not create the venv $VENV (log: $log; delete the venv to start afresh)"
    fi
    rm -f "$log"
    cp "$REQ" "$stamp"
}

[ "$ONLY" = schemathesis ] || install_chromium
install_venv

# --- The demo, tokens and the daemon ----------------------------------------------------------

WORK=$(mktemp -d -t caudal-e2e.XXXXXX)
DAEMON_PID=
STATUS=1

cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if [ "$STATUS" = 0 ] && [ -z "${CAUDAL_E2E_KEEP:-}" ]; then
        rm -rf "$WORK"
    else
        say "kept $WORK (daemon log: $WORK/daemon.err)"
    fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

cd "$WORK" || die "cannot enter $WORK"
"$BIN" demo --once >demo.log 2>&1 || {
    cat demo.log >&2
    die "caudal demo --once failed"
}
[ -f caudal-demo/caudal.toml ] || die "caudal demo --once made no caudal-demo/caudal.toml"

token() {
    "$BIN" -C caudal-demo token create --name "$1" --role "$2" 2>>tokens.log
}
ANALYST=$(token e2e-dashboard analyst) && [ -n "$ANALYST" ] || die "caudal token create (analyst) failed: $(cat tokens.log)"
ADMIN=$(token e2e-schemathesis admin) && [ -n "$ADMIN" ] || die "caudal token create (admin) failed: $(cat tokens.log)"

CAUDAL_LISTEN=127.0.0.1:0 "$BIN" -C caudal-demo run </dev/null >daemon.out 2>daemon.err &
DAEMON_PID=$!
ADDR=
deadline=$((SECONDS + 30))
while [ -z "$ADDR" ]; do
    # The line `serving http://127.0.0.1:PORT/ (API under ...)` on stderr says where it listens.
    ADDR=$(sed -n 's#^serving http://\([^/ ]*\)/.*#\1#p' daemon.err | head -n 1)
    [ -n "$ADDR" ] && break
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        wait "$DAEMON_PID"
        rc=$?
        DAEMON_PID=
        cat daemon.err >&2
        die "caudal run exited with code $rc before serving"
    fi
    [ $SECONDS -lt $deadline ] || {
        cat daemon.err >&2
        die "caudal run printed no 'serving http://...' line within 30 s"
    }
    sleep 0.1
done
BASE=http://$ADDR
say "caudal run serves $BASE/ (pid $DAEMON_PID, demo in $WORK/caudal-demo)"

# --- The checks -------------------------------------------------------------------------------

PASSED=()
FAILED=()
check() {
    local name=$1
    shift
    local t0=$SECONDS
    say "--- $name"
    if "$@"; then
        PASSED+=("$name")
        say "--- $name: ok ($((SECONDS - t0)) s)"
    else
        FAILED+=("$name")
        say "--- $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

dashboard() {
    "$VENV/bin/python" "$ROOT/tests/e2e/dashboard.py" \
        --base-url "$BASE/" --token "$ANALYST" --artifacts "$WORK/dashboard"
}

schemathesis_run() {
    # Only 5xx fail (not_a_server_error); the rest of the spec conformance is not judged here.
    # The admin token reaches every operation; the upload endpoint stays in (413 is fine).
    # Two passes: schemathesis learns token names from GET /api/v1/tokens and would revoke its
    # own token early on (every later request a 401), so DELETE /api/v1/tokens/{name} runs last.
    local common=(
        --header "Authorization: Bearer $ADMIN"
        --checks not_a_server_error
        --seed "${CAUDAL_E2E_SEED:-20261102}"
        --request-timeout 30
        --no-color
    )
    # shellcheck disable=SC2086 # CAUDAL_E2E_SCHEMATHESIS_ARGS is a list of options
    "$VENV/bin/schemathesis" run "$BASE/api/v1/openapi.json" "${common[@]}" \
        --exclude-path-regex '^/api/v1/tokens/' \
        --max-examples "$EXAMPLES" \
        --report junit --report-junit-path "$WORK/schemathesis/junit.xml" \
        ${CAUDAL_E2E_SCHEMATHESIS_ARGS:-} || return 1
    # shellcheck disable=SC2086
    "$VENV/bin/schemathesis" run "$BASE/api/v1/openapi.json" "${common[@]}" \
        --include-path-regex '^/api/v1/tokens/' \
        --max-examples 10 \
        --report junit --report-junit-path "$WORK/schemathesis/junit-tokens.xml" \
        ${CAUDAL_E2E_SCHEMATHESIS_ARGS:-}
}

[ "$ONLY" = schemathesis ] || check dashboard dashboard
[ "$ONLY" = dashboard ] || check schemathesis schemathesis_run

# --- Stop: SIGINT, the daemon must exit 0 ------------------------------------------------------

if kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -INT "$DAEMON_PID"
    deadline=$((SECONDS + 45)) # [project] shutdown_grace defaults to 30 s
    while kill -0 "$DAEMON_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        FAILED+=("shutdown")
        say "caudal run did not exit within 45 s of SIGINT"
    else
        wait "$DAEMON_PID"
        rc=$?
        DAEMON_PID=
        if [ $rc = 0 ]; then
            PASSED+=("shutdown")
        else
            FAILED+=("shutdown")
            say "caudal run exited with code $rc after SIGINT (expected 0); tail of its log:"
            tail -n 20 daemon.err >&2
        fi
    fi
else
    FAILED+=("shutdown")
    say "caudal run was no longer running at the end (it should keep serving); tail of its log:"
    tail -n 20 daemon.err >&2
fi
# Any panic in the daemon's log is a failure too, whatever the HTTP answers were.
if grep -q 'panicked at' daemon.err; then
    FAILED+=("no-panic")
    say "caudal run panicked:"
    grep -A3 'panicked at' daemon.err | head -n 20 >&2
fi

say "took $((SECONDS - START)) s"
[ ${#FAILED[@]} -eq 0 ] || say "failed: ${FAILED[*]}"
printf 'e2e: %d passed, %d failed\n' "${#PASSED[@]}" "${#FAILED[@]}"
[ ${#FAILED[@]} -eq 0 ] && STATUS=0
exit $STATUS
