//! The orphan pool: transactions whose parents are unknown, each tagged with
//! the peer that sent it (Bitcoin Core `TxOrphanage`, btcd `orphanPool`).
//!
//! Owns [`OrphanPool`]. It is plain data with no lock and no thread of its
//! own: it lives inside [`crate::mempool::Mempool`] and is reached through
//! the mempool's one lock (see [`crate::mempool::SharedMempool`]). The thread
//! handling transactions adds orphans and resolves them when a parent
//! arrives; the peer-handler thread erases a finished peer's orphans
//! ([`OrphanPool::erase_for_peer`]).
//!
//! Limits (btcd's and the design's numbers): at most
//! [`OrphanConfig::max_orphans`] (100) orphans, each of weight at most
//! 400,000 (100,000 vbytes); they expire 15 minutes after arrival; when the
//! pool is full a pseudo-random orphan (seedable RNG) is evicted to make room.
//! Time is passed in as `now` (seconds) so tests are deterministic.

use std::collections::{BTreeSet, HashMap};

use bitcoin::{Block, OutPoint, Transaction, Txid, Wtxid};

use super::error::OrphanReject;
use super::policy::MAX_STANDARD_TX_WEIGHT;
use crate::util::{PeerId, SplitMix64};

/// Orphan pool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanConfig {
    /// Most orphans kept (100).
    pub max_orphans: usize,
    /// Heaviest orphan accepted (400,000 weight units, i.e. 100,000 vbytes).
    pub max_orphan_weight: u64,
    /// Seconds an orphan is kept (15 minutes).
    pub expire_secs: u64,
    /// Seed of the eviction RNG.
    pub seed: u64,
}

impl Default for OrphanConfig {
    fn default() -> OrphanConfig {
        OrphanConfig {
            max_orphans: 100,
            max_orphan_weight: MAX_STANDARD_TX_WEIGHT,
            expire_secs: 15 * 60,
            seed: 0x5eed_0f0a_b4a2,
        }
    }
}

/// One orphan.
#[derive(Debug, Clone)]
pub struct OrphanEntry {
    /// The transaction.
    pub tx: Transaction,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// The peer that sent it.
    pub peer: PeerId,
    /// When it expires (seconds, same clock as `now`).
    pub expires_at: u64,
    /// Position in the eviction list.
    pos: usize,
}

/// What [`OrphanPool::add_orphan`] did besides adding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanAdded {
    /// Orphans dropped because they expired.
    pub expired: Vec<Txid>,
    /// The orphan evicted at random to make room, if any.
    pub evicted: Option<Txid>,
}

/// Transactions waiting for unknown parents, by txid, with an index of the
/// outpoints they spend.
#[derive(Debug, Clone)]
pub struct OrphanPool {
    config: OrphanConfig,
    entries: HashMap<Txid, OrphanEntry>,
    /// Txids in arbitrary order, for O(1) random eviction.
    list: Vec<Txid>,
    /// Outpoint -> orphans spending it.
    by_prevout: HashMap<OutPoint, BTreeSet<Txid>>,
    rng: SplitMix64,
}

impl OrphanPool {
    /// An empty pool.
    pub fn new(config: OrphanConfig) -> OrphanPool {
        OrphanPool {
            config,
            entries: HashMap::new(),
            list: Vec::new(),
            by_prevout: HashMap::new(),
            rng: SplitMix64::new(config.seed),
        }
    }

    /// The limits.
    pub fn config(&self) -> &OrphanConfig {
        &self.config
    }

