//! Block and transaction consensus checks, as pure functions.
//!
//! Owns the rules of Bitcoin Core's `CheckBlock`, `CheckTransaction`,
//! `ContextualCheckBlockHeader`, `ContextualCheckBlock`,
//! `Consensus::CheckTxInputs`, BIP68 sequence locks, sigop counting,
//! `GetBlockSubsidy`, the coinbase value limit and BIP30, with Core's reject
//! reasons. Nothing here touches storage: the chain layer passes in the
//! ancestry, the spent coins and the current time. Runs on the chain /
//! sync-manager thread. No input can make these functions panic.

use std::collections::HashSet;

use bitcoin::block::Header;
use bitcoin::consensus::encode::VarInt;
use bitcoin::{Amount, Block, BlockHash, OutPoint, Transaction, TxOut, Witness};

use super::error::{RejectKind, ValidationError};
use super::params::{ChainParams, MAX_FUTURE_BLOCK_TIME, MAX_TIMEWARP};
use super::pow::{self, HeaderAncestry};
use super::script;

// The merkle and witness-commitment formulas live in `merkle.rs` (below
// `signet.rs`, which needs them too); re-exported so `check::` names them.
pub(crate) use super::merkle::get_op;
pub use super::merkle::{
    block_merkle_root, block_witness_merkle_root, compute_merkle_root, witness_commitment,
    witness_commitment_index, WITNESS_COMMITMENT_HEADER,
};

/// Maximum block weight (BIP141).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Maximum sigop cost of a block (BIP141).
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// Weight of a non-witness byte.
pub const WITNESS_SCALE_FACTOR: u64 = 4;
/// 21 million BTC in satoshis (Core `MAX_MONEY`).
pub const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
/// Lock times below this are heights, at or above it UNIX times.
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// Height from which BIP30 is enforced again regardless of BIP34 (Core
/// `BIP34_IMPLIES_BIP30_LIMIT`).
pub const BIP34_IMPLIES_BIP30_LIMIT: u32 = 1_983_702;

const SEQUENCE_FINAL: u32 = 0xffff_ffff;
const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;
const MAX_PUBKEYS_PER_MULTISIG: u64 = 20;

fn money_range(v: u64) -> bool {
    v <= MAX_MONEY
}

// ---------------------------------------------------------------------------
// Script scanning (sigops, BIP34 prefix)
// ---------------------------------------------------------------------------

/// Core's `CScript::GetSigOpCount(fAccurate)`.
pub fn script_sigop_count(script: &[u8], accurate: bool) -> u64 {
    let mut n = 0u64;
    let mut last = 0xffu8;
    let mut pc = 0;
    while let Ok(Some((op, _))) = get_op(script, &mut pc) {
        match op {
            0xac | 0xad => n += 1,
            0xae | 0xaf => {
                if accurate && (0x51..=0x60).contains(&last) {
                    n += u64::from(last - 0x50);
                } else {
                    n += MAX_PUBKEYS_PER_MULTISIG;
                }
            }
            _ => {}
        }
        last = op;
    }
    n
}

fn is_p2sh(s: &[u8]) -> bool {
    s.len() == 23 && s[0] == 0xa9 && s[1] == 0x14 && s[22] == 0x87
}

/// `(version, program)` if `s` is a witness program (Core
/// `IsWitnessProgram`).
fn witness_program(s: &[u8]) -> Option<(u8, &[u8])> {
    if s.len() < 4 || s.len() > 42 {
        return None;
    }
    let version = match s[0] {
        0 => 0,
        op @ 0x51..=0x60 => op - 0x50,
        _ => return None,
    };
    if s[1] as usize + 2 != s.len() {
        return None;
    }
    Some((version, &s[2..]))
}

fn is_push_only(s: &[u8]) -> bool {
    let mut pc = 0;
    loop {
        match get_op(s, &mut pc) {
            Ok(None) => return true,
            Ok(Some((op, _))) if op <= 0x60 => continue,
            _ => return false,
        }
    }
}

/// Last push of a script sig (empty if the last op is not a push).
fn last_push(script_sig: &[u8]) -> Option<&[u8]> {
    let mut pc = 0;
    let mut data: &[u8] = &[];
    loop {
        match get_op(script_sig, &mut pc) {
            Ok(None) => return Some(data),
            Ok(Some((op, d))) => {
                if op > 0x60 {
                    return None;
                }
                data = d;
            }
            Err(()) => return None,
        }
    }
}

/// Legacy (pre-P2SH, inaccurate) sigops of a transaction's scripts (Core
/// `GetLegacySigOpCount`).
pub fn legacy_sigop_count(tx: &Transaction) -> u64 {
    let ins: u64 = tx
        .input
        .iter()
        .map(|i| script_sigop_count(i.script_sig.as_bytes(), false))
        .sum();
    let outs: u64 = tx
        .output
        .iter()
        .map(|o| script_sigop_count(o.script_pubkey.as_bytes(), false))
        .sum();
    ins + outs
}

/// Sigops in the redeem scripts of P2SH inputs (Core `GetP2SHSigOpCount`).
/// `spent` holds the outputs spent by `tx`'s inputs, in order.
pub fn p2sh_sigop_count(tx: &Transaction, spent: &[TxOut]) -> u64 {
    if tx.is_coinbase() {
        return 0;
    }
    tx.input
        .iter()
        .zip(spent)
        .filter(|(_, prev)| is_p2sh(prev.script_pubkey.as_bytes()))
        .map(|(input, _)| match last_push(input.script_sig.as_bytes()) {
            Some(redeem) => script_sigop_count(redeem, true),
            None => 0,
        })
        .sum()
}

fn witness_sigops(version: u8, program: &[u8], witness: &Witness) -> u64 {
    if version == 0 {
        if program.len() == 20 {
            return 1;
        }
        if program.len() == 32 {
            if let Some(script) = witness.last() {
                return script_sigop_count(script, true);
            }
        }
    }
    0
}

/// Witness sigops of one input (Core `CountWitnessSigOps`).
fn count_witness_sigops(
    script_sig: &[u8],
    prev_script: &[u8],
    witness: &Witness,
    flags: u32,
) -> u64 {
    if flags & script::VERIFY_WITNESS == 0 {
        return 0;
    }
    if let Some((v, p)) = witness_program(prev_script) {
        return witness_sigops(v, p, witness);
    }
    if is_p2sh(prev_script) && is_push_only(script_sig) {
        if let Some(redeem) = last_push(script_sig) {
            if let Some((v, p)) = witness_program(redeem) {
                return witness_sigops(v, p, witness);
            }
        }
    }
    0
}

