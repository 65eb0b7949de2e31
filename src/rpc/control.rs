//! Control methods (Core's `rpc/server.cpp`, `rpc/node.cpp`): `uptime`,
//! `stop`, `logging`, `getrpcinfo`, `getmemoryinfo`, `getindexinfo`, and
//! strand's own `getsyncstate`. `help` lives with the method table in
//! [`super::methods`]. Runs on the RPC worker threads.
//!
//! `getmemoryinfo` reports Core's `locked` shape with zeros: strand keeps
//! no secure (mlock'ed) memory pool, having no wallet keys to protect.

use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::RpcFailure;
use super::util::*;

pub(super) fn h_uptime(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.uptime()?))
}

pub(super) fn h_stop(_: &Dispatcher, _: &Args) -> RpcResult<Value> {
    // The server calls `backend.stop()` once this reply is written.
    Ok(json!("strand stopping"))
}

pub(super) fn h_getsyncstate(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    d.backend.sync_state()
}

/// Core's logging categories (`logging.cpp`, the logger's
/// [`crate::logging::CATEGORIES`]), sorted by name as Core lists them.
fn log_category_names() -> Vec<&'static str> {
    let mut v: Vec<_> = crate::logging::CATEGORIES.iter().map(|(c, _)| *c).collect();
    v.sort_unstable();
    v
}

/// Core's `EnableOrDisableLogCategories` argument: category names, with
/// `all`, `1` and the empty string meaning every category.
fn log_categories(v: Option<&Value>) -> RpcResult<Vec<String>> {
    let Some(list) = v else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| {
        RpcFailure::type_error(format!(
            "JSON value of type {} is not of expected type array",
            type_name(list)
        ))
    })?;
    let mut out = Vec::new();
    for c in list {
        let c = c.as_str().ok_or_else(|| {
            RpcFailure::type_error(format!(
                "JSON value of type {} is not of expected type string",
                type_name(c)
            ))
        })?;
        if matches!(c, "" | "1" | "all") {
            out.extend(log_category_names().into_iter().map(str::to_string));
        } else if log_category_names().contains(&c) {
            out.push(c.to_string());
        } else {
            return Err(RpcFailure::invalid_parameter(format!(
                "unknown logging category {c}"
            )));
        }
    }
    Ok(out)
}

pub(super) fn h_logging(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let include = log_categories(a.get(0))?;
    let exclude = log_categories(a.get(1))?;
    let on = d.backend.logging(include, exclude)?;
    let mut m = Map::new();
    for name in log_category_names() {
        m.insert(name.to_string(), json!(on.iter().any(|c| c == name)));
    }
    Ok(Value::Object(m))
}

pub(super) fn h_getrpcinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let active: Vec<Value> = d
        .active
        .snapshot()
        .into_iter()
        .map(|(method, t)| json!({"method": method, "duration": t.as_micros() as u64}))
        .collect();
    Ok(json!({
        "active_commands": active,
        "logpath": d.backend.log_path()?,
    }))
}

pub(super) fn h_getmemoryinfo(_: &Dispatcher, a: &Args) -> RpcResult<Value> {
    match a.opt_str(0).unwrap_or("stats") {
        "stats" => Ok(json!({
            "locked": {
                "used": 0,
                "free": 0,
                "total": 0,
                "locked": 0,
                "chunks_used": 0,
                "chunks_free": 0,
            }
        })),
        "mallocinfo" => Err(RpcFailure::invalid_parameter(
            "mallocinfo mode not available",
        )),
        other => Err(RpcFailure::invalid_parameter(format!(
            "unknown mode {other}"
        ))),
    }
}

pub(super) fn h_getindexinfo(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let wanted = a.opt_str(0);
    let mut m = Map::new();
    for i in d.backend.index_info()? {
        if wanted.is_none_or(|w| w == i.name) {
            m.insert(
                i.name,
                json!({"synced": i.synced, "best_block_height": i.best_block_height}),
            );
        }
    }
    Ok(Value::Object(m))
}
