//! Fee estimation methods (Core's `rpc/fees.cpp`): `estimatesmartfee` and
//! `estimaterawfee`, over the mempool's fee estimator
//! ([`crate::mempool::fees`], one horizon: Core's "medium"). Runs on the
//! RPC worker threads.

use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::RpcFailure;
use super::util::*;
use crate::mempool::fees::{BucketRange, MAX_CONF_TARGET, MAX_TRACKED_TARGET, MED_DECAY};

/// Core's `ParseConfirmTarget`: 1..=1008 or -8.
fn conf_target(a: &Args) -> RpcResult<u32> {
    let t = a
        .int(0)?
        .ok_or_else(|| RpcFailure::type_error("Expected type number"))?;
    u32::try_from(t)
        .ok()
        .filter(|t| (1..=MAX_CONF_TARGET).contains(t))
        .ok_or_else(|| {
            RpcFailure::invalid_parameter(format!(
                "Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}"
            ))
        })
}

fn fee_per_kvb(sat_per_kvb: f64) -> Value {
    // BTC/kvB with 8 decimals, as Core's ValueFromAmount.
    amount_json(bitcoin::Amount::from_sat(
        sat_per_kvb.round().max(0.0) as u64
    ))
}

pub(super) fn h_estimatesmartfee(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let target = conf_target(a)?;
    match a.opt_str(1).map(str::to_ascii_lowercase).as_deref() {
        None | Some("unset") | Some("economical") | Some("conservative") => {}
        Some(_) => {
            return Err(RpcFailure::invalid_parameter(
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ))
        }
    }
    let (rate, blocks) = d.backend.estimate_smart_fee(target)?;
    let mut m = Map::new();
    match rate {
        Some(r) => {
            m.insert("feerate".into(), amount_json(r));
        }
        None => {
            m.insert(
                "errors".into(),
                json!(["Insufficient data or no feerate found"]),
            );
        }
    }
    m.insert("blocks".into(), json!(blocks));
    Ok(Value::Object(m))
}

fn range_json(r: &BucketRange) -> Value {
    json!({
        "startrange": r.start.round(),
        "endrange": r.end.round(),
        "withintarget": float_json((r.within_target * 100.0).round() / 100.0),
        "totalconfirmed": float_json((r.total_confirmed * 100.0).round() / 100.0),
        "inmempool": float_json((r.in_mempool * 100.0).round() / 100.0),
        "leftmempool": float_json((r.left_mempool * 100.0).round() / 100.0),
    })
}

pub(super) fn h_estimaterawfee(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let target = conf_target(a)?;
    let threshold = match a.get(1) {
        None => 0.95,
        Some(v) => v
            .as_f64()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| RpcFailure::invalid_parameter("Invalid threshold"))?,
    };
    let mut out = Map::new();
    // Only the horizon strand keeps; Core leaves out horizons that do not
    // track the target.
    if target <= MAX_TRACKED_TARGET {
        let r = d.backend.estimate_raw_fee(target, threshold)?;
        let mut m = Map::new();
        if let Some(f) = r.feerate {
            m.insert("feerate".into(), fee_per_kvb(f.0 as f64));
        }
        m.insert("decay".into(), json!(MED_DECAY));
        m.insert("scale".into(), json!(1));
        if let Some(p) = &r.pass {
            m.insert("pass".into(), range_json(p));
        }
        if let Some(f) = &r.fail {
            m.insert("fail".into(), range_json(f));
        }
        if r.feerate.is_none() {
            m.insert(
                "errors".into(),
                json!(["Insufficient data or no feerate found which meets threshold"]),
            );
        }
        out.insert("medium".into(), Value::Object(m));
    }
    Ok(Value::Object(out))
}
