//! The chain data behind the transaction and chain RPCs of
//! [`super::node::NodeBackend`]: undo data per transaction (fees,
//! `prevout`), UTXO-set statistics and scans, merkle proofs, and the
//! chain's transaction count. Each function takes the [`ChainState`] and
//! runs on the sync-manager thread, inside a `NodeHandle::with_chain`
//! closure; none of them can panic on store contents: a corrupt or missing
//! record becomes an [`RpcFailure`] or "not available".

use std::collections::HashSet;

use bitcoin::{Block, BlockHash, MerkleBlock, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use parking_lot::Mutex;

use super::backend::*;
use super::muhash::MuHash3072;
use super::protocol::RpcFailure;
use crate::chain::state::ChainState;

type RpcResult<T> = Result<T, RpcFailure>;

/// Per transaction of a block: the outputs its inputs spent, and where
/// each came from (height, coinbase).
type BlockSpent = (Vec<Vec<TxOut>>, Vec<Vec<(u32, bool)>>);

/// Core's `MEMPOOL_HEIGHT` (txmempool.h): the height of a coin created by
/// an unconfirmed transaction.
pub(super) const MEMPOOL_HEIGHT: u32 = 0x7fff_ffff;

/// Core's `MAX_OUTPUTS_PER_BLOCK` (coins.cpp): `MAX_BLOCK_WEIGHT /
/// (WITNESS_SCALE_FACTOR * size of an empty CTxOut)`, the vouts
/// `AccessByTxid` tries.
const MAX_OUTPUTS_PER_BLOCK: u32 = 4_000_000 / (4 * 9);

fn store_failure(e: impl std::fmt::Display) -> RpcFailure {
    RpcFailure::new(super::protocol::codes::RPC_DATABASE_ERROR, e.to_string())
}

/// Block `hash` as stored, if its data is here.
pub(super) fn read_block(c: &mut ChainState, hash: &BlockHash) -> Option<Block> {
    let raw = c.block_bytes(hash).ok().flatten()?;
    bitcoin::consensus::deserialize::<Block>(&raw).ok()
}

/// Per-transaction spent outputs and their origins from `hash`'s undo data
/// (empty lists for the coinbase), or `None` if the block was never
/// connected or the undo data does not match the block. Call after
/// [`read_block`] (which commits buffered block writes).
pub(super) fn block_spent(c: &ChainState, hash: &BlockHash, block: &Block) -> Option<BlockSpent> {
    let undo = c.store().get_undo(hash).ok().flatten()?;
    let mut coins = undo.spent.into_iter();
    let mut outs = Vec::with_capacity(block.txdata.len());
    let mut origins = Vec::with_capacity(block.txdata.len());
    for tx in &block.txdata {
        let n = if tx.is_coinbase() { 0 } else { tx.input.len() };
        let mut o = Vec::with_capacity(n);
        let mut g = Vec::with_capacity(n);
        for _ in 0..n {
            let coin = coins.next()?;
            g.push((coin.height, coin.is_coinbase));
            o.push(TxOut {
                value: coin.amount,
                script_pubkey: coin.script_pubkey,
            });
        }
        outs.push(o);
        origins.push(g);
    }
    if coins.next().is_some() {
        return None;
    }
    Some((outs, origins))
}

/// The outputs `tx` spends, from block `hash`'s undo data.
pub(super) fn spent_in_block(
    c: &mut ChainState,
    tx: &Transaction,
    hash: &BlockHash,
) -> Option<Vec<SpentOutput>> {
    let block = read_block(c, hash)?;
    let txid = tx.compute_txid();
    let i = block.txdata.iter().position(|t| t.compute_txid() == txid)?;
    let (outs, origins) = block_spent(c, hash, &block)?;
    let outs = outs.into_iter().nth(i)?;
    let origins = origins.into_iter().nth(i)?;
    Some(
        outs.into_iter()
            .zip(origins)
            .map(|(txout, (height, coinbase))| SpentOutput {
                txout,
                height,
                coinbase,
            })
            .collect(),
    )
}

/// The outputs `tx` spends: `known[i]` when the caller found input `i`'s
/// parent in the mempool, else the coin in the UTXO set. `None` if any is
/// missing.
pub(super) fn spent_from_utxos(
    c: &mut ChainState,
    tx: &Transaction,
    known: Vec<Option<TxOut>>,
) -> Option<Vec<SpentOutput>> {
    let mut out = Vec::with_capacity(tx.input.len());
    for (input, k) in tx.input.iter().zip(known) {
        match k {
            Some(txout) => out.push(SpentOutput {
                txout,
                height: MEMPOOL_HEIGHT,
                coinbase: false,
            }),
            None => {
                let coin = c.coin(&input.previous_output).ok().flatten()?;
                out.push(SpentOutput {
                    txout: TxOut {
                        value: coin.amount,
                        script_pubkey: coin.script_pubkey,
                    },
                    height: coin.height,
                    coinbase: coin.is_coinbase,
                });
            }
        }
    }
    Some(out)
}

/// Core's `GetBogoSize` (coinstats.cpp): txid, vout, height and coinbase
/// flag, amount, a 2-byte script length, and the script.
fn bogo_size(script: &ScriptBuf) -> u64 {
    32 + 4 + 4 + 8 + 2 + script.len() as u64
}

/// `gettxoutsetinfo`: flushes the cache (as Core's
/// `ForceFlushStateToDisk`), then walks the UTXO table.
pub(super) fn utxo_set_info(c: &mut ChainState, hash_type: UtxoHashType) -> RpcResult<UtxoSetInfo> {
    c.flush().map_err(store_failure)?;
    let mut info = UtxoSetInfo {
        height: c.height(),
        bestblock: c.tip(),
        transactions: 0,
        txouts: 0,
        bogosize: 0,
        hash_serialized_3: None,
        muhash: None,
        disk_size: std::fs::metadata(c.store().path().join("data.mdb")).map_or(0, |m| m.len()),
        total_amount: bitcoin::Amount::ZERO,
    };
    let mut last_txid: Option<Txid> = None;
    let mut total: u64 = 0;
    let mut muhash = (hash_type == UtxoHashType::MuHash).then(MuHash3072::default);
    let mut ser = Vec::with_capacity(128);
    c.store()
        .read()
        .map_err(store_failure)?
        .for_each_coin(|op, coin| {
            if last_txid != Some(op.txid) {
                info.transactions += 1;
                last_txid = Some(op.txid);
            }
            info.txouts += 1;
            info.bogosize += bogo_size(&coin.script_pubkey);
            total = total.saturating_add(coin.amount.to_sat());
            if let Some(m) = muhash.as_mut() {
                tx_out_ser(&mut ser, &op, &coin);
                m.insert(&ser);
            }
            true
        })
        .map_err(store_failure)?;
    info.total_amount = bitcoin::Amount::from_sat(total);
    info.muhash = muhash.map(|m| m.finalize());
    if hash_type == UtxoHashType::HashSerialized3 {
        info.hash_serialized_3 = Some(c.store().utxo_digest().map_err(store_failure)?);
    }
    Ok(info)
}

/// Core's `TxOutSer` (`kernel/coinstats.cpp`) of one coin into `buf`:
/// outpoint, `height * 2 + coinbase` as `u32`, amount, script with its
/// CompactSize length (as `Store::utxo_digest` hashes them).
fn tx_out_ser(buf: &mut Vec<u8>, op: &OutPoint, coin: &crate::store::Coin) {
    use bitcoin::hashes::Hash;
    buf.clear();
    buf.extend_from_slice(op.txid.as_byte_array());
    buf.extend_from_slice(&op.vout.to_le_bytes());
    let code = (coin.height << 1) | u32::from(coin.is_coinbase);
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&coin.amount.to_sat().to_le_bytes());
    buf.extend_from_slice(&bitcoin::consensus::serialize(
        &bitcoin::consensus::encode::VarInt(coin.script_pubkey.len() as u64),
    ));
    buf.extend_from_slice(coin.script_pubkey.as_bytes());
}

