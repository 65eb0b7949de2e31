//! Regtest block generation on top of the chain state (Core's
//! `generatetoaddress` / `generateblock`).
//!
//! Runs wherever the chain state lives: on the sync-manager thread for a
//! running node (`NodeHandle::generate`), or on the main thread for the
//! offline `strand generate` command. Only networks whose proof of work is
//! trivial (regtest) are allowed: mining mainnet blocks on a CPU would never
//! finish.

use std::collections::HashMap;
use std::fmt;

use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Transaction};

use super::pow::{self, HeaderAncestry};
use super::state::{ChainEvent, ChainState, RejectError};
use crate::mining::{self, BlockTemplate};

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
    Template(mining::MiningError),
    /// No nonce satisfied the target.
    NotMined,
    /// The chain rejected the block (invalid transactions, for instance).
    Rejected(String),
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
    let mut block =
        mining::build_block(template, script.clone()).map_err(GenerateError::Template)?;
    if !mining::mine(&mut block, u64::from(u32::MAX) * 4) {
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
