//! Flushing the UTXO set in bounded transactions, and finishing an
//! interrupted flush at open (Core's `CCoinsViewDB::BatchWrite` with
//! `-dbbatchsize`, and `Chainstate::ReplayBlocks`).
//!
//! Run by whichever thread owns the [`ChainState`] (the sync manager; at
//! open, the thread opening it). A flush ([`ChainState::flush`]) first
//! commits block bodies and undo data, then the UTXO changes: in one
//! transaction when they fit in
//! [`ChainOptions::db_batch_bytes`](super::state::ChainOptions::db_batch_bytes) of batch
//! memory, else in several. The first of several carries the changed
//! block index records and the head-blocks marker `[new tip, old tip]`
//! (Core's `DB_HEAD_BLOCKS`); the last carries the rest of the coins, the
//! new tip and erases the marker. The store's tip stays the old one in
//! between (Core erases `DB_BEST_BLOCK` instead; strand keeps it so that
//! every other reader sees a consistent, older tip).
//!
//! At open, a marker means a flush stopped between its batches: the UTXO
//! set holds the old tip's coins with part of the changes applied.
//! [`ChainState::replay_blocks`] rolls back along the old branch with undo
//! data if the old tip is not an ancestor of the new one (Core's
//! `DisconnectBlock` in `ReplayBlocks`; strand's own flushes never write
//! such a marker, since a reorganisation flushes first and disconnects
//! block by block, each committed at once), then re-applies every block
//! from the fork to the new tip (Core's `RollforwardBlock`): spends delete
//! a coin if present, outputs overwrite. Both are idempotent, so the
//! result is the new tip's set whatever part was written, and a crash
//! during the replay is replayed again. The replay writes in bounded
//! batches too and finishes with the new tip and the marker erased.
//!
//! A marker whose old tip is not the stored tip was left behind by a
//! `-reindex` wipe (which rewrites the tip and empties the UTXO set): it
//! is dropped.
//!
//! Decision: the batch size counts what committing the batch holds,
//! [`WriteBatch::commit_memory`]: the batch's heap (`Op`s, keys, values,
//! as Core's `memusage::MallocUsage`), the memory Core's option bounds,
//! plus an estimate of the pages LMDB copies and keeps (a page per new
//! txid), which LevelDB does not have. The coins are written in key order
//! so a transaction changes few leaves. The default is Core's old
//! `nDefaultDbBatchSize`, 16 MiB ([`DEFAULT_DB_BATCH_BYTES`]), not v31's
//! 32 MiB, to keep the flush's peak memory within strand's 150 MB budget.

use std::sync::Arc;

use bitcoin::{Block, BlockHash, OutPoint};

use super::index::BlockPos;
use super::state::{is_unspendable, rollback_block, ChainError, ChainState};
use crate::store::{Coin, WriteBatch};

/// Default of
/// [`ChainOptions::db_batch_bytes`](super::state::ChainOptions::db_batch_bytes): 16 MiB, Core's
/// `nDefaultDbBatchSize` before v31 (v31's `DEFAULT_DB_CACHE_BATCH` is
/// 32 MiB). Core does not enforce a minimum for `-dbbatchsize`; neither
/// does strand (tests use a few KiB to force many batches).
pub const DEFAULT_DB_BATCH_BYTES: usize = 16 << 20;

