//! JSON-RPC 1.0/2.0 framing as Bitcoin Core does it (`src/httprpc.cpp`,
//! `src/rpc/request.cpp`): parsing a request body into single or batched
//! calls, shaping replies (`result`/`error`/`id`, `"jsonrpc":"2.0"` for 2.0
//! requests) and choosing the HTTP status. It owns no thread; the RPC worker
//! threads call [`handle_body`] with a closure that executes one call.

use serde_json::{json, Map, Value};
use std::fmt;

/// Bitcoin Core's RPC error codes (`src/rpc/protocol.h`).
pub mod codes {
    /// Standard JSON-RPC: the request object is invalid.
    pub const RPC_INVALID_REQUEST: i32 = -32600;
    /// Standard JSON-RPC: no such method.
    pub const RPC_METHOD_NOT_FOUND: i32 = -32601;
    /// Standard JSON-RPC: invalid parameters.
    pub const RPC_INVALID_PARAMS: i32 = -32602;
    /// Standard JSON-RPC: internal error.
    pub const RPC_INTERNAL_ERROR: i32 = -32603;
    /// Standard JSON-RPC: the body is not JSON.
    pub const RPC_PARSE_ERROR: i32 = -32700;
    /// An error while handling the command (also: help for wrong arity).
    pub const RPC_MISC_ERROR: i32 = -1;
    /// A parameter has the wrong JSON type.
    pub const RPC_TYPE_ERROR: i32 = -3;
    /// Invalid address or key; also "not found".
    pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// Out of memory.
    pub const RPC_OUT_OF_MEMORY: i32 = -7;
    /// Invalid, missing or duplicate parameter.
    pub const RPC_INVALID_PARAMETER: i32 = -8;
    /// Database error.
    pub const RPC_DATABASE_ERROR: i32 = -20;
    /// Raw data (transaction, block) could not be decoded.
    pub const RPC_DESERIALIZATION_ERROR: i32 = -22;
    /// Verification failed.
    pub const RPC_VERIFY_ERROR: i32 = -25;
    /// Rejected by validation or policy.
    pub const RPC_VERIFY_REJECTED: i32 = -26;
    /// The transaction is already in the chain.
    pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// The node is still starting.
    pub const RPC_IN_WARMUP: i32 = -28;
    /// The RPC method is deprecated.
    pub const RPC_METHOD_DEPRECATED: i32 = -32;
    /// The node is not connected to the network.
    pub const RPC_CLIENT_NOT_CONNECTED: i32 = -9;
    /// Still in initial block download.
    pub const RPC_CLIENT_IN_INITIAL_DOWNLOAD: i32 = -10;
    /// The node was already added.
    pub const RPC_CLIENT_NODE_ALREADY_ADDED: i32 = -23;
    /// The node was not added.
    pub const RPC_CLIENT_NODE_NOT_ADDED: i32 = -24;
    /// The node is not connected.
    pub const RPC_CLIENT_NODE_NOT_CONNECTED: i32 = -29;
    /// Invalid IP or subnet.
    pub const RPC_CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
    /// No P2P functionality.
    pub const RPC_CLIENT_P2P_DISABLED: i32 = -31;
}

/// An RPC-level error: Core's `{"code": N, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcFailure {
    /// One of [`codes`].
    pub code: i32,
    /// Human-readable message (Core's wording where Core has one).
    pub message: String,
}

impl RpcFailure {
    /// A failure with this code and message.
    pub fn new(code: i32, message: impl Into<String>) -> RpcFailure {
        RpcFailure {
            code,
            message: message.into(),
        }
    }

    /// `RPC_MISC_ERROR` (-1).
    pub fn misc(message: impl Into<String>) -> RpcFailure {
        RpcFailure::new(codes::RPC_MISC_ERROR, message)
    }

    /// `RPC_INVALID_PARAMETER` (-8).
    pub fn invalid_parameter(message: impl Into<String>) -> RpcFailure {
        RpcFailure::new(codes::RPC_INVALID_PARAMETER, message)
    }

    /// `RPC_INVALID_ADDRESS_OR_KEY` (-5), also used for "not found".
    pub fn not_found(message: impl Into<String>) -> RpcFailure {
        RpcFailure::new(codes::RPC_INVALID_ADDRESS_OR_KEY, message)
    }

    /// `RPC_DESERIALIZATION_ERROR` (-22).
    pub fn deserialization(message: impl Into<String>) -> RpcFailure {
        RpcFailure::new(codes::RPC_DESERIALIZATION_ERROR, message)
    }

    /// `RPC_TYPE_ERROR` (-3).
    pub fn type_error(message: impl Into<String>) -> RpcFailure {
        RpcFailure::new(codes::RPC_TYPE_ERROR, message)
    }

