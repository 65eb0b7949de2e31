//! Block templates and proof-of-work grinding, mainly for regtest.
//!
//! This module owns the rules for assembling a block the way Bitcoin Core's
//! `BlockAssembler` does: the BIP34 coinbase (height push, then an extra
//! nonce), the BIP141 witness commitment, the block subsidy schedule, the
//! median-time-past rule for the header time, the merkle root, and the nonce
//! grinding that makes the header meet its `nBits` target; and regtest block
//! generation on the chain tip ([`generate_block`], Core's
//! `generatetoaddress` / `generateblock`). The consensus formulas (merkle
//! root, witness commitment, subsidy, median time past) are the chain
//! layer's (`chain::check`, `chain::pow`), used here so templates and
//! validation cannot disagree. No threads of its own: templates are built
//! on whichever thread calls (a test, `strand generate`), blocks on the tip
//! on the thread owning the chain state (the sync-manager thread for a
//! running node). Only networks whose proof of work is trivial (regtest)
//! may generate on the tip: mining mainnet blocks on a CPU would never
//! finish.

use std::collections::HashMap;
use std::fmt;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    absolute, opcodes, transaction, Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness, WitnessCommitment,
};

use crate::chain::check::{self, WITNESS_COMMITMENT_HEADER};
use crate::chain::pow::{self, HeaderAncestry};
use crate::chain::state::{ChainEvent, ChainState, RejectError};

/// Regtest `nBits` (the easiest target: about two hashes per block); use
/// `CompactTarget::from_consensus(REGTEST_NBITS)`.
pub const REGTEST_NBITS: u32 = 0x207f_ffff;
/// Regtest subsidy halving interval, in blocks.
pub const REGTEST_HALVING_INTERVAL: u32 = 150;
/// Mainnet, testnet and signet subsidy halving interval, in blocks.
pub const MAINNET_HALVING_INTERVAL: u32 = 210_000;
/// The witness reserved value Core puts in the coinbase witness.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0u8; 32];
/// The start of the coinbase output carrying the witness commitment (the
/// consensus layer's constant under the name template users know).
pub use crate::chain::check::WITNESS_COMMITMENT_HEADER as WITNESS_COMMITMENT_PREFIX;
/// Blocks a coinbase output must wait before it can be spent (the
/// consensus constant, re-exported for template users).
pub use crate::chain::params::COINBASE_MATURITY;
/// Number of previous blocks whose median time bounds the next block's time
/// (the consensus constant, as a `usize` for slicing).
pub const MEDIAN_TIME_SPAN: usize = crate::chain::params::MEDIAN_TIME_SPAN as usize;

/// Why a block could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiningError {
    /// The height does not fit the script number Core pushes (`i32`).
    HeightOutOfRange(u32),
    /// Subsidy plus fees overflows or exceeds the 21 million BTC limit.
    CoinbaseValueOutOfRange,
    /// A template transaction is a coinbase; the template must not carry one.
    CoinbaseInTemplate(usize),
}

impl fmt::Display for MiningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MiningError::HeightOutOfRange(h) => write!(f, "block height {h} is out of range"),
            MiningError::CoinbaseValueOutOfRange => {
                write!(f, "coinbase value (subsidy plus fees) is out of range")
            }
            MiningError::CoinbaseInTemplate(i) => {
                write!(f, "template transaction {i} is a coinbase")
            }
        }
    }
}

impl std::error::Error for MiningError {}

/// Encodes `n` as a minimal script number (little-endian magnitude, sign
/// bit in the top byte), like Core's `CScriptNum::serialize`.
fn script_num(n: i128) -> PushBytesBuf {
    let mut out = Vec::with_capacity(17);
    let neg = n < 0;
    let mut abs = n.unsigned_abs();
    while abs > 0 {
        out.push((abs & 0xff) as u8);
        abs >>= 8;
    }
    if let Some(last) = out.last_mut() {
        if *last & 0x80 != 0 {
            out.push(if neg { 0x80 } else { 0x00 });
        } else if neg {
            *last |= 0x80;
        }
    }
    // At most 17 bytes, far below the push limit, so this cannot fail.
    PushBytesBuf::try_from(out).unwrap_or_default()
}

