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

use super::backend::*;
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
pub(super) fn tx_json(
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
