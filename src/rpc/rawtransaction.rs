//! Raw transactions (Core's `rpc/rawtransaction.cpp`): `getrawtransaction`,
//! and Core's JSON for scripts (`asm`, types, `addr()`/`raw()` descriptors
//! with BIP380 checksums) and transactions (`TxToUniv`) that the block,
//! mempool and mining methods reuse. Runs on the RPC worker threads.

use std::str::FromStr;

use bitcoin::consensus::serialize;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::script::Instruction;
use bitcoin::{Address, BlockHash, Script, ScriptBuf, Transaction, TxOut, Txid};
use serde_json::{json, Map, Value};

use bitcoin::hashes::Hash;

use super::backend::*;
use super::protocol::RpcFailure;
use super::util::*;

/// Core's `CScriptNum` of a push of at most 4 bytes.
pub(super) fn script_num(b: &[u8]) -> i64 {
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

pub(super) fn op_name(op: bitcoin::opcodes::Opcode) -> String {
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

pub(super) fn sighash_name(t: u8) -> Option<&'static str> {
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

pub(super) const DESC_INPUT: &[u8] =
    b"0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
pub(super) const DESC_CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

pub(super) fn desc_polymod(c: u64, val: u64) -> u64 {
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

pub(super) fn with_checksum(desc: String) -> String {
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
    if let Some(script) = key_descriptor_script(body)? {
        return Ok(script);
    }
    let func = body.split('(').next().unwrap_or(body);
    Err(format!(
        "'{func}(...)' descriptors are not supported by strand (use addr, raw, pkh, wpkh or tr with a plain key)"
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
pub(super) fn tx_json(
    tx: &Transaction,
    network: bitcoin::Network,
    spent: Option<&[TxOut]>,
    origins: Option<&[(u32, bool)]>,
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
                    let mut p = Map::new();
                    if let Some(&(height, generated)) = origins.and_then(|o| o.get(i)) {
                        p.insert("generated".into(), json!(generated));
                        p.insert("height".into(), json!(height));
                    }
                    p.insert("value".into(), amount_json(prev.value));
                    p.insert(
                        "scriptPubKey".into(),
                        script_pubkey_json(&prev.script_pubkey, network),
                    );
                    o.insert("prevout".into(), Value::Object(p));
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

pub(super) fn h_getrawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
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
    let spent = if verbosity >= 2 && !found.tx.is_coinbase() {
        d.backend
            .tx_spent_outputs(&found.tx, found.location.as_ref().map(|l| l.blockhash))?
    } else {
        None
    };
    let outs: Option<Vec<TxOut>> = spent
        .as_ref()
        .map(|v| v.iter().map(|s| s.txout.clone()).collect());
    let origins: Option<Vec<(u32, bool)>> = spent
        .as_ref()
        .map(|v| v.iter().map(|s| (s.height, s.coinbase)).collect());
    m.extend(tx_json(
        &found.tx,
        d.backend.network(),
        outs.as_deref(),
        origins.as_deref(),
        true,
        verbosity >= 2,
    ));
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

// ---------------------------------------------------------------------------
// Key descriptors (`pkh`, `wpkh`, `tr` with a plain hex key), used by
// `scantxoutset` and `generatetodescriptor` through
// [`script_from_descriptor`].

fn invalid_key(k: &str) -> String {
    format!("key '{k}' is not valid")
}

/// The output script of `pkh(KEY)`, `wpkh(KEY)` or `tr(KEY)` with a plain
/// hex public key (Core's `ParsePubkey` messages); `Ok(None)` for any
/// other function. Extended keys, key origins and script trees are not
/// supported.
fn key_descriptor_script(body: &str) -> Result<Option<ScriptBuf>, String> {
    let Some((func, rest)) = body.split_once('(') else {
        return Ok(None);
    };
    let Some(key) = rest.strip_suffix(')') else {
        return Ok(None);
    };
    match func {
        "pkh" | "wpkh" => {
            let bytes = Vec::<u8>::from_hex(key).map_err(|_| invalid_key(key))?;
            let pk = bitcoin::PublicKey::from_slice(&bytes).map_err(|_| invalid_key(key))?;
            if func == "pkh" {
                return Ok(Some(ScriptBuf::new_p2pkh(&pk.pubkey_hash())));
            }
            let cpk = bitcoin::CompressedPublicKey::try_from(pk)
                .map_err(|_| "Uncompressed keys are not allowed".to_string())?;
            Ok(Some(ScriptBuf::new_p2wpkh(&cpk.wpubkey_hash())))
        }
        "tr" => {
            if key.contains(',') {
                return Err("tr() with a script tree is not supported by strand".into());
            }
            let bytes = Vec::<u8>::from_hex(key).map_err(|_| invalid_key(key))?;
            let xonly = match bytes.len() {
                32 => bitcoin::key::XOnlyPublicKey::from_slice(&bytes)
                    .map_err(|_| invalid_key(key))?,
                33 => {
                    bitcoin::PublicKey::from_slice(&bytes)
                        .map_err(|_| invalid_key(key))?
                        .inner
                        .x_only_public_key()
                        .0
                }
                _ => return Err(invalid_key(key)),
            };
            let secp = bitcoin::secp256k1::Secp256k1::verification_only();
            Ok(Some(ScriptBuf::new_p2tr(&secp, xonly, None)))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// decoderawtransaction, decodescript, createrawtransaction.

/// A transaction in the legacy (no witness) serialization, all bytes used.
fn decode_legacy_tx(mut bytes: &[u8]) -> Option<Transaction> {
    use bitcoin::consensus::Decodable;
    let r = &mut bytes;
    let version = i32::consensus_decode(r).ok()?;
    let input = Vec::<bitcoin::TxIn>::consensus_decode(r).ok()?;
    let output = Vec::<TxOut>::consensus_decode(r).ok()?;
    let lock_time = u32::consensus_decode(r).ok()?;
    if !r.is_empty() {
        return None;
    }
    Some(Transaction {
        version: bitcoin::transaction::Version(version),
        lock_time: bitcoin::absolute::LockTime::from_consensus(lock_time),
        input,
        output,
    })
}

/// Core's `DecodeHexTx`: the extended (witness) serialization first when
/// allowed, kept if it has inputs or the legacy one is not allowed; then
/// the legacy one; then an input-less extended decode.
pub(super) fn decode_tx_hex(
    hex: &str,
    try_no_witness: bool,
    try_witness: bool,
) -> Option<Transaction> {
    let bytes = Vec::<u8>::from_hex(hex).ok()?;
    let extended = if try_witness {
        bitcoin::consensus::deserialize::<Transaction>(&bytes).ok()
    } else {
        None
    };
    if let Some(tx) = &extended {
        if !try_no_witness || !tx.input.is_empty() {
            return extended;
        }
    }
    if try_no_witness {
        if let Some(tx) = decode_legacy_tx(&bytes) {
            return Some(tx);
        }
    }
    extended
}

pub(super) fn h_decoderawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hex = a.str(0)?;
    let (no_witness, witness) = match a.get(1).and_then(Value::as_bool) {
        None => (true, true),
        Some(true) => (false, true),
        Some(false) => (true, false),
    };
    let tx = decode_tx_hex(hex, no_witness, witness).ok_or_else(|| {
        RpcFailure::new(
            super::protocol::codes::RPC_DESERIALIZATION_ERROR,
            "TX decode failed",
        )
    })?;
    Ok(Value::Object(tx_json(
        &tx,
        d.backend.network(),
        None,
        None,
        false,
        false,
    )))
}

/// The public keys pushed by a bare multisig script, and its threshold.
fn multisig_keys(s: &Script) -> Option<(i64, Vec<Vec<u8>>)> {
    let mut ins = s.instructions();
    let k = match ins.next()?.ok()? {
        Instruction::Op(op) => i64::from(op.to_u8()) - 0x50,
        Instruction::PushBytes(_) => return None,
    };
    let keys: Vec<Vec<u8>> = ins
        .filter_map(|i| match i {
            Ok(Instruction::PushBytes(p)) => Some(p.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    Some((k, keys))
}

/// Core's `InferDescriptor` with no keys known, at the top level: `addr()`
/// for anything with an address, `pk()`, `multi()`, else `raw()`.
fn infer_descriptor(s: &Script, network: bitcoin::Network) -> String {
    let body = if let Ok(a) = Address::from_script(s, network) {
        format!("addr({a})")
    } else if let Some(pk) = s.p2pk_public_key() {
        format!("pk({pk})")
    } else if let Some((k, keys)) = s.is_multisig().then(|| multisig_keys(s)).flatten() {
        let keys: Vec<String> = keys.iter().map(|k| k.to_lower_hex_string()).collect();
        format!("multi({k},{})", keys.join(","))
    } else {
        format!("raw({})", s.as_bytes().to_lower_hex_string())
    };
    with_checksum(body)
}

/// Core's `HasValidOps` and not `IsUnspendable`, without `OP_CHECKSIGADD`
/// or an `OP_SUCCESSx` (the checks before `decodescript` offers wrappers).
fn wrappable_ops(s: &Script) -> bool {
    // Core's MAX_SCRIPT_SIZE (script.h): larger scripts are unspendable.
    const MAX_SCRIPT_SIZE: usize = 10_000;
    if s.is_op_return() || s.len() > MAX_SCRIPT_SIZE {
        return false;
    }
    s.instructions().all(|i| match i {
        Err(_) => false,
        // Core's MAX_OPCODE is OP_NOP10 (0xb9); OP_CHECKSIGADD and every
        // OP_SUCCESSx lie above it.
        Ok(Instruction::Op(op)) => op.to_u8() <= 0xb9,
        // Core's MAX_SCRIPT_ELEMENT_SIZE.
        Ok(Instruction::PushBytes(p)) => p.len() <= 520,
    })
}

pub(super) fn h_decodescript(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let hex = a.str(0)?;
    let bytes = Vec::<u8>::from_hex(hex).map_err(|_| {
        RpcFailure::invalid_parameter(format!("argument must be hexadecimal string (not '{hex}')"))
    })?;
    let script = ScriptBuf::from_bytes(bytes);
    let network = d.backend.network();
    let ty = script_type(&script);
    let mut r = Map::new();
    r.insert("asm".into(), json!(script_asm(&script, false)));
    r.insert("desc".into(), json!(infer_descriptor(&script, network)));
    if ty != "pubkey" {
        if let Ok(addr) = Address::from_script(&script, network) {
            r.insert("address".into(), json!(addr.to_string()));
        }
    }
    r.insert("type".into(), json!(ty));
    let can_wrap = matches!(
        ty,
        "multisig"
            | "nonstandard"
            | "pubkey"
            | "pubkeyhash"
            | "witness_v0_keyhash"
            | "witness_v0_scripthash"
    ) && wrappable_ops(&script);
    if !can_wrap {
        return Ok(Value::Object(r));
    }
    let p2sh = |s: &Script| {
        Address::p2sh_from_hash(bitcoin::ScriptHash::hash(s.as_bytes()), network).to_string()
    };
    r.insert("p2sh".into(), json!(p2sh(&script)));
    let compressed_keys = || match ty {
        "pubkey" => script.p2pk_public_key().is_some_and(|k| k.compressed),
        _ => multisig_keys(&script).is_some_and(|(_, keys)| keys.iter().all(|k| k.len() == 33)),
    };
    let can_wrap_p2wsh = match ty {
        "multisig" | "pubkey" => compressed_keys(),
        "nonstandard" | "pubkeyhash" => true,
        _ => false,
    };
    if !can_wrap_p2wsh {
        return Ok(Value::Object(r));
    }
    let (segwit, desc) = if let Some(pk) = script.p2pk_public_key() {
        let hash = bitcoin::WPubkeyHash::hash(&pk.to_bytes());
        (ScriptBuf::new_p2wpkh(&hash), None)
    } else if ty == "pubkeyhash" {
        let hash = script
            .as_bytes()
            .get(3..23)
            .and_then(|h| bitcoin::WPubkeyHash::from_slice(h).ok())
            .ok_or_else(|| RpcFailure::misc("malformed P2PKH script"))?;
        (ScriptBuf::new_p2wpkh(&hash), None)
    } else {
        // Core's provider knows the witness script, so the descriptor
        // shows it: `wsh(multi(...))` or `wsh(raw(...))`.
        let inner = infer_descriptor(&script, network);
        let inner = inner.split('#').next().unwrap_or_default().to_string();
        let inner = if inner.starts_with("multi(") {
            inner
        } else {
            format!("raw({})", script.as_bytes().to_lower_hex_string())
        };
        (
            ScriptBuf::new_p2wsh(&script.wscript_hash()),
            Some(with_checksum(format!("wsh({inner})"))),
        )
    };
    let mut sr = match script_pubkey_json(&segwit, network) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(desc) = desc {
        sr.insert("desc".into(), json!(desc));
    }
    sr.insert("p2sh-segwit".into(), json!(p2sh(&segwit)));
    r.insert("segwit".into(), Value::Object(sr));
    Ok(Value::Object(r))
}

/// Core's `ConstructTransaction` (`rpc/rawtransaction_util.cpp`).
pub(super) fn h_createrawtransaction(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let tx = construct_transaction(a, d.backend.network())?;
    Ok(json!(serialize(&tx).to_lower_hex_string()))
}

fn construct_transaction(a: &Args, network: bitcoin::Network) -> RpcResult<Transaction> {
    let bad = |m: &str| RpcFailure::invalid_parameter(format!("Invalid parameter, {m}"));
    let locktime = a.int(2)?.unwrap_or(0);
    let locktime = u32::try_from(locktime).map_err(|_| bad("locktime out of range"))?;
    let rbf = a.get(3).and_then(Value::as_bool);
    // Core's TX_MIN_STANDARD_VERSION and TX_MAX_STANDARD_VERSION (policy.h).
    let version = a.int(4)?.unwrap_or(2);
    if !(1..=3).contains(&version) {
        return Err(bad("version out of range(1~3)"));
    }
    let mut tx = Transaction {
        version: bitcoin::transaction::Version(version as i32),
        lock_time: bitcoin::absolute::LockTime::from_consensus(locktime),
        input: Vec::new(),
        output: Vec::new(),
    };
    let empty = Vec::new();
    let inputs = match a.get(0) {
        None => &empty,
        Some(v) => v.as_array().ok_or_else(|| type_mismatch(v, "array"))?,
    };
    for input in inputs {
        let o = input
            .as_object()
            .ok_or_else(|| type_mismatch(input, "object"))?;
        let txid: Txid = parse_hash(Some(o.get("txid").unwrap_or(&Value::Null)), "txid")?;
        let vout = o
            .get("vout")
            .filter(|v| v.is_number())
            .ok_or_else(|| bad("missing vout key"))?;
        let vout = vout
            .as_i64()
            .ok_or_else(|| RpcFailure::misc("JSON integer out of range"))?;
        if vout < 0 {
            return Err(bad("vout cannot be negative"));
        }
        // Core's MAX_BIP125_RBF_SEQUENCE, MAX_SEQUENCE_NONFINAL, SEQUENCE_FINAL.
        let mut sequence = if rbf.unwrap_or(true) {
            0xffff_fffd
        } else if locktime != 0 {
            0xffff_fffe
        } else {
            0xffff_ffff
        };
        if let Some(s) = o.get("sequence").filter(|v| v.is_number()) {
            sequence = s
                .as_i64()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| bad("sequence number is out of range"))?;
        }
        tx.input.push(bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::new(txid, vout as u32),
            script_sig: ScriptBuf::new(),
            sequence: bitcoin::Sequence(sequence),
            witness: bitcoin::Witness::new(),
        });
    }
    let outputs = match a.get(1) {
        None => return Err(bad("output argument must be non-null")),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>(),
        Some(Value::Array(arr)) => {
            let mut out = Vec::new();
            for pair in arr {
                let o = pair
                    .as_object()
                    .ok_or_else(|| bad("key-value pair not an object as expected"))?;
                if o.len() != 1 {
                    return Err(bad("key-value pair must contain exactly one key"));
                }
                out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            out
        }
        Some(v) => return Err(type_mismatch(v, "array")),
    };
    let mut seen = std::collections::HashSet::new();
    let mut has_data = false;
    for (key, value) in outputs {
        if key == "data" {
            if has_data {
                return Err(bad("duplicate key: data"));
            }
            has_data = true;
            let text = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let data = Vec::<u8>::from_hex(&text).map_err(|_| {
                RpcFailure::invalid_parameter(format!(
                    "Data must be hexadecimal string (not '{text}')"
                ))
            })?;
            let push =
                bitcoin::script::PushBytesBuf::try_from(data).map_err(|_| bad("data too large"))?;
            tx.output.push(TxOut {
                value: bitcoin::Amount::ZERO,
                script_pubkey: ScriptBuf::new_op_return(push),
            });
            continue;
        }
        let address = Address::from_str(&key)
            .ok()
            .and_then(|a| a.require_network(network).ok());
        let Some(address) = address else {
            return Err(RpcFailure::not_found(format!(
                "Invalid Bitcoin address: {key}"
            )));
        };
        let amount = parse_amount(&value)?;
        let script = address.script_pubkey();
        if !seen.insert(script.clone()) {
            return Err(bad(&format!("duplicated address: {key}")));
        }
        tx.output.push(TxOut {
            value: amount,
            script_pubkey: script,
        });
    }
    if rbf == Some(true)
        && !tx.input.is_empty()
        && !tx.input.iter().any(|i| i.sequence.0 < 0xffff_fffe)
    {
        return Err(RpcFailure::invalid_parameter(
            "Invalid parameter combination: Sequence number(s) contradict replaceable option",
        ));
    }
    Ok(tx)
}

/// UniValue's `type_error` as Core's server reports it (-3).
fn type_mismatch(v: &Value, expected: &str) -> RpcFailure {
    RpcFailure::type_error(format!(
        "JSON value of type {} is not of expected type {expected}",
        type_name(v)
    ))
}
