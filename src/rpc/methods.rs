//! The method table: for each RPC its arguments (names, JSON types,
//! defaults, help), parameter checking with Bitcoin Core's errors (arity
//! → `-1` with the help text, wrong JSON type → `-3 Wrong type passed`,
//! named parameters → positions), decoding of hashes, hex blocks and
//! transactions, addresses and `addr()`/`raw()` descriptors, the call into
//! [`RpcBackend`], and the conversion of typed results into Core's JSON
//! shapes (field names and order, amounts with 8 decimals, script `asm`).
//! It owns no thread: the RPC worker threads call [`Dispatcher::execute`].

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::script::Instruction;
use bitcoin::{Address, Amount, Block, BlockHash, Script, ScriptBuf, Transaction, TxOut, Txid};
use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::{codes, RpcFailure};
use crate::netaddr::SubNet;

/// The JSON type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// A string.
    Str,
    /// A hex string.
    Hex,
    /// A number.
    Num,
    /// A boolean.
    Bool,
    /// A number or a string holding an amount (checked when parsed).
    Amount,
    /// An array.
    Arr,
    /// A number or a boolean (verbosity).
    NumOrBool,
}

impl Ty {
    fn expected(self) -> &'static str {
        match self {
            Ty::Str | Ty::Hex => "string",
            Ty::Num | Ty::NumOrBool | Ty::Amount => "number",
            Ty::Bool => "bool",
            Ty::Arr => "array",
        }
    }

    fn help_name(self) -> &'static str {
        match self {
            Ty::Str | Ty::Hex => "string",
            Ty::Num => "numeric",
            Ty::Bool => "boolean",
            Ty::Amount => "numeric or string",
            Ty::Arr => "json array",
            Ty::NumOrBool => "numeric",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str | Ty::Hex => v.is_string(),
            Ty::Num => v.is_number(),
            Ty::Bool => v.is_boolean(),
            Ty::Amount => true,
            Ty::Arr => v.is_array(),
            Ty::NumOrBool => v.is_number() || v.is_boolean(),
        }
    }
}

/// Core's `uvTypeName`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One argument of a method.
struct Arg {
    name: &'static str,
    ty: Ty,
    /// `None`: required. `Some(d)`: optional, default `d` ("" = none shown).
    default: Option<&'static str>,
    desc: &'static str,
}

const fn req(name: &'static str, ty: Ty, desc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        default: None,
        desc,
    }
}

const fn opt(name: &'static str, ty: Ty, default: &'static str, desc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        default: Some(default),
        desc,
    }
}

type Handler = fn(&Dispatcher, &Args) -> RpcResult<Value>;

/// One RPC method.
struct Method {
    name: &'static str,
    category: &'static str,
    args: &'static [Arg],
    desc: &'static str,
    result: &'static str,
    handler: Handler,
}

const HASH: &str = "The block hash";

