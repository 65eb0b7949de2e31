//! Relay policy: standardness of transactions, outputs and inputs, dust, and
//! fee rates (Bitcoin Core `src/policy/policy.cpp`, `feerate.cpp`).
//!
//! Owns [`FeeRate`] and the pure functions [`is_standard_tx`],
//! [`are_inputs_standard`], [`is_witness_standard`], [`dust_threshold`] and
//! [`virtual_size`]. No state and no threads: called by
//! [`crate::mempool::Mempool::accept`] on the caller's thread.

use std::fmt;

use bitcoin::{Amount, Script, Transaction, TxOut};

use super::error::MempoolReject;
use crate::chain::check::script_sigop_count;

/// Largest standard transaction weight (Core `MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// Smallest standard non-witness size (Core
/// `MIN_STANDARD_TX_NONWITNESS_SIZE`).
pub const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Largest standard scriptSig (Core `MAX_STANDARD_SCRIPTSIG_SIZE`).
pub const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;
/// Largest standard OP_RETURN output script, opcodes included (Core
/// `MAX_OP_RETURN_RELAY`, `-datacarriersize` 83).
pub const MAX_OP_RETURN_RELAY: usize = 83;
/// Largest standard sigop cost of one transaction (Core
/// `MAX_STANDARD_TX_SIGOPS_COST`).
pub const MAX_STANDARD_TX_SIGOPS_COST: u64 = 16_000;
/// Largest sigop count of a standard P2SH redeem script (Core
/// `MAX_P2SH_SIGOPS`).
pub const MAX_P2SH_SIGOPS: u64 = 15;
/// Bytes of virtual size charged per sigop (Core `DEFAULT_BYTES_PER_SIGOP`).
pub const BYTES_PER_SIGOP: u64 = 20;
/// Highest standard transaction version (Core `TX_MAX_STANDARD_VERSION`,
/// compared as unsigned like Core's `uint32_t` version).
pub const TX_MAX_STANDARD_VERSION: u32 = 3;
/// Lowest standard transaction version (Core `TX_MIN_STANDARD_VERSION`).
pub const TX_MIN_STANDARD_VERSION: u32 = 1;
/// Largest standard P2WSH witness script (Core
/// `MAX_STANDARD_P2WSH_SCRIPT_SIZE`).
pub const MAX_STANDARD_P2WSH_SCRIPT_SIZE: usize = 3600;
/// Most standard P2WSH stack items, script excluded (Core
/// `MAX_STANDARD_P2WSH_STACK_ITEMS`).
pub const MAX_STANDARD_P2WSH_STACK_ITEMS: usize = 100;
/// Largest standard P2WSH stack item (Core
/// `MAX_STANDARD_P2WSH_STACK_ITEM_SIZE`).
pub const MAX_STANDARD_P2WSH_STACK_ITEM_SIZE: usize = 80;
/// Largest standard tapscript stack item (Core
/// `MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`).
pub const MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE: usize = 80;

/// A fee rate in satoshis per 1,000 virtual bytes (Core `CFeeRate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeeRate(pub u64);

impl FeeRate {
    /// Zero.
    pub const ZERO: FeeRate = FeeRate(0);

    /// `n` satoshis per virtual byte.
    pub const fn from_sat_per_vb(n: u64) -> FeeRate {
        FeeRate(n * 1000)
    }

    /// The rate of paying `fee` for `vsize` virtual bytes (rounded down;
    /// zero for a zero size).
    pub fn from_fee(fee: u64, vsize: u64) -> FeeRate {
        if vsize == 0 {
            return FeeRate::ZERO;
        }
        FeeRate(((u128::from(fee) * 1000) / u128::from(vsize)).min(u128::from(u64::MAX)) as u64)
    }

    /// Satoshis per 1,000 virtual bytes.
    pub fn sat_per_kvb(self) -> u64 {
        self.0
    }