/// Sigop cost of a transaction (Core `GetTransactionSigOpCost`): legacy
/// sigops ×4, P2SH sigops ×4 when `flags` has P2SH, plus witness sigops.
/// `spent` holds the outputs spent by the inputs (ignored for a coinbase).
pub fn get_transaction_sigop_cost(
    tx: &Transaction,
    spent: &[TxOut],
    flags: u32,
) -> Result<u64, ValidationError> {
    let mut cost = legacy_sigop_count(tx) * WITNESS_SCALE_FACTOR;
    if tx.is_coinbase() {
        return Ok(cost);
    }
    if spent.len() != tx.input.len() {
        return Err(ValidationError::new(
            RejectKind::MissingInputs,
            "bad-txns-inputs-missingorspent",
        ));
    }
    if flags & script::VERIFY_P2SH != 0 {
        cost += p2sh_sigop_count(tx, spent) * WITNESS_SCALE_FACTOR;
    }
    for (input, prev) in tx.input.iter().zip(spent) {
        cost += count_witness_sigops(
            input.script_sig.as_bytes(),
            prev.script_pubkey.as_bytes(),
            &input.witness,
            flags,
        );
    }
    Ok(cost)
}

/// The script `CScript() << height` a BIP34 coinbase must start with.
pub fn bip34_height_prefix(height: u32) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let mut num = Vec::with_capacity(5);
            let mut n = height;
            while n > 0 {
                num.push((n & 0xff) as u8);
                n >>= 8;
            }
            if num.last().is_some_and(|b| b & 0x80 != 0) {
                num.push(0);
            }
            let mut out = Vec::with_capacity(num.len() + 1);
            out.push(num.len() as u8);
            out.extend_from_slice(&num);
            out
        }
    }
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// Context-free transaction sanity (Core `CheckTransaction`): inputs and
/// outputs present, stripped size within the block limit, output values in
/// range, no duplicate inputs, coinbase script 2..=100 bytes, no null
/// prevouts outside the coinbase.
pub fn check_transaction(tx: &Transaction) -> Result<(), ValidationError> {
    let c = ValidationError::consensus;
    if tx.input.is_empty() {
        return Err(c("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(c("bad-txns-vout-empty"));
    }
    if tx.base_size() as u64 * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Err(c("bad-txns-oversize"));
    }
    let mut total: u64 = 0;
    for (i, out) in tx.output.iter().enumerate() {
        let v = out.value.to_sat();
        // Values are signed on the wire; the bitcoin crate reads them as u64.
        if (v as i64) < 0 {
            return Err(c("bad-txns-vout-negative").with_detail(format!("output {i}")));
        }
        if v > MAX_MONEY {
            return Err(c("bad-txns-vout-toolarge").with_detail(format!("output {i}")));
        }
        total += v; // both <= MAX_MONEY, cannot overflow
        if !money_range(total) {
            return Err(c("bad-txns-txouttotal-toolarge"));
        }
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    for input in &tx.input {
        if !seen.insert(input.previous_output) {
            return Err(c("bad-txns-inputs-duplicate"));
        }
    }
    if tx.is_coinbase() {
        let len = tx.input.first().map_or(0, |i| i.script_sig.len());
        if !(2..=100).contains(&len) {
            return Err(c("bad-cb-length"));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(c("bad-txns-prevout-null"));
    }
    Ok(())
}

/// Core `IsFinalTx`: lock time 0, or below the height / time cutoff, or
/// every input's sequence final.
pub fn is_final_tx(tx: &Transaction, height: u32, block_time: i64) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let cutoff = if lock < LOCKTIME_THRESHOLD {
        i64::from(height)
    } else {
        block_time
    };
    if i64::from(lock) < cutoff {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.0 == SEQUENCE_FINAL)
}

/// An unspent output being spent, as the UTXO set stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output itself.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was created by a coinbase.
    pub is_coinbase: bool,
}

impl From<crate::store::Coin> for Coin {
    /// The UTXO set's coin as the checks see it.
    fn from(c: crate::store::Coin) -> Coin {
        Coin {
            output: TxOut {
                value: c.amount,
                script_pubkey: c.script_pubkey,
            },
            height: c.height,
            is_coinbase: c.is_coinbase,
        }
    }
}

/// Core `Consensus::CheckTxInputs`: `spent` are the coins spent by `tx`'s
/// inputs, in order (the caller reports missing ones; a length mismatch is
/// `"bad-txns-inputs-missingorspent"`). Checks coinbase maturity at
/// `spend_height`, input value ranges, and inputs >= outputs. Returns the
/// fee.
pub fn check_tx_inputs(
    tx: &Transaction,
    spent: &[Coin],
    spend_height: u32,
    params: &ChainParams,
) -> Result<Amount, ValidationError> {
    if spent.len() != tx.input.len() {
        return Err(ValidationError::new(
            RejectKind::MissingInputs,
            "bad-txns-inputs-missingorspent",
        ));
    }
    let mut value_in: u64 = 0;
    for (i, coin) in spent.iter().enumerate() {
        if coin.is_coinbase
            && i64::from(spend_height) - i64::from(coin.height)
                < i64::from(params.coinbase_maturity)
        {
            return Err(ValidationError::new(
                RejectKind::PrematureSpend,
                "bad-txns-premature-spend-of-coinbase",
            )
            .with_detail(format!(
                "tried to spend coinbase at depth {}",
                i64::from(spend_height) - i64::from(coin.height)
            ))
            .with_input(i));
        }
        let v = coin.output.value.to_sat();
        value_in = value_in.saturating_add(v);
        if !money_range(v) || !money_range(value_in) {
            return Err(
                ValidationError::consensus("bad-txns-inputvalues-outofrange").with_input(i),
            );
        }
    }
    let value_out = tx
        .output
        .iter()
        .try_fold(0u64, |acc, o| acc.checked_add(o.value.to_sat()))
        .unwrap_or(u64::MAX);
    if value_in < value_out {
        return Err(ValidationError::consensus("bad-txns-in-belowout")
            .with_detail(format!("value in {value_in} < value out {value_out}")));
    }
    let fee = value_in - value_out;
    if !money_range(fee) {
        return Err(ValidationError::consensus("bad-txns-fee-outofrange"));
    }
    Ok(Amount::from_sat(fee))
}

/// Adds a transaction fee to a block's running total, failing with Core's
/// `"bad-txns-accumulated-fee-outofrange"` above `MAX_MONEY`.
pub fn accumulate_fee(total: Amount, fee: Amount) -> Result<Amount, ValidationError> {
    let sum = total.to_sat().saturating_add(fee.to_sat());
    if !money_range(sum) {
        return Err(ValidationError::consensus(
            "bad-txns-accumulated-fee-outofrange",
        ));
    }
    Ok(Amount::from_sat(sum))
}

/// BIP68 lock of a transaction: it may be included in a block at height
/// greater than `min_height` whose parent's median time past is greater
/// than `min_time`; `-1` means no constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceLocks {
    /// Last height at which the transaction is still locked.
    pub min_height: i64,
    /// Last median time past at which the transaction is still locked.
    pub min_time: i64,
}