static METHODS: &[Method] = &[
    // == Blockchain ==
    Method {
        name: "getbestblockhash",
        category: "blockchain",
        args: &[],
        desc: "Returns the hash of the best (tip) block in the most-work fully-validated chain.",
        result: "\"hex\"    (string) the block hash, hex-encoded",
        handler: h_getbestblockhash,
    },
    Method {
        name: "getblock",
        category: "blockchain",
        args: &[
            req("blockhash", Ty::Hex, HASH),
            opt("verbosity", Ty::NumOrBool, "1", "0 for hex-encoded data, 1 for a JSON object, 2 for JSON object with transaction data, and 3 for JSON object with transaction data including prevout information for inputs"),
        ],
        desc: "If verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.\nIf verbosity is 1, returns an Object with information about block <hash>.\nIf verbosity is 2, returns an Object with information about block <hash> and information about each transaction.\nIf verbosity is 3, returns an Object with information about block <hash> and information about each transaction, including prevout information for inputs (only for unpruned blocks in the current best chain).",
        result: "(string or json object) the block",
        handler: h_getblock,
    },
    Method {
        name: "getblockchaininfo",
        category: "blockchain",
        args: &[],
        desc: "Returns an object containing various state info regarding blockchain processing.",
        result: "{ \"chain\", \"blocks\", \"headers\", \"bestblockhash\", \"difficulty\", \"time\", \"mediantime\", \"verificationprogress\", \"initialblockdownload\", \"chainwork\", \"size_on_disk\", \"pruned\", \"warnings\" }",
        handler: h_getblockchaininfo,
    },
    Method {
        name: "getblockcount",
        category: "blockchain",
        args: &[],
        desc: "Returns the height of the most-work fully-validated chain.\nThe genesis block has height 0.",
        result: "n    (numeric) The current block count",
        handler: h_getblockcount,
    },
    Method {
        name: "getblockhash",
        category: "blockchain",
        args: &[req("height", Ty::Num, "The height index")],
        desc: "Returns hash of block in best-block-chain at height provided.",
        result: "\"hex\"    (string) The block hash",
        handler: h_getblockhash,
    },
    Method {
        name: "getblockheader",
        category: "blockchain",
        args: &[
            req("blockhash", Ty::Hex, HASH),
            opt("verbose", Ty::Bool, "true", "true for a json object, false for the hex-encoded data"),
        ],
        desc: "If verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.\nIf verbose is true, returns an Object with information about blockheader <hash>.",
        result: "(json object or string) the header",
        handler: h_getblockheader,
    },
    Method {
        name: "getchaintips",
        category: "blockchain",
        args: &[],
        desc: "Return information about all known tips in the block tree, including the main chain as well as orphaned branches.",
        result: "[ { \"height\", \"hash\", \"branchlen\", \"status\" }, ... ]",
        handler: h_getchaintips,
    },
    Method {
        name: "getdifficulty",
        category: "blockchain",
        args: &[],
        desc: "Returns the proof-of-work difficulty as a multiple of the minimum difficulty.",
        result: "n    (numeric) the proof-of-work difficulty as a multiple of the minimum difficulty.",
        handler: h_getdifficulty,
    },
    Method {
        name: "getmempoolentry",
        category: "blockchain",
        args: &[req("txid", Ty::Hex, "The transaction id (must be in mempool)")],
        desc: "Returns mempool data for given transaction",
        result: "{ \"vsize\", \"weight\", \"time\", \"height\", \"descendantcount\", ..., \"fees\": {...}, \"depends\", \"spentby\", \"bip125-replaceable\", \"unbroadcast\" }",
        handler: h_getmempoolentry,
    },
    Method {
        name: "getmempoolinfo",
        category: "blockchain",
        args: &[],
        desc: "Returns details on the active state of the TX memory pool.",
        result: "{ \"loaded\", \"size\", \"bytes\", \"usage\", \"total_fee\", \"maxmempool\", \"mempoolminfee\", \"minrelaytxfee\", \"incrementalrelayfee\", \"unbroadcastcount\", \"fullrbf\" }",
        handler: h_getmempoolinfo,
    },
    Method {
        name: "getrawmempool",
        category: "blockchain",
        args: &[opt("verbose", Ty::Bool, "false", "True for a json object, false for array of transaction ids")],
        desc: "Returns all transaction ids in memory pool as a json array of string transaction ids.",
        result: "[\"hex\", ...] or { \"txid\": {...}, ... }",
        handler: h_getrawmempool,
    },
    Method {
        name: "gettxout",
        category: "blockchain",
        args: &[
            req("txid", Ty::Hex, "The transaction id"),
            req("n", Ty::Num, "vout number"),
            opt("include_mempool", Ty::Bool, "true", "Whether to include the mempool. Note that an unspent output that is spent in the mempool won't appear."),
        ],
        desc: "Returns details about an unspent transaction output.",
        result: "null or { \"bestblock\", \"confirmations\", \"value\", \"scriptPubKey\": {...}, \"coinbase\" }",
        handler: h_gettxout,
    },
    Method {
        name: "invalidateblock",
        category: "blockchain",
        args: &[req("blockhash", Ty::Hex, "the hash of the block to mark as invalid")],
        desc: "Permanently marks a block as invalid, as if it violated a consensus rule.",
        result: "null",
        handler: h_invalidateblock,
    },
    Method {
        name: "reconsiderblock",
        category: "blockchain",
        args: &[req("blockhash", Ty::Hex, "the hash of the block to reconsider")],
        desc: "Removes invalidity status of a block, its ancestors and its descendants, reconsider them for activation.\nThis can be used to undo the effects of invalidateblock.",
        result: "null",
        handler: h_reconsiderblock,
    },
    // == Control ==
    Method {
        name: "help",
        category: "control",
        args: &[opt("command", Ty::Str, "all commands", "The command to get help on")],
        desc: "List all commands, or get help for a specified command.",
        result: "\"str\"    (string) The help text",
        handler: h_help,
    },
    Method {
        name: "stop",
        category: "control",
        args: &[],
        desc: "Request a graceful shutdown of strand.",
        result: "\"str\"    (string) A string with the content 'strand stopping'",
        handler: h_stop,
    },
    Method {
        name: "uptime",
        category: "control",
        args: &[],
        desc: "Returns the total uptime of the server.",
        result: "ttt    (numeric) The number of seconds that the server has been running",
        handler: h_uptime,
    },
    // == Generating ==
    Method {
        name: "generateblock",
        category: "generating",
        args: &[
            req("output", Ty::Str, "The address or descriptor to send the newly generated bitcoin to."),
            req("transactions", Ty::Arr, "An array of hex strings which are either txids or raw transactions.\nTxids must reference transactions currently in the mempool.\nAll transactions must be valid and in valid order, otherwise the block will be rejected."),
            opt("submit", Ty::Bool, "true", "Whether to submit the block before the RPC call returns or to return it as hex."),
        ],
        desc: "Mine a set of ordered transactions to a specified address or descriptor and return the block hash.",
        result: "{ \"hash\", \"hex\" (if submit=false) }",
        handler: h_generateblock,
    },
    Method {
        name: "generatetoaddress",
        category: "generating",
        args: &[
            req("nblocks", Ty::Num, "How many blocks are generated."),
            req("address", Ty::Str, "The address to send the newly generated bitcoin to."),
            opt("maxtries", Ty::Num, "1000000", "How many iterations to try."),
        ],
        desc: "Mine to a specified address and return the block hashes.",
        result: "[\"hex\", ...]    hashes of blocks generated",
        handler: h_generatetoaddress,
    },
    Method {
        name: "generatetodescriptor",
        category: "generating",
        args: &[
            req("num_blocks", Ty::Num, "How many blocks are generated."),
            req("descriptor", Ty::Str, "The descriptor to send the newly generated bitcoin to (strand: addr(...) or raw(...))."),
            opt("maxtries", Ty::Num, "1000000", "How many iterations to try."),
        ],
        desc: "Mine to a specified descriptor and return the block hashes.",
        result: "[\"hex\", ...]    hashes of blocks generated",
        handler: h_generatetodescriptor,
    },
    // == Mining ==
    Method {
        name: "submitblock",
        category: "mining",
        args: &[
            req("hexdata", Ty::Hex, "the hex-encoded block data to submit"),
            opt("dummy", Ty::Str, "ignored", "dummy value, for compatibility with BIP22. This value is ignored."),
        ],
        desc: "Attempts to submit new block to network.",
        result: "null or \"str\" (the reject reason)",
        handler: h_submitblock,
    },
    // == Network ==
    Method {
        name: "addnode",
        category: "network",
        args: &[
            req("node", Ty::Str, "The address of the peer to connect to"),
            req("command", Ty::Str, "'add' to add a node to the list, 'remove' to remove a node from the list, 'onetry' to try a connection to the node once"),
        ],
        desc: "Attempts to add or remove a node from the addnode list.\nOr try a connection to a node once.",
        result: "null",
        handler: h_addnode,
    },
    Method {
        name: "disconnectnode",
        category: "network",
        args: &[
            opt("address", Ty::Str, "fallback to nodeid", "The IP address/port of the node"),
            opt("nodeid", Ty::Num, "fallback to address", "The node ID (see getpeerinfo for node IDs)"),
        ],
        desc: "Immediately disconnects from the specified peer node.\n\nStrictly one out of 'address' and 'nodeid' can be provided to identify the node.",
        result: "null",
        handler: h_disconnectnode,
    },
    Method {
        name: "getconnectioncount",
        category: "network",
        args: &[],
        desc: "Returns the number of connections to other nodes.",
        result: "n    (numeric) The connection count",
        handler: h_getconnectioncount,
    },
    Method {
        name: "getnetworkinfo",
        category: "network",
        args: &[],
        desc: "Returns an object containing various state info regarding P2P networking.",
        result: "{ \"version\", \"subversion\", \"protocolversion\", \"localservices\", \"localservicesnames\", \"localrelay\", \"timeoffset\", \"networkactive\", \"connections\", \"connections_in\", \"connections_out\", \"networks\", \"relayfee\", \"incrementalfee\", \"localaddresses\", \"warnings\" }",
        handler: h_getnetworkinfo,
    },
    Method {
        name: "getpeerinfo",
        category: "network",
        args: &[],
        desc: "Returns data about each connected network peer as a json array of objects.",
        result: "[ { \"id\", \"addr\", ... }, ... ]",
        handler: h_getpeerinfo,
    },
    Method {
        name: "listbanned",
        category: "network",
        args: &[],
        desc: "List all manually banned IPs/Subnets.",
        result: "[ { \"address\", \"ban_created\", \"banned_until\", \"ban_duration\", \"time_remaining\" }, ... ]",
        handler: h_listbanned,
    },
    Method {
        name: "setban",
        category: "network",
        args: &[
            req("subnet", Ty::Str, "The IP/Subnet (see getpeerinfo for nodes IP) with an optional netmask (default is /32 = single IP)"),
            req("command", Ty::Str, "'add' to add an IP/Subnet to the list, 'remove' to remove an IP/Subnet from the list"),
            opt("bantime", Ty::Num, "0", "time in seconds how long (or until when if [absolute] is set) the IP is banned (0 or empty means using the default time of 24h which can also be overwritten by the -bantime startup argument)"),
            opt("absolute", Ty::Bool, "false", "If set, the bantime must be an absolute timestamp expressed in UNIX epoch time"),
        ],
        desc: "Attempts to add or remove an IP/Subnet from the banned list.",
        result: "null",
        handler: h_setban,
    },
    // == Rawtransactions ==
    Method {
        name: "getrawtransaction",
        category: "rawtransactions",
        args: &[
            req("txid", Ty::Hex, "The transaction id"),
            opt("verbosity", Ty::NumOrBool, "0", "0 for hex-encoded data, 1 for a JSON object"),
            opt("blockhash", Ty::Hex, "", "The block in which to look for the transaction"),
        ],
        desc: "By default, this call only returns a transaction if it is in the mempool. strand looks in the chain when it can.\nIf verbosity is 0 returns a string that is serialized, hex-encoded data for 'txid'.\nIf verbosity is 1 returns a JSON Object with information about 'txid'.",
        result: "\"str\" or { \"in_active_chain\", \"txid\", \"hash\", ..., \"hex\", \"blockhash\", \"confirmations\", \"time\", \"blocktime\" }",
        handler: h_getrawtransaction,
    },
    Method {
        name: "sendrawtransaction",
        category: "rawtransactions",
        args: &[
            req("hexstring", Ty::Hex, "The hex string of the raw transaction"),
            opt("maxfeerate", Ty::Amount, "0.10", "Reject transactions whose fee rate is higher than the specified value, expressed in BTC/kvB.\nSet to 0 to accept any fee rate."),
        ],
        desc: "Submit a raw transaction (serialized, hex-encoded) to local node and network.",
        result: "\"hex\"    (string) The transaction hash in hex",
        handler: h_sendrawtransaction,
    },
    Method {
        name: "testmempoolaccept",
        category: "rawtransactions",
        args: &[
            req("rawtxs", Ty::Arr, "An array of hex strings of raw transactions."),
            opt("maxfeerate", Ty::Amount, "0.10", "Reject transactions whose fee rate is higher than the specified value, expressed in BTC/kvB"),
        ],
        desc: "Returns result of mempool acceptance tests indicating if raw transaction(s) (serialized, hex-encoded) would be accepted by mempool.",
        result: "[ { \"txid\", \"wtxid\", \"allowed\", \"vsize\", \"fees\": { \"base\" }, \"reject-reason\" }, ... ]",
        handler: h_testmempoolaccept,
    },
    // == Strand ==
    Method {
        name: "getsyncstate",
        category: "strand",
        args: &[],
        desc: "Returns strand's sync-manager view: sync peer, candidates, anomaly counters.",
        result: "{ ... }",
        handler: h_getsyncstate,
    },
];

