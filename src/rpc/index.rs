//! `getindexinfo` (Core's `rpc/node.cpp`): the optional indexes the node
//! runs, in Core's shape `{"txindex": {"synced": bool,
//! "best_block_height": N}}`. Runs on the RPC worker threads.

use serde_json::{json, Map, Value};

use super::backend::RpcResult;
use super::util::*;

pub(super) fn h_getindexinfo(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let name = a.get(0).and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    for i in d.backend.index_info()? {
        if name.is_empty() || i.name == name {
            out.insert(
                i.name,
                json!({"synced": i.synced, "best_block_height": i.best_block_height}),
            );
        }
    }
    Ok(Value::Object(out))
}
