//! The UTXO cache in front of the store (Core's `CCoinsViewCache`).
//!
//! Owned by the chain state, hence by the sync-manager thread. Entries are
//! *clean* (as in the store), *dirty* (changed since the last flush) and
//! possibly *fresh* (not in the store at all): a fresh coin spent before the
//! next flush is simply forgotten, so the many outputs created and spent
//! within one flush window never touch LMDB. [`BlockCoins`] stages one
//! block's changes on top of the cache so a block that fails validation
//! leaves the cache untouched.

use std::collections::HashMap;

use bitcoin::OutPoint;

use crate::store::{Coin, Store, StoreError, WriteBatch};

struct Entry {
    coin: Option<Coin>,
    dirty: bool,
    fresh: bool,
}

/// Approximate heap cost of one cache entry, for the memory limit.
pub const ENTRY_COST: usize = 160;

/// The UTXO cache.
#[derive(Default)]
pub struct CoinsCache {
    map: HashMap<OutPoint, Entry>,
    dirty: usize,
}

impl CoinsCache {
    /// An empty cache.
    pub fn new() -> CoinsCache {
        CoinsCache::default()
    }

    /// Number of entries (clean and dirty).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of entries that must be written at the next flush.
    pub fn dirty(&self) -> usize {
        self.dirty
    }

    /// Looks `op` up in the cache, then in the store (caching what it finds).
    pub fn get(&mut self, op: &OutPoint, store: &Store) -> Result<Option<Coin>, StoreError> {
        if let Some(e) = self.map.get(op) {
            return Ok(e.coin.clone());
        }
        let coin = store.get_coin(op)?;
        if let Some(c) = &coin {
            self.map.insert(
                *op,
                Entry {
                    coin: Some(c.clone()),
                    dirty: false,
                    fresh: false,
                },
            );
        }
        Ok(coin)
    }

    /// Adds a new unspent output. A coin with no entry is assumed not to be
    /// in the store (BIP30 guarantees it), so it is fresh.
    pub fn add(&mut self, op: OutPoint, coin: Coin) {
        match self.map.get_mut(&op) {
            Some(e) => {
                if !e.dirty {
                    self.dirty += 1;
                }
                e.coin = Some(coin);
                e.dirty = true;
            }
            None => {
                self.dirty += 1;
                self.map.insert(
                    op,
                    Entry {
                        coin: Some(coin),
                        dirty: true,
                        fresh: true,
                    },
                );
            }
        }
    }

    /// Spends `op`, which the caller looked up with [`CoinsCache::get`].
    pub fn spend(&mut self, op: &OutPoint) {
        match self.map.get_mut(op) {
            Some(e) if e.fresh => {
                if e.dirty {
                    self.dirty -= 1;
                }
                self.map.remove(op);
            }
            Some(e) => {
                if !e.dirty {
                    self.dirty += 1;
                }
                e.coin = None;
                e.dirty = true;
            }
            None => {
                self.dirty += 1;
                self.map.insert(
                    *op,
                    Entry {
                        coin: None,
                        dirty: true,
                        fresh: false,
                    },
                );
            }
        }
    }

    /// Writes every dirty entry into `batch` and marks the cache clean. If
    /// the cache holds more than `keep` entries afterwards it is emptied.
    pub fn flush_into(&mut self, batch: &mut WriteBatch, keep: usize) {
        let never_full = |_: &mut WriteBatch| -> Result<(), ()> { Ok(()) };
        // Cannot fail: `never_full` never does.
        let _ = self.write_dirty(batch, usize::MAX, never_full);
        self.mark_flushed(keep);
    }

    /// Core's `CCoinsViewDB::BatchWrite` loop: appends every dirty entry
    /// to `batch`, handing the batch to `full` (which commits it and leaves
    /// an empty batch, or more operations that must come first) whenever
    /// its [`WriteBatch::memory_usage`] exceeds `batch_bytes`. The cache is
    /// not changed: call [`CoinsCache::mark_flushed`] once every batch is
    /// committed. After a failure between two batches the store holds part
    /// of the changes (and the head-blocks marker): the chain state
    /// replays the blocks at the next open (`chain/replay.rs`); retrying in
    /// this process may fail on a spend already written.
    pub fn write_dirty<E>(
        &self,
        batch: &mut WriteBatch,
        batch_bytes: usize,
        mut full: impl FnMut(&mut WriteBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        for (op, e) in &self.map {
            if !e.dirty {
                continue;
            }
            match &e.coin {
                Some(c) => batch.add_coin(op, c),
                None => batch.spend_coin(op),
            }
            if batch.memory_usage() > batch_bytes {
                full(batch)?;
            }
        }
        Ok(())
    }

    /// After [`CoinsCache::write_dirty`]'s batches are all committed:
    /// marks every entry clean, forgets spent ones, and empties the cache
    /// if it still holds more than `keep` entries.
    pub fn mark_flushed(&mut self, keep: usize) {
        for e in self.map.values_mut() {
            e.dirty = false;
            e.fresh = false;
        }
        self.dirty = 0;
        self.map.retain(|_, e| e.coin.is_some());
        if self.map.len() > keep {
            self.map = HashMap::new();
        }
    }

    /// Forgets everything (only valid when nothing is dirty).
    pub fn clear(&mut self) {
        debug_assert_eq!(self.dirty, 0, "clearing a dirty cache loses data");
        self.map = HashMap::new();
        self.dirty = 0;
    }
}

/// One block's coin changes, staged over the cache.
#[derive(Default)]
pub struct BlockCoins {
    changes: HashMap<OutPoint, Option<Coin>>,
    created: std::collections::HashSet<OutPoint>,
}

impl BlockCoins {
    /// Looks `op` up in this block's changes, then the cache and store.
    pub fn get(
        &self,
        op: &OutPoint,
        cache: &mut CoinsCache,
        store: &Store,
    ) -> Result<Option<Coin>, StoreError> {
        match self.changes.get(op) {
            Some(c) => Ok(c.clone()),
            None => cache.get(op, store),
        }
    }

    /// Records that this block spends `op`.
    pub fn spend(&mut self, op: &OutPoint) {
        if self.created.remove(op) {
            self.changes.remove(op);
        } else {
            self.changes.insert(*op, None);
        }
    }

    /// Records that this block creates `op`.
    pub fn add(&mut self, op: OutPoint, coin: Coin) {
        self.created.insert(op);
        self.changes.insert(op, Some(coin));
    }

    /// Applies the staged changes to the cache.
    pub fn apply(self, cache: &mut CoinsCache) {
        for (op, change) in self.changes {
            match change {
                Some(coin) => cache.add(op, coin),
                None => cache.spend(&op),
            }
        }
    }
}