fn find_method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Names of every method, sorted.
pub fn method_names() -> Vec<&'static str> {
    let mut v: Vec<_> = METHODS.iter().map(|m| m.name).collect();
    v.sort_unstable();
    v
}

/// Which parameter a command-line argument is for (`strand cli`).
#[derive(Debug, Clone, Copy)]
pub enum ParamRef<'a> {
    /// By position (0-based).
    Index(usize),
    /// By name (`-named`).
    Name(&'a str),
}

/// Whether parameter `param` of `method` is string-typed (the CLI then
/// passes the argument as a string without trying JSON).
pub fn arg_is_string(method: &str, param: ParamRef<'_>) -> bool {
    let Some(m) = find_method(method) else {
        return false;
    };
    let arg = match param {
        ParamRef::Index(i) => m.args.get(i),
        ParamRef::Name(n) => m.args.iter().find(|a| a.name == n),
    };
    arg.is_some_and(|a| matches!(a.ty, Ty::Str | Ty::Hex))
}

fn usage(m: &Method) -> String {
    let mut s = m.name.to_string();
    let mut in_optional = false;
    for a in m.args {
        if a.default.is_some() && !in_optional {
            s.push_str(" (");
            in_optional = true;
        }
        s.push(' ');
        match a.ty {
            Ty::Str | Ty::Hex => {
                let _ = write!(s, "\"{}\"", a.name);
            }
            Ty::Arr => {
                let _ = write!(s, "[\"{}\",...]", a.name);
            }
            _ => s.push_str(a.name),
        }
    }
    if in_optional {
        s.push_str(" )");
    }
    s
}

/// Core-style help text for one method.
fn help_text(m: &Method) -> String {
    let mut s = format!("{}\n\n{}\n", usage(m), m.desc);
    if !m.args.is_empty() {
        s.push_str("\nArguments:\n");
        for (i, a) in m.args.iter().enumerate() {
            let status = match a.default {
                None => "required".to_string(),
                Some("") => "optional".to_string(),
                Some(d) => format!("optional, default={d}"),
            };
            let _ = writeln!(
                s,
                "{}. {:<20} ({}, {}) {}",
                i + 1,
                a.name,
                a.ty.help_name(),
                status,
                a.desc.replace('\n', "\n                          ")
            );
        }
    }
    let _ = write!(
        s,
        "\nResult:\n{}\n\nExamples:\n> strand cli {}\n",
        m.result, m.name
    );
    s
}

/// Core's `help` without a command: first lines grouped by category.
fn help_all() -> String {
    let mut ms: Vec<&Method> = METHODS.iter().collect();
    ms.sort_by_key(|m| (m.category, m.name));
    let mut s = String::new();
    let mut category = "";
    for m in ms {
        if m.category != category {
            if !category.is_empty() {
                s.push('\n');
            }
            category = m.category;
            let mut c = category.chars();
            let title: String = c
                .next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default();
            let _ = writeln!(s, "== {title} ==");
        }
        let _ = writeln!(s, "{}", usage(m));
    }
    s.pop();
    s
}

/// Positional, type-checked parameters of one call.
pub struct Args {
    v: Vec<Value>,
}

impl Args {
    /// The value at `i`, `None` if absent or null.
    fn get(&self, i: usize) -> Option<&Value> {
        self.v.get(i).filter(|v| !v.is_null())
    }

    fn str(&self, i: usize) -> RpcResult<&str> {
        self.get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcFailure::type_error("Expected type string"))
    }

    fn opt_str(&self, i: usize) -> Option<&str> {
        self.get(i).and_then(Value::as_str)
    }

    /// Core's `getInt`: an integral number.
    fn int(&self, i: usize) -> RpcResult<Option<i64>> {
        match self.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RpcFailure::misc("JSON integer out of range")),
        }
    }

    fn bool_or(&self, i: usize, default: bool) -> bool {
        self.get(i).and_then(Value::as_bool).unwrap_or(default)
    }

    /// A verbosity: a number, or a bool (false = 0, true = 1).
    fn verbosity(&self, i: usize, default: i64) -> RpcResult<i64> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            Some(_) => Ok(self.int(i)?.unwrap_or(default)),
        }
    }
}

