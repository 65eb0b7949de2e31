//! Block-data helpers over the `blocks` and `undo` tables for pruning and
//! for rebuilding an index from stored blocks: the stored size of every
//! block body and its undo data, an iterator over stored block bodies,
//! and `meta/pruned`, the mark that block data was ever pruned (Core's
//! `fHavePruned`, kept across restarts). Readers (any thread) use the
//! [`ReadView`] methods; the sync-manager thread writes through
//! [`WriteBatch`].
//!
//! Bodies and undo data stay LMDB values: `benches/blockstore.rs` writes
//! 5 GiB of 0.2 to 1.8 MB blocks while pruning to 550 MiB and LMDB reuses
//! the freed overflow pages (file size flat at the kept data plus 5 %,
//! throughput flat); see the README's "Decisions".

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

use super::batch::WriteBatch;
use super::codec;
use super::error::{StoreError, Table};
use super::{ReadView, Store};

/// Key of `meta`'s "block data was pruned" mark (value: one byte, 1).
pub(crate) const META_PRUNED: &[u8] = b"pruned";

/// Size of one stored block's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block.
    pub hash: BlockHash,
    /// Bytes of its body (consensus serialization).
    pub body_bytes: u64,
    /// Bytes of its undo data (0 when none is stored).
    pub undo_bytes: u64,
}

impl ReadView<'_> {
    /// Every stored block body with its size and its undo data's size, in
    /// key (hash byte) order. Reads only LMDB's node headers, not the data.
    pub fn stored_blocks(&self) -> Result<Vec<StoredBlock>, StoreError> {
        let mut out = Vec::new();
        self.scan(Table::Blocks, |k, v| {
            let hash = codec::decode_hash(Table::Blocks, k, k)?;
            out.push(StoredBlock {
                hash,
                body_bytes: v.len() as u64,
                undo_bytes: 0,
            });
            Ok(true)
        })?;
        for s in &mut out {
            s.undo_bytes = self
                .get_raw(Table::Undo, s.hash.as_byte_array())?
                .map_or(0, |v| v.len() as u64);
        }
        Ok(out)
    }

    /// Calls `f` with every stored block body (hash, consensus bytes) in
    /// key order until it returns `false`: the scan a reindex (rebuilding
    /// the block index or a transaction index from block data) walks.
    /// Bodies are borrowed from the map, not copied.
    pub fn for_each_block_raw(
        &self,
        mut f: impl FnMut(BlockHash, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(Table::Blocks, |k, v| {
            Ok(f(codec::decode_hash(Table::Blocks, k, k)?, v))
        })
    }

    /// Whether block data was ever pruned from this store.
    pub fn have_pruned(&self) -> Result<bool, StoreError> {
        Ok(self
            .get_raw(Table::Meta, META_PRUNED)?
            .is_some_and(|v| v == [1]))
    }
}

impl Store {
    /// See [`ReadView::stored_blocks`].
    pub fn stored_blocks(&self) -> Result<Vec<StoredBlock>, StoreError> {
        self.read()?.stored_blocks()
    }

    /// See [`ReadView::have_pruned`].
    pub fn have_pruned(&self) -> Result<bool, StoreError> {
        self.read()?.have_pruned()
    }
}

impl WriteBatch {
    /// Marks the store as pruned (put it in the batch that deletes block
    /// data).
    pub fn set_have_pruned(&mut self) {
        self.push_raw(Table::Meta, META_PRUNED, vec![1]);
    }
}