/// Pushes `n` the way Core's `CScript::operator<<(int64_t)` does: `OP_0`
/// for zero, `OP_1NEGATE`/`OP_1`..`OP_16` for -1 and 1..16, else a minimal
/// script number.
fn push_num(builder: Builder, n: i128) -> Builder {
    match n {
        0 => builder.push_opcode(opcodes::OP_0),
        -1 | 1..=16 => builder.push_int(n as i64),
        _ => builder.push_slice(script_num(n)),
    }
}

/// The coinbase scriptSig Core builds: `CScript() << height << extra_nonce`.
///
/// With `extra_nonce == 0` this is exactly `BlockAssembler`'s
/// `CScript() << nHeight << OP_0`, which also makes the script at least two
/// bytes long for heights 1..=16 (pushed as the one-byte `OP_1`..`OP_16`),
/// as consensus requires.
pub fn coinbase_script_sig(height: u32, extra_nonce: u64) -> Result<ScriptBuf, MiningError> {
    if height > i32::MAX as u32 {
        return Err(MiningError::HeightOutOfRange(height));
    }
    let b = push_num(Builder::new(), i128::from(height));
    Ok(push_num(b, i128::from(extra_nonce)).into_script())
}

/// Builds a coinbase transaction for a block at `height`, paying `value` to
/// `script_pubkey`.
///
/// With a `witness_commitment` the coinbase gets the BIP141 commitment
/// output (after the payout) and the 32-byte zero witness reserved value as
/// its input witness; without one it has no witness. See
/// [`coinbase_script_sig`] for the scriptSig.
pub fn coinbase_tx(
    height: u32,
    script_pubkey: ScriptBuf,
    value: Amount,
    witness_commitment: Option<WitnessCommitment>,
    extra_nonce: u64,
) -> Result<Transaction, MiningError> {
    let script_sig = coinbase_script_sig(height, extra_nonce)?;
    let mut witness = Witness::new();
    let mut output = vec![TxOut {
        value,
        script_pubkey,
    }];
    if let Some(c) = witness_commitment {
        witness.push(WITNESS_RESERVED_VALUE);
        output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: witness_commitment_script(&c),
        });
    }
    Ok(Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness,
        }],
        output,
    })
}

/// Reads the BIP34 height back from a coinbase scriptSig, accepting the
/// `OP_1`..`OP_16` forms Core uses for small heights. `None` if the script
/// does not start with a height push.
pub fn coinbase_height(script_sig: &bitcoin::Script) -> Option<u32> {
    use bitcoin::script::Instruction;
    match script_sig.instructions_minimal().next()?.ok()? {
        Instruction::Op(op) => {
            let b = op.to_u8();
            let first = opcodes::all::OP_PUSHNUM_1.to_u8();
            let last = opcodes::all::OP_PUSHNUM_16.to_u8();
            (first..=last)
                .contains(&b)
                .then(|| u32::from(b - first + 1))
        }
        Instruction::PushBytes(p) => {
            let n = bitcoin::script::read_scriptint(p.as_bytes()).ok()?;
            u32::try_from(n).ok()
        }
    }
}

/// The BIP141 commitment output script: `OP_RETURN <aa21a9ed || commitment>`.
pub fn witness_commitment_script(commitment: &WitnessCommitment) -> ScriptBuf {
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&WITNESS_COMMITMENT_HEADER);
    bytes.extend_from_slice(commitment.as_byte_array());
    ScriptBuf::from_bytes(bytes)
}

/// The BIP141 witness commitment for a block whose transactions after the
/// coinbase are `non_coinbase_txs` (in block order).
///
/// The witness root is computed over the wtxids with the coinbase's wtxid
/// replaced by zero (so the coinbase need not exist yet), and committed
/// together with [`WITNESS_RESERVED_VALUE`].
///
/// The formulas are the consensus layer's ([`check::compute_merkle_root`],
/// [`check::witness_commitment`]), so templates and validation agree.
pub fn witness_commitment(non_coinbase_txs: &[Transaction]) -> WitnessCommitment {
    let leaves = std::iter::once([0u8; 32])
        .chain(
            non_coinbase_txs
                .iter()
                .map(|t| t.compute_wtxid().to_byte_array()),
        )
        .collect();
    let (root, _) = check::compute_merkle_root(leaves);
    WitnessCommitment::from_byte_array(check::witness_commitment(&root, &WITNESS_RESERVED_VALUE))
}