impl ChainState {
    /// Writes the dirty coins after `batch` (which holds the changed index
    /// records), the new tip last, and marks the cache flushed (keeping at
    /// most `keep` bytes of it). Returns the number of write transactions.
    pub(super) fn write_coins(
        &mut self,
        mut batch: WriteBatch,
        keep: usize,
    ) -> Result<u64, ChainError> {
        let new_tip = self.tip();
        let store = Arc::clone(self.store());
        let old_tip = store.tip()?;
        // Partial batches only when the stored tip is an ancestor of the new
        // one (always, as strand flushes; see the module docs).
        let old = old_tip.filter(|old| {
            self.index
                .find(old)
                .and_then(|p| self.index.height(p))
                .and_then(|h| self.active_hash(h))
                == Some(*old)
        });
        let limit = match old {
            Some(_) => self.options().db_batch_bytes,
            None => usize::MAX,
        };
        let old = old.unwrap_or(new_tip);
        #[cfg(test)]
        let fault = self.options().flush_fault_after_batches;
        #[cfg(feature = "test-util")]
        let crash = self.options().crash_after_flush_batches;
        let mut partial = 0u64;
        self.coins.write_dirty(&mut batch, limit, |b| {
            if partial == 0 {
                b.set_head_blocks(&new_tip, &old);
            }
            store.commit(b)?;
            *b = WriteBatch::new();
            partial += 1;
            log::debug!("wrote partial batch {partial} of the UTXO flush to {new_tip}");
            #[cfg(feature = "test-util")]
            if crash == Some(partial as usize) {
                log::error!("test crash after {partial} partial batches of the UTXO flush");
                std::process::abort();
            }
            #[cfg(test)]
            if fault == Some(partial as usize) {
                return Err(ChainError::Inconsistent(format!(
                    "test fault after {partial} partial batches"
                )));
            }
            Ok::<(), ChainError>(())
        })?;
        if partial > 0 {
            batch.erase_head_blocks();
        }
        batch.set_tip(&new_tip);
        store.commit(&batch)?;
        self.coins.mark_flushed(keep);
        self.flush_transactions += partial + 1;
        // The flush freed its batches and the cache's spent entries: give
        // the heap back (glibc keeps freed chunks; see `crate::memory`).
        crate::memory::release_free_memory();
        Ok(partial + 1)
    }

    /// Write transactions committed for the UTXO set by flushes so far
    /// (one per flush, or its number of batches).
    pub fn flush_transactions(&self) -> u64 {
        self.flush_transactions
    }

    /// Core's `ReplayBlocks`: if the store holds a head-blocks marker whose
    /// old tip is `tip`, brings the UTXO set to the marker's new tip (see
    /// the module docs) and returns that tip; otherwise returns `tip`. Runs
    /// at open, after the block index is loaded.
    pub(super) fn replay_blocks(&mut self, tip: BlockHash) -> Result<BlockHash, ChainError> {
        let store = Arc::clone(self.store());
        let Some((new, old)) = store.head_blocks()? else {
            return Ok(tip);
        };
        if old != tip {
            log::warn!(
                "dropping a stale head-blocks marker ({old} to {new}): the stored tip is {tip}"
            );
            let mut batch = WriteBatch::new();
            batch.erase_head_blocks();
            store.commit(&batch)?;
            return Ok(tip);
        }
        let find = |hash: &BlockHash, what: &str| {
            self.index.find(hash).ok_or_else(|| {
                ChainError::Inconsistent(format!("replay {what} unknown block {hash}"))
            })
        };
        let new_pos = find(&new, "to")?;
        let old_pos = find(&old, "from")?;
        let height = |p: BlockPos| {
            self.index.height(p).ok_or_else(|| {
                ChainError::Inconsistent(format!("no height for {}", self.index.hash(p)))
            })
        };
        // The old branch down to the fork, and the new branch up from it.
        let (mut a, mut b) = (old_pos, new_pos);
        let (mut back, mut forward) = (Vec::new(), Vec::new());
        while a != b {
            let (ha, hb) = (height(a)?, height(b)?);
            let parent = |p: BlockPos| {
                self.index.parent(p).ok_or_else(|| {
                    ChainError::Inconsistent(format!(
                        "replay: {} has no parent",
                        self.index.hash(p)
                    ))
                })
            };
            if ha >= hb {
                back.push(a);
                a = parent(a)?;
            } else {
                forward.push(b);
                b = parent(b)?;
            }
        }
        forward.reverse();
        log::info!(
            "Replaying blocks: rolling back {} and forward {} blocks, from {old} to {new}",
            back.len(),
            forward.len()
        );
        let limit = self.options().db_batch_bytes;
        let mut batch = WriteBatch::new();
        for pos in back {
            let hash = self.index.hash(pos);
            let block = store.get_block(&hash)?.ok_or_else(|| {
                ChainError::Inconsistent(format!("replay: no data for block {hash}"))
            })?;
            let undo = store.get_undo(&hash)?.ok_or_else(|| {
                ChainError::Inconsistent(format!("replay: no undo data for block {hash}"))
            })?;
            rollback_block(&block, &undo, &mut batch, false).ok_or_else(|| {
                ChainError::Inconsistent(format!("replay: undo data of {hash} is too short"))
            })?;
            if batch.commit_memory() > limit {
                store.commit(&batch)?;
                batch = WriteBatch::new();
            }
        }
        for pos in forward {
            let hash = self.index.hash(pos);
            let block = store.get_block(&hash)?.ok_or_else(|| {
                ChainError::Inconsistent(format!("replay: no data for block {hash}"))
            })?;
            rollforward_block(&block, height(pos)?, &mut batch);
            if batch.commit_memory() > limit {
                store.commit(&batch)?;
                batch = WriteBatch::new();
            }
        }
        batch.erase_head_blocks();
        batch.set_tip(&new);
        store.commit(&batch)?;
        log::info!("Rolled forward to {new}");
        Ok(new)
    }
}

