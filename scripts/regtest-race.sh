#!/usr/bin/env bash
# The connection storm against one regtest node (btcd's sync-manager race),
# then proof that the node still works and syncs.
#
# 1. starts node S (--maxpeers above the storm's wave size) and runs
#    examples/storm against it: WAVES waves of PEERS concurrent fake peers,
#    each closing before, during or right after the version/verack
#    handshake (any I/O error fails the storm);
# 2. waits until S's `getsyncstate` shows no connection, no peer, no peer
#    known to the sync manager and no sync peer, and checks both anomaly
#    counters (done_peer_unknown, new_peer_after_done) are zero;
# 3. mines BLOCKS blocks into a second data directory (`strand generate`),
#    starts node M there with --connect S, waits until S reaches M's tip;
#    mines 5 more on M (RPC) and waits until S follows; anomalies still 0;
# 4. stops both with `cli stop` (each must exit 0).
#
# Prints each step; ends with "[regtest-race] OK" and exit code 0, or a
# "FAILED: ..." line, the nodes' last log lines and exit code 1.
#
#   cargo build --release --bin strand --example storm
#   scripts/regtest-race.sh
#
# Environment: STRAND_BIN, STRAND_EXAMPLES, KEEP_TMP (see scripts/lib.sh),
# STRAND_STORM_PEERS (per wave, default 200), STRAND_STORM_WAVES (default
# 10), STRAND_BLOCKS (blocks M mines, default 150).

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PEERS=${STRAND_STORM_PEERS:-200}
WAVES=${STRAND_STORM_WAVES:-10}
BLOCKS=${STRAND_BLOCKS:-150}
STORM="$STRAND_EXAMPLES/storm"
# Any regtest address will do: nobody spends these coins.
ADDR=bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080

setup
need_exe "$STORM" "storm example (STRAND_EXAMPLES)" "cargo build --release --example storm"

start_node S --maxpeers $((PEERS + 100)) --handshaketimeout 10

say "storm: $WAVES waves of $PEERS fake peers against S at ${NODE_P2P[S]}"
timeout 300 "$STORM" "${NODE_P2P[S]}" --peers "$PEERS" --waves "$WAVES" |
    sed "s/^/[$SCRIPT_NAME]   /" || fail "the storm reported errors (see above)"

sync_state() { cli_ok S getsyncstate; }
quiet() {
    sync_state | json "(j['connections'] == 0 and not j['peers'] and not j['sync_known']
        and j['sync_peer'] is None and not j['candidates'])" | grep -qx true
}
wait_for 30 "S to forget every storm peer (getsyncstate)" quiet
STATE=$(sync_state)
say "S after the storm: $(json "f\"connections={j['connections']} peers={len(j['peers'])} sync_known={len(j['sync_known'])} sync_peer={json.dumps(j['sync_peer'])} candidates={j['candidates']}\"" <<<"$STATE")"
say "S counters: $(json "' '.join(f'{k}={v}' for k, v in j['counters'].items())" <<<"$STATE")"

# check_anomalies STATE_JSON: both anomaly counters must be zero.
check_anomalies() {
    local a
    a=$(json "f\"done_peer_unknown={j['anomalies']['done_peer_unknown']} new_peer_after_done={j['anomalies']['new_peer_after_done']}\"" <<<"$1")
    [[ "$a" == "done_peer_unknown=0 new_peer_after_done=0" ]] || fail "anomalies on S: $a"
    say "S anomalies: $a"
}
check_anomalies "$STATE"
say "S still answers: height $(cli_ok S getblockcount), tip $(cli_ok S getbestblockhash)"

say "mining $BLOCKS blocks offline into M's data directory (strand generate)"
mkdir -p "$WORK/M"
timeout 120 "$STRAND_BIN" generate --regtest --datadir "$WORK/M" "$BLOCKS" --to "$ADDR" >/dev/null ||
    fail "strand generate failed"
start_node M --connect "${NODE_P2P[S]}"
M_TIP=$(cli_ok M getbestblockhash)
say "M: height $(cli_ok M getblockcount), tip $M_TIP"

tip_is() { [[ "$(cli "$1" getbestblockhash)" == "$2" ]]; }
wait_for 60 "S to sync M's tip $M_TIP" tip_is S "$M_TIP"
say "S synced from M: height $(cli_ok S getblockcount), tip $(cli_ok S getbestblockhash)"

say "mining 5 more blocks on M (RPC)"
cli_ok M generatetoaddress 5 "$ADDR" >/dev/null
M_TIP=$(cli_ok M getbestblockhash)
wait_for 30 "S to follow M to $M_TIP" tip_is S "$M_TIP"
say "S follows M: height $(cli_ok S getblockcount), tip $(cli_ok S getbestblockhash)"
STATE=$(sync_state)
say "S sync peer: $(json "j['sync_peer']" <<<"$STATE"), initial block download: $(json "j['initial_block_download']" <<<"$STATE")"
check_anomalies "$STATE"

stop_node M
stop_node S
succeed
