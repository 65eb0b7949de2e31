//! Blockchain methods (Core's `rpc/blockchain.cpp`): tip, heights, headers,
//! blocks (`blockheaderToJSON`, `blockToJSON`), chain tips, difficulty,
//! `gettxout`, `invalidateblock`, `reconsiderblock`, the UTXO-set methods
//! (`gettxoutsetinfo`, `scantxoutset`), merkle proofs (Core's
//! `rpc/txoutproof.cpp`: `gettxoutproof`, `verifytxoutproof`) and chain
//! statistics (`getchaintxstats`, `getblockstats`). Runs on the RPC worker
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
                let origins = data
                    .spent_origins
                    .as_ref()
                    .and_then(|s| s.get(i))
                    .map(|v| v.as_slice());
                Value::Object(tx_json(t, network, spent, origins, true, verbosity >= 3))
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

// ---------------------------------------------------------------------------
// UTXO set.

pub(super) fn h_gettxoutsetinfo(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash_type = match a.opt_str(0).unwrap_or("hash_serialized_3") {
        "hash_serialized_3" => UtxoHashType::HashSerialized3,
        "none" => UtxoHashType::None,
        "muhash" => UtxoHashType::MuHash,
        other => {
            return Err(RpcFailure::invalid_parameter(format!(
                "'{other}' is not a valid hash_type"
            )))
        }
    };
    if a.get(1).is_some() {
        // Core without -coinstatsindex.
        return Err(RpcFailure::invalid_parameter(
            "Querying specific block heights requires coinstatsindex",
        ));
    }
    let i = d.backend.utxo_set_info(hash_type)?;
    let mut m = Map::new();
    m.insert("height".into(), json!(i.height));
    m.insert("bestblock".into(), json!(i.bestblock.to_string()));
    m.insert("txouts".into(), json!(i.txouts));
    m.insert("bogosize".into(), json!(i.bogosize));
    if let Some(h) = i.hash_serialized_3 {
        m.insert("hash_serialized_3".into(), json!(h.to_string()));
    }
    if let Some(h) = i.muhash {
        m.insert("muhash".into(), json!(super::muhash::uint256_hex(&h)));
    }
    m.insert("transactions".into(), json!(i.transactions));
    m.insert("disk_size".into(), json!(i.disk_size));
    m.insert("total_amount".into(), amount_json(i.total_amount));
    Ok(Value::Object(m))
}

/// Core's `scantxoutset`. The scan runs to completion inside the call
/// (strand holds the UTXO set in one LMDB table), so `status` always finds
/// no scan in progress and `abort` has nothing to abort.
pub(super) fn h_scantxoutset(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    match a.str(0)? {
        "status" => return Ok(Value::Null),
        "abort" => return Ok(json!(false)),
        "start" => {}
        other => {
            return Err(RpcFailure::invalid_parameter(format!(
                "Invalid action '{other}'"
            )))
        }
    }
    let Some(objects) = a.get(1).and_then(Value::as_array) else {
        return Err(RpcFailure::misc(
            "scanobjects argument is required for the start action",
        ));
    };
    let network = d.backend.network();
    let mut wanted: Vec<(bitcoin::ScriptBuf, String)> = Vec::new();
    for o in objects {
        let desc = match o {
            Value::String(s) => s.as_str(),
            Value::Object(m) => m.get("desc").and_then(Value::as_str).ok_or_else(|| {
                RpcFailure::invalid_parameter("Descriptor needs to be provided in scan object")
            })?,
            _ => {
                return Err(RpcFailure::invalid_parameter(
                    "Scan object needs to be either a string or an object",
                ))
            }
        };
        let script = script_from_descriptor(desc, network).map_err(RpcFailure::not_found)?;
        let body = desc.split('#').next().unwrap_or(desc).to_string();
        wanted.push((script, with_checksum(body)));
    }
    let scan = d
        .backend
        .scan_utxos(wanted.iter().map(|(s, _)| s.clone()).collect())?;
    let mut total = bitcoin::Amount::ZERO;
    let unspents: Vec<Value> = scan
        .unspents
        .iter()
        .map(|c| {
            total += c.txout.value;
            let desc = wanted
                .iter()
                .find(|(s, _)| *s == c.txout.script_pubkey)
                .map(|(_, d)| d.clone())
                .unwrap_or_default();
            json!({
                "txid": c.outpoint.txid.to_string(),
                "vout": c.outpoint.vout,
                "scriptPubKey": c.txout.script_pubkey.as_bytes().to_lower_hex_string(),
                "desc": desc,
                "amount": amount_json(c.txout.value),
                "coinbase": c.coinbase,
                "height": c.height,
                "blockhash": c.blockhash.to_string(),
                "confirmations": scan.height.saturating_sub(c.height) + 1,
            })
        })
        .collect();
    Ok(json!({
        "success": true,
        "txouts": scan.txouts,
        "height": scan.height,
        "bestblock": scan.bestblock.to_string(),
        "unspents": unspents,
        "total_amount": amount_json(total),
    }))
}

