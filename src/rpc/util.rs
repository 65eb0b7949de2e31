//! What every RPC method uses (Bitcoin Core's `rpc/util.cpp`): the
//! argument model (JSON types, required and optional arguments, help and
//! usage text), the positional, type-checked [`Args`] of one call, Core's
//! parsers (hashes, amounts, hex transactions) and number formats, and the
//! [`Dispatcher`] the handlers receive. The method table itself is in
//! [`super::methods`]. No thread of its own: RPC worker threads call in.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::consensus::deserialize;
use bitcoin::hex::FromHex;
use bitcoin::{Amount, Transaction};
use serde_json::Value;

use super::backend::*;
use super::protocol::RpcFailure;

/// The JSON type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
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
    /// An object or an array (`createrawtransaction`'s outputs).
    ObjOrArr,
    /// A number or a string (a height or a block hash).
    NumOrStr,
    /// A JSON object.
    Obj,
}

impl Ty {
    pub(super) fn expected(self) -> &'static str {
        match self {
            Ty::Str | Ty::Hex => "string",
            Ty::Num | Ty::NumOrBool | Ty::Amount => "number",
            Ty::Bool => "bool",
            Ty::Arr => "array",
            Ty::ObjOrArr => "object",
            Ty::NumOrStr => "string",
            Ty::Obj => "object",
        }
    }

    pub(super) fn help_name(self) -> &'static str {
        match self {
            Ty::Str | Ty::Hex => "string",
            Ty::Num => "numeric",
            Ty::Bool => "boolean",
            Ty::Amount => "numeric or string",
            Ty::Arr => "json array",
            Ty::NumOrBool => "numeric",
            Ty::ObjOrArr => "json object or array",
            Ty::NumOrStr => "string or numeric",
            Ty::Obj => "json object",
        }
    }

    pub(super) fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str | Ty::Hex => v.is_string(),
            Ty::Num => v.is_number(),
            Ty::Bool => v.is_boolean(),
            Ty::Amount => true,
            Ty::Arr => v.is_array(),
            Ty::NumOrBool => v.is_number() || v.is_boolean(),
            Ty::ObjOrArr => v.is_object() || v.is_array(),
            Ty::NumOrStr => v.is_number() || v.is_string(),
            Ty::Obj => v.is_object(),
        }
    }
}

/// Core's `uvTypeName`.
pub(super) fn type_name(v: &Value) -> &'static str {
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
pub(super) struct Arg {
    pub(super) name: &'static str,
    pub(super) ty: Ty,
    /// `None`: required. `Some(d)`: optional, default `d` ("" = none shown).
    pub(super) default: Option<&'static str>,
    pub(super) desc: &'static str,
}

pub(super) const fn req(name: &'static str, ty: Ty, desc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        default: None,
        desc,
    }
}

pub(super) const fn opt(
    name: &'static str,
    ty: Ty,
    default: &'static str,
    desc: &'static str,
) -> Arg {
    Arg {
        name,
        ty,
        default: Some(default),
        desc,
    }
}

pub(super) type Handler = fn(&Dispatcher, &Args) -> RpcResult<Value>;

/// One RPC method.
pub(super) struct Method {
    pub(super) name: &'static str,
    pub(super) category: &'static str,
    pub(super) args: &'static [Arg],
    pub(super) desc: &'static str,
    pub(super) result: &'static str,
    pub(super) handler: Handler,
}

pub(super) fn usage(m: &Method) -> String {
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
pub(super) fn help_text(m: &Method) -> String {
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

/// Positional, type-checked parameters of one call.
pub struct Args {
    pub(super) v: Vec<Value>,
    /// The method being called (for its help text).
    pub(super) method: &'static Method,
}

impl Args {
    /// Core's help text of the method being called (the error for bad
    /// arguments a handler finds itself).
    pub(super) fn help(&self) -> String {
        help_text(self.method)
    }

    /// The value at `i`, `None` if absent or null.
    pub(super) fn get(&self, i: usize) -> Option<&Value> {
        self.v.get(i).filter(|v| !v.is_null())
    }

    pub(super) fn str(&self, i: usize) -> RpcResult<&str> {
        self.get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcFailure::type_error("Expected type string"))
    }

    pub(super) fn opt_str(&self, i: usize) -> Option<&str> {
        self.get(i).and_then(Value::as_str)
    }

    /// Core's `getInt`: an integral number.
    pub(super) fn int(&self, i: usize) -> RpcResult<Option<i64>> {
        match self.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RpcFailure::misc("JSON integer out of range")),
        }
    }

    pub(super) fn bool_or(&self, i: usize, default: bool) -> bool {
        self.get(i).and_then(Value::as_bool).unwrap_or(default)
    }

    /// A verbosity: a number, or a bool (false = 0, true = 1).
    pub(super) fn verbosity(&self, i: usize, default: i64) -> RpcResult<i64> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            Some(_) => Ok(self.int(i)?.unwrap_or(default)),
        }
    }
}

/// Core's `ParseHashV`.
pub(super) fn parse_hash<T: FromStr>(v: Option<&Value>, name: &str) -> RpcResult<T> {
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
pub(super) const TX_DECODE_FAILED: &str =
    "TX decode failed. Make sure the tx has at least one input.";

pub(super) fn decode_tx(s: &str) -> Option<Transaction> {
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

pub(super) fn signed_amount_json(sats: i64) -> Value {
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
pub(super) fn float_json(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    serde_json::from_str(&format_g16(f)).unwrap_or(Value::Null)
}

pub(super) fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C's `%.16g`.
pub(super) fn format_g16(f: f64) -> String {
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

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs RPC calls against a backend: parameter checking, decoding, the
/// backend call and Core-shaped results.
#[derive(Clone)]
pub struct Dispatcher {
    pub(super) backend: Arc<dyn RpcBackend>,
    /// Calls running now (`getrpcinfo`).
    pub(super) active: Arc<super::active::ActiveCommands>,
}

pub(super) fn block_not_found() -> RpcFailure {
    RpcFailure::not_found("Block not found")
}

impl Dispatcher {
    /// A dispatcher over `backend`.
    pub fn new(backend: Arc<dyn RpcBackend>) -> Dispatcher {
        Dispatcher {
            backend,
            active: Arc::default(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn RpcBackend {
        &*self.backend
    }
}