/// Core's `ParseHashV`.
fn parse_hash<T: FromStr>(v: Option<&Value>, name: &str) -> RpcResult<T> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| RpcFailure::type_error(format!("{name} must be a hexadecimal string")))?;
    if s.len() != 64 {
        return Err(RpcFailure::invalid_parameter(format!(
            "{name} must be of length 64 (not {}, for '{s}')",
            s.len()
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcFailure::invalid_parameter(format!(
            "{name} must be hexadecimal string (not '{s}')"
        )));
    }
    T::from_str(s).map_err(|_| {
        RpcFailure::invalid_parameter(format!("{name} must be hexadecimal string (not '{s}')"))
    })
}

/// Core's `DecodeHexTx` failure message.
const TX_DECODE_FAILED: &str = "TX decode failed. Make sure the tx has at least one input.";

fn decode_tx(s: &str) -> Option<Transaction> {
    let bytes = Vec::<u8>::from_hex(s).ok()?;
    deserialize::<Transaction>(&bytes).ok()
}

/// Core's `AmountFromValue` (8 decimals at most, 0..=21e6 BTC).
pub fn parse_amount(v: &Value) -> RpcResult<Amount> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(RpcFailure::type_error("Amount is not a number or string")),
    };
    let invalid = || RpcFailure::type_error("Invalid amount");
    let t = text.trim();
    if t.starts_with('-') {
        return Err(RpcFailure::type_error("Amount out of range"));
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 8
        || int.len() > 9
    {
        return Err(invalid());
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| invalid())?
    };
    let mut f = frac.to_string();
    while f.len() < 8 {
        f.push('0');
    }
    let sats = whole * 100_000_000 + f.parse::<u64>().map_err(|_| invalid())?;
    if sats > 21_000_000 * 100_000_000 {
        return Err(RpcFailure::type_error("Amount out of range"));
    }
    Ok(Amount::from_sat(sats))
}

/// An amount as Core prints it: a JSON number with 8 decimals.
pub fn amount_json(a: Amount) -> Value {
    let s = a.to_sat();
    let text = format!("{}.{:08}", s / 100_000_000, s % 100_000_000);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn signed_amount_json(sats: i64) -> Value {
    let text = format!(
        "{}{}.{:08}",
        if sats < 0 { "-" } else { "" },
        sats.unsigned_abs() / 100_000_000,
        sats.unsigned_abs() % 100_000_000
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A float as Core's UniValue prints it: C++ `setprecision(16)` (`%.16g`),
/// so regtest's difficulty is `4.656542373906925e-10`, not the 17-digit
/// shortest round trip.
fn float_json(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    serde_json::from_str(&format_g16(f)).unwrap_or(Value::Null)
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C's `%.16g`.
fn format_g16(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:.15e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-5..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_fraction(mant), exp.abs())
    } else {
        let decimals = (15 - exp).max(0) as usize;
        trim_fraction(&format!("{f:.decimals$}")).to_string()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Scripts, descriptors, transactions, blocks in Core's JSON.

/// Core's `CScriptNum` of a push of at most 4 bytes.
fn script_num(b: &[u8]) -> i64 {
    let Some(&last) = b.last() else {
        return 0;
    };
    let mut r: i64 = 0;
    for (i, &x) in b.iter().enumerate() {
        r |= i64::from(x) << (8 * i);
    }
    if last & 0x80 != 0 {
        -(r & !(0x80_i64 << (8 * (b.len() - 1))))
    } else {
        r
    }
}

fn op_name(op: bitcoin::opcodes::Opcode) -> String {
    let code = op.to_u8();
    match code {
        0x4f => "-1".into(),
        0x51..=0x60 => (code - 0x50).to_string(),
        0xb1 => "OP_CHECKLOCKTIMEVERIFY".into(),
        0xb2 => "OP_CHECKSEQUENCEVERIFY".into(),
        0xba => "OP_CHECKSIGADD".into(),
        0xff => "OP_INVALIDOPCODE".into(),
        0xbb..=0xfe => "OP_UNKNOWN".into(),
        _ => op.to_string(),
    }
}

fn sighash_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "ALL",
        0x02 => "NONE",
        0x03 => "SINGLE",
        0x81 => "ALL|ANYONECANPAY",
        0x82 => "NONE|ANYONECANPAY",
        0x83 => "SINGLE|ANYONECANPAY",
        _ => return None,
    })
}

/// Core's `ScriptToAsmStr`.
pub fn script_asm(script: &Script, sighash_decode: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    for ins in script.instructions() {
        match ins {
            Err(_) => {
                out.push("[error]".into());
                break;
            }
            Ok(Instruction::Op(op)) => out.push(op_name(op)),
            Ok(Instruction::PushBytes(pb)) => {
                let b = pb.as_bytes();
                if b.len() <= 4 {
                    out.push(script_num(b).to_string());
                } else if sighash_decode && !script.is_op_return() {
                    let decoded = b.last().and_then(|&t| {
                        let name = sighash_name(t)?;
                        bitcoin::ecdsa::Signature::from_slice(b).ok()?;
                        Some(format!(
                            "{}[{name}]",
                            b[..b.len() - 1].to_lower_hex_string()
                        ))
                    });
                    out.push(decoded.unwrap_or_else(|| b.to_lower_hex_string()));
                } else {
                    out.push(b.to_lower_hex_string());
                }
            }
        }
    }
    out.join(" ")
}

/// Core's `GetTxnOutputType` name.
pub fn script_type(s: &Script) -> &'static str {
    let b = s.as_bytes();
    if s.is_p2pkh() {
        "pubkeyhash"
    } else if s.is_p2sh() {
        "scripthash"
    } else if s.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if s.is_p2wsh() {
        "witness_v0_scripthash"
    } else if s.is_p2tr() {
        "witness_v1_taproot"
    } else if b == [0x51, 0x02, 0x4e, 0x73] {
        "anchor"
    } else if s.is_witness_program() {
        "witness_unknown"
    } else if s.is_p2pk() {
        "pubkey"
    } else if s.is_multisig() {
        "multisig"
    } else if s.is_op_return()
        && s.as_bytes().len() > 1
        && Script::from_bytes(&b[1..]).is_push_only()
        || b == [0x6a]
    {
        "nulldata"
    } else {
        "nonstandard"
    }
}

const DESC_INPUT: &[u8] =
    b"0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
const DESC_CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn desc_polymod(c: u64, val: u64) -> u64 {
    let c0 = c >> 35;
    let mut c = ((c & 0x7_ffff_ffff) << 5) ^ val;
    const GEN: [u64; 5] = [
        0xf5dee51989,
        0xa9fdca3312,
        0x1bab10e32d,
        0x3706b1677a,
        0x644d626ffd,
    ];
    for (i, g) in GEN.iter().enumerate() {
        if (c0 >> i) & 1 != 0 {
            c ^= g;
        }
    }
    c
}