// ---------------------------------------------------------------------------
// Merkle proofs.

pub(super) fn h_gettxoutproof(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let list = a
        .get(0)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return Err(RpcFailure::invalid_parameter(
            "Parameter 'txids' cannot be empty",
        ));
    }
    let mut txids: Vec<Txid> = Vec::new();
    for v in &list {
        let txid: Txid = parse_hash(Some(v), "txid")?;
        if txids.contains(&txid) {
            return Err(RpcFailure::invalid_parameter(format!(
                "Invalid parameter, duplicated txid: {}",
                v.as_str().unwrap_or_default()
            )));
        }
        txids.push(txid);
    }
    let blockhash: Option<BlockHash> = match a.get(1) {
        Some(v) => Some(parse_hash(Some(v), "blockhash")?),
        None => None,
    };
    let mb = d.backend.tx_out_proof(txids, blockhash)?;
    Ok(json!(serialize(&mb).to_lower_hex_string()))
}

pub(super) fn h_verifytxoutproof(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hex = a.str(0)?;
    let bytes = <Vec<u8> as bitcoin::hex::FromHex>::from_hex(hex).map_err(|_| {
        RpcFailure::invalid_parameter(format!("proof must be hexadecimal string (not '{hex}')"))
    })?;
    let mb: bitcoin::MerkleBlock = bitcoin::consensus::deserialize(&bytes)
        .map_err(|e| RpcFailure::deserialization(e.to_string()))?;
    let mut matches = Vec::new();
    let mut indexes = Vec::new();
    match mb.txn.extract_matches(&mut matches, &mut indexes) {
        Ok(root) if root == mb.header.merkle_root => {}
        _ => return Ok(json!([])),
    }
    let info = d.backend.block_header(mb.header.block_hash())?;
    let Some(info) = info.filter(|i| i.confirmations > 0 && i.n_tx > 0) else {
        return Err(RpcFailure::not_found("Block not found in chain"));
    };
    if info.n_tx != mb.txn.num_transactions() {
        return Ok(json!([]));
    }
    Ok(Value::Array(
        matches.iter().map(|t| json!(t.to_string())).collect(),
    ))
}

// ---------------------------------------------------------------------------
// Chain statistics.