/// The median of the last (up to) [`MEDIAN_TIME_SPAN`] block times
/// (`prev_times` oldest first, ending with the tip), `None` for an empty
/// slice: the consensus layer's [`pow::median_time_past`].
pub fn median_time_past(prev_times: &[u32]) -> Option<u32> {
    (!prev_times.is_empty()).then(|| pow::median_time_past(prev_times))
}

/// A valid time for the next block: `now`, raised to median-time-past + 1
/// when `now` is not after it (`prev_times` oldest first, ending with the
/// tip; the median is the consensus layer's [`pow::median_time_past`]).
pub fn next_block_time(prev_times: &[u32], now: u32) -> u32 {
    match median_time_past(prev_times) {
        Some(mtp) => now.max(mtp.saturating_add(1)),
        None => now,
    }
}

/// When [`build_block`] adds the BIP141 witness commitment to the coinbase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitmentPolicy {
    /// Always, as Core does once segwit is active (from height 0 on regtest).
    Always,
    /// Only when some template transaction has witness data (the minimum
    /// consensus requires).
    IfWitness,
    /// Never (pre-segwit blocks; a block with witness data is then invalid).
    Never,
}

/// Everything needed to assemble a block except the coinbase payout script.
#[derive(Debug, Clone)]
pub struct BlockTemplate {
    /// Hash of the block this one builds on.
    pub prev_hash: BlockHash,
    /// Height of the new block.
    pub height: u32,
    /// Header time; must exceed the median time past (see
    /// [`next_block_time`]).
    pub time: u32,
    /// Header `nBits`.
    pub bits: CompactTarget,
    /// Transactions after the coinbase, in block order (parents first).
    pub txs: Vec<Transaction>,
    /// Total fees of `txs`, added to the subsidy in the coinbase.
    pub fees: Amount,
    /// Header version (Core uses 0x20000000 with no deployments signalled).
    pub version: Version,
    /// Subsidy halving interval of the network.
    pub halving_interval: u32,
    /// When to add the BIP141 witness commitment.
    pub witness_commitment: CommitmentPolicy,
    /// Extra nonce pushed after the height in the coinbase scriptSig.
    pub extra_nonce: u64,
}

impl BlockTemplate {
    /// A regtest template: regtest `nBits` and halving interval, version
    /// 0x20000000, witness commitment always, extra nonce 0.
    pub fn regtest(
        prev_hash: BlockHash,
        height: u32,
        time: u32,
        txs: Vec<Transaction>,
        fees: Amount,
    ) -> BlockTemplate {
        BlockTemplate {
            prev_hash,
            height,
            time,
            bits: CompactTarget::from_consensus(REGTEST_NBITS),
            txs,
            fees,
            version: Version::from_consensus(0x2000_0000),
            halving_interval: REGTEST_HALVING_INTERVAL,
            witness_commitment: CommitmentPolicy::Always,
            extra_nonce: 0,
        }
    }
}

