//! The transaction memory pool and the orphan pool (Bitcoin Core
//! `CTxMemPool` + `MemPoolAccept` + `TxOrphanage`).
//!
//! Owns [`Mempool`]: unconfirmed transactions that passed consensus and
//! relay-policy checks against the chain's UTXO set at the tip, indexed by
//! txid, wtxid and spent outpoint, with parent/child links; full
//! replace-by-fee (Core 28 rules); size-limited with lowest-feerate
//! eviction; and the [`OrphanPool`] of transactions whose parents are
//! unknown. Pure logic: no thread, no clock (times are passed in). Beside
//! it: [`fees`], the fee estimator the pool feeds as transactions enter and
//! blocks confirm them; [`select`], the choice of a block template's
//! transactions by ancestor fee rate with `prioritisetransaction` deltas;
//! [`persist`], the only file I/O, `mempool.dat` and `fee_estimates.dat`
//! at start, shutdown and `savemempool`.
//!
//! **Threads and locking (proposal for integration).** The node keeps one
//! [`SharedMempool`] (an `Arc<parking_lot::Mutex<Mempool>>`; orphans live
//! inside the mempool, so there is exactly one lock):
//!
//! * the **sync-manager thread** (which owns the `ChainState`) locks it to
//!   accept transactions from peers ([`Mempool::accept_with_orphans`], with
//!   the `ChainState` as [`UtxoView`]), and after connecting or
//!   disconnecting blocks ([`Mempool::remove_for_block`],
//!   [`Mempool::readd_for_reorg`]);
//! * the **peer-handler thread** locks it through the
//!   [`OrphanEvictor`] impl of [`SharedMempool`] to drop a
//!   finished peer's orphans;
//! * **RPC threads** lock it for queries; `sendrawtransaction` goes through
//!   the sync manager (it needs the chain).
//!
//! The lock is a leaf: nobody sends on a channel, takes another lock or
//! touches LMDB through anything but the `&mut dyn UtxoView` the caller
//! passes while holding it. Script verification runs under the lock (one
//! transaction, milliseconds).

pub mod error;
pub mod fees;
pub mod orphans;
pub mod persist;
pub mod policy;
pub mod select;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::{Amount, Block, OutPoint, Transaction, TxOut, Txid, Wtxid};
use parking_lot::{Mutex, MutexGuard};

use crate::chain::check::{
    self, calculate_sequence_locks, check_transaction, check_tx_inputs, evaluate_sequence_locks,
    get_transaction_sigop_cost, is_final_tx,
};
use crate::chain::script::{PrecomputedTransaction, ScriptError, VERIFY_ALL};
use crate::chain::ChainParams;
use crate::store::Coin;
use crate::util::PeerId;

pub use error::{
    MempoolReject, OrphanReject, RejectCode, RPC_VERIFY_ALREADY_IN_CHAIN, RPC_VERIFY_ERROR,
    RPC_VERIFY_REJECTED,
};
pub use fees::FeeEstimator;
pub use orphans::{NoOrphans, OrphanAdded, OrphanConfig, OrphanEntry, OrphanEvictor, OrphanPool};
pub use policy::FeeRate;
pub use select::TemplateTx;

/// Most transactions one replacement may evict (Core
/// `MAX_REPLACEMENT_CANDIDATES`).
pub const MAX_REPLACEMENT_CANDIDATES: usize = 100;
/// Half-life of the rolling minimum fee, seconds (Core
/// `ROLLING_FEE_HALFLIFE`).
pub const ROLLING_FEE_HALFLIFE: u64 = 12 * 60 * 60;
/// Memory charged per entry on top of its serialized size, for the
/// `usage` estimate (indexes, links, the entry itself).
pub const ENTRY_OVERHEAD: usize = 400;
/// Memory charged per input and output for the `usage` estimate.
pub const TXIO_OVERHEAD: usize = 64;

/// The chain's unspent outputs at the tip, as the mempool sees them.
/// Outputs created by mempool transactions are resolved by the mempool.
pub trait UtxoView {
    /// The unspent output `op`, if any. (A view whose store fails should log
    /// and answer `None`: the transaction is then treated as an orphan.)
    fn coin(&mut self, op: &OutPoint) -> Option<Coin>;

    /// Median time past of the active block at `height`, needed for
    /// time-based relative lock times (BIP68) on confirmed coins. The
    /// default knows none: such transactions are rejected as
    /// `"non-BIP68-final"`.
    fn median_time_past_at(&mut self, _height: u32) -> Option<i64> {
        None
    }
}

impl UtxoView for HashMap<OutPoint, Coin> {
    fn coin(&mut self, op: &OutPoint) -> Option<Coin> {
        self.get(op).cloned()
    }
}

impl UtxoView for crate::chain::state::ChainState {
    fn coin(&mut self, op: &OutPoint) -> Option<Coin> {
        match crate::chain::state::ChainState::coin(self, op) {
            Ok(c) => c,
            Err(e) => {
                log::error!("mempool: cannot read coin {op}: {e}");
                None
            }
        }
    }

    fn median_time_past_at(&mut self, h: u32) -> Option<i64> {
        crate::chain::state::ChainState::median_time_past(self, h).map(i64::from)
    }
}

/// Mempool limits and relay policy (Core defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct MempoolConfig {
    /// Memory limit, compared against the `usage` estimate (`-maxmempool`,
    /// 300 MB).
    pub max_size_bytes: usize,
    /// Minimum fee rate to relay or accept (`-minrelaytxfee`, 1 sat/vB).
    pub min_relay_feerate: FeeRate,
    /// Fee rate a replacement must add, and the step of the rolling minimum
    /// fee (`-incrementalrelayfee`, 1 sat/vB).
    pub incremental_relay_feerate: FeeRate,
    /// Fee rate defining dust (`-dustrelayfee`, 3 sat/vB).
    pub dust_relay_feerate: FeeRate,
    /// Heaviest standard transaction (400,000).
    pub max_standard_tx_weight: u64,
    /// Replace conflicting transactions whether or not they signal BIP125
    /// (`-mempoolfullrbf`, true as in Core 28).
    pub full_rbf: bool,
    /// Most in-mempool ancestors, self included (`-limitancestorcount`, 25).
    pub ancestor_count: usize,
    /// Largest ancestor package in vbytes (`-limitancestorsize`, 101 kvB).
    pub ancestor_size_vb: u64,
    /// Most in-mempool descendants, self included (`-limitdescendantcount`,
    /// 25).
    pub descendant_count: usize,
    /// Largest descendant package in vbytes (`-limitdescendantsize`,
    /// 101 kvB).
    pub descendant_size_vb: u64,
    /// Orphan pool limits.
    pub orphans: OrphanConfig,
    /// Transactions older than this many seconds leave the pool, with
    /// their descendants (`-mempoolexpiry`, Core's
    /// `DEFAULT_MEMPOOL_EXPIRY_HOURS` 336).
    pub expiry_secs: u64,
}