    /// The fee for `vsize` virtual bytes, rounded up (Core `GetFee`).
    pub fn fee(self, vsize: u64) -> u64 {
        let n = u128::from(self.0) * u128::from(vsize);
        n.div_ceil(1000).min(u128::from(u64::MAX)) as u64
    }

    /// As BTC per kvB, the unit of Core's RPC fields.
    pub fn btc_per_kvb(self) -> f64 {
        self.0 as f64 / 100_000_000.0
    }
}

impl fmt::Display for FeeRate {
    /// Core's `CFeeRate::ToString()`: `"0.00001000 BTC/kvB"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:08} BTC/kvB",
            self.0 / 100_000_000,
            self.0 % 100_000_000
        )
    }
}

/// Compares the fee rates `fee_a / size_a` and `fee_b / size_b` exactly.
pub fn cmp_feerate(fee_a: u64, size_a: u64, fee_b: u64, size_b: u64) -> std::cmp::Ordering {
    (u128::from(fee_a) * u128::from(size_b)).cmp(&(u128::from(fee_b) * u128::from(size_a)))
}

/// Virtual size for policy (Core `GetVirtualTransactionSize`): weight / 4
/// rounded up, or the sigop-adjusted size when larger.
pub fn virtual_size(weight: u64, sigop_cost: u64) -> u64 {
    weight
        .max(sigop_cost.saturating_mul(BYTES_PER_SIGOP))
        .div_ceil(4)
}

/// Standard output kinds (Core `TxoutType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// Pay to public key.
    PubKey,
    /// Pay to public key hash.
    PubKeyHash,
    /// Pay to script hash.
    ScriptHash,
    /// Bare `m`-of-`n` multisig.
    Multisig {
        /// Signatures required.
        m: u8,
        /// Keys.
        n: u8,
    },
    /// OP_RETURN followed by pushes.
    NullData,
    /// Witness v0 key hash.
    WitnessV0KeyHash,
    /// Witness v0 script hash.
    WitnessV0ScriptHash,
    /// Witness v1 taproot.
    WitnessV1Taproot,
    /// Pay-to-anchor (`OP_1 <0x4e73>`).
    Anchor,
    /// Another witness version or program length.
    WitnessUnknown,
    /// Anything else.
    NonStandard,
}

/// Core `Solver`: the standard type of an output script.
pub fn solve(script: &Script) -> OutputType {
    let b = script.as_bytes();
    if script.is_p2sh() {
        return OutputType::ScriptHash;
    }
    if let Some(version) = script.witness_version() {
        let program = &b[2..];
        return match (version.to_num(), program.len()) {
            (0, 20) => OutputType::WitnessV0KeyHash,
            (0, 32) => OutputType::WitnessV0ScriptHash,
            (0, _) => OutputType::NonStandard,
            (1, 32) => OutputType::WitnessV1Taproot,
            (1, 2) if program == [0x4e, 0x73] => OutputType::Anchor,
            _ => OutputType::WitnessUnknown,
        };
    }
    if b.first() == Some(&0x6a) && b.len() > 1 && Script::from_bytes(&b[1..]).is_push_only() {
        return OutputType::NullData;
    }
    if b == [0x6a] {
        return OutputType::NullData;
    }
    if script.is_p2pk() {
        return OutputType::PubKey;
    }
    if script.is_p2pkh() {
        return OutputType::PubKeyHash;
    }
    if let Some((m, n)) = multisig(b) {
        return OutputType::Multisig { m, n };
    }
    OutputType::NonStandard
}