/// The BIP380 checksum of a descriptor (without `#`); `None` if it has a
/// character outside the descriptor character set.
pub fn descriptor_checksum(desc: &str) -> Option<String> {
    let mut c = 1u64;
    let mut cls = 0u64;
    let mut clscount = 0;
    for ch in desc.bytes() {
        let pos = DESC_INPUT.iter().position(|&x| x == ch)? as u64;
        c = desc_polymod(c, pos & 31);
        cls = cls * 3 + (pos >> 5);
        clscount += 1;
        if clscount == 3 {
            c = desc_polymod(c, cls);
            cls = 0;
            clscount = 0;
        }
    }
    if clscount > 0 {
        c = desc_polymod(c, cls);
    }
    for _ in 0..8 {
        c = desc_polymod(c, 0);
    }
    c ^= 1;
    Some(
        (0..8)
            .map(|j| DESC_CHECKSUM[((c >> (5 * (7 - j))) & 31) as usize] as char)
            .collect(),
    )
}

fn with_checksum(desc: String) -> String {
    match descriptor_checksum(&desc) {
        Some(c) => format!("{desc}#{c}"),
        None => desc,
    }
}

/// The output script of an `addr(...)` or `raw(...)` descriptor, with or
/// without checksum; the error is Core's text where Core has one.
pub fn script_from_descriptor(desc: &str, network: bitcoin::Network) -> Result<ScriptBuf, String> {
    let (body, checksum) = match desc.split_once('#') {
        Some((b, c)) => {
            if c.contains('#') {
                return Err("Multiple '#' symbols".into());
            }
            (b, Some(c))
        }
        None => (desc, None),
    };
    let computed = descriptor_checksum(body).ok_or_else(|| {
        let bad = body
            .chars()
            .find(|c| !DESC_INPUT.contains(&(*c as u8)) || !c.is_ascii())
            .unwrap_or('?');
        format!("Invalid character '{bad}' in payload")
    })?;
    if let Some(c) = checksum {
        if c.len() != 8 {
            return Err(format!(
                "Expected 8 character checksum, not {} characters",
                c.len()
            ));
        }
        if c != computed {
            return Err(format!(
                "Provided checksum '{c}' does not match computed checksum '{computed}'"
            ));
        }
    }
    if let Some(inner) = body.strip_prefix("addr(").and_then(|r| r.strip_suffix(')')) {
        let addr = Address::from_str(inner)
            .ok()
            .and_then(|a| a.require_network(network).ok())
            .ok_or_else(|| "Address is not valid".to_string())?;
        return Ok(addr.script_pubkey());
    }
    if let Some(inner) = body.strip_prefix("raw(").and_then(|r| r.strip_suffix(')')) {
        let bytes = Vec::<u8>::from_hex(inner).map_err(|_| "Raw script is not hex".to_string())?;
        return Ok(ScriptBuf::from_bytes(bytes));
    }
    let func = body.split('(').next().unwrap_or(body);
    Err(format!(
        "'{func}(...)' descriptors are not supported by strand (use addr(...) or raw(...))"
    ))
}

/// Core's `ScriptToUniv` for an output script (asm, desc, hex, address, type).
pub fn script_pubkey_json(s: &Script, network: bitcoin::Network) -> Value {
    let mut m = Map::new();
    m.insert("asm".into(), json!(script_asm(s, false)));
    let address = Address::from_script(s, network).ok();
    let desc = match (&address, s.p2pk_public_key()) {
        (Some(a), _) => format!("addr({a})"),
        (None, Some(pk)) => format!("pk({pk})"),
        (None, None) => format!("raw({})", s.as_bytes().to_lower_hex_string()),
    };
    m.insert("desc".into(), json!(with_checksum(desc)));
    m.insert("hex".into(), json!(s.as_bytes().to_lower_hex_string()));
    if let Some(a) = address {
        m.insert("address".into(), json!(a.to_string()));
    }
    m.insert("type".into(), json!(script_type(s)));
    Value::Object(m)
}

/// Core's `TxToUniv`: `spent` are the outputs the inputs spend (fee and,
/// at verbosity 3, `prevout`).
fn tx_json(
    tx: &Transaction,
    network: bitcoin::Network,
    spent: Option<&[TxOut]>,
    include_hex: bool,
    prevouts: bool,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("txid".into(), json!(tx.compute_txid().to_string()));
    m.insert("hash".into(), json!(tx.compute_wtxid().to_string()));
    m.insert("version".into(), json!(tx.version.0));
    m.insert("size".into(), json!(tx.total_size()));
    m.insert("vsize".into(), json!(tx.vsize()));
    m.insert("weight".into(), json!(tx.weight().to_wu()));
    m.insert("locktime".into(), json!(tx.lock_time.to_consensus_u32()));
    let coinbase = tx.is_coinbase();
    let spent = spent.filter(|s| !coinbase && s.len() == tx.input.len());
    let vin: Vec<Value> = tx
        .input
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let mut o = Map::new();
            if coinbase {
                o.insert(
                    "coinbase".into(),
                    json!(input.script_sig.as_bytes().to_lower_hex_string()),
                );
            } else {
                o.insert("txid".into(), json!(input.previous_output.txid.to_string()));
                o.insert("vout".into(), json!(input.previous_output.vout));
                o.insert(
                    "scriptSig".into(),
                    json!({
                        "asm": script_asm(&input.script_sig, true),
                        "hex": input.script_sig.as_bytes().to_lower_hex_string(),
                    }),
                );
            }
            if !input.witness.is_empty() {
                let w: Vec<Value> = input
                    .witness
                    .iter()
                    .map(|x| json!(x.to_lower_hex_string()))
                    .collect();
                o.insert("txinwitness".into(), Value::Array(w));
            }
            if prevouts {
                if let Some(prev) = spent.and_then(|s| s.get(i)) {
                    o.insert(
                        "prevout".into(),
                        json!({
                            "value": amount_json(prev.value),
                            "scriptPubKey": script_pubkey_json(&prev.script_pubkey, network),
                        }),
                    );
                }
            }
            o.insert("sequence".into(), json!(input.sequence.0));
            Value::Object(o)
        })
        .collect();
    m.insert("vin".into(), Value::Array(vin));
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| {
            json!({
                "value": amount_json(o.value),
                "n": n,
                "scriptPubKey": script_pubkey_json(&o.script_pubkey, network),
            })
        })
        .collect();
    m.insert("vout".into(), Value::Array(vout));
    if let Some(spent) = spent {
        let inputs: i64 = spent.iter().map(|o| o.value.to_sat() as i64).sum();
        let outputs: i64 = tx.output.iter().map(|o| o.value.to_sat() as i64).sum();
        m.insert("fee".into(), signed_amount_json(inputs - outputs));
    }
    if include_hex {
        m.insert("hex".into(), json!(serialize(tx).to_lower_hex_string()));
    }
    m
}

