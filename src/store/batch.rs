//! [`WriteBatch`]: a list of puts and deletes over the store's tables,
//! built by the chain layer on the sync-manager thread and applied
//! atomically by [`Store::commit`](super::Store::commit).
//!
//! Values are encoded when they are added, so a commit retried after the
//! map grows replays the same bytes.
//!
//! Also here: the head-blocks marker of a flush split over several
//! transactions (Core's `DB_HEAD_BLOCKS`), written and erased through
//! [`WriteBatch`] and read by [`Store::head_blocks`](super::Store::head_blocks).

use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint};

#[cfg(test)]
use super::codec::IndexEntry;
use super::codec::{self, BlockUndo, Coin};
use super::error::Table;

/// What LMDB holds for one write in a transaction, at most: a copy of the
/// leaf page it changes (the branch pages above it are shared by the
/// transaction's writes). LMDB's page is the OS page, 4 KiB on the
/// platforms strand runs on.
pub const DIRTY_PAGE_BYTES: usize = 4096;

/// LMDB's per-node bytes on a leaf page besides key and value: the node
/// header (8) and its pointer in the page's index (2).
const LEAF_NODE_OVERHEAD: usize = 10;

/// One put or delete.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) table: Table,
    pub(crate) key: Vec<u8>,
    /// `Some` puts (overwriting), `None` deletes.
    pub(crate) value: Option<Vec<u8>>,
    /// For deletes: fail the whole commit if the key is absent.
    pub(crate) must_exist: bool,
}

