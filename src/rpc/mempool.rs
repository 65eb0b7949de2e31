//! Mempool methods (Core's `rpc/mempool.cpp`): `getrawmempool`,
//! `getmempoolinfo`, `getmempoolentry`, `sendrawtransaction` and
//! `testmempoolaccept` (with Core's `maxfeerate`). Runs on the RPC worker
//! threads.

use bitcoin::{Amount, Txid};
use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::RpcFailure;
use super::util::*;

pub(super) fn mempool_entry_json(e: &MempoolEntry) -> Value {
    json!({
        "vsize": e.vsize,
        "weight": e.weight,
        "time": e.time,
        "height": e.height,
        "descendantcount": e.descendantcount,
        "descendantsize": e.descendantsize,
        "ancestorcount": e.ancestorcount,
        "ancestorsize": e.ancestorsize,
        "wtxid": e.wtxid.to_string(),
        "fees": {
            "base": amount_json(e.fee_base),
            "modified": amount_json(e.fee_modified),
            "ancestor": amount_json(e.fee_ancestor),
            "descendant": amount_json(e.fee_descendant),
        },
        "depends": e.depends.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "spentby": e.spentby.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "bip125-replaceable": e.bip125_replaceable,
        "unbroadcast": e.unbroadcast,
    })
}

pub(super) fn h_getrawmempool(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    if a.bool_or(0, false) {
        let mut m = Map::new();
        for (txid, e) in d.backend.raw_mempool_verbose()? {
            m.insert(txid.to_string(), mempool_entry_json(&e));
        }
        Ok(Value::Object(m))
    } else {
        Ok(json!(d
            .backend
            .raw_mempool()?
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()))
    }
}

pub(super) fn h_getmempoolinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.mempool_info()?;
    Ok(json!({
        "loaded": i.loaded,
        "size": i.size,
        "bytes": i.bytes,
        "usage": i.usage,
        "total_fee": amount_json(i.total_fee),
        "maxmempool": i.maxmempool,
        "mempoolminfee": amount_json(i.mempoolminfee),
        "minrelaytxfee": amount_json(i.minrelaytxfee),
        "incrementalrelayfee": amount_json(i.incrementalrelayfee),
        "unbroadcastcount": i.unbroadcastcount,
        "fullrbf": i.fullrbf,
    }))
}

pub(super) fn h_getmempoolentry(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let txid: Txid = parse_hash(a.get(0), "parameter 1")?;
    match d.backend.mempool_entry(txid)? {
        Some(e) => Ok(mempool_entry_json(&e)),
        None => Err(RpcFailure::not_found("Transaction not in mempool")),
    }
}

/// `maxfeerate`: Core's default 0.10 BTC/kvB; 1 BTC/kvB or more refused.
pub(super) fn max_fee_rate(a: &Args, i: usize) -> RpcResult<Amount> {
    let rate = match a.get(i) {
        None => Amount::from_sat(10_000_000),
        Some(v) => parse_amount(v)?,
    };
    if rate >= Amount::ONE_BTC {
        return Err(RpcFailure::invalid_parameter(
            "Fee rates larger than or equal to 1BTC/kvB are not accepted",
        ));
    }
    Ok(rate)
}

pub(super) fn h_sendrawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let tx = decode_tx(a.str(0)?).ok_or_else(|| RpcFailure::deserialization(TX_DECODE_FAILED))?;
    let rate = max_fee_rate(a, 1)?;
    Ok(json!(d.backend.send_raw_transaction(tx, rate)?.to_string()))
}

pub(super) fn h_testmempoolaccept(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let raw = a
        .get(0)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.is_empty() || raw.len() > 25 {
        return Err(RpcFailure::invalid_parameter(
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    let rate = max_fee_rate(a, 1)?;
    let mut txs = Vec::with_capacity(raw.len());
    for r in &raw {
        let s = r.as_str().ok_or_else(|| {
            RpcFailure::type_error(format!(
                "JSON value of type {} is not of expected type string",
                type_name(r)
            ))
        })?;
        txs.push(decode_tx(s).ok_or_else(|| {
            RpcFailure::deserialization(format!(
                "TX decode failed: {s} Make sure the tx has at least one input."
            ))
        })?);
    }
    let results = d.backend.test_mempool_accept(txs, rate)?;
    Ok(Value::Array(
        results
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("txid".into(), json!(r.txid.to_string()));
                m.insert("wtxid".into(), json!(r.wtxid.to_string()));
                m.insert("allowed".into(), json!(r.allowed));
                if let Some(v) = r.vsize {
                    m.insert("vsize".into(), json!(v));
                }
                if let Some(f) = r.fee {
                    m.insert("fees".into(), json!({"base": amount_json(f)}));
                }
                if let Some(reason) = &r.reject_reason {
                    m.insert("reject-reason".into(), json!(reason));
                }
                Value::Object(m)
            })
            .collect(),
    ))
}

pub(super) fn h_savemempool(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let path = d.backend.save_mempool()?;
    Ok(json!({ "filename": path.display().to_string() }))
}