    /// The JSON error object.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl fmt::Display for RpcFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcFailure {}

/// JSON-RPC version of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// No `jsonrpc` field, or `"1.0"`: replies carry both `result` and
    /// `error`; a failed single request gets an HTTP error status.
    Legacy,
    /// `"jsonrpc": "2.0"`: replies carry one of `result`/`error`, HTTP 200.
    V2,
}

/// One parsed call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The `id`, if present.
    pub id: Option<Value>,
    /// The protocol version.
    pub version: Version,
    /// The method name.
    pub method: String,
    /// An array or object (missing `params` becomes `[]`).
    pub params: Value,
}

impl Call {
    /// A 2.0 request without `id`: executed, never answered.
    pub fn is_notification(&self) -> bool {
        self.id.is_none() && self.version == Version::V2
    }
}

/// Parses one request object. On failure returns the error with the `id`
/// and version found so far (Core parses `id` first so errors carry it).
pub fn parse_call(v: &Value) -> Result<Call, (RpcFailure, Option<Value>, Version)> {
    let invalid = |m: &str, id: Option<Value>, ver| {
        Err((RpcFailure::new(codes::RPC_INVALID_REQUEST, m), id, ver))
    };
    let Some(obj) = v.as_object() else {
        return invalid("Invalid Request object", None, Version::Legacy);
    };
    let id = obj.get("id").cloned();
    let version = match obj.get("jsonrpc") {
        None | Some(Value::Null) => Version::Legacy,
        Some(Value::String(s)) if s == "1.0" => Version::Legacy,
        Some(Value::String(s)) if s == "2.0" => Version::V2,
        Some(Value::String(_)) => {
            return invalid("JSON-RPC version not supported", id, Version::Legacy)
        }
        Some(_) => return invalid("jsonrpc field must be a string", id, Version::Legacy),
    };
    let method = match obj.get("method") {
        None | Some(Value::Null) => return invalid("Missing method", id, version),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return invalid("Method must be a string", id, version),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => return invalid("Params must be an array or object", id, version),
    };
    Ok(Call {
        id,
        version,
        method,
        params,
    })
}

/// Core's `JSONRPCReplyObj`.
pub fn reply_obj(
    result: Value,
    error: Option<Value>,
    id: Option<Value>,
    version: Version,
) -> Value {
    let mut m = Map::new();
    if version == Version::V2 {
        m.insert("jsonrpc".into(), json!("2.0"));
    }
    match (version, error) {
        (Version::Legacy, e) => {
            m.insert("result".into(), result);
            m.insert("error".into(), e.unwrap_or(Value::Null));
        }
        (Version::V2, Some(e)) => {
            m.insert("error".into(), e);
        }
        (Version::V2, None) => {
            m.insert("result".into(), result);
        }
    }
    if let Some(id) = id {
        m.insert("id".into(), id);
    }
    Value::Object(m)
}

/// HTTP status for a failed legacy single request (Core's `JSONErrorReply`).
pub fn error_status(code: i32) -> u16 {
    match code {
        codes::RPC_INVALID_REQUEST => 400,
        codes::RPC_METHOD_NOT_FOUND => 404,
        _ => 500,
    }
}

/// What to send back for one body: `None` means 204 No Content.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON text with a trailing newline, or `None` for 204.
    pub body: Option<String>,
}

fn reply(status: u16, v: &Value) -> Reply {
    Reply {
        status,
        body: Some(format!("{v}\n")),
    }
}