/// Assembles the block for `template`, its coinbase paying subsidy plus
/// fees to `coinbase_script`. The nonce is 0: call [`mine`] next.
pub fn build_block(
    template: BlockTemplate,
    coinbase_script: ScriptBuf,
) -> Result<Block, MiningError> {
    if let Some(i) = template.txs.iter().position(|t| t.is_coinbase()) {
        return Err(MiningError::CoinbaseInTemplate(i));
    }
    let value = check::subsidy_at(template.height, template.halving_interval)
        .checked_add(template.fees)
        .filter(|v| *v <= Amount::MAX_MONEY)
        .ok_or(MiningError::CoinbaseValueOutOfRange)?;
    let commit = match template.witness_commitment {
        CommitmentPolicy::Always => true,
        CommitmentPolicy::IfWitness => template
            .txs
            .iter()
            .any(|t| t.input.iter().any(|i| !i.witness.is_empty())),
        CommitmentPolicy::Never => false,
    };
    let commitment = commit.then(|| witness_commitment(&template.txs));
    let coinbase = coinbase_tx(
        template.height,
        coinbase_script,
        value,
        commitment,
        template.extra_nonce,
    )?;
    let mut txdata = Vec::with_capacity(template.txs.len() + 1);
    txdata.push(coinbase);
    txdata.extend(template.txs);
    let mut block = Block {
        header: Header {
            version: template.version,
            prev_blockhash: template.prev_hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: template.time,
            bits: template.bits,
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = merkle_root(&block.txdata);
    Ok(block)
}

/// The merkle root of `txs` (all zeros for an empty list, which no valid
/// block has), by the consensus layer's [`check::compute_merkle_root`].
pub fn merkle_root(txs: &[Transaction]) -> TxMerkleNode {
    let leaves = txs
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    TxMerkleNode::from_byte_array(check::compute_merkle_root(leaves).0)
}

/// Grinds `block`'s nonce until the header meets the target of its own
/// `nBits`, trying at most `max_tries` headers. When the nonce wraps around
/// the header time is bumped by one second (which keeps the merkle root and
/// witness commitment valid). Returns whether a valid header was found; on
/// `false` the block is left at the next untried header so a later call
/// continues where this one stopped.
pub fn mine(block: &mut Block, max_tries: u64) -> bool {
    let target = block.header.target();
    for _ in 0..max_tries {
        if block.header.validate_pow(target).is_ok() {
            return true;
        }
        if !bump_nonce(&mut block.header) {
            return false;
        }
    }
    false
}

/// Moves to the next header to try: next nonce, or on wrap-around nonce 0
/// and time + 1. Returns false when the time cannot advance any more.
fn bump_nonce(header: &mut Header) -> bool {
    match header.nonce.checked_add(1) {
        Some(n) => header.nonce = n,
        None => match header.time.checked_add(1) {
            Some(t) => {
                header.nonce = 0;
                header.time = t;
            }
            None => return false,
        },
    }
    true
}

// ---------------------------------------------------------------------------
// Blocks on the chain tip (Core's `generatetoaddress` / `generateblock`)
// ---------------------------------------------------------------------------

/// Why blocks could not be generated.
#[derive(Debug)]
pub enum GenerateError {
    /// Not a regtest chain.
    NotRegtest,
    /// A transaction spends an output that is neither unspent nor created
    /// earlier in the list.
    MissingInput(OutPoint),
    /// A transaction pays out more than it spends.
    NegativeFee(bitcoin::Txid),
    /// The block could not be assembled.
    Template(MiningError),
    /// No nonce satisfied the target.
    NotMined,
    /// The chain rejected the block (invalid transactions, for instance).
    Rejected(String),
    /// The node asked to generate (`NodeHandle::generate`) is shutting down
    /// or has stopped.
    NodeStopped,
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::NotRegtest => write!(f, "blocks can only be generated on regtest"),
            GenerateError::MissingInput(op) => write!(f, "input {op} is missing or spent"),
            GenerateError::NegativeFee(t) => {
                write!(f, "transaction {t} spends more than its inputs")
            }
            GenerateError::Template(e) => write!(f, "cannot build block: {e}"),
            GenerateError::NotMined => write!(f, "no valid nonce found"),
            GenerateError::Rejected(r) => write!(f, "block rejected: {r}"),
            GenerateError::NodeStopped => write!(f, "node is not running"),
        }
    }
}

impl std::error::Error for GenerateError {}

struct Tip<'a>(&'a ChainState);

impl HeaderAncestry for Tip<'_> {
    fn height(&self) -> u32 {
        self.0.height()
    }
    fn header_at(&self, height: u32) -> Option<bitcoin::block::Header> {
        let hash = self.0.active_hash(height)?;
        self.0.entry(&hash).map(|e| e.header)
    }
}

/// Builds and mines (but does not connect) a block on the tip paying
/// subsidy plus fees to `script`, with `txs` in order.
pub fn build_block_on_tip(
    chain: &mut ChainState,
    script: &ScriptBuf,
    txs: Vec<Transaction>,
) -> Result<Block, GenerateError> {
    let params = chain.params().clone();
    if !params.no_retargeting {
        return Err(GenerateError::NotRegtest);
    }
    let fees = fees_of(chain, &txs)?;
    let tip = chain.tip();
    let height = chain.height() + 1;
    let ancestry = Tip(chain);
    let mtp = pow::median_time_past_at(&ancestry, chain.height())
        .map_err(|e| GenerateError::Rejected(e.to_string()))?;
    let now = u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX);
    let time = now.max(mtp.saturating_add(1));
    let bits = pow::next_work_required(&ancestry, time, &params)
        .map_err(|e| GenerateError::Rejected(e.to_string()))?;
    let mut template = BlockTemplate::regtest(tip, height, time, txs, fees);
    template.bits = bits;
    // A fresh extra nonce: the same transactions on the same parent (after
    // invalidateblock, say) must not rebuild a block hash already known.
    template.extra_nonce = crate::util::random_nonce() & 0xffff_ffff;
    template.halving_interval = params.subsidy_halving_interval;
    let mut block = build_block(template, script.clone()).map_err(GenerateError::Template)?;
    if !mine(&mut block, u64::from(u32::MAX) * 4) {
        return Err(GenerateError::NotMined);
    }
    Ok(block)
}

