//! Chain state: block index, best header chain, active chain, UTXO cache,
//! connecting and disconnecting blocks, reorganisation (Core's
//! `Chainstate`, btcd's `blockchain.BlockChain`).
//!
//! Owned by the sync-manager thread, the store's only writer. Headers are
//! validated and indexed as they arrive ([`ChainState::process_headers`]);
//! blocks are checked on arrival and kept until they can be connected in
//! order along the most-work header chain ([`ChainState::accept_block`],
//! which then activates the best chain): in memory up to
//! [`MAX_PENDING_BYTES`], in the store beyond. Blocks nobody asked for are
//! kept only as Core's `AcceptBlock` allows
//! ([`ChainState::accept_block_requested`]). Connecting runs every check of
//! Core's `ConnectBlock`; only the script interpreter is skipped for blocks
//! buried under the assumed-valid block ([`ChainState::script_check_reason`],
//! the decision in `chain::assumevalid`).
//!
//! Crash safety: the store's tip and UTXO set change together in one LMDB
//! transaction (a *flush*; past `ChainOptions::db_batch_bytes` several,
//! with a marker that makes the next open finish it: `chain/replay.rs`). Flushes happen every [`ChainOptions::flush_blocks`]
//! blocks, when the UTXO cache is over its limit, when the node catches up
//! with its best header, before a reorganisation and at shutdown. Block
//! bodies and undo data are written in their own, earlier commits; a crash
//! loses at most the blocks connected since the last flush, which are
//! downloaded and connected again.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{Block, BlockHash, OutPoint, TxOut};

use super::assumevalid::{self, AssumeValid};
use super::check;
use super::coins::CoinsCache;
use super::hasher::BlockMap;
use super::index::{BlockIndex, BlockPos};
use super::network::Network;
use super::pow::{self, HeaderAncestry};
use super::script::ScriptCheckPool;
use super::tiplog;
use super::{ChainParams, RejectKind, ValidationError};
use crate::store::{
    BlockStatus, Coin, IndexEntry, IndexRecord, Store, StoreError, StoreOptions, WriteBatch,
};

/// Tuning of the chain state.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Script-check worker threads (0 = verify on the sync-manager thread).
    pub script_threads: usize,
    /// UTXO cache limit in bytes (approximate).
    pub coins_cache_bytes: usize,
    /// Flush at least every this many connected blocks.
    pub flush_blocks: usize,
    /// Commit buffered block bodies and undo data beyond this many bytes.
    pub block_write_bytes: usize,
    /// Accepted, not yet connectable block bodies held in memory up to this
    /// many bytes; the rest are written to the store
    /// ([`MAX_PENDING_BYTES`] by default).
    pub pending_bytes: usize,
    /// Signet only: a custom challenge instead of the default signet's
    /// (Core's `-signetchallenge`; changes the network magic).
    pub signet_challenge: Option<Vec<u8>>,
    /// Replaces the network's minimum chain work (Core's
    /// `-minimumchainwork`; see `chain::headers_sync`).
    pub minimum_chain_work: Option<Work>,
    /// Core's `-assumevalid`: whose ancestors' scripts may be skipped
    /// (see `chain::assumevalid`).
    pub assume_valid: AssumeValid,
    /// Core's `-dbbatchsize`: a flush writes the UTXO changes in
    /// transactions of at most about this many bytes of batch memory
    /// (`chain/replay.rs`; [`super::replay::DEFAULT_DB_BATCH_BYTES`]).
    pub db_batch_bytes: usize,
    /// Release the store map's pages every this many reads or writes, not
    /// only after commits (`--mapreleaseops`; 0, the default: after commits
    /// only; see [`StoreOptions::release_every_ops`]).
    pub map_release_ops: usize,
    /// Test builds only: abort the process right after this many partial
    /// transactions of a multi-transaction UTXO flush, leaving the store
    /// as a `kill -9` at that moment would (tests/crash.rs).
    #[cfg(feature = "test-util")]
    pub crash_after_flush_batches: Option<usize>,
    /// Test fault point: a flush fails after committing this many partial
    /// batches, leaving the store as a crash would.
    #[cfg(test)]
    pub(crate) flush_fault_after_batches: Option<usize>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            script_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            coins_cache_bytes: 48 << 20,
            flush_blocks: 2_000,
            block_write_bytes: 8 << 20,
            pending_bytes: MAX_PENDING_BYTES,
            signet_challenge: None,
            minimum_chain_work: None,
            assume_valid: AssumeValid::Default,
            db_batch_bytes: super::replay::DEFAULT_DB_BATCH_BYTES,
            map_release_ops: 0,
            #[cfg(feature = "test-util")]
            crash_after_flush_batches: None,
            #[cfg(test)]
            flush_fault_after_batches: None,
        }
    }
}

/// Why the chain state failed (as opposed to a block being invalid).
#[derive(Debug)]
pub enum ChainError {
    /// The store failed.
    Store(StoreError),
    /// The store's contents contradict themselves.
    Inconsistent(String),
    /// Script-check threads could not start.
    Threads(std::io::Error),
    /// The network has no consensus parameters here.
    UnsupportedNetwork(Network),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Store(e) => write!(f, "chain store: {e}"),
            ChainError::Inconsistent(s) => write!(f, "chain store is inconsistent: {s}"),
            ChainError::Threads(e) => write!(f, "cannot start script-check threads: {e}"),
            ChainError::UnsupportedNetwork(n) => write!(f, "network {n} is not supported"),
        }
    }
}

impl std::error::Error for ChainError {}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        ChainError::Store(e)
    }
}

/// Why a header or block was not accepted.
#[derive(Debug)]
pub enum RejectError {
    /// It breaks a consensus rule.
    Invalid(ValidationError),
    /// Its parent is unknown (headers that do not connect).
    UnknownParent(BlockHash),
    /// The chain state itself failed.
    Chain(ChainError),
}

impl fmt::Display for RejectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectError::Invalid(e) => write!(f, "{e}"),
            RejectError::UnknownParent(h) => write!(f, "unknown parent block {h}"),
            RejectError::Chain(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RejectError {}

impl From<ChainError> for RejectError {
    fn from(e: ChainError) -> Self {
        RejectError::Chain(e)
    }
}

impl From<StoreError> for RejectError {
    fn from(e: StoreError) -> Self {
        RejectError::Chain(ChainError::Store(e))
    }
}

/// Something that changed the active chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// A block was connected at the tip.
    Connected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The tip block was disconnected (reorganisation).
    Disconnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block failed validation and was marked invalid.
    Invalid {
        /// Its hash.
        hash: BlockHash,
        /// Core's reject reason and detail.
        reason: String,
    },
}

/// Result of [`ChainState::process_headers`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadersOutcome {
    /// Headers not seen before.
    pub new: usize,
    /// Whether the best header changed.
    pub new_best: bool,
}