/// Core's `RollforwardBlock`: the block's coin changes, every spend a
/// delete-if-present and every output an overwrite.
fn rollforward_block(block: &Block, height: u32, batch: &mut WriteBatch) {
    for (i, tx) in block.txdata.iter().enumerate() {
        if !tx.is_coinbase() {
            for input in &tx.input {
                batch.spend_coin_if_present(&input.previous_output);
            }
        }
        let txid = tx.compute_txid();
        for (vout, out) in tx.output.iter().enumerate() {
            if is_unspendable(out) {
                continue;
            }
            batch.add_coin(
                &OutPoint::new(txid, vout as u32),
                &Coin {
                    amount: out.value,
                    height,
                    is_coinbase: i == 0,
                    script_pubkey: out.script_pubkey.clone(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! Batched flushes and their replay, through [`ChainState`] on the test
    //! harness's thread: the same UTXO digest as one transaction, a flush
    //! stopped between batches finished at reopen, the reorganisation case
    //! rolled back with undo data, a stale marker dropped.

    use bitcoin::hashes::sha256d;
    use bitcoin::{Block, BlockHash};

    use super::super::network::Network;
    use super::super::state::{ChainOptions, ChainState};
    use crate::store::{Coin, Store, WriteBatch};
    use crate::testdata::ChainBuilder;

    /// Small enough that the test flushes take several batches.
    const TINY_BATCH: usize = 8 << 10;

    fn open(dir: &std::path::Path, opts: ChainOptions) -> ChainState {
        let opts = ChainOptions {
            script_threads: 0,
            ..opts
        };
        ChainState::open(dir, Network::Regtest, opts).expect("open chain state")
    }

    fn store(dir: &std::path::Path) -> Store {
        Store::open(dir, bitcoin::p2p::Magic::REGTEST.to_bytes()).expect("store")
    }

    /// 110 blocks (coinbases maturing), then 30 blocks of 25 transactions.
    fn builder() -> ChainBuilder {
        let mut b = ChainBuilder::new(17);
        for h in 1..=140 {
            b.next_block(if h > 110 { 25 } else { 0 });
        }
        b
    }

    /// Connects `blocks` (headers first, so only the explicit flushes and
    /// the last block's flush happen).
    fn connect(c: &mut ChainState, blocks: &[Block]) {
        let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
        c.process_headers(&headers).expect("headers");
        for b in blocks {
            c.accept_block(b.clone()).expect("block");
        }
    }

    fn coins(store: &Store) -> Vec<(bitcoin::OutPoint, Coin)> {
        let mut out = Vec::new();
        store
            .read()
            .expect("read")
            .for_each_coin(|op, c| {
                out.push((op, c));
                true
            })
            .expect("coins");
        out
    }

    /// The digest and tip after connecting `blocks[1..=140]` with one
    /// flush at 110 and one at 140, each in one transaction.
    fn reference(blocks: &[Block]) -> (BlockHash, sha256d::Hash) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), ChainOptions::default());
        let before = c.flush_transactions();
        connect(&mut c, &blocks[1..=110]);
        c.flush().expect("flush");
        connect(&mut c, &blocks[111..=140]);
        assert_eq!(
            c.flush_transactions() - before,
            2,
            "one transaction a flush"
        );
        let (tip, digest) = c.utxo_digest().expect("digest");
        assert_eq!(tip, blocks[140].block_hash());
        (tip, digest)
    }

    #[test]
    fn tiny_batches_give_the_same_utxo_set_as_one_transaction() {
        let b = builder();
        let blocks = b.blocks();
        let (ref_tip, ref_digest) = reference(blocks);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(
            dir.path(),
            ChainOptions {
                db_batch_bytes: TINY_BATCH,
                ..Default::default()
            },
        );
        connect(&mut c, &blocks[1..=110]);
        c.flush().expect("flush");
        let before = c.flush_transactions();
        connect(&mut c, &blocks[111..=140]);
        let txns = c.flush_transactions() - before;
        assert!(txns >= 3, "one flush in {txns} transactions");
        assert_eq!(c.utxo_digest().expect("digest"), (ref_tip, ref_digest));
        assert_eq!(c.store().head_blocks().expect("marker"), None);
    }

    #[test]
    fn a_flush_stopped_between_batches_is_replayed_at_open() {
        let b = builder();
        let blocks = b.blocks();
        let (ref_tip, ref_digest) = reference(blocks);
        let old_tip = blocks[110].block_hash();
        let dir = tempfile::tempdir().expect("temp dir");
        let old_digest;
        {
            let mut c = open(dir.path(), ChainOptions::default());
            connect(&mut c, &blocks[1..=110]);
            old_digest = c.utxo_digest().expect("digest").1;
        }
        {
            let mut c = open(
                dir.path(),
                ChainOptions {
                    db_batch_bytes: TINY_BATCH,
                    flush_fault_after_batches: Some(2),
                    ..Default::default()
                },
            );
            let headers: Vec<_> = blocks[111..=140].iter().map(|b| b.header).collect();
            c.process_headers(&headers).expect("headers");
            for blk in &blocks[111..140] {
                c.accept_block(blk.clone()).expect("block");
            }
            // The last block makes the tip the best header: the flush runs
            // and stops after two partial batches.
            assert!(c.accept_block(blocks[140].clone()).is_err());
            // Dropping retries the flush, which stops again (or fails on a
            // spend already written): the store stays interrupted.
        }
        {
            let s = store(dir.path());
            assert_eq!(s.tip().expect("tip"), Some(old_tip));
            assert_eq!(s.head_blocks().expect("marker"), Some((ref_tip, old_tip)));
            let partial = s.utxo_digest().expect("digest");
            assert_ne!(partial, old_digest, "partial batches were written");
            assert_ne!(partial, ref_digest);
        }
        let mut c = open(dir.path(), ChainOptions::default());
        assert_eq!(c.height(), 140);
        assert_eq!(c.store().head_blocks().expect("marker"), None);
        assert_eq!(c.utxo_digest().expect("digest"), (ref_tip, ref_digest));
    }

    #[test]
    fn a_marker_across_a_fork_rolls_back_then_forward() {
        let mut main = builder();
        let mut fork = main.fork_at(120).expect("fork");
        for _ in 0..15 {
            fork.next_block(25);
        }
        // Main stays shorter than the fork (130 < 135).
        let main_blocks: Vec<Block> = main.blocks()[..=130].to_vec();
        let _ = &mut main;
        let dir = tempfile::tempdir().expect("temp dir");
        let (a_tip, a_coins, b_tip, b_digest);
        {
            let mut c = open(dir.path(), ChainOptions::default());
            connect(&mut c, &main_blocks[1..=130]);
            a_tip = c.tip();
            c.flush().expect("flush");
            a_coins = coins(c.store());
            connect(&mut c, &fork.blocks()[121..=135]);
            (b_tip, b_digest) = c.utxo_digest().expect("digest");
            assert_eq!(b_tip, fork.blocks()[135].block_hash());
            // As if a flush from a130 to b135 had stopped after its marker:
            // the old tip's coins, the old tip, the marker.
            let s = c.store();
            let mut w = WriteBatch::new();
            for (op, _) in coins(s) {
                w.spend_coin_if_present(&op);
            }
            for (op, coin) in &a_coins {
                w.add_coin(op, coin);
            }
            w.set_tip(&a_tip);
            w.set_head_blocks(&b_tip, &a_tip);
            s.commit(&w).expect("commit");
            assert_ne!(s.utxo_digest().expect("digest"), b_digest);
        }
        let mut c = open(
            dir.path(),
            ChainOptions {
                db_batch_bytes: TINY_BATCH,
                ..Default::default()
            },
        );
        assert_eq!(c.tip(), b_tip);
        assert_eq!(c.height(), 135);
        assert_eq!(c.utxo_digest().expect("digest"), (b_tip, b_digest));
        assert_eq!(c.store().head_blocks().expect("marker"), None);
    }

    #[test]
    fn a_marker_not_from_the_stored_tip_is_dropped() {
        let b = builder();
        let blocks = b.blocks();
        let dir = tempfile::tempdir().expect("temp dir");
        let digest;
        {
            let mut c = open(dir.path(), ChainOptions::default());
            connect(&mut c, &blocks[1..=20]);
            digest = c.utxo_digest().expect("digest");
            let mut w = WriteBatch::new();
            w.set_head_blocks(&blocks[20].block_hash(), &blocks[5].block_hash());
            c.store().commit(&w).expect("commit");
        }
        let mut c = open(dir.path(), ChainOptions::default());
        assert_eq!(c.store().head_blocks().expect("marker"), None);
        assert_eq!(c.utxo_digest().expect("digest"), digest);
    }

    /// Blocks of 1,000 new coins (25-byte scripts) into a cache limited to
    /// 1 MiB, flushed whenever it says so: its estimate never passes the
    /// limit (it flushes before the block that would double its table or
    /// fill it), it flushes several times, and its estimate counts at
    /// least a bucket and a script allocation per entry.
    #[test]
    fn the_coins_cache_flushes_before_passing_its_limit() {
        use super::super::coins::CoinsCache;
        use bitcoin::hashes::Hash;
        const LIMIT: usize = 1 << 20;
        let mut cache = CoinsCache::new();
        assert_eq!(cache.memory_usage(), 0);
        let script = bitcoin::ScriptBuf::from_bytes(vec![0x51; 25]);
        let (mut flushes, mut n) = (0, 0u32);
        for _ in 0..60 {
            for _ in 0..1_000 {
                n += 1;
                let txid = bitcoin::Txid::hash(&n.to_le_bytes());
                let coin = Coin {
                    amount: bitcoin::Amount::from_sat(u64::from(n)),
                    height: 1,
                    is_coinbase: false,
                    script_pubkey: script.clone(),
                };
                cache.add(bitcoin::OutPoint::new(txid, 0), coin);
            }
            let usage = cache.memory_usage();
            assert!(usage <= LIMIT, "{usage} bytes over the limit");
            // A bucket (36-byte outpoint, entry, control byte) and a
            // 48-byte script allocation per entry at least.
            assert!(usage >= cache.len() * (36 + 40 + 1 + 48));
            if cache.needs_flush(LIMIT) {
                flushes += 1;
                cache.mark_flushed(0);
                assert_eq!((cache.len(), cache.memory_usage()), (0, 0));
            }
        }
        assert!(flushes >= 5, "{flushes} flushes");

        // Removing entries leaves the table's allocation: the estimate
        // keeps counting it (only the scripts go).
        let mut cache = CoinsCache::new();
        let ops: Vec<bitcoin::OutPoint> = (0..5_000u32)
            .map(|i| bitcoin::OutPoint::new(bitcoin::Txid::hash(&i.to_be_bytes()), 1))
            .collect();
        for op in &ops {
            let coin = Coin {
                amount: bitcoin::Amount::from_sat(1),
                height: 1,
                is_coinbase: false,
                script_pubkey: script.clone(),
            };
            cache.add(*op, coin);
        }
        let table = cache.memory_usage() - 5_000 * 48;
        assert!(table >= 5_000 * (36 + 40 + 1));
        for op in &ops {
            cache.spend(op);
        }
        assert_eq!((cache.len(), cache.memory_usage()), (0, table));
    }
    /// A flush writes the dirty coins in the store's key order (txid bytes,
    /// then vout) across all its batches, and splits them when a batch's
    /// commit memory passes the limit: random txids count a dirty page
    /// each, so 64 KiB holds at most 16 of them.
    #[test]
    fn a_flush_writes_coins_in_key_order_in_batches_bounded_by_pages() {
        use super::super::coins::CoinsCache;
        use crate::store::DIRTY_PAGE_BYTES;
        use bitcoin::hashes::Hash;
        const LIMIT: usize = 64 << 10;
        let mut cache = CoinsCache::new();
        for i in 0..500u32 {
            let coin = Coin {
                amount: bitcoin::Amount::from_sat(1),
                height: 1,
                is_coinbase: false,
                script_pubkey: bitcoin::ScriptBuf::from_bytes(vec![0x51; 22]),
            };
            let txid = bitcoin::Txid::hash(&(i / 2).to_le_bytes());
            cache.add(bitcoin::OutPoint::new(txid, 1 - i % 2), coin);
        }
        let mut written: Vec<Vec<u8>> = Vec::new();
        let mut batches = Vec::new();
        let mut batch = WriteBatch::new();
        cache
            .write_dirty(&mut batch, LIMIT, |b| {
                assert!(b.commit_memory() > LIMIT);
                batches.push(b.len());
                written.extend(b.ops.iter().map(|op| op.key.clone()));
                *b = WriteBatch::new();
                Ok::<(), ()>(())
            })
            .expect("no failure");
        written.extend(batch.ops.iter().map(|op| op.key.clone()));
        assert_eq!(written.len(), 500);
        assert!(written.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        // 250 txids of two outputs: a page for the first output of each.
        let per_batch = LIMIT / DIRTY_PAGE_BYTES * 2;
        assert!(batches.len() >= 500 / per_batch - 1, "{batches:?}");
        assert!(batches.iter().all(|&n| n <= per_batch + 2), "{batches:?}");
    }

    /// The commit-memory estimate: a page for each new txid, twice the
    /// node for another output of a txid already written.
    #[test]
    fn commit_memory_counts_a_page_per_new_txid() {
        use crate::store::DIRTY_PAGE_BYTES;
        use bitcoin::hashes::Hash;
        let coin = Coin {
            amount: bitcoin::Amount::from_sat(1),
            height: 1,
            is_coinbase: false,
            script_pubkey: bitcoin::ScriptBuf::from_bytes(vec![0x51; 22]),
        };
        let mut spread = WriteBatch::new();
        let mut one_tx = WriteBatch::new();
        let txid = bitcoin::Txid::hash(b"one");
        for i in 0..100u32 {
            let other = bitcoin::Txid::hash(&i.to_le_bytes());
            spread.add_coin(&bitcoin::OutPoint::new(other, 0), &coin);
            one_tx.add_coin(&bitcoin::OutPoint::new(txid, i), &coin);
        }
        assert!(spread.commit_memory() >= spread.memory_usage() + 100 * DIRTY_PAGE_BYTES);
        let one = one_tx.commit_memory() - one_tx.memory_usage();
        assert!(
            (DIRTY_PAGE_BYTES..DIRTY_PAGE_BYTES + 99 * 2 * 100).contains(&one),
            "{one}"
        );
    }
}