/// Core `CalculateSequenceLocks`. `enforce_bip68` is true when CSV is active
/// for the block being connected; `prev_heights` are the heights of the
/// coins spent by each input; `mtp_at(h)` returns the median time past of
/// the ancestor at height `h` of the block being connected.
pub fn calculate_sequence_locks<F>(
    tx: &Transaction,
    enforce_bip68: bool,
    prev_heights: &[u32],
    mtp_at: F,
) -> Result<SequenceLocks, ValidationError>
where
    F: Fn(u32) -> Option<i64>,
{
    let mut locks = SequenceLocks {
        min_height: -1,
        min_time: -1,
    };
    // BIP68 compares the version as unsigned.
    if !(enforce_bip68 && tx.version.0 as u32 >= 2) {
        return Ok(locks);
    }
    if prev_heights.len() != tx.input.len() {
        return Err(ValidationError::internal("bad-sequence-lock-inputs")
            .with_detail("one coin height is needed per input"));
    }
    for (i, (input, &coin_height)) in tx.input.iter().zip(prev_heights).enumerate() {
        let seq = input.sequence.0;
        if seq & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue;
        }
        let value = i64::from(seq & SEQUENCE_LOCKTIME_MASK);
        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            let h = coin_height.saturating_sub(1);
            let coin_time = mtp_at(h).ok_or_else(|| {
                ValidationError::internal("missing-ancestor")
                    .with_detail(format!("no median time past for height {h}"))
                    .with_input(i)
            })?;
            locks.min_time = locks
                .min_time
                .max(coin_time + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1);
        } else {
            locks.min_height = locks.min_height.max(i64::from(coin_height) + value - 1);
        }
    }
    Ok(locks)
}

/// Core `EvaluateSequenceLocks`: true when a block at `block_height` whose
/// parent has median time past `prev_mtp` satisfies `locks`.
pub fn evaluate_sequence_locks(block_height: u32, prev_mtp: i64, locks: SequenceLocks) -> bool {
    !(locks.min_height >= i64::from(block_height) || locks.min_time >= prev_mtp)
}