/// Core's `DEFAULT_MAX_MEMPOOL_SIZE_MB`.
pub const DEFAULT_MAX_MEMPOOL_SIZE_MB: usize = 300;
/// Core's `DEFAULT_MEMPOOL_EXPIRY_HOURS`.
pub const DEFAULT_MEMPOOL_EXPIRY_HOURS: u64 = 336;

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            max_size_bytes: 300_000_000,
            min_relay_feerate: FeeRate::from_sat_per_vb(1),
            incremental_relay_feerate: FeeRate::from_sat_per_vb(1),
            dust_relay_feerate: FeeRate::from_sat_per_vb(3),
            max_standard_tx_weight: policy::MAX_STANDARD_TX_WEIGHT,
            full_rbf: true,
            ancestor_count: 25,
            ancestor_size_vb: 101_000,
            descendant_count: 25,
            descendant_size_vb: 101_000,
            orphans: OrphanConfig::default(),
            expiry_secs: DEFAULT_MEMPOOL_EXPIRY_HOURS * 3600,
        }
    }
}

/// The chain context a transaction is checked in.
#[derive(Debug, Clone, Copy)]
pub struct AcceptContext<'a> {
    /// Height of the next block (tip + 1).
    pub height: u32,
    /// Median time past of the tip (for lock times, BIP113).
    pub median_time_past: i64,
    /// Consensus script flags of the next block (e.g.
    /// `script_flags_for_height(height, params)`); policy additionally
    /// checks every flag libbitcoinkernel knows.
    pub script_flags: u32,
    /// Consensus parameters.
    pub params: &'a ChainParams,
    /// Current time, seconds since the epoch (entry time, fee decay).
    pub time: u64,
}

/// A transaction accepted into the mempool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// The fee it pays.
    pub fee: Amount,
    /// Its virtual size (sigop-adjusted).
    pub vsize: u64,
    /// Transactions it replaced (conflicts and their descendants).
    pub replaced: Vec<Transaction>,
}

/// A mempool entry as RPC shows it (Core `getmempoolentry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolEntry {
    /// Txid.
    pub txid: Txid,
    /// Wtxid.
    pub wtxid: Wtxid,
    /// Virtual size (sigop-adjusted).
    pub vsize: u64,
    /// Weight.
    pub weight: u64,
    /// Fee.
    pub fee: Amount,
    /// Time it entered the pool (seconds since the epoch).
    pub time: u64,
    /// Height of the next block when it entered.
    pub height: u32,
    /// In-mempool ancestors, self included.
    pub ancestor_count: usize,
    /// Their virtual size, self included.
    pub ancestor_size: u64,
    /// Their fees, self included.
    pub ancestor_fees: Amount,
    /// In-mempool descendants, self included.
    pub descendant_count: usize,
    /// Their virtual size, self included.
    pub descendant_size: u64,
    /// Their fees, self included.
    pub descendant_fees: Amount,
    /// Fee plus the `prioritisetransaction` delta, in satoshis.
    pub modified_fee: i64,
    /// In-mempool parents, sorted.
    pub depends: Vec<Txid>,
    /// In-mempool children, sorted.
    pub spent_by: Vec<Txid>,
    /// Whether it may be replaced (always true under full RBF).
    pub bip125_replaceable: bool,
    /// Sigop cost.
    pub sigop_cost: u64,
}

/// Mempool totals (Core `getmempoolinfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct MempoolInfo {
    /// Whether the mempool is loaded (always true: nothing is persisted).
    pub loaded: bool,
    /// Number of transactions.
    pub size: usize,
    /// Sum of their virtual sizes.
    pub bytes: u64,
    /// Estimated memory usage.
    pub usage: usize,
    /// Sum of their fees.
    pub total_fee: Amount,
    /// The memory limit.
    pub maxmempool: usize,
    /// Minimum fee rate to enter now: max(rolling minimum, min relay).
    pub mempoolminfee: FeeRate,
    /// Minimum relay fee rate.
    pub minrelaytxfee: FeeRate,
    /// Incremental relay fee rate.
    pub incrementalrelayfee: FeeRate,
    /// Transactions not yet announced (always 0: not tracked here).
    pub unbroadcastcount: usize,
    /// Whether full replace-by-fee is on.
    pub fullrbf: bool,
    /// Number of orphans held.
    pub orphans: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    tx: Transaction,
    wtxid: Wtxid,
    fee: u64,
    vsize: u64,
    weight: u64,
    usage: usize,
    time: u64,
    height: u32,
    sigop_cost: u64,
    signals_rbf: bool,
    parents: BTreeSet<Txid>,
    children: BTreeSet<Txid>,
}

/// Where an input's coin came from.
struct SpentCoin {
    coin: check::Coin,
    in_mempool: bool,
}

/// The transaction memory pool. See the module documentation for who calls
/// what on which thread.
#[derive(Debug, Clone)]
pub struct Mempool {
    config: MempoolConfig,
    entries: HashMap<Txid, Entry>,
    by_wtxid: HashMap<Wtxid, Txid>,
    /// Outpoint -> the mempool transaction spending it.
    spenders: HashMap<OutPoint, Txid>,
    total_vsize: u64,
    total_usage: usize,
    total_fee: u64,
    /// Rolling minimum fee rate, sat/kvB (Core `rollingMinimumFeeRate`).
    rolling_min_fee: f64,
    last_rolling_update: u64,
    block_since_bump: bool,
    orphans: OrphanPool,
    /// `prioritisetransaction` fee deltas, kept for transactions not (yet)
    /// in the pool too (Core `mapDeltas`).
    deltas: HashMap<Txid, i64>,
    /// Entries by entry time, for expiry.
    by_time: BTreeSet<(u64, Txid)>,
    /// The fee estimator, fed by acceptance and blocks.
    fees: FeeEstimator,
    /// Entries added plus entries removed (Core
    /// `nTransactionsUpdated`, part of `getblocktemplate`'s `longpollid`).
    updates: u64,
}

