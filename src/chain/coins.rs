//! The UTXO cache in front of the store (Core's `CCoinsViewCache`).
//!
//! Owned by the chain state, hence by the sync-manager thread. Entries are
//! *clean* (as in the store), *dirty* (changed since the last flush) and
//! possibly *fresh* (not in the store at all): a fresh coin spent before the
//! next flush is simply forgotten, so the many outputs created and spent
//! within one flush window never touch LMDB. [`BlockCoins`] stages one
//! block's changes on top of the cache so a block that fails validation
//! leaves the cache untouched; one view may be read through another
//! ([`BlockCoins::get_stacked`]) so the next block is prepared before the
//! previous one is applied.
//!
//! Memory accounting (Core's `CCoinsViewCache::DynamicMemoryUsage`):
//! [`CoinsCache::memory_usage`] is the hash table's allocation (buckets ×
//! (entry + 1 control byte), 89 bytes a bucket) plus every cached script's
//! allocation (Core's `MallocUsage`, 32 bytes for scripts up to 1 byte, 48
//! for P2PKH/P2WPKH), which is what `--dbcache` bounds. The table holds
//! 1.14 to 2.29 buckets an entry (it doubles when 7/8 full), so an entry
//! costs 134 to 235 bytes: with the old fixed 160 bytes ([`ENTRY_COST`])
//! heaptrack showed the 48 MiB cache at 70 MB while its table doubled
//! (`benches/utxo.rs`, 1.8 M outputs). Because the table doubles,
//! [`CoinsCache::needs_flush`] also flushes *before* a block that would
//! make it grow past the limit (predicting the block from the previous
//! one's growth), so the old and new tables are never held together
//! beyond the limit. `HashMap::capacity` is entries + room left and
//! shrinks as entries are removed (they leave tombstones) while the
//! allocation does not, so the estimate uses the highest capacity seen
//! since the table was allocated: with `capacity()` alone the bench's
//! 46.7 MB table counted as 5.6 MB once its spent entries were dropped,
//! and was never released.

use std::collections::HashMap;

use bitcoin::hashes::Hash;
use bitcoin::OutPoint;

use crate::store::{Coin, Store, StoreError, WriteBatch};

struct Entry {
    coin: Option<Coin>,
    dirty: bool,
    fresh: bool,
}

/// Typical heap cost of one cache entry (between the table's extremes, see
/// the module docs); the limit uses [`CoinsCache::memory_usage`].
pub const ENTRY_COST: usize = 160;

/// Heap bytes of a cached coin's script (Core's `MallocUsage`).
fn script_usage(coin: &Option<Coin>) -> usize {
    coin.as_ref()
        .map_or(0, |c| WriteBatch::malloc_usage(c.script_pubkey.len()))
}

/// Buckets of a hashbrown table holding up to `capacity` entries (7/8 of a
/// power of two; tables under 8 buckets hold one less than their size).
fn buckets(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity.saturating_mul(8) / 7).next_power_of_two()
    }
}

/// The UTXO cache.
#[derive(Default)]
pub struct CoinsCache {
    map: HashMap<OutPoint, Entry>,
    dirty: usize,
    /// Heap bytes of the cached scripts ([`script_usage`] summed).
    script_heap: usize,
    /// Entries the table's buckets hold when it is free of deleted slots:
    /// the highest `map.capacity()` seen since the table was allocated
    /// (`capacity()` is entries + room left, and a removal leaves a
    /// tombstone, not room, so it shrinks as entries are removed while the
    /// allocation does not). Inserts note it ([`CoinsCache::note_table`]).
    table_capacity: usize,
    /// Entries at the last [`CoinsCache::needs_flush`], and the growth
    /// since the one before (a block's worth).
    len_at_check: usize,
    growth: usize,
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

    /// Heap bytes of the table with `buckets` buckets.
    fn table_bytes(buckets: usize) -> usize {
        buckets.saturating_mul(std::mem::size_of::<(OutPoint, Entry)>() + 1)
    }

    /// Heap bytes the cache holds: its table and its scripts (see the
    /// module docs). What `--dbcache` bounds.
    pub fn memory_usage(&self) -> usize {
        Self::table_bytes(self.table_buckets()) + self.script_heap
    }

    fn table_buckets(&self) -> usize {
        buckets(self.table_capacity.max(self.map.capacity()))
    }

    /// Records the table's capacity after an insert (right after a resize
    /// it is the whole table's).
    fn note_table(&mut self) {
        self.table_capacity = self.table_capacity.max(self.map.capacity());
    }

    /// Whether the cache should be flushed now (called once a block): it
    /// is over `limit`, or another block growing it as much as the last
    /// one did would take it over (its scripts, and its table if that
    /// must double).
    pub fn needs_flush(&mut self, limit: usize) -> bool {
        let len = self.map.len();
        self.growth = len.saturating_sub(self.len_at_check);
        self.len_at_check = len;
        if self.memory_usage() > limit {
            return true;
        }
        // hashbrown grows when an insert finds no room left (`capacity()`
        // is entries + room), rehashing in place instead while the new
        // count is at most half the table's capacity.
        let full = self.table_capacity.max(self.map.capacity());
        let next = len.saturating_add(self.growth);
        let table = if next <= self.map.capacity() || next <= full / 2 {
            buckets(full)
        } else {
            buckets(next.max(full.saturating_add(1)))
        };
        let scripts = match len {
            0 => 0,
            _ => (self.script_heap / len).saturating_mul(next),
        };
        Self::table_bytes(table).saturating_add(scripts) > limit
    }