/// Mines one block on the tip paying subsidy plus fees to `script`, with
/// `txs` (in order, parents first), and connects it. Returns the block and
/// the chain events it caused.
pub fn generate_block(
    chain: &mut ChainState,
    script: &ScriptBuf,
    txs: Vec<Transaction>,
) -> Result<(Block, Vec<ChainEvent>), GenerateError> {
    let block = build_block_on_tip(chain, script, txs)?;
    match chain.accept_block(block.clone()) {
        Ok(events) => Ok((block, events)),
        Err(RejectError::Invalid(e)) => Err(GenerateError::Rejected(e.to_string())),
        Err(e) => Err(GenerateError::Rejected(e.to_string())),
    }
}

/// Core's `MAX_BLOCK_SIGOPS_COST`.
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// Core's `DEFAULT_BLOCK_RESERVED_WEIGHT`: weight kept for the header and
/// coinbase when choosing transactions.
pub const DEFAULT_BLOCK_RESERVED_WEIGHT: u64 = 8_000;
/// Sigop cost kept for the coinbase (Core's `BlockAssembler` starts at
/// 400).
pub const COINBASE_SIGOPS_RESERVED: u64 = 400;
/// The header version of templates: BIP9's top bits with no deployment
/// signalled (every Core 31 deployment is buried).
pub const TEMPLATE_VERSION: i32 = 0x2000_0000;

/// The header fields of the next block on the tip, for
/// `getblocktemplate` and `getmininginfo` (any network; no mining).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextBlock {
    /// The tip, parent of the next block.
    pub prev_hash: BlockHash,
    /// The next block's height.
    pub height: u32,
    /// Its required `nBits` at `curtime`.
    pub bits: CompactTarget,
    /// Earliest valid header time (median time past + 1, and with BIP94 at
    /// a period's first block no more than 600 s before the parent; Core's
    /// `GetMinimumTime`).
    pub mintime: u32,
    /// The header time to use: now, raised to `mintime`.
    pub curtime: u32,
    /// The subsidy at `height`.
    pub subsidy: Amount,
}

/// The next block's header fields on `chain`'s tip, at time `now`.
pub fn next_block_on_tip(chain: &ChainState, now: u32) -> Result<NextBlock, GenerateError> {
    let params = chain.params();
    let ancestry = Tip(chain);
    let mtp = pow::median_time_past_at(&ancestry, chain.height())
        .map_err(|e| GenerateError::Rejected(e.to_string()))?;
    let mut mintime = mtp.saturating_add(1);
    // Core's `GetMinimumTime`: with BIP94 (testnet4) the first block of a
    // period may be at most MAX_TIMEWARP before its parent.
    let next_height = chain.height().saturating_add(1);
    if params.enforce_bip94
        && next_height.is_multiple_of(params.difficulty_adjustment_interval().max(1))
    {
        if let Some(parent) = ancestry.header_at(chain.height()) {
            mintime = mintime.max(
                parent
                    .time
                    .saturating_sub(crate::chain::params::MAX_TIMEWARP),
            );
        }
    }
    let curtime = now.max(mintime);
    let bits = pow::next_work_required(&ancestry, curtime, params)
        .map_err(|e| GenerateError::Rejected(e.to_string()))?;
    let height = chain.height() + 1;
    Ok(NextBlock {
        prev_hash: chain.tip(),
        height,
        bits,
        mintime,
        curtime,
        subsidy: check::subsidy_at(height, params.subsidy_halving_interval),
    })
}

