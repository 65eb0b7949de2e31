//! Choosing a block's transactions from the mempool (Bitcoin Core's
//! `BlockAssembler::addPackageTxs`).
//!
//! Owns [`Mempool::select_for_block`]: transactions are taken by ancestor
//! package fee rate, using *modified* fees (base fee plus the
//! `prioritisetransaction` delta): the package with the best rate (the
//! transaction and its not-yet-selected in-mempool ancestors) is added
//! whole, parents first, if it fits the weight and sigop budgets; scores of
//! packages whose ancestors were taken are recomputed lazily when they
//! reach the top of the heap. Selection stops at the first package below
//! the block minimum fee rate (Core `DEFAULT_BLOCK_MIN_TX_FEE`, 1 sat/kvB).
//! Runs on whichever thread holds the mempool lock (an RPC worker building
//! `getblocktemplate`).

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use bitcoin::{Amount, Transaction, Txid};

use super::Mempool;

/// Core's `DEFAULT_BLOCK_MIN_TX_FEE`: packages paying less than this many
/// sat/kvB are left out.
pub const DEFAULT_BLOCK_MIN_TX_FEE: u64 = 1;

/// One transaction of a block template, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTx {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Txid,
    /// Its base fee (what the coinbase collects).
    pub fee: Amount,
    /// Its fee plus the `prioritisetransaction` delta (what ordered it).
    pub modified_fee: i64,
    /// Its sigop cost.
    pub sigop_cost: u64,
    /// Its weight.
    pub weight: u64,
    /// 1-based positions (in the template's transaction list) of the
    /// transactions it spends, as `getblocktemplate`'s `depends`.
    pub depends: Vec<usize>,
}

/// A heap item: a package's modified fee and vsize, best rate first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Score {
    fee: u64,
    vsize: u64,
    txid: Txid,
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        let a = u128::from(self.fee) * u128::from(other.vsize.max(1));
        let b = u128::from(other.fee) * u128::from(self.vsize.max(1));
        // Equal rates: the lower txid first (deterministic templates).
        a.cmp(&b).then_with(|| other.txid.cmp(&self.txid))
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Package {
    members: Vec<Txid>,
    fee: u64,
    vsize: u64,
    weight: u64,
    sigops: u64,
}

impl Mempool {
    /// The modified fee of `txid` (base fee plus its delta), 0 if unknown.
    pub fn modified_fee(&self, txid: &Txid) -> i64 {
        self.entries.get(txid).map_or(0, |e| {
            e.fee as i64 + self.deltas.get(txid).copied().unwrap_or(0)
        })
    }

    fn package(&self, txid: &Txid, taken: &HashSet<Txid>) -> Package {
        let mut members: BTreeSet<Txid> = BTreeSet::new();
        if let Some(e) = self.entries.get(txid) {
            members.extend(
                self.ancestors_from(&e.parents)
                    .into_iter()
                    .filter(|a| !taken.contains(a)),
            );
        }
        members.insert(*txid);
        let mut p = Package {
            members: Vec::with_capacity(members.len()),
            fee: 0,
            vsize: 0,
            weight: 0,
            sigops: 0,
        };
        let mut fee: i64 = 0;
        for m in &members {
            if let Some(e) = self.entries.get(m) {
                fee += self.modified_fee(m);
                p.vsize += e.vsize;
                p.weight += e.weight;
                p.sigops += e.sigop_cost;
            }
        }
        p.fee = fee.max(0) as u64;
        // Parents first: fewer in-mempool ancestors sorts earlier.
        let mut ordered: Vec<(usize, Txid)> = members
            .into_iter()
            .map(|m| {
                let n = self
                    .entries
                    .get(&m)
                    .map_or(0, |e| self.ancestors_from(&e.parents).len());
                (n, m)
            })
            .collect();
        ordered.sort();
        p.members = ordered.into_iter().map(|(_, m)| m).collect();
        p
    }

    /// The transactions of a new block, in order, within `max_weight`
    /// (transactions only; the caller reserves the header and coinbase)
    /// and `max_sigops`. See the module documentation.
    pub fn select_for_block(&self, max_weight: u64, max_sigops: u64) -> Vec<TemplateTx> {
        let taken_none = HashSet::new();
        let mut heap: BinaryHeap<Score> = self
            .entries
            .keys()
            .map(|t| {
                let p = self.package(t, &taken_none);
                Score {
                    fee: p.fee,
                    vsize: p.vsize,
                    txid: *t,
                }
            })
            .collect();
        let mut taken: HashSet<Txid> = HashSet::new();
        let mut position: HashMap<Txid, usize> = HashMap::new();
        let mut out: Vec<TemplateTx> = Vec::new();
        let (mut weight, mut sigops) = (0u64, 0u64);
        while let Some(top) = heap.pop() {
            if taken.contains(&top.txid) {
                continue;
            }
            let p = self.package(&top.txid, &taken);
            if p.fee != top.fee || p.vsize != top.vsize {
                // An ancestor was taken since it was scored.
                heap.push(Score {
                    fee: p.fee,
                    vsize: p.vsize,
                    txid: top.txid,
                });
                continue;
            }
            if u128::from(p.fee) * 1000 < u128::from(DEFAULT_BLOCK_MIN_TX_FEE) * u128::from(p.vsize)
            {
                break;
            }
            if weight + p.weight > max_weight || sigops + p.sigops > max_sigops {
                continue;
            }
            weight += p.weight;
            sigops += p.sigops;
            for m in p.members {
                let Some(e) = self.entries.get(&m) else {
                    continue;
                };
                let depends = e
                    .parents
                    .iter()
                    .filter_map(|parent| position.get(parent).map(|i| i + 1))
                    .collect();
                taken.insert(m);
                position.insert(m, out.len());
                out.push(TemplateTx {
                    tx: e.tx.clone(),
                    txid: m,
                    fee: Amount::from_sat(e.fee),
                    modified_fee: self.modified_fee(&m),
                    sigop_cost: e.sigop_cost,
                    weight: e.weight,
                    depends,
                });
            }
        }
        out
    }
}