impl Mempool {
    /// An empty mempool.
    pub fn new(config: MempoolConfig) -> Mempool {
        let orphans = OrphanPool::new(config.orphans);
        Mempool {
            config,
            entries: HashMap::new(),
            by_wtxid: HashMap::new(),
            spenders: HashMap::new(),
            total_vsize: 0,
            total_usage: 0,
            total_fee: 0,
            rolling_min_fee: 0.0,
            last_rolling_update: 0,
            block_since_bump: false,
            orphans,
            deltas: HashMap::new(),
            by_time: BTreeSet::new(),
            fees: FeeEstimator::new(),
            updates: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    // -----------------------------------------------------------------
    // Acceptance
    // -----------------------------------------------------------------

    /// Checks `tx` in Core's order (`MemPoolAccept::AcceptSingleTransaction`)
    /// and adds it, replacing conflicting transactions when the replacement
    /// rules allow. `view` is the chain's UTXO set at the tip; outputs of
    /// mempool transactions are resolved here. Missing inputs give
    /// [`MempoolReject::MissingInputs`] (the caller may keep an orphan).
    pub fn accept(
        &mut self,
        tx: Transaction,
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Result<Accepted, MempoolReject> {
        self.accept_inner(tx, view, ctx, false)
    }

    fn accept_inner(
        &mut self,
        tx: Transaction,
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
        bypass_limits: bool,
    ) -> Result<Accepted, MempoolReject> {
        use RejectCode as C;
        let rej = MempoolReject::new;

        // --- PreChecks: context-free.
        check_transaction(&tx).map_err(|e| MempoolReject::from_validation(&e))?;
        if tx.is_coinbase() {
            return Err(rej(C::Consensus, "coinbase"));
        }
        policy::is_standard_tx(
            &tx,
            self.config.max_standard_tx_weight,
            self.config.dust_relay_feerate,
        )?;
        if tx.base_size() < policy::MIN_STANDARD_TX_NONWITNESS_SIZE {
            return Err(MempoolReject::not_standard("tx-size-small"));
        }
        if !is_final_tx(&tx, ctx.height, ctx.median_time_past) {
            return Err(rej(C::PrematureSpend, "non-final"));
        }
        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        if self.by_wtxid.contains_key(&wtxid) {
            return Err(rej(C::Conflict, "txn-already-in-mempool"));
        }
        if self.entries.contains_key(&txid) {
            return Err(rej(C::Conflict, "txn-same-nonwitness-data-in-mempool"));
        }

        // --- Conflicts with mempool transactions.
        let mut conflicts = BTreeSet::new();
        for input in &tx.input {
            if let Some(spender) = self.spenders.get(&input.previous_output) {
                if !self.config.full_rbf && !self.signals_rbf_with_ancestors(spender) {
                    return Err(rej(C::MempoolPolicy, "txn-mempool-conflict"));
                }
                conflicts.insert(*spender);
            }
        }

        // --- Inputs: mempool outputs first, then the chain.
        let mut spent: Vec<SpentCoin> = Vec::with_capacity(tx.input.len());
        let mut missing: Vec<Txid> = Vec::new();
        for input in &tx.input {
            let op = input.previous_output;
            if let Some(parent) = self.entries.get(&op.txid) {
                if let Some(out) = parent.tx.output.get(op.vout as usize) {
                    spent.push(SpentCoin {
                        coin: check::Coin {
                            output: out.clone(),
                            height: ctx.height,
                            is_coinbase: false,
                        },
                        in_mempool: true,
                    });
                    continue;
                }
            } else if let Some(c) = view.coin(&op) {
                spent.push(SpentCoin {
                    coin: c.into(),
                    in_mempool: false,
                });
                continue;
            }
            if !missing.contains(&op.txid) {
                missing.push(op.txid);
            }
        }
        if !missing.is_empty() {
            for vout in 0..tx.output.len() {
                if view.coin(&OutPoint::new(txid, vout as u32)).is_some() {
                    return Err(rej(C::Conflict, "txn-already-known"));
                }
            }
            return Err(MempoolReject::MissingInputs(missing));
        }

        // --- BIP68 sequence locks at the tip.
        self.check_sequence_locks(&tx, &spent, view, ctx)?;

        // --- Consensus input checks: maturity, values, fee.
        let coins: Vec<check::Coin> = spent.iter().map(|s| s.coin.clone()).collect();
        let fee = check_tx_inputs(&tx, &coins, ctx.height, ctx.params)
            .map_err(|e| MempoolReject::from_validation(&e))?
            .to_sat();
        let spent_outputs: Vec<TxOut> = coins.into_iter().map(|c| c.output).collect();

        // --- Input standardness.
        if !policy::are_inputs_standard(&tx, &spent_outputs) {
            return Err(rej(C::InputsNotStandard, "bad-txns-nonstandard-inputs"));
        }
        if !policy::is_witness_standard(&tx, &spent_outputs) {
            return Err(rej(C::NotStandard, "bad-witness-nonstandard"));
        }

        // --- Sigops and size.
        let sigop_cost = get_transaction_sigop_cost(&tx, &spent_outputs, ctx.script_flags)
            .map_err(|e| MempoolReject::from_validation(&e))?;
        if sigop_cost > policy::MAX_STANDARD_TX_SIGOPS_COST {
            return Err(MempoolReject::not_standard("bad-txns-too-many-sigops")
                .with_detail(sigop_cost.to_string()));
        }
        let weight = tx.weight().to_wu();
        let vsize = policy::virtual_size(weight, sigop_cost);

        // --- Fee rate floors.
        if !bypass_limits {
            // Core checks the modified fee (prioritisetransaction counts).
            let modified = (fee as i64 + self.deltas.get(&txid).copied().unwrap_or(0)).max(0);
            let modified = modified as u64;
            let min_fee = self.min_fee_rate(ctx.time).fee(vsize);
            if min_fee > 0 && modified < min_fee {
                return Err(rej(C::Reconsiderable, "mempool min fee not met")
                    .with_detail(format!("{modified} < {min_fee}")));
            }
            let relay = self.config.min_relay_feerate.fee(vsize);
            if modified < relay {
                return Err(rej(C::Reconsiderable, "min relay fee not met")
                    .with_detail(format!("{modified} < {relay}")));
            }
        }

        // --- Ancestor / descendant limits.
        let parents: BTreeSet<Txid> = tx
            .input
            .iter()
            .map(|i| i.previous_output.txid)
            .filter(|t| self.entries.contains_key(t))
            .collect();
        let ancestors = self.ancestors_from(&parents);
        self.check_package_limits(&ancestors, vsize)?;

        // --- Replacement (full RBF, Core 28).
        let mut all_conflicting = BTreeSet::new();
        if !conflicts.is_empty() {
            for c in &conflicts {
                all_conflicting.insert(*c);
                all_conflicting.extend(self.descendants(c));
            }
            if let Some(a) = ancestors.iter().find(|a| all_conflicting.contains(*a)) {
                return Err(rej(C::Consensus, "bad-txns-spends-conflicting-tx")
                    .with_detail(format!("{txid} spends conflicting transaction {a}")));
            }
            self.replacement_checks(&tx, txid, fee, vsize, &conflicts, &all_conflicting)?;
        }

        // --- Scripts: policy flags, then consensus flags to classify.
        verify_scripts(&tx, &spent_outputs, ctx.script_flags)?;

        // --- Finalize.
        let mut replaced = Vec::new();
        for c in &conflicts {
            replaced.extend(self.remove_recursive(c));
        }
        let signals_rbf = tx.is_explicitly_rbf();
        let size = tx.total_size();
        let usage = size + ENTRY_OVERHEAD + TXIO_OVERHEAD * (tx.input.len() + tx.output.len());
        self.insert(
            txid,
            Entry {
                tx,
                wtxid,
                fee,
                vsize,
                weight,
                usage,
                time: ctx.time,
                height: ctx.height,
                sigop_cost,
                signals_rbf,
                parents,
                children: BTreeSet::new(),
            },
        );
        if !bypass_limits {
            // Core `LimitMempoolSize`: expire, then trim.
            self.expire(ctx.time);
            self.trim_to_size(self.config.max_size_bytes, ctx.time);
            if !self.entries.contains_key(&txid) {
                return Err(rej(C::Reconsiderable, "mempool full"));
            }
            self.fees.process_tx(
                txid,
                ctx.height.saturating_sub(1),
                FeeRate::from_fee(fee, vsize),
            );
        }
        Ok(Accepted {
            txid,
            wtxid,
            fee: Amount::from_sat(fee),
            vsize,
            replaced,
        })
    }

    fn check_sequence_locks(
        &self,
        tx: &Transaction,
        spent: &[SpentCoin],
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Result<(), MempoolReject> {
        let non_final = || MempoolReject::new(RejectCode::PrematureSpend, "non-BIP68-final");
        let heights: Vec<u32> = spent
            .iter()
            .map(|s| {
                if s.in_mempool {
                    ctx.height
                } else {
                    s.coin.height
                }
            })
            .collect();
        // Median times past the time-based locks need, looked up up front.
        let mut mtps: HashMap<u32, i64> = HashMap::new();
        if tx.version.0 as u32 >= 2 {
            for (input, &h) in tx.input.iter().zip(&heights) {
                let seq = input.sequence.0;
                if seq & (1 << 31) == 0 && seq & (1 << 22) != 0 {
                    let at = h.saturating_sub(1);
                    if at.saturating_add(1) >= ctx.height {
                        mtps.insert(at, ctx.median_time_past);
                    } else if let Some(t) = view.median_time_past_at(at) {
                        mtps.insert(at, t);
                    }
                }
            }
        }
        let locks = calculate_sequence_locks(tx, true, &heights, |h| mtps.get(&h).copied())
            .map_err(|e| non_final().with_detail(e.to_string()))?;
        if !evaluate_sequence_locks(ctx.height, ctx.median_time_past, locks) {
            return Err(non_final());
        }
        Ok(())
    }

    fn check_package_limits(
        &self,
        ancestors: &BTreeSet<Txid>,
        vsize: u64,
    ) -> Result<(), MempoolReject> {
        let too_long = |d: String| {
            MempoolReject::new(RejectCode::MempoolPolicy, "too-long-mempool-chain").with_detail(d)
        };
        if ancestors.len() + 1 > self.config.ancestor_count {
            return Err(too_long(format!(
                "too many unconfirmed ancestors [limit: {}]",
                self.config.ancestor_count
            )));
        }
        let anc_size: u64 = ancestors
            .iter()
            .filter_map(|a| self.entries.get(a))
            .map(|e| e.vsize)
            .sum::<u64>()
            + vsize;
        if anc_size > self.config.ancestor_size_vb {
            return Err(too_long(format!(
                "exceeds ancestor size limit [limit: {}]",
                self.config.ancestor_size_vb
            )));
        }
        for a in ancestors {
            let desc = self.descendants(a);
            // The ancestor, its descendants, and the new transaction.
            if desc.len() + 2 > self.config.descendant_count {
                return Err(too_long(format!(
                    "too many descendants for tx {a} [limit: {}]",
                    self.config.descendant_count
                )));
            }
            let size: u64 = std::iter::once(a)
                .chain(desc.iter())
                .filter_map(|t| self.entries.get(t))
                .map(|e| e.vsize)
                .sum::<u64>()
                + vsize;
            if size > self.config.descendant_size_vb {
                return Err(too_long(format!(
                    "exceeds descendant size limit for tx {a} [limit: {}]",
                    self.config.descendant_size_vb
                )));
            }
        }
        Ok(())
    }

    /// Core 28 `ReplacementChecks` for a single transaction.
    fn replacement_checks(
        &self,
        tx: &Transaction,
        txid: Txid,
        fee: u64,
        vsize: u64,
        conflicts: &BTreeSet<Txid>,
        all_conflicting: &BTreeSet<Txid>,
    ) -> Result<(), MempoolReject> {
        use RejectCode as C;
        // PaysMoreThanConflicts: a higher fee rate than each direct conflict.
        for c in conflicts {
            if let Some(e) = self.entries.get(c) {
                if policy::cmp_feerate(fee, vsize, e.fee, e.vsize) != std::cmp::Ordering::Greater {
                    return Err(MempoolReject::new(C::Reconsiderable, "insufficient fee")
                        .with_detail(format!(
                            "rejecting replacement {txid}; new feerate {} <= old feerate {}",
                            FeeRate::from_fee(fee, vsize),
                            FeeRate::from_fee(e.fee, e.vsize)
                        )));
                }
            }
        }
        // GetEntriesForConflicts.
        if all_conflicting.len() > MAX_REPLACEMENT_CANDIDATES {
            return Err(
                MempoolReject::new(C::MempoolPolicy, "too many potential replacements")
                    .with_detail(format!(
                        "rejecting replacement {txid}; too many potential replacements ({} > {})",
                        all_conflicting.len(),
                        MAX_REPLACEMENT_CANDIDATES
                    )),
            );
        }
        // HasNoNewUnconfirmedParents.
        let parents_of_conflicts: BTreeSet<Txid> = conflicts
            .iter()
            .filter_map(|c| self.entries.get(c))
            .flat_map(|e| e.tx.input.iter().map(|i| i.previous_output.txid))
            .collect();
        for (j, input) in tx.input.iter().enumerate() {
            let p = input.previous_output.txid;
            if !parents_of_conflicts.contains(&p) && self.entries.contains_key(&p) {
                return Err(
                    MempoolReject::new(C::MempoolPolicy, "replacement-adds-unconfirmed")
                        .with_detail(format!(
                            "replacement {txid} adds unconfirmed input, idx {j}"
                        )),
                );
            }
        }
        // PaysForRBF: more absolute fee, and enough extra for its own relay.
        let conflicting_fees: u64 = all_conflicting
            .iter()
            .filter_map(|c| self.entries.get(c))
            .map(|e| e.fee)
            .sum();
        if fee < conflicting_fees {
            return Err(
                MempoolReject::new(C::Reconsiderable, "insufficient fee").with_detail(format!(
                    "rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                    fmt_btc(fee),
                    fmt_btc(conflicting_fees)
                )),
            );
        }
        let additional = fee - conflicting_fees;
        let relay = self.config.incremental_relay_feerate.fee(vsize);
        if additional < relay {
            return Err(
                MempoolReject::new(C::Reconsiderable, "insufficient fee").with_detail(format!(
                    "rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                    fmt_btc(additional),
                    fmt_btc(relay)
                )),
            );
        }
        Ok(())
    }

    /// Accepts `tx` from `peer`; when its inputs are missing keeps it as an
    /// orphan, and when it is accepted retries the orphans spending it,
    /// recursively (a chain of orphans is resolved once its root parent
    /// arrives). Returns one result per transaction tried, `tx` first.
    /// Resolved orphans (accepted or invalid) leave the orphan pool; those
    /// still missing inputs stay.
    pub fn accept_with_orphans(
        &mut self,
        tx: Transaction,
        peer: PeerId,
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Vec<(Txid, Result<Accepted, MempoolReject>)> {
        let txid = tx.compute_txid();
        let keep = tx.clone();
        let first = self.accept(tx, view, ctx);
        let mut results = Vec::new();
        let mut queue = VecDeque::new();
        match &first {
            Ok(a) => {
                // It may have been held as an orphan (sent earlier by
                // another peer before its parents).
                self.orphans.erase(&a.txid);
                queue.push_back(a.txid);
            }
            Err(MempoolReject::MissingInputs(_)) => {
                // Too large or a duplicate: simply not kept.
                let _ = self.orphans.add_orphan(keep, peer, ctx.time);
            }
            Err(_) => {}
        }
        results.push((txid, first));
        while let Some(parent) = queue.pop_front() {
            let n_out = self.entries.get(&parent).map_or(0, |e| e.tx.output.len());
            for (child, _) in self.orphans.children_ids(&parent, n_out) {
                let Some(orphan) = self.orphans.get(&child).map(|e| e.tx.clone()) else {
                    continue;
                };
                let r = self.accept(orphan, view, ctx);
                match &r {
                    Ok(a) => {
                        self.orphans.erase(&child);
                        queue.push_back(a.txid);
                    }
                    Err(MempoolReject::MissingInputs(_)) => {}
                    Err(_) => {
                        self.orphans.erase(&child);
                    }
                }
                results.push((child, r));
            }
        }
        results
    }

    // -----------------------------------------------------------------
    // Orphans
    // -----------------------------------------------------------------

    /// The orphan pool.
    pub fn orphans(&self) -> &OrphanPool {
        &self.orphans
    }

    /// The orphan pool, mutably (`add_orphan`, `expire`, ...).
    pub fn orphans_mut(&mut self) -> &mut OrphanPool {
        &mut self.orphans
    }

    /// Drops the orphans received from `peer`; returns how many.
    pub fn erase_orphans_for_peer(&mut self, peer: PeerId) -> usize {
        self.orphans.erase_for_peer(peer)
    }

    // -----------------------------------------------------------------
    // Removal
    // -----------------------------------------------------------------

    /// Removes `txid` and all its in-mempool descendants; returns them,
    /// `txid` first (empty if it was not in the pool).
    pub fn remove_recursive(&mut self, txid: &Txid) -> Vec<Transaction> {
        if !self.entries.contains_key(txid) {
            return Vec::new();
        }
        let mut order = vec![*txid];
        order.extend(self.descendants(txid));
        order
            .iter()
            .filter_map(|t| self.remove_entry(t))
            .map(|e| e.tx)
            .collect()
    }

    /// After `block` was connected: removes its transactions (their
    /// in-mempool children stay, now spending confirmed outputs), every
    /// mempool transaction double-spending one of its inputs together with
    /// their descendants, and the orphans it includes or conflicts with.
    /// Returns the transactions removed as conflicts.
    pub fn remove_for_block(&mut self, block: &Block) -> Vec<Transaction> {
        // The block's height from its BIP34 coinbase (every block a node
        // with a mempool connects has one); else one above the last.
        let height = block
            .txdata
            .first()
            .and_then(|cb| cb.input.first())
            .and_then(|i| crate::mining::coinbase_height(&i.script_sig))
            .unwrap_or(self.fees.best_height() + 1);
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        self.fees.process_block(height, &txids);
        for t in &txids {
            // Core `ClearPrioritisation` for mined transactions.
            self.deltas.remove(t);
        }
        let mut conflicts = Vec::new();
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            self.remove_entry(&txid);
            if tx.is_coinbase() {
                continue;
            }
            for input in &tx.input {
                if let Some(spender) = self.spenders.get(&input.previous_output).copied() {
                    conflicts.extend(self.remove_recursive(&spender));
                }
            }
        }
        self.orphans.erase_for_block(block);
        self.block_since_bump = true;
        conflicts
    }

    /// After a reorganisation: puts back the transactions of the
    /// disconnected blocks (oldest block first, block order; coinbases are
    /// skipped) that are still valid at the new tip, without fee floors or
    /// size limit, then removes mempool transactions the new tip made
    /// invalid (spending vanished or immature coinbase outputs, non-final),
    /// then trims to size. `view` and `ctx` describe the new tip. Returns
    /// the result for each transaction offered.
    pub fn readd_for_reorg(
        &mut self,
        txs: Vec<Transaction>,
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Vec<(Txid, Result<Accepted, MempoolReject>)> {
        let mut results = Vec::new();
        for tx in txs {
            if tx.is_coinbase() {
                continue;
            }
            let txid = tx.compute_txid();
            results.push((txid, self.accept_inner(tx, view, ctx, true)));
        }
        self.remove_invalid_at_tip(view, ctx);
        self.trim_to_size(self.config.max_size_bytes, ctx.time);
        results
    }

    /// Removes (with descendants) entries that are no longer valid at the
    /// tip `ctx` describes: non-final, spending an output neither in `view`
    /// nor in the pool, spending an immature coinbase, or BIP68-locked
    /// (Core `removeForReorg`). Returns the removed transactions.
    pub fn remove_invalid_at_tip(
        &mut self,
        view: &mut dyn UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Vec<Transaction> {
        let mut txids: Vec<Txid> = self.entries.keys().copied().collect();
        txids.sort();
        let mut removed = Vec::new();
        for txid in txids {
            let Some(entry) = self.entries.get(&txid) else {
                continue;
            };
            let tx = entry.tx.clone();
            let mut ok = is_final_tx(&tx, ctx.height, ctx.median_time_past);
            let mut spent = Vec::with_capacity(tx.input.len());
            for input in &tx.input {
                if !ok {
                    break;
                }
                let op = input.previous_output;
                if let Some(p) = self.entries.get(&op.txid) {
                    match p.tx.output.get(op.vout as usize) {
                        Some(out) => spent.push(SpentCoin {
                            coin: check::Coin {
                                output: out.clone(),
                                height: ctx.height,
                                is_coinbase: false,
                            },
                            in_mempool: true,
                        }),
                        None => ok = false,
                    }
                } else if let Some(c) = view.coin(&op) {
                    if c.is_coinbase
                        && i64::from(ctx.height) - i64::from(c.height)
                            < i64::from(ctx.params.coinbase_maturity)
                    {
                        ok = false;
                    }
                    spent.push(SpentCoin {
                        coin: c.into(),
                        in_mempool: false,
                    });
                } else {
                    ok = false;
                }
            }
            if ok && self.check_sequence_locks(&tx, &spent, view, ctx).is_err() {
                ok = false;
            }
            if !ok {
                removed.extend(self.remove_recursive(&txid));
            }
        }
        removed
    }

    /// Evicts the lowest-scoring packages until the usage estimate is at
    /// most `limit`. A transaction's score is the higher of its own fee
    /// rate and its descendant package's (Core's descendant score);
    /// evicting it evicts its descendants. Scores are computed once per
    /// call (an approximation of Core, which recomputes after each
    /// eviction). Raises the rolling minimum fee to the highest evicted
    /// package rate plus the incremental relay fee. Returns the evicted
    /// transactions.
    pub fn trim_to_size(&mut self, limit: usize, now: u64) -> Vec<Transaction> {
        if self.total_usage <= limit {
            return Vec::new();
        }
        let mut scored: Vec<(u64, u64, u64, u64, Txid)> = self
            .entries
            .iter()
            .map(|(txid, e)| {
                // Modified fees, as Core's descendant score.
                let own = self.modified_fee(txid).max(0) as u64;
                let (mut dfee, mut dsize) = (own, e.vsize);
                for d in self.descendants(txid) {
                    if let Some(de) = self.entries.get(&d) {
                        dfee += self.modified_fee(&d).max(0) as u64;
                        dsize += de.vsize;
                    }
                }
                // Sort key: the higher of own and descendant rate.
                let (sfee, ssize) = if policy::cmp_feerate(dfee, dsize, own, e.vsize).is_gt() {
                    (dfee, dsize)
                } else {
                    (own, e.vsize)
                };
                (sfee, ssize, dfee, dsize, *txid)
            })
            .collect();
        scored.sort_by(|a, b| policy::cmp_feerate(a.0, a.1, b.0, b.1).then(a.4.cmp(&b.4)));
        let mut evicted = Vec::new();
        for (_, _, dfee, dsize, txid) in scored {
            if self.total_usage <= limit {
                break;
            }
            if !self.entries.contains_key(&txid) {
                continue;
            }
            let removed_rate =
                FeeRate::from_fee(dfee, dsize).0 + self.config.incremental_relay_feerate.0;
            if removed_rate as f64 > self.rolling_min_fee {
                self.rolling_min_fee = removed_rate as f64;
                self.block_since_bump = false;
                self.last_rolling_update = now;
            }
            evicted.extend(self.remove_recursive(&txid));
        }
        evicted
    }

    /// Removes transactions that entered more than
    /// [`MempoolConfig::expiry_secs`] before `now`, with their descendants
    /// (Core `CTxMemPool::Expire`). Returns how many left.
    pub fn expire(&mut self, now: u64) -> usize {
        let cutoff = now.saturating_sub(self.config.expiry_secs);
        let old: Vec<Txid> = self
            .by_time
            .iter()
            .take_while(|(t, _)| *t < cutoff)
            .map(|(_, txid)| *txid)
            .collect();
        old.iter().map(|t| self.remove_recursive(t).len()).sum()
    }

    /// Core's `PrioritiseTransaction`: adds `delta` satoshis to the fee
    /// `txid` is mined and evicted by (it need not be in the pool yet).
    pub fn prioritise_transaction(&mut self, txid: Txid, delta: i64) {
        let d = self.deltas.entry(txid).or_insert(0);
        *d = d.saturating_add(delta);
        if *d == 0 {
            self.deltas.remove(&txid);
        }
    }

    /// Every fee delta: (txid, delta, whether the transaction is in the
    /// pool), sorted by txid (`getprioritisedtransactions`).
    pub fn prioritised(&self) -> Vec<(Txid, i64, bool)> {
        let mut v: Vec<(Txid, i64, bool)> = self
            .deltas
            .iter()
            .map(|(t, d)| (*t, *d, self.entries.contains_key(t)))
            .collect();
        v.sort();
        v
    }

    /// The fee estimator.
    pub fn fees(&self) -> &FeeEstimator {
        &self.fees
    }

    /// Replaces the fee estimator (loaded from `fee_estimates.dat`).
    pub fn set_fees(&mut self, fees: FeeEstimator) {
        self.fees = fees;
    }

    /// How many times an entry was added or removed (Core
    /// `GetTransactionsUpdated`).
    pub fn transactions_updated(&self) -> u64 {
        self.updates
    }

    /// Entry time of `txid` (seconds since the epoch).
    pub fn entry_time(&self, txid: &Txid) -> Option<u64> {
        self.entries.get(txid).map(|e| e.time)
    }

    // -----------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `txid` is in the pool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// Whether a transaction with this wtxid is in the pool.
    pub fn contains_wtxid(&self, wtxid: &Wtxid) -> bool {
        self.by_wtxid.contains_key(wtxid)
    }

    /// The transaction `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&Transaction> {
        self.entries.get(txid).map(|e| &e.tx)
    }

    /// The transaction with wtxid `wtxid`.
    pub fn get_by_wtxid(&self, wtxid: &Wtxid) -> Option<&Transaction> {
        self.by_wtxid.get(wtxid).and_then(|t| self.get(t))
    }

    /// The mempool transaction spending `op`, if any.
    pub fn spender_of(&self, op: &OutPoint) -> Option<Txid> {
        self.spenders.get(op).copied()
    }

    /// All txids, sorted.
    pub fn txids(&self) -> Vec<Txid> {
        let mut v: Vec<Txid> = self.entries.keys().copied().collect();
        v.sort();
        v
    }

    /// The RPC view of entry `txid`, with ancestor and descendant totals.
    pub fn entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        let e = self.entries.get(txid)?;
        let ancestors = self.ancestors_from(&e.parents);
        let descendants = self.descendants(txid);
        let sum = |set: &mut dyn Iterator<Item = &Txid>| {
            set.filter_map(|t| self.entries.get(t))
                .fold((0u64, 0u64), |(s, f), x| (s + x.vsize, f + x.fee))
        };
        let (asize, afee) = sum(&mut ancestors.iter());
        let (dsize, dfee) = sum(&mut descendants.iter());
        Some(MempoolEntry {
            txid: *txid,
            wtxid: e.wtxid,
            vsize: e.vsize,
            weight: e.weight,
            fee: Amount::from_sat(e.fee),
            time: e.time,
            height: e.height,
            ancestor_count: ancestors.len() + 1,
            ancestor_size: asize + e.vsize,
            ancestor_fees: Amount::from_sat(afee + e.fee),
            descendant_count: descendants.len() + 1,
            descendant_size: dsize + e.vsize,
            descendant_fees: Amount::from_sat(dfee + e.fee),
            modified_fee: self.modified_fee(txid),
            depends: e.parents.iter().copied().collect(),
            spent_by: e.children.iter().copied().collect(),
            bip125_replaceable: self.config.full_rbf || self.signals_rbf_with_ancestors(txid),
            sigop_cost: e.sigop_cost,
        })
    }

    /// Totals for `getmempoolinfo`.
    pub fn info(&self) -> MempoolInfo {
        let rolling = FeeRate(self.rolling_min_fee.round() as u64);
        let rolling = if rolling.0 == 0 {
            rolling
        } else {
            rolling.max(self.config.incremental_relay_feerate)
        };
        MempoolInfo {
            loaded: true,
            size: self.entries.len(),
            bytes: self.total_vsize,
            usage: self.total_usage,
            total_fee: Amount::from_sat(self.total_fee),
            maxmempool: self.config.max_size_bytes,
            mempoolminfee: rolling.max(self.config.min_relay_feerate),
            minrelaytxfee: self.config.min_relay_feerate,
            incrementalrelayfee: self.config.incremental_relay_feerate,
            unbroadcastcount: 0,
            fullrbf: self.config.full_rbf,
            orphans: self.orphans.len(),
        }
    }

    /// The rolling minimum fee rate at `now` (Core `GetMinFee`): raised by
    /// evictions, halving every 12 hours (faster when the pool is small)
    /// once a block has been connected since the last raise; zero when
    /// nothing was evicted. Decays the stored value.
    pub fn min_fee_rate(&mut self, now: u64) -> FeeRate {
        if !self.block_since_bump || self.rolling_min_fee == 0.0 {
            return FeeRate(self.rolling_min_fee.round() as u64);
        }
        if now > self.last_rolling_update + 10 {
            let mut halflife = ROLLING_FEE_HALFLIFE as f64;
            if self.total_usage < self.config.max_size_bytes / 4 {
                halflife /= 4.0;
            } else if self.total_usage < self.config.max_size_bytes / 2 {
                halflife /= 2.0;
            }
            let elapsed = (now - self.last_rolling_update) as f64;
            self.rolling_min_fee /= 2f64.powf(elapsed / halflife);
            self.last_rolling_update = now;
            if self.rolling_min_fee < self.config.incremental_relay_feerate.0 as f64 / 2.0 {
                self.rolling_min_fee = 0.0;
                return FeeRate::ZERO;
            }
        }
        FeeRate(self.rolling_min_fee.round() as u64).max(self.config.incremental_relay_feerate)
    }

    /// Inventory answering a `mempool` message: wtxids (`wtxid_relay`
    /// peers) or txids of transactions whose fee rate is at least
    /// `fee_filter`, parents before children (by ancestor count, then txid).
    pub fn inventory(&self, wtxid_relay: bool, fee_filter: FeeRate) -> Vec<Inventory> {
        let mut v: Vec<(usize, Txid, Wtxid)> = self
            .entries
            .iter()
            .filter(|(_, e)| FeeRate::from_fee(e.fee, e.vsize) >= fee_filter)
            .map(|(t, e)| (self.ancestors_from(&e.parents).len(), *t, e.wtxid))
            .collect();
        v.sort();
        v.into_iter()
            .map(|(_, t, w)| {
                if wtxid_relay {
                    Inventory::WTx(w)
                } else {
                    Inventory::Transaction(t)
                }
            })
            .collect()
    }

    // -----------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------

    fn insert(&mut self, txid: Txid, mut entry: Entry) {
        for input in &entry.tx.input {
            self.spenders.insert(input.previous_output, txid);
        }
        for p in &entry.parents {
            if let Some(pe) = self.entries.get_mut(p) {
                pe.children.insert(txid);
            }
        }
        // Mempool transactions already spending this one's outputs (after a
        // reorg puts a confirmed parent back).
        for vout in 0..entry.tx.output.len() {
            if let Some(child) = self
                .spenders
                .get(&OutPoint::new(txid, vout as u32))
                .copied()
            {
                entry.children.insert(child);
                if let Some(ce) = self.entries.get_mut(&child) {
                    ce.parents.insert(txid);
                }
            }
        }
        self.total_vsize += entry.vsize;
        self.total_usage += entry.usage;
        self.total_fee += entry.fee;
        self.by_time.insert((entry.time, txid));
        self.updates += 1;
        self.by_wtxid.insert(entry.wtxid, txid);
        self.entries.insert(txid, entry);
    }

    /// Removes one entry, unlinking it; its children stay.
    fn remove_entry(&mut self, txid: &Txid) -> Option<Entry> {
        let e = self.entries.remove(txid)?;
        for input in &e.tx.input {
            if self.spenders.get(&input.previous_output) == Some(txid) {
                self.spenders.remove(&input.previous_output);
            }
        }
        for p in &e.parents {
            if let Some(pe) = self.entries.get_mut(p) {
                pe.children.remove(txid);
            }
        }
        for c in &e.children {
            if let Some(ce) = self.entries.get_mut(c) {
                ce.parents.remove(txid);
            }
        }
        self.by_wtxid.remove(&e.wtxid);
        self.by_time.remove(&(e.time, *txid));
        self.updates += 1;
        self.fees.remove_tx(txid);
        self.total_vsize -= e.vsize;
        self.total_usage -= e.usage;
        self.total_fee -= e.fee;
        Some(e)
    }

    /// `parents` and all their in-mempool ancestors.
    fn ancestors_from(&self, parents: &BTreeSet<Txid>) -> BTreeSet<Txid> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Txid> = parents.iter().copied().collect();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                if let Some(e) = self.entries.get(&t) {
                    stack.extend(e.parents.iter().copied());
                }
            }
        }
        seen
    }

    /// All in-mempool descendants of `txid` (not itself), parents before
    /// children in discovery order.
    fn descendants(&self, txid: &Txid) -> Vec<Txid> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut queue: VecDeque<Txid> = VecDeque::new();
        if let Some(e) = self.entries.get(txid) {
            queue.extend(e.children.iter().copied());
        }
        while let Some(t) = queue.pop_front() {
            if seen.insert(t) {
                out.push(t);
                if let Some(e) = self.entries.get(&t) {
                    queue.extend(e.children.iter().copied());
                }
            }
        }
        out
    }