/// Core's `blockheaderToJSON`.
fn header_json(info: &HeaderInfo) -> Map<String, Value> {
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

fn varint_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Core's `blockToJSON`.
fn block_json(data: &BlockData, verbosity: i64, network: bitcoin::Network) -> Value {
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

fn mempool_entry_json(e: &MempoolEntry) -> Value {
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

/// Core's service flag names.
pub fn service_names(flags: bitcoin::p2p::ServiceFlags) -> Vec<String> {
    let bits = flags.to_u64();
    (0..64)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| match 1u64 << i {
            1 => "NETWORK".to_string(),
            4 => "BLOOM".to_string(),
            8 => "WITNESS".to_string(),
            64 => "COMPACT_FILTERS".to_string(),
            1024 => "NETWORK_LIMITED".to_string(),
            2048 => "P2P_V2".to_string(),
            _ => format!("UNKNOWN[2^{i}]"),
        })
        .collect()
}

fn net_class(addr: &std::net::SocketAddr) -> &'static str {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            if ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() {
                "not_publicly_routable"
            } else {
                "ipv4"
            }
        }
        std::net::IpAddr::V6(ip) => {
            let seg = ip.segments()[0];
            if ip.is_loopback()
                || ip.is_unspecified()
                || seg & 0xfe00 == 0xfc00
                || seg & 0xffc0 == 0xfe80
            {
                "not_publicly_routable"
            } else {
                "ipv6"
            }
        }
    }
}

fn peer_json(p: &PeerInfo) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("addr".into(), json!(p.addr.to_string()));
    if let Some(l) = p.addrlocal {
        m.insert("addrlocal".into(), json!(l.to_string()));
    }
    m.insert("network".into(), json!(net_class(&p.addr)));
    m.insert(
        "services".into(),
        json!(format!("{:016x}", p.services.to_u64())),
    );
    m.insert("servicesnames".into(), json!(service_names(p.services)));
    m.insert("relaytxes".into(), json!(p.relaytxes));
    m.insert("lastsend".into(), json!(p.lastsend));
    m.insert("lastrecv".into(), json!(p.lastrecv));
    m.insert("last_transaction".into(), json!(0));
    m.insert("last_block".into(), json!(0));
    m.insert("bytessent".into(), json!(p.bytessent));
    m.insert("bytesrecv".into(), json!(p.bytesrecv));
    m.insert("conntime".into(), json!(p.conntime));
    m.insert("timeoffset".into(), json!(0));
    if let Some(t) = p.pingtime {
        m.insert("pingtime".into(), float_json(t));
    }
    if let Some(t) = p.minping {
        m.insert("minping".into(), float_json(t));
    }
    m.insert("version".into(), json!(p.version));
    m.insert("subver".into(), json!(p.subver));
    m.insert("inbound".into(), json!(p.inbound));
    m.insert("bip152_hb_to".into(), json!(false));
    m.insert("bip152_hb_from".into(), json!(false));
    m.insert("startingheight".into(), json!(p.startingheight));
    m.insert("presynced_headers".into(), json!(-1));
    m.insert("synced_headers".into(), json!(p.synced_headers));
    m.insert("synced_blocks".into(), json!(p.synced_blocks));
    m.insert("inflight".into(), json!(p.inflight));
    m.insert("addr_relay_enabled".into(), json!(false));
    m.insert("addr_processed".into(), json!(0));
    m.insert("addr_rate_limited".into(), json!(0));
    m.insert("permissions".into(), json!([]));
    m.insert("minfeefilter".into(), amount_json(Amount::ZERO));
    m.insert("bytessent_per_msg".into(), json!({}));
    m.insert("bytesrecv_per_msg".into(), json!({}));
    m.insert("connection_type".into(), json!(p.connection_type.as_str()));
    m.insert("transport_protocol_type".into(), json!("v1"));
    m.insert("session_id".into(), json!(""));
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// Dispatch.

/// Runs RPC calls against a backend: parameter checking, decoding, the
/// backend call and Core-shaped results.
#[derive(Clone)]
pub struct Dispatcher {
    backend: Arc<dyn RpcBackend>,
}

impl Dispatcher {
    /// A dispatcher over `backend`.
    pub fn new(backend: Arc<dyn RpcBackend>) -> Dispatcher {
        Dispatcher { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn RpcBackend {
        &*self.backend
    }

    /// Executes one call: `params` is the request's array or object.
    pub fn execute(&self, method: &str, params: &Value) -> RpcResult<Value> {
        let Some(m) = find_method(method) else {
            return Err(RpcFailure::new(
                codes::RPC_METHOD_NOT_FOUND,
                "Method not found",
            ));
        };
        if !matches!(m.name, "help" | "stop" | "uptime") {
            if let Some(status) = self.backend.warmup_status() {
                return Err(RpcFailure::new(codes::RPC_IN_WARMUP, status));
            }
        }
        let positional = match params {
            Value::Array(a) => a.clone(),
            Value::Object(o) => named_to_positional(m, o)?,
            Value::Null => Vec::new(),
            _ => {
                return Err(RpcFailure::new(
                    codes::RPC_INVALID_REQUEST,
                    "Params must be an array or object",
                ))
            }
        };
        let required = m.args.iter().filter(|a| a.default.is_none()).count();
        if positional.len() < required || positional.len() > m.args.len() {
            return Err(RpcFailure::misc(help_text(m)));
        }
        let mut mismatches = Vec::new();
        for (i, (a, v)) in m.args.iter().zip(&positional).enumerate() {
            if v.is_null() && a.default.is_some() {
                continue;
            }
            if !a.ty.matches(v) {
                mismatches.push(format!(
                    "    \"Position {} ({})\": \"JSON value of type {} is not of expected type {}\"",
                    i + 1,
                    a.name,
                    type_name(v),
                    a.ty.expected()
                ));
            }
        }
        if !mismatches.is_empty() {
            return Err(RpcFailure::type_error(format!(
                "Wrong type passed:\n{{\n{}\n}}",
                mismatches.join(",\n")
            )));
        }
        (m.handler)(self, &Args { v: positional })
    }
}

/// Core's `transformNamedArguments`.
fn named_to_positional(m: &Method, o: &Map<String, Value>) -> RpcResult<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for (k, v) in o {
        let Some(pos) = m.args.iter().position(|a| a.name == k) else {
            return Err(RpcFailure::invalid_parameter(format!(
                "Unknown named parameter {k}"
            )));
        };
        if out.len() <= pos {
            out.resize(pos + 1, Value::Null);
        }
        out[pos] = v.clone();
    }
    while out.last().is_some_and(Value::is_null) {
        out.pop();
    }
    Ok(out)
}

fn block_not_found() -> RpcFailure {
    RpcFailure::not_found("Block not found")
}

fn h_getbestblockhash(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.best_block_hash()?.to_string()))
}

fn h_getblockcount(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.block_count()?))
}

fn h_getblockchaininfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.blockchain_info()?;
    Ok(json!({
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
        "warnings": i.warnings,
    }))
}

fn h_getblockhash(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let height = a.int(0)?.unwrap_or(-1);
    let out_of_range = || RpcFailure::invalid_parameter("Block height out of range");
    let h = u32::try_from(height).map_err(|_| out_of_range())?;
    match d.backend.block_hash(h)? {
        Some(hash) => Ok(json!(hash.to_string())),
        None => Err(out_of_range()),
    }
}

