//! Mining and generating methods (Core's `rpc/mining.cpp`): `submitblock`,
//! `generatetoaddress`, `generatetodescriptor`, `generateblock`. Runs on
//! the RPC worker threads; blocks are built and connected by the node.

use std::str::FromStr;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{Address, Block, BlockHash, Txid};
use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::RpcFailure;
use super::rawtransaction::*;
use super::util::*;

pub(super) fn h_submitblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let block: Block = Vec::<u8>::from_hex(a.str(0)?)
        .ok()
        .and_then(|b| deserialize(&b).ok())
        .ok_or_else(|| RpcFailure::deserialization("Block decode failed"))?;
    if !block.txdata.first().is_some_and(|t| t.is_coinbase()) {
        return Err(RpcFailure::deserialization(
            "Block does not start with a coinbase",
        ));
    }
    Ok(match d.backend.submit_block(block)? {
        None => Value::Null,
        Some(reason) => json!(reason),
    })
}

pub(super) fn hashes_json(h: Vec<BlockHash>) -> Value {
    Value::Array(h.iter().map(|h| json!(h.to_string())).collect())
}

pub(super) fn count_and_tries(a: &Args) -> RpcResult<(u32, u64)> {
    let n = a.int(0)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
    let tries = match a.int(2)? {
        None => 1_000_000,
        Some(t) => u64::try_from(t).unwrap_or(0),
    };
    Ok((n, tries))
}

pub(super) fn h_generatetoaddress(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let (n, tries) = count_and_tries(a)?;
    let addr = Address::from_str(a.str(1)?)
        .ok()
        .and_then(|x| x.require_network(d.backend.network()).ok())
        .ok_or_else(|| RpcFailure::not_found("Error: Invalid address"))?;
    Ok(hashes_json(d.backend.generate_to_script(
        n,
        addr.script_pubkey(),
        tries,
    )?))
}

pub(super) fn h_generatetodescriptor(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let (n, tries) = count_and_tries(a)?;
    let script =
        script_from_descriptor(a.str(1)?, d.backend.network()).map_err(RpcFailure::not_found)?;
    Ok(hashes_json(d.backend.generate_to_script(n, script, tries)?))
}

pub(super) fn h_generateblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let output = a.str(0)?;
    let network = d.backend.network();
    let script = match script_from_descriptor(output, network) {
        Ok(s) => s,
        Err(_) => Address::from_str(output)
            .ok()
            .and_then(|x| x.require_network(network).ok())
            .map(|x| x.script_pubkey())
            .ok_or_else(|| RpcFailure::not_found("Error: Invalid address or descriptor"))?,
    };
    let mut txs = Vec::new();
    for item in a.get(1).and_then(Value::as_array).into_iter().flatten() {
        let s = item.as_str().ok_or_else(|| {
            RpcFailure::type_error(format!(
                "JSON value of type {} is not of expected type string",
                type_name(item)
            ))
        })?;
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(txid) = Txid::from_str(s) {
                txs.push(BlockTx::Txid(txid));
                continue;
            }
        }
        txs.push(BlockTx::Raw(decode_tx(s).ok_or_else(|| {
            RpcFailure::deserialization(format!(
                "Transaction decode failed for {s}. Make sure the tx has at least one input."
            ))
        })?));
    }
    let submit = a.bool_or(2, true);
    let g = d.backend.generate_block(script, txs, submit)?;
    let mut m = Map::new();
    m.insert("hash".into(), json!(g.hash.to_string()));
    if let Some(b) = g.block.filter(|_| !submit) {
        m.insert("hex".into(), json!(serialize(&b).to_lower_hex_string()));
    }
    Ok(Value::Object(m))
}

// ---------------------------------------------------------------------------
// getblocktemplate, getmininginfo, submitheader, prioritisetransaction
// ---------------------------------------------------------------------------

/// A target as Core prints it: 64 hex digits, big-endian.
fn target_hex(bits: bitcoin::CompactTarget) -> String {
    bitcoin::Target::from_compact(bits)
        .to_be_bytes()
        .to_lower_hex_string()
}

fn difficulty_of(bits: bitcoin::CompactTarget) -> f64 {
    bitcoin::Target::from_compact(bits).difficulty_float()
}