/// Total fees of `txs`, spending the UTXO set and outputs of earlier `txs`.
fn fees_of(chain: &mut ChainState, txs: &[Transaction]) -> Result<Amount, GenerateError> {
    let mut created: HashMap<OutPoint, Amount> = HashMap::new();
    let mut total = Amount::ZERO;
    for tx in txs {
        let mut value_in = Amount::ZERO;
        for input in &tx.input {
            let op = input.previous_output;
            let value = match created.remove(&op) {
                Some(v) => v,
                None => chain
                    .coin(&op)
                    .map_err(|e| GenerateError::Rejected(e.to_string()))?
                    .map(|c| c.amount)
                    .ok_or(GenerateError::MissingInput(op))?,
            };
            value_in += value;
        }
        let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
        let fee = value_in
            .checked_sub(value_out)
            .ok_or(GenerateError::NegativeFee(tx.compute_txid()))?;
        total += fee;
        let txid = tx.compute_txid();
        for (vout, out) in tx.output.iter().enumerate() {
            created.insert(OutPoint::new(txid, vout as u32), out.value);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::blockdata::constants::genesis_block;
    use bitcoin::Network;

    fn p2wsh_op_true() -> ScriptBuf {
        ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash())
    }

    #[test]
    fn bip34_encoding_matches_core() {
        // (height, expected scriptSig bytes with extra nonce 0 → trailing OP_0)
        let cases: &[(u32, &[u8])] = &[
            (1, &[0x51, 0x00]),
            (16, &[0x60, 0x00]),
            (17, &[0x01, 0x11, 0x00]),
            (127, &[0x01, 0x7f, 0x00]),
            (128, &[0x02, 0x80, 0x00, 0x00]),
            (256, &[0x02, 0x00, 0x01, 0x00]),
            (65536, &[0x03, 0x00, 0x00, 0x01, 0x00]),
            (0, &[0x00, 0x00]),
        ];
        for (h, want) in cases {
            let s = coinbase_script_sig(*h, 0).unwrap();
            assert_eq!(s.as_bytes(), *want, "height {h}");
            assert!(s.len() >= 2 && s.len() <= 100);
            if *h > 0 {
                assert_eq!(coinbase_height(&s), Some(*h));
            }
        }
    }

    #[test]
    fn extra_nonce_is_script_number() {
        let s = coinbase_script_sig(200, 5).unwrap();
        assert_eq!(s.as_bytes(), &[0x02, 0xc8, 0x00, 0x55]);
        let s = coinbase_script_sig(200, 0x80).unwrap();
        assert_eq!(s.as_bytes(), &[0x02, 0xc8, 0x00, 0x02, 0x80, 0x00]);
        let s = coinbase_script_sig(200, u64::MAX).unwrap();
        assert_eq!(s.len(), 3 + 10);
        assert_eq!(
            coinbase_script_sig(u32::MAX, 0),
            Err(MiningError::HeightOutOfRange(u32::MAX))
        );
    }

    #[test]
    fn subsidy_schedule() {
        let block_subsidy = check::subsidy_at;
        assert_eq!(block_subsidy(0, 150), Amount::from_btc(50.0).unwrap());
        assert_eq!(block_subsidy(149, 150), Amount::from_btc(50.0).unwrap());
        assert_eq!(block_subsidy(150, 150), Amount::from_btc(25.0).unwrap());
        assert_eq!(block_subsidy(300, 150), Amount::from_btc(12.5).unwrap());
        assert_eq!(block_subsidy(150 * 64, 150), Amount::ZERO);
        assert_eq!(block_subsidy(u32::MAX, 150), Amount::ZERO);
        assert_eq!(
            block_subsidy(210_000, MAINNET_HALVING_INTERVAL).to_sat(),
            25 * 100_000_000
        );
    }

    #[test]
    fn next_time_respects_median_time_past() {
        assert_eq!(next_block_time(&[], 5), 5);
        let times: Vec<u32> = (1..=20).map(|i| i * 10).collect();
        // Last 11: 100..=200, median 150.
        assert_eq!(next_block_time(&times, 100), 151);
        assert_eq!(next_block_time(&times, 1000), 1000);
        // Unordered times: median of the sorted last 11 (3).
        assert_eq!(next_block_time(&[5, 1, 3], 2), 4);
        assert_eq!(median_time_past(&[]), None);
        assert_eq!(median_time_past(&times), Some(150));
    }

    #[test]
    fn mined_block_is_valid() {
        let genesis = genesis_block(Network::Regtest);
        let t = BlockTemplate::regtest(
            genesis.block_hash(),
            1,
            genesis.header.time + 1,
            vec![],
            Amount::ZERO,
        );
        let mut block = build_block(t, p2wsh_op_true()).unwrap();
        assert!(mine(&mut block, 10_000));
        assert!(block.header.validate_pow(block.header.target()).is_ok());
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        let cb = &block.txdata[0];
        assert!(cb.is_coinbase());
        assert_eq!(cb.output[0].value, Amount::from_btc(50.0).unwrap());
        assert!(cb.output[1]
            .script_pubkey
            .as_bytes()
            .starts_with(&WITNESS_COMMITMENT_HEADER));
        assert_eq!(cb.input[0].witness.len(), 1);
        assert_eq!(coinbase_height(&cb.input[0].script_sig), Some(1));
    }

    #[test]
    fn witness_commitment_over_segwit_spend() {
        let genesis = genesis_block(Network::Regtest);
        // A (fake) segwit spend: the commitment only hashes it.
        let spend = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(genesis.txdata[0].compute_txid(), 0),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![0x51]]),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1000),
                script_pubkey: p2wsh_op_true(),
            }],
        };
        let t = BlockTemplate::regtest(
            genesis.block_hash(),
            1,
            genesis.header.time + 1,
            vec![spend.clone()],
            Amount::from_sat(7),
        );
        let mut block = build_block(t.clone(), p2wsh_op_true()).unwrap();
        assert!(mine(&mut block, 10_000));
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        assert_eq!(
            block.txdata[0].output[0].value,
            Amount::from_sat(50 * 100_000_000 + 7)
        );
        // Tampering with the spend's witness breaks the commitment but not
        // the merkle root.
        block.txdata[1].input[0].witness = Witness::from_slice(&[vec![0x52]]);
        assert!(block.check_merkle_root());
        assert!(!block.check_witness_commitment());

        // IfWitness: committed here since the spend has a witness.
        let mut t2 = t.clone();
        t2.witness_commitment = CommitmentPolicy::IfWitness;
        let block = build_block(t2, p2wsh_op_true()).unwrap();
        assert_eq!(block.txdata[0].output.len(), 2);
        assert!(block.check_witness_commitment());

        // Without the commitment the coinbase has no witness and one output.
        let mut t3 = t;
        t3.witness_commitment = CommitmentPolicy::Never;
        let block = build_block(t3, p2wsh_op_true()).unwrap();
        assert_eq!(block.txdata[0].output.len(), 1);
        assert!(block.txdata[0].input[0].witness.is_empty());
        assert!(!block.check_witness_commitment());

        // IfWitness without witness data: no commitment, still valid.
        let mut t4 = BlockTemplate::regtest(genesis.block_hash(), 1, 0, vec![], Amount::ZERO);
        t4.witness_commitment = CommitmentPolicy::IfWitness;
        let block = build_block(t4, p2wsh_op_true()).unwrap();
        assert_eq!(block.txdata[0].output.len(), 1);
        assert!(block.check_witness_commitment());
    }

    #[test]
    fn template_errors() {
        let genesis = genesis_block(Network::Regtest);
        let t = BlockTemplate::regtest(
            genesis.block_hash(),
            1,
            0,
            vec![genesis.txdata[0].clone()],
            Amount::ZERO,
        );
        assert_eq!(
            build_block(t, p2wsh_op_true()).unwrap_err(),
            MiningError::CoinbaseInTemplate(0)
        );
        let t = BlockTemplate::regtest(genesis.block_hash(), 1, 0, vec![], Amount::MAX_MONEY);
        assert_eq!(
            build_block(t, p2wsh_op_true()).unwrap_err(),
            MiningError::CoinbaseValueOutOfRange
        );
    }

    #[test]
    fn nonce_wrap_bumps_time() {
        let genesis = genesis_block(Network::Regtest);
        let mut t = BlockTemplate::regtest(genesis.block_hash(), 1, 1000, vec![], Amount::ZERO);
        // Mainnet difficulty: two tries will not find a block.
        t.bits = CompactTarget::from_consensus(0x1d00_ffff);
        let mut block = build_block(t, p2wsh_op_true()).unwrap();
        block.header.nonce = u32::MAX;
        assert!(!mine(&mut block, 2));
        assert_eq!(block.header.time, 1001);
        assert_eq!(block.header.nonce, 1);
        assert!(block.check_merkle_root());
        block.header.time = u32::MAX;
        block.header.nonce = u32::MAX;
        assert!(!mine(&mut block, 5));
    }
}