/// The chain state; see the module docs.
pub struct ChainState {
    pub(super) params: ChainParams,
    pub(super) store: Arc<Store>,
    opts: ChainOptions,
    pub(super) index: BlockIndex,
    /// Active chain by height; `active[0]` is genesis.
    pub(super) active: Vec<BlockPos>,
    /// Most-work valid header chain by height.
    pub(super) header_chain: Vec<BlockPos>,
    pub(super) coins: CoinsCache,
    pub(super) pool: ScriptCheckPool,
    /// Blocks received and checked, waiting to be connected, held in
    /// memory up to [`MAX_PENDING_BYTES`]; beyond it they go to the store.
    pub(super) pending: HashMap<BlockHash, Block>,
    /// Serialized size of the blocks in `pending`.
    pub(super) pending_bytes: usize,
    /// Unrequested blocks not processed (Core's `AcceptBlock` with
    /// `fRequested` false: less work than the tip, too far ahead, or below
    /// the minimum chain work).
    unrequested_dropped: u64,
    /// Block bodies and undo data not yet committed.
    pub(super) block_writes: WriteBatch,
    /// Index entries changed since the last flush (written in position
    /// order, so new records append).
    pub(super) dirty_index: std::collections::BTreeSet<BlockPos>,
    /// Height of the tip recorded in the store.
    flushed_height: u32,
    pub(super) blocks_since_flush: usize,
    last_log: Instant,
    logged_height: u32,
    pub(super) txs_connected: u64,
    /// Per header, the answer of the min-difficulty walk (testnet and
    /// regtest only); bounded, rebuilt on demand.
    min_diff_bits: BlockMap<BlockHash, CompactTarget>,
    /// Height of the highest checkpoint whose header we hold.
    last_checkpoint: Option<u32>,
    /// The last assumevalid decision logged (Core's
    /// `m_last_script_check_reason_logged`): `Some(None)` = skipping.
    pub(super) script_check_logged: Option<Option<assumevalid::ScriptCheckReason>>,
    /// Pruning mode and stored block sizes (`chain/prune.rs`).
    pub(super) prune: super::prune_state::PruneState,
    /// Write transactions the flushes committed for the UTXO set (one per
    /// flush, more when split in batches; `chain/replay.rs`).
    pub(super) flush_transactions: u64,
}

/// New index entries held before a flush writes them.
const DIRTY_INDEX_LIMIT: usize = 20_000;

/// Most bytes of accepted, not yet connected block bodies held in memory:
/// one peer's full quota of blocks in flight (Core's
/// `MAX_BLOCKS_IN_TRANSIT_PER_PEER`, 16) at the largest message Core
/// accepts (`MAX_PROTOCOL_MESSAGE_LENGTH`, 4,000,000 bytes). Core keeps no
/// bodies in memory at all (`AcceptBlock` writes every one to disk); strand
/// keeps this much so that blocks arriving a little out of order connect
/// without a store round trip, and writes the rest to the store.
pub const MAX_PENDING_BYTES: usize = 16 * 4_000_000;

/// How far ahead of the active tip an unrequested block may be and still be
/// processed (Core's `MIN_BLOCKS_TO_KEEP`, used by `AcceptBlock`'s
/// `fTooFarAhead`).
pub const MIN_BLOCKS_TO_KEEP: u32 = 288;

/// How old (against the best header's time) a fully validated block off
/// the active chain may be and still be served: Core's
/// `STALE_RELAY_AGE_LIMIT`, 30 days.
pub const STALE_RELAY_AGE_LIMIT: u32 = 30 * 24 * 60 * 60;

/// Entries kept in [`ChainState::min_diff_bits`] before it is cleared.
const MIN_DIFF_MEMO: usize = 50_000;

struct Ancestry<'a> {
    chain: &'a ChainState,
    tip: BlockPos,
    height: u32,
}

impl HeaderAncestry for Ancestry<'_> {
    fn height(&self) -> u32 {
        self.height
    }

    fn header_at(&self, height: u32) -> Option<Header> {
        let pos = self.chain.ancestor_pos(self.tip, height)?;
        self.chain.index.header(pos)
    }

    fn last_non_min_difficulty_bits(
        &self,
        height: u32,
        header: Header,
        limit_bits: CompactTarget,
        interval: u32,
    ) -> Result<CompactTarget, ValidationError> {
        if height == self.height {
            if let Some(bits) = self
                .chain
                .min_diff_bits
                .get(&self.chain.index.hash(self.tip))
            {
                return Ok(*bits);
            }
        }
        pow::walk_min_difficulty(self, height, header, limit_bits, interval)
    }
}

pub(super) fn is_unspendable(out: &TxOut) -> bool {
    out.script_pubkey.is_op_return() || out.script_pubkey.len() > 10_000
}

impl ChainState {
    /// Opens (or creates) the chain state in `dir` for `network`.
    pub fn open(
        dir: &Path,
        network: Network,
        opts: ChainOptions,
    ) -> Result<ChainState, ChainError> {
        let mut params = match (&opts.signet_challenge, network) {
            (Some(c), Network::Signet) => ChainParams::custom_signet(c.clone()),
            _ => ChainParams::for_network(network.to_bitcoin())
                .ok_or(ChainError::UnsupportedNetwork(network))?,
        };
        if let Some(work) = opts.minimum_chain_work {
            params.minimum_chain_work = work;
        }
        // A custom signet's magic differs: its store refuses another's.
        let store = Arc::new(Store::open_with(
            dir,
            params.magic().to_bytes(),
            StoreOptions {
                release_every_ops: opts.map_release_ops,
                ..StoreOptions::default()
            },
        )?);
        let pool = ScriptCheckPool::new(opts.script_threads).map_err(ChainError::Threads)?;
        let mut chain = ChainState {
            params,
            store,
            opts,
            index: BlockIndex::new(),
            active: Vec::new(),
            header_chain: Vec::new(),
            coins: CoinsCache::new(),
            pool,
            pending: HashMap::new(),
            pending_bytes: 0,
            unrequested_dropped: 0,
            block_writes: WriteBatch::new(),
            dirty_index: Default::default(),
            flushed_height: 0,
            blocks_since_flush: 0,
            last_log: Instant::now(),
            logged_height: 0,
            txs_connected: 0,
            min_diff_bits: BlockMap::default(),
            last_checkpoint: None,
            script_check_logged: None,
            prune: Default::default(),
            flush_transactions: 0,
        };
        chain.load(network)?;
        Ok(chain)
    }