/// Both steps for a transaction in a block: `"bad-txns-nonfinal"` when its
/// BIP68 locks are not met at `block_height` (parent MTP `prev_mtp`).
pub fn check_sequence_locks<F>(
    tx: &Transaction,
    block_height: u32,
    prev_mtp: i64,
    prev_heights: &[u32],
    params: &ChainParams,
    mtp_at: F,
) -> Result<(), ValidationError>
where
    F: Fn(u32) -> Option<i64>,
{
    let enforce = block_height >= params.csv_height;
    let locks = calculate_sequence_locks(tx, enforce, prev_heights, mtp_at)?;
    if !evaluate_sequence_locks(block_height, prev_mtp, locks) {
        return Err(ValidationError::consensus("bad-txns-nonfinal")
            .with_detail("contains a non-bip68-final transaction"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------

/// Context-free header check (Core `CheckBlockHeader`): proof of work.
pub fn check_block_header(header: &Header, params: &ChainParams) -> Result<(), ValidationError> {
    pow::check_proof_of_work(header, params)
}

/// Size of the block serialised without witness data.
pub fn stripped_size(block: &Block) -> u64 {
    let txs: u64 = block.txdata.iter().map(|tx| tx.base_size() as u64).sum();
    80 + VarInt(block.txdata.len() as u64).size() as u64 + txs
}

/// Context-free block check (Core `CheckBlock`): proof of work, the signet
/// block solution (signets only, `"bad-signet-blksig"`), merkle root
/// and its CVE-2012-2459 mutation, size limits, exactly one coinbase in
/// first position, every transaction's sanity, legacy sigops.
///
/// Merkle failures are [`RejectKind::Mutated`]. No failure of this check
/// may mark the hash invalid (Core's `ProcessNewBlock`): the chain state
/// only reports it and punishes the sender.
pub fn check_block(block: &Block, params: &ChainParams) -> Result<(), ValidationError> {
    check_block_header(&block.header, params)?;
    // Signet only, as Core: right after the proof of work.
    super::signet::check_signet_block_solution(block, params)?;

    let (root, mutated) = block_merkle_root(block);
    if root != block.header.merkle_root {
        return Err(
            ValidationError::mutated("bad-txnmrklroot").with_detail("hashmerkleroot mismatch")
        );
    }
    if mutated {
        return Err(
            ValidationError::mutated("bad-txns-duplicate").with_detail("duplicate transaction")
        );
    }

    if block.txdata.is_empty()
        || block.txdata.len() as u64 * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT
        || stripped_size(block) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT
    {
        return Err(ValidationError::consensus("bad-blk-length").with_detail("size limits failed"));
    }

    if !block.txdata.first().is_some_and(|tx| tx.is_coinbase()) {
        return Err(
            ValidationError::consensus("bad-cb-missing").with_detail("first tx is not coinbase")
        );
    }
    if let Some(i) = block.txdata.iter().skip(1).position(|tx| tx.is_coinbase()) {
        return Err(ValidationError::consensus("bad-cb-multiple")
            .with_detail("more than one coinbase")
            .with_tx(i + 1));
    }

    for (i, tx) in block.txdata.iter().enumerate() {
        check_transaction(tx).map_err(|e| e.with_kind(RejectKind::Consensus).with_tx(i))?;
    }

    let sigops: u64 = block.txdata.iter().map(legacy_sigop_count).sum();
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST {
        return Err(
            ValidationError::consensus("bad-blk-sigops").with_detail("out-of-bounds sigopcount")
        );
    }
    Ok(())
}

/// Header checks that need the chain (Core `ContextualCheckBlockHeader`):
/// `nBits` equals the required work, a checkpoint at this height matches,
/// the time is after the parent's median time past and not more than two
/// hours after `adjusted_time` (the node's clock, UNIX seconds), and the
/// version is at least 2/3/4 once BIP34/66/65 are active.
///
/// `prev` is the chain the header extends (its tip is the header's parent).
pub fn check_block_header_context<A: HeaderAncestry + ?Sized>(
    header: &Header,
    prev: &A,
    adjusted_time: u64,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    let prev_height = prev.height();
    let height = prev_height
        .checked_add(1)
        .ok_or_else(|| ValidationError::internal("height-overflow"))?;

    let expected = pow::next_work_required(prev, header.time, params)?;
    if header.bits != expected {
        return Err(ValidationError::header("bad-diffbits").with_detail(format!(
            "incorrect proof of work: 0x{:08x} != 0x{:08x}",
            header.bits.to_consensus(),
            expected.to_consensus()
        )));
    }

    if let Some(cp) = params.checkpoint_at(height) {
        if cp != header.block_hash() {
            return Err(
                ValidationError::new(RejectKind::Checkpoint, "checkpoint mismatch")
                    .with_detail(format!("height {height}")),
            );
        }
    }

    let mtp = pow::median_time_past_at(prev, prev_height)?;
    if header.time <= mtp {
        return Err(
            ValidationError::header("time-too-old").with_detail("block's timestamp is too early")
        );
    }
    // BIP94 (testnet4): the first block of a difficulty period may not be
    // more than MAX_TIMEWARP before its parent (Core
    // `ContextualCheckBlockHeader`, "time-timewarp-attack").
    if params.enforce_bip94 && height.is_multiple_of(params.difficulty_adjustment_interval().max(1))
    {
        let parent = prev
            .header_at(prev_height)
            .ok_or_else(|| ValidationError::internal("missing-parent"))?;
        if i64::from(header.time) < i64::from(parent.time) - i64::from(MAX_TIMEWARP) {
            return Err(ValidationError::header("time-timewarp-attack")
                .with_detail("block's timestamp is too early on diff adjustment block"));
        }
    }
    if u64::from(header.time) > adjusted_time.saturating_add(u64::from(MAX_FUTURE_BLOCK_TIME)) {
        return Err(ValidationError::new(RejectKind::TimeFuture, "time-too-new")
            .with_detail("block timestamp too far in the future"));
    }

    let version = header.version.to_consensus();
    if (version < 2 && height >= params.bip34_height)
        || (version < 3 && height >= params.bip66_height)
        || (version < 4 && height >= params.bip65_height)
    {
        return Err(
            ValidationError::header(format!("bad-version(0x{:08x})", version as u32))
                .with_detail(format!("rejected nversion=0x{:08x} block", version as u32)),
        );
    }
    Ok(())
}

/// Core's guard against forks below the last checkpoint: a header at
/// `height` is rejected with `"bad-fork-prior-to-checkpoint"` when the block
/// index already holds a checkpoint at `last_checkpoint_in_index` above it.
pub fn check_fork_prior_to_checkpoint(
    height: u32,
    last_checkpoint_in_index: Option<u32>,
) -> Result<(), ValidationError> {
    match last_checkpoint_in_index {
        Some(cp) if height < cp => Err(ValidationError::new(
            RejectKind::Checkpoint,
            "bad-fork-prior-to-checkpoint",
        )),
        _ => Ok(()),
    }
}

/// Block checks that need the parent but not the UTXO set (Core
/// `ContextualCheckBlock`): every transaction final (BIP113: against the
/// parent's median time past `prev_mtp` once CSV is active, else the block
/// time), BIP34 height prefix in the coinbase, the BIP141 witness
/// commitment (or no witness data at all), and the block weight.
///
/// `height` is the block's height; `prev_mtp` its parent's median time past.
pub fn contextual_check_block(
    block: &Block,
    height: u32,
    prev_mtp: u32,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    let cutoff = if height >= params.csv_height {
        i64::from(prev_mtp)
    } else {
        i64::from(block.header.time)
    };
    for (i, tx) in block.txdata.iter().enumerate() {
        if !is_final_tx(tx, height, cutoff) {
            return Err(ValidationError::consensus("bad-txns-nonfinal")
                .with_detail("non-final transaction")
                .with_tx(i));
        }
    }

    let coinbase = block
        .txdata
        .first()
        .and_then(|tx| tx.input.first())
        .ok_or_else(|| ValidationError::consensus("bad-cb-missing"))?;
    if height >= params.bip34_height {
        let expect = bip34_height_prefix(height);
        if !coinbase.script_sig.as_bytes().starts_with(&expect) {
            return Err(ValidationError::consensus("bad-cb-height")
                .with_detail("block height mismatch in coinbase"));
        }
    }

    let mut have_witness = false;
    if height >= params.segwit_height {
        if let Some(pos) = witness_commitment_index(block) {
            let reserved = match (coinbase.witness.len(), coinbase.witness.nth(0)) {
                (1, Some(r)) if r.len() == 32 => r,
                _ => {
                    return Err(ValidationError::mutated("bad-witness-nonce-size")
                        .with_detail("invalid witness reserved value size"))
                }
            };
            let root = block_witness_merkle_root(block);
            let commitment = witness_commitment(&root, reserved);
            let committed = block
                .txdata
                .first()
                .and_then(|tx| tx.output.get(pos))
                .and_then(|o| o.script_pubkey.as_bytes().get(6..38));
            if committed != Some(&commitment[..]) {
                return Err(ValidationError::mutated("bad-witness-merkle-match")
                    .with_detail("witness merkle commitment mismatch"));
            }
            have_witness = true;
        }
    }
    if !have_witness {
        if let Some(i) = block
            .txdata
            .iter()
            .position(|tx| tx.input.iter().any(|i| !i.witness.is_empty()))
        {
            return Err(ValidationError::mutated("unexpected-witness")
                .with_detail("unexpected witness data found")
                .with_tx(i));
        }
    }

    // Core classes this BLOCK_CONSENSUS; strand does not cache it against
    // the hash: the weight is computed from the body, and a body that
    // merely hashes to the same merkle root (a subtree standing in for a
    // 64-byte transaction) can weigh more than the block that was mined.
    // The sender is punished all the same.
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Err(ValidationError::mutated("bad-blk-weight").with_detail("weight limit failed"));
    }
    Ok(())
}

/// Block subsidy at `height` (Core `GetBlockSubsidy`): 50 BTC halved every
/// `subsidy_halving_interval` blocks, zero after 64 halvings.
pub fn block_subsidy(height: u32, params: &ChainParams) -> Amount {
    subsidy_at(height, params.subsidy_halving_interval)
}

/// [`block_subsidy`] for a halving interval given directly (block
/// templates carry the interval, not the parameters).
pub fn subsidy_at(height: u32, halving_interval: u32) -> Amount {
    let halvings = height / halving_interval.max(1);
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The coinbase may claim at most subsidy + fees (`"bad-cb-amount"`).
pub fn check_coinbase_amount(
    block: &Block,
    height: u32,
    fees: Amount,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    let paid = block
        .txdata
        .first()
        .map(|cb| {
            cb.output
                .iter()
                .fold(0u64, |acc, o| acc.saturating_add(o.value.to_sat()))
        })
        .unwrap_or(0);
    let allowed = block_subsidy(height, params)
        .to_sat()
        .saturating_add(fees.to_sat());
    if paid > allowed {
        return Err(
            ValidationError::consensus("bad-cb-amount").with_detail(format!(
                "coinbase pays too much (actual={paid} vs limit={allowed})"
            )),
        );
    }
    Ok(())
}

/// Whether BIP30 (no overwriting of unspent outputs) applies to the block
/// `block_hash` at `height` (Core `ConnectBlock`): not for the two historical
/// duplicate-coinbase blocks, not while the chain's block at the BIP34 height
/// is the known BIP34 block (`bip34_ancestor_hash`: the hash of this chain's
/// block at `params.bip34_height`, `None` if the chain is shorter), and
/// always again from [`BIP34_IMPLIES_BIP30_LIMIT`].
pub fn bip30_enforced(
    height: u32,
    block_hash: BlockHash,
    bip34_ancestor_hash: Option<BlockHash>,
    params: &ChainParams,
) -> bool {
    if height >= BIP34_IMPLIES_BIP30_LIMIT {
        return true;
    }
    let repeat = params
        .bip30_exceptions
        .iter()
        .any(|(h, hash)| *h == height && *hash == block_hash);
    let bip34_implies = matches!(
        (bip34_ancestor_hash, params.bip34_hash),
        (Some(a), Some(b)) if a == b
    );
    !repeat && !bip34_implies
}

/// BIP30: no output created by `block` may already exist unspent;
/// `have_coin` asks the UTXO set. Fails with `"bad-txns-BIP30"`.
pub fn check_bip30<F>(block: &Block, mut have_coin: F) -> Result<(), ValidationError>
where
    F: FnMut(&OutPoint) -> bool,
{
    for (i, tx) in block.txdata.iter().enumerate() {
        let txid = tx.compute_txid();
        for vout in 0..tx.output.len() {
            let op = OutPoint::new(txid, vout as u32);
            if have_coin(&op) {
                return Err(ValidationError::consensus("bad-txns-BIP30")
                    .with_detail("tried to overwrite transaction")
                    .with_tx(i));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::block::Version as BlockVersion;
    use bitcoin::pow::CompactTarget;
    use bitcoin::transaction::Version;
    use bitcoin::{hashes::Hash, TxMerkleNode};
    use bitcoin::{Network, ScriptBuf, Sequence, TxIn, Txid};

    pub(crate) const REGTEST_BITS: u32 = 0x207f_ffff;

    pub(crate) fn coinbase(height: u32, value: u64) -> Transaction {
        let mut sig = bip34_height_prefix(height);
        sig.push(0x00); // keep the script at least 2 bytes
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(sig),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    pub(crate) fn spend(prev: OutPoint, value: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    fn outpoint(n: u8) -> OutPoint {
        OutPoint::new(Txid::from_byte_array([n; 32]), 0)
    }

    /// Sets the merkle root and grinds the nonce until the regtest PoW holds.
    pub(crate) fn finish(mut block: Block) -> Block {
        block.header.merkle_root = block_merkle_root(&block).0;
        mine(&mut block.header);
        block
    }

    pub(crate) fn mine(header: &mut Header) {
        let p = ChainParams::regtest();
        while pow::check_proof_of_work(header, &p).is_err() {
            header.nonce = header.nonce.wrapping_add(1);
        }
    }

    pub(crate) fn block_on(prev: &Header, height: u32, txs: Vec<Transaction>) -> Block {
        let mut txdata = vec![coinbase(height, 50 * 100_000_000)];
        txdata.extend(txs);
        finish(Block {
            header: Header {
                version: BlockVersion::from_consensus(0x2000_0000),
                prev_blockhash: prev.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: prev.time + 600,
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            },
            txdata,
        })
    }

    fn genesis() -> Header {
        bitcoin::constants::genesis_block(Network::Regtest).header
    }

    fn reason(r: Result<(), ValidationError>) -> String {
        r.expect_err("expected a rejection").reason().to_string()
    }

    #[test]
    fn valid_regtest_block_passes_all_checks() {
        let p = ChainParams::regtest();
        let g = genesis();
        let b = block_on(&g, 1, vec![spend(outpoint(7), 1000)]);
        check_block(&b, &p).unwrap();
        contextual_check_block(&b, 1, g.time, &p).unwrap();
        check_block_header_context(&b.header, &vec![g], u64::from(g.time) + 600, &p).unwrap();
        check_coinbase_amount(&b, 1, Amount::ZERO, &p).unwrap();
    }

    #[test]
    fn bad_pow_is_high_hash() {
        let p = ChainParams::regtest();
        let mut b = block_on(&genesis(), 1, vec![]);
        // Find a nonce that misses the target.
        while pow::check_proof_of_work(&b.header, &p).is_ok() {
            b.header.nonce = b.header.nonce.wrapping_add(1);
        }
        let e = check_block(&b, &p).unwrap_err();
        assert_eq!(e.reason(), "high-hash");
        assert_eq!(e.kind(), RejectKind::InvalidHeader);
    }

    #[test]
    fn bad_merkle_root_is_mutated() {
        let p = ChainParams::regtest();
        let mut b = block_on(&genesis(), 1, vec![spend(outpoint(1), 5)]);
        b.header.merkle_root = TxMerkleNode::all_zeros();
        mine(&mut b.header);
        let e = check_block(&b, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txnmrklroot");
        assert!(e.is_mutated() && !e.is_permanent());
    }

    #[test]
    fn cve_2012_2459_duplicate_tail_is_rejected() {
        let p = ChainParams::regtest();
        let a = spend(outpoint(1), 5);
        let c = spend(outpoint(2), 5);
        let honest = block_on(&genesis(), 1, vec![a, c.clone()]);
        check_block(&honest, &p).unwrap();
        let mut evil = honest.clone();
        evil.txdata.push(c);
        // Same root, same header, same hash.
        assert_eq!(block_merkle_root(&evil).0, honest.header.merkle_root);
        assert!(block_merkle_root(&evil).1);
        let e = check_block(&evil, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-duplicate");
        assert!(e.is_mutated(), "the honest block has the same hash");
    }

    #[test]
    fn oversize_block_is_bad_blk_length() {
        let p = ChainParams::regtest();
        let mut big = spend(outpoint(3), 5);
        big.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x6a; 1_000_000]);
        let b = block_on(&genesis(), 1, vec![big]);
        assert_eq!(reason(check_block(&b, &p)), "bad-blk-length");
    }

    #[test]
    fn coinbase_position_rules() {
        let p = ChainParams::regtest();
        let g = genesis();
        let b = block_on(&g, 1, vec![coinbase(1, 1)]);
        let e = check_block(&b, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-cb-multiple");
        assert_eq!(e.tx_index(), Some(1));

        let mut b = block_on(&g, 1, vec![spend(outpoint(1), 5)]);
        b.txdata.remove(0);
        let b = finish(b);
        assert_eq!(reason(check_block(&b, &p)), "bad-cb-missing");
    }

    #[test]
    fn bip34_height_and_coinbase_amount() {
        let p = ChainParams::regtest();
        let g = genesis();
        let mut b = block_on(&g, 1, vec![]);
        b.txdata[0] = coinbase(2, 50 * 100_000_000);
        let b = finish(b);
        check_block(&b, &p).unwrap();
        assert_eq!(
            reason(contextual_check_block(&b, 1, g.time, &p)),
            "bad-cb-height"
        );

        // Large heights use a pushed script number.
        assert_eq!(bip34_height_prefix(17), vec![1, 17]);
        assert_eq!(bip34_height_prefix(128), vec![2, 0x80, 0x00]);
        assert_eq!(bip34_height_prefix(227_931), vec![3, 0x5b, 0x7a, 0x03]);

        let mut b = block_on(&g, 1, vec![]);
        b.txdata[0] = coinbase(1, 50 * 100_000_000 + 1);
        let b = finish(b);
        assert_eq!(
            reason(check_coinbase_amount(&b, 1, Amount::ZERO, &p)),
            "bad-cb-amount"
        );
        check_coinbase_amount(&b, 1, Amount::from_sat(1), &p).unwrap();
    }

    #[test]
    fn transaction_sanity_reasons() {
        let base = spend(outpoint(1), 5);
        check_transaction(&base).unwrap();

        let mut t = base.clone();
        t.input.clear();
        assert_eq!(reason(check_transaction(&t)), "bad-txns-vin-empty");
        let mut t = base.clone();
        t.output.clear();
        assert_eq!(reason(check_transaction(&t)), "bad-txns-vout-empty");
        let mut t = base.clone();
        t.output[0].value = Amount::from_sat(u64::MAX); // -1 on the wire
        assert_eq!(reason(check_transaction(&t)), "bad-txns-vout-negative");
        let mut t = base.clone();
        t.output[0].value = Amount::from_sat(MAX_MONEY + 1);
        assert_eq!(reason(check_transaction(&t)), "bad-txns-vout-toolarge");
        let mut t = base.clone();
        t.output[0].value = Amount::from_sat(MAX_MONEY);
        t.output.push(t.output[0].clone());
        assert_eq!(
            reason(check_transaction(&t)),
            "bad-txns-txouttotal-toolarge"
        );
        let mut t = base.clone();
        t.input.push(t.input[0].clone());
        assert_eq!(reason(check_transaction(&t)), "bad-txns-inputs-duplicate");
        let mut t = base.clone();
        t.input.push(TxIn {
            previous_output: OutPoint::null(),
            ..t.input[0].clone()
        });
        assert_eq!(reason(check_transaction(&t)), "bad-txns-prevout-null");
        let mut cb = coinbase(1, 5);
        cb.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51]);
        assert_eq!(reason(check_transaction(&cb)), "bad-cb-length");
        cb.input[0].script_sig = ScriptBuf::from_bytes(vec![0; 101]);
        assert_eq!(reason(check_transaction(&cb)), "bad-cb-length");

        // Inside a block the duplicate-input failure is a consensus failure.
        let p = ChainParams::regtest();
        let mut dup = spend(outpoint(1), 5);
        dup.input.push(dup.input[0].clone());
        let b = block_on(&genesis(), 1, vec![dup]);
        let e = check_block(&b, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-inputs-duplicate");
        assert_eq!(e.kind(), RejectKind::Consensus);
        assert_eq!(e.tx_index(), Some(1));
    }

    #[test]
    fn inputs_maturity_and_values() {
        let p = ChainParams::regtest();
        let tx = spend(outpoint(1), 1000);
        let coin = |value, is_coinbase| Coin {
            output: TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
            height: 10,
            is_coinbase,
        };
        let e = check_tx_inputs(&tx, &[coin(5000, true)], 109, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-premature-spend-of-coinbase");
        assert_eq!(e.kind(), RejectKind::PrematureSpend);
        assert_eq!(
            check_tx_inputs(&tx, &[coin(5000, true)], 110, &p).unwrap(),
            Amount::from_sat(4000)
        );
        assert_eq!(
            check_tx_inputs(&tx, &[coin(5000, false)], 11, &p).unwrap(),
            Amount::from_sat(4000)
        );
        let e = check_tx_inputs(&tx, &[coin(999, false)], 11, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-in-belowout");
        let e = check_tx_inputs(&tx, &[], 11, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-inputs-missingorspent");
        let e = check_tx_inputs(&tx, &[coin(MAX_MONEY + 1, false)], 11, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-inputvalues-outofrange");
        let e = accumulate_fee(Amount::from_sat(MAX_MONEY), Amount::from_sat(1)).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-accumulated-fee-outofrange");
    }

    /// A regtest header chain of `n` blocks after genesis, 600 s apart.
    fn header_chain(n: u32) -> Vec<Header> {
        let mut chain = vec![genesis()];
        for _ in 0..n {
            let prev = *chain.last().unwrap();
            let mut h = Header {
                version: BlockVersion::from_consensus(0x2000_0000),
                prev_blockhash: prev.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: prev.time + 600,
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            };
            mine(&mut h);
            chain.push(h);
        }
        chain
    }

    #[test]
    fn bip94_timewarp_at_a_period_boundary() {
        // Regtest-like blocks with 12-block periods and BIP94 on.
        let p = ChainParams {
            enforce_bip94: true,
            pow_target_timespan: 12 * 600,
            ..ChainParams::regtest()
        };
        let chain = header_chain(11);
        let tip = *chain.last().unwrap();
        let now = u64::from(tip.time);
        let mut h = Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: tip.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: tip.time - MAX_TIMEWARP,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        };
        // Height 12 starts a period: up to 600 s before the parent is fine.
        check_block_header_context(&h, &chain, now, &p).unwrap();
        h.time = tip.time - MAX_TIMEWARP - 1;
        assert_eq!(
            reason(check_block_header_context(&h, &chain, now, &p)),
            "time-timewarp-attack"
        );
        // Without BIP94 the same header only has to beat the MTP.
        check_block_header_context(&h, &chain, now, &ChainParams::regtest()).unwrap();
        // Inside a period (height 13) the rule does not apply.
        let chain = header_chain(12);
        let tip = *chain.last().unwrap();
        h.prev_blockhash = tip.block_hash();
        h.time = tip.time - MAX_TIMEWARP - 1;
        check_block_header_context(&h, &chain, now, &p).unwrap();
    }

    #[test]
    fn header_context_rules() {
        let p = ChainParams::regtest();
        let chain = header_chain(12);
        let tip = *chain.last().unwrap();
        let now = u64::from(tip.time);
        let mut h = Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: tip.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: tip.time + 1,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        };
        check_block_header_context(&h, &chain, now, &p).unwrap();

        // MTP of the last 11 (heights 2..=12) is the time of height 7.
        let mtp = pow::median_time_past_at(&chain, 12).unwrap();
        assert_eq!(mtp, chain[7].time);
        h.time = mtp;
        assert_eq!(
            reason(check_block_header_context(&h, &chain, now, &p)),
            "time-too-old"
        );
        h.time = mtp + 1;
        check_block_header_context(&h, &chain, now, &p).unwrap();

        h.time = (now + 7200 + 1) as u32;
        let e = check_block_header_context(&h, &chain, now, &p).unwrap_err();
        assert_eq!(e.reason(), "time-too-new");
        assert!(!e.is_permanent() && !e.punish_peer());
        h.time = (now + 7200) as u32;
        check_block_header_context(&h, &chain, now, &p).unwrap();

        h.time = tip.time + 1;
        h.bits = CompactTarget::from_consensus(0x1d00ffff);
        assert_eq!(
            reason(check_block_header_context(&h, &chain, now, &p)),
            "bad-diffbits"
        );
        h.bits = CompactTarget::from_consensus(REGTEST_BITS);

        for (v, ok) in [(1, false), (2, false), (3, false), (4, true)] {
            h.version = BlockVersion::from_consensus(v);
            let r = check_block_header_context(&h, &chain, now, &p);
            if ok {
                r.unwrap();
            } else {
                assert_eq!(reason(r), format!("bad-version(0x{v:08x})"));
            }
        }
    }

    #[test]
    fn checkpoints() {
        let mut p = ChainParams::regtest();
        let chain = header_chain(2);
        p.checkpoints.push((2, chain[2].block_hash()));
        // The real block 2 matches, a different one does not.
        check_block_header_context(&chain[2], &chain[..2], u64::from(chain[2].time), &p).unwrap();
        let mut other = chain[2];
        other.time += 1;
        mine(&mut other);
        let e =
            check_block_header_context(&other, &chain[..2], u64::from(other.time), &p).unwrap_err();
        assert_eq!(e.reason(), "checkpoint mismatch");
        assert_eq!(e.kind(), RejectKind::Checkpoint);
        assert_eq!(
            reason(check_fork_prior_to_checkpoint(1, Some(2))),
            "bad-fork-prior-to-checkpoint"
        );
        check_fork_prior_to_checkpoint(3, Some(2)).unwrap();
        check_fork_prior_to_checkpoint(1, None).unwrap();
    }

    #[test]
    fn locktime_finality() {
        let p = ChainParams::regtest();
        let g = genesis();
        let mut t = spend(outpoint(1), 5);
        t.lock_time = LockTime::from_consensus(1);
        t.input[0].sequence = Sequence::ENABLE_RBF_NO_LOCKTIME;
        // locktime 1 is not < height 1: non-final.
        let b = block_on(&g, 1, vec![t.clone()]);
        let e = contextual_check_block(&b, 1, g.time, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-nonfinal");
        assert_eq!(e.tx_index(), Some(1));
        // Final sequence overrides the lock time.
        t.input[0].sequence = Sequence::MAX;
        let b = block_on(&g, 1, vec![t.clone()]);
        contextual_check_block(&b, 1, g.time, &p).unwrap();
        // Time lock against MTP (BIP113): MTP must exceed the lock time.
        t.input[0].sequence = Sequence::ZERO;
        t.lock_time = LockTime::from_consensus(LOCKTIME_THRESHOLD + 100);
        assert!(!is_final_tx(&t, 5, i64::from(LOCKTIME_THRESHOLD + 100)));
        assert!(is_final_tx(&t, 5, i64::from(LOCKTIME_THRESHOLD + 101)));
        assert!(!is_final_tx(&t, 5, 0));
    }

    #[test]
    fn sequence_locks_bip68() {
        let p = ChainParams::regtest();
        let mut t = spend(outpoint(1), 5);
        // Height lock: 10 blocks after the coin at height 100.
        t.input[0].sequence = Sequence::from_consensus(10);
        let mtp = |h: u32| Some(1_000_000 + i64::from(h) * 600);
        let locks = calculate_sequence_locks(&t, true, &[100], mtp).unwrap();
        assert_eq!(
            locks,
            SequenceLocks {
                min_height: 109,
                min_time: -1
            }
        );
        assert!(!evaluate_sequence_locks(109, 0, locks));
        assert!(evaluate_sequence_locks(110, 0, locks));
        assert_eq!(
            reason(check_sequence_locks(&t, 109, 0, &[100], &p, mtp)),
            "bad-txns-nonfinal"
        );
        check_sequence_locks(&t, 110, 0, &[100], &p, mtp).unwrap();

        // Time lock: 2 units of 512 s after the MTP of the coin's parent.
        t.input[0].sequence = Sequence::from_consensus(SEQUENCE_LOCKTIME_TYPE_FLAG | 2);
        let locks = calculate_sequence_locks(&t, true, &[100], mtp).unwrap();
        let base = 1_000_000 + 99 * 600;
        assert_eq!(locks.min_time, base + 1024 - 1);
        assert!(!evaluate_sequence_locks(200, base + 1023, locks));
        assert!(evaluate_sequence_locks(200, base + 1024, locks));

        // Disable flag, version 1, or CSV inactive: no lock.
        t.input[0].sequence = Sequence::from_consensus(SEQUENCE_LOCKTIME_DISABLE_FLAG | 10);
        let none = SequenceLocks {
            min_height: -1,
            min_time: -1,
        };
        assert_eq!(
            calculate_sequence_locks(&t, true, &[100], mtp).unwrap(),
            none
        );
        t.input[0].sequence = Sequence::from_consensus(10);
        t.version = Version::ONE;
        assert_eq!(
            calculate_sequence_locks(&t, true, &[100], mtp).unwrap(),
            none
        );
        t.version = Version::TWO;
        assert_eq!(
            calculate_sequence_locks(&t, false, &[100], mtp).unwrap(),
            none
        );
        // Version -1 is 0xffffffff unsigned: BIP68 applies (Core compares
        // `static_cast<uint32_t>(tx.version) >= 2`).
        t.version = Version(-1);
        let locks = calculate_sequence_locks(&t, true, &[100], mtp).unwrap();
        assert_eq!(locks.min_height, 109);
        assert_eq!(
            reason(check_sequence_locks(&t, 109, 0, &[100], &p, mtp)),
            "bad-txns-nonfinal"
        );
        t.version = Version(i32::MIN);
        assert_eq!(
            calculate_sequence_locks(&t, true, &[100], mtp)
                .unwrap()
                .min_height,
            109
        );
        // Missing data is an internal error, not a panic.
        assert!(calculate_sequence_locks(&t, true, &[], mtp).is_err());
    }

    fn with_commitment(mut b: Block, reserved: Vec<u8>) -> Block {
        b.txdata[0].input[0].witness = Witness::from_slice(std::slice::from_ref(&reserved));
        let root = block_witness_merkle_root(&b);
        let c = witness_commitment(&root, &reserved);
        let mut spk = WITNESS_COMMITMENT_HEADER.to_vec();
        spk.extend_from_slice(&c);
        b.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(spk),
        });
        finish(b)
    }

    #[test]
    fn witness_commitment_rules() {
        let p = ChainParams::regtest();
        let g = genesis();
        let mut wtx = spend(outpoint(9), 5);
        wtx.input[0].witness = Witness::from_slice(&[vec![1u8, 2, 3]]);
        let plain = block_on(&g, 1, vec![wtx.clone()]);
        let e = contextual_check_block(&plain, 1, g.time, &p).unwrap_err();
        assert_eq!(e.reason(), "unexpected-witness");
        assert!(e.is_mutated());

        let good = with_commitment(plain.clone(), vec![0u8; 32]);
        check_block(&good, &p).unwrap();
        contextual_check_block(&good, 1, g.time, &p).unwrap();
        assert!(
            good.check_witness_commitment(),
            "agrees with the bitcoin crate"
        );

        // Different witness, same txids: commitment no longer matches.
        let mut bad = good.clone();
        bad.txdata[1].input[0].witness = Witness::from_slice(&[vec![9u8]]);
        assert_eq!(bad.block_hash(), good.block_hash());
        let e = contextual_check_block(&bad, 1, g.time, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-witness-merkle-match");
        assert!(e.is_mutated());

        let mut bad = good.clone();
        bad.txdata[0].input[0].witness = Witness::from_slice(&[vec![0u8; 31]]);
        assert_eq!(
            reason(contextual_check_block(&bad, 1, g.time, &p)),
            "bad-witness-nonce-size"
        );
    }

    #[test]
    fn block_weight_limit() {
        let p = ChainParams::regtest();
        let g = genesis();
        // Stripped size is small but the witness makes the weight too big.
        let mut wtx = spend(outpoint(9), 5);
        wtx.input[0].witness = Witness::from_slice(&[vec![0u8; 4_000_000]]);
        let b = with_commitment(block_on(&g, 1, vec![wtx]), vec![0u8; 32]);
        check_block(&b, &p).unwrap();
        let e = contextual_check_block(&b, 1, g.time, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-blk-weight");
        assert_eq!(e.kind(), RejectKind::Mutated);
        assert!(!e.is_permanent() && e.punish_peer());
    }

    #[test]
    fn sigop_counting_and_limit() {
        let p = ChainParams::regtest();
        // OP_CHECKSIG, OP_2 ... OP_CHECKMULTISIG, truncated push stops counting.
        let s = [0xac, 0x52, 0xae, 0x4c];
        assert_eq!(script_sigop_count(&s, false), 21);
        assert_eq!(script_sigop_count(&s, true), 3);

        let mut heavy = spend(outpoint(4), 5);
        heavy.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0xac; 20_001]);
        let b = block_on(&genesis(), 1, vec![heavy.clone()]);
        assert_eq!(reason(check_block(&b, &p)), "bad-blk-sigops");
        heavy.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0xac; 19_999]);
        let b = block_on(&genesis(), 1, vec![heavy]);
        check_block(&b, &p).unwrap();

        // P2SH 2-of-3 redeem script: 3 accurate sigops.
        let mut redeem_script = vec![0x52];
        for _ in 0..3 {
            redeem_script.push(33);
            redeem_script.extend_from_slice(&[2u8; 33]);
        }
        redeem_script.extend_from_slice(&[0x53, 0xae]);
        let mut sig = vec![0x00, 0x4c, redeem_script.len() as u8];
        sig.extend_from_slice(&redeem_script);
        let mut t = spend(outpoint(5), 5);
        t.input[0].script_sig = ScriptBuf::from_bytes(sig);
        let mut p2sh = vec![0xa9, 0x14];
        p2sh.extend_from_slice(&[0u8; 20]);
        p2sh.push(0x87);
        let prev = TxOut {
            value: Amount::from_sat(10),
            script_pubkey: ScriptBuf::from_bytes(p2sh),
        };
        let all = script::VERIFY_P2SH | script::VERIFY_WITNESS;
        // output OP_TRUE has 0 legacy sigops; P2SH adds 3 * 4.
        assert_eq!(
            get_transaction_sigop_cost(&t, std::slice::from_ref(&prev), all).unwrap(),
            12
        );
        assert_eq!(get_transaction_sigop_cost(&t, &[prev], 0).unwrap(), 0);

        // P2WPKH: 1 witness sigop; P2WSH counts the witness script.
        let mut t = spend(outpoint(6), 5);
        let mut wpkh = vec![0x00, 0x14];
        wpkh.extend_from_slice(&[0u8; 20]);
        let prev = TxOut {
            value: Amount::from_sat(10),
            script_pubkey: ScriptBuf::from_bytes(wpkh),
        };
        assert_eq!(
            get_transaction_sigop_cost(&t, std::slice::from_ref(&prev), all).unwrap(),
            1
        );
        assert_eq!(
            get_transaction_sigop_cost(&t, &[prev], script::VERIFY_P2SH).unwrap(),
            0
        );
        let mut wsh = vec![0x00, 0x20];
        wsh.extend_from_slice(&[0u8; 32]);
        t.input[0].witness = Witness::from_slice(&[vec![], redeem_script.clone()]);
        let prev = TxOut {
            value: Amount::from_sat(10),
            script_pubkey: ScriptBuf::from_bytes(wsh),
        };
        assert_eq!(get_transaction_sigop_cost(&t, &[prev], all).unwrap(), 3);
        // Coinbase: legacy only; missing spent outputs is an error, not a panic.
        assert_eq!(
            get_transaction_sigop_cost(&coinbase(1, 1), &[], all).unwrap(),
            0
        );
        assert!(get_transaction_sigop_cost(&t, &[], all).is_err());
    }

    #[test]
    fn subsidy_halvings() {
        let m = ChainParams::mainnet();
        assert_eq!(block_subsidy(0, &m), Amount::from_sat(50 * 100_000_000));
        assert_eq!(
            block_subsidy(209_999, &m),
            Amount::from_sat(50 * 100_000_000)
        );
        assert_eq!(
            block_subsidy(210_000, &m),
            Amount::from_sat(25 * 100_000_000)
        );
        assert_eq!(block_subsidy(420_000, &m), Amount::from_sat(1_250_000_000));
        assert_eq!(block_subsidy(840_000, &m), Amount::from_sat(312_500_000));
        assert_eq!(block_subsidy(64 * 210_000, &m), Amount::ZERO);
        assert_eq!(block_subsidy(u32::MAX, &m), Amount::ZERO);
        let r = ChainParams::regtest();
        assert_eq!(block_subsidy(149, &r), Amount::from_sat(50 * 100_000_000));
        assert_eq!(block_subsidy(150, &r), Amount::from_sat(25 * 100_000_000));
        assert_eq!(block_subsidy(300, &r), Amount::from_sat(1_250_000_000));
        // Total mainnet issuance stays below 21 million.
        let total: u64 = (0..64u32)
            .map(|i| block_subsidy(i * 210_000, &m).to_sat() * 210_000)
            .sum();
        assert!(total <= MAX_MONEY);
    }

    #[test]
    fn bip30_rules() {
        let m = ChainParams::mainnet();
        let (h91842, hash91842) = m.bip30_exceptions[0];
        assert!(!bip30_enforced(h91842, hash91842, None, &m));
        assert!(bip30_enforced(h91842, BlockHash::all_zeros(), None, &m));
        assert!(!bip30_enforced(
            300_000,
            BlockHash::all_zeros(),
            m.bip34_hash,
            &m
        ));
        assert!(bip30_enforced(
            BIP34_IMPLIES_BIP30_LIMIT,
            BlockHash::all_zeros(),
            m.bip34_hash,
            &m
        ));
        let r = ChainParams::regtest();
        let chain = header_chain(1);
        assert!(bip30_enforced(
            5,
            BlockHash::all_zeros(),
            Some(chain[1].block_hash()),
            &r
        ));

        let b = block_on(&genesis(), 1, vec![]);
        let cb = OutPoint::new(b.txdata[0].compute_txid(), 0);
        check_bip30(&b, |_| false).unwrap();
        assert_eq!(reason(check_bip30(&b, |op| *op == cb)), "bad-txns-BIP30");
    }

    #[test]
    fn hostile_scripts_do_not_panic() {
        for s in [
            vec![0x4c],
            vec![0x4d, 0xff],
            vec![0x4e, 0xff, 0xff, 0xff, 0xff],
            vec![0x4e, 0xff, 0xff, 0xff, 0x7f, 0x00],
            vec![0x05, 0x01],
        ] {
            let _ = script_sigop_count(&s, true);
            assert!(!is_push_only(&s));
            assert!(last_push(&s).is_none());
        }
        assert!(witness_program(&[0x00, 0x03, 0x01]).is_none());
        assert_eq!(
            witness_program(&[0x51, 0x02, 0x4e, 0x73]),
            Some((1, &[0x4e, 0x73][..]))
        );
    }
}