/// BIP22/BIP23 `getblocktemplate`, template mode only (no `proposal`, no
/// long polling: a `longpollid` is returned but the call answers at once).
pub(super) fn h_getblocktemplate(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let request = a.get(0).and_then(Value::as_object);
    let mode = match request.and_then(|r| r.get("mode")) {
        None | Some(Value::Null) => "template",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(RpcFailure::invalid_parameter("Invalid mode")),
    };
    if mode != "template" {
        return Err(RpcFailure::invalid_parameter("Invalid mode"));
    }
    let client_rules: Vec<&str> = request
        .and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // Not connected / initial download come first, as in Core.
    let t = d.backend.block_template()?;
    if !client_rules.contains(&"segwit") {
        return Err(RpcFailure::invalid_parameter(
            "getblocktemplate must be called with the segwit rule set (call with {\"rules\": [\"segwit\"]})",
        ));
    }
    let mut rules = vec![json!("csv"), json!("!segwit"), json!("taproot")];
    if t.signet_challenge.is_some() {
        rules.push(json!("!signet"));
    }
    let transactions: Vec<Value> = t
        .transactions
        .iter()
        .map(|x| {
            json!({
                "data": serialize(&x.tx).to_lower_hex_string(),
                "txid": x.txid.to_string(),
                "hash": x.tx.compute_wtxid().to_string(),
                "depends": x.depends,
                "fee": x.fee.to_sat(),
                "sigops": x.sigop_cost,
                "weight": x.weight,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("capabilities".into(), json!([]));
    m.insert("version".into(), json!(t.version));
    m.insert("rules".into(), Value::Array(rules));
    m.insert("vbavailable".into(), json!({}));
    m.insert("vbrequired".into(), json!(0));
    m.insert(
        "previousblockhash".into(),
        json!(t.next.prev_hash.to_string()),
    );
    m.insert("transactions".into(), Value::Array(transactions));
    m.insert("coinbaseaux".into(), json!({}));
    m.insert("coinbasevalue".into(), json!(t.coinbasevalue.to_sat()));
    m.insert(
        "longpollid".into(),
        json!(format!("{}{}", t.next.prev_hash, t.transactions_updated)),
    );
    m.insert("target".into(), json!(target_hex(t.next.bits)));
    m.insert("mintime".into(), json!(t.next.mintime));
    m.insert(
        "mutable".into(),
        json!(["time", "transactions", "prevblock"]),
    );
    m.insert("noncerange".into(), json!("00000000ffffffff"));
    m.insert(
        "sigoplimit".into(),
        json!(crate::mining::MAX_BLOCK_SIGOPS_COST),
    );
    m.insert("sizelimit".into(), json!(4_000_000));
    m.insert(
        "weightlimit".into(),
        json!(crate::chain::check::MAX_BLOCK_WEIGHT),
    );
    m.insert("curtime".into(), json!(t.next.curtime));
    m.insert(
        "bits".into(),
        json!(format!("{:08x}", t.next.bits.to_consensus())),
    );
    m.insert("height".into(), json!(t.next.height));
    if let Some(c) = &t.signet_challenge {
        m.insert("signet_challenge".into(), json!(c.to_lower_hex_string()));
    }
    m.insert(
        "default_witness_commitment".into(),
        json!(t
            .default_witness_commitment
            .as_bytes()
            .to_lower_hex_string()),
    );
    Ok(Value::Object(m))
}

pub(super) fn h_getmininginfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.mining_info()?;
    let mut m = Map::new();
    m.insert("blocks".into(), json!(i.blocks));
    m.insert(
        "bits".into(),
        json!(format!("{:08x}", i.bits.to_consensus())),
    );
    m.insert("difficulty".into(), float_json(i.difficulty));
    m.insert("target".into(), json!(target_hex(i.bits)));
    m.insert("networkhashps".into(), float_json(i.networkhashps));
    m.insert("pooledtx".into(), json!(i.pooledtx));
    // Core's DEFAULT_BLOCK_MIN_TX_FEE, 1 sat/kvB, in BTC/kvB.
    m.insert(
        "blockmintxfee".into(),
        amount_json(bitcoin::Amount::from_sat(
            crate::mempool::select::DEFAULT_BLOCK_MIN_TX_FEE,
        )),
    );
    m.insert("chain".into(), json!(i.chain));
    if let Some(c) = &i.signet_challenge {
        m.insert("signet_challenge".into(), json!(c.to_lower_hex_string()));
    }
    m.insert(
        "next".into(),
        json!({
            "height": i.next.height,
            "bits": format!("{:08x}", i.next.bits.to_consensus()),
            "difficulty": float_json(difficulty_of(i.next.bits)),
            "target": target_hex(i.next.bits),
        }),
    );
    m.insert("warnings".into(), json!([]));
    Ok(Value::Object(m))
}

pub(super) fn h_submitheader(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let header: bitcoin::block::Header = Vec::<u8>::from_hex(a.str(0)?)
        .ok()
        .and_then(|b| deserialize(&b).ok())
        .ok_or_else(|| RpcFailure::deserialization("Block header decode failed"))?;
    d.backend.submit_header(header)?;
    Ok(Value::Null)
}

pub(super) fn h_prioritisetransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let txid: Txid = parse_hash(a.get(0), "txid")?;
    if let Some(dummy) = a.get(1) {
        if dummy.as_f64() != Some(0.0) {
            return Err(RpcFailure::invalid_parameter(
                "Priority is no longer supported, dummy argument to prioritisetransaction must be 0.",
            ));
        }
    }
    let delta = a
        .int(2)?
        .ok_or_else(|| RpcFailure::type_error("Expected type number"))?;
    d.backend.prioritise_transaction(txid, delta)?;
    Ok(json!(true))
}

pub(super) fn h_getprioritisedtransactions(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let mut m = Map::new();
    for (txid, delta, modified) in d.backend.prioritised_transactions()? {
        let mut e = Map::new();
        e.insert("fee_delta".into(), json!(delta));
        e.insert("in_mempool".into(), json!(modified.is_some()));
        if let Some(f) = modified {
            e.insert("modified_fee".into(), json!(f));
        }
        m.insert(txid.to_string(), Value::Object(e));
    }
    Ok(Value::Object(m))
}