fn h_getblockheader(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "hash")?;
    let info = d.backend.block_header(hash)?.ok_or_else(block_not_found)?;
    if a.bool_or(1, true) {
        Ok(Value::Object(header_json(&info)))
    } else {
        Ok(json!(serialize(&info.header).to_lower_hex_string()))
    }
}

fn h_getblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    let verbosity = a.verbosity(1, 1)?;
    let data = d.backend.block(hash)?.ok_or_else(block_not_found)?;
    if verbosity <= 0 {
        return Ok(json!(serialize(&data.block).to_lower_hex_string()));
    }
    Ok(block_json(&data, verbosity, d.backend.network()))
}

fn h_getchaintips(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
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

fn h_getdifficulty(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(float_json(d.backend.difficulty()?))
}

fn h_gettxout(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_getrawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let txid: Txid = parse_hash(a.get(0), "parameter 1")?;
    let verbosity = a.verbosity(1, 0)?;
    let blockhash: Option<BlockHash> = match a.get(2) {
        Some(v) => Some(parse_hash(Some(v), "parameter 3")?),
        None => None,
    };
    let found = d.backend.raw_transaction(txid, blockhash)?;
    if verbosity <= 0 {
        return Ok(json!(serialize(&found.tx).to_lower_hex_string()));
    }
    let mut m = Map::new();
    if blockhash.is_some() {
        m.insert(
            "in_active_chain".into(),
            json!(found.location.as_ref().is_some_and(|l| l.in_active_chain)),
        );
    }
    m.extend(tx_json(&found.tx, d.backend.network(), None, true, false));
    if let Some(l) = &found.location {
        m.insert("blockhash".into(), json!(l.blockhash.to_string()));
        if l.in_active_chain {
            m.insert("confirmations".into(), json!(l.confirmations));
            m.insert("time".into(), json!(l.blocktime));
            m.insert("blocktime".into(), json!(l.blocktime));
        } else {
            m.insert("confirmations".into(), json!(0));
        }
    }
    Ok(Value::Object(m))
}

fn h_getrawmempool(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_getmempoolinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
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

fn h_getmempoolentry(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let txid: Txid = parse_hash(a.get(0), "parameter 1")?;
    match d.backend.mempool_entry(txid)? {
        Some(e) => Ok(mempool_entry_json(&e)),
        None => Err(RpcFailure::not_found("Transaction not in mempool")),
    }
}

/// `maxfeerate`: Core's default 0.10 BTC/kvB; 1 BTC/kvB or more refused.
fn max_fee_rate(a: &Args, i: usize) -> RpcResult<Amount> {
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

fn h_sendrawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let tx = decode_tx(a.str(0)?).ok_or_else(|| RpcFailure::deserialization(TX_DECODE_FAILED))?;
    let rate = max_fee_rate(a, 1)?;
    Ok(json!(d.backend.send_raw_transaction(tx, rate)?.to_string()))
}

fn h_testmempoolaccept(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_submitblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_getpeerinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(Value::Array(
        d.backend.peer_info()?.iter().map(peer_json).collect(),
    ))
}

fn h_getconnectioncount(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.connection_count()?))
}

fn h_getnetworkinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.network_info()?;
    let networks: Vec<Value> = ["ipv4", "ipv6", "onion", "i2p", "cjdns"]
        .iter()
        .map(|n| {
            let reachable = matches!(*n, "ipv4" | "ipv6");
            json!({
                "name": n,
                "limited": !reachable,
                "reachable": reachable,
                "proxy": "",
                "proxy_randomize_credentials": false,
            })
        })
        .collect();
    Ok(json!({
        "version": i.version,
        "subversion": i.subversion,
        "protocolversion": i.protocolversion,
        "localservices": format!("{:016x}", i.localservices.to_u64()),
        "localservicesnames": service_names(i.localservices),
        "localrelay": i.localrelay,
        "timeoffset": 0,
        "networkactive": i.networkactive,
        "connections": i.connections_in + i.connections_out,
        "connections_in": i.connections_in,
        "connections_out": i.connections_out,
        "networks": networks,
        "relayfee": amount_json(i.relayfee),
        "incrementalfee": amount_json(i.incrementalfee),
        "localaddresses": i.localaddresses.iter().map(|l| json!({
            "address": l.address, "port": l.port, "score": l.score
        })).collect::<Vec<_>>(),
        "warnings": i.warnings,
    }))
}

fn h_addnode(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let node = a.str(0)?.to_string();
    let command = match a.str(1)? {
        "add" => AddNodeCommand::Add,
        "remove" => AddNodeCommand::Remove,
        "onetry" => AddNodeCommand::OneTry,
        _ => return Err(RpcFailure::misc(help_text(method("addnode")))),
    };
    d.backend.add_node(node, command)?;
    Ok(Value::Null)
}

fn method(name: &str) -> &'static Method {
    find_method(name).unwrap_or(&METHODS[0])
}

fn h_disconnectnode(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let address = a.opt_str(0);
    let target = match (address, a.get(1)) {
        (Some(addr), None) => DisconnectTarget::Address(addr.to_string()),
        (None | Some(""), Some(_)) => {
            let id = a.int(1)?.unwrap_or(-1);
            DisconnectTarget::Id(u64::try_from(id).map_err(|_| {
                RpcFailure::new(
                    codes::RPC_CLIENT_NODE_NOT_CONNECTED,
                    "Node not found in connected nodes",
                )
            })?)
        }
        _ => {
            return Err(RpcFailure::new(
                codes::RPC_INVALID_PARAMS,
                "Only one of address and nodeid should be provided.",
            ))
        }
    };
    d.backend.disconnect_node(target)?;
    Ok(Value::Null)
}

fn h_setban(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let command = a.str(1)?;
    if command != "add" && command != "remove" {
        return Err(RpcFailure::misc(help_text(method("setban"))));
    }
    let subnet: SubNet = a.str(0)?.parse().map_err(|_| {
        RpcFailure::new(
            codes::RPC_CLIENT_INVALID_IP_OR_SUBNET,
            "Error: Invalid IP/Subnet",
        )
    })?;
    let cmd = if command == "add" {
        let bantime = a.int(2)?.unwrap_or(0);
        let absolute = a.bool_or(3, false);
        if absolute {
            let until = u64::try_from(bantime).unwrap_or(0);
            if until < now_secs() {
                return Err(RpcFailure::invalid_parameter(
                    "Error: Absolute timestamp is in the past",
                ));
            }
            BanCommand::Add {
                duration: None,
                until: Some(until),
            }
        } else {
            BanCommand::Add {
                duration: u64::try_from(bantime).ok().filter(|&t| t > 0),
                until: None,
            }
        }
    } else {
        BanCommand::Remove
    };
    d.backend.set_ban(subnet, cmd)?;
    Ok(Value::Null)
}

fn h_listbanned(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let now = now_secs() as i64;
    Ok(Value::Array(
        d.backend
            .list_banned()?
            .iter()
            .map(|b| {
                json!({
                    "address": b.subnet.to_string(),
                    "ban_created": b.ban_created,
                    "banned_until": b.banned_until,
                    "ban_duration": b.banned_until as i64 - b.ban_created as i64,
                    "time_remaining": b.banned_until as i64 - now,
                })
            })
            .collect(),
    ))
}