/// `scantxoutset start`: flushes, then every coin paying one of `scripts`.
pub(super) fn scan_utxos(c: &mut ChainState, scripts: Vec<ScriptBuf>) -> RpcResult<UtxoScan> {
    c.flush().map_err(store_failure)?;
    let wanted: HashSet<ScriptBuf> = scripts.into_iter().collect();
    let mut txouts = 0u64;
    let mut found: Vec<(OutPoint, crate::store::Coin)> = Vec::new();
    c.store()
        .read()
        .map_err(store_failure)?
        .for_each_coin(|op, coin| {
            txouts += 1;
            if wanted.contains(&coin.script_pubkey) {
                found.push((op, coin));
            }
            true
        })
        .map_err(store_failure)?;
    let unspents = found
        .into_iter()
        .map(|(outpoint, coin)| ScannedCoin {
            outpoint,
            blockhash: c.active_hash(coin.height).unwrap_or_else(|| c.tip()),
            height: coin.height,
            coinbase: coin.is_coinbase,
            txout: TxOut {
                value: coin.amount,
                script_pubkey: coin.script_pubkey,
            },
        })
        .collect();
    Ok(UtxoScan {
        height: c.height(),
        bestblock: c.tip(),
        txouts,
        unspents,
    })
}

/// The active block holding an unspent output of `txid` (Core's
/// `AccessByTxid`, which tries every vout up to `MAX_OUTPUTS_PER_BLOCK`).
fn block_of_unspent(c: &mut ChainState, txid: Txid) -> Option<BlockHash> {
    for vout in 0..MAX_OUTPUTS_PER_BLOCK {
        if let Ok(Some(coin)) = c.coin(&OutPoint::new(txid, vout)) {
            return c.active_hash(coin.height);
        }
    }
    None
}

