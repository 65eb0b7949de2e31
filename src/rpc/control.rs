//! Control methods (Core's `rpc/server.cpp`, `rpc/node.cpp`): `uptime`,
//! `stop`, and strand's own `getsyncstate`. `help` lives with the method
//! table in [`super::methods`]. Runs on the RPC worker threads.

use serde_json::{json, Value};

use super::backend::*;
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