    /// Looks `op` up in the cache, then in the store (caching what it finds).
    pub fn get(&mut self, op: &OutPoint, store: &Store) -> Result<Option<Coin>, StoreError> {
        if let Some(e) = self.map.get(op) {
            return Ok(e.coin.clone());
        }
        let coin = store.get_coin(op)?;
        if let Some(c) = &coin {
            self.script_heap += WriteBatch::malloc_usage(c.script_pubkey.len());
            self.map.insert(
                *op,
                Entry {
                    coin: Some(c.clone()),
                    dirty: false,
                    fresh: false,
                },
            );
            self.note_table();
        }
        Ok(coin)
    }

    /// Adds a new unspent output. A coin with no entry is assumed not to be
    /// in the store (BIP30 guarantees it), so it is fresh.
    pub fn add(&mut self, op: OutPoint, coin: Coin) {
        let coin = Some(coin);
        self.script_heap += script_usage(&coin);
        match self.map.get_mut(&op) {
            Some(e) => {
                if !e.dirty {
                    self.dirty += 1;
                }
                self.script_heap -= script_usage(&e.coin);
                e.coin = coin;
                e.dirty = true;
            }
            None => {
                self.dirty += 1;
                self.map.insert(
                    op,
                    Entry {
                        coin,
                        dirty: true,
                        fresh: true,
                    },
                );
                self.note_table();
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
                self.script_heap -= script_usage(&e.coin);
                self.map.remove(op);
            }
            Some(e) => {
                if !e.dirty {
                    self.dirty += 1;
                }
                self.script_heap -= script_usage(&e.coin);
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
                self.note_table();
            }
        }
    }

    /// Writes every dirty entry into `batch` and marks the cache clean
    /// ([`CoinsCache::mark_flushed`] with `keep` bytes).
    pub fn flush_into(&mut self, batch: &mut WriteBatch, keep: usize) {
        let never_full = |_: &mut WriteBatch| -> Result<(), ()> { Ok(()) };
        // Cannot fail: `never_full` never does.
        let _ = self.write_dirty(batch, usize::MAX, never_full);
        self.mark_flushed(keep);
    }

    /// Core's `CCoinsViewDB::BatchWrite` loop: appends every dirty entry
    /// to `batch`, handing the batch to `full` (which commits it and leaves
    /// an empty batch, or more operations that must come first) whenever
    /// its [`WriteBatch::commit_memory`] exceeds `batch_bytes`. The cache is
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
        // In the store's key order (txid bytes, then the big-endian vout):
        // each transaction then changes one narrow run of leaves, so LMDB
        // copies few pages per write and maps little of the file (random
        // txids in hash order: one page each, see `WriteBatch::commit_memory`;
        // `cargo bench --bench dirty_pages`). The list costs 16 bytes a dirty
        // entry for the flush's duration.
        let mut dirty: Vec<(&OutPoint, &Entry)> =
            self.map.iter().filter(|(_, e)| e.dirty).collect();
        dirty.sort_unstable_by(|a, b| {
            (a.0.txid.as_byte_array(), a.0.vout).cmp(&(b.0.txid.as_byte_array(), b.0.vout))
        });
        for (op, e) in dirty {
            match &e.coin {
                Some(c) => batch.add_coin(op, c),
                None => batch.spend_coin(op),
            }
            if batch.commit_memory() > batch_bytes {
                full(batch)?;
            }
        }
        Ok(())
    }

    /// After [`CoinsCache::write_dirty`]'s batches are all committed:
    /// marks every entry clean and forgets spent ones; then, if the cache
    /// still holds more than `keep` bytes, empties it, keeping the table's
    /// allocation unless that alone is over `keep` (so a cache flushed for
    /// size does not grow its table again through every doubling).
    pub fn mark_flushed(&mut self, keep: usize) {
        for e in self.map.values_mut() {
            e.dirty = false;
            e.fresh = false;
        }
        self.dirty = 0;
        self.map.retain(|_, e| e.coin.is_some());
        if self.memory_usage() > keep {
            if Self::table_bytes(self.table_buckets()) > keep {
                self.map = HashMap::new();
                self.table_capacity = 0;
            } else {
                self.map.clear();
            }
            self.script_heap = 0;
        }
        self.len_at_check = self.map.len();
    }

    /// Forgets everything (only valid when nothing is dirty).
    pub fn clear(&mut self) {
        debug_assert_eq!(self.dirty, 0, "clearing a dirty cache loses data");
        self.map = HashMap::new();
        self.dirty = 0;
        self.script_heap = 0;
        self.table_capacity = 0;
        self.len_at_check = 0;
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

    /// Looks `op` up in this block's changes, then in `base` (the staged
    /// changes of the block before it, not yet applied to the cache), then
    /// the cache and store: the view of a block prepared on top of another
    /// (`chain/connect.rs`).
    pub fn get_stacked(
        &self,
        op: &OutPoint,
        base: Option<&BlockCoins>,
        cache: &mut CoinsCache,
        store: &Store,
    ) -> Result<Option<Coin>, StoreError> {
        match self.staged(op).or_else(|| base.and_then(|b| b.staged(op))) {
            Some(c) => Ok(c.clone()),
            None => cache.get(op, store),
        }
    }

    /// This block's change to `op`, if any: `Some(None)` when it spends it.
    pub fn staged(&self, op: &OutPoint) -> Option<&Option<Coin>> {
        self.changes.get(op)
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