/// `gettxoutproof` (Core's `rpc/txoutproof.cpp`): `hinted` is the txindex
/// hook's answer for the first txid.
pub(super) fn tx_out_proof(
    c: &mut ChainState,
    txids: Vec<Txid>,
    blockhash: Option<BlockHash>,
    hinted: Option<BlockHash>,
) -> RpcResult<MerkleBlock> {
    let hash = match blockhash {
        Some(h) => {
            if c.entry(&h).is_none() {
                return Err(RpcFailure::not_found("Block not found"));
            }
            h
        }
        None => txids
            .iter()
            .find_map(|t| block_of_unspent(c, *t))
            .or(hinted)
            .ok_or_else(|| RpcFailure::not_found("Transaction not yet in block"))?,
    };
    let block = read_block(c, &hash)
        .ok_or_else(|| RpcFailure::misc("Block not available (not fully downloaded)"))?;
    let wanted: HashSet<Txid> = txids.into_iter().collect();
    let found = block
        .txdata
        .iter()
        .filter(|t| wanted.contains(&t.compute_txid()))
        .count();
    if found != wanted.len() {
        return Err(RpcFailure::not_found(
            "Not all transactions found in specified or retrieved block",
        ));
    }
    Ok(MerkleBlock::from_block_with_predicate(&block, |t| {
        wanted.contains(t)
    }))
}

/// Transactions in the chain up to and including `hash` (Core's
/// `m_chain_tx_count`, the block index's `chain_tx`), `None` for a block
/// never connected (Core: unknown count, the fields are left out).
pub(super) fn chain_tx_count(c: &mut ChainState, hash: BlockHash) -> Option<u64> {
    c.entry(&hash)?;
    match c.chain_tx(&hash) {
        0 => None,
        n => Some(n),
    }
}

/// The categories switched on by `logging` when strand's logger is not
/// installed (an embedder's logger): one node per process, so one set.
static ENABLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `logging`: names are already checked against Core's list. Switches the
/// installed logger's categories (`logging::update_categories`) and returns
/// the set now on.
pub(super) fn set_log_categories(include: Vec<String>, exclude: Vec<String>) -> Vec<String> {
    if let Some(on) = crate::logging::update_categories(&include, &exclude) {
        return on.into_iter().map(str::to_string).collect();
    }
    let mut enabled = ENABLED.lock();
    for c in include {
        if !enabled.contains(&c) {
            enabled.push(c);
        }
    }
    enabled.retain(|c| !exclude.contains(c));
    enabled.clone()
}

/// `addnode`'s checks against the added list (Core's `AddNode` and
/// `RemoveAddedNode` answers): -23 when adding a node already added, -24
/// when removing one never added. The list is the connection manager's
/// last published one, so a node added in the same instant may not be in
/// it yet.
pub(super) fn check_added(
    added: &[crate::connmgr::AddedNodeInfo],
    node: &str,
    command: AddNodeCommand,
) -> RpcResult<()> {
    use super::protocol::codes;
    let known = added.iter().any(|a| a.addednode == node);
    match command {
        AddNodeCommand::Add if known => Err(RpcFailure::new(
            codes::RPC_CLIENT_NODE_ALREADY_ADDED,
            "Error: Node already added",
        )),
        AddNodeCommand::Remove if !known => Err(RpcFailure::new(
            codes::RPC_CLIENT_NODE_NOT_ADDED,
            "Error: Node could not be removed. It has not been added previously.",
        )),
        _ => Ok(()),
    }
}

/// `getrpcinfo`'s `logpath`: `debug.log` in the network's data directory
/// (the parent of the chain-state store).
pub(super) fn log_path(c: &mut ChainState) -> String {
    let dir = c.store().path();
    let net_dir = dir.parent().unwrap_or(dir);
    net_dir.join("debug.log").display().to_string()
}
