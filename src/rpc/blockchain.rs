//! Blockchain methods (Core's `rpc/blockchain.cpp`): tip, heights, headers,
//! blocks (`blockheaderToJSON`, `blockToJSON`), chain tips, difficulty,
//! `gettxout`, `invalidateblock`, `reconsiderblock`. Runs on the RPC worker
//! threads; the backend answers from the sync-manager thread.

use bitcoin::consensus::serialize;
use bitcoin::hex::DisplayHex;
use bitcoin::{BlockHash, Txid};
use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::RpcFailure;
use super::rawtransaction::*;
use super::util::*;

/// Core's `blockheaderToJSON`.
pub(super) fn header_json(info: &HeaderInfo) -> Map<String, Value> {
    let h = &info.header;
    let mut m = Map::new();
    m.insert("hash".into(), json!(h.block_hash().to_string()));
    m.insert("confirmations".into(), json!(info.confirmations));
    m.insert("height".into(), json!(info.height));
    m.insert("version".into(), json!(h.version.to_consensus()));
    m.insert(
        "versionHex".into(),
        json!(format!("{:08x}", h.version.to_consensus())),
    );
    m.insert("merkleroot".into(), json!(h.merkle_root.to_string()));
    m.insert("time".into(), json!(h.time));
    m.insert("mediantime".into(), json!(info.mediantime));
    m.insert("nonce".into(), json!(h.nonce));
    m.insert(
        "bits".into(),
        json!(format!("{:08x}", h.bits.to_consensus())),
    );
    m.insert("difficulty".into(), float_json(h.difficulty_float()));
    m.insert(
        "chainwork".into(),
        json!(info.chainwork.to_be_bytes().to_lower_hex_string()),
    );
    m.insert("nTx".into(), json!(info.n_tx));
    if info.height > 0 {
        m.insert(
            "previousblockhash".into(),
            json!(h.prev_blockhash.to_string()),
        );
    }
    if let Some(n) = info.next_block_hash {
        m.insert("nextblockhash".into(), json!(n.to_string()));
    }
    m
}

pub(super) fn varint_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Core's `blockToJSON`.
pub(super) fn block_json(data: &BlockData, verbosity: i64, network: bitcoin::Network) -> Value {
    let block = &data.block;
    let mut m = header_json(&data.info);
    let stripped = 80
        + varint_len(block.txdata.len())
        + block.txdata.iter().map(|t| t.base_size()).sum::<usize>();
    m.insert("strippedsize".into(), json!(stripped));
    m.insert("size".into(), json!(block.total_size()));
    m.insert("weight".into(), json!(block.weight().to_wu()));
    let txs: Vec<Value> = if verbosity <= 1 {
        block
            .txdata
            .iter()
            .map(|t| json!(t.compute_txid().to_string()))
            .collect()
    } else {
        block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let spent = data
                    .spent_outputs
                    .as_ref()
                    .and_then(|s| s.get(i))
                    .map(|v| v.as_slice());
                Value::Object(tx_json(t, network, spent, true, verbosity >= 3))
            })
            .collect()
    };
    m.insert("tx".into(), Value::Array(txs));
    Value::Object(m)
}

pub(super) fn h_getbestblockhash(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.best_block_hash()?.to_string()))
}

pub(super) fn h_getblockcount(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.block_count()?))
}

pub(super) fn h_getblockchaininfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.blockchain_info()?;
    let mut out = json!({
        "chain": i.chain,
        "blocks": i.blocks,
        "headers": i.headers,
        "bestblockhash": i.bestblockhash.to_string(),
        "difficulty": float_json(i.difficulty),
        "time": i.time,
        "mediantime": i.mediantime,
        "verificationprogress": float_json(i.verificationprogress),
        "initialblockdownload": i.initialblockdownload,
        "chainwork": i.chainwork.to_be_bytes().to_lower_hex_string(),
        "size_on_disk": i.size_on_disk,
        "pruned": i.pruned,
    });
    if let (Some(p), Value::Object(m)) = (&i.prune_info, &mut out) {
        // Core's order: after `pruned`, before `warnings`.
        m.insert("pruneheight".into(), json!(p.pruneheight));
        m.insert("automatic_pruning".into(), json!(p.automatic_pruning));
        if let Some(t) = p.prune_target_size {
            m.insert("prune_target_size".into(), json!(t));
        }
    }
    if let Value::Object(m) = &mut out {
        m.insert("warnings".into(), json!(i.warnings));
    }
    Ok(out)
}

pub(super) fn h_pruneblockchain(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let height = a.int(0)?.unwrap_or(0);
    Ok(json!(d.backend.prune_blockchain(height)?))
}

pub(super) fn h_getblockhash(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let height = a.int(0)?.unwrap_or(-1);
    let out_of_range = || RpcFailure::invalid_parameter("Block height out of range");
    let h = u32::try_from(height).map_err(|_| out_of_range())?;
    match d.backend.block_hash(h)? {
        Some(hash) => Ok(json!(hash.to_string())),
        None => Err(out_of_range()),
    }
}

pub(super) fn h_getblockheader(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "hash")?;
    let info = d.backend.block_header(hash)?.ok_or_else(block_not_found)?;
    if a.bool_or(1, true) {
        Ok(Value::Object(header_json(&info)))
    } else {
        Ok(json!(serialize(&info.header).to_lower_hex_string()))
    }
}

pub(super) fn h_getblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    let verbosity = a.verbosity(1, 1)?;
    let data = d.backend.block(hash)?.ok_or_else(block_not_found)?;
    if verbosity <= 0 {
        return Ok(json!(serialize(&data.block).to_lower_hex_string()));
    }
    Ok(block_json(&data, verbosity, d.backend.network()))
}

pub(super) fn h_getchaintips(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let tips = d.backend.chain_tips()?;
    Ok(Value::Array(
        tips.iter()
            .map(|t| {
                json!({
                    "height": t.height,
                    "hash": t.hash.to_string(),
                    "branchlen": t.branchlen,
                    "status": t.status.as_str(),
                })
            })
            .collect(),
    ))
}

pub(super) fn h_getdifficulty(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(float_json(d.backend.difficulty()?))
}

pub(super) fn h_gettxout(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let txid: Txid = parse_hash(a.get(0), "txid")?;
    let n = a.int(1)?.unwrap_or(0);
    let Ok(n) = u32::try_from(n) else {
        return Ok(Value::Null);
    };
    let include_mempool = a.bool_or(2, true);
    match d.backend.tx_out(txid, n, include_mempool)? {
        None => Ok(Value::Null),
        Some(o) => Ok(json!({
            "bestblock": o.bestblock.to_string(),
            "confirmations": o.confirmations,
            "value": amount_json(o.txout.value),
            "scriptPubKey": script_pubkey_json(&o.txout.script_pubkey, d.backend.network()),
            "coinbase": o.coinbase,
        })),
    }
}

pub(super) fn h_invalidateblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    d.backend.invalidate_block(hash)?;
    Ok(Value::Null)
}

pub(super) fn h_reconsiderblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    d.backend.reconsider_block(hash)?;
    Ok(Value::Null)
}