fn h_invalidateblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    d.backend.invalidate_block(hash)?;
    Ok(Value::Null)
}

fn h_reconsiderblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hash: BlockHash = parse_hash(a.get(0), "blockhash")?;
    d.backend.reconsider_block(hash)?;
    Ok(Value::Null)
}

fn hashes_json(h: Vec<BlockHash>) -> Value {
    Value::Array(h.iter().map(|h| json!(h.to_string())).collect())
}

fn count_and_tries(a: &Args) -> RpcResult<(u32, u64)> {
    let n = a.int(0)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
    let tries = match a.int(2)? {
        None => 1_000_000,
        Some(t) => u64::try_from(t).unwrap_or(0),
    };
    Ok((n, tries))
}

fn h_generatetoaddress(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_generatetodescriptor(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let (n, tries) = count_and_tries(a)?;
    let script =
        script_from_descriptor(a.str(1)?, d.backend.network()).map_err(RpcFailure::not_found)?;
    Ok(hashes_json(d.backend.generate_to_script(n, script, tries)?))
}

fn h_generateblock(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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

fn h_uptime(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.uptime()?))
}

fn h_help(_: &Dispatcher, a: &Args) -> RpcResult<Value> {
    match a.opt_str(0) {
        None => Ok(json!(help_all())),
        Some(cmd) => match find_method(cmd) {
            Some(m) => Ok(json!(help_text(m))),
            None => Ok(json!(format!("help: unknown command: {cmd}\n"))),
        },
    }
}

fn h_stop(_: &Dispatcher, _: &Args) -> RpcResult<Value> {
    // The server calls `backend.stop()` once this reply is written.
    Ok(json!("strand stopping"))
}

fn h_getsyncstate(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    d.backend.sync_state()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_checksums() {
        assert_eq!(
            descriptor_checksum("raw(deadbeef)").as_deref(),
            Some("89f8spxm")
        );
        let s = script_from_descriptor("raw(deadbeef)#89f8spxm", bitcoin::Network::Regtest);
        assert_eq!(s.unwrap().as_bytes(), [0xde, 0xad, 0xbe, 0xef]);
        let e = script_from_descriptor("raw(deadbeef)#89f8spxx", bitcoin::Network::Regtest);
        assert_eq!(
            e.unwrap_err(),
            "Provided checksum '89f8spxx' does not match computed checksum '89f8spxm'"
        );
        let e = script_from_descriptor("raw(deadbeef)#89f8", bitcoin::Network::Regtest);
        assert_eq!(
            e.unwrap_err(),
            "Expected 8 character checksum, not 4 characters"
        );
        let e = script_from_descriptor("wpkh(02aa)", bitcoin::Network::Regtest);
        assert!(e.unwrap_err().contains("not supported"));
        let e = script_from_descriptor("raw(zz)", bitcoin::Network::Regtest);
        assert_eq!(e.unwrap_err(), "Raw script is not hex");
        let addr = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        let s =
            script_from_descriptor(&format!("addr({addr})"), bitcoin::Network::Regtest).unwrap();
        assert!(s.is_p2wpkh());
        let e = script_from_descriptor(&format!("addr({addr})"), bitcoin::Network::Bitcoin);
        assert_eq!(e.unwrap_err(), "Address is not valid");
    }

    #[test]
    fn floats_like_univalue() {
        assert_eq!(format_g16(4.656542373906925e-10), "4.656542373906925e-10");
        assert_eq!(format_g16(1.0), "1");
        assert_eq!(format_g16(0.5), "0.5");
        assert_eq!(format_g16(2456598.4399242126), "2456598.439924213");
        assert_eq!(format_g16(1e20), "1e+20");
        assert_eq!(format_g16(0.0001), "0.0001");
        assert_eq!(float_json(0.999).to_string(), "0.999");
    }

    #[test]
    fn amounts() {
        assert_eq!(
            amount_json(Amount::from_sat(1000)).to_string(),
            "0.00001000"
        );
        assert_eq!(
            amount_json(Amount::from_sat(50 * 100_000_000)).to_string(),
            "50.00000000"
        );
        assert_eq!(signed_amount_json(-1).to_string(), "-0.00000001");
        let p = |s: &str| parse_amount(&serde_json::from_str(s).unwrap());
        assert_eq!(p("0.1").unwrap(), Amount::from_sat(10_000_000));
        assert_eq!(p("\"0.00000001\"").unwrap(), Amount::from_sat(1));
        assert_eq!(p("3").unwrap(), Amount::from_sat(300_000_000));
        assert_eq!(p("0.000000001").unwrap_err().message, "Invalid amount");
        assert_eq!(p("-1").unwrap_err().message, "Amount out of range");
        assert_eq!(p("21000001").unwrap_err().message, "Amount out of range");
        assert_eq!(
            p("true").unwrap_err().message,
            "Amount is not a number or string"
        );
    }

    #[test]
    fn asm_like_core() {
        // P2PKH output.
        let s = ScriptBuf::from_hex("76a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac").unwrap();
        assert_eq!(
            script_asm(&s, false),
            "OP_DUP OP_HASH160 89abcdefabbaabbaabbaabbaabbaabbaabbaabba OP_EQUALVERIFY OP_CHECKSIG"
        );
        assert_eq!(script_type(&s), "pubkeyhash");
        // Coinbase-style small pushes are numbers; OP_1 is "1"; OP_0 is "0".
        let s = ScriptBuf::from_hex("0165005100").unwrap();
        assert_eq!(script_asm(&s, false), "101 0 1 0");
        let s = ScriptBuf::from_hex("02ff00").unwrap();
        assert_eq!(script_asm(&s, false), "255");
        let s = ScriptBuf::from_hex("0181").unwrap();
        assert_eq!(script_asm(&s, false), "-1");
        assert_eq!(
            script_type(&ScriptBuf::from_hex("6a0401020304").unwrap()),
            "nulldata"
        );
        assert_eq!(
            script_type(&ScriptBuf::from_hex("51024e73").unwrap()),
            "anchor"
        );
        assert_eq!(
            script_asm(&ScriptBuf::from_hex("b1b2").unwrap(), false),
            "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY"
        );
    }

    #[test]
    fn help_lists_every_method_and_usage_matches_core() {
        let all = help_all();
        for name in method_names() {
            assert!(all.contains(name), "{name}");
        }
        assert!(all.starts_with("== Blockchain ==\ngetbestblockhash\n"));
        assert_eq!(
            usage(method("getblock")),
            "getblock \"blockhash\" ( verbosity )"
        );
        assert_eq!(
            usage(method("setban")),
            "setban \"subnet\" \"command\" ( bantime absolute )"
        );
        assert_eq!(
            usage(method("testmempoolaccept")),
            "testmempoolaccept [\"rawtxs\",...] ( maxfeerate )"
        );
    }
}