    /// BIP125 signalling by `txid` or any in-mempool ancestor.
    fn signals_rbf_with_ancestors(&self, txid: &Txid) -> bool {
        let Some(e) = self.entries.get(txid) else {
            return false;
        };
        e.signals_rbf
            || self
                .ancestors_from(&e.parents)
                .iter()
                .any(|a| self.entries.get(a).is_some_and(|x| x.signals_rbf))
    }
}

/// Verifies every input under policy flags (all flags libbitcoinkernel
/// supports); on failure re-checks with the consensus flags to tell a
/// consensus failure (`"mandatory-script-verify-flag-failed (...)"`) from a
/// policy one (`"non-mandatory-script-verify-flag (...)"`). The transaction
/// is prepared for the kernel once, so this is linear in its size.
fn verify_scripts(
    tx: &Transaction,
    spent: &[TxOut],
    consensus_flags: u32,
) -> Result<(), MempoolReject> {
    let reject = |i: usize, e: ScriptError| {
        let code = match e {
            ScriptError::VerifyFailed | ScriptError::Library(_) => RejectCode::Consensus,
            _ => RejectCode::NotStandard,
        };
        MempoolReject::new(code, e.reason()).with_detail(format!("input {i}"))
    };
    let prepared = PrecomputedTransaction::new(tx, spent).map_err(|e| reject(0, e))?;
    let policy_flags = VERIFY_ALL | consensus_flags;
    for i in 0..tx.input.len() {
        if let Err(policy_err) = prepared.verify_input(i, policy_flags) {
            return Err(match prepared.verify_input(i, consensus_flags) {
                Err(e) => reject(i, e),
                Ok(()) => MempoolReject::new(
                    RejectCode::NotStandard,
                    format!("non-mandatory-script-verify-flag ({policy_err})"),
                )
                .with_detail(format!("input {i}")),
            });
        }
    }
    Ok(())
}

/// Satoshis as Core's `FormatMoney` prints them (`"0.00001000"`).
fn fmt_btc(sat: u64) -> String {
    format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000)
}

/// A mempool shared by the node's threads behind one lock (see the module
/// documentation for who locks it and when). Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SharedMempool(Arc<Mutex<Mempool>>);

impl SharedMempool {
    /// Shares `mempool`.
    pub fn new(mempool: Mempool) -> SharedMempool {
        SharedMempool(Arc::new(Mutex::new(mempool)))
    }

    /// Locks the pool. Keep the guard short-lived and never send on a
    /// channel or take another lock while holding it.
    pub fn lock(&self) -> MutexGuard<'_, Mempool> {
        self.0.lock()
    }
}

impl OrphanEvictor for SharedMempool {
    /// Called by the peer-handler thread for every finished peer.
    fn evict_orphans_from(&mut self, peer: PeerId) -> usize {
        self.0.lock().erase_orphans_for_peer(peer)
    }
}