/// `(m, n)` of a bare `OP_m <keys> OP_n OP_CHECKMULTISIG` script with
/// 33- or 65-byte keys.
fn multisig(b: &[u8]) -> Option<(u8, u8)> {
    let small = |op: u8| (0x51..=0x60).contains(&op).then(|| op - 0x50);
    if b.len() < 3 || *b.last()? != 0xae {
        return None;
    }
    let m = small(b[0])?;
    let n = small(b[b.len() - 2])?;
    let mut pc = 1;
    let mut keys = 0usize;
    while pc < b.len() - 2 {
        let len = b[pc] as usize;
        if len != 33 && len != 65 {
            return None;
        }
        pc += 1 + len;
        keys += 1;
    }
    (pc == b.len() - 2 && keys == usize::from(n) && m <= n).then_some((m, n))
}

/// Core `IsStandard(scriptPubKey)`: the type if standard. Bare multisig
/// must be 1..=3 of 1..=3; OP_RETURN outputs at most
/// [`MAX_OP_RETURN_RELAY`] bytes.
pub fn standard_output_type(script: &Script) -> Option<OutputType> {
    match solve(script) {
        OutputType::NonStandard => None,
        OutputType::Multisig { m, n } if !(1..=3).contains(&n) || m < 1 || m > n => None,
        OutputType::NullData if script.len() > MAX_OP_RETURN_RELAY => None,
        t => Some(t),
    }
}

/// Core `GetDustThreshold`: the value below which `out` costs more to spend
/// than it is worth at `dust_relay_feerate`; zero for unspendable outputs.
pub fn dust_threshold(out: &TxOut, dust_relay_feerate: FeeRate) -> u64 {
    let spk = &out.script_pubkey;
    if spk.is_op_return() || spk.len() > 10_000 {
        return 0;
    }
    let out_size = bitcoin::consensus::serialize(out).len() as u64;
    let spend = if spk.is_witness_program() {
        32 + 4 + 1 + (107 / 4) + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    dust_relay_feerate.fee(out_size + spend)
}

/// Core `IsDust`.
pub fn is_dust(out: &TxOut, dust_relay_feerate: FeeRate) -> bool {
    out.value < Amount::from_sat(dust_threshold(out, dust_relay_feerate))
}

/// Core `IsStandardTx` (with bare multisig permitted, Core's default):
/// `"version"`, `"tx-size"`, `"scriptsig-size"`, `"scriptsig-not-pushonly"`,
/// `"scriptpubkey"`, `"dust"`, `"multi-op-return"`.
pub fn is_standard_tx(
    tx: &Transaction,
    max_weight: u64,
    dust_relay_feerate: FeeRate,
) -> Result<(), MempoolReject> {
    let ns = MempoolReject::not_standard;
    // Core's `tx.version` is a uint32_t: read the wire value as unsigned, so
    // 0xffffffff is version 4294967295 (too high), not -1.
    let version = tx.version.0 as u32;
    if !(TX_MIN_STANDARD_VERSION..=TX_MAX_STANDARD_VERSION).contains(&version) {
        return Err(ns("version"));
    }
    if tx.weight().to_wu() > max_weight {
        return Err(ns("tx-size"));
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(ns("scriptsig-size"));
        }
        if !input.script_sig.is_push_only() {
            return Err(ns("scriptsig-not-pushonly"));
        }
    }
    let mut data_outputs = 0;
    for out in &tx.output {
        match standard_output_type(&out.script_pubkey) {
            None => return Err(ns("scriptpubkey")),
            Some(OutputType::NullData) => data_outputs += 1,
            Some(_) if is_dust(out, dust_relay_feerate) => return Err(ns("dust")),
            Some(_) => {}
        }
    }
    if data_outputs > 1 {
        return Err(ns("multi-op-return"));
    }
    Ok(())
}

/// Last push of a push-only script sig, if it is push-only.
fn last_push(script_sig: &Script) -> Option<Vec<u8>> {
    use bitcoin::script::Instruction;
    let mut last = Vec::new();
    for ins in script_sig.instructions() {
        match ins.ok()? {
            Instruction::PushBytes(p) => last = p.as_bytes().to_vec(),
            Instruction::Op(op) => {
                // OP_1NEGATE, OP_1..OP_16 push small numbers.
                let code = op.to_u8();
                if code > 0x60 {
                    return None;
                }
                last = Vec::new();
            }
        }
    }
    Some(last)
}