/// Handles one HTTP body: parses it, runs each call through `exec`
/// (`method`, `params`) and builds the reply.
pub fn handle_body(body: &[u8], exec: &dyn Fn(&str, &Value) -> Result<Value, RpcFailure>) -> Reply {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let e = RpcFailure::new(codes::RPC_PARSE_ERROR, "Parse error");
            return reply(
                error_status(e.code),
                &reply_obj(Value::Null, Some(e.to_json()), None, Version::Legacy),
            );
        }
    };
    match parsed {
        Value::Object(_) => match parse_call(&parsed) {
            Err((e, id, version)) => reply(
                error_status(e.code),
                &reply_obj(Value::Null, Some(e.to_json()), id, version),
            ),
            Ok(call) => {
                let outcome = exec(&call.method, &call.params);
                if call.is_notification() {
                    return Reply {
                        status: 204,
                        body: None,
                    };
                }
                match outcome {
                    Ok(result) => reply(200, &reply_obj(result, None, call.id, call.version)),
                    Err(e) => {
                        // Legacy: HTTP error status; 2.0: errors inside HTTP 200.
                        let status = match call.version {
                            Version::Legacy => error_status(e.code),
                            Version::V2 => 200,
                        };
                        reply(
                            status,
                            &reply_obj(Value::Null, Some(e.to_json()), call.id, call.version),
                        )
                    }
                }
            }
        },
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in &items {
                match parse_call(item) {
                    Err((e, id, version)) => {
                        out.push(reply_obj(Value::Null, Some(e.to_json()), id, version))
                    }
                    Ok(call) => {
                        let outcome = exec(&call.method, &call.params);
                        if call.is_notification() {
                            continue;
                        }
                        out.push(match outcome {
                            Ok(r) => reply_obj(r, None, call.id, call.version),
                            Err(e) => {
                                reply_obj(Value::Null, Some(e.to_json()), call.id, call.version)
                            }
                        });
                    }
                }
            }
            if out.is_empty() && !items.is_empty() {
                return Reply {
                    status: 204,
                    body: None,
                };
            }
            reply(200, &Value::Array(out))
        }
        _ => {
            let e = RpcFailure::new(codes::RPC_PARSE_ERROR, "Top-level object parse error");
            reply(
                error_status(e.code),
                &reply_obj(Value::Null, Some(e.to_json()), None, Version::Legacy),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(method: &str, params: &Value) -> Result<Value, RpcFailure> {
        match method {
            "echo" => Ok(params.clone()),
            "fail" => Err(RpcFailure::invalid_parameter("bad")),
            _ => Err(RpcFailure::new(
                codes::RPC_METHOD_NOT_FOUND,
                "Method not found",
            )),
        }
    }

    fn run(body: &str) -> (u16, Option<Value>) {
        let r = handle_body(body.as_bytes(), &echo);
        (r.status, r.body.map(|b| serde_json::from_str(&b).unwrap()))
    }

    #[test]
    fn shapes_and_statuses() {
        let (s, v) = run(r#"{"method":"echo","params":[1],"id":7}"#);
        assert_eq!(s, 200);
        assert_eq!(v.unwrap(), json!({"result":[1],"error":null,"id":7}));
        let (s, v) = run(r#"{"jsonrpc":"2.0","method":"echo","id":"a"}"#);
        assert_eq!(s, 200);
        assert_eq!(v.unwrap(), json!({"jsonrpc":"2.0","result":[],"id":"a"}));
        let (s, v) = run(r#"{"method":"nope","id":1}"#);
        assert_eq!(s, 404);
        assert_eq!(v.unwrap()["error"]["code"], -32601);
        let (s, _) = run(r#"{"method":"fail","id":1}"#);
        assert_eq!(s, 500);
        let (s, v) = run(r#"{"jsonrpc":"2.0","method":"fail","id":1}"#);
        assert_eq!(s, 200);
        assert_eq!(
            v.unwrap(),
            json!({"jsonrpc":"2.0","error":{"code":-8,"message":"bad"},"id":1})
        );
        let (s, v) = run(r#"{"jsonrpc":"2.0","method":"echo"}"#);
        assert_eq!((s, v), (204, None));
        let (s, v) = run("{nope");
        assert_eq!(s, 500);
        assert_eq!(v.unwrap()["error"]["code"], -32700);
        let (s, v) = run(r#"{"id":3,"method":5}"#);
        assert_eq!(s, 400);
        let v = v.unwrap();
        assert_eq!(v["error"]["message"], "Method must be a string");
        assert_eq!(v["id"], 3);
        let (s, v) = run(r#"{"jsonrpc":"3.0","method":"echo","id":1}"#);
        assert_eq!(s, 400);
        assert_eq!(
            v.unwrap()["error"]["message"],
            "JSON-RPC version not supported"
        );
        let (s, v) = run(r#"{"method":"echo","params":3,"id":1}"#);
        assert_eq!(s, 400);
        assert_eq!(v.unwrap()["error"]["code"], -32600);
        let (s, v) = run("17");
        assert_eq!(s, 500);
        assert_eq!(
            v.unwrap()["error"]["message"],
            "Top-level object parse error"
        );
    }

    #[test]
    fn batches() {
        let (s, v) = run(r#"[{"method":"echo","params":[1],"id":1},
                {"jsonrpc":"2.0","method":"nope","id":2},
                {"jsonrpc":"2.0","method":"echo"},
                5]"#);
        assert_eq!(s, 200);
        let v = v.unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 3, "the notification gets no entry");
        assert_eq!(a[0], json!({"result":[1],"error":null,"id":1}));
        assert_eq!(a[1]["error"]["code"], -32601);
        assert_eq!(a[2]["error"]["message"], "Invalid Request object");
        assert_eq!(run("[]"), (200, Some(json!([]))));
        assert_eq!(run(r#"[{"jsonrpc":"2.0","method":"echo"}]"#), (204, None));
    }
}