pub(super) fn h_getchaintxstats(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let info = match a.get(1) {
        None => {
            let tip = d.backend.best_block_hash()?;
            d.backend.block_header(tip)?.ok_or_else(block_not_found)?
        }
        Some(v) => {
            let hash: BlockHash = parse_hash(Some(v), "blockhash")?;
            let info = d.backend.block_header(hash)?.ok_or_else(block_not_found)?;
            if info.confirmations < 0 {
                return Err(RpcFailure::invalid_parameter("Block is not in main chain"));
            }
            info
        }
    };
    let height = i64::from(info.height);
    // Core: one month of blocks by default, 30 * 24 * 60 * 60 / nPowTargetSpacing.
    let month = 30 * 24 * 60 * 60 / 600;
    let blockcount = match a.int(0)? {
        None => month.min(height - 1).max(0),
        Some(n) => {
            if n < 0 || (n > 0 && n >= height) {
                return Err(RpcFailure::invalid_parameter(
                    "Invalid block count: should be between 0 and the block's height - 1",
                ));
            }
            n
        }
    };
    let hash = info.header.block_hash();
    let past_hash = d
        .backend
        .block_hash((height - blockcount) as u32)?
        .ok_or_else(block_not_found)?;
    let past = d
        .backend
        .block_header(past_hash)?
        .ok_or_else(block_not_found)?;
    let count = d.backend.chain_tx_count(hash)?;
    let mut m = Map::new();
    m.insert("time".into(), json!(info.header.time));
    if let Some(c) = count {
        m.insert("txcount".into(), json!(c));
    }
    m.insert("window_final_block_hash".into(), json!(hash.to_string()));
    m.insert("window_final_block_height".into(), json!(info.height));
    m.insert("window_block_count".into(), json!(blockcount));
    if blockcount > 0 {
        let interval = i64::from(info.mediantime) - i64::from(past.mediantime);
        m.insert("window_interval".into(), json!(interval));
        if let (Some(c), Some(p)) = (count, d.backend.chain_tx_count(past_hash)?) {
            let window = c.saturating_sub(p);
            m.insert("window_tx_count".into(), json!(window));
            if interval > 0 {
                m.insert("txrate".into(), float_json(window as f64 / interval as f64));
            }
        }
    }
    Ok(Value::Object(m))
}

/// Core's `ParseHashOrHeight`: a block of the active chain by height, or
/// any known block by hash.
fn block_by_hash_or_height(d: &Dispatcher, v: Option<&Value>) -> RpcResult<BlockHash> {
    match v {
        Some(Value::Number(n)) => {
            let h = n
                .as_i64()
                .ok_or_else(|| RpcFailure::misc("JSON integer out of range"))?;
            let tip = i64::from(d.backend.block_count()?);
            if h < 0 {
                return Err(RpcFailure::invalid_parameter(format!(
                    "Target block height {h} is negative"
                )));
            }
            if h > tip {
                return Err(RpcFailure::invalid_parameter(format!(
                    "Target block height {h} after current tip {tip}"
                )));
            }
            d.backend.block_hash(h as u32)?.ok_or_else(block_not_found)
        }
        other => parse_hash(other, "blockhash"),
    }
}

/// Core's `CalculateTruncatedMedian`.
fn truncated_median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    let n = v.len();
    let mid = v.get(n / 2).copied().unwrap_or(0);
    if n.is_multiple_of(2) {
        let below = n.checked_sub(1).and_then(|i| v.get(i / 2)).copied();
        below.map_or(0, |b| (b + mid) / 2)
    } else {
        mid
    }
}

/// Core's `CalculatePercentilesByWeight`: the 10th, 25th, 50th, 75th and
/// 90th percentile fee rates by weight.
fn percentiles_by_weight(scores: &mut [(i64, i64)], total_weight: i64) -> [i64; 5] {
    let mut out = [0i64; 5];
    let Some(&(last, _)) = scores.iter().max() else {
        return out;
    };
    scores.sort_unstable();
    let w = total_weight as f64;
    let marks = [w / 10.0, w / 4.0, w / 2.0, w * 3.0 / 4.0, w * 9.0 / 10.0];
    let mut next = 0;
    let mut cumulative = 0i64;
    for &(rate, weight) in scores.iter() {
        cumulative += weight;
        while next < 5 && cumulative as f64 >= marks[next] {
            out[next] = rate;
            next += 1;
        }
    }
    for o in out.iter_mut().skip(next) {
        *o = last;
    }
    out
}

