#!/usr/bin/env bash
# Three strand nodes on regtest converge on one chain and one mempool.
#
#   A  <-  B  <-  C        (B --connect A, C --connect B; 127.0.0.1, OS ports)
#
# 1. mines 110 blocks on A to a P2WPKH address of a fixed test key, waits
#    until A, B and C report the same best block hash;
# 2. signs (examples/regtest_tx) and sends through A three spends of mature
#    coinbases plus a child of the first spend (unconfirmed parent), waits
#    until the three sorted `getrawmempool` lists are equal and hold all 4;
# 3. mines them into one block (regtest_tx block, submitblock to A), waits for equal tips again, checks the block
#    holds the 4 transactions and every mempool is empty;
# 4. stops the three nodes with `cli stop` (each must exit 0).
#
# Prints each step; ends with "[regtest-network] OK" and exit code 0, or a
# "FAILED: ..." line, the nodes' last log lines and exit code 1.
#
#   cargo build --release --bin strand --example regtest_tx
#   scripts/regtest-network.sh
#
# Environment: STRAND_BIN, STRAND_EXAMPLES, KEEP_TMP (see scripts/lib.sh),
# STRAND_BLOCKS (blocks mined first, default 110, at least 104).

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BLOCKS=${STRAND_BLOCKS:-110}
# A fixed regtest test key (never use it for real coins).
KEY=1111111111111111111111111111111111111111111111111111111111111111
SIGNER="$STRAND_EXAMPLES/regtest_tx"

((BLOCKS >= 104)) || fail "STRAND_BLOCKS must be at least 104 (3 coinbases 100 deep)"
setup
need_exe "$SIGNER" "regtest_tx example (STRAND_EXAMPLES)" \
    "cargo build --release --example regtest_tx"

ADDR=$("$SIGNER" address "$KEY") || fail "regtest_tx address failed"
say "test key's P2WPKH address: $ADDR"

say "starting nodes A, B (connects to A), C (connects to B)"
start_node A
start_node B --connect "${NODE_P2P[A]}"
start_node C --connect "${NODE_P2P[B]}"

connections_are() { [[ "$(cli "$1" getconnectioncount)" == "$2" ]]; }
wait_for 20 "A has 1 connection" connections_are A 1
wait_for 20 "B has 2 connections" connections_are B 2
wait_for 20 "C has 1 connection" connections_are C 1
say "connected: A=1 B=2 C=1 peers"

# All three nodes report the same best block hash, equal to $1.
tips_equal() {
    local n
    for n in A B C; do
        [[ "$(cli "$n" getbestblockhash)" == "$1" ]] || return 1
    done
}

say "mining $BLOCKS blocks on A to $ADDR"
cli_ok A generatetoaddress "$BLOCKS" "$ADDR" >/dev/null
TIP=$(cli_ok A getbestblockhash)
say "A's tip: height $(cli_ok A getblockcount) $TIP"
wait_for 60 "B and C reach A's tip $TIP" tips_equal "$TIP"
for n in A B C; do
    say "node $n: height $(cli_ok "$n" getblockcount), tip $(cli_ok "$n" getbestblockhash)"
done

# funding HEIGHT: "TXID:VOUT SATS" of the coinbase output of block HEIGHT
# that pays $ADDR.
funding() {
    local hash
    hash=$(cli_ok A getblockhash "$1")
    cli_ok A getblock "$hash" 2 | json "
next(f\"{j['tx'][0]['txid']}:{o['n']} {int(o['value'] * 100000000)}\"
     for o in j['tx'][0]['vout'] if o['scriptPubKey'].get('address') == '$ADDR')"
}

# send_tx OUTPOINT SATS: signs a spend of OUTPOINT (worth SATS) back to
# $ADDR with a 1,000 sat fee and sends it through A; sets $txid and appends
# to TXIDS and RAW_TXS (send order, parents first).
TXIDS=()
RAW_TXS=()
send_tx() {
    local raw
    raw=$("$SIGNER" sign "$KEY" "$1" "$2" "$ADDR" 1000) || fail "regtest_tx sign $1 failed"
    txid=$(cli_ok A sendrawtransaction "$raw")
    TXIDS+=("$txid")
    RAW_TXS+=("$raw")
}

for height in 1 2 3; do
    read -r outpoint sats < <(funding "$height")
    [[ -n "${sats:-}" ]] || fail "no coinbase output paying $ADDR in block $height"
    send_tx "$outpoint" "$sats"
    say "sent through A: $txid (spends coinbase of block $height, $outpoint, $sats sat)"
    if ((height == 1)); then
        parent=$txid
        send_tx "$parent:0" $((sats - 1000))
        say "sent through A: $txid (spends unconfirmed $parent:0)"
    fi
done
EXPECTED=$(printf '%s\n' "${TXIDS[@]}" | sort | tr '\n' ' ')

mempool_of() { cli "$1" getrawmempool | json "' '.join(sorted(j))"; }
mempools_are() {
    local n
    for n in A B C; do
        [[ "$(mempool_of "$n") " == "$1" ]] || return 1
    done
}
wait_for 30 "the ${#TXIDS[@]} transactions in all three mempools" mempools_are "$EXPECTED"
for n in A B C; do
    say "node $n mempool (sorted): $(mempool_of "$n")"
done
say "mempools equal on A, B and C (${#TXIDS[@]} transactions)"

# strand's generatetoaddress mines coinbase-only blocks (Core's takes the
# mempool) and its generateblock is not wired yet, so the block is built
# and mined by regtest_tx (transactions in send order, the parent before
# its child) and handed to A with submitblock.
say "mining A's mempool into one block (regtest_tx block + submitblock)"
PREV=$(cli_ok A getbestblockhash)
read -r HEIGHT MTP < <(cli_ok A getblockheader "$PREV" | json "f\"{j['height'] + 1} {j['mediantime']}\"")
BLOCK=$("$SIGNER" block "$PREV" "$HEIGHT" "$MTP" "$ADDR" "${RAW_TXS[@]}") ||
    fail "regtest_tx block failed"
RESULT=$(cli_ok A submitblock "$BLOCK")
[[ -z "$RESULT" || "$RESULT" == null ]] || fail "submitblock: $RESULT"
TIP=$(cli_ok A getbestblockhash)
[[ "$(cli_ok A getblockcount)" == "$HEIGHT" ]] || fail "A's height is not $HEIGHT after submitblock"
wait_for 30 "B and C reach A's tip $TIP" tips_equal "$TIP"
IN_BLOCK=$(cli_ok A getblock "$TIP" | json "' '.join(sorted(j['tx'][1:]))")
[[ "$IN_BLOCK " == "$EXPECTED" ]] ||
    fail "block $TIP holds [$IN_BLOCK], expected [$EXPECTED]"
say "block $TIP (height $(cli_ok A getblockcount)) holds the ${#TXIDS[@]} transactions"
wait_for 20 "empty mempools on A, B and C" mempools_are " "
for n in A B C; do
    say "node $n: tip $(cli_ok "$n" getbestblockhash), mempool size $(cli_ok "$n" getmempoolinfo | json "j['size']")"
done
say "tips equal, mempools empty everywhere"

for n in C B A; do
    stop_node "$n"
done
succeed