    fn load(&mut self, network: Network) -> Result<(), ChainError> {
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin());
        let genesis_hash = genesis.block_hash();
        match self.store.tip()? {
            None => {
                let status = BlockStatus::VALID_HEADER
                    | BlockStatus::HAVE_DATA
                    | BlockStatus::VALID_TRANSACTIONS
                    | BlockStatus::VALID_SCRIPTS;
                let pos = self
                    .index
                    .push(&genesis.header, genesis_hash, status)
                    .map_err(|e| ChainError::Inconsistent(e.to_string()))?;
                self.index.set_tx_count(pos, genesis.txdata.len() as u32);
                let mut batch = WriteBatch::new();
                self.write_index(&mut batch, pos);
                batch.put_block(&genesis_hash, &genesis);
                batch.set_tip(&genesis_hash);
                self.store.commit(&batch)?;
                self.active = vec![pos];
            }
            Some(tip) => {
                self.load_index()?;
                // Finish a flush interrupted between its batches.
                let tip = self.replay_blocks(tip)?;
                let tip_pos = self.index.find(&tip).ok_or_else(|| {
                    ChainError::Inconsistent(format!("tip {tip} missing from the index"))
                })?;
                // The active chain is the tip's ancestry.
                let mut active =
                    Vec::with_capacity(self.index.height(tip_pos).unwrap_or(0) as usize + 1);
                let mut cur = Some(tip_pos);
                while let Some(p) = cur {
                    active.push(p);
                    cur = self.index.parent(p);
                }
                active.reverse();
                self.active = active;
                if self.active.first().map(|p| self.index.hash(*p)) != Some(genesis_hash) {
                    return Err(ChainError::Inconsistent(
                        "active chain does not start at this network's genesis".into(),
                    ));
                }
            }
        }
        self.last_checkpoint = self
            .params
            .checkpoints
            .iter()
            .filter(|(_, h)| self.index.contains(h))
            .map(|(height, _)| *height)
            .max();
        self.flushed_height = self.height();
        self.logged_height = self.height();
        self.recompute_best_header();
        log::info!(
            "chain state loaded: height {} tip {} ({} headers, best header height {})",
            self.height(),
            self.tip(),
            self.index.len(),
            self.best_header_height()
        );
        Ok(())
    }

    /// Rebuilds the block index from the store's records (in position
    /// order, parents first). A record whose parent is missing (a crash
    /// between two commits that wrote separate parts of the index) is
    /// dropped; if any was, or positions were not dense, the index is
    /// rewritten so that stored positions match memory again.
    fn load_index(&mut self) -> Result<(), ChainError> {
        let stored = self.store.load_index_records()?;
        let mut renumbered = false;
        let mut new_pos: BlockMap<u32, BlockPos> = BlockMap::default();
        for (key, rec) in &stored.records {
            let hash = rec.header.block_hash();
            if self.index.contains(&hash) {
                renumbered = true;
                continue;
            }
            match self.index.push(&rec.header, hash, rec.status) {
                Ok(pos) => {
                    self.index.set_tx_count(pos, rec.tx_count);
                    renumbered |= pos.0 != *key;
                    new_pos.insert(*key, pos);
                }
                Err(e) => {
                    log::warn!("block index record {key} dropped: {e}");
                    renumbered = true;
                }
            }
        }
        for (key, reason) in &stored.reasons {
            if let Some(pos) = new_pos.get(key) {
                self.index.set_invalid_reason(*pos, Some(reason.clone()));
            }
        }
        if renumbered {
            log::warn!(
                "block index positions rewritten ({} entries)",
                self.index.len()
            );
            let mut batch = WriteBatch::new();
            for (key, _) in &stored.records {
                batch.delete_index_record(*key);
            }
            for (key, _) in &stored.reasons {
                batch.put_index_reason(*key, None);
            }
            for pos in self.index.positions() {
                self.write_index(&mut batch, pos);
                if let Some(r) = self.index.invalid_reason(pos) {
                    batch.put_index_reason(pos.0, Some(r));
                }
            }
            self.store.commit(&batch)?;
        }
        Ok(())
    }

    /// Queues the stored record of `pos` in `batch` (its invalid reason is
    /// written where it changes).
    pub(super) fn write_index(&self, batch: &mut WriteBatch, pos: BlockPos) {
        if let (Some(header), Some(status)) = (self.index.header(pos), self.index.status(pos)) {
            let record = IndexRecord {
                header,
                status,
                tx_count: self.index.tx_count(pos),
            };
            batch.put_index_record(pos.0, &record);
        }
    }

    /// Consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The store (for read-only use by other threads).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    /// Hash of the active tip.
    pub fn tip(&self) -> BlockHash {
        self.active
            .last()
            .map_or_else(BlockHash::all_zeros, |p| self.index.hash(*p))
    }

    /// Index position of the active tip.
    fn tip_pos(&self) -> Option<BlockPos> {
        self.active.last().copied()
    }

    /// Hash of the active block at `height`.
    pub fn active_hash(&self, height: u32) -> Option<BlockHash> {
        self.active
            .get(height as usize)
            .map(|p| self.index.hash(*p))
    }

    /// Tip of the most-work valid header chain.
    pub fn best_header(&self) -> BlockHash {
        self.header_chain
            .last()
            .map_or_else(|| self.tip(), |p| self.index.hash(*p))
    }

    /// Height of the best header.
    pub fn best_header_height(&self) -> u32 {
        self.header_chain.len().saturating_sub(1) as u32
    }

    /// The index entry of `hash`, built on demand (the index keeps a
    /// compact form; see [`super::index`]).
    pub fn entry(&self, hash: &BlockHash) -> Option<IndexEntry> {
        self.index.entry(self.index.find(hash)?)
    }

    /// Core's `nChainTx` of `hash`: transactions in its chain up to and
    /// including it, known once it was connected (0 before).
    pub fn chain_tx(&self, hash: &BlockHash) -> u64 {
        self.index.find(hash).map_or(0, |p| self.index.chain_tx(p))
    }

    /// Number of indexed headers.
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    fn is_active_pos(&self, pos: BlockPos) -> bool {
        self.index
            .height(pos)
            .is_some_and(|h| self.active.get(h as usize) == Some(&pos))
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index.find(hash).is_some_and(|p| self.is_active_pos(p))
    }

    /// The unspent output `op` at the tip, if any.
    pub fn coin(&mut self, op: &OutPoint) -> Result<Option<Coin>, ChainError> {
        Ok(self.coins.get(op, &self.store)?)
    }

    /// Chain tips (Core's `getchaintips`): every indexed block no other
    /// indexed block builds on, with its height and the height at which its
    /// branch leaves the active chain.
    pub fn chain_tips(&self) -> Vec<(BlockHash, u32, u32, BlockStatus)> {
        let mut has_child = vec![false; self.index.len()];
        for p in self.index.positions() {
            if let Some(parent) = self.index.parent(p) {
                if let Some(c) = has_child.get_mut(parent.0 as usize) {
                    *c = true;
                }
            }
        }
        let tip = self.tip_pos();
        let mut tips = Vec::new();
        for p in self.index.positions() {
            if has_child.get(p.0 as usize) == Some(&true) && Some(p) != tip {
                continue;
            }
            let (Some(height), Some(status)) = (self.index.height(p), self.index.status(p)) else {
                continue;
            };
            let mut fork = height;
            let mut cur = Some(p);
            while let Some(c) = cur.filter(|c| !self.is_active_pos(*c)) {
                fork = self.index.height(c).unwrap_or(0).saturating_sub(1);
                cur = self.index.parent(c);
            }
            tips.push((
                self.index.hash(p),
                height,
                height - fork.min(height),
                status,
            ));
        }
        tips.sort_by_key(|t| std::cmp::Reverse(t.1));
        tips
    }

    /// Total transactions connected since start (for progress logs).
    pub fn txs_connected(&self) -> u64 {
        self.txs_connected
    }

    /// Why the scripts of `block` (at `height`, whose index entry exists)
    /// must be verified, or `None` when assumevalid lets them be skipped.
    pub fn script_check_reason(
        &self,
        block: BlockHash,
        height: u32,
    ) -> Option<assumevalid::ScriptCheckReason> {
        let assumed = self
            .options()
            .assume_valid
            .resolve(self.params().default_assume_valid);
        let block_work = self.entry(&block).map(|e| e.chain_work);
        let best = self.best_header();
        let best_entry = self.entry(&best);
        let (Some(block_work), Some(best_entry)) = (block_work, best_entry) else {
            return Some(assumevalid::ScriptCheckReason::NotInBestHeaderChain);
        };
        let facts = assumevalid::AssumeValidFacts {
            assumed,
            assumed_entry: assumed.and_then(|h| {
                let e = self.entry(&h)?;
                Some((e.height, self.ancestor_hash(&h, height)))
            }),
            block,
            height,
            block_work,
            best_header_ancestor: self.ancestor_hash(&best, height),
            best_header_work: best_entry.chain_work,
            best_header_proof: pow::block_proof(best_entry.header.bits),
            minimum_chain_work: self.params().minimum_chain_work,
            spacing: self.params().pow_target_spacing,
        };
        assumevalid::script_check_reason(&facts)
    }

    /// The options the chain state was opened with.
    pub fn options(&self) -> &ChainOptions {
        &self.opts
    }

    /// Hash of the ancestor of `hash` at `height`.
    fn ancestor_hash(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let pos = self.index.find(hash)?;
        self.ancestor_pos(pos, height).map(|a| self.index.hash(a))
    }

    /// Ancestor of `pos` at `height`: by height on the best header chain
    /// or the active chain when `pos` is on one, else by skip pointers.
    pub(super) fn ancestor_pos(&self, pos: BlockPos, height: u32) -> Option<BlockPos> {
        let h = self.index.height(pos)?;
        if height > h {
            return None;
        }
        for chain in [&self.header_chain, &self.active] {
            if chain.get(h as usize) == Some(&pos) {
                return chain.get(height as usize).copied();
            }
        }
        self.index.ancestor(pos, height)
    }

    /// Height of the last block the chain ending at `hash` shares with the
    /// active chain (Core's `LastCommonAncestor` with the tip), `None` for
    /// an unknown hash.
    pub fn last_common_height(&self, hash: &BlockHash) -> Option<u32> {
        let pos = self.index.find(hash)?;
        let mut h = self.index.height(pos)?.min(self.height());
        loop {
            let a = self.ancestor_pos(pos, h)?;
            if self.active.get(h as usize) == Some(&a) || h == 0 {
                return Some(h);
            }
            h -= 1;
        }
    }

    fn hashes(&self, chain: &[BlockPos]) -> Vec<BlockHash> {
        locator_of(chain)
            .into_iter()
            .map(|p| self.index.hash(p))
            .collect()
    }

    /// Block locator of the best header chain (Core's `GetLocator`): the
    /// last 10 hashes, then exponentially sparser, ending with genesis.
    pub fn block_locator(&self) -> Vec<BlockHash> {
        self.hashes(&self.header_chain)
    }

    /// Block locator of the best header chain from the best header's
    /// parent (Core's `GetLocator(m_best_header->pprev)` for `getheaders`):
    /// a peer on our chain answers with at least our best header, so we
    /// learn what it has.
    pub fn locator_before_best(&self) -> Vec<BlockHash> {
        let end = self.header_chain.len().saturating_sub(1).max(1);
        self.hashes(self.header_chain.get(..end).unwrap_or(&self.header_chain))
    }

    /// Block locator of the active chain.
    pub fn active_locator(&self) -> Vec<BlockHash> {
        self.hashes(&self.active)
    }

    /// Block locator starting at any indexed block (Core's
    /// `LocatorEntries`): itself and its 9 parents, then exponentially
    /// sparser ancestors, ending with genesis. Empty for an unknown hash.
    pub fn locator_from(&self, hash: &BlockHash) -> Vec<BlockHash> {
        let Some(pos) = self.index.find(hash) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut height = i64::from(self.index.height(pos).unwrap_or(0));
        let mut step = 1i64;
        while height > 0 {
            if let Some(a) = self.ancestor_pos(pos, height as u32) {
                out.push(self.index.hash(a));
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.extend(self.active.first().map(|p| self.index.hash(*p)));
        out
    }

    /// Whether `hash` is on the best header chain or the active chain
    /// (Core's `IsAncestorOfBestHeaderOrTip`): headers ending there add
    /// nothing to memory, so they skip the anti-DoS work check.
    pub fn is_ancestor_of_best_header_or_tip(&self, hash: &BlockHash) -> bool {
        self.index.find(hash).is_some_and(|p| {
            let h = self.index.height(p).unwrap_or(0) as usize;
            self.header_chain.get(h) == Some(&p) || self.active.get(h) == Some(&p)
        })
    }

    /// The last common block of the active chain and `locator` (genesis if
    /// none is known): where to start answering `getheaders`/`getblocks`.
    pub fn find_fork(&self, locator: &[BlockHash]) -> u32 {
        locator
            .iter()
            .filter_map(|h| self.index.find(h))
            .find(|p| self.is_active_pos(*p))
            .and_then(|p| self.index.height(p))
            .unwrap_or(0)
    }

    /// Median time past of the active block at `height`.
    pub fn median_time_past(&self, height: u32) -> Option<u32> {
        self.mtp_active(height)
    }

    /// Median time past of `pos` (at `height`), active or not (Core's
    /// `pindexPrev->GetMedianTimePast()`).
    pub(super) fn mtp_of(&self, pos: BlockPos, height: u32) -> Result<u32, RejectError> {
        let ancestry = Ancestry {
            chain: self,
            tip: pos,
            height,
        };
        pow::median_time_past_at(&ancestry, height).map_err(RejectError::Invalid)
    }

    fn mtp_active(&self, height: u32) -> Option<u32> {
        let low = height.saturating_sub(10);
        let mut times = Vec::with_capacity(11);
        for h in low..=height {
            times.push(self.index.time(*self.active.get(h as usize)?)?);
        }
        Some(pow::median_time_past(&times))
    }

    /// Validates and indexes `headers` (in order; each must connect to a
    /// known header). Stops at the first invalid one.
    pub fn process_headers(&mut self, headers: &[Header]) -> Result<HeadersOutcome, RejectError> {
        let mut outcome = HeadersOutcome::default();
        let best_work = self.best_work();
        let mut best: Option<(BlockPos, Work)> = None;
        let mut result = Ok(());
        for header in headers {
            match self.accept_header(header) {
                Ok(Some((hash, prev))) => {
                    let pos = self
                        .index
                        .push(header, hash, BlockStatus::VALID_HEADER)
                        .map_err(|e| ChainError::Inconsistent(e.to_string()))?;
                    // Written at the next flush: headers lost in a crash
                    // are simply downloaded again.
                    self.dirty_index.insert(pos);
                    let height = self.index.height(pos).unwrap_or(0);
                    let work = self
                        .index
                        .chain_work(pos)
                        .unwrap_or(Work::from_be_bytes([0; 32]));
                    let extends_best = self.header_chain.last() == Some(&prev)
                        || (self.header_chain.is_empty() && self.tip_pos() == Some(prev));
                    self.remember_min_diff_bits(pos);
                    if self.params.checkpoint_at(height) == Some(hash) {
                        self.last_checkpoint = self.last_checkpoint.max(Some(height));
                    }
                    outcome.new += 1;
                    if work > best.map_or(best_work, |b| b.1) {
                        if extends_best && !self.header_chain.is_empty() {
                            // The common case, kept O(1): later headers of
                            // this message find their ancestors by height.
                            self.header_chain.push(pos);
                            outcome.new_best = true;
                        } else {
                            best = Some((pos, work));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if self.dirty_index.len() >= DIRTY_INDEX_LIMIT {
            self.flush()?;
        }
        if let Some((pos, work)) = best {
            if work > self.best_work() {
                self.set_best_header(pos);
                outcome.new_best = true;
            }
        }
        result.map(|()| outcome)
    }

    /// Records the min-difficulty walk's answer for a new header.
    fn remember_min_diff_bits(&mut self, pos: BlockPos) {
        if !self.params.allow_min_difficulty_blocks {
            return;
        }
        let (Some(header), Some(height)) = (self.index.header(pos), self.index.height(pos)) else {
            return;
        };
        let interval = self.params.difficulty_adjustment_interval().max(1);
        let limit = self.params.pow_limit_bits();
        let bits = if height.is_multiple_of(interval) || header.bits != limit {
            header.bits
        } else {
            match self.min_diff_bits.get(&header.prev_blockhash) {
                Some(b) => *b,
                None => {
                    let Some(prev) = self.index.parent(pos) else {
                        return;
                    };
                    let Some(prev_header) = self.index.header(prev) else {
                        return;
                    };
                    let ancestry = Ancestry {
                        chain: self,
                        tip: prev,
                        height: height - 1,
                    };
                    match ancestry.last_non_min_difficulty_bits(
                        height - 1,
                        prev_header,
                        limit,
                        interval,
                    ) {
                        Ok(b) => b,
                        Err(_) => return,
                    }
                }
            }
        };
        if self.min_diff_bits.len() >= MIN_DIFF_MEMO {
            self.min_diff_bits.clear();
        }
        self.min_diff_bits.insert(self.index.hash(pos), bits);
    }

    fn best_work(&self) -> Work {
        self.header_chain
            .last()
            .or(self.active.last())
            .and_then(|p| self.index.chain_work(*p))
            .unwrap_or(Work::from_be_bytes([0; 32]))
    }

    /// Checks one header; `Ok(None)` if already known, else its hash and
    /// its parent's position.
    fn accept_header(&self, header: &Header) -> Result<Option<(BlockHash, BlockPos)>, RejectError> {
        let hash = header.block_hash();
        if let Some(pos) = self.index.find(&hash) {
            if self.index.status(pos).is_some_and(BlockStatus::is_failed) {
                return Err(RejectError::Invalid(
                    ValidationError::header("duplicate-invalid").with_detail(
                        self.index
                            .invalid_reason(pos)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                ));
            }
            return Ok(None);
        }
        let prev_hash = header.prev_blockhash;
        let Some(prev) = self.index.find(&prev_hash) else {
            return Err(RejectError::UnknownParent(prev_hash));
        };
        if self.index.status(prev).is_some_and(BlockStatus::is_failed) {
            return Err(RejectError::Invalid(ValidationError::header("bad-prevblk")));
        }
        let prev_height = self.index.height(prev).unwrap_or(0);
        check::check_block_header(header, &self.params).map_err(RejectError::Invalid)?;
        check::check_fork_prior_to_checkpoint(prev_height + 1, self.last_checkpoint)
            .map_err(RejectError::Invalid)?;
        let ancestry = Ancestry {
            chain: self,
            tip: prev,
            height: prev_height,
        };
        check::check_block_header_context(
            header,
            &ancestry,
            crate::util::unix_time(),
            &self.params,
        )
        .map_err(RejectError::Invalid)?;
        Ok(Some((hash, prev)))
    }

    fn set_best_header(&mut self, pos: BlockPos) {
        let Some(height) = self.index.height(pos) else {
            return;
        };
        // Walk back until the old header chain (or genesis) is met.
        let mut branch = Vec::new();
        let mut cur = Some(pos);
        while let Some(c) = cur {
            let h = self.index.height(c).unwrap_or(0);
            if self.header_chain.get(h as usize) == Some(&c) {
                break;
            }
            branch.push(c);
            cur = self.index.parent(c);
        }
        let keep = height as usize + 1 - branch.len();
        self.header_chain.truncate(keep);
        self.header_chain.extend(branch.into_iter().rev());
    }

    /// Picks the most-work header that is not invalid (first seen wins ties).
    fn recompute_best_header(&mut self) {
        let mut best: Option<(BlockPos, Work)> = None;
        for p in self.index.positions() {
            if self.index.status(p).is_none_or(BlockStatus::is_failed) {
                continue;
            }
            let Some(work) = self.index.chain_work(p) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((bp, bw)) => {
                    work > bw || (work == bw && self.is_active_pos(p) && !self.is_active_pos(bp))
                }
            };
            if better {
                best = Some((p, work));
            }
        }
        self.header_chain.clear();
        if let Some(p) = best.map(|b| b.0).or(self.tip_pos()) {
            self.set_best_header(p);
        }
    }

    /// Takes a block we asked for (or made): see
    /// [`ChainState::accept_block_requested`].
    pub fn accept_block(&mut self, block: Block) -> Result<Vec<ChainEvent>, RejectError> {
        self.accept_block_requested(block, true)
    }

    /// Takes a block from a peer: indexes its header if new, checks it
    /// context-free, keeps it for connection, and connects whatever can be
    /// connected. Returns the chain events, or why the block was rejected.
    ///
    /// As Core's `AcceptBlock`, a block nobody asked for (`requested`
    /// false) is processed only if its chain has at least the tip's work
    /// and the minimum chain work and it is at most [`MIN_BLOCKS_TO_KEEP`]
    /// blocks ahead of the tip; otherwise its header is kept, its body
    /// dropped (counted in [`ChainState::unrequested_dropped`]) and no
    /// events are returned.
    pub fn accept_block_requested(
        &mut self,
        block: Block,
        requested: bool,
    ) -> Result<Vec<ChainEvent>, RejectError> {
        let hash = block.block_hash();
        if !self.accept_block_body(block, requested)? {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let failures = self.activate_best_chain(&mut events)?;
        match failures.into_iter().find(|(failed, _)| *failed == hash) {
            Some((_, e)) => Err(RejectError::Invalid(e)),
            None => Ok(events),
        }
    }

    /// Core's `AcceptBlock` without the `ActivateBestChain` after it: indexes
    /// the header if new, runs the context-free and contextual checks and
    /// keeps the body for connection. Returns whether the body was kept
    /// (false for a duplicate or an unrequested block not processed, see
    /// [`ChainState::accept_block_requested`]). Nothing is connected until
    /// [`ChainState::activate_best_chain`] runs, so a caller holding several
    /// bodies can accept them all first and let the connect lookahead
    /// (`chain/connect.rs`) prepare each next block while the previous
    /// one's scripts run.
    pub fn accept_block_body(
        &mut self,
        block: Block,
        requested: bool,
    ) -> Result<bool, RejectError> {
        let hash = block.block_hash();
        if !self.index.contains(&hash) {
            self.process_headers(&[block.header])?;
        }
        let Some(pos) = self.index.find(&hash) else {
            return Err(RejectError::UnknownParent(block.header.prev_blockhash));
        };
        let (Some(status), Some(height), Some(work)) = (
            self.index.status(pos),
            self.index.height(pos),
            self.index.chain_work(pos),
        ) else {
            return Err(RejectError::UnknownParent(block.header.prev_blockhash));
        };
        if status.is_failed() {
            return Err(RejectError::Invalid(ValidationError::consensus(
                "duplicate-invalid",
            )));
        }
        if status.contains(BlockStatus::HAVE_DATA) || self.pending.contains_key(&hash) {
            return Ok(false);
        }
        let prev = self.index.parent(pos).unwrap_or(pos);
        if !requested {
            let tip_work = self.tip_pos().and_then(|p| self.index.chain_work(p));
            let less_work = tip_work.is_some_and(|t| work < t);
            let too_far = height > self.height().saturating_add(MIN_BLOCKS_TO_KEEP);
            if less_work || too_far || work < self.params.minimum_chain_work {
                log::debug!(
                    "unrequested block {hash} at height {height} not processed (less work: {less_work}, too far ahead: {too_far})"
                );
                self.unrequested_dropped += 1;
                return Ok(false);
            }
        }
        // Core's ProcessNewBlock: a context-free failure never marks the
        // hash. Another serialization of the same header (merkle mutations,
        // 64-byte transactions posing as inner nodes, stripped witnesses)
        // may be valid, and CheckBlock is cheap enough not to cache.
        if let Err(e) = check::check_block(&block, &self.params) {
            log::info!("block {hash} rejected (not marked invalid): {e}");
            return Err(RejectError::Invalid(e));
        }
        // Core's AcceptBlock: the contextual checks, witness commitment
        // included, run before the block is kept, so only a body that
        // matches its header ever reaches `pending` or the store. Mutations
        // are not marked; other failures are permanent for this hash.
        let prev_mtp = self.mtp_of(prev, height.saturating_sub(1))?;
        if let Err(e) = check::contextual_check_block(&block, height, prev_mtp, &self.params) {
            if e.is_permanent() {
                self.mark_invalid(hash, &e)?;
                log::info!("block {hash} rejected: {e}");
            } else {
                log::info!("block {hash} rejected (not marked invalid): {e}");
            }
            return Err(RejectError::Invalid(e));
        }
        self.keep_block(hash, block);
        // Among headers of equal work prefer one whose block we hold (Core
        // activates only chains with data): a mutated copy of a block may
        // have put a data-less header in front.
        let best = self.best_header();
        if work >= self.best_work() && best != hash && !self.have_block(&best) {
            self.set_best_header(pos);
        }
        Ok(true)
    }

    /// Keeps an accepted body until it is connected: in memory while
    /// `pending` is under [`MAX_PENDING_BYTES`], else in the store (marked
    /// `HAVE_DATA`, read back when its turn comes).
    fn keep_block(&mut self, hash: BlockHash, block: Block) {
        let size = block.total_size();
        if self.pending_bytes.saturating_add(size) <= self.opts.pending_bytes {
            self.pending_bytes += size;
            self.pending.insert(hash, block);
            return;
        }
        self.block_writes.put_block(&hash, &block);
        self.note_block_stored(hash, size as u64);
        if let Some(pos) = self.index.find(&hash) {
            self.add_status(pos, BlockStatus::HAVE_DATA);
            self.dirty_index.insert(pos);
        }
    }

    /// Removes `hash` from `pending`, keeping `pending_bytes` in step.
    pub(super) fn take_pending(&mut self, hash: &BlockHash) -> Option<Block> {
        let block = self.pending.remove(hash)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(block.total_size());
        Some(block)
    }

    /// Accepted bodies held in memory waiting for connection: how many,
    /// and their serialized bytes (at most [`ChainOptions::pending_bytes`]).
    pub fn pending_usage(&self) -> (usize, usize) {
        (self.pending.len(), self.pending_bytes)
    }

    /// Unrequested blocks whose bodies were dropped (see
    /// [`ChainState::accept_block_requested`]).
    pub fn unrequested_dropped(&self) -> u64 {
        self.unrequested_dropped
    }

    /// Height of the last block of the best header chain on the active
    /// chain: blocks are downloaded after it.
    pub fn download_start(&self) -> u32 {
        self.fork_height()
    }

    /// The best header chain's block at `height`.
    pub fn header_chain_hash(&self, height: u32) -> Option<BlockHash> {
        self.header_chain
            .get(height as usize)
            .map(|p| self.index.hash(*p))
    }

    /// Adds `flags` to the status of `pos`.
    pub(super) fn add_status(&mut self, pos: BlockPos, flags: BlockStatus) {
        if let Some(mut status) = self.index.status(pos) {
            status.insert(flags);
            self.index.set_status(pos, status);
        }
    }

    /// Height of the last block the chain ending at `hash` shares with the
    /// best header chain; `None` for an unknown hash or one whose branch
    /// leaves the best header chain more than a download window
    /// (1,024 blocks) below it.
    pub fn header_chain_common_height(&self, hash: &BlockHash) -> Option<u32> {
        let mut cur = self.index.find(hash)?;
        for _ in 0..=1024 {
            let height = self.index.height(cur)?;
            if self.header_chain.get(height as usize) == Some(&cur) || height == 0 {
                return Some(height);
            }
            cur = self.index.parent(cur)?;
        }
        None
    }

    /// Whether the body of `hash` is held or stored.
    pub fn have_block(&self, hash: &BlockHash) -> bool {
        self.pending.contains_key(hash) || self.index.find(hash).is_some_and(|p| self.have_data(p))
    }

    pub(super) fn have_data(&self, pos: BlockPos) -> bool {
        self.index
            .status(pos)
            .is_some_and(|s| s.contains(BlockStatus::HAVE_DATA))
    }

    fn have_block_pos(&self, pos: BlockPos) -> bool {
        self.have_data(pos) || self.pending.contains_key(&self.index.hash(pos))
    }

    /// Height of the last block shared by the active and best header chains.
    fn fork_height(&self) -> u32 {
        let mut h = self.active.len().min(self.header_chain.len());
        while h > 0 {
            if self.active.get(h - 1) == self.header_chain.get(h - 1) {
                return (h - 1) as u32;
            }
            h -= 1;
        }
        0
    }

    /// Connects blocks along the best header chain while their data is at
    /// hand, reorganising when that chain forks from the active one. A block
    /// that fails is marked invalid and the best valid chain is followed
    /// instead. Returns every block that failed, in the order tried.
    pub fn activate_best_chain(
        &mut self,
        events: &mut Vec<ChainEvent>,
    ) -> Result<Vec<(BlockHash, ValidationError)>, ChainError> {
        let mut failures = Vec::new();
        let mut ahead = None;
        loop {
            let fork = self.fork_height();
            let tip_work = self.tip_pos().and_then(|p| self.index.chain_work(p));
            if self.header_chain.len() <= self.active.len() && fork == self.height() {
                break;
            }
            if fork < self.height() {
                // The best chain forks below our tip: switch only once we hold
                // the data for a branch with more work than our tip.
                let mut h = fork as usize + 1;
                let mut reach = None;
                while let Some(&p) = self
                    .header_chain
                    .get(h)
                    .filter(|p| self.have_block_pos(**p))
                {
                    reach = self.index.chain_work(p);
                    h += 1;
                }
                match (reach, tip_work) {
                    (Some(w), Some(t)) if w > t => {}
                    _ => break,
                }
                self.discard_ahead(ahead.take());
                self.flush()?;
                self.coins.clear();
                while self.height() > fork {
                    let ev = self.disconnect_tip()?;
                    events.push(ev);
                }
            }
            let next_height = self.active.len();
            let Some(next) = self
                .header_chain
                .get(next_height)
                .map(|p| self.index.hash(*p))
            else {
                break;
            };
            // Core's ConnectBlock, in three steps (chain/connect.rs): the
            // block prepared last round on this one's parent, if it is
            // this one, else this one prepared now.
            let prepared = match ahead.take() {
                Some((p, _)) if p.hash == next => Ok(p),
                other => {
                    self.discard_ahead(other);
                    let Some((block, _)) = self.take_block_data(&next)? else {
                        break;
                    };
                    self.prepare_block(Arc::new(block), next, None)
                }
            };
            // While its scripts run, prepare the next block on its view.
            if let Ok(p) = &prepared {
                ahead = self.prepare_ahead(p, next_height + 1)?;
            }
            let connected = prepared.and_then(|p| {
                let block = Arc::clone(&p.block);
                self.finish_block(p).map(|()| block)
            });
            if connected.is_err() {
                // Dropped before `next` is marked invalid, so a descendant's
                // body goes back where `mark_invalid` finds it.
                self.discard_ahead(ahead.take());
            }
            match connected {
                Ok(block) => {
                    events.push(ChainEvent::Connected {
                        hash: next,
                        height: next_height as u32,
                    });
                    self.log_update_tip(&block);
                    self.maybe_flush()?;
                }
                Err(e) if e.kind() == RejectKind::Internal => {
                    return Err(ChainError::Inconsistent(e.to_string()));
                }
                Err(e) if !e.is_permanent() => {
                    // A body that does not match its header (checked at
                    // accept, so only possible for data from an older
                    // version): drop it, keep the hash, download it again.
                    log::warn!("block {next} at height {next_height} not connected (not marked invalid): {e}");
                    failures.push((next, e));
                    break;
                }
                Err(e) => {
                    log::warn!("block {next} at height {next_height} is invalid: {e}");
                    events.extend(self.mark_invalid(next, &e)?);
                    failures.push((next, e));
                }
            }
        }
        self.discard_ahead(ahead.take());
        if self.tip() == self.best_header() {
            self.flush()?;
        }
        Ok(failures)
    }

    /// Core's `invalidateblock`: treat `hash` (and its descendants) as
    /// invalid, disconnecting it if it is active, then follow the best
    /// remaining chain. Returns the chain events.
    pub fn invalidate_block(&mut self, hash: BlockHash) -> Result<Vec<ChainEvent>, RejectError> {
        let Some(height) = self.index.find(&hash).and_then(|p| self.index.height(p)) else {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "Block not found",
            )));
        };
        if height == 0 {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "cannot invalidate the genesis block",
            )));
        }
        let mut events = Vec::new();
        if self.is_active(&hash) {
            self.flush()?;
            self.coins.clear();
            while self.height() >= height {
                events.push(self.disconnect_tip()?);
            }
        }
        let reason = ValidationError::consensus("invalidated").with_detail("by invalidateblock");
        events.extend(self.mark_invalid(hash, &reason)?);
        self.activate_best_chain(&mut events)?;
        self.flush()?;
        Ok(events)
    }

    /// Core's `reconsiderblock`: forget that `hash`, its ancestors and its
    /// descendants were invalid, then follow the best chain again.
    pub fn reconsider_block(&mut self, hash: BlockHash) -> Result<Vec<ChainEvent>, RejectError> {
        let Some((pos, height)) = self
            .index
            .find(&hash)
            .and_then(|p| Some((p, self.index.height(p)?)))
        else {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "Block not found",
            )));
        };
        let mut cleared = Vec::new();
        for p in self.index.positions() {
            let (Some(h), Some(status)) = (self.index.height(p), self.index.status(p)) else {
                continue;
            };
            let related = (h >= height && self.index.ancestor(p, height) == Some(pos))
                || (h < height && self.index.ancestor(pos, h) == Some(p));
            if related && status.is_failed() {
                cleared.push(p);
            }
        }
        let mut batch = WriteBatch::new();
        for p in cleared {
            if let Some(mut status) = self.index.status(p) {
                status.remove(BlockStatus::FAILED);
                status.remove(BlockStatus::FAILED_CHILD);
                self.index.set_status(p, status);
                self.index.set_invalid_reason(p, None);
                self.write_index(&mut batch, p);
                batch.put_index_reason(p.0, None);
            }
        }
        self.store.commit(&batch)?;
        self.recompute_best_header();
        let mut events = Vec::new();
        self.activate_best_chain(&mut events)?;
        Ok(events)
    }

    /// Marks `hash` invalid (and every known descendant), drops their
    /// pending bodies and picks the best remaining header chain.
    fn mark_invalid(
        &mut self,
        hash: BlockHash,
        e: &ValidationError,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        let Some((pos, height)) = self
            .index
            .find(&hash)
            .and_then(|p| Some((p, self.index.height(p)?)))
        else {
            return Ok(Vec::new());
        };
        let mut batch = WriteBatch::new();
        let mut failed = vec![(pos, BlockStatus::FAILED)];
        for p in self.index.positions() {
            if self.index.height(p).is_some_and(|h| h > height)
                && self.index.ancestor(p, height) == Some(pos)
            {
                failed.push((p, BlockStatus::FAILED_CHILD));
            }
        }
        for (p, flag) in failed {
            self.add_status(p, flag);
            if flag == BlockStatus::FAILED {
                let reason = e.to_string();
                batch.put_index_reason(p.0, Some(&reason));
                self.index.set_invalid_reason(p, Some(reason));
            }
            self.write_index(&mut batch, p);
            let h = self.index.hash(p);
            self.take_pending(&h);
        }
        self.store.commit(&batch)?;
        self.recompute_best_header();
        Ok(vec![ChainEvent::Invalid {
            hash,
            reason: e.to_string(),
        }])
    }

    /// Disconnects the tip using its undo data (Core's `DisconnectBlock`),
    /// committing at once. Requires a flushed, empty cache.
    fn disconnect_tip(&mut self) -> Result<ChainEvent, ChainError> {
        let height = self.height();
        if height == 0 {
            return Err(ChainError::Inconsistent("cannot disconnect genesis".into()));
        }
        let hash = self.tip();
        let block = self
            .store
            .get_block(&hash)?
            .ok_or_else(|| ChainError::Inconsistent(format!("no data for active block {hash}")))?;
        let undo = self
            .store
            .get_undo(&hash)?
            .ok_or_else(|| ChainError::Inconsistent(format!("no undo data for block {hash}")))?;
        let mut batch = WriteBatch::new();
        rollback_block(&block, &undo, &mut batch, true)
            .ok_or_else(|| ChainError::Inconsistent(format!("undo data of {hash} is too short")))?;
        let prev = block.header.prev_blockhash;
        batch.set_tip(&prev);
        self.store.commit(&batch)?;
        self.active.pop();
        self.flushed_height = self.height();
        log::info!("disconnected block {hash} at height {height}");
        Ok(ChainEvent::Disconnected { hash, height })
    }

    fn maybe_flush(&mut self) -> Result<(), ChainError> {
        let cache_full = self.coins.needs_flush(self.opts.coins_cache_bytes);
        if self.block_writes.size_bytes() > self.opts.block_write_bytes {
            self.commit_block_writes()?;
        }
        if self.blocks_since_flush >= self.opts.flush_blocks || cache_full || self.prune_wanted() {
            self.flush()?;
        }
        Ok(())
    }

    pub(super) fn commit_block_writes(&mut self) -> Result<(), ChainError> {
        if !self.block_writes.is_empty() {
            self.store.commit(&self.block_writes)?;
            self.block_writes = WriteBatch::new();
            crate::memory::release_free_memory();
        }
        Ok(())
    }

    /// Writes everything connected since the last flush: block bodies and
    /// undo first, then one transaction with the UTXO changes, index
    /// updates, active-chain entries and the new tip.
    pub fn flush(&mut self) -> Result<(), ChainError> {
        let height = self.height();
        if self.blocks_since_flush == 0
            && self.dirty_index.is_empty()
            && height == self.flushed_height
        {
            return Ok(());
        }
        let started = Instant::now();
        self.commit_block_writes()?;
        let mut batch = WriteBatch::new();
        let coins = self.coins.dirty();
        let keep = self.opts.coins_cache_bytes / 2;
        // Index records first: the first transaction carries them, so a
        // replay finds the blocks it rolls forward.
        for p in std::mem::take(&mut self.dirty_index) {
            self.write_index(&mut batch, p);
        }
        let txns = self.write_coins(batch, keep)?;
        log::debug!(
            "flushed chain state at height {height}: {} blocks, {coins} coin changes in {:?} ({txns} transactions)",
            self.blocks_since_flush,
            started.elapsed()
        );
        self.flushed_height = height;
        self.blocks_since_flush = 0;
        self.prune_after_flush()
    }

    /// Core's `UpdateTip` line for the new tip: at info level near the
    /// best header, at debug level during initial download, where one
    /// progress line with blocks/s and an ETA is logged every
    /// [`tiplog::PROGRESS_INTERVAL`] instead.
    fn log_update_tip(&mut self, block: &Block) {
        let height = self.height();
        let best = self.best_header_height().max(height);
        let near_tip = best - height < 10;
        let Some(pos) = self.tip_pos() else {
            return;
        };
        let now = crate::util::unix_time() as i64;
        let chain_tx = self.index.chain_tx(pos);
        let progress = self.params.guess_verification_progress(
            chain_tx,
            block.header.time,
            best - height,
            now,
        );
        let info = tiplog::TipInfo {
            hash: self.index.hash(pos),
            height,
            version: block.header.version.to_consensus(),
            chain_work: self
                .index
                .chain_work(pos)
                .unwrap_or(Work::from_be_bytes([0; 32])),
            chain_tx,
            time: block.header.time,
            progress,
            cache_bytes: self.coins.memory_usage(),
            cache_coins: self.coins.len(),
        };
        if near_tip {
            log::info!("{}", tiplog::update_tip_line(&info));
        } else {
            log::debug!("{}", tiplog::update_tip_line(&info));
        }
        let elapsed = self.last_log.elapsed();
        if near_tip || elapsed >= tiplog::PROGRESS_INTERVAL {
            if !near_tip {
                let blocks = height.saturating_sub(self.logged_height);
                log::info!(
                    "{}",
                    tiplog::progress_line(height, best, blocks, elapsed, progress)
                );
            }
            self.last_log = Instant::now();
            self.logged_height = height;
        }
    }

    /// Whether a peer may be sent block `hash` (Core's
    /// `BlockRequestAllowed`): a block of the active chain, or one that was
    /// fully validated (connected once, `VALID_SCRIPTS`, not failed since)
    /// and whose time is within [`STALE_RELAY_AGE_LIMIT`] of the best
    /// header's. A block merely stored or waiting in `pending` (a side
    /// branch never connected) is not served: its scripts were never
    /// checked. Core also bounds the stale block's proof-equivalent time;
    /// the time bound alone is kept here.
    pub fn block_request_allowed(&self, hash: &BlockHash) -> bool {
        if self.is_active(hash) {
            return true;
        }
        let Some(pos) = self.index.find(hash) else {
            return false;
        };
        let (Some(status), Some(time)) = (self.index.status(pos), self.index.time(pos)) else {
            return false;
        };
        if status.is_failed() || !status.contains(BlockStatus::VALID_SCRIPTS) {
            return false;
        }
        let best_time = self
            .header_chain
            .last()
            .and_then(|p| self.index.time(*p))
            .unwrap_or(0);
        best_time.saturating_sub(time) < STALE_RELAY_AGE_LIMIT
    }

    /// Raw serialized block `hash`, if stored (for serving peers; check
    /// [`ChainState::block_request_allowed`] first).
    pub fn block_bytes(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        if self.pending.contains_key(hash) {
            return Ok(self.pending.get(hash).map(encode::serialize));
        }
        self.commit_block_writes()?;
        Ok(self.store.get_block_raw(hash)?)
    }

    /// Headers of the active chain after `from_height`, at most `max`.
    pub fn active_headers(&self, from_height: u32, max: usize, stop: &BlockHash) -> Vec<Header> {
        let mut out = Vec::new();
        for h in (from_height as usize + 1)..self.active.len() {
            if out.len() >= max {
                break;
            }
            let Some(&pos) = self.active.get(h) else {
                break;
            };
            out.extend(self.index.header(pos));
            if self.index.hash(pos) == *stop {
                break;
            }
        }
        out
    }

    /// Digest of the UTXO set at the flushed tip (flushes first), and the tip.
    pub fn utxo_digest(
        &mut self,
    ) -> Result<(BlockHash, bitcoin::hashes::sha256d::Hash), ChainError> {
        self.flush()?;
        Ok((self.tip(), self.store.utxo_digest()?))
    }
}

