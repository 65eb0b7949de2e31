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
