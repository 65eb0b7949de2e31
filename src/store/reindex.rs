//! What `-reindex` and `-reindex-chainstate` need from the store: the
//! "all stored blocks" iterator ([`Store::stored_block_headers`]) and the
//! wipes of the derived tables ([`Store::wipe_chain_state`],
//! [`Store::wipe_block_index`]).
//!
//! Run once at startup, before the chain state opens the store, on the
//! thread starting the node; nothing else uses the store then. Block
//! bodies and undo data are never wiped: they are the source the chain
//! state is rebuilt from (Core re-reads its `blk*.dat` files the same way).

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use lmdb::{Transaction, WriteFlags};

use super::{codec, Attempt, Store, StoreError, Table};

/// Bytes of a serialized block header (the start of every stored block).
const HEADER_LEN: usize = 80;

/// Which derived tables a wipe clears.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// UTXO set, active chain, tip: reset to the genesis block.
    ChainState(BlockHash),
    /// The above and the block index: the store then looks fresh but for
    /// its block bodies and undo data.
    BlockIndex,
}

impl Store {
    /// Every stored block body's hash and header, in hash byte order (the
    /// "all stored blocks" iterator `-reindex` is built on). Only the
    /// first 80 bytes of each body are decoded. A body too short for a
    /// header, or whose header does not hash to its key, is skipped with a
    /// warning: it cannot be re-indexed.
    pub fn stored_block_headers(&self) -> Result<Vec<(BlockHash, Header)>, StoreError> {
        let view = self.read()?;
        let mut out = Vec::new();
        view.scan(Table::Blocks, |k, v| {
            let key = codec::decode_hash(Table::Blocks, k, k)?;
            let header = v
                .get(..HEADER_LEN)
                .and_then(|h| encode::deserialize::<Header>(h).ok());
            match header {
                Some(h) if h.block_hash() == key => out.push((key, h)),
                _ => log::warn!("stored block {key} has no valid header; skipped"),
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Core's `-reindex-chainstate` wipe: empties the UTXO set and the
    /// active chain and sets the tip to `genesis` (active height 0), in
    /// one write transaction. The block index, bodies and undo data stay.
    pub fn wipe_chain_state(&self, genesis: &BlockHash) -> Result<(), StoreError> {
        self.wipe(Scope::ChainState(*genesis))
    }

    /// Core's `-reindex` wipe: also empties the block index and removes
    /// the tip, so the chain state opens as on a fresh store (keeping the
    /// block bodies and undo data).
    pub fn wipe_block_index(&self) -> Result<(), StoreError> {
        self.wipe(Scope::BlockIndex)
    }

    fn wipe(&self, scope: Scope) -> Result<(), StoreError> {
        self.write_retrying(|| self.try_wipe(scope))
    }

    fn try_wipe(&self, scope: Scope) -> Result<(), Attempt> {
        let fail = |op: &'static str, e: lmdb::Error| match e {
            lmdb::Error::MapFull => Attempt::MapFull,
            e => Attempt::Fail(StoreError::engine(op, e)),
        };
        let mut txn = self
            .env
            .begin_rw_txn()
            .map_err(|e| fail("begin write", e))?;
        txn.clear_db(self.db(Table::Utxo))
            .map_err(|e| fail("clear", e))?;
        txn.clear_db(self.db(Table::ActiveChain))
            .map_err(|e| fail("clear", e))?;
        match scope {
            Scope::ChainState(genesis) => {
                let hash = genesis.as_byte_array();
                txn.put(
                    self.db(Table::ActiveChain),
                    &codec::height_key(0),
                    hash,
                    WriteFlags::empty(),
                )
                .map_err(|e| fail("put", e))?;
                txn.put(
                    self.db(Table::Meta),
                    &codec::META_TIP,
                    hash,
                    WriteFlags::empty(),
                )
                .map_err(|e| fail("put", e))?;
            }
            Scope::BlockIndex => {
                txn.clear_db(self.db(Table::BlockIndex))
                    .map_err(|e| fail("clear", e))?;
                match txn.del(self.db(Table::Meta), &codec::META_TIP, None) {
                    Ok(()) | Err(lmdb::Error::NotFound) => {}
                    Err(e) => return Err(fail("delete", e)),
                }
            }
        }
        txn.commit().map_err(|e| fail("commit", e))
    }
}