/// Core's `GetBlockSubsidy`.
fn block_subsidy(height: u32, network: bitcoin::Network) -> i64 {
    let interval = match network {
        bitcoin::Network::Regtest => crate::mining::REGTEST_HALVING_INTERVAL,
        _ => crate::mining::MAINNET_HALVING_INTERVAL,
    };
    let halvings = height / interval;
    if halvings >= 64 {
        return 0;
    }
    (50 * 100_000_000i64) >> halvings
}

/// Every statistic of Core's `getblockstats`, in Core's order.
pub(super) fn block_stats(
    data: &BlockData,
    network: bitcoin::Network,
) -> RpcResult<Map<String, Value>> {
    // Core's PER_UTXO_OVERHEAD: sizeof(COutPoint) + sizeof(uint32_t).
    const PER_UTXO_OVERHEAD: i64 = 36 + 4;
    // Core's WITNESS_SCALE_FACTOR.
    const WITNESS_SCALE_FACTOR: i64 = 4;
    let block = &data.block;
    let height = data.info.height;
    let spent: Vec<Vec<bitcoin::TxOut>> = match &data.spent_outputs {
        Some(s) => s.clone(),
        None if height == 0 => vec![Vec::new(); block.txdata.len()],
        None => return Err(RpcFailure::misc("Can't read undo data from disk")),
    };
    let out_size = |o: &bitcoin::TxOut| serialize(o).len() as i64 + PER_UTXO_OVERHEAD;
    let (mut inputs, mut outputs, mut utxos) = (0i64, 0i64, 0i64);
    let (mut total_out, mut totalfee) = (0i64, 0i64);
    let (mut maxfee, mut minfee) = (0i64, i64::MAX);
    let (mut maxfeerate, mut minfeerate) = (0i64, i64::MAX);
    let (mut maxtxsize, mut mintxsize) = (0i64, i64::MAX);
    let (mut swtxs, mut swtotal_size, mut swtotal_weight) = (0i64, 0i64, 0i64);
    let (mut total_size, mut total_weight) = (0i64, 0i64);
    let (mut utxo_size_inc, mut utxo_size_inc_actual) = (0i64, 0i64);
    let mut fees = Vec::new();
    let mut feerates = Vec::new();
    let mut sizes = Vec::new();
    for (i, tx) in block.txdata.iter().enumerate() {
        outputs += tx.output.len() as i64;
        let mut tx_out = 0i64;
        for o in &tx.output {
            tx_out += o.value.to_sat() as i64;
            utxo_size_inc += out_size(o);
            // Genesis (and Core's BIP30 repeats, which regtest/strand do
            // not have) leave the UTXO set unchanged; OP_RETURN outputs
            // never enter it.
            if height == 0 || o.script_pubkey.is_op_return() || o.script_pubkey.len() > 10_000 {
                continue;
            }
            utxos += 1;
            utxo_size_inc_actual += out_size(o);
        }
        if tx.is_coinbase() {
            continue;
        }
        inputs += tx.input.len() as i64;
        total_out += tx_out;
        let size = tx.total_size() as i64;
        sizes.push(size);
        maxtxsize = maxtxsize.max(size);
        mintxsize = mintxsize.min(size);
        total_size += size;
        let weight = tx.weight().to_wu() as i64;
        total_weight += weight;
        if tx.input.iter().any(|i| !i.witness.is_empty()) {
            swtxs += 1;
            swtotal_size += size;
            swtotal_weight += weight;
        }
        let prev = spent
            .get(i)
            .ok_or_else(|| RpcFailure::misc("Can't read undo data from disk"))?;
        let mut tx_in = 0i64;
        for p in prev {
            tx_in += p.value.to_sat() as i64;
            utxo_size_inc -= out_size(p);
            utxo_size_inc_actual -= out_size(p);
        }
        let fee = tx_in - tx_out;
        fees.push(fee);
        maxfee = maxfee.max(fee);
        minfee = minfee.min(fee);
        totalfee += fee;
        let feerate = if weight > 0 {
            fee * WITNESS_SCALE_FACTOR / weight
        } else {
            0
        };
        feerates.push((feerate, weight));
        maxfeerate = maxfeerate.max(feerate);
        minfeerate = minfeerate.min(feerate);
    }
    let n = block.txdata.len() as i64;
    let percentiles = percentiles_by_weight(&mut feerates, total_weight);
    let or0 = |v: i64| if v == i64::MAX { 0 } else { v };
    let mut m = Map::new();
    m.insert(
        "avgfee".into(),
        json!(if n > 1 { totalfee / (n - 1) } else { 0 }),
    );
    m.insert(
        "avgfeerate".into(),
        json!(if total_weight > 0 {
            totalfee * WITNESS_SCALE_FACTOR / total_weight
        } else {
            0
        }),
    );
    m.insert(
        "avgtxsize".into(),
        json!(if n > 1 { total_size / (n - 1) } else { 0 }),
    );
    m.insert("blockhash".into(), json!(block.block_hash().to_string()));
    m.insert("feerate_percentiles".into(), json!(percentiles));
    m.insert("height".into(), json!(height));
    m.insert("ins".into(), json!(inputs));
    m.insert("maxfee".into(), json!(maxfee));
    m.insert("maxfeerate".into(), json!(maxfeerate));
    m.insert("maxtxsize".into(), json!(maxtxsize));
    m.insert("medianfee".into(), json!(truncated_median(&mut fees)));
    m.insert("mediantime".into(), json!(data.info.mediantime));
    m.insert("mediantxsize".into(), json!(truncated_median(&mut sizes)));
    m.insert("minfee".into(), json!(or0(minfee)));
    m.insert("minfeerate".into(), json!(or0(minfeerate)));
    m.insert("mintxsize".into(), json!(or0(mintxsize)));
    m.insert("outs".into(), json!(outputs));
    m.insert("subsidy".into(), json!(block_subsidy(height, network)));
    m.insert("swtotal_size".into(), json!(swtotal_size));
    m.insert("swtotal_weight".into(), json!(swtotal_weight));
    m.insert("swtxs".into(), json!(swtxs));
    m.insert("time".into(), json!(block.header.time));
    m.insert("total_out".into(), json!(total_out));
    m.insert("total_size".into(), json!(total_size));
    m.insert("total_weight".into(), json!(total_weight));
    m.insert("totalfee".into(), json!(totalfee));
    m.insert("txs".into(), json!(n));
    m.insert("utxo_increase".into(), json!(outputs - inputs));
    m.insert("utxo_size_inc".into(), json!(utxo_size_inc));
    m.insert("utxo_increase_actual".into(), json!(utxos - inputs));
    m.insert("utxo_size_inc_actual".into(), json!(utxo_size_inc_actual));
    Ok(m)
}

pub(super) fn h_getblockstats(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash = block_by_hash_or_height(d, a.get(0))?;
    let mut wanted: Vec<String> = Vec::new();
    if let Some(list) = a.get(1).and_then(Value::as_array) {
        for v in list {
            let s = v.as_str().ok_or_else(|| {
                RpcFailure::type_error(format!(
                    "JSON value of type {} is not of expected type string",
                    type_name(v)
                ))
            })?;
            if !wanted.iter().any(|w| w == s) {
                wanted.push(s.to_string());
            }
        }
    }
    let data = d.backend.block(hash)?.ok_or_else(block_not_found)?;
    let all = block_stats(&data, d.backend.network())?;
    if wanted.is_empty() {
        return Ok(Value::Object(all));
    }
    // Core returns the selected statistics in name order (a std::set).
    wanted.sort();
    let mut m = Map::new();
    for w in wanted {
        let v = all.get(&w).cloned().ok_or_else(|| {
            RpcFailure::invalid_parameter(format!("Invalid selected statistic '{w}'"))
        })?;
        m.insert(w, v);
    }
    Ok(Value::Object(m))
}