impl Drop for ChainState {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("could not flush the chain state: {e}");
        }
    }
}

fn locator_of(chain: &[BlockPos]) -> Vec<BlockPos> {
    let mut out = Vec::new();
    let Some(&first) = chain.first() else {
        return out;
    };
    let mut h = chain.len() as i64 - 1;
    let mut step = 1i64;
    while h > 0 {
        out.extend(chain.get(h as usize).copied());
        if out.len() >= 10 {
            step *= 2;
        }
        h -= step;
    }
    out.push(first);
    out
}

/// Core's `DisconnectBlock` into `batch`: removes the block's outputs and
/// restores the coins it spent, in reverse order. With `clean` (a normal
/// disconnect of the tip) every output must be in the store; without it
/// (`ReplayBlocks` after an interrupted flush, Core's `fClean` false) a
/// missing output is skipped. `None` if the undo data is too short.
pub(super) fn rollback_block(
    block: &Block,
    undo: &crate::store::BlockUndo,
    batch: &mut WriteBatch,
    clean: bool,
) -> Option<()> {
    let mut spent = undo.spent.iter().rev();
    for tx in block.txdata.iter().rev() {
        let txid = tx.compute_txid();
        for (vout, out) in tx.output.iter().enumerate() {
            if !is_unspendable(out) {
                let op = OutPoint::new(txid, vout as u32);
                if clean {
                    batch.spend_coin(&op);
                } else {
                    batch.spend_coin_if_present(&op);
                }
            }
        }
        if tx.is_coinbase() {
            continue;
        }
        for input in tx.input.iter().rev() {
            batch.add_coin(&input.previous_output, spent.next()?);
        }
    }
    Some(())
}