/// Puts and deletes applied in order, all or nothing, by
/// [`Store::commit`](super::Store::commit).
///
/// Later operations on the same key win. Deleting an absent key is a no-op,
/// except [`WriteBatch::spend_coin`], which makes the commit fail with
/// [`StoreError::MissingKey`](super::StoreError::MissingKey) (and write
/// nothing).
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
    bytes: usize,
    /// Heap bytes of the keys and values ([`WriteBatch::malloc_usage`] of each).
    heap: usize,
    /// LMDB's dirty pages committing this batch can take, estimated as
    /// [`WriteBatch::commit_memory`] explains.
    dirty_pages_bytes: usize,
    /// Txid of the last `utxo` key written: a write of another txid counts
    /// a whole page, one of the same txid lands on the same leaf.
    last_utxo_txid: Option<[u8; 32]>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Approximate size of the keys and values, in bytes (to decide when
    /// to flush a cache).
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    fn push(&mut self, table: Table, key: &[u8], value: Option<Vec<u8>>, must_exist: bool) {
        let node = key.len() + value.as_ref().map_or(0, Vec::len) + LEAF_NODE_OVERHEAD;
        let txid = (table == Table::Utxo)
            .then(|| key.get(..32).and_then(|t| <[u8; 32]>::try_from(t).ok()))
            .flatten();
        let new_txid = txid.is_some() && txid != self.last_utxo_txid;
        if txid.is_some() {
            self.last_utxo_txid = txid;
        }
        self.dirty_pages_bytes += if new_txid {
            DIRTY_PAGE_BYTES
        } else {
            // A leaf filled by writes in key order is split in half: count
            // each node twice.
            2 * node
        };
        self.bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        self.heap += Self::malloc_usage(key.len())
            + value
                .as_ref()
                .map_or(0, |v| Self::malloc_usage(v.capacity()));
        self.ops.push(Op {
            table,
            key: key.to_vec(),
            value,
            must_exist,
        });
    }

    /// Puts raw bytes (for `meta` initialisation).
    pub(crate) fn push_raw(&mut self, table: Table, key: &[u8], value: Vec<u8>) {
        self.push(table, key, Some(value), false);
    }

    #[cfg(test)]
    /// Writes (or overwrites) a block index entry.
    pub fn put_block_index(&mut self, hash: &BlockHash, entry: &IndexEntry) {
        self.push(
            Table::BlockIndex,
            hash.as_byte_array(),
            Some(entry.encode()),
            false,
        );
    }

    /// Writes (or overwrites) the compact index record at position `pos`
    /// (schema 2; see [`codec::IndexRecord`]).
    pub fn put_index_record(&mut self, pos: u32, record: &codec::IndexRecord) {
        self.push(
            Table::BlockIndex,
            &codec::index_record_key(pos),
            Some(record.encode().to_vec()),
            false,
        );
    }

    /// Removes the compact index record at position `pos`.
    pub fn delete_index_record(&mut self, pos: u32) {
        self.push(
            Table::BlockIndex,
            &codec::index_record_key(pos),
            None,
            false,
        );
    }

    /// Records (or, with `None`, removes) why the block at index position
    /// `pos` is invalid. At most 65,535 bytes are kept.
    pub fn put_index_reason(&mut self, pos: u32, reason: Option<&str>) {
        let value = reason.map(|r| {
            let mut end = r.len().min(u16::MAX as usize);
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            r.as_bytes().get(..end).unwrap_or_default().to_vec()
        });
        self.push(
            Table::BlockIndex,
            &codec::index_reason_key(pos),
            value,
            false,
        );
    }

    #[cfg(test)]
    /// Removes a block index entry.
    pub fn delete_block_index(&mut self, hash: &BlockHash) {
        self.push(Table::BlockIndex, hash.as_byte_array(), None, false);
    }

    #[cfg(test)]
    /// Makes `hash` the active chain's block at `height`.
    pub fn set_active(&mut self, height: u32, hash: &BlockHash) {
        self.push(
            Table::ActiveChain,
            &codec::height_key(height),
            Some(hash.as_byte_array().to_vec()),
            false,
        );
    }

    #[cfg(test)]
    /// Removes `height` from the active chain (when disconnecting its
    /// block). The active chain must stay contiguous from height 0:
    /// unset from the top down.
    pub fn unset_active(&mut self, height: u32) {
        self.push(Table::ActiveChain, &codec::height_key(height), None, false);
    }

    /// Stores a block body.
    pub fn put_block(&mut self, hash: &BlockHash, block: &Block) {
        self.push(
            Table::Blocks,
            hash.as_byte_array(),
            Some(encode::serialize(block)),
            false,
        );
    }

    /// Stores a block body already in consensus serialization (as received
    /// from a peer). The bytes are not checked here; a block that does not
    /// decode is reported as corrupt by [`Store::get_block`](super::Store::get_block).
    pub fn put_block_raw(&mut self, hash: &BlockHash, raw: Vec<u8>) {
        self.push(Table::Blocks, hash.as_byte_array(), Some(raw), false);
    }

    /// Removes a block body (pruning).
    pub fn delete_block(&mut self, hash: &BlockHash) {
        self.push(Table::Blocks, hash.as_byte_array(), None, false);
    }

    /// Stores a block's undo data.
    pub fn put_undo(&mut self, hash: &BlockHash, undo: &BlockUndo) {
        self.push(
            Table::Undo,
            hash.as_byte_array(),
            Some(undo.encode()),
            false,
        );
    }

    /// Removes a block's undo data.
    pub fn delete_undo(&mut self, hash: &BlockHash) {
        self.push(Table::Undo, hash.as_byte_array(), None, false);
    }

    /// Adds (or overwrites) an unspent output.
    pub fn add_coin(&mut self, outpoint: &OutPoint, coin: &Coin) {
        self.push(
            Table::Utxo,
            &codec::outpoint_key(outpoint),
            Some(coin.encode()),
            false,
        );
    }

    /// Removes an unspent output. The commit fails, writing nothing, if the
    /// coin is not in the UTXO set at that point of the batch.
    pub fn spend_coin(&mut self, outpoint: &OutPoint) {
        self.push(Table::Utxo, &codec::outpoint_key(outpoint), None, true);
    }

    /// Records `hash` as the tip the UTXO set corresponds to. Put it in the
    /// same batch as the coin changes that bring the set to that tip.
    pub fn set_tip(&mut self, hash: &BlockHash) {
        self.push(
            Table::Meta,
            codec::META_TIP,
            Some(hash.as_byte_array().to_vec()),
            false,
        );
    }

    /// Removes an unspent output if it is there (replaying a block whose
    /// changes may already be partly written: Core's `RollforwardBlock`
    /// spends idempotently).
    pub fn spend_coin_if_present(&mut self, outpoint: &OutPoint) {
        self.push(Table::Utxo, &codec::outpoint_key(outpoint), None, false);
    }

    /// Marks the UTXO set as being moved from `old_tip` to `new_tip` over
    /// several transactions (Core's `DB_HEAD_BLOCKS`, written in
    /// `CCoinsViewDB::BatchWrite`'s first partial batch).
    pub fn set_head_blocks(&mut self, new_tip: &BlockHash, old_tip: &BlockHash) {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(new_tip.as_byte_array());
        v.extend_from_slice(old_tip.as_byte_array());
        self.push(Table::Meta, codec::META_HEAD_BLOCKS, Some(v), false);
    }

    /// Removes the head-blocks marker (with the final batch, the one that
    /// sets the tip).
    pub fn erase_head_blocks(&mut self) {
        self.push(Table::Meta, codec::META_HEAD_BLOCKS, None, false);
    }

    /// Approximate heap bytes this batch holds: the operation list plus
    /// the allocations of every key and value, each counted as Core's
    /// `memusage::MallocUsage` does.
    pub fn memory_usage(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<Op>() + self.heap
    }

    /// The most memory committing this batch can hold: the batch itself
    /// ([`WriteBatch::memory_usage`]) plus LMDB's copies of the pages its
    /// writes change. What a bounded flush compares with its batch size
    /// (Core's `-dbbatchsize`, which bounds LevelDB's batch; LevelDB needs
    /// no page copies).
    ///
    /// The pages are estimated: a `utxo` write whose txid differs from the
    /// previous `utxo` write's counts a whole page ([`DIRTY_PAGE_BYTES`]),
    /// since txids are random and a large set has one in each leaf; a
    /// txid's other outputs sort next to it, so in key order (as a flush
    /// writes) they, like every other write, count twice their node's
    /// size (leaves end at least half full). Out of key order the estimate
    /// only counts more.
    ///
    /// Why the pages count: LMDB copies each leaf page a transaction
    /// writes into a `malloc`'d dirty page, and keeps every freed dirty
    /// page on a free list (`me_dpages`) until the environment closes. With
    /// random keys (txids) in a large set each write dirties its own leaf:
    /// a 16 MiB batch of about 300,000 coins can dirty as many pages (LMDB
    /// only starts spilling them past 131,072, 512 MiB), and the process
    /// keeps them. Counting a page per new txid bounds both the commit's
    /// peak and what LMDB keeps afterwards by the batch size, whatever the
    /// order of the writes; writing them in key order (as a flush does,
    /// `CoinsCache::write_dirty`) makes the real count far smaller.
    /// `cargo bench --bench dirty_pages`, 3 M random coins flushed 300,000
    /// at a time: in one transaction each, anonymous memory grew by
    /// ~31 MB a flush to 303 MB (peak RSS 741 MB, 8.8 s); split at 16 MiB
    /// by this estimate and in key order, 4 MB (peak RSS 30 MB, 4.4 s).
    pub fn commit_memory(&self) -> usize {
        self.memory_usage() + self.dirty_pages_bytes
    }

    /// Heap bytes an allocation of `n` bytes takes: Core's
    /// `memusage::MallocUsage` for 64-bit glibc (`((n + 31) >> 4) << 4`);
    /// 0 for no allocation.
    pub fn malloc_usage(n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((n + 31) >> 4) << 4
        }
    }
}
