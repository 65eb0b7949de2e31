# shellcheck shell=bash
# Shared helpers for scripts/regtest-*.sh (sourced, not run).
#
# Nodes run on 127.0.0.1 with OS-chosen P2P and RPC ports, each in its own
# data directory under one temporary directory ($WORK). Every wait is
# bounded; on exit (normal, failure, Ctrl-C) every node started here is
# stopped (SIGTERM, then SIGKILL after 5 s) and $WORK is removed, unless
# KEEP_TMP=1. On failure the last lines of each node's log are printed.
#
# Environment:
#   STRAND_BIN       the strand binary (default target/release/strand,
#                    under $CARGO_TARGET_DIR if set, else the repository's)
#   STRAND_EXAMPLES  built examples (default target/release/examples, same)
#   KEEP_TMP=1       keep the temporary directory (its path is printed)
#   STRAND_LOG       the nodes' RUST_LOG (default info; an ambient RUST_LOG
#                    is not used: the scripts read info lines of the logs)

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STRAND_BIN=${STRAND_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/strand}
STRAND_EXAMPLES=${STRAND_EXAMPLES:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples}
STRAND_LOG=${STRAND_LOG:-info}
SCRIPT_NAME=$(basename "$0" .sh)

declare -A NODE_PID=() NODE_P2P=() NODE_RPC=()
NODE_NAMES=()
WORK=""
FAILED=1

say() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*"; }

fail() {
    printf '[%s] FAILED: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# A file that must exist and be executable.
need_exe() {
    [[ -x "$1" ]] || fail "$2 not found or not executable: $1 (build it first: $3)"
}

# True while the process is running (a zombie counts as gone).
alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/stat ]]; then
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
        [[ "$state" != Z ]]
    fi
}

cleanup() {
    local status=$? name pid i
    trap - EXIT INT TERM
    if ((FAILED)) && [[ -n "$WORK" ]]; then
        for name in "${NODE_NAMES[@]}"; do
            if [[ -f "$WORK/$name.log" ]]; then
                echo "--- last lines of node $name's log ($WORK/$name.log) ---" >&2
                tail -n 15 "$WORK/$name.log" >&2 || true
            fi
        done
    fi
    for name in "${NODE_NAMES[@]}"; do
        pid=${NODE_PID[$name]}
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for name in "${NODE_NAMES[@]}"; do
        pid=${NODE_PID[$name]}
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            say "node $name (pid $pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "${KEEP_TMP:-0}" == 1 ]]; then
            say "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}

# Checks tools and binaries, creates $WORK, installs the traps.
setup() {
    need_exe "$STRAND_BIN" "strand binary (STRAND_BIN)" "cargo build --release"
    command -v python3 >/dev/null || fail "python3 is required (JSON parsing)"
    command -v timeout >/dev/null || fail "timeout (coreutils) is required"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/strand-$SCRIPT_NAME.XXXXXX")
    trap cleanup EXIT
    trap 'say "interrupted"; exit 130' INT
    trap 'say "terminated"; exit 143' TERM
    say "binary $STRAND_BIN, work directory $WORK"
}

# Waits (at most $2 seconds) for a line of node $1's log containing $3 and
# prints what follows $3 on the first such line.
log_value() {
    local name=$1 secs=$2 needle=$3 log="$WORK/$1.log" i line
    for ((i = 0; i < secs * 10; i++)); do
        line=$(grep -m1 -F -- "$needle" "$log" 2>/dev/null || true)
        if [[ -n "$line" ]]; then
            printf '%s\n' "${line##*"$needle"}" | tr -d '[:space:]'
            return 0
        fi
        alive "${NODE_PID[$name]}" || fail "node $name exited while starting"
        sleep 0.1
    done
    fail "node $name: no '$needle' in its log within ${secs}s"
}

# start_node NAME [STRAND ARGS...]: starts a regtest node in $WORK/NAME
# (log $WORK/NAME.log) and waits for its P2P and RPC addresses.
start_node() {
    local name=$1
    shift
    mkdir -p "$WORK/$name"
    RUST_LOG=$STRAND_LOG "$STRAND_BIN" --regtest --datadir "$WORK/$name" \
        --listen 127.0.0.1:0 --rpcport 0 "$@" </dev/null >/dev/null 2>"$WORK/$name.log" &
    NODE_PID[$name]=$!
    NODE_NAMES+=("$name")
    NODE_P2P[$name]=$(log_value "$name" 20 "listening for peers on ")
    local rpc
    rpc=$(log_value "$name" 20 "JSON-RPC listening on ")
    NODE_RPC[$name]=${rpc##*:}
    say "node $name: pid ${NODE_PID[$name]}, P2P ${NODE_P2P[$name]}, RPC port ${NODE_RPC[$name]}${*:+, args: $*}"
}

# cli NAME METHOD ARGS...: one RPC call to node NAME (30 s at most).
cli() {
    local name=$1
    shift
    timeout 30 "$STRAND_BIN" cli --regtest --datadir "$WORK/$name" \
        --rpcport "${NODE_RPC[$name]}" "$@"
}

# cli_ok NAME METHOD ARGS...: like cli, but a failure ends the script.
cli_ok() {
    local out
    out=$(cli "$@" 2>&1) || fail "node $1: '${*:2}' failed: $out"
    printf '%s\n' "$out"
}

# wait_for SECS DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it
# succeeds; fails the script after SECS seconds.
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    fail "timed out after ${secs}s waiting for: $what"
}

# Evaluates a Python expression over the JSON on stdin (bound to `j`) and
# prints the result (None, booleans, lists and objects as JSON).
# Input that is not JSON, or an expression that fails, is reported in one
# line (exit 1), not with a traceback.
json() {
    python3 -c 'import json, sys, decimal
text = sys.stdin.read()
try:
    j = json.loads(text, parse_float=decimal.Decimal)
    v = eval(sys.argv[1])
except Exception as e:
    sys.exit("json: %s: %r on input %r" % (sys.argv[1].strip(), e, text[:200]))
print(json.dumps(v, default=str) if v is None or isinstance(v, (bool, dict, list)) else v)' "$1"
}

# stop_node NAME: `cli stop`, then waits (20 s) for exit code 0.
stop_node() {
    local name=$1 pid=${NODE_PID[$1]} i status=0
    cli_ok "$name" stop >/dev/null
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && fail "node $name still running 20 s after 'stop'"
    wait "$pid" || status=$?
    ((status == 0)) || fail "node $name exited with status $status after 'stop'"
    say "node $name stopped (exit 0)"
}

# Marks success: cleanup no longer prints node logs.
succeed() {
    FAILED=0
    say "OK"
}