/// Core `AreInputsStandard`: every spent output is of a standard type (not
/// witness-unknown), and P2SH redeem scripts have at most
/// [`MAX_P2SH_SIGOPS`] sigops. `spent` holds one output per input.
pub fn are_inputs_standard(tx: &Transaction, spent: &[TxOut]) -> bool {
    for (input, prev) in tx.input.iter().zip(spent) {
        match solve(&prev.script_pubkey) {
            OutputType::NonStandard | OutputType::WitnessUnknown => return false,
            OutputType::ScriptHash => match last_push(&input.script_sig) {
                Some(redeem) if script_sigop_count(&redeem, true) <= MAX_P2SH_SIGOPS => {}
                _ => return false,
            },
            _ => {}
        }
    }
    true
}

/// Core `IsWitnessStandard` (main rules): no witness data for non-witness
/// spends, P2WSH scripts and stacks within limits, no taproot annex,
/// tapscript stack items within limits. `spent` holds one output per input.
pub fn is_witness_standard(tx: &Transaction, spent: &[TxOut]) -> bool {
    for (input, prev) in tx.input.iter().zip(spent) {
        if input.witness.is_empty() {
            continue;
        }
        let mut spk = prev.script_pubkey.clone();
        let mut p2sh = false;
        if spk.is_p2sh() {
            match last_push(&input.script_sig) {
                Some(redeem) => spk = bitcoin::ScriptBuf::from_bytes(redeem),
                None => return false,
            }
            p2sh = true;
        }
        let Some(version) = spk.witness_version() else {
            // Witness data on a non-witness spend.
            return false;
        };
        let program_len = spk.len() - 2;
        let items: Vec<&[u8]> = input.witness.iter().collect();
        if version.to_num() == 0 && program_len == 32 {
            let Some((script, stack)) = items.split_last() else {
                return false;
            };
            if script.len() > MAX_STANDARD_P2WSH_SCRIPT_SIZE
                || stack.len() > MAX_STANDARD_P2WSH_STACK_ITEMS
                || stack
                    .iter()
                    .any(|i| i.len() > MAX_STANDARD_P2WSH_STACK_ITEM_SIZE)
            {
                return false;
            }
        }
        if version.to_num() == 1 && program_len == 32 && !p2sh {
            let mut stack = items.as_slice();
            if stack.len() >= 2 && stack.last().is_some_and(|a| a.first() == Some(&0x50)) {
                // Annex present.
                return false;
            }
            if stack.len() >= 2 {
                // Script path: control block, script, then the stack.
                let control = stack[stack.len() - 1];
                stack = &stack[..stack.len() - 2];
                if control.first().is_some_and(|c| c & 0xfe == 0xc0)
                    && stack
                        .iter()
                        .any(|i| i.len() > MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE)
                {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::transaction::Version;
    use bitcoin::{absolute, OutPoint, ScriptBuf, Sequence, TxIn, Witness};

    #[test]
    fn version_is_read_unsigned() {
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(100_000),
                script_pubkey: ScriptBuf::new_op_return([0u8; 4]),
            }],
        };
        let reason = |tx: &Transaction| {
            is_standard_tx(tx, MAX_STANDARD_TX_WEIGHT, FeeRate(3000))
                .err()
                .map(|e| e.to_string())
        };
        for v in [1, 2, 3] {
            tx.version = Version(v);
            assert_eq!(reason(&tx), None, "version {v}");
        }
        // 0, 4, 0xffffffff (-1 signed) and 0x80000000 are all out of range
        // as Core's uint32_t.
        for v in [0, 4, -1, i32::MIN] {
            tx.version = Version(v);
            let r = reason(&tx).expect("non-standard");
            assert!(r.contains("version"), "version {v}: {r}");
        }
    }
}