    /// Number of orphans.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no orphans.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `txid` is held.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// The orphan `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&OrphanEntry> {
        self.entries.get(txid)
    }

    /// Txids of all orphans, sorted.
    pub fn txids(&self) -> Vec<Txid> {
        let mut v = self.list.clone();
        v.sort();
        v
    }

    /// Adds `tx` received from `peer` at `now`. Expired orphans are dropped
    /// first; when the pool is still full one orphan chosen at random is
    /// evicted, so the new one always fits.
    pub fn add_orphan(
        &mut self,
        tx: Transaction,
        peer: PeerId,
        now: u64,
    ) -> Result<OrphanAdded, OrphanReject> {
        if self.config.max_orphans == 0 {
            return Err(OrphanReject::Disabled);
        }
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(OrphanReject::AlreadyHave);
        }
        let weight = tx.weight().to_wu();
        if weight > self.config.max_orphan_weight {
            return Err(OrphanReject::TooLarge {
                weight,
                max: self.config.max_orphan_weight,
            });
        }
        let mut added = OrphanAdded {
            expired: self.expire(now),
            evicted: None,
        };
        if self.entries.len() >= self.config.max_orphans {
            let i = (self.rng.next_u64() % self.list.len() as u64) as usize;
            let victim = self.list[i];
            self.erase(&victim);
            added.evicted = Some(victim);
        }
        for input in &tx.input {
            self.by_prevout
                .entry(input.previous_output)
                .or_default()
                .insert(txid);
        }
        self.list.push(txid);
        self.entries.insert(
            txid,
            OrphanEntry {
                wtxid: tx.compute_wtxid(),
                tx,
                peer,
                expires_at: now.saturating_add(self.config.expire_secs),
                pos: self.list.len() - 1,
            },
        );
        Ok(added)
    }

    /// Removes orphan `txid`; returns it if it was held.
    pub fn erase(&mut self, txid: &Txid) -> Option<OrphanEntry> {
        let entry = self.entries.remove(txid)?;
        for input in &entry.tx.input {
            if let Some(set) = self.by_prevout.get_mut(&input.previous_output) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_prevout.remove(&input.previous_output);
                }
            }
        }
        self.list.swap_remove(entry.pos);
        if let Some(moved) = self.list.get(entry.pos) {
            if let Some(e) = self.entries.get_mut(moved) {
                e.pos = entry.pos;
            }
        }
        Some(entry)
    }

    /// Removes every orphan received from `peer`; returns how many.
    pub fn erase_for_peer(&mut self, peer: PeerId) -> usize {
        let victims: Vec<Txid> = self
            .entries
            .iter()
            .filter(|(_, e)| e.peer == peer)
            .map(|(t, _)| *t)
            .collect();
        for t in &victims {
            self.erase(t);
        }
        victims.len()
    }

    /// Removes orphans whose time has come (`expires_at <= now`); returns
    /// their txids, sorted.
    pub fn expire(&mut self, now: u64) -> Vec<Txid> {
        let mut victims: Vec<Txid> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(t, _)| *t)
            .collect();
        victims.sort();
        for t in &victims {
            self.erase(t);
        }
        victims
    }

    /// Removes orphans included in `block` or spending an outpoint a block
    /// transaction spends (Core `EraseForBlock`); returns how many.
    pub fn erase_for_block(&mut self, block: &Block) -> usize {
        let mut victims = BTreeSet::new();
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            if self.entries.contains_key(&txid) {
                victims.insert(txid);
            }
            for input in &tx.input {
                if let Some(set) = self.by_prevout.get(&input.previous_output) {
                    victims.extend(set.iter().copied());
                }
            }
        }
        for t in &victims {
            self.erase(t);
        }
        victims.len()
    }

    /// Orphans spending an output of `parent`, sorted by txid (to retry when
    /// `parent` is accepted).
    pub fn children_of(&self, parent: &Txid) -> Vec<Transaction> {
        let mut found = BTreeSet::new();
        for (op, set) in &self.by_prevout {
            if op.txid == *parent {
                found.extend(set.iter().copied());
            }
        }
        found
            .iter()
            .filter_map(|t| self.entries.get(t).map(|e| e.tx.clone()))
            .collect()
    }

    /// Orphans spending an output of `parent` as `(txid, peer)`, sorted.
    pub(crate) fn children_ids(&self, parent: &Txid, max_vout: usize) -> Vec<(Txid, PeerId)> {
        let mut found = BTreeSet::new();
        for vout in 0..max_vout {
            if let Some(set) = self.by_prevout.get(&OutPoint::new(*parent, vout as u32)) {
                found.extend(set.iter().copied());
            }
        }
        found
            .into_iter()
            .filter_map(|t| self.entries.get(&t).map(|e| (t, e.peer)))
            .collect()
    }
}

/// The orphan pool's contract with the peer-handler thread: called for every
/// finished peer, to drop that peer's orphan transactions; returns how many
/// were evicted. Defined by the mempool (which owns the contract) so the
/// networking layer depends on it, not the other way round;
/// [`crate::mempool::SharedMempool`] implements it.
pub trait OrphanEvictor: Send {
    /// Evicts the orphans received from `peer`.
    fn evict_orphans_from(&mut self, peer: PeerId) -> usize;
}

/// The evictor used until a mempool exists: there are no orphans.
pub struct NoOrphans;

impl OrphanEvictor for NoOrphans {
    fn evict_orphans_from(&mut self, _peer: PeerId) -> usize {
        0
    }
}
